"""The learner's end of the link: `LearnerLink` (a ROUTER) and what only it uses.

This module owns the handshake check (`handshake_mismatch`), the durable store of received chunks
and episode stats (group commit, then ack), the dedupe table (`SeqWindow` per actor session), the
welcomed actors (`_Peer`) and weights delivery (`static_weights_id`, pushes and requests). The
protocol both ends speak is described in `hilrl.transport.link.common`, which also holds what the
two ends share.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from hilrl.transport.chunkfile import ChunkDirectory, ChunkFileError
from hilrl.transport.codec import Envelope, ProtocolError, decode, encode
from hilrl.transport.contract import contract_differences
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
    LEARNER_RECV_LIMITS,
    LOGGER_NAME,
    MAX_POLL_S,
    RECV_BATCH,
    AddressInUseError,
    LogLimiter,
    Waker,
    check_chunk,
    set_heartbeat_options,
)
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.security import secure_bind

log = logging.getLogger(LOGGER_NAME)

# ZeroMQ disconnects a peer whose single frame exceeds this (protects memory before the codec's
# limits apply); below it, oversized frames reach the codec and are dropped with a log line.
_LEARNER_ZMQ_MAX_FRAME = 2 * LEARNER_RECV_LIMITS.max_frame_bytes


def _free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 1e9:.2f} GB"
    except OSError:
        return "unknown space"



def static_weights_id(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def handshake_mismatch(hello: Hello, expected: Hello) -> Refused | None:
    """The learner's handshake check: the first differing field, in the documented order; for the
    learning contract, every differing key with both values (hilrl.transport.contract)."""
    checks = (
        ("protocol_version", hello.protocol_version, expected.protocol_version),
        ("observation.state_dim", hello.observation.state_dim, expected.observation.state_dim),
        ("observation.cameras",
         {k: list(v) for k, v in hello.observation.cameras.items()},
         {k: list(v) for k, v in expected.observation.cameras.items()}),
        ("action_dim", hello.action_dim, expected.action_dim),
    )
    for name, actor_value, learner_value in checks:
        if actor_value != learner_value:
            return Refused(
                field=name,
                message=f"{name} mismatch: the actor has {actor_value!r}, the learner expects {learner_value!r}",
            )
    if hello.config_hash != expected.config_hash:
        differences = contract_differences(hello.contract, expected.contract)
        if not differences:  # equal contracts under different hashes: a peer that sent none
            differences = [f"config_hash: learner {expected.config_hash!r}, actor {hello.config_hash!r}"]
        return Refused(
            field="contract",
            message=(
                "the learning contract differs: " + "; ".join(differences)
                + " (these keys must agree between the learner and every actor; per-robot settings "
                "such as addresses, serials, seeds, the robot name and the dashboard may differ)"
            ),
        )
    return None



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


@dataclass
class _Inbound:
    """One received message's routing: the actor connection's ROUTER identity, the decoded
    envelope, the codec frames (stored as they came) and the monotonic time of its loop turn."""

    identity: bytes
    envelope: Envelope
    body: list
    now: float


@dataclass
class _Turn:
    """What one loop turn's messages leave for after they are all handled: the new chunks and
    stats to store (one group commit per kind, keyed by codec kind), their keys, and the
    duplicates to ack again once stored."""

    to_store: dict[str, list[_ToStore]] = field(
        default_factory=lambda: {"transition_chunk": [], "episode_stats": []})
    pending: set[tuple[str, int]] = field(default_factory=set)
    reacks: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)


class LearnerLink:
    """The learner's end of the link (ROUTER). See `hilrl.transport.link.common` for the protocol.

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
        self._env_steps_ahead = 0
        self._count_undelivered = False
        self._undelivered_steps = 0  # env steps in _chunks_out (guarded by _lock)
        self._delivered = threading.Event()  # set while chunks or stats wait for the trainer
        self._push_progress = False
        self._peers: dict[str, _Peer] = {}

        # Owned by the I/O thread.
        self._weights: tuple[int, list] | None = None
        self._next_heartbeat = 0.0
        self.dropped_messages = 0
        self.duplicates = 0
        self.deferred = 0
        self.store_failures = 0  # batches the store refused (disk full, I/O error), not acked

        self._limiter = LogLimiter(log)
        self._waker = Waker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._auth: Any = None
        self._endpoint: str | None = None
        self._closed = False

        # What the I/O thread does with each actor-to-learner message: handler(msg, inbound, turn)
        # (`_Inbound`: who sent it and when; `_Turn`: this loop turn's group commit). A type not
        # in the table is not an actor-to-learner message (dropped, counted in dropped_messages).
        # Every handler but Hello's first needs the sender's session welcomed (`_welcomed_peer`).
        self._handlers: dict[type, Callable[[Any, _Inbound, _Turn], None]] = {
            Hello: self._on_hello,
            TransitionChunk: self._on_chunk,
            EpisodeStats: self._on_stats,
            WeightsRequest: self._on_weights_request,
            Heartbeat: self._on_heartbeat,
        }

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
            CurveKeyError: missing key files. AddressInUseError: another process listens there.
            zmq.ZMQError: the bind failed otherwise.
        """
        if self._thread is not None:
            raise RuntimeError("LearnerLink already started")
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        try:
            set_heartbeat_options(sock, self.config)
            # Errors instead of silent drops when a peer is gone or its queue is full: logged.
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, _LEARNER_ZMQ_MAX_FRAME)
            try:
                self._auth = secure_bind(sock, self.config.address, self.config.curve)
            except zmq.ZMQError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUseError(
                        f"link.address {self.config.address} is in use: another learner (or another program) "
                        "listens there. Stop it, or give this learner another port "
                        "(link.address=tcp://127.0.0.1:PORT, and the same on its actors)"
                    ) from None
                raise
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
            taken = [self._chunks_out.popleft() for _ in range(n)]
            self._undelivered_steps -= sum(int(np.count_nonzero(c.has_action)) for c in taken)
            if not self._chunks_out and not self._stats_out:
                self._delivered.clear()
            return taken

    def poll_stats(self) -> list[EpisodeStats]:
        """Episode stats received since the last call."""
        with self._lock:
            out = list(self._stats_out)
            self._stats_out.clear()
            if not self._chunks_out:
                self._delivered.clear()
            return out

    def wait_for_data(self, timeout_s: float) -> bool:
        """Block until chunks or stats wait for `poll_chunks` / `poll_stats`, at most `timeout_s`
        (an idle trainer sleeps here instead of polling). Returns whether any do."""
        return self._delivered.wait(timeout_s)

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

    def set_progress(self, updates_done: int, env_steps_ahead: int = 0, count_undelivered: bool = False) -> None:
        """Gradient updates so far, and the env steps not yet trained on at the configured updates
        per env step (both reported to actors in heartbeats, acks and welcomes). With
        `count_undelivered` (the trainer holds a ratio), the env steps in chunks stored but not yet
        taken by `poll_chunks` are added to what is reported: a trainer busy in one long update
        must not look caught up to the actors while chunks pile up behind it."""
        self._updates_done, self._env_steps_ahead = int(updates_done), max(0, int(env_steps_ahead))
        self._count_undelivered = bool(count_undelivered)

    def _reported_ahead(self) -> int:
        return self._env_steps_ahead + (self._undelivered_steps if self._count_undelivered else 0)

    def push_progress(self) -> None:
        """Send the progress to every live actor now, not at the next heartbeat: the trainer calls
        it when it has caught up, so lockstep actors waiting on it step on at once."""
        self._push_progress = True
        self._waker.wake()

    def robots_last_heard(self) -> dict[str, float]:
        """Seconds since each welcomed actor was last heard from, by robot name (its session when
        it gave none), for actors heard from within 10 peer timeouts."""
        now = time.monotonic()
        with self._lock:
            out: dict[str, float] = {}
            for session, peer in self._peers.items():
                name = peer.hello.robot_name or session
                out[name] = min(out.get(name, float("inf")), now - peer.last_heard)
            return out

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
                    timeout_s = min(MAX_POLL_S, max(0.0, self._next_heartbeat - now))
                    events = dict(poller.poll(int(timeout_s * 1000)))
                    if self._waker.fd in events:
                        self._waker.drain()
                        self._take_published()
                        if self._push_progress:
                            self._push_progress = False
                            self._send_heartbeats(now)
                    batch = []
                    if sock in events:
                        for _ in range(RECV_BATCH):
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
        turn = _Turn()
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
            handler = self._handlers.get(type(msg))
            if handler is None:
                self._drop("direction", "dropping a %s from %r: not an actor-to-learner message",
                           envelope.kind, envelope.sender)
                continue
            handler(msg, _Inbound(identity, envelope, body, now), turn)
        for kind, items in turn.to_store.items():
            if items:
                self._commit(kind, items)
        for identity, key in turn.reacks:
            if key[1] in self._seen.get(key[0], ()):
                self._ack(identity, key)

    def _welcomed_peer(self, inbound: _Inbound) -> _Peer | None:
        """The sender's session if it was welcomed (noting where and when we heard from it); else
        None, after answering HelloRequired."""
        peer = self._peers.get(inbound.envelope.sender)
        if peer is None:
            self._reply(inbound.identity, HelloRequired(actor_session=inbound.envelope.sender))
            return None
        peer.identity, peer.last_heard = inbound.identity, inbound.now
        return peer

    def _on_heartbeat(self, msg: Heartbeat, inbound: _Inbound, turn: _Turn) -> None:
        self._welcomed_peer(inbound)  # last_heard is all it needs

    def _on_weights_request(self, msg: WeightsRequest, inbound: _Inbound, turn: _Turn) -> None:
        if self._welcomed_peer(inbound) is None:
            return
        identity = inbound.identity
        with self._lock:
            static = self._static
        resend = static is not None and msg.have_static_id != static[0]
        if resend:
            self._send_to(identity, static[1])
        if self._weights is not None and (resend or self._weights[0] > msg.have_version):
            self._send_to(identity, self._weights[1])

    def _on_chunk(self, msg: TransitionChunk, inbound: _Inbound, turn: _Turn) -> None:
        peer = self._welcomed_peer(inbound)
        if peer is None:
            return
        problem = check_chunk(msg, peer.hello)
        if problem is not None:
            self._drop("shape", "refusing a chunk from %s: %s: %s", peer.session, *problem)
            self._reply(inbound.identity, Refused(field=problem[0], message=problem[1]))
            return
        self._receive_stored(msg, inbound, turn)

    def _on_stats(self, msg: EpisodeStats, inbound: _Inbound, turn: _Turn) -> None:
        if self._welcomed_peer(inbound) is not None:
            self._receive_stored(msg, inbound, turn)

    def _receive_stored(self, msg: TransitionChunk | EpisodeStats, inbound: _Inbound, turn: _Turn) -> None:
        """A chunk or stats message: a duplicate is acked again (after this turn's commit), a new one
        queued for this turn's group commit, unless the trainer is too far behind (not acked)."""
        if not msg.actor_session or msg.seq < 1:
            self._drop("key", "dropping a %s without a session or with seq %d < 1", inbound.envelope.kind, msg.seq)
            return
        key = (msg.actor_session, msg.seq)
        if key in turn.pending or msg.seq in self._seen.get(msg.actor_session, ()):
            self.duplicates += 1
            turn.reacks.append((inbound.identity, key))
        elif len(self._chunks_out) + len(turn.pending) >= self.max_undelivered:
            self.deferred += 1  # not acked: the actor resends it once we have room
            self._limiter.warning("full", "learner link: %d chunks wait for the trainer; not "
                                          "accepting more for now", len(self._chunks_out))
        else:
            turn.pending.add(key)
            turn.to_store[inbound.envelope.kind].append(_ToStore(inbound.identity, list(inbound.body), msg, key))

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
            if kind == "transition_chunk":
                self._undelivered_steps += sum(int(np.count_nonzero(item.msg.has_action)) for item in items)
            self._delivered.set()
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
                                       weights_version=self._weights_version(), actor_session=key[0],
                                       env_steps_ahead=self._reported_ahead()))

    def _on_hello(self, hello: Hello, inbound: _Inbound, turn: _Turn) -> None:
        """Welcome or refuse; the one message a session needs no welcome for."""
        identity, sender, now = inbound.identity, inbound.envelope.sender, inbound.now
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
        self._reply(identity, Welcome(learner_session=self.learner_session, weights_version=self._weights_version(),
                                      updates_done=self._updates_done, env_steps_ahead=self._reported_ahead()))

    def _send_heartbeats(self, now: float) -> None:
        self._next_heartbeat = now + self.config.heartbeat_s
        beat = encode(Heartbeat(session=self.learner_session, updates_done=self._updates_done,
                                weights_version=self._weights_version(), env_steps_ahead=self._reported_ahead()),
                      LEARNER_MESSAGES, sender=self.learner_session)
        for peer in self._live_peers(now):
            self._send_to(peer.identity, beat)

    def _timers(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._send_heartbeats(now)
            # Forget sessions silent for long (an actor that comes back is asked to say Hello).
            forget_after = 10 * self.config.peer_timeout_s
            gone = [s for s, p in self._peers.items() if now - p.last_heard > forget_after]
            if gone:
                with self._lock:
                    for s in gone:
                        self._peers.pop(s, None)
