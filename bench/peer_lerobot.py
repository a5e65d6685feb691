"""The peer's learner throughput on this machine: LeRobot's SAC updates per second on the same
workloads as bench/learner.py, so the two can be compared on one machine (bench only, never CI).

LeRobot pins an older torch; a virtualenv with --system-site-packages over this project's install
plus `pip install --no-deps lerobot==0.4.4 && pip install draccus diffusers deepdiff einops` runs it
beside torch 2.13 (tests/lerobot_support.py's torchvision shim is reused for the import).

One update follows LeRobot 0.4.4's own learner loop (lerobot/rl/learner.py): `utd_ratio` critic
steps, each followed by the discrete (gripper) critic's step and a target update, then one actor
step and one temperature step, a final target update, every step through `policy.forward(batch,
model=...)` with gradient clipping at its default 40 and `.item()` on the losses as its learner
logs them. Batches are synthetic (batch 256), on the device already.

Prints one JSON object:
    updates_per_s_peer_ens2 / updates_per_s_peer_ens10
        state 19 / action 7 (all continuous), utd 1, no discrete critic; 2 critics / 10 with a
        target min over 2 (num_subsample_critics)
    updates_per_s_ens2    the HIL-SERL recipe of bench/learner.py: state 16, 3 continuous dims plus
        a 3-way discrete gripper critic, utd 2, 2 critics
    each with LeRobot's default `use_torch_compile: true` (its critics compiled) and, with suffix
    `_eager`, without; plus versions and thread count.

Usage: /path/to/lerobot-venv/bin/python bench/peer_lerobot.py [--seconds 3] [--warmup 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402
from harness import calls_per_s  # noqa: E402
from lerobot_support import _import_torchvision_without_its_ops  # noqa: E402

from hilrl.policies.sac import gripper_to_index, index_to_gripper  # noqa: E402

_import_torchvision_without_its_ops()

import lerobot  # noqa: E402
from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.sac.configuration_sac import SACConfig  # noqa: E402
from lerobot.policies.sac.modeling_sac import SACPolicy  # noqa: E402

BATCH = 256


def build(state_dim: int, continuous_dim: int, discrete: bool, critics: int, subsample: int | None,
          compile_critics: bool) -> tuple[SACPolicy, dict[str, torch.optim.Optimizer]]:
    """LeRobot's SAC and its learner's optimisers (Adam per part, as make_optimizers_and_scheduler)."""
    config = SACConfig(
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(continuous_dim,))},
        num_discrete_actions=3 if discrete else None, num_critics=critics, num_subsample_critics=subsample,
        use_torch_compile=compile_critics, device="cpu",
    )
    policy = SACPolicy(config)
    params = policy.get_optim_params()
    optimizers = {
        "actor": torch.optim.Adam(params["actor"], lr=config.actor_lr),
        "critic": torch.optim.Adam(params["critic"], lr=config.critic_lr),
        "temperature": torch.optim.Adam([params["temperature"]], lr=config.critic_lr),
    }
    if discrete:
        optimizers["discrete_critic"] = torch.optim.Adam(params["discrete_critic"], lr=config.critic_lr)
    return policy, optimizers


def batch(gen: torch.Generator, state_dim: int, action_dim: int) -> dict:
    """One synthetic batch in the learner's forward_batch format (discrete action as 0/1/2)."""
    action = torch.rand(BATCH, action_dim, generator=gen) * 2 - 1
    return {
        "action": action, "reward": torch.rand(BATCH, generator=gen),
        "state": {"observation.state": torch.randn(BATCH, state_dim, generator=gen)},
        "next_state": {"observation.state": torch.randn(BATCH, state_dim, generator=gen)},
        "done": (torch.rand(BATCH, generator=gen) < 0.01).float(),
        "observation_feature": None, "next_observation_feature": None,
        "complementary_info": {"discrete_penalty": torch.zeros(BATCH)},
    }


def step(policy: SACPolicy, optimizers: dict, model: str, b: dict, loss_key: str, params) -> float:
    loss = policy.forward(b, model=model)[loss_key]
    optimizers[model].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters=params, max_norm=policy.config.grad_clip_norm).item()
    optimizers[model].step()
    return loss.item()


def one_update(policy: SACPolicy, optimizers: dict, batches: list[dict]) -> None:
    discrete = policy.config.num_discrete_actions is not None
    for b in batches:
        step(policy, optimizers, "critic", b, "loss_critic", policy.critic_ensemble.parameters())
        if discrete:
            step(policy, optimizers, "discrete_critic", b, "loss_discrete_critic", policy.discrete_critic.parameters())
        policy.update_target_networks()
    last = batches[-1]
    step(policy, optimizers, "actor", last, "loss_actor", policy.actor.parameters())
    step(policy, optimizers, "temperature", last, "loss_temperature", [policy.log_alpha])
    policy.update_target_networks()


class LeRobotAgent:
    """LeRobot's SAC behind the agent interface bench/inprocess.py's trainer drives (the one
    SACAgent has), so it trains on the same data through the same RLPD loop as ours:
    `act(obs, deterministic)`, `update(batches)` (our batch dicts; one critic step per batch,
    then the actor and temperature steps, as one_update), `set_obs_normalization(centre, scale)`.

    Inputs are normalised as LeRobot's processors do for STATE (MIN_MAX: onto [-1, 1]; the
    trainer fits it with learner.sac.normalization=min_max) before they reach the policy, which
    takes normalised tensors. Its own defaults stand except what the harness's recipe sets:
    discount, initial temperature, learning rates and the number of critics (learner.sac).
    Deterministic actions are tanh of the actor's mean (LeRobot's select_action samples).

    With a gripper (the env's last action dim), LeRobot's discrete critic over 3 actions (its
    num_discrete_actions: 3, as its HIL-SERL configs): stored gripper values become our class
    indices (hilrl.policies.sac.gripper_to_index: open 0, stay 1, close 2) in the action's last
    column, which its loss rounds to a class; each switch's penalty reaches it as
    complementary_info["discrete_penalty"] = -learner.sac.grasp_switch_penalty, which it adds to
    the reward; and the gripper action is the discrete critic's argmax, training or not (its
    select_action: no gripper exploration), mapped back by index_to_gripper.
    """

    def __init__(self, sac: Any, state_dim: int, action_dim: int, seed: int, has_gripper: bool = False):
        torch.manual_seed(seed)  # LeRobot's sampling uses torch's global generator
        self.action_dim = action_dim
        self.has_gripper = has_gripper
        self.switch_penalty = float(sac.grasp_switch_penalty)
        continuous_dim = action_dim - 1 if has_gripper else action_dim
        config = SACConfig(
            input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))},
            output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(continuous_dim,))},
            num_discrete_actions=3 if has_gripper else None, num_critics=sac.ensemble_size, num_subsample_critics=sac.ensemble_subsample,
            discount=sac.discount, temperature_init=sac.init_temperature, actor_lr=sac.actor_lr,
            critic_lr=sac.critic_lr, temperature_lr=sac.temperature_lr, use_torch_compile=False,  # eager: faster here
            device="cpu",
        )
        self.policy = SACPolicy(config)
        params = self.policy.get_optim_params()
        self.optimizers = {
            "actor": torch.optim.Adam(params["actor"], lr=config.actor_lr),
            "critic": torch.optim.Adam(params["critic"], lr=config.critic_lr),
            "temperature": torch.optim.Adam([params["temperature"]], lr=config.temperature_lr),
        }
        if has_gripper:  # its learner's discrete critic optimiser, at the critic's learning rate
            self.optimizers["discrete_critic"] = torch.optim.Adam(params["discrete_critic"], lr=config.critic_lr)
        self.centre = torch.zeros(state_dim)
        self.scale = torch.ones(state_dim)

    def set_obs_normalization(self, centre: Any, scale: Any, min_scale: float = 1e-2) -> None:
        self.centre = torch.as_tensor(centre, dtype=torch.float32)
        self.scale = torch.as_tensor(scale, dtype=torch.float32).clamp_min(min_scale)

    def _state(self, state: torch.Tensor) -> dict:
        return {"observation.state": (state - self.centre) / self.scale}

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool) -> Any:
        state = obs["state"] if isinstance(obs, dict) else obs
        state = torch.as_tensor(state, dtype=torch.float32)
        single = state.ndim == 1
        observations = self._state(state.reshape(-1, state.shape[-1]))
        actions, _, means = self.policy.actor(observations, None)
        out = torch.tanh(means) if deterministic else actions
        if self.has_gripper:
            index = self.policy.discrete_critic(observations, None).argmax(dim=-1)
            out = torch.cat([out, index_to_gripper(index).unsqueeze(-1)], dim=-1)
        out = out.numpy().astype("float32")
        return out[0] if single else out

    def _batch(self, b: dict) -> dict:
        """Our replay batch -> LeRobot's forward_batch (the gripper as a class index, its switch
        penalty as discrete_penalty)."""
        action, info = b["action"], {}
        if self.has_gripper:
            action = torch.cat([action[:, :-1], gripper_to_index(action[:, -1]).float().unsqueeze(-1)], dim=-1)
            info["discrete_penalty"] = -self.switch_penalty * b["gripper_switched"].float()
        return {"action": action, "reward": b["reward"], "done": b["terminated"].float(),
                "state": self._state(b["obs"]), "next_state": self._state(b["next_obs"]),
                "observation_feature": None, "next_observation_feature": None, "complementary_info": info}

    def update(self, batches: list[dict]) -> dict[str, float]:
        one_update(self.policy, self.optimizers, [self._batch(b) for b in batches])
        return {}


def make_agent(learner: Any, state_dim: int, action_dim: int, has_gripper: bool = False) -> LeRobotAgent:
    """bench/inprocess.py's agent factory."""
    return LeRobotAgent(learner.sac, state_dim, action_dim, learner.seed, has_gripper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    result: dict = {}
    workloads = {  # name: state, continuous dims, discrete critic, critics, subsample, utd
        "peer_ens2": (19, 7, False, 2, None, 1),
        "peer_ens10": (19, 7, False, 10, 2, 1),
        "ens2": (16, 3, True, 2, None, 2),
    }
    for compiled in (True, False):
        for name, (s, a, discrete, critics, sub, utd) in workloads.items():
            policy, optimizers = build(s, a, discrete, critics, sub, compiled)
            pool = [batch(gen, s, a + (1 if discrete else 0)) for _ in range(8)]
            if discrete:  # the discrete critic reads the gripper as a class index 0/1/2
                for b in pool:
                    b["action"][:, -1] = torch.randint(0, 3, (BATCH,), generator=gen).float()
            i = [0]

            def update(policy=policy, optimizers=optimizers, pool=pool, utd=utd, i=i) -> None:
                one_update(policy, optimizers, [pool[(i[0] + j) % len(pool)] for j in range(utd)])
                i[0] += utd

            key = f"updates_per_s_{name}" + ("" if compiled else "_eager")
            result[key] = round(calls_per_s(update, args.seconds, args.warmup), 1)
    result.update(lerobot_version=lerobot.__version__, torch_version=torch.__version__,
                  torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                  python=platform.python_version(), batch_size=BATCH, seconds_each=args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
