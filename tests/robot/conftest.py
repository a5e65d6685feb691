"""Fixtures for the robot server tests: real server processes on free loopback ports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# This folder's helper modules (robot_test_support, safety_harness) import by name.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

FAKE_PANDA_DIR = _HERE / "fake_panda_py"


@pytest.fixture(scope="module")
def fake_panda_py():
    """`import panda_py` gets the fake (tests/robot/fake_panda_py) for one module's tests: a
    module that drives the Franka backend uses it with `pytestmark = pytest.mark.usefixtures(...)`
    or an autouse fixture of its own that requests it."""
    sys.path.insert(0, str(FAKE_PANDA_DIR))
    yield
    sys.path.remove(str(FAKE_PANDA_DIR))
    for name in [n for n in sys.modules if n == "panda_py" or n.startswith("panda_py.")]:
        del sys.modules[name]

from robot_test_support import ServerProcess, start_server  # noqa: E402


@pytest.fixture
def servers():
    """Start servers with `servers(...)` (same arguments as `start_server`); all stop at teardown."""
    started: list[ServerProcess] = []

    def start(**kwargs) -> ServerProcess:
        server = start_server(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def lockstep_server():
    """One lockstep reach server shared by a module's tests (they must leave it usable)."""
    server = start_server(clock="lockstep")
    yield server
    server.stop()
