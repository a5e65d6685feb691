"""The `learner:` section."""

from __future__ import annotations

from dataclasses import dataclass, field

from hilrl.transport.sections.algorithm import (
    ALGORITHMS,
    Algorithm,
    BCConfig,
    ResidualConfig,
    RLIFConfig,
)
from hilrl.transport.sections.sac import SACConfig


@dataclass
class LearnerConfig:
    """Training settings.

    Attributes:
        algorithm: how the learner teaches: sac (default), bc, hg_dagger, rlif or residual_sac
            (the table in hilrl.transport.sections.algorithm); `bc`, `rlif` and `residual` hold
            their settings.
        init_from: warm start: a run directory whose learner checkpoint fills the networks that
            fit this run's (actor, critics, grasp critic, encoder, input normalisation; by name
            and shape), before the first update. Logged: what was loaded and what was skipped;
            an error when nothing fits. null: from scratch.
        init_drop_demos: with init_from, train on online data only (WSRL's setting: the offline
            data was used by the run warm-started from); false keeps the demos in the batches
            (RLPD's).
        batch_size: transitions per gradient update.
        online_fraction: share of each batch drawn from the online buffer; the rest comes from the
            demo and intervention buffers together (when they are empty, all of it is online).
        training_starts: online transitions stored before the first update.
        updates_per_env_step: gradient updates per env step, over the env steps of all robots
            together, counted from `training_starts`; on both clocks the learner waits when it is
            ahead. (Lockstep actors also wait when it is behind, actor.throttle_slack_steps; on the
            realtime clock a learner too slow for its robots falls behind, shown in its progress.)
            0: as fast as it can, whatever the data rate.
        replay_capacity: transitions each buffer holds (oldest overwritten).
        demos: folders of recorded demonstrations (chunk files) loaded into the demo buffer.
        weights_every_updates: publish actor weights every N updates.
        checkpoint_every_updates: write a checkpoint every N updates (and always at shutdown).
        checkpoint_every_s: and at least this often, s, while training, so a killed learner loses
            at most this much training whatever its update rate (a checkpoint takes milliseconds:
            it holds no buffers). 0: by updates only.
        keep_checkpoints: besides the latest (RUN_DIR/learner/checkpoint.bin), keep the newest N
            checkpoints as RUN_DIR/learner/checkpoints/checkpoint-<updates>.bin (hard links, no
            extra write), for `hilrl eval --checkpoint <updates>`. 0 keeps only the latest.
        seed: seeds networks and sampling.
        torch_threads: CPU threads for torch (0: torch's default, all cores). When the actor and
            the simulated robot share the machine, 1 avoids threads fighting over the cores.
        min_free_disk_gb: disk space, GB, the learner keeps free in its run directory: below it,
            received experience is not stored or acknowledged (the actors keep it and resend it
            once space is freed), so checkpoints still fit. 0: no reserve.
        progress_every_s: print one progress line this often (updates and their rate, env steps
            and their rate, buffer sizes, the robots connected and their last contact), s; 0:
            only the final one.
    """

    algorithm: Algorithm = "sac"
    device: str = "auto"
    batch_size: int = 256
    online_fraction: float = 0.5
    training_starts: int = 200
    updates_per_env_step: float = 1.0
    replay_capacity: int = 200_000
    demos: list[str] = field(default_factory=list)
    weights_every_updates: int = 50
    checkpoint_every_updates: int = 2000
    checkpoint_every_s: float = 60.0
    keep_checkpoints: int = 0
    seed: int = 0
    torch_threads: int = 0
    min_free_disk_gb: float = 1.0
    progress_every_s: float = 5.0
    sac: SACConfig = field(default_factory=SACConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    rlif: RLIFConfig = field(default_factory=RLIFConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    init_from: str | None = None
    init_drop_demos: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.algorithm == "residual_sac" and not self.residual.base_run:
            raise ValueError("algorithm residual_sac needs learner.residual.base_run: the run directory of a "
                             "`bc` run (its learner/checkpoint.bin is the base policy)")
        if self.init_drop_demos and not self.init_from:
            raise ValueError("init_drop_demos needs init_from (the run to warm-start from)")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2")
        if not 0 < self.online_fraction <= 1:
            raise ValueError("online_fraction must be in (0, 1]")
        if self.training_starts < 1 or self.replay_capacity < self.batch_size:
            raise ValueError("need training_starts >= 1 and replay_capacity >= batch_size")
        if not 0 <= self.updates_per_env_step <= 1000:
            raise ValueError("updates_per_env_step must be in [0, 1000] (0: as fast as the learner can)")
        if not self.checkpoint_every_s >= 0:
            raise ValueError("checkpoint_every_s must be >= 0 (0: by updates only)")
        if self.torch_threads < 0:
            raise ValueError("torch_threads must be >= 0")
        if not self.min_free_disk_gb >= 0:
            raise ValueError("min_free_disk_gb must be >= 0")
        if not self.progress_every_s >= 0:
            raise ValueError("progress_every_s must be >= 0")
        if self.keep_checkpoints < 0:
            raise ValueError("keep_checkpoints must be >= 0")
        if self.weights_every_updates < 1 or self.checkpoint_every_updates < 1:
            raise ValueError("weights_every_updates and checkpoint_every_updates must be >= 1")
