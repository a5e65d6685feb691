"""The actor's end of the link: `ActorLink` (a DEALER) and what only it uses.

This module owns the actor's unacknowledged messages (`_Entry`: in memory, in flight or spooled to
`spool_dir`), their credit-limited sending and resending, the handshake from the actor's side and
the weights it receives. The protocol both ends speak is described in
`hilrl.transport.link.common`, which also holds what the two ends share.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from hilrl.transport.chunkfile import ChunkDirectory, ChunkFileError
from hilrl.transport.codec import ProtocolError, decode, encode
from hilrl.transport.learner_messages import (
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
from hilrl.transport.link.common import (
    ACTOR_RECV_LIMITS,
    LEARNER_RECV_LIMITS,
    LOGGER_NAME,
    MAX_POLL_S,
    RECV_BATCH,
    LogLimiter,
    Waker,
    check_chunk,
    set_heartbeat_options,
)
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.schema import SchemaError, check_array
from hilrl.transport.security import secure_connect

log = logging.getLogger(LOGGER_NAME)

# ZeroMQ disconnects a peer whose single frame exceeds this (protects memory before the codec's
# limits apply); below it, oversized frames reach the codec and are dropped with a log line.
_ACTOR_ZMQ_MAX_FRAME = ACTOR_RECV_LIMITS.max_frame_bytes

_SPILLS_PER_TURN = 16  # disk writes per loop turn, so heartbeats keep flowing while spilling


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
    """The actor's end of the link (DEALER). See `hilrl.transport.link.common` for the protocol.

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
        self._env_steps_ahead = 0
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

        self._limiter = LogLimiter(log)
        self._spool_failing = False  # the last write-through failed: send from memory meanwhile
        self._unpersisted: collections.deque[_Entry] = collections.deque()  # in the window, not on disk yet
        self._waker = Waker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._closed = False

        # What the I/O thread does with each learner-to-actor message: handler(msg, now), with
        # `now` the monotonic time it arrived. A type not in the table is not a learner-to-actor
        # message (dropped, counted in dropped_messages).
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            Welcome: self._on_welcome,
            Refused: self._on_refused,
            ChunkAck: self._on_ack,
            StaticWeights: self._on_static_weights,
            Weights: self._on_weights,
            HelloRequired: self._on_hello_required,
            Heartbeat: self._on_heartbeat,
        }

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
            set_heartbeat_options(sock, self.config)
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
            msg = dataclasses.replace(msg, actor_session=self.session, seq=seq, robot_name=self._hello.robot_name)
            self._incoming.append(
                _Entry(session=self.session, seq=seq, kind=kind, order=self._order_base + seq - 1, msg=msg)
            )
            self._unacked += 1
        self._waker.wake()
        return seq

    def take_weights(self) -> Weights | None:
        """The newest weights received and not yet taken (arrays are read-only), else None.

        The first weights of a static part (see `hilrl.transport.link.common`) carry its tensors
        too, merged into `tensors`; later ones only what training changes."""
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
    def learner_env_steps_ahead(self) -> int:
        """Env steps, over all robots, the learner reported last as not yet trained on at its
        configured updates per env step (the lockstep throttle's signal; 0: caught up)."""
        return self._env_steps_ahead

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
                    events = dict(poller.poll(int(MAX_POLL_S * 1000)))
                    if self._waker.fd in events:
                        self._waker.drain()
                    if sock in events:
                        for _ in range(RECV_BATCH):
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
        handler = self._handlers.get(type(msg))
        if handler is None:
            self.dropped_messages += 1
            self._limiter.warning("kind", "actor link: dropping a %s (not a learner-to-actor message)", envelope.kind)
            return
        now = time.monotonic()
        self._last_heard = now
        handler(msg, now)

    def _on_welcome(self, msg: Welcome, now: float) -> None:
        new_learner = msg.learner_session != self._learner_session
        if self._welcomed and not new_learner:
            self._progress(msg.updates_done, msg.weights_version, msg.env_steps_ahead, now)
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
        self._updates_done, self._env_steps_ahead = msg.updates_done, msg.env_steps_ahead
        self._next_heartbeat = now + self.config.heartbeat_s
        self._request_weights(now, force=True)

    def _on_ack(self, msg: ChunkAck, now: float) -> None:
        entry = self._window.pop((msg.actor_session or self.session, msg.seq), None)
        if entry is not None:  # None: a second ack of a resent message
            if entry.on_disk:
                self._spool.remove(entry.order)
            with self._lock:
                self._unacked -= 1
        self._progress(msg.updates_done, msg.weights_version, msg.env_steps_ahead, now)

    def _on_heartbeat(self, msg: Heartbeat, now: float) -> None:
        if self._welcomed and msg.session == self._learner_session:
            self._progress(msg.updates_done, msg.weights_version, msg.env_steps_ahead, now)

    def _on_static_weights(self, msg: StaticWeights, now: float) -> None:
        with self._lock:
            self._static = msg

    def _on_weights(self, msg: Weights, now: float) -> None:
        if msg.static_id and (self._static is None or self._static.static_id != msg.static_id):
            # Unusable without its static part: ask for both (the request names what we hold).
            self._request_weights(now, force=True)
        elif msg.version > self._have_version:
            self._have_version = msg.version
            self._learner_weights_version = max(self._learner_weights_version, msg.version)
            with self._lock:
                self._latest_weights = msg

    def _on_hello_required(self, msg: HelloRequired, now: float) -> None:
        if self._welcomed:
            log.info("actor link: the learner does not know session %s (restarted?): handshaking again",
                     self.session)
        self._welcomed = False
        self._next_hello = 0.0

    def _on_refused(self, msg: Refused, now: float) -> None:
        if self._refused is None:
            log.error("actor link: the learner refused this actor: %s: %s", msg.field, msg.message)
        self._refused = msg

    def _progress(self, updates_done: int, weights_version: int, env_steps_ahead: int, now: float) -> None:
        self._updates_done, self._env_steps_ahead = updates_done, env_steps_ahead
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
                self._unpersisted.append(entry)
            elif spills < _SPILLS_PER_TURN:
                entry = self._tail[0]
                try:
                    self._spill(entry)
                except (OSError, ValueError) as exc:
                    # A full disk: the message stays in memory (past max_chunks_in_memory) rather
                    # than be lost, and the spill is retried on later turns.
                    self._spool_failing = True
                    self._limiter.error("spill", "actor link: cannot spill to the spool %s: %s (%d message(s) "
                                        "kept in memory past link.max_chunks_in_memory; retried; free disk space)",
                                        self._spool.path, exc, len(self._tail))
                    break
                self._tail.popleft()
                self._spooled.append(entry)
                spills += 1
            else:
                break
        self._persist()

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

    def _persist(self) -> None:
        """Write-through: put the window's in-memory messages on disk too (they stay in memory for
        sending), as one group commit (one disk flush), so an actor killed at any moment keeps them
        for the next run using this spool. A full or failing disk is logged (rate-limited) and
        retried on later turns; meanwhile the messages are sent from memory."""
        # Only what was admitted since (no scan of the whole window each loop turn); acked or
        # dropped entries that never reached the disk need no file any more.
        pending = []
        while self._unpersisted and len(pending) < _SPILLS_PER_TURN * 4:
            entry = self._unpersisted.popleft()
            if not entry.on_disk and entry.msg is not None and entry.key in self._window:
                pending.append(entry)
        if not pending:
            return
        try:
            self._spool.put_many([(e.order, e.msg, self.session, e.seq) for e in pending], LEARNER_MESSAGES)
        except (OSError, ValueError) as exc:
            self._spool_failing = True
            self._limiter.error("spool", "actor link: cannot write %d message(s) to the spool %s: %s (kept in memory "
                                "and sent; retried; free disk space so a crash cannot lose them)",
                                len(pending), self._spool.path, exc)
            self._unpersisted.extendleft(reversed(pending))  # retried first on the next turn
            return
        self._spool_failing = False
        for entry in pending:
            entry.on_disk = True

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
            elif not entry.on_disk and not self._spool_failing:
                break  # on disk first (write-through, next turn): sent means it survives a crash
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
