"""Shared test setup: headless rendering, the installed package, the `hilrl` command as a child.

MuJoCo picks its OpenGL backend when it is first imported, so `MUJOCO_GL` must be set before any
test module imports mujoco (directly or through hilrl.robot_server.sim / hilrl.actor). pytest
imports this file before collecting the test modules, which makes it the one place to do that.

Test processes (pytest-xdist, `-n auto --dist loadgroup` in pyproject.toml): every module's tests
run in one worker, so a module fixture (recorded demos, a trained run) is built once; the tests
marked `serial` (the CPU-bound learning runs) form one group, so no two of them share the CPU. A
learning run whose learner got half the machine would need twice its time and could miss its
timeout; a config test beside it loses nothing.

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


SERIAL_GROUP = "serial"


def pytest_configure(config: pytest.Config) -> None:
    """In a pytest-xdist worker, torch in this process gets its share of the cores (torch's default
    is all of them per process, and its spinning threads then fight the other worker's)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schedule by module, the `serial` tests together (see the module docstring), and those
    first: they are the longest unit of work, so one worker starts on them while the others take
    the rest. Without pytest-xdist, or with `-n 0`, only the order changes."""
    is_serial = {item.nodeid: item.get_closest_marker("serial") is not None for item in items}
    for item in items:
        group = SERIAL_GROUP if is_serial[item.nodeid] else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not is_serial[item.nodeid])  # stable: the rest keep their order


@pytest.fixture(scope="session")
def hilrl() -> Callable[..., subprocess.CompletedProcess]:
    """`hilrl(*args, timeout_s=300)`: the `hilrl` command line as a child process in the repo root,
    output captured (what an operator types, through the same entry point)."""
    return _run_hilrl
