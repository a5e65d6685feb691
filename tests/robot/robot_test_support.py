"""Helpers for the robot server tests: server subprocesses, raw sockets and malformed requests."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from hilrl.robot_server.process import ServerProcess, start_server_process
from hilrl.transport.codec import PROTOCOL_VERSION, decode, encode
from hilrl.transport.robot_messages import ROBOT_MESSAGES, SetPoseTarget

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def repo_env() -> dict[str, str]:
    """Environment for a child process that must import this checkout's packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


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
    return start_server_process(task, clock=clock, port=port, extra_args=extra_args, timeout_s=timeout_s)


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


def _header(kind: str, body: dict, arrays: list, *, v: int = PROTOCOL_VERSION, seq: int = 7) -> bytes:
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

