"""Helpers for tests that run hilrl processes the way a lab starts them: by hand, each with its own
command line, on free loopback ports, stopped (or killed) by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    """`hilrl ARGS...` as a child process, its output appended to `log`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "hilrl.tools.cli", *args], env=env, stdout=f, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGINT) -> None:
    """Stop a child with `sig` (SIGKILL for a crash), waiting for it; kill it after 20 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout_s: float, what: str) -> None:
    """Poll `predicate` until true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
