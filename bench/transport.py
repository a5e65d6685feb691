"""Actor -> learner link throughput and learner -> actor weights latency, over loopback TCP.

Prints one JSON object:
    transitions_per_s_state    acked transitions/s, 10-record chunks, state dim 20, no images
    transitions_per_s_images   the same with two 128x128x3 uint8 cameras per record
    mb_per_s_images            payload megabytes (1e6 bytes) per second in the image run
    store_fsync, group_commit  how the learner stored chunks before acking (durable: fsync per
                               batch of up to 64 messages, one folder fsync per batch)
    weights_latency_p50_ms / weights_latency_p99_ms
                               publish_weights of a 2x256 MLP (state 20 -> 256 -> 256 -> 2x4 head,
                               about 300 KB float32) until the actor's take_weights returns it
Targets: transitions_per_s_images >= 2000; weights_latency_p99_ms <= 20.

The learner runs in a child process (this script with --serve-learner), as it would on its own
machine; the actor link runs here. Chunks are acked only after the learner's durable write.

Usage: python bench/transport.py [--seconds 3] [--weights-n 300] [--no-fsync]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hilrl.transport.codec import PROTOCOL_VERSION  # noqa: E402
from hilrl.transport.learner_messages import Hello, ObservationSpec, TransitionChunk  # noqa: E402
from hilrl.transport.link import ActorLink, LearnerLink  # noqa: E402
from hilrl.transport.link_config import LinkConfig  # noqa: E402

STATE_DIM, ACTION_DIM, RECORDS = 20, 4, 10
IMAGE_SHAPE = (128, 128, 3)


def _hello(cameras: int, session: str = "") -> Hello:
    return Hello(actor_session=session, protocol_version=PROTOCOL_VERSION,
                 observation=ObservationSpec(STATE_DIM, {f"cam{i}": list(IMAGE_SHAPE) for i in range(cameras)}),
                 action_dim=ACTION_DIM, config_hash="bench")


def _chunk(cameras: int, rng: np.random.Generator) -> TransitionChunk:
    k = RECORDS
    return TransitionChunk(
        actor_session="", seq=0,
        obs_state=rng.standard_normal((k, STATE_DIM)).astype(np.float32),
        action=rng.uniform(-1, 1, (k, ACTION_DIM)).astype(np.float32),
        reward=np.zeros(k, np.float32), terminated=np.zeros(k, bool), truncated=np.zeros(k, bool),
        intervened=np.zeros(k, bool), gripper_switched=np.zeros(k, bool), has_action=np.ones(k, bool),
        episode_id=np.zeros(k, np.int64), step_index=np.arange(k, dtype=np.int32),
        policy_version=np.zeros(k, np.int64),
        obs_images={f"cam{i}": rng.integers(0, 256, (k, *IMAGE_SHAPE), dtype=np.uint8) for i in range(cameras)},
    )


def _payload_bytes(chunk: TransitionChunk) -> int:
    arrays = [getattr(chunk, f.name) for f in dataclasses.fields(chunk) if isinstance(getattr(chunk, f.name), np.ndarray)]
    return sum(a.nbytes for a in arrays) + sum(a.nbytes for a in chunk.obs_images.values())


# ---------------------------------------------------------------------------------- learner child


def serve_learner(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link = LearnerLink(LinkConfig(address=args.address), _hello(args.cameras), Path(args.store), "bench-learner",
                       fsync=not args.no_fsync)
    link.start()
    print(f"ready {link.endpoint}", flush=True)
    try:
        while not stop.wait(0.001):
            link.poll_chunks()  # the trainer's side: take them (and drop them here)
    finally:
        link.close()
    return 0


def _start_learner(cameras: int, store: Path, no_fsync: bool) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-learner", "--address", "tcp://127.0.0.1:0",
           "--store", str(store), "--cameras", str(cameras)] + (["--no-fsync"] if no_fsync else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise RuntimeError("learner child did not start") from None
    return proc, line.split()[1]


# ---------------------------------------------------------------------------------- measurements


def throughput(cameras: int, seconds: float, work: Path, no_fsync: bool) -> dict[str, float]:
    """Acked transitions/s (and payload MB/s) for `seconds` of streaming, actor here, learner child."""
    store = work / f"store-{cameras}"
    proc, endpoint = _start_learner(cameras, store, no_fsync)
    actor = ActorLink(LinkConfig(address=endpoint), _hello(cameras, f"bench-actor-{cameras}"), work / f"spool-{cameras}")
    rng = np.random.default_rng(0)
    pool = [_chunk(cameras, rng) for _ in range(8)]
    try:
        actor.start()
        deadline = time.monotonic() + 30
        while not actor.learner_alive:
            if time.monotonic() > deadline:
                raise RuntimeError("actor was never welcomed")
            time.sleep(0.01)
        # Stay inside the in-memory window (no spilling): the measurement is the wire and the store.
        window = actor.config.max_chunks_in_memory // 2
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            if actor.unacked >= window:
                time.sleep(0.0005)
                continue
            actor.send_chunk(pool[sent % len(pool)])
            sent += 1
        while actor.unacked:
            time.sleep(0.0005)
        elapsed = time.perf_counter() - started
    finally:
        actor.close(flush_timeout_s=0)
        proc.terminate()
        proc.wait(30)
    return {
        "transitions_per_s": sent * RECORDS / elapsed,
        "mb_per_s": sent * _payload_bytes(pool[0]) / elapsed / 1e6,
        "chunks": sent,
    }


def mlp_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A state policy's actor: 20 -> 256 -> 256 -> mean/log_std (2 x 4), with LayerNorms."""
    shapes = {"l0.weight": (256, STATE_DIM), "l0.bias": (256,), "ln0.weight": (256,), "ln0.bias": (256,),
              "l1.weight": (256, 256), "l1.bias": (256,), "ln1.weight": (256,), "ln1.bias": (256,),
              "head.weight": (2 * ACTION_DIM, 256), "head.bias": (2 * ACTION_DIM,)}
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def weights_latency(n: int, work: Path) -> dict[str, float]:
    """publish_weights -> take_weights latency (ms), learner and actor links in this process."""
    rng = np.random.default_rng(1)
    tensors = mlp_tensors(rng)
    learner = LearnerLink(LinkConfig(address="tcp://127.0.0.1:0"), _hello(0), work / "store-weights", "bench-w")
    learner.start()
    actor = ActorLink(LinkConfig(address=learner.endpoint), _hello(0, "bench-w-actor"), work / "spool-weights")
    actor.start()
    latencies = []
    try:
        while not actor.learner_alive:
            time.sleep(0.01)
        for version in range(n + 10):
            started = time.perf_counter()
            learner.publish_weights(version, tensors)
            while True:
                weights = actor.take_weights()
                if weights is not None and weights.version == version:
                    break
                time.sleep(0.0001)  # an actor polls once per control tick; this is far finer
            if version >= 10:  # warm-up
                latencies.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.002)
    finally:
        actor.close(flush_timeout_s=0)
        learner.close()
    return {
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "bytes": sum(t.nbytes for t in tensors.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="streaming time per throughput run")
    parser.add_argument("--weights-n", type=int, default=300, help="timed weight publications")
    parser.add_argument("--no-fsync", action="store_true", help="learner stores without fsync (not durable)")
    parser.add_argument("--serve-learner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_learner:
        return serve_learner(args)

    with tempfile.TemporaryDirectory(prefix="hilrl-bench-transport-") as tmp:
        work = Path(tmp)
        state = throughput(0, args.seconds, work, args.no_fsync)
        images = throughput(2, args.seconds, work, args.no_fsync)
        weights = weights_latency(args.weights_n, work)
    print(json.dumps({
        "transitions_per_s_state": round(state["transitions_per_s"]),
        "transitions_per_s_images": round(images["transitions_per_s"]),
        "mb_per_s_images": round(images["mb_per_s"], 1),
        "store_fsync": not args.no_fsync,
        "group_commit": True,
        "records_per_chunk": RECORDS,
        "image_chunk_mb": round(_payload_bytes(_chunk(2, np.random.default_rng(0))) / 1e6, 3),
        "weights_latency_p50_ms": round(weights["p50"], 3),
        "weights_latency_p99_ms": round(weights["p99"], 3),
        "weights_kb": round(weights["bytes"] / 1e3, 1),
        "targets": {"transitions_per_s_images": 2000, "weights_latency_p99_ms": 20},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
