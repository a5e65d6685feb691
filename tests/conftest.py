"""Shared test setup: headless rendering and imports of the repo's packages.

MuJoCo picks its OpenGL backend when it is first imported, so `MUJOCO_GL` must be set before any
test module imports mujoco (directly or through robot_server.sim / actor). pytest imports this file
before collecting the test modules, which makes it the one place to do that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

REPO_ROOT = Path(__file__).resolve().parents[1]
# Import the repo's packages whether or not hilrl is installed (pip install -e .).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _run_hilrl(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "hilrl_cli", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="session")
def hilrl() -> Callable[..., subprocess.CompletedProcess]:
    """`hilrl(*args, timeout_s=300)`: the `hilrl` command line as a child process in the repo root,
    output captured (what an operator types, through the same entry point)."""
    return _run_hilrl
