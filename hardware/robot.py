"""The robot the actor drives: an interface and two implementations.

`RobotClient` talks to a robot server process over ZeroMQ; `InProcessRobot` calls the server's
`RobotService` directly, with no sockets, so an env can run with or without a server process and
the same server-side safety layer applies either way.

`RobotClient` follows ZeroMQ's *lazy pirate* pattern: a REQ socket, a timeout per try, and on
timeout the socket is closed, a new one opened and the *same* request (same sequence number)
resent. The server replays its cached reply for a repeated sequence number, so a retried request is
executed once. A server restarted between calls is picked up transparently (ZeroMQ reconnects, and
a request lost in the restart is resent).

Units: metres, radians, seconds; quaternions are (w, x, y, z), base frame (see
`transport.robot_messages`).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import zmq

from transport.codec import Limits, ProtocolError, decode, encode
from transport.link_config import CurveConfig
from transport.robot_messages import (
    ROBOT_MESSAGES,
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
)
from transport.security import secure_connect

if TYPE_CHECKING:
    from robot_server.config import ServerConfig
    from robot_server.service import PhysicsPacer, RobotService

log = logging.getLogger(__name__)

# Replies may carry camera frames: allow large frames, unlike the server's request limits.
REPLY_LIMITS = Limits(max_header_bytes=64 * 1024, max_frame_bytes=64 * 1024 * 1024, max_frames=16)


class RobotError(Exception):
    """Base class of the robot interface's errors."""


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


class _RequestMethods:
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


def _check_reply(reply: Any, reply_type: type, kind: str) -> Any:
    if isinstance(reply, ErrorReply):
        raise RobotServerError(reply.code, reply.message)
    if not isinstance(reply, reply_type):
        raise RobotServerError(
            "bad_reply", f"{kind} got a {type(reply).__name__} reply where {reply_type.__name__} was expected"
        )
    return reply


class RobotClient(_RequestMethods):
    """`RobotInterface` over ZeroMQ to a robot server (lazy pirate REQ client).

    Args:
        address: the server's endpoint, e.g. "tcp://127.0.0.1:5555".
        timeout_s: how long one try waits for a reply.
        retries: tries per request before `RobotUnreachableError` (so a call blocks at most about
            retries * timeout_s).
        curve: CurveZMQ keys (`robot_server.curve`): required for a non-loopback address.
    Not thread-safe: use one client per thread.
    Raises:
        InsecureAddressError: a non-loopback address without `curve`.
    """

    def __init__(self, address: str, timeout_s: float = 1.0, retries: int = 3, curve: CurveConfig | None = None):
        if timeout_s <= 0 or retries < 1:
            raise ValueError("timeout_s must be > 0 and retries >= 1")
        self.address = address
        self.timeout_s = timeout_s
        self.retries = retries
        self.curve = curve
        # The server deduplicates resends by (sender, seq); a fresh id per client keeps sessions apart.
        self.sender_id = f"robot_client-{uuid.uuid4().hex[:12]}"
        self._seq = itertools.count(1)
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        try:
            self._open()
        except BaseException:
            self._context.term()
            raise

    def _open(self) -> None:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RECONNECT_IVL, 50)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        try:
            secure_connect(socket, self.address, self.curve, config_key="robot_server.curve")
        except BaseException:
            socket.close(linger=0)
            raise
        self._socket = socket

    def _reopen(self) -> None:
        # A REQ socket that sent without receiving is stuck in its state machine; the lazy pirate
        # answer is to throw it away.
        if self._socket is not None:
            self._socket.close(linger=0)
        self._open()

    def _request(self, msg: Any, reply_type: type) -> Any:
        if self._socket is None:
            raise RobotError("the robot client is closed")
        seq = next(self._seq)
        frames = encode(msg, ROBOT_MESSAGES, sender=self.sender_id, seq=seq)
        kind = ROBOT_MESSAGES.kind_of(msg)
        for attempt in range(1, self.retries + 1):
            self._socket.send_multipart(frames, copy=False)
            deadline = time.monotonic() + self.timeout_s
            while True:
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                if not self._socket.poll(remaining_ms, zmq.POLLIN):
                    break  # this try timed out
                reply_frames = self._socket.recv_multipart(copy=False)
                try:
                    envelope, reply = decode(reply_frames, ROBOT_MESSAGES, REPLY_LIMITS)
                except ProtocolError as exc:
                    raise RobotServerError(exc.code, f"undecodable reply from {self.address}: {exc}") from None
                if envelope.seq == seq:
                    return _check_reply(reply, reply_type, kind)
                # Cannot happen with one REQ socket per try, but a stale reply must never be taken
                # for this request's; the REQ socket now wants a send, so the try is over.
                log.warning("dropping a reply for seq %d while waiting for %d", envelope.seq, seq)
                break
            log.info(
                "no reply to %s (seq %d) from %s within %.3g s (try %d of %d); reconnecting",
                kind, seq, self.address, self.timeout_s, attempt, self.retries,
            )
            self._reopen()
        raise RobotUnreachableError(
            f"no reply from the robot server at {self.address} to {kind} after {self.retries} "
            f"tries of {self.timeout_s:g} s each; is it running? Start one with "
            f"`hilrl robot-server --backend sim --task TASK --port PORT` (the port of {self.address})."
        )

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
            self._context.term()


class InProcessRobot(_RequestMethods):
    """`RobotInterface` calling a `RobotService` in this process (no server, no sockets).

    Requests and replies still pass through the wire codec, so validation, array types (read-only
    arrays) and errors are exactly those of `RobotClient`.

    With the realtime clock, physics catches up with the wall clock at each call (the service's
    watchdog and force checks run as it does), since no server loop runs in between.

    Args:
        service: the robot service (it owns the backend; `close` closes the backend).
        clock: monotonic time source in seconds (drives the watchdog and realtime physics).
    """

    def __init__(self, service: RobotService, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.clock = clock
        self._pacer: PhysicsPacer | None = None
        if service.config.clock == "realtime":
            from robot_server.service import PhysicsPacer  # see from_config for why this is allowed

            # Calls may be a control period apart or more: catch up on up to a second at a time.
            self._pacer = PhysicsPacer(service, timestep_s=service.config.sim.timestep_s, max_catch_up_s=1.0)
            self._pacer.catch_up(clock())
        self._seq = itertools.count(1)
        self._closed = False

    @classmethod
    def from_config(cls, config: ServerConfig, task: str, clock: Callable[[], float] = time.monotonic) -> InProcessRobot:
        """Build the backend named by `config` and its `RobotService` in this process.

        This is the one place `hardware/` imports `robot_server/` (the layout otherwise allows only
        `transport/`): running the arm in-process needs the server's backends and safety layer,
        and reusing them, rather than copying them, keeps one safety implementation. The import
        happens here, so importing `hardware.robot` never loads the server or MuJoCo.
        """
        from robot_server.server import make_backend
        from robot_server.service import RobotService

        backend = make_backend(config, task)
        try:
            return cls(RobotService(backend, config), clock)
        except Exception:
            backend.close()
            raise

    def _request(self, msg: Any, reply_type: type) -> Any:
        if self._closed:
            raise RobotError("the in-process robot is closed")
        seq = next(self._seq)
        kind = ROBOT_MESSAGES.kind_of(msg)
        # bytes(): decoded arrays must not alias buffers the caller or the backend may change.
        request = [bytes(f) for f in encode(msg, ROBOT_MESSAGES, seq=seq)]
        try:
            _, decoded = decode(request, ROBOT_MESSAGES)
        except ProtocolError as exc:
            raise RobotServerError(exc.code, str(exc)) from None
        now_s = self.clock()
        if self._pacer is not None:
            self._pacer.catch_up(now_s)
        reply = self.service.handle(decoded, now_s)
        try:
            reply_frames = [bytes(f) for f in encode(reply, ROBOT_MESSAGES, seq=seq)]
            _, reply = decode(reply_frames, ROBOT_MESSAGES, REPLY_LIMITS)
        except (ProtocolError, ValueError) as exc:
            raise RobotServerError("bad_reply", f"{kind}: the reply does not pass the codec: {exc}") from None
        return _check_reply(reply, reply_type, kind)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.service.backend.close()
