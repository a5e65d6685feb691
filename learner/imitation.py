"""The imitation training core (`learner.algorithm: bc` or `hg_dagger`): behaviour cloning on the
demonstrations and the operator's takeovers, with the RLPD core's interface (hilrl.learner.rlpd),
so the learner process, its link, checkpoints and `--resume` are the same for every mode.

    trainer = BCTrainer(config, state_dim, action_dim, has_gripper)
    trainer.add_demo_chunk(chunk)        # demos: every k-th episode held out for validation
    loop:
        trainer.add_chunk(chunk)         # online: the takeovers go to the intervention buffer
        while trainer.may_update():
            metrics = trainer.update()

The rules:
- the data: the demo buffer (less the held-out episodes, `learner.bc.validation_fraction`) and
  the intervention buffer, sampled uniformly over their union (DAgger's aggregated dataset); the
  policy's own steps are kept in the online buffer (counted, never trained on);
- first `learner.bc.updates` updates on what there is, while lockstep actors wait
  (`env_steps_ahead` reports the updates left; the policy is not ready before);
- then bc stops training; hg_dagger goes on at `learner.updates_per_env_step` per env step
  received (0: as fast as it can), so every takeover is trained on as it arrives;
- the input normalisation is fitted from the demos (and takeovers) before the first update;
- every `validate_every_updates` the held-out demos' loss is computed (`bc_val_loss`, with the
  action MSE and, with a gripper, the gripper's cross-entropy and accuracy).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hilrl.learner.replay import ChunkLike, ReplayBuffer, concat_batches, to_torch
from hilrl.learner.rlpd import UpdateBudget, fit_normalization, load_trainer_state, trainer_state
from hilrl.policies.bc import BCAgent
from hilrl.policies.sac import resolve_device
from hilrl.transport.sections.learner import LearnerConfig

log = logging.getLogger(__name__)

VALIDATION_SAMPLES = 2048
"""Held-out transitions per validation (all of them when there are fewer), drawn once: the same
set every time, so the curve compares like with like."""


class BCTrainer:
    """See the module docstring. Args as for hilrl.learner.rlpd.RLPDTrainer."""

    def __init__(self, config: LearnerConfig, state_dim: int, action_dim: int, has_gripper: bool,
                 cameras: Mapping[str, tuple[int, int, int]] | None = None, device: str | torch.device = "auto"):
        if config.algorithm not in ("bc", "hg_dagger"):
            raise ValueError(f"BCTrainer trains bc or hg_dagger, not {config.algorithm!r}")
        c = self.config = config
        cameras = {name: tuple(shape) for name, shape in (cameras or {}).items()}
        self.device = resolve_device(device)
        self.agent = BCAgent(state_dim, action_dim, has_gripper, c.sac, c.bc, self.device, seed=c.seed,
                             cameras=list(cameras))
        self.online = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.demo = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.intervention = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.validation = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.rng = np.random.default_rng(c.seed)
        self.updates = 0
        self.env_steps = 0
        self.normalization_fitted = False  # as RLPDTrainer's
        self.last_validation: dict[str, float] = {}
        self._validation_batch: dict[str, Any] | None = None
        self.budget = UpdateBudget(c.updates_per_env_step)  # hg_dagger, after the first bc.updates

    # ------------------------------------------------------------------ data

    def add_chunk(self, chunk: ChunkLike) -> int:
        """An online chunk: every record to the online buffer, the takeovers also to the
        intervention buffer; returns its env steps."""
        self.online.add_chunk(chunk)
        self.intervention.add_chunk(chunk, select=chunk.intervened)
        steps = int(np.count_nonzero(chunk.has_action))
        self.env_steps += steps
        self.budget.add_env_steps(steps)
        return steps

    def add_demo_chunk(self, chunk: ChunkLike) -> None:
        """A demo chunk: every k-th episode (by id) to the validation buffer, the rest trained on."""
        k = self.config.bc.validation_every_episodes
        held = (np.asarray(chunk.episode_id) % k == 0) if k else np.zeros(len(chunk.episode_id), bool)
        self.demo.add_chunk(chunk, select=~held)
        if held.any():
            self.validation.add_chunk(chunk, select=held)
            self._validation_batch = None  # drawn again, over every held-out transition

    # ------------------------------------------------------------------ the budget

    @property
    def offline_done(self) -> bool:
        """The first `learner.bc.updates` updates are done."""
        return self.updates >= self.config.bc.updates

    def _data(self) -> int:
        return len(self.demo) + len(self.intervention)

    def may_update(self) -> bool:
        """Whether to do an update now (the module docstring's rules)."""
        if self._data() == 0:
            return False
        if not self.offline_done:
            return True
        if self.config.algorithm == "bc":
            return False
        if not self.budget.started:  # the ratio starts now (also at a --resume past the offline phase)
            self.budget.start(self.updates, self.env_steps)
        return self.budget.allows(self.updates)

    @property
    def training(self) -> bool:
        """Lockstep actors should follow this trainer's progress (always: it never warms up)."""
        return True

    def must_publish(self) -> bool:
        """The update just done must reach the actors now: the last offline one, which lockstep
        actors have waited for."""
        return self.updates == self.config.bc.updates

    def env_steps_ahead(self) -> int:
        """What lockstep actors wait on: the offline updates left while they run (the policy is not
        trained yet), then (hg_dagger) the env steps not yet trained on at the configured ratio."""
        if not self.offline_done and self._data() > 0:
            return self.config.bc.updates - self.updates
        return self.budget.env_steps_ahead(self.updates)

    def held_ratio(self) -> float | None:
        """hg_dagger: updates per env step since the offline phase (None before, and for bc)."""
        return self.budget.held(self.updates, self.env_steps)

    # ------------------------------------------------------------------ learning

    def _sample(self) -> dict[str, Any]:
        """batch_size transitions uniformly over demo + intervention."""
        buffers = [b for b in (self.demo, self.intervention) if len(b) > 0]
        sizes = np.array([len(b) for b in buffers], np.float64)
        counts = self.rng.multinomial(self.config.batch_size, sizes / sizes.sum())
        return concat_batches([b.sample(int(n), self.rng) for b, n in zip(buffers, counts, strict=True) if n > 0])

    def update(self) -> dict[str, float]:
        """One BC step; fits the normalisation first at the first update; every
        `validate_every_updates` also the held-out loss. Returns the metrics (the latest
        validation's included)."""
        if not self.normalization_fitted:
            fit_normalization(self.agent, self.config.sac.normalization, (self.demo, self.intervention), self.rng)
            self.normalization_fitted = True
        metrics = self.agent.update(to_torch(self._sample(), self.device))
        self.updates += 1
        if self.updates % self.config.bc.validate_every_updates == 0 or self.updates == self.config.bc.updates:
            self.validate()
        return {**metrics, **self.last_validation}

    def validate(self) -> dict[str, float]:
        """The held-out demos' loss now ({} without a validation split); kept as last_validation."""
        if len(self.validation) == 0:
            return {}
        if self._validation_batch is None:
            n = min(len(self.validation), VALIDATION_SAMPLES)
            self._validation_batch = to_torch(self.validation.sample(n, np.random.default_rng(0)), self.device)
        self.last_validation = self.agent.validation_loss(self._validation_batch)
        return self.last_validation

    # ------------------------------------------------------------------ state

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(tensors, counters) for a checkpoint, as RLPDTrainer.state."""
        return trainer_state(self.agent, self.updates, self.rng)

    def load_state(self, tensors: Mapping[str, np.ndarray], updates: int, sampler_rng: dict) -> None:
        load_trainer_state(self.agent, self.rng, tensors, sampler_rng)
        self.updates = updates
        self.normalization_fitted = updates > 0  # fitted before the first update
