"""Vision benchmark: the image path's cost on this machine, actor side and learner side.

Two 128x128 cameras plus a 14-dim state, 4-dim action with gripper, as on the robot. Random
weights throughout (cost does not depend on their values).

Prints ONE JSON object:
    actor_act_ms_small / actor_act_ms_resnet10
        Policy.act on one observation (uint8 frames -> encoder -> actor and grasp critic ->
        action), deterministic, torch threads = 1 (the actor's setting). Target <= 20 ms.
    encoder_ms_small / encoder_ms_resnet10
        the encoders alone on the same observation (1 thread).
    learner_updates_per_s_small / learner_updates_per_s_resnet10_frozen
        SACAgent.update with batch --batch-size, --critic-steps critic steps per update (fresh
        batch each), DrQ shift on; the small encoder trains, ResNet-10's backbone is frozen (its
        feature maps computed once per batch). torch's default thread count, on --device.
    sample_ms_batch256
        MixedSampler batch of 256 (half online, half demo) from real ReplayBuffers of two
        128x128 cameras, plus to_torch (the learner's whole data step).
    bytes_per_transition, bytes_per_obs, bytes_ratio
        a real ReplayBuffer filled with 100-step episodes through add_chunk: its array bytes per
        valid transition, against one observation's images + state. Target ratio <= 1.05.
    random_shift_ms_batch256
        DrQ shift (pad 4) of one camera's 256 x 128 x 128 x 3 uint8 batch (1 thread).
    targets, meets_targets, and the machine (torch version, threads, CPUs, load average at the end:
        other work on the machine inflates every figure).
Latencies are medians over --runs timed calls after warm-up calls.

Usage: python bench/vision.py [--runs 30] [--updates 3] [--batch-size 256] [--critic-steps 2]
       [--device auto]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hilrl.learner.replay import MixedSampler, ReplayBuffer, to_torch  # noqa: E402
from hilrl.policies.encoders import random_shift  # noqa: E402
from hilrl.policies.sac import Policy, SACAgent, resolve_device  # noqa: E402
from hilrl.transport.learner_messages import TransitionChunk  # noqa: E402
from hilrl.transport.sections.sac import EncoderConfig, SACConfig  # noqa: E402

CAMERAS = ("front", "wrist")
SIZE = 128
STATE_DIM = 14
ACTION_DIM = 4
ACT_TARGET_MS = 20.0
BYTES_TARGET_RATIO = 1.05


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds over `runs` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000.0, 3)


def sac_config(kind: str) -> SACConfig:
    return SACConfig(encoder=EncoderConfig(kind=kind, image_size=SIZE))


def observation(rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {"state": rng.normal(size=STATE_DIM).astype(np.float32)}
    obs.update({c: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in CAMERAS})
    return obs


def episode_chunks(episodes: int, length: int, rng: np.random.Generator, chunk: int = 10) -> list[TransitionChunk]:
    """Episodes of `length` transitions (length + 1 records: the final observation has no
    action), cut into chunks of `chunk` records as an actor sends them."""
    out = []
    for episode in range(episodes):
        k_total = length + 1
        for start in range(0, k_total, chunk):
            steps = np.arange(start, min(start + chunk, k_total))
            k = len(steps)
            has_action = steps < length
            out.append(TransitionChunk(
                actor_session="bench", seq=len(out) + 1,
                obs_state=rng.normal(size=(k, STATE_DIM)).astype(np.float32),
                obs_images={c: rng.integers(0, 256, (k, SIZE, SIZE, 3), dtype=np.uint8) for c in CAMERAS},
                action=np.where(has_action[:, None], rng.uniform(-1, 1, (k, ACTION_DIM)), 0).astype(np.float32),
                reward=np.zeros(k, np.float32), terminated=steps == length, truncated=np.zeros(k, bool),
                intervened=np.zeros(k, bool), gripper_switched=np.zeros(k, bool), has_action=has_action,
                episode_id=np.full(k, episode, np.int64), step_index=steps.astype(np.int32),
                policy_version=np.zeros(k, np.int64),
            ))
    return out


def filled_buffer(capacity: int, episodes: int, rng: np.random.Generator) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM, {c: (SIZE, SIZE, 3) for c in CAMERAS})
    for c in episode_chunks(episodes, 100, rng):
        buffer.add_chunk(c)
    return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--updates", type=int, default=3, help="timed learner updates per encoder")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--critic-steps", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.getLogger("hilrl.policies.encoders").setLevel(logging.ERROR)  # random weights on purpose
    rng = np.random.default_rng(0)
    default_threads = torch.get_num_threads()
    device = resolve_device(args.device)
    result: dict[str, object] = {}

    # ---- actor side: one observation, 1 thread
    torch.set_num_threads(1)
    obs = observation(rng)
    for kind in ("small", "resnet10"):
        agent = SACAgent(STATE_DIM, ACTION_DIM, True, sac_config(kind), cameras=CAMERAS)
        policy = Policy(STATE_DIM, ACTION_DIM, True, sac_config(kind), cameras=CAMERAS)
        policy.load_tensors({**agent.static_actor_tensors(), **agent.actor_tensors()})
        result[f"actor_act_ms_{kind}"] = median_ms(lambda p=policy: p.act(obs, deterministic=True), args.runs)
        images = {c: torch.from_numpy(obs[c][None]) for c in CAMERAS}
        with torch.inference_mode():
            result[f"encoder_ms_{kind}"] = median_ms(lambda e=policy.encoder, i=images: e(i), args.runs)
    batch_images = torch.from_numpy(rng.integers(0, 256, (256, SIZE, SIZE, 3), dtype=np.uint8))
    result["random_shift_ms_batch256"] = median_ms(lambda: random_shift(batch_images, 4, channels_last=True), 10)

    # ---- replay: bytes per transition and sampling
    bytes_per_obs = len(CAMERAS) * SIZE * SIZE * 3 + 4 * STATE_DIM
    online = filled_buffer(2000, 25, rng)  # wraps: 25 x 101 records into 2000 slots
    demo = filled_buffer(1000, 8, rng)
    result["bytes_per_transition"] = round(online.nbytes / len(online), 1)
    result["bytes_per_obs"] = bytes_per_obs
    result["bytes_ratio"] = round(result["bytes_per_transition"] / bytes_per_obs, 4)
    sampler = MixedSampler(online, [demo], 0.5, 256)
    result["sample_ms_batch256"] = median_ms(lambda: to_torch(sampler.sample(rng), device), args.runs)

    # ---- learner side: updates per second, torch's default threads
    torch.set_num_threads(default_threads)
    sampler = MixedSampler(online, [demo], 0.5, args.batch_size)
    batches = [to_torch(sampler.sample(rng), device) for _ in range(args.critic_steps)]
    for kind, name in (("small", "small"), ("resnet10", "resnet10_frozen")):
        config = SACConfig(critic_updates_per_actor_update=args.critic_steps, encoder=EncoderConfig(kind=kind, image_size=SIZE))
        agent = SACAgent(STATE_DIM, ACTION_DIM, True, config, device=device, cameras=CAMERAS)
        ms = median_ms(lambda a=agent: a.update(batches), args.updates, warmup=1)
        result[f"learner_updates_per_s_{name}"] = round(1000.0 / ms, 3)

    result.update(
        targets={"actor_act_ms": ACT_TARGET_MS, "bytes_ratio": BYTES_TARGET_RATIO},
        meets_targets=max(result["actor_act_ms_small"], result["actor_act_ms_resnet10"]) <= ACT_TARGET_MS
        and result["bytes_ratio"] <= BYTES_TARGET_RATIO,
        cameras=len(CAMERAS), image_size=SIZE, batch_size=args.batch_size, critic_steps=args.critic_steps,
        device=str(device), runs=args.runs, updates=args.updates, torch=torch.__version__,
        torch_threads_default=default_threads, cpu_count=os.cpu_count(),
        load_average_1min=round(os.getloadavg()[0], 2), machine=platform.machine(),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
