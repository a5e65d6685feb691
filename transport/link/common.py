"""What both ends of the actor <-> learner link share: the protocol, its limits and the I/O helpers.

This module owns the receive limits of each direction (`LEARNER_RECV_LIMITS`, `ACTOR_RECV_LIMITS`),
the I/O threads' loop constants, the self-pipe that wakes an I/O thread (`Waker`), rate-limited
logging (`LogLimiter`), the socket options both sockets get (`set_heartbeat_options`) and the
chunk-against-handshake check both sides apply (`check_chunk`). The actor's end is in
`hilrl.transport.link.actor_side`, the learner's in `hilrl.transport.link.learner_side`.

Sockets: the actor's DEALER connects to the learner's ROUTER (`LinkConfig.address`; the learner
binds it with `transport.security.secure_bind`: loopback, or CurveZMQ keys). Messages are those of
`transport.learner_messages`, framed by `transport.codec`; a ROUTER message is
[routing id, codec frames...] with no empty delimiter.

Patterns, in the ZeroMQ guide's terms:

- **One I/O thread per side owns the socket** ("don't share sockets between threads"). Public
  methods are thread-safe: they touch only locked queues and wake the I/O thread through a pipe;
  none of them waits for the network.
- **Heartbeating, both ways** (as in the Paranoid Pirate pattern). Each side sends `Heartbeat`
  every `heartbeat_s`; `peer_timeout_s` of silence means the peer is gone. The actor then reports
  `learner_alive = False` and keeps acting; the learner keeps training. ZeroMQ's own ZMTP
  heartbeats (ZMQ_HEARTBEAT_IVL/TIMEOUT) also tear down dead TCP connections so queues do not
  fill behind a half-open connection.
- **Credit-based flow control** (the guide's file-transfer example): at most
  `max_in_flight_chunks` unacknowledged chunks/stats are on the wire; each `ChunkAck` returns one
  credit. Sends are non-blocking (ZMQ_IMMEDIATE: nothing is queued for a learner that is not
  connected; a send that would block is retried on a later loop turn, the message stays unacked).
- **Acknowledged delivery with resend and idempotent receipt** (the guide's reliable
  request-reply patterns; like Titanic, the learner stores a message on disk before it
  acknowledges it). The actor keeps every chunk until its ack, and writes it through to
  `spool_dir` (`ChunkDirectory`: atomic, fsync) before it is first sent, so an actor killed at any
  moment, the learner up or down, loses at most the message it was writing; the next run using
  the spool resends them. In memory it keeps up to `max_chunks_in_memory` (beyond that only the
  spool holds them, read back in order). A full or failing disk is logged and the messages are
  sent from memory meanwhile (then a crash could lose them). It resends all unacked messages, in sequence
  order, after every (re-)handshake, and any message unacked for `2 * peer_timeout_s`. The
  learner deduplicates by (actor_session, seq): a duplicate is acked again but stored and
  delivered once. A learner restarted with the same `store_dir` rebuilds its dedupe table from
  disk, so a resend after a crash is neither lost nor duplicated.
- **Handshake**: the actor sends `Hello` (every `heartbeat_s`) until `Welcome` or `Refused`. The
  learner compares protocol_version, observation.state_dim, observation.cameras, action_dim,
  the learning contract (hilrl.transport.contract) in that order and refuses the first mismatch by
  its dotted field name; a contract mismatch lists every differing key with both values. A message
  from a session the learner has not welcomed (e.g. after the learner restarted) is answered with
  `HelloRequired`; a `Welcome` carrying a new learner_session means the learner restarted.
- **Weights**: `publish_weights` keeps the latest version; the learner pushes it to every actor
  heard from within `peer_timeout_s`, and answers `WeightsRequest(have_version)` with it when
  newer. The actor asks after each `Welcome` and whenever a heartbeat or ack shows a newer
  version than it has (the ZeroMQ guide's "late joiner" answer: ask for a snapshot).
  A frozen image backbone travels apart, as `StaticWeights`, once per actor: the request carries
  the static id the actor holds, and a learner whose id differs sends its static part first, then
  the weights (in order on the one connection). Weights whose `static_id` the actor lacks are not
  used; the actor asks again instead. `take_weights` hands the static tensors to the caller the
  first time they go with a version (merged into `tensors`), and leaves them out afterwards.

Sequence numbers: each actor session numbers its chunks and stats from 1 in one space. Chunks
spilled by an earlier actor run keep their own session and seq and are resent first; acks name
(actor_session, seq), so they are never confused with the current session's.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any

import zmq

from hilrl.transport.codec import Limits
from hilrl.transport.learner_messages import Hello, TransitionChunk
from hilrl.transport.link_config import LinkConfig

LOGGER_NAME = "hilrl.transport.link"
"""The logger both sides log to: the package's name, so log lines and logging configuration do not
depend on which module of the link a message comes from."""

LEARNER_RECV_LIMITS = Limits(max_header_bytes=64 * 1024, max_frame_bytes=32 * 1024 * 1024, max_frames=64)
"""What the learner accepts from an actor (and what actor spools and the learner's store hold):
a frame up to 32 MiB covers e.g. 100 records of a 224x224x3 camera (15 MB); 10 records of three
128x128x3 cameras are 0.5 MB per camera frame. 64 frames: 12 fixed arrays plus cameras."""

ACTOR_RECV_LIMITS = Limits(max_header_bytes=4 * 1024 * 1024, max_frame_bytes=1024 * 1024 * 1024, max_frames=4096)
"""What an actor accepts from the learner: weights may hold many and large tensors; the learner is
a peer we chose (and authenticated, off loopback)."""

MAX_POLL_S = 0.05  # the I/O threads wake at least this often for their timers
RECV_BATCH = 64  # messages handled per loop turn (the learner group-commits them)


class Waker:
    """A self-pipe: any thread calls `wake()`; the I/O thread polls `fd` (ZeroMQ's poller accepts
    plain file descriptors) and `drain()`s it. Writes never block (a full pipe is awake already)."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._w, False)
        self._closed = False

    def wake(self) -> None:
        if self._closed:
            return
        try:
            os.write(self._w, b"\0")
        except (BlockingIOError, OSError):
            pass

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)
            os.close(self._w)


class AddressInUseError(OSError):
    """A link cannot bind its address: something else listens there (the message names the key
    and the fix)."""


class LogLimiter:
    """Log a repeating problem at most once per `every_s` per key, counting what it suppressed."""

    def __init__(self, logger: logging.Logger, every_s: float = 5.0):
        self._log = logger
        self._every_s = every_s
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()

    def warning(self, key: str, msg: str, *args: Any) -> None:
        self._emit(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: Any) -> None:
        self._emit(logging.ERROR, key, msg, *args)

    def _emit(self, level: int, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self._every_s:
            n = self._suppressed.pop(key, 0)
            self._log.log(level, msg + (f" ({n} more like this suppressed)" if n else ""), *args)
            self._last[key] = now
        else:
            self._suppressed[key] += 1


def set_heartbeat_options(sock: zmq.Socket, config: LinkConfig) -> None:
    """The options both ends' sockets get: no linger, and ZMTP heartbeats from `config`
    (interval `heartbeat_s`, timeout and TTL `peer_timeout_s`; ZeroMQ takes milliseconds)."""
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(config.heartbeat_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(config.peer_timeout_s * 1000)))
    sock.setsockopt(zmq.HEARTBEAT_TTL, max(100, int(config.peer_timeout_s * 1000)))


def check_chunk(chunk: TransitionChunk, hello: Hello) -> tuple[str, str] | None:
    """(field, message) of the first way `chunk` disagrees with the handshake `hello`, or None.

    Field names follow the handshake's dotted names ("observation.state_dim", "action_dim",
    "observation.cameras", "observation.cameras.NAME").
    """
    k = len(chunk)
    if k == 0:
        return "obs_state", "a chunk must hold at least one record"
    if chunk.obs_state.shape[1] != hello.observation.state_dim:
        return ("observation.state_dim",
                f"chunk obs_state has {chunk.obs_state.shape[1]} dims, the handshake said {hello.observation.state_dim}")
    if chunk.action.shape[1] != hello.action_dim:
        return "action_dim", f"chunk action has {chunk.action.shape[1]} dims, the handshake said {hello.action_dim}"
    if set(chunk.obs_images) != set(hello.observation.cameras):
        return ("observation.cameras",
                f"chunk has cameras {sorted(chunk.obs_images)}, the handshake said {sorted(hello.observation.cameras)}")
    for cam, images in chunk.obs_images.items():
        want = tuple(hello.observation.cameras[cam])
        if tuple(images.shape[1:]) != want:
            return (f"observation.cameras.{cam}",
                    f"chunk images of {cam!r} are {tuple(images.shape[1:])}, the handshake said {want}")
    return None
