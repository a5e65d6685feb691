"""The actor <-> learner link: reliable, non-blocking transition streaming and weight delivery.

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
  acknowledges it). The actor keeps every chunk until its ack: in memory up to
  `max_chunks_in_memory`, spilled in order to `spool_dir` (`ChunkDirectory`) beyond that, and
  on `close` everything still unacked is spilled. It resends all unacked messages, in sequence
  order, after every (re-)handshake, and any message unacked for `2 * peer_timeout_s`. The
  learner deduplicates by (actor_session, seq): a duplicate is acked again but stored and
  delivered once. A learner restarted with the same `store_dir` rebuilds its dedupe table from
  disk, so a resend after a crash is neither lost nor duplicated.
- **Handshake**: the actor sends `Hello` (every `heartbeat_s`) until `Welcome` or `Refused`. The
  learner compares protocol_version, observation.state_dim, observation.cameras, action_dim,
  config_hash in that order and refuses the first mismatch by its dotted field name. A message
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
import dataclasses
import errno
import hashlib
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from transport.chunkfile import ChunkDirectory, ChunkFileError
from transport.codec import Limits, ProtocolError, decode, encode
from transport.learner_messages import (
    LEARNER_MESSAGES,
    ChunkAck,
    EpisodeStats,
    Heartbeat,
    Hello,
    HelloRequired,
    Refused,
    StaticWeights,
    TransitionChunk,
    Weights,
    WeightsRequest,
    Welcome,
)
from transport.link_config import LinkConfig
from transport.schema import SchemaError, check_array
from transport.security import secure_bind, secure_connect

log = logging.getLogger(__name__)

LEARNER_RECV_LIMITS = Limits(max_header_bytes=64 * 1024, max_frame_bytes=32 * 1024 * 1024, max_frames=64)
"""What the learner accepts from an actor (and what actor spools and the learner's store hold):
a frame up to 32 MiB covers e.g. 100 records of a 224x224x3 camera (15 MB); 10 records of three
128x128x3 cameras are 0.5 MB per camera frame. 64 frames: 12 fixed arrays plus cameras."""

ACTOR_RECV_LIMITS = Limits(max_header_bytes=4 * 1024 * 1024, max_frame_bytes=1024 * 1024 * 1024, max_frames=4096)
"""What an actor accepts from the learner: weights may hold many and large tensors; the learner is
a peer we chose (and authenticated, off loopback)."""

# ZeroMQ disconnects a peer whose single frame exceeds this (protects memory before the codec's
# limits apply); below it, oversized frames reach the codec and are dropped with a log line.
_LEARNER_ZMQ_MAX_FRAME = 2 * LEARNER_RECV_LIMITS.max_frame_bytes
_ACTOR_ZMQ_MAX_FRAME = ACTOR_RECV_LIMITS.max_frame_bytes

_MAX_POLL_S = 0.05  # the I/O threads wake at least this often for their timers
_RECV_BATCH = 64  # messages handled per loop turn (the learner group-commits them)
_SPILLS_PER_TURN = 16  # disk writes per loop turn, so heartbeats keep flowing while spilling

_ACTOR_TO_LEARNER = (Hello, TransitionChunk, EpisodeStats, WeightsRequest, Heartbeat)
_LEARNER_TO_ACTOR = (Welcome, Refused, ChunkAck, StaticWeights, Weights, HelloRequired, Heartbeat)


# ---------------------------------------------------------------------------------- helpers


class _Waker:
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


class _LogLimiter:
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


def _free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1e9:.2f} GB"
    except OSError:
        return "unknown space"


def _set_heartbeat_options(sock: zmq.Socket, config: LinkConfig) -> None:
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


def _check_arrays(msg: Any) -> None:
    """Dtype, rank and finiteness of every array field against its schema metadata (what the
    receiving codec checks), so a bad message fails in the caller, not forever on the wire."""
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, np.ndarray):
            check_array(value, f"{type(msg).__name__}.{f.name}", f.metadata)
        elif isinstance(value, dict):
            for key, arr in value.items():
                if not isinstance(arr, np.ndarray):
                    raise SchemaError(f"{type(msg).__name__}.{f.name}.{key}", "expected an array")
                check_array(arr, f"{type(msg).__name__}.{f.name}.{key}", f.metadata)
        elif isinstance(value, float) and not np.isfinite(value):
            raise SchemaError(f"{type(msg).__name__}.{f.name}", f"non-finite number {value}")


def static_weights_id(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def handshake_mismatch(hello: Hello, expected: Hello) -> Refused | None:
    """The learner's handshake check: the first differing field, in the documented order."""
    checks = (
        ("protocol_version", hello.protocol_version, expected.protocol_version),
        ("observation.state_dim", hello.observation.state_dim, expected.observation.state_dim),
        ("observation.cameras",
         {k: list(v) for k, v in hello.observation.cameras.items()},
         {k: list(v) for k, v in expected.observation.cameras.items()}),
        ("action_dim", hello.action_dim, expected.action_dim),
        ("config_hash", hello.config_hash, expected.config_hash),
    )
    for name, actor_value, learner_value in checks:
        if actor_value != learner_value:
            hint = (" (the actor and the learner must run the same resolved task config)"
                    if name == "config_hash" else "")
            return Refused(
                field=name,
                message=f"{name} mismatch: the actor has {actor_value!r}, the learner expects {learner_value!r}{hint}",
            )
    return None


# ---------------------------------------------------------------------------------- actor side


@dataclass(eq=False)
class _Entry:
    """One unacknowledged chunk or stats message held by the actor.

    Attributes:
        session, seq: the message's own dedupe key (an earlier run's session for spooled ones).
        kind: codec kind. order: spool file index (global send order).
        msg: the message, or None while it lives only on disk.
        frames: encoded frames (cached after the first send).
        sent_at: monotonic time of the last send; None when not in flight.
        on_disk: a spool file holds it (deleted on ack).
    """

    session: str
    seq: int
    kind: str
    order: int
    msg: Any = None
    frames: list | None = None
    sent_at: float | None = None
    on_disk: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return self.session, self.seq


class ActorLink:
    """The actor's end of the link (DEALER). See the module docstring for the protocol.

    Args:
        config: the `link:` section.
        hello: this actor's handshake (its `actor_session` names the session; a fresh id is made
            when it is empty).
        spool_dir: folder for unacked chunks that do not fit in memory or outlive this process.
            Chunks found there at start (an earlier run's) are resent first.
    Raises:
        DirectoryBusyError: another actor (process or link) uses `spool_dir`.

    Usage: `start()`, then `send_chunk` / `send_stats` / `take_weights` from the control loop
    (none blocks), `close()` at the end. Arrays of a sent chunk must not be modified afterwards:
    the link keeps (and sends) them, without copying.
    """

    def __init__(self, config: LinkConfig, hello: Hello, spool_dir: str | Path):
        self.config = config
        self.session = hello.actor_session or f"actor-{uuid.uuid4().hex[:12]}"
        self._hello = dataclasses.replace(hello, actor_session=self.session)
        self._resend_after_s = 2.0 * config.peer_timeout_s
        self._spool = ChunkDirectory(spool_dir, limits=LEARNER_RECV_LIMITS)
        self._spool.lock()  # one actor per spool: two would resend and delete each other's files

        self._lock = threading.Lock()
        self._incoming: collections.deque[_Entry] = collections.deque()
        self._next_seq = 1
        self._unacked = 0
        self._latest_weights: Weights | None = None
        self._refused: Refused | None = None
        self._static: StaticWeights | None = None  # written by the I/O thread, under the lock
        self._static_taken_id = ""  # static part already handed to the caller

        # Owned by the I/O thread (or by the caller before start / after join).
        self._window: collections.OrderedDict[tuple[str, int], _Entry] = collections.OrderedDict()
        self._spooled: collections.deque[_Entry] = collections.deque()
        self._tail: collections.deque[_Entry] = collections.deque()
        self._welcomed = False
        self._last_heard = -1e9
        self._learner_session: str | None = None
        self._updates_done = 0
        self._learner_weights_version = -1
        self._have_version = -1
        self._requested_version = -1
        self._requested_at = -1e9
        self._next_hello = 0.0
        self._next_heartbeat = 0.0
        self._env_steps = 0
        self.dropped_messages = 0
        self.resent_messages = 0

        # Chunks an earlier run spilled: resent first, in their order, under their own keys.
        # The current session's files get indices above them (spool order = send order).
        self._order_base = self._spool.next_index
        for index in self._spool.indices():
            entry = self._spooled_entry(index)
            if entry is not None:
                self._spooled.append(entry)
        self._unacked = len(self._spooled)
        if self._spooled:
            log.info("%s: %d unacknowledged message(s) from an earlier run will be resent first",
                     self._spool.path, len(self._spooled))

        self._limiter = _LogLimiter(log)
        self._waker = _Waker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._closed = False

    def _spooled_entry(self, index: int) -> _Entry | None:
        try:
            header = self._spool.read_header(index)
            body = header["body"]
            kind, session, seq = header["kind"], body["actor_session"], body["seq"]
            if kind not in ("transition_chunk", "episode_stats") or not isinstance(session, str) \
                    or not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError(f"holds a {kind!r}, not a chunk or episode stats")
        except (ChunkFileError, KeyError, ValueError, TypeError) as exc:
            self._spool.quarantine(index, f"unreadable spool file: {exc}")
            return None
        return _Entry(session=session, seq=seq, kind=kind, order=index, on_disk=True)

    # -- public API (any thread)

    def start(self) -> None:
        """Connect and start the I/O thread. Raises InsecureAddressError / CurveKeyError for an
        address that needs keys it does not have."""
        if self._thread is not None:
            raise RuntimeError("ActorLink already started")
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        try:
            _set_heartbeat_options(sock, self.config)
            # Queue only to a connected learner: with none, a send fails at once (zmq.Again)
            # and the chunk simply stays unacked.
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, self.config.max_in_flight_chunks + 64)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(100, int(self.config.heartbeat_s * 1000)))
            sock.setsockopt(zmq.MAXMSGSIZE, _ACTOR_ZMQ_MAX_FRAME)
            secure_connect(sock, self.config.address, self.config.curve)
        except BaseException:
            sock.close(linger=0)
            context.term()
            raise
        self._context, self._socket = context, sock
        self._thread = threading.Thread(target=self._run, name=f"actor-link-{self.session}", daemon=True)
        self._thread.start()

    def send_chunk(self, chunk: TransitionChunk) -> int:
        """Queue a chunk for reliable delivery; returns the seq it was given. Never blocks.

        The link sets `actor_session` and `seq` (on a copy made with dataclasses.replace).
        Raises:
            ValueError: the chunk does not match this actor's handshake or its schema (wrong dims,
                cameras, dtypes, NaN): caught here, so it never sits on the wire unacceptable.
        """
        problem = check_chunk(chunk, self._hello)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        _check_arrays(chunk)
        return self._submit(chunk, "transition_chunk")

    def send_stats(self, stats: EpisodeStats) -> int:
        """Queue episode stats (same seq space and guarantees as chunks); returns the seq. Never blocks.

        Raises:
            ValueError: a non-finite number.
        """
        _check_arrays(stats)
        return self._submit(stats, "episode_stats")

    def _submit(self, msg: Any, kind: str) -> int:
        if self._closed:
            raise RuntimeError("the link is closed")
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            msg = dataclasses.replace(msg, actor_session=self.session, seq=seq)
            self._incoming.append(
                _Entry(session=self.session, seq=seq, kind=kind, order=self._order_base + seq - 1, msg=msg)
            )
            self._unacked += 1
        self._waker.wake()
        return seq

    def take_weights(self) -> Weights | None:
        """The newest weights received and not yet taken (arrays are read-only), else None.

        The first weights of a static part (see the module docstring) carry its tensors too,
        merged into `tensors`; later ones only what training changes."""
        with self._lock:
            weights, self._latest_weights = self._latest_weights, None
            if weights is None or not weights.static_id or weights.static_id == self._static_taken_id:
                return weights
            assert self._static is not None and self._static.static_id == weights.static_id
            self._static_taken_id = weights.static_id
            return dataclasses.replace(weights, tensors={**self._static.tensors, **weights.tensors})

    def set_env_steps(self, env_steps: int) -> None:
        """Actor progress, reported in heartbeats."""
        self._env_steps = int(env_steps)

    @property
    def learner_alive(self) -> bool:
        """Welcomed by a learner that was heard from within peer_timeout_s."""
        return self._welcomed and time.monotonic() - self._last_heard < self.config.peer_timeout_s

    @property
    def learner_updates_done(self) -> int:
        """Gradient updates the learner reported last."""
        return self._updates_done

    @property
    def learner_weights_version(self) -> int:
        """Newest weights version the learner reported (-1: none)."""
        return self._learner_weights_version

    @property
    def unacked(self) -> int:
        """Chunks and stats not yet acknowledged (in memory, in flight or spooled)."""
        return self._unacked

    @property
    def refused(self) -> Refused | None:
        """The learner's refusal of our handshake: the caller should stop with this message."""
        return self._refused

    @property
    def learner_session(self) -> str | None:
        """Session id of the learner that welcomed us last."""
        return self._learner_session

    def close(self, flush_timeout_s: float = 5.0) -> None:
        """Wait up to `flush_timeout_s` for every message to be acked, stop the I/O thread, and
        spill whatever is still unacked to the spool (resent by the next run using `spool_dir`)."""
        if self._closed:
            return
        if self._thread is not None:
            deadline = time.monotonic() + flush_timeout_s
            while self._unacked > 0 and self._refused is None and time.monotonic() < deadline \
                    and self._thread.is_alive():
                time.sleep(0.005)
            self._stop.set()
            self._waker.wake()
            self._thread.join()
        else:
            self._spill_all()
        self._closed = True
        self._spool.close()
        self._waker.close()

    def __enter__(self) -> ActorLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- I/O thread

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._waker.fd, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                try:
                    events = dict(poller.poll(int(_MAX_POLL_S * 1000)))
                    if self._waker.fd in events:
                        self._waker.drain()
                    if sock in events:
                        for _ in range(_RECV_BATCH):
                            try:
                                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                            except zmq.Again:
                                break
                            self._on_frames(frames)
                    now = time.monotonic()
                    self._admit()
                    self._timers(now)
                    self._pump(now)
                except Exception:  # a bug must not stop the link (the actor keeps acting)
                    log.exception("actor link: unexpected error; continuing")
                    time.sleep(0.05)
        finally:
            try:
                self._spill_all()
            finally:
                sock.close(linger=0)
                if self._context is not None:
                    self._context.term()

    def _send(self, msg: Any) -> bool:
        assert self._socket is not None
        try:
            self._socket.send_multipart(encode(msg, LEARNER_MESSAGES, sender=self.session), zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def _on_frames(self, frames: Sequence[Any]) -> None:
        try:
            envelope, msg = decode(frames, LEARNER_MESSAGES, ACTOR_RECV_LIMITS)
        except ProtocolError as exc:
            self.dropped_messages += 1
            self._limiter.warning(exc.code, "actor link: dropping an undecodable message from the learner: %s: %s",
                                  exc.code, exc)
            return
        if not isinstance(msg, _LEARNER_TO_ACTOR):
            self.dropped_messages += 1
            self._limiter.warning("kind", "actor link: dropping a %s (not a learner-to-actor message)", envelope.kind)
            return
        now = time.monotonic()
        self._last_heard = now
        if isinstance(msg, Welcome):
            self._on_welcome(msg, now)
        elif isinstance(msg, ChunkAck):
            self._on_ack(msg)
            self._progress(msg.updates_done, msg.weights_version, now)
        elif isinstance(msg, Heartbeat):
            if self._welcomed and msg.session == self._learner_session:
                self._progress(msg.updates_done, msg.weights_version, now)
        elif isinstance(msg, StaticWeights):
            with self._lock:
                self._static = msg
        elif isinstance(msg, Weights):
            if msg.static_id and (self._static is None or self._static.static_id != msg.static_id):
                # Unusable without its static part: ask for both (the request names what we hold).
                self._request_weights(now, force=True)
            elif msg.version > self._have_version:
                self._have_version = msg.version
                self._learner_weights_version = max(self._learner_weights_version, msg.version)
                with self._lock:
                    self._latest_weights = msg
        elif isinstance(msg, HelloRequired):
            if self._welcomed:
                log.info("actor link: the learner does not know session %s (restarted?): handshaking again",
                         self.session)
            self._welcomed = False
            self._next_hello = 0.0
        elif isinstance(msg, Refused):
            if self._refused is None:
                log.error("actor link: the learner refused this actor: %s: %s", msg.field, msg.message)
            self._refused = msg

    def _on_welcome(self, msg: Welcome, now: float) -> None:
        new_learner = msg.learner_session != self._learner_session
        if self._welcomed and not new_learner:
            self._progress(msg.updates_done, msg.weights_version, now)
            return  # a duplicate answer to a repeated Hello
        if new_learner:
            if self._learner_session is not None:
                log.warning("actor link: learner restarted (session %s -> %s)", self._learner_session,
                            msg.learner_session)
                # The new learner's versions are the truth, even if they restarted lower.
                self._have_version = -1
                self._requested_version = -1
            self._learner_session = msg.learner_session
            self._learner_weights_version = msg.weights_version
        self._welcomed = True
        in_flight = [e for e in self._window.values() if e.sent_at is not None]
        if in_flight:
            log.info("actor link: welcomed by %s; resending %d unacked message(s) in order",
                     msg.learner_session, self._unacked)
        else:
            log.info("actor link: welcomed by %s", msg.learner_session)
        # Anything sent before may have died with a connection: resend all of it, in order.
        for e in in_flight:
            e.sent_at = None
        self.resent_messages += len(in_flight)
        self._updates_done = msg.updates_done
        self._next_heartbeat = now + self.config.heartbeat_s
        self._request_weights(now, force=True)

    def _on_ack(self, msg: ChunkAck) -> None:
        entry = self._window.pop((msg.actor_session or self.session, msg.seq), None)
        if entry is None:
            return  # a second ack of a resent message
        if entry.on_disk:
            self._spool.remove(entry.order)
        with self._lock:
            self._unacked -= 1

    def _progress(self, updates_done: int, weights_version: int, now: float) -> None:
        self._updates_done = updates_done
        self._learner_weights_version = weights_version
        self._request_weights(now)

    def _request_weights(self, now: float, force: bool = False) -> None:
        wanted = self._learner_weights_version
        if not force and (wanted <= self._have_version or (
                wanted <= self._requested_version and now - self._requested_at < self.config.peer_timeout_s)):
            return
        static_id = self._static.static_id if self._static is not None else ""
        if self._send(WeightsRequest(have_version=self._have_version, have_static_id=static_id)):
            self._requested_version, self._requested_at = wanted, now

    def _admit(self) -> None:
        """Move new messages into the in-memory window, or to the spool when it is full; refill
        the window from the spool in order. Order: window < spooled < tail, by send order."""
        with self._lock:
            if self._incoming:
                self._tail.extend(self._incoming)
                self._incoming.clear()
        limit = self.config.max_chunks_in_memory
        while self._spooled and len(self._window) < limit:
            entry = self._spooled.popleft()
            if self._load(entry):
                self._window[entry.key] = entry
        spills = 0
        while self._tail:
            if not self._spooled and len(self._window) < limit:
                entry = self._tail.popleft()
                self._window[entry.key] = entry
            elif spills < _SPILLS_PER_TURN:
                entry = self._tail.popleft()
                self._spill(entry)
                self._spooled.append(entry)
                spills += 1
            else:
                break

    def _load(self, entry: _Entry) -> bool:
        """Read a spooled entry's message back; a bad file is moved aside (counted as done)."""
        try:
            _, msg = self._spool.read(entry.order)
            if (msg.actor_session, msg.seq) != entry.key:
                raise ChunkFileError(self._spool.path_for(entry.order), "changed since it was listed")
            if isinstance(msg, TransitionChunk):
                problem = check_chunk(msg, self._hello)
                if problem is not None:
                    raise ChunkFileError(self._spool.path_for(entry.order),
                                         f"recorded for another setup ({problem[0]}: {problem[1]})")
        except ChunkFileError as exc:
            self._spool.quarantine(entry.order, f"cannot resend spooled message: {exc}")
            with self._lock:
                self._unacked -= 1
            return False
        entry.msg = msg
        return True

    def _spill(self, entry: _Entry) -> None:
        if not entry.on_disk:
            self._spool.put(entry.order, entry.msg, LEARNER_MESSAGES, sender=self.session, seq=entry.seq)
            entry.on_disk = True
        entry.msg, entry.frames = None, None

    def _spill_all(self) -> None:
        """Write every unacked message that exists only in memory to the spool."""
        with self._lock:
            self._tail.extend(self._incoming)
            self._incoming.clear()
        spilled = 0
        for entry in [*self._window.values(), *self._tail]:
            if not entry.on_disk and entry.msg is not None:
                try:
                    self._spill(entry)
                    spilled += 1
                except (OSError, ValueError) as exc:
                    log.error("actor link: could not spool %s seq %d: %s", entry.kind, entry.seq, exc)
        if spilled:
            log.info("actor link: spilled %d unacknowledged message(s) to %s; the next run using this "
                     "spool resends them", spilled, self._spool.path)

    def _timers(self, now: float) -> None:
        if self._refused is not None:
            return
        if self._welcomed and now - self._last_heard > self.config.peer_timeout_s:
            log.warning("actor link: no word from the learner for %.1f s: considered gone (acting on; "
                        "%d unacked message(s) kept for resending)", now - self._last_heard, self._unacked)
            self._welcomed = False
            self._next_hello = 0.0
        if not self._welcomed:
            if now >= self._next_hello:
                self._send(dataclasses.replace(self._hello, weights_version=self._have_version))
                self._next_hello = now + self.config.heartbeat_s
        elif now >= self._next_heartbeat:
            self._send(Heartbeat(session=self.session, env_steps=self._env_steps,
                                 weights_version=self._have_version))
            self._next_heartbeat = now + self.config.heartbeat_s

    def _pump(self, now: float) -> None:
        """Send what credit allows, in order; resend what waited too long for its ack."""
        if not self._welcomed or self._refused is not None:
            return
        credit = self.config.max_in_flight_chunks - sum(1 for e in self._window.values() if e.sent_at is not None)
        assert self._socket is not None
        for entry in list(self._window.values()):
            if entry.sent_at is not None:
                if now - entry.sent_at < self._resend_after_s:
                    continue
                self.resent_messages += 1  # no ack for too long: send again (dedupe makes it safe)
            elif credit <= 0:
                break
            if entry.frames is None:
                try:
                    entry.frames = encode(entry.msg, LEARNER_MESSAGES, sender=self.session, seq=entry.seq)
                except (ValueError, TypeError) as exc:  # e.g. a non-finite number slipped through
                    log.error("actor link: dropping %s seq %d, it cannot be encoded: %s", entry.kind, entry.seq, exc)
                    self._window.pop(entry.key, None)
                    if entry.on_disk:
                        self._spool.remove(entry.order)
                    with self._lock:
                        self._unacked -= 1
                    continue
            try:
                self._socket.send_multipart(entry.frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break  # no connection or queue full: retried on a later turn
            if entry.sent_at is None:
                credit -= 1
            entry.sent_at = now


# ---------------------------------------------------------------------------------- learner side


@dataclass
class SeqWindow:
    """Which seqs of one actor session are stored: all of 1..contiguous, plus `above`.

    Compact: a session that delivers in order keeps an empty set. `above` only holds seqs past a
    gap (a message still in flight, or lost with a crashed actor's memory); past `max_above` the
    oldest gap is given up (logged), so the table stays bounded.
    """

    contiguous: int = 0
    above: set[int] = field(default_factory=set)
    max_above: int = 100_000

    def __contains__(self, seq: int) -> bool:
        return seq <= self.contiguous or seq in self.above

    def add(self, seq: int) -> None:
        if seq in self:
            return
        self.above.add(seq)
        self._advance()
        if len(self.above) > self.max_above:
            lowest = min(self.above)
            log.warning("dedupe window: giving up on seqs %d..%d (never arrived)", self.contiguous + 1, lowest - 1)
            self.contiguous = lowest - 1
            self._advance()

    def _advance(self) -> None:
        while self.contiguous + 1 in self.above:
            self.above.remove(self.contiguous + 1)
            self.contiguous += 1


@dataclass
class _Peer:
    """A welcomed actor session: where to reach it and when we last heard from it."""

    session: str
    identity: bytes
    hello: Hello
    last_heard: float


@dataclass
class _ToStore:
    identity: bytes
    frames: list
    msg: Any
    key: tuple[str, int]


class LearnerLink:
    """The learner's end of the link (ROUTER). See the module docstring for the protocol.

    Args:
        config: the `link:` section (the learner binds `config.address`; port 0: any free port,
            see `endpoint`).
        expected: the learner's own view of the handshake (protocol_version, observation,
            action_dim, config_hash; actor_session is ignored).
        store_dir: where received chunks (store_dir/chunks) and episode stats (store_dir/stats)
            are stored durably before they are acknowledged. Reusing it after a crash (`--resume`)
            rebuilds the dedupe table, so nothing is lost or stored twice; `load_stored()` yields
            what was stored before.
        learner_session: unique id of this learner process run.
        fsync: fsync every stored batch before acknowledging it (group commit). False trades
            crash durability (not atomicity) for speed.
        max_undelivered: chunks received but not yet taken by `poll_chunks`; beyond it new chunks
            are not acknowledged (actors resend them later), which bounds memory.
        min_free_bytes: stop storing (and acknowledging) while the store's disk has less free space
            than this, bytes: the reserve keeps room for checkpoints, and the actors keep what is
            not stored and resend it once space is freed. 0: no reserve.

    The trainer calls `poll_chunks` / `poll_stats` / `publish_weights` / `set_progress`; none
    blocks on the network.
    Raises:
        DirectoryBusyError: another learner (process or link) uses `store_dir`.
    """

    def __init__(
        self,
        config: LinkConfig,
        expected: Hello,
        store_dir: str | Path,
        learner_session: str,
        *,
        fsync: bool = True,
        max_undelivered: int = 1024,
        min_free_bytes: int = 0,
    ):
        self.config = config
        self.expected = expected
        self.learner_session = learner_session
        self.fsync = fsync
        self.max_undelivered = max_undelivered
        self.min_free_bytes = int(min_free_bytes)
        self._free_checked_at = -math.inf
        self._free_bytes = 0
        store_dir = Path(store_dir)
        self._chunks = ChunkDirectory(store_dir / "chunks", limits=LEARNER_RECV_LIMITS)
        self._stats = ChunkDirectory(store_dir / "stats", limits=LEARNER_RECV_LIMITS)
        self._chunks.lock()  # one learner per store (a second would number files over the first's)
        self._stats.lock()
        self._seen: dict[str, SeqWindow] = {}
        self._rebuild()
        self._stored_at_open = self._chunks.indices()
        self._stats_at_open = self._stats.indices()

        self._lock = threading.Lock()
        self._chunks_out: collections.deque[TransitionChunk] = collections.deque()
        self._stats_out: collections.deque[EpisodeStats] = collections.deque()
        self._new_weights: tuple[int, list] | None = None
        self._static: tuple[str, list] | None = None  # (static_id, encoded StaticWeights), set once
        self._updates_done = 0
        self._peers: dict[str, _Peer] = {}

        # Owned by the I/O thread.
        self._weights: tuple[int, list] | None = None
        self._next_heartbeat = 0.0
        self.dropped_messages = 0
        self.duplicates = 0
        self.deferred = 0
        self.store_failures = 0  # batches the store refused (disk full, I/O error), not acked

        self._limiter = _LogLimiter(log)
        self._waker = _Waker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._auth: Any = None
        self._endpoint: str | None = None
        self._closed = False

    def _rebuild(self) -> None:
        """Dedupe table from the files already stored (headers only: cheap)."""
        for directory, kind in ((self._chunks, "transition_chunk"), (self._stats, "episode_stats")):
            for index in directory.indices():
                try:
                    header = directory.read_header(index)
                    session, seq = header["body"]["actor_session"], header["body"]["seq"]
                    if header.get("kind") != kind or not isinstance(session, str) or not isinstance(seq, int):
                        raise ValueError(f"not a stored {kind}")
                except (ChunkFileError, KeyError, ValueError, TypeError) as exc:
                    directory.quarantine(index, f"unreadable stored message: {exc}")
                    continue
                self._window_of(session).add(seq)
        if len(self._chunks) or len(self._stats):
            log.info("learner link: %d stored chunk(s) and %d episode stats in %s (dedupe table rebuilt)",
                     len(self._chunks), len(self._stats), self._chunks.path.parent)

    def _window_of(self, session: str) -> SeqWindow:
        window = self._seen.get(session)
        if window is None:
            window = self._seen[session] = SeqWindow()
        return window

    # -- public API (any thread)

    def start(self) -> None:
        """Bind and start the I/O thread.

        Raises:
            InsecureAddressError: a non-loopback address without `config.curve` (before binding).
            CurveKeyError: missing key files. zmq.ZMQError: the bind failed (e.g. address in use).
        """
        if self._thread is not None:
            raise RuntimeError("LearnerLink already started")
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        try:
            _set_heartbeat_options(sock, self.config)
            # Errors instead of silent drops when a peer is gone or its queue is full: logged.
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, _LEARNER_ZMQ_MAX_FRAME)
            self._auth = secure_bind(sock, self.config.address, self.config.curve)
            self._endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            sock.close(linger=0)
            context.term()
            raise
        self._context, self._socket = context, sock
        log.info("learner link %s listening on %s", self.learner_session, self._endpoint)
        self._thread = threading.Thread(target=self._run, name=f"learner-link-{self.learner_session}", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str | None:
        """The bound endpoint, with the real port (after `start`)."""
        return self._endpoint

    def close(self) -> None:
        """Stop the I/O thread and release the socket (stored data stays in store_dir)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._waker.wake()
            self._thread.join()
        if self._auth is not None:
            self._auth.stop()
        if self._context is not None:
            self._context.term()
        self._chunks.close()
        self._stats.close()
        self._waker.close()

    def __enter__(self) -> LearnerLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll_chunks(self, max_n: int | None = None) -> list[TransitionChunk]:
        """Chunks received (and stored) since the last call, in arrival order; at most `max_n`."""
        with self._lock:
            n = len(self._chunks_out) if max_n is None else min(max_n, len(self._chunks_out))
            return [self._chunks_out.popleft() for _ in range(n)]

    def poll_stats(self) -> list[EpisodeStats]:
        """Episode stats received since the last call."""
        with self._lock:
            out = list(self._stats_out)
            self._stats_out.clear()
            return out

    def set_static_weights(self, tensors: dict[str, np.ndarray]) -> str:
        """The tensors that never change (a frozen backbone; float32, copied here), sent to each
        actor once. Call before the first publish_weights, at most once. Returns their static_id
        (static_weights_id), which every later Weights carries."""
        if self._static is not None:
            raise RuntimeError("the static weights are set already")
        copied = {name: np.array(t, dtype=np.float32, order="C", copy=True) for name, t in tensors.items()}
        static_id = static_weights_id(copied)
        frames = encode(StaticWeights(static_id=static_id, tensors=copied), LEARNER_MESSAGES,
                        sender=self.learner_session)
        with self._lock:
            self._static = (static_id, frames)
        return static_id

    def publish_weights(self, version: int, tensors: dict[str, np.ndarray]) -> None:
        """Make `tensors` (float32, copied here) the latest weights, pushed to live actors and
        served on request. Versions should increase."""
        copied = {name: np.array(t, dtype=np.float32, order="C", copy=True) for name, t in tensors.items()}
        with self._lock:
            static_id = self._static[0] if self._static is not None else ""
        frames = encode(Weights(version=int(version), tensors=copied, static_id=static_id), LEARNER_MESSAGES,
                        sender=self.learner_session)
        with self._lock:
            self._new_weights = (int(version), frames)
        self._waker.wake()

    def set_progress(self, updates_done: int) -> None:
        """Gradient updates so far (reported to actors in heartbeats, acks and welcomes)."""
        self._updates_done = int(updates_done)

    def actors_alive(self) -> list[str]:
        """Sessions of actors heard from within peer_timeout_s."""
        now = time.monotonic()
        with self._lock:
            return [s for s, p in self._peers.items() if now - p.last_heard < self.config.peer_timeout_s]

    @property
    def stored_chunks(self) -> int:
        """Chunks in the store (including those stored before this process started)."""
        return len(self._chunks)

    def load_stored(self) -> Iterator[TransitionChunk]:
        """Chunks stored before this link was constructed, in arrival order (a corrupt file is
        logged and skipped). Chunks received later come through `poll_chunks` only."""
        for _, msg in self._chunks.iter_messages(LEARNER_MESSAGES, skip_corrupt=True, indices=self._stored_at_open):
            if isinstance(msg, TransitionChunk):
                yield msg

    def load_stored_stats(self) -> Iterator[EpisodeStats]:
        """Episode stats stored before this link was constructed."""
        for _, msg in self._stats.iter_messages(LEARNER_MESSAGES, skip_corrupt=True, indices=self._stats_at_open):
            if isinstance(msg, EpisodeStats):
                yield msg

    # -- I/O thread

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._waker.fd, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    timeout_s = min(_MAX_POLL_S, max(0.0, self._next_heartbeat - now))
                    events = dict(poller.poll(int(timeout_s * 1000)))
                    if self._waker.fd in events:
                        self._waker.drain()
                        self._take_published()
                    batch = []
                    if sock in events:
                        for _ in range(_RECV_BATCH):
                            try:
                                batch.append(sock.recv_multipart(zmq.NOBLOCK, copy=False))
                            except zmq.Again:
                                break
                    if batch:
                        self._handle_batch(batch)
                    self._timers(time.monotonic())
                except Exception:  # nothing an actor sends, and no bug, may stop the learner's link
                    log.exception("learner link: unexpected error; continuing")
                    time.sleep(0.05)
        finally:
            sock.close(linger=0)

    def _send_to(self, identity: bytes, frames: Sequence[Any]) -> bool:
        assert self._socket is not None
        try:
            self._socket.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            self._limiter.warning("hwm", "learner link: an actor's send queue is full; message dropped "
                                         "(it is resent or re-requested)")
        except zmq.ZMQError as exc:  # EHOSTUNREACH: that connection is gone (an actor stopped)
            log.debug("learner link: cannot reach an actor connection: %s", exc)
        return False

    def _reply(self, identity: bytes, msg: Any) -> bool:
        return self._send_to(identity, encode(msg, LEARNER_MESSAGES, sender=self.learner_session))

    def _drop(self, key: str, msg: str, *args: Any) -> None:
        self.dropped_messages += 1
        self._limiter.warning(key, "learner link: " + msg, *args)

    def _take_published(self) -> None:
        with self._lock:
            new, self._new_weights = self._new_weights, None
        if new is None:
            return
        self._weights = new
        now = time.monotonic()
        for peer in self._live_peers(now):
            self._send_to(peer.identity, new[1])

    def _live_peers(self, now: float) -> list[_Peer]:
        return [p for p in self._peers.values() if now - p.last_heard < self.config.peer_timeout_s]

    def _weights_version(self) -> int:
        return self._weights[0] if self._weights is not None else -1

    def _handle_batch(self, batch: list[list[Any]]) -> None:
        now = time.monotonic()
        to_store: dict[str, list[_ToStore]] = {"transition_chunk": [], "episode_stats": []}
        pending: set[tuple[str, int]] = set()
        reacks: list[tuple[bytes, tuple[str, int]]] = []
        for frames in batch:
            identity = frames[0].bytes
            body = frames[1:]
            if not body:
                self._drop("empty", "dropping an empty message")
                continue
            try:
                envelope, msg = decode(body, LEARNER_MESSAGES, LEARNER_RECV_LIMITS)
            except ProtocolError as exc:
                self._drop(exc.code, "dropping an undecodable message: %s: %s", exc.code, exc)
                if exc.code == "bad_version":
                    self._reply(identity, Refused(field="protocol_version", message=str(exc)))
                continue
            if not isinstance(msg, _ACTOR_TO_LEARNER):
                self._drop("direction", "dropping a %s from %r: not an actor-to-learner message",
                           envelope.kind, envelope.sender)
                continue
            if isinstance(msg, Hello):
                self._on_hello(identity, envelope.sender, msg, now)
                continue
            peer = self._peers.get(envelope.sender)
            if peer is None:
                self._reply(identity, HelloRequired(actor_session=envelope.sender))
                continue
            peer.identity, peer.last_heard = identity, now
            if isinstance(msg, WeightsRequest):
                with self._lock:
                    static = self._static
                resend = static is not None and msg.have_static_id != static[0]
                if resend:
                    self._send_to(identity, static[1])
                if self._weights is not None and (resend or self._weights[0] > msg.have_version):
                    self._send_to(identity, self._weights[1])
            elif isinstance(msg, (TransitionChunk, EpisodeStats)):
                if isinstance(msg, TransitionChunk):
                    problem = check_chunk(msg, peer.hello)
                    if problem is not None:
                        self._drop("shape", "refusing a chunk from %s: %s: %s", peer.session, *problem)
                        self._reply(identity, Refused(field=problem[0], message=problem[1]))
                        continue
                if not msg.actor_session or msg.seq < 1:
                    self._drop("key", "dropping a %s without a session or with seq %d < 1", envelope.kind, msg.seq)
                    continue
                key = (msg.actor_session, msg.seq)
                if key in pending or msg.seq in self._seen.get(msg.actor_session, ()):
                    self.duplicates += 1
                    reacks.append((identity, key))
                elif len(self._chunks_out) + len(pending) >= self.max_undelivered:
                    self.deferred += 1  # not acked: the actor resends it once we have room
                    self._limiter.warning("full", "learner link: %d chunks wait for the trainer; not "
                                                  "accepting more for now", len(self._chunks_out))
                else:
                    pending.add(key)
                    to_store[envelope.kind].append(_ToStore(identity, list(body), msg, key))
            # Heartbeat: last_heard is all it needs.
        for kind, items in to_store.items():
            if items:
                self._commit(kind, items)
        for identity, key in reacks:
            if key[1] in self._seen.get(key[0], ()):
                self._ack(identity, key)

    def _commit(self, kind: str, items: list[_ToStore]) -> None:
        """Group commit: store every message of the batch durably, then ack and deliver them."""
        directory = self._chunks if kind == "transition_chunk" else self._stats
        try:
            self._check_reserve(directory.path)
            directory.append_frames([item.frames for item in items], fsync=self.fsync)
        except OSError as exc:
            # Not acknowledged, so the actors keep and resend them: nothing is lost. A full disk
            # fails every batch until space is freed, hence the rate limit.
            self.store_failures += 1
            self._limiter.error("store", "learner link: cannot store %d %s message(s) in %s: %s (%s free there); "
                                "not acknowledged, so the actors keep them and resend", len(items), kind,
                                directory.path, exc, _free_space(directory.path))
            return
        with self._lock:
            out = self._chunks_out if kind == "transition_chunk" else self._stats_out
            out.extend(item.msg for item in items)
        for item in items:
            self._window_of(item.key[0]).add(item.key[1])
            self._ack(item.identity, item.key)

    def _check_reserve(self, path: Path) -> None:
        """Raise ENOSPC while the disk has less than `min_free_bytes` free (looked up at most once a
        second: statvfs on every batch would cost more than it saves)."""
        if self.min_free_bytes <= 0:
            return
        now = time.monotonic()
        if now - self._free_checked_at >= 1.0:
            self._free_bytes, self._free_checked_at = shutil.disk_usage(path).free, now
        if self._free_bytes < self.min_free_bytes:
            raise OSError(errno.ENOSPC, f"below the reserve of {self.min_free_bytes / 1e9:.2f} GB free "
                                        f"(learner.min_free_disk_gb)")

    def _ack(self, identity: bytes, key: tuple[str, int]) -> None:
        self._reply(identity, ChunkAck(seq=key[1], updates_done=self._updates_done,
                                       weights_version=self._weights_version(), actor_session=key[0]))

    def _on_hello(self, identity: bytes, sender: str, hello: Hello, now: float) -> None:
        refusal = handshake_mismatch(hello, self.expected)
        if refusal is None and (not hello.actor_session or hello.actor_session != sender):
            refusal = Refused(field="actor_session",
                              message=f"Hello names session {hello.actor_session!r} but was sent by {sender!r}")
        if refusal is not None:
            log.warning("learner link: refusing actor %s: %s: %s", sender, refusal.field, refusal.message)
            with self._lock:
                self._peers.pop(sender, None)
            self._reply(identity, refusal)
            return
        with self._lock:
            known = sender in self._peers
            self._peers[sender] = _Peer(sender, identity, hello, now)
        if not known:
            log.info("learner link: welcomed actor %s", sender)
        self._reply(identity, Welcome(learner_session=self.learner_session,
                                      weights_version=self._weights_version(), updates_done=self._updates_done))

    def _timers(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_s
            beat = encode(Heartbeat(session=self.learner_session, updates_done=self._updates_done,
                                    weights_version=self._weights_version()),
                          LEARNER_MESSAGES, sender=self.learner_session)
            for peer in self._live_peers(now):
                self._send_to(peer.identity, beat)
            # Forget sessions silent for long (an actor that comes back is asked to say Hello).
            forget_after = 10 * self.config.peer_timeout_s
            gone = [s for s, p in self._peers.items() if now - p.last_heard > forget_after]
            if gone:
                with self._lock:
                    for s in gone:
                        self._peers.pop(s, None)
