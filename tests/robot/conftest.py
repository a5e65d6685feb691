"""Fixtures for the robot server tests: real server processes on free loopback ports."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Import the repo's packages (and this folder's helper module) whether or not hilrl is installed.
_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

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
