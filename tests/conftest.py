"""Shared test setup: headless rendering and imports of the repo's packages.

MuJoCo picks its OpenGL backend when it is first imported, so `MUJOCO_GL` must be set before any
test module imports mujoco (directly or through robot_server.sim / actor). pytest imports this file
before collecting the test modules, which makes it the one place to do that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

REPO_ROOT = Path(__file__).resolve().parents[1]
# Import the repo's packages whether or not hilrl is installed (pip install -e .).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
