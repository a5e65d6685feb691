"""`RobotClient`: the `RobotInterface` (hilrl.robot_server.interface) over ZeroMQ to a robot
server process.

It follows ZeroMQ's *lazy pirate* pattern: a REQ socket, a timeout per try, and on timeout the
socket is closed, a new one opened and the *same* request (same sequence number) resent. The server
replays its cached reply for a repeated sequence number, so a retried request is executed once. A
server restarted between calls is picked up transparently (ZeroMQ reconnects, and a request lost in
the restart is resent).

Units: metres, radians, seconds; quaternions are (w, x, y, z), base frame (see
`hilrl.transport.robot_messages`).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from typing import Any

import zmq

from hilrl.hardware.errors import RobotError
from hilrl.robot_server.interface import (
    REPLY_LIMITS,
    RequestMethods,
    RobotServerError,
    RobotUnreachableError,
    check_reply,
)
from hilrl.transport.codec import ProtocolError, decode, encode
from hilrl.transport.link_config import CurveConfig
from hilrl.transport.robot_messages import ROBOT_MESSAGES
from hilrl.transport.security import secure_connect

log = logging.getLogger(__name__)


class RobotClient(RequestMethods):
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
        # A REQ socket with no usable connection (a CurveZMQ handshake the server refused, under
        # load seen to tear the pipe down before the send) blocks in send forever without this:
        # a send that cannot go out within one try's timeout is that try timing out.
        socket.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
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
            deadline = time.monotonic() + self.timeout_s
            try:
                self._socket.send_multipart(frames, copy=False)
            except zmq.Again:
                deadline = time.monotonic()  # not sent within timeout_s: this try is over
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
                    return check_reply(reply, reply_type, kind)
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


