"""Residual RL on a frozen base policy (`learner.algorithm: residual_sac`; after ResiP, Ankile et
al. 2024: a residual trained by RL corrects a behaviour-cloned policy where precision matters).

    executed action (continuous dims)   a = clip(base(s) + scale * r, -1, 1),  r ~ pi(s)
    gripper                             the base's
    critic                              Q(s, a) on the executed action (what the buffers hold)
    actor                               L = mean_b (alpha * log pi(r|s) - mean_e Q_e(s, clip(base(s) + scale * r)))
    target                              y = reward + discount * (1 - terminated) * min Q'(s', clip(base(s') + scale * r')) ...

Everything else is SACAgent's (hilrl.policies.sac): the RLPD batches, the critic ensemble, the
temperature. The residual actor's mean head starts at zero, so its deterministic action tanh(0) is
0 and the first actions are exactly the base policy's; its exploration noise is scaled by `scale`.
The base is deterministic (tanh(mean), the grasp argmax) and never trained.

The base policy is another run's acting networks (RUN_DIR/learner/checkpoint.bin, usually a `bc`
run), built with that run's own `learner.sac` network shape: `load_base_policy`. The learner and
every actor load it, each from its own path (`learner.residual.base_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from hilrl.policies.sac import Batch, Observation, Policy, SACAgent
from hilrl.transport.checkpoint import acting_tensors, read_checkpoint
from hilrl.transport.chunkfile import ChunkFileError
from hilrl.transport.config import load_document, section
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.algorithm import ResidualConfig
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig

log = logging.getLogger(__name__)

BASE_KEY = "learner.residual.base_run"


def load_base_policy(base_run: str | Path, state_dim: int, action_dim: int, has_gripper: bool,
                     cameras: Sequence[str], device: str | torch.device = "cpu") -> Policy:
    """The frozen base policy: `base_run`'s latest checkpoint's acting networks, shaped by that
    run's saved config, for observations with `state_dim` and the policy `cameras` of this run.

    Raises:
        SchemaError (learner.residual.base_run): no such run, no checkpoint or saved config, or a
            policy that does not fit this run (state, action or gripper, or a camera this run
            does not have); the message names what differs.
    """
    saved, checkpoint_path = ResidualConfig(base_run=str(base_run)).base_files()
    doc = load_document(saved)
    base_sac: SACConfig = section(doc, "learner", LearnerConfig).sac
    base_env = section(doc, "env", EnvConfig)
    base_cameras = [c.name for c in base_env.observation.policy_cameras]
    missing = sorted(set(base_cameras) - set(cameras))
    if missing:
        raise SchemaError(BASE_KEY, f"the base policy in {base_run} reads cameras {missing} that this run does not have")
    if base_env.has_gripper != has_gripper:
        raise SchemaError(BASE_KEY, f"the base policy in {base_run} {'has a' if base_env.has_gripper else 'has no'} "
                                    f"gripper dimension and this run {'has one' if has_gripper else 'has none'}")
    try:
        checkpoint = read_checkpoint(checkpoint_path)
        policy = Policy(state_dim, action_dim, has_gripper, base_sac, device=device, cameras=base_cameras)
        policy.load_tensors(acting_tensors(checkpoint.tensors))
    except (ChunkFileError, ValueError) as exc:
        raise SchemaError(BASE_KEY, f"the base policy in {checkpoint_path} does not fit this run (state {state_dim}, "
                                    f"action {action_dim}): {exc}") from None
    log.info("base policy: %s (%d updates)", checkpoint_path, checkpoint.updates)
    return policy


def compose(base_action: np.ndarray, residual_action: np.ndarray, scale: float, continuous_dim: int) -> np.ndarray:
    """Env actions (..., action_dim): the base's, with clip(base + scale * residual, -1, 1) on the
    first `continuous_dim` dims (the gripper stays the base's)."""
    out = np.array(base_action, np.float32, copy=True)
    c = continuous_dim
    out[..., :c] = np.clip(base_action[..., :c] + scale * residual_action[..., :c], -1.0, 1.0)
    return out


class ResidualSACAgent(SACAgent):
    """SACAgent whose actor is a residual on a frozen `base` (the module docstring).

    Args (besides SACAgent's): base: the frozen base policy (load_base_policy), on this agent's
    device. scale: the residual's reach, learner.residual.scale.
    """

    def __init__(self, state_dim: int, action_dim: int, has_gripper: bool, config: SACConfig, base: Policy,
                 scale: float, device: str | torch.device = "cpu", seed: int = 0, cameras: Sequence[str] = ()):
        super().__init__(state_dim, action_dim, has_gripper, config, device, seed, cameras)
        self.base = base
        self.scale = float(scale)
        with torch.no_grad():  # the residual starts at zero: the first actions are the base's
            self.actor.mean.weight.zero_()
            self.actor.mean.bias.zero_()

    def executed(self, action: torch.Tensor, base_action: torch.Tensor | None) -> torch.Tensor:
        if base_action is None:
            raise ValueError("a residual agent's batches carry the base's actions (ResidualSACAgent.update adds them)")
        return torch.clamp(base_action + self.scale * action, -1.0, 1.0)

    def _base_continuous(self, state: torch.Tensor, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.base.action_tensor(state, images, deterministic=True)[:, : self.continuous_dim]

    def update(self, batch: Batch | Sequence[Batch]) -> dict[str, float]:
        """SACAgent.update, each batch with the base's actions for obs and next_obs added
        ("base_action", "next_base_action", (B, A), unaugmented images)."""
        k = self.config.critic_updates_per_actor_update
        batches = [batch] * k if isinstance(batch, Mapping) else list(batch)
        with_base = [{**b, "base_action": self._base_continuous(b["obs"], b.get("obs_images", {})),
                      "next_base_action": self._base_continuous(b["next_obs"], b.get("next_obs_images", {}))}
                     for b in batches]
        return super().update(with_base)

    def act(self, obs: Observation, deterministic: bool) -> np.ndarray:
        return compose(self.base.act(obs, deterministic=True), super().act(obs, deterministic), self.scale,
                       self.continuous_dim)


class ResidualPolicy:
    """The actor's side of residual_sac: a Policy for the residual (loaded from the learner's
    weights as any policy) composed with the frozen base (the module docstring)."""

    def __init__(self, residual: Policy, base: Policy, scale: float):
        self.residual = residual
        self.base = base
        self.scale = float(scale)
        self.continuous_dim = residual.action_dim - (1 if residual.has_gripper else 0)

    @property
    def static_loaded(self) -> bool:
        return self.residual.static_loaded

    def load_tensors(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.residual.load_tensors(tensors)

    def act(self, obs: Observation, deterministic: bool) -> np.ndarray:
        return compose(self.base.act(obs, deterministic=True), self.residual.act(obs, deterministic), self.scale,
                       self.continuous_dim)


def acting_policy(state_dim: int, action_dim: int, has_gripper: bool, learner: LearnerConfig, cameras: Sequence[str],
                  device: str | torch.device = "cpu", seed: int = 0) -> Policy | ResidualPolicy:
    """The policy an actor (or `hilrl eval`) runs for `learner.algorithm`: a Policy, or for
    residual_sac a ResidualPolicy on the base `learner.residual.base_run` names (SchemaError when
    it cannot be used)."""
    policy = Policy(state_dim, action_dim, has_gripper, learner.sac, device=device, seed=seed, cameras=cameras)
    if learner.algorithm != "residual_sac":
        return policy
    base = load_base_policy(learner.residual.base_run or "", state_dim, action_dim, has_gripper, cameras, device)
    return ResidualPolicy(policy, base, learner.residual.scale)
