"""Helpers for the transport tests: messages, fast link configs, raw sockets, learner processes."""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.codec import PROTOCOL_VERSION, decode, encode
from hilrl.transport.learner_messages import (
    LEARNER_MESSAGES,
    EpisodeStats,
    Hello,
    ObservationSpec,
    TransitionChunk,
)
from hilrl.transport.link import ACTOR_RECV_LIMITS
from hilrl.transport.link_config import LinkConfig

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

STATE_DIM = 20
ACTION_DIM = 4
CONFIG_HASH = "test-config-hash"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stable_port() -> int:
    """A free loopback port below the kernel's ephemeral range: one that no port-0 bind and no
    outgoing connection can take while its server is down (and a client reconnecting to it can
    never connect to itself). For tests that restart a server on the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def fast_config(address: str = "tcp://127.0.0.1:0", **changes: Any) -> LinkConfig:
    """A link config with short heartbeats, so liveness changes show within a second."""
    values = dict(address=address, heartbeat_s=0.05, peer_timeout_s=0.4, max_in_flight_chunks=8,
                  max_chunks_in_memory=64)
    values.update(changes)
    return LinkConfig(**values)


def make_hello(session: str = "", cameras: dict[str, list[int]] | None = None, **changes: Any) -> Hello:
    hello = Hello(
        actor_session=session,
        protocol_version=PROTOCOL_VERSION,
        observation=ObservationSpec(state_dim=STATE_DIM, cameras=dict(cameras or {})),
        action_dim=ACTION_DIM,
        config_hash=CONFIG_HASH,
        contract={"task": "reach", "env.action.translation_scale_m": 0.02, "env.action.gripper": True},
    )
    return dataclasses.replace(hello, **changes)


def make_chunk(marker: float = 0.0, k: int = 10, cameras: dict[str, Sequence[int]] | None = None,
               state_dim: int = STATE_DIM, action_dim: int = ACTION_DIM, session: str = "", seq: int = 0,
               rng: np.random.Generator | None = None) -> TransitionChunk:
    """A chunk of `k` records whose rewards all equal `marker` (to recognise it after a trip)."""
    rng = rng or np.random.default_rng(0)
    images = {name: rng.integers(0, 256, size=(k, *shape), dtype=np.uint8) for name, shape in (cameras or {}).items()}
    has_action = np.ones(k, bool)
    return TransitionChunk(
        actor_session=session,
        seq=seq,
        obs_state=rng.standard_normal((k, state_dim)).astype(np.float32),
        action=rng.uniform(-1, 1, (k, action_dim)).astype(np.float32),
        reward=np.full(k, marker, np.float32),
        terminated=np.zeros(k, bool),
        truncated=np.zeros(k, bool),
        intervened=np.zeros(k, bool),
        gripper_switched=np.zeros(k, bool),
        has_action=has_action,
        episode_id=np.zeros(k, np.int64),
        step_index=np.arange(k, dtype=np.int32),
        policy_version=np.full(k, -1, np.int64),
        obs_images=images,
    )


def make_stats(episode_id: int = 0) -> EpisodeStats:
    return EpisodeStats(actor_session="", seq=0, episode_id=episode_id, episode_return=1.5, success=True,
                        length=10, interventions=1, intervention_steps=2, intervention_fraction=0.2,
                        period_p50_ms=100.0, period_p99_ms=103.0, policy_version=3, env_steps=10)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.005) -> bool:
    """Poll `predicate` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def stored_seqs(store_dir: Path) -> collections.Counter:
    """(actor_session, seq) -> how many stored chunk files hold it."""
    directory = ChunkDirectory(store_dir / "chunks")
    counts: collections.Counter = collections.Counter()
    for _, msg in directory.iter_messages(LEARNER_MESSAGES):
        counts[(msg.actor_session, msg.seq)] += 1
    return counts


class RawActor:
    """A bare DEALER socket to a learner link, for hand-made and malformed messages."""

    def __init__(self, endpoint: str, session: str = "raw-actor"):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.session = session

    def send_frames(self, frames: Sequence[Any]) -> None:
        self.socket.send_multipart(list(frames))

    def send(self, msg: Any, sender: str | None = None) -> None:
        self.send_frames(encode(msg, LEARNER_MESSAGES, sender=self.session if sender is None else sender))

    def recv(self, timeout_s: float = 2.0) -> Any | None:
        """Next decoded message from the learner, or None on timeout."""
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        _, msg = decode(self.socket.recv_multipart(), LEARNER_MESSAGES, ACTOR_RECV_LIMITS)
        return msg

    def recv_kind(self, cls: type, timeout_s: float = 2.0) -> Any | None:
        """Next message of type `cls` (skipping heartbeats and others), or None on timeout."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if isinstance(msg, cls):
                return msg
        return None

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> RawActor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repo_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class LearnerProcess:
    """`tests/transport/learner_proc.py` in a child process: a LearnerLink that consumes chunks.

    Its first stdout line is "ready ENDPOINT"; `endpoint` has the real port.
    """

    def __init__(self, address: str, store: Path, session: str, config: LinkConfig, timeout_s: float = 30.0,
                 extra_args: Sequence[str] = ()):
        cmd = [sys.executable, str(HERE / "learner_proc.py"), "--address", address, "--store", str(store),
               "--session", session, "--heartbeat-s", str(config.heartbeat_s),
               "--peer-timeout-s", str(config.peer_timeout_s), *extra_args]
        self.log_path = store.parent / f"{session}.log"
        store.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=repo_env(), stdout=subprocess.PIPE, stderr=self._log, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=timeout_s)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"learner process did not start; log:\n{self.log_path.read_text()}") from None
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"learner process said {line!r}; log:\n{self.log_path.read_text()}")
        self.endpoint = line.split()[1]

    def log_tail(self, n_chars: int = 6000) -> str:
        try:
            return self.log_path.read_text()[-n_chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
