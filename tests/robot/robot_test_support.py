"""Helpers for the robot server tests: server subprocesses, raw sockets and malformed requests."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from transport.codec import decode, encode
from transport.robot_messages import ROBOT_MESSAGES, SetPoseTarget

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class ServerProcess:
    """A running `hilrl robot-server` subprocess.

    Attributes:
        proc: the process.
        endpoint: the endpoint it reported it listens on.
        port: its TCP port.
        log_path: where its stderr goes (shown when a test fails).
    """

    proc: subprocess.Popen
    endpoint: str
    port: int
    log_path: Path
    _stdout_lines: queue.Queue = field(repr=False, default_factory=queue.Queue)

    _final_log: str | None = field(repr=False, default=None)

    def log_tail(self, n_chars: int = 4000) -> str:
        if self._final_log is not None:
            return self._final_log[-n_chars:]
        try:
            return self.log_path.read_text()[-n_chars:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Stop the process (SIGTERM, then SIGKILL after `timeout_s`); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._final_log is None:  # keep the log for log_tail, but leave nothing in /tmp
            self._final_log = self.log_tail(n_chars=1 << 20)
            self.log_path.unlink(missing_ok=True)
        return self.proc.returncode


def start_server(
    clock: str = "lockstep",
    port: int = 0,
    task: str = "reach",
    extra_args: Sequence[str] = (),
    timeout_s: float = START_TIMEOUT_S,
) -> ServerProcess:
    """Start `hilrl robot-server` (sim backend) and wait until it listens.

    Args:
        clock: "lockstep" or "realtime".
        port: TCP port; 0 lets the server pick a free one.
        task: sim task ("": the config file's).
        extra_args: more command-line arguments (e.g. ["--config", path]).
        timeout_s: how long to wait for the readiness line.
    """
    log_file = tempfile.NamedTemporaryFile(prefix="robot_server_", suffix=".log", delete=False)
    cmd = [
        sys.executable, "-m", "hilrl_cli", "robot-server", "--backend", "sim", "--clock", clock,
        "--port", str(port), *(["--task", task] if task else []), *extra_args,
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=log_file, text=True)
    log_file.close()
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    log_path = Path(log_file.name)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
        if line and line.startswith("robot server listening on "):
            endpoint = line.split()[-1]
            return ServerProcess(proc, endpoint, int(endpoint.rsplit(":", 1)[1]), log_path, lines)
        if line is None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log = log_path.read_text()[-4000:]
            log_path.unlink(missing_ok=True)
            raise RuntimeError(f"robot server did not start (exit {proc.returncode}): {' '.join(cmd)}\n{log}")


class RawClient:
    """A bare ZeroMQ socket for sending hand-made (possibly malformed) frames to a server.

    Args:
        endpoint: server endpoint.
        kind: zmq.REQ (adds the empty delimiter itself) or zmq.DEALER (sends frames as given).
    """

    def __init__(self, endpoint: str, kind: int = zmq.REQ):
        self.context = zmq.Context()
        self.socket = self.context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        # The server answers a repeated (sender, seq) from its cache: each client is its own sender.
        self.sender = f"raw-test-{uuid.uuid4().hex[:8]}"

    def send(self, frames: Sequence[bytes]) -> None:
        self.socket.send_multipart(list(frames))

    def recv(self, timeout_s: float = 5.0) -> list[bytes] | None:
        """Reply frames, or None if nothing came within `timeout_s`."""
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        return self.socket.recv_multipart()

    def request(self, msg, sender: str | None = None, seq: int = 1, timeout_s: float = 5.0):
        """Send a well-formed message; returns (envelope, reply). Fails the test on no reply."""
        self.send(encode(msg, ROBOT_MESSAGES, sender=sender or self.sender, seq=seq))
        frames = self.recv(timeout_s)
        assert frames is not None, f"no reply to {type(msg).__name__} within {timeout_s} s"
        return decode(frames, ROBOT_MESSAGES)

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header(kind: str, body: dict, arrays: list, *, v: int = 1, seq: int = 7) -> bytes:
    return json.dumps({"v": v, "kind": kind, "sender": "bad-input-test", "seq": seq, "time_s": 0.0,
                       "body": body, "arrays": arrays}).encode()


def _target_frames(position: np.ndarray, quat: np.ndarray) -> list[bytes]:
    return [bytes(f) for f in encode(SetPoseTarget(position, quat), ROBOT_MESSAGES, sender="bad-input-test", seq=7)]


@dataclass(frozen=True)
class BadRequest:
    """A malformed request and what the error reply must say.

    Attributes:
        name: test id.
        frames: the message frames (without a ROUTER envelope).
        code: the expected ErrorReply/ProtocolError code.
        mentions: substrings the error message must contain (naming the problem).
    """

    name: str
    frames: list[bytes]
    code: str
    mentions: tuple[str, ...]


def bad_requests(max_frame_bytes: int = 1024 * 1024) -> list[BadRequest]:
    """Every kind of malformed request the codec and the server must refuse, by name."""
    good = _target_frames(np.array([0.45, 0.0, 0.25]), np.array([0.0, 1.0, 0.0, 0.0]))
    nan_position = np.array([0.45, np.nan, 0.25])
    f64 = "<f8"
    return [
        BadRequest("garbage_bytes", [b"\x00\xff\xfe garbage \x81"], "garbled", ("not valid JSON",)),
        BadRequest("non_json_header", [b"{'kind': get_state"], "garbled", ("not valid JSON",)),
        BadRequest("header_not_object", [b"[1, 2, 3]"], "garbled", ("not a JSON object",)),
        BadRequest("deeply_nested_header", [b"[" * 50_000], "garbled", ("not valid JSON",)),
        BadRequest("truncated_array_frame", [good[0], good[1][:-5], good[2]], "bad_frame", ("position_m", "bytes")),
        BadRequest("missing_array_frame", good[:2], "bad_frame", ("2 arrays", "1 frames")),
        BadRequest("wrong_version", [_header("get_state", {}, [], v=99)], "bad_version", ("99",)),
        BadRequest(
            "wrong_shape",
            [_header("set_pose_target", {}, [["position_m", f64, [4]], ["quaternion_wxyz", f64, [4]]]),
             np.zeros(4).tobytes(), np.array([0.0, 1, 0, 0]).tobytes()],
            "bad_field", ("position_m", "shape"),
        ),
        BadRequest(
            "forbidden_dtype",
            [_header("set_pose_target", {}, [["position_m", "|O", [3]], ["quaternion_wxyz", f64, [4]]]),
             np.zeros(3).tobytes(), np.array([0.0, 1, 0, 0]).tobytes()],
            "bad_frame", ("position_m", "dtype"),
        ),
        BadRequest("nan_in_array", _target_frames(nan_position, np.array([0.0, 1, 0, 0])), "bad_field",
                   ("position_m", "NaN")),
        BadRequest("oversized_frame", [_header("get_state", {}, [["x", "|u1", [max_frame_bytes + 1]]]),
                                       bytes(max_frame_bytes + 1)], "too_large", ("frame 1", "limit")),
        BadRequest("unknown_kind", [_header("fly_to_the_moon", {}, [])], "unknown_kind",
                   ("fly_to_the_moon", "get_state")),
        BadRequest("unknown_field", [_header("set_gripper", {"opening": 0.5, "speeed": 1.0}, [])], "bad_field",
                   ("speeed",)),
        BadRequest("missing_field", [_header("set_gripper", {}, [])], "bad_field", ("opening", "missing")),
        BadRequest("out_of_range_value", [_header("set_gripper", {"opening": 2.0}, [])], "bad_field", ("opening",)),
        BadRequest("wrong_value_type", [_header("advance", {"periods": "many"}, [])], "bad_field", ("periods",)),
    ]


def assert_mentions(message: str, mentions: Sequence[str]) -> None:
    for word in mentions:
        assert word.lower() in message.lower(), f"{word!r} not in error message {message!r}"

