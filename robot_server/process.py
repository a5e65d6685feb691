"""Start and stop a robot server as a child process (for `hilrl run`, benchmarks and tests).

The child is `python -m hilrl_cli robot-server ...`; it prints one readiness line,
"robot server listening on ENDPOINT", on stdout, which is how the parent learns the real port when
it asked for port 0. The child's log goes to a file so a failure can be shown, never lost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY_PREFIX = "robot server listening on "


@dataclass
class ServerProcess:
    """A running `hilrl robot-server` child.

    Attributes:
        proc: the process.
        endpoint: the endpoint it listens on (with the real port).
        port: its TCP port.
        log_path: where its log (stderr) goes.
    """

    proc: subprocess.Popen
    endpoint: str
    port: int
    log_path: Path
    _stdout_lines: queue.Queue = field(repr=False, default_factory=queue.Queue)
    _owns_log: bool = field(repr=False, default=False)
    _final_log: str | None = field(repr=False, default=None)

    def log_tail(self, n_chars: int = 4000) -> str:
        if self._final_log is not None:
            return self._final_log[-n_chars:]
        try:
            return self.log_path.read_text()[-n_chars:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Stop the process (`sig`, then SIGKILL after `timeout_s`); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it was left stopped
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._owns_log and self._final_log is None:  # a temporary log: keep its text, not the file
            self._final_log = self.log_tail(n_chars=1 << 20)
            self.log_path.unlink(missing_ok=True)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


LAUNCHER_PID_ENV = "HILRL_STOP_WITH_LAUNCHER"
"""Set (to the launcher's pid) in the environment of a child that must not outlive its launcher."""


def launcher_env() -> dict[str, str]:
    """Environment entries that make a `hilrl` child stop (SIGTERM) when this process dies."""
    return {LAUNCHER_PID_ENV: str(os.getpid())}


def stop_with_launcher() -> None:
    """Called first by every `hilrl` command: when started with `launcher_env()`, ask Linux to send
    SIGTERM when the launcher dies (PR_SET_PDEATHSIG), so a `hilrl run` killed by SIGKILL leaves no
    robot server, learner or actor running on its own. SIGTERM stops each of them cleanly (the
    learner checkpoints, the actor flushes, the server holds the arm). Elsewhere a no-op."""
    pid = os.environ.pop(LAUNCHER_PID_ENV, None)  # for this process only, not for what it starts
    if not pid or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != pid:  # the launcher died before the call: do what the signal would
        os.kill(os.getpid(), signal.SIGTERM)


def start_server_process(
    task: str,
    *,
    config: str | Path | None = None,
    clock: str | None = None,
    port: int = 0,
    extra_args: Sequence[str] = (),
    log_path: str | Path | None = None,
    timeout_s: float = 30.0,
    stop_with_this_process: bool = False,
) -> ServerProcess:
    """Start `hilrl robot-server` (sim backend) and wait until it listens.

    Args:
        task: sim task ("": the config file's `task:`).
        config: task YAML file whose `robot_server:` section the server uses.
        clock: "lockstep" or "realtime" (default: the config's).
        port: TCP port; 0 lets the server pick a free one.
        extra_args: more command-line arguments.
        log_path: file for the server's log (default: a temporary file, removed by `stop`).
        timeout_s: how long to wait for the readiness line.
        stop_with_this_process: the server gets SIGTERM when this process dies (`launcher_env`).
    Raises:
        RuntimeError: the server exited or did not become ready; the message holds its log tail.
    """
    owns_log = log_path is None
    if log_path is None:
        with tempfile.NamedTemporaryFile(prefix="robot_server_", suffix=".log", delete=False) as f:
            log_path = f.name
    log_path = Path(log_path)
    cmd = [sys.executable, "-m", "hilrl.tools.cli", "robot-server", "--backend", "sim", "--port", str(port)]
    if task:
        cmd += ["--task", task]
    if config is not None:
        cmd += ["--config", str(config)]
    if clock is not None:
        cmd += ["--clock", clock]
    cmd += list(extra_args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(launcher_env() if stop_with_this_process else {})}
    env.setdefault("MUJOCO_GL", "egl")
    # The child must find this checkout's packages whether or not the project is installed.
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True, name="robot-server-stdout").start()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if line and line.startswith(READY_PREFIX):
            endpoint = line.strip()[len(READY_PREFIX) :]
            return ServerProcess(proc, endpoint, int(endpoint.rsplit(":", 1)[1]), log_path, lines, owns_log)
        if line is None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log = log_path.read_text()[-4000:]
            if owns_log:
                log_path.unlink(missing_ok=True)
            raise RuntimeError(f"robot server did not start (exit {proc.returncode}): {' '.join(cmd)}\n{log}")
