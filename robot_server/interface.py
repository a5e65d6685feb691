"""What the actor needs from an arm, wherever it runs: the `RobotInterface` protocol, its typed
request methods built on one `_request`, and the errors a robot call raises.

Two implementations: `hilrl.robot_server.client.RobotClient` (ZeroMQ to a robot server process)
and `hilrl.robot_server.inprocess.InProcessRobot` (the server's `RobotService` in this process,
no sockets). This module loads neither ZeroMQ nor the server.

Units: metres, radians, seconds; quaternions are (w, x, y, z), base frame (see
`hilrl.transport.robot_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from hilrl.hardware.errors import RobotError
from hilrl.transport.codec import Limits
from hilrl.transport.robot_messages import (
    Ack,
    Advance,
    ClearErrors,
    ErrorReply,
    GetInfo,
    GetState,
    GoHome,
    Images,
    ImpedanceParams,
    Render,
    RobotState,
    ServerInfo,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
    Stop,
)

# Replies may carry camera frames: allow large frames, unlike the server's request limits.
REPLY_LIMITS = Limits(max_header_bytes=64 * 1024, max_frame_bytes=64 * 1024 * 1024, max_frames=16)


class RobotServerError(RobotError):
    """The server refused or failed a request.

    Attributes:
        code: the `ErrorReply` code ("controller_error", "bad_field", "unsupported", ...).
    """

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class RobotUnreachableError(RobotError):
    """No reply from the robot server after every retry."""


class RobotInterface(Protocol):
    """What the actor needs from an arm, wherever it runs."""

    def info(self) -> ServerInfo:
        """Backend, task, clock, control period, cameras, home pose, workspace box, watchdog."""
        ...

    def state(self) -> RobotState:
        """Current measured state."""
        ...

    def set_pose_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> RobotState:
        """Set the TCP target (base frame); returns the state with the target the server accepted."""
        ...

    def set_gripper(self, opening: float) -> None:
        """Command the gripper: 0.0 closed .. 1.0 open."""
        ...

    def go_home(
        self, position_noise_m: float = 0.0, rotation_noise_rad: float = 0.0, seed: int | None = None
    ) -> RobotState:
        """Move home with a random offset of at most the given half-widths; returns when there."""
        ...

    def set_impedance(self, params: ImpedanceParams) -> None:
        """Replace the impedance controller parameters."""
        ...

    def clear_errors(self) -> RobotState:
        """Clear the controller error latch (after the operator made the cell safe)."""
        ...

    def stop(self, reason: str = "") -> RobotState:
        """Operator stop: the arm holds and the server latches "operator_stop" until clear_errors."""
        ...

    def render(self, cameras: Sequence[str]) -> Images:
        """Frames of the named cameras: the sim's rendered ones, or (hardware.cameras) real ones,
        whose frames may differ in size and carry per-frame `capture_times_s`."""
        ...

    def advance(self, periods: int = 1) -> RobotState:
        """Advance a lockstep simulation by whole control periods."""
        ...

    def close(self) -> None:
        """Release sockets and resources."""
        ...


class RequestMethods:
    """The typed methods of `RobotInterface`, built on one `_request(msg, reply_type)`."""

    def _request(self, msg: Any, reply_type: type) -> Any:
        raise NotImplementedError

    def info(self) -> ServerInfo:
        return self._request(GetInfo(), ServerInfo)

    def state(self) -> RobotState:
        return self._request(GetState(), RobotState)

    def set_pose_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> RobotState:
        msg = SetPoseTarget(
            position_m=np.asarray(position_m, dtype=np.float64),
            quaternion_wxyz=np.asarray(quaternion_wxyz, dtype=np.float64),
        )
        return self._request(msg, RobotState)

    def set_gripper(self, opening: float) -> None:
        self._request(SetGripper(float(opening)), Ack)

    def go_home(
        self, position_noise_m: float = 0.0, rotation_noise_rad: float = 0.0, seed: int | None = None
    ) -> RobotState:
        return self._request(GoHome(float(position_noise_m), float(rotation_noise_rad), seed), RobotState)

    def set_impedance(self, params: ImpedanceParams) -> None:
        self._request(SetImpedance(params), Ack)

    def clear_errors(self) -> RobotState:
        return self._request(ClearErrors(), RobotState)

    def stop(self, reason: str = "") -> RobotState:
        return self._request(Stop(reason[:200]), RobotState)

    def render(self, cameras: Sequence[str]) -> Images:
        return self._request(Render(list(cameras)), Images)

    def advance(self, periods: int = 1) -> RobotState:
        return self._request(Advance(int(periods)), RobotState)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


def check_reply(reply: Any, reply_type: type, kind: str) -> Any:
    if isinstance(reply, ErrorReply):
        raise RobotServerError(reply.code, reply.message)
    if not isinstance(reply, reply_type):
        raise RobotServerError(
            "bad_reply", f"{kind} got a {type(reply).__name__} reply where {reply_type.__name__} was expected"
        )
    return reply
