"""Configuration of the SAC/RLPD agent (the `learner.sac:` subsection)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SACConfig:
    """Soft actor-critic in the RLPD style, with a DQN grasp critic for the gripper.

    Attributes:
        hidden_dims: widths of the actor's and each critic's hidden layers (LayerNorm after each).
        ensemble_size: critics, evaluated as one batched network (2; up to 10 with subsampling).
        ensemble_subsample: critics drawn at random for the target minimum (null: all).
        discount: per-step discount.
        actor_lr / critic_lr / temperature_lr / grasp_lr: Adam learning rates.
        init_temperature: initial entropy temperature.
        target_entropy: null: -|A|/2 over the continuous action dimensions.
        tau: target network Polyak rate.
        critic_updates_per_actor_update: critic steps per actor/temperature step.
        backup_entropy: include the entropy bonus in the critic target.
        grasp_switch_penalty: reward subtracted for each gripper switch (grasp critic only).
    """

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    ensemble_size: int = 2
    ensemble_subsample: int | None = None
    discount: float = 0.97
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    grasp_lr: float = 3e-4
    init_temperature: float = 0.01
    target_entropy: float | None = None
    tau: float = 0.005
    critic_updates_per_actor_update: int = 2
    backup_entropy: bool = False
    grasp_switch_penalty: float = 0.05

    def __post_init__(self) -> None:
        if not self.hidden_dims or any(h < 1 for h in self.hidden_dims):
            raise ValueError("hidden_dims must be a non-empty list of positive widths")
        if not 1 <= self.ensemble_size <= 20:
            raise ValueError("ensemble_size must be in [1, 20]")
        if self.ensemble_subsample is not None and not 1 <= self.ensemble_subsample <= self.ensemble_size:
            raise ValueError("ensemble_subsample must be in [1, ensemble_size]")
        if not 0 < self.discount < 1:
            raise ValueError("discount must be in (0, 1)")
        if not 0 < self.tau <= 1:
            raise ValueError("tau must be in (0, 1]")
        if self.init_temperature <= 0:
            raise ValueError("init_temperature must be > 0")
        if self.critic_updates_per_actor_update < 1:
            raise ValueError("critic_updates_per_actor_update must be >= 1")
