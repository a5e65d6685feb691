"""Shared test setup: headless rendering, the installed package, the `hilrl` command as a child.

MuJoCo picks its OpenGL backend when it is first imported, so `MUJOCO_GL` must be set before any
test module imports mujoco (directly or through hilrl.robot_server.sim / hilrl.actor). pytest
imports this file before collecting the test modules, which makes it the one place to do that.

The tests import the package as installed (`pip install -e ".[dev]"`, the README's command): the
folders map into the `hilrl` namespace only through the install, never through sys.path.
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
try:
    import hilrl.transport  # noqa: F401
except ImportError:  # pragma: no cover - a set-up error, not a test failure
    pytest.exit('hilrl is not installed: run `pip install -e ".[dev]"` from the repository root', returncode=4)


def _run_hilrl(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hilrl.tools.cli", *args], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="session")
def hilrl() -> Callable[..., subprocess.CompletedProcess]:
    """`hilrl(*args, timeout_s=300)`: the `hilrl` command line as a child process in the repo root,
    output captured (what an operator types, through the same entry point)."""
    return _run_hilrl
