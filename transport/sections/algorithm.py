"""How the learner teaches (`learner.algorithm`) and the settings of each way: the `learner.bc:`,
`learner.rlif:` and `learner.residual:` subsections, and the warm start (`learner.init_from`).

    algorithm     what trains                              on what                     the robot runs
    sac           RLPD-style SAC (policies/sac.py)         online + demo + takeovers   the stochastic policy
    bc            behaviour cloning (policies/bc.py)       demos (+ takeovers)         the BC policy, deterministic
    hg_dagger     BC, retrained as takeovers come in       demos + every takeover      the BC policy, deterministic;
                                                                                       the operator takes over
    rlif          SAC, reward = the intervention signal    as sac                      as sac
                  (minus `penalty` on the policy step the
                  operator took over from), optionally
                  plus the task reward
    residual_sac  SAC on a residual over a frozen base     as sac                      base(s) + scale * residual(s),
                  policy (a bc run's checkpoint)                                       clipped to [-1, 1]

Every mode publishes the same acting networks (hilrl.transport.checkpoint.ACTING_NETWORKS), so
the actor, `hilrl eval` and the dashboard need nothing per mode besides these settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError

Algorithm = Literal["sac", "bc", "hg_dagger", "rlif", "residual_sac"]
ALGORITHMS: tuple[str, ...] = ("sac", "bc", "hg_dagger", "rlif", "residual_sac")

IMITATION: tuple[str, ...] = ("bc", "hg_dagger")
"""The modes trained by supervised learning: their policy acts deterministically (it has no
exploration to do) and they need no reward."""


@dataclass
class BCConfig:
    """Behaviour cloning (`learner.algorithm: bc` or `hg_dagger`).

    The loss per sample: mean squared error between tanh(mean(s)) of the actor and the recorded
    continuous action, plus `gripper_weight` x the cross-entropy of the grasp head's three logits
    (open, stay, close) against the recorded gripper command (with a gripper).

    Attributes:
        updates: gradient updates on the demonstrations before the policy drives. bc: all of
            its training (a lockstep actor waits for them; then the learner is idle). hg_dagger:
            its start; after them it trains on at `learner.updates_per_env_step` per env step,
            on the demos and every takeover so far.
        lr: Adam learning rate of the actor, grasp head and encoder.
        validation_fraction: share of the demo episodes held out (every k-th episode, k =
            round(1 / fraction)), never trained on; their loss is reported as `bc_val_loss`.
            0: no validation split.
        validate_every_updates: how often the held-out loss is computed, updates.
        gripper_weight: weight of the gripper's cross-entropy against the continuous MSE.
    """

    updates: int = 3000
    lr: float = 3e-4
    validation_fraction: float = 0.1
    validate_every_updates: int = 250
    gripper_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.updates < 0:
            raise ValueError("updates must be >= 0")
        if not self.lr > 0:
            raise ValueError("lr must be > 0")
        if not 0 <= self.validation_fraction <= 0.5:
            raise ValueError("validation_fraction must be in [0, 0.5] (0: no validation split)")
        if self.validate_every_updates < 1:
            raise ValueError("validate_every_updates must be >= 1")
        if not self.gripper_weight >= 0:
            raise ValueError("gripper_weight must be >= 0")

    @property
    def validation_every_episodes(self) -> int:
        """k: every k-th demo episode is held out (0: none)."""
        return 0 if self.validation_fraction == 0 else max(2, round(1 / self.validation_fraction))


@dataclass
class RLIFConfig:
    """Interventions as reward (`learner.algorithm: rlif`, after RLIF, Luo et al. 2023).

    The policy's step that the operator took over from (the last policy-driven transition before a
    takeover starts, in the same episode) gets reward -penalty; every other step 0, or its task
    reward when `task_reward` is true. Demonstrations have no takeovers: their reward is 0, or
    the task reward.

    Attributes:
        penalty: the takeover's cost, > 0.
        task_reward: add the env's reward (true) or learn from the interventions alone (false:
            no reward function or classifier is needed).
    """

    penalty: float = 1.0
    task_reward: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.penalty <= 1000:
            raise ValueError("penalty must be in (0, 1000]")


@dataclass
class ResidualConfig:
    """Residual RL on a frozen base policy (`learner.algorithm: residual_sac`, after ResiP).

    Attributes:
        base_run: the run directory of a `bc` run; its learner/checkpoint.bin is the base
            policy (read by the learner and by each actor; give each machine its own path with an
            override when they differ). Required for residual_sac.
        scale: the residual's reach: the env action is clip(base(s) + scale * residual(s), -1, 1)
            on the continuous dimensions (the gripper is the base's), in (0, 2].
    """

    base_run: str | None = None
    scale: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 2:
            raise ValueError("scale must be in (0, 2]")

    def base_files(self) -> tuple[Path, Path]:
        """(saved config, checkpoint) of `base_run`, checked to exist (no torch: `hilrl run`
        checks this before it starts anything).

        Raises:
            SchemaError (learner.residual.base_run): no such run directory, saved config or
                checkpoint; the message says what to give instead.
        """
        paths = RunDir(Path(self.base_run or ""))
        saved = paths.saved_config() if self.base_run and paths.root.is_dir() else None
        if saved is None:
            raise SchemaError("learner.residual.base_run", f"{self.base_run!r} is not a run directory with a saved "
                              "config: give the run directory of a finished `bc` run (hilrl run ... "
                              "learner.algorithm=bc)")
        if not paths.checkpoint.is_file():
            raise SchemaError("learner.residual.base_run",
                              f"{paths.checkpoint}: no checkpoint (did the base run's learner start?)")
        return saved, paths.checkpoint
