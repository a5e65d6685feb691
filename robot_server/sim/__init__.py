"""The simulated arm (MuJoCo): scene, impedance controller, tasks, backend.

Headless machines (no DISPLAY) render with EGL unless the user chose a GL backend: a missing
MUJOCO_GL is the most common first failure of MuJoCo cameras on servers and in CI. This must run
before mujoco is first imported, which is why it lives here.
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
