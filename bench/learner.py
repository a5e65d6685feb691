"""Learner throughput: SAC updates per second, state-based.

One update = SACAgent.update: `critic_updates_per_actor_update` (2) critic steps, each with a
grasp-critic step and target updates, then one actor + temperature step; every critic step gets
its own batch of 256 (HIL-SERL's recipe). Synthetic data: state_dim 16, action_dim 4 (xyz +
gripper), 256-256 LayerNorm MLPs.

Prints one JSON object:
    updates_per_s_ens2       2 critics, batches already on the device (pure learner compute)
    updates_per_s_ens10      10 critics, target min over 2 drawn at random (SERL)
    updates_per_s_ens2_with_replay   the same as ens2 but every batch drawn from replay
                             (MixedSampler 128 online + 128 intervention, to_torch) on the way
    updates_per_s_peer_ens2 / updates_per_s_peer_ens10
                             the workload peers publish: one critic step per update, no grasp
                             critic, state 19 / action 7 (all continuous), 2 critics / 10 with a
                             target min over 2, batch 256 (issue 13's comparison with LeRobot's SAC)
    plus device, torch version, torch threads (torch's default, not changed), CPU count.
    With --compile, every figure again as `..._compiled`: `learner.sac.compile_critics: true`
    (its compile happens in the untimed warm-up).
Each figure is measured for --seconds after --warmup untimed updates. --recipe rlpd_v1 measures
learner.sac's previous defaults (hilrl.transport.sections.sac.RLPD_V1) instead of today's. The agent's own speed
settings (hilrl.policies.speed: fused Adam, freed memory kept for reuse) are always on.
On the same machine, bench/peer_lerobot.py measures LeRobot's SAC on the same workloads.

Usage: python bench/learner.py [--seconds 3] [--warmup 20] [--device auto] [--compile] [--recipe default|rlpd_v1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import calls_per_s  # noqa: E402

from hilrl.learner.replay import MixedSampler, ReplayBuffer, to_torch  # noqa: E402
from hilrl.policies.sac import SACAgent, resolve_device  # noqa: E402
from hilrl.transport.learner_messages import TransitionChunk  # noqa: E402
from hilrl.transport.sections.sac import RLPD_V1, SACConfig  # noqa: E402

STATE_DIM, ACTION_DIM, BATCH = 16, 4, 256


def random_batch(gen: torch.Generator, device: torch.device, state_dim: int = STATE_DIM,
                 action_dim: int = ACTION_DIM) -> dict[str, torch.Tensor]:
    """One synthetic batch in SACAgent.update's format, built on the CPU and moved once."""
    b = {
        "obs": torch.randn(BATCH, state_dim, generator=gen),
        "action": torch.rand(BATCH, action_dim, generator=gen) * 2 - 1,
        "reward": torch.rand(BATCH, generator=gen),
        "terminated": (torch.rand(BATCH, generator=gen) < 0.01).float(),
        "next_obs": torch.randn(BATCH, state_dim, generator=gen),
        "gripper_switched": torch.rand(BATCH, generator=gen) < 0.05,
    }
    return {k: v.to(device) for k, v in b.items()}


def filled_buffer(n: int, seed: int) -> ReplayBuffer:
    """A state-only buffer holding n transitions (episodes of 100 steps)."""
    rng = np.random.default_rng(seed)
    k = n + n // 100 + 1
    step = np.arange(k) % 101
    buffer = ReplayBuffer(k + 1, STATE_DIM, ACTION_DIM)
    buffer.add_chunk(
        TransitionChunk(
            actor_session="bench",
            seq=0,
            obs_state=rng.normal(size=(k, STATE_DIM)).astype(np.float32),
            action=rng.uniform(-1, 1, (k, ACTION_DIM)).astype(np.float32),
            reward=rng.random(k).astype(np.float32),
            terminated=np.zeros(k, bool),
            truncated=step == 99,
            intervened=np.zeros(k, bool),
            gripper_switched=rng.random(k) < 0.05,
            has_action=step < 100,
            episode_id=(np.arange(k) // 101).astype(np.int64),
            step_index=step.astype(np.int32),
            policy_version=np.zeros(k, np.int64),
        )
    )
    return buffer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also measure learner.sac.compile_critics: true")
    parser.add_argument("--recipe", choices=("default", "rlpd_v1"), default="default",
                        help="learner.sac's defaults, or its previous ones (RLPD_V1)")
    args = parser.parse_args(argv)
    result: dict = {}
    for compiled in (False, True) if args.compile else (False,):
        result.update(measure_all(args, compiled))
    print(json.dumps(result))


def measure_all(args: argparse.Namespace, compiled: bool) -> dict:
    """Every workload's updates/s, with the critics compiled or not."""
    device = resolve_device(args.device)
    recipe = dict(RLPD_V1) if args.recipe == "rlpd_v1" else {}

    def sac_config(**settings) -> SACConfig:
        """The measured recipe's SACConfig with `settings` on top."""
        return SACConfig(**{**recipe, **settings})

    gen = torch.Generator().manual_seed(0)
    pool = [random_batch(gen, device) for _ in range(16)]
    result: dict = {}
    suffix = "_compiled" if compiled else ""

    for name, config in (
        ("ens2", sac_config(compile_critics=compiled)),
        ("ens10", sac_config(ensemble_size=10, ensemble_subsample=2, compile_critics=compiled)),
    ):
        torch._dynamo.reset()  # each agent compiles afresh (dynamo's recompile limit is per function)
        agent = SACAgent(STATE_DIM, ACTION_DIM, True, config, device=device, seed=0)
        k, i = config.critic_updates_per_actor_update, [0]

        def update(agent=agent, k=k, i=i) -> None:
            agent.update([pool[(i[0] + j) % len(pool)] for j in range(k)])
            i[0] += k

        result[f"updates_per_s_{name}{suffix}"] = round(calls_per_s(update, args.seconds, args.warmup), 1)

    peer_pool = [random_batch(gen, device, 19, 7) for _ in range(16)]
    for name, config in (
        ("peer_ens2", sac_config(critic_updates_per_actor_update=1, compile_critics=compiled)),
        ("peer_ens10", sac_config(critic_updates_per_actor_update=1, ensemble_size=10, ensemble_subsample=2,
                                 compile_critics=compiled)),
    ):
        torch._dynamo.reset()
        agent = SACAgent(19, 7, False, config, device=device, seed=0)

        def peer_update(agent=agent, i=[0]) -> None:  # noqa: B006 (a counter shared by the calls)
            agent.update([peer_pool[i[0] % len(peer_pool)]])
            i[0] += 1

        result[f"updates_per_s_{name}{suffix}"] = round(calls_per_s(peer_update, args.seconds, args.warmup), 1)

    online, intervention = filled_buffer(100_000, 1), filled_buffer(10_000, 2)
    sampler = MixedSampler(online, [intervention], online_fraction=0.5, batch_size=BATCH)
    rng = np.random.default_rng(0)
    config = sac_config(compile_critics=compiled)
    torch._dynamo.reset()
    agent = SACAgent(STATE_DIM, ACTION_DIM, True, config, device=device, seed=0)

    def update_from_replay() -> None:
        agent.update([to_torch(sampler.sample(rng), device) for _ in range(config.critic_updates_per_actor_update)])

    result[f"updates_per_s_ens2_with_replay{suffix}"] = round(calls_per_s(update_from_replay, args.seconds, args.warmup), 1)
    result.update(
        critic_steps_per_update=config.critic_updates_per_actor_update,
        batch_size=BATCH,
        state_dim=STATE_DIM,
        action_dim=ACTION_DIM,
        hidden_dims=config.hidden_dims,
        device=str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})",
        torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        seconds_each=args.seconds,
        recipe=args.recipe,
    )
    return result


if __name__ == "__main__":
    main()
