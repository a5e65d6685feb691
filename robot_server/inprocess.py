"""`InProcessRobot`: the robot server's `RobotService` (safety layer included) in the actor's
process, with no server and no sockets, so an env can run with or without a server process and the
same server-side safety applies either way (`env.connection: inprocess`, the sim only).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from hilrl.hardware.errors import RobotError
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.interface import REPLY_LIMITS, RequestMethods, RobotServerError, check_reply
from hilrl.robot_server.server import make_backend
from hilrl.robot_server.service import PhysicsPacer, RobotService
from hilrl.transport.codec import ProtocolError, decode, encode
from hilrl.transport.robot_messages import ROBOT_MESSAGES


class InProcessRobot(RequestMethods):
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
            # Calls may be a control period apart or more: catch up on up to a second at a time.
            self._pacer = PhysicsPacer(service, timestep_s=service.config.sim.timestep_s, max_catch_up_s=1.0)
            self._pacer.catch_up(clock())
        self._seq = itertools.count(1)
        self._closed = False

    @classmethod
    def from_config(cls, config: ServerConfig, task: str, clock: Callable[[], float] = time.monotonic) -> InProcessRobot:
        """Build the backend named by `config` and its `RobotService` in this process."""

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
        return check_reply(reply, reply_type, kind)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.service.backend.close()
