"""Configuration of the SAC/RLPD agent (the `learner.sac:` subsection) and its image encoder
(`learner.sac.encoder:`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# EncoderConfig.kind values; the ResNets freeze their backbone unless `frozen` says otherwise.
ENCODER_KINDS = ("small", "resnet10", "resnet18")
PRETRAINED_ENCODER_KINDS = ("resnet10", "resnet18")


@dataclass
class EncoderConfig:
    """Image encoder: one per camera, each image (H x W x 3 uint8) -> `feature_dim` features.

    Each encoder is a convolutional backbone (the part that `frozen` freezes and that pretrained
    weights fill) followed by a head that always trains: spatial learned embeddings, then
    Linear -> LayerNorm -> tanh to `feature_dim` (see policies/encoders.py).

    Attributes:
        kind: "small": 4 strided 3x3 convs with 32 channels, trained from scratch (the CPU
            default: well under 1 ms per 128x128 image). "resnet10": the reference ResNet-10
            backbone (HIL-SERL's: one BasicBlock per stage, 64-128-256-512 channels,
            GroupNorm, "SAME" padding, about 4.9M parameters), meant to be frozen with
            ImageNet weights (`hilrl convert-encoder --from hilserl-resnet10`). "resnet18":
            torchvision's ResNet-18 without its classifier (two BasicBlocks per stage,
            BatchNorm always in eval mode: its statistics never update, about 11.2M
            parameters), meant to be frozen with torchvision's ImageNet weights
            (`hilrl convert-encoder --from torchvision-resnet18`). Both ResNets give a
            512 x ceil(image_size/32)^2 feature map (4x4 at 128 pixels).
        image_size: height = width of the camera images, in pixels (the spatial embeddings are
            learned per feature-map position, so the size is fixed when the encoder is built).
        feature_dim: features per camera at the encoder's output (the bottleneck width).
        frozen: freeze the backbone (no gradient, kept in eval mode, features computed once per
            learner batch); null: the default for the kind (true for resnet10 and resnet18,
            false for small).
        weights_path: file holding the backbone's weights (.npz of float32 arrays named by the
            backbone's state_dict keys, written by policies.encoders.save_encoder_weights;
            `hilrl convert-encoder` makes one from a public checkpoint and prints these lines).
            null: random initialisation (a logged warning for a ResNet or a frozen backbone).
        weights_sha256: lowercase hex SHA-256 of the weights file; required with weights_path,
            checked before the file is read as arrays.
        num_spatial_embeddings: learned spatial kernels per backbone channel (K: the head sees
            channels x K numbers per image).
        random_shift_pad_px: DrQ augmentation in training: each image is padded by this many
            pixels (replicating the border) and cropped back at a random offset, per sample and
            independently for obs and next obs. 0 turns it off. Never applied when acting.
    """

    kind: Literal["small", "resnet10", "resnet18"] = "small"
    image_size: int = 128
    feature_dim: int = 256
    frozen: bool | None = None
    weights_path: str | None = None
    weights_sha256: str | None = None
    num_spatial_embeddings: int = 8
    random_shift_pad_px: int = 4

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, ENCODER_KINDS))}, got {self.kind!r}")
        if self.image_size < 32:
            raise ValueError("image_size must be >= 32 pixels")
        if self.feature_dim < 1:
            raise ValueError("feature_dim must be >= 1")
        if self.num_spatial_embeddings < 1:
            raise ValueError("num_spatial_embeddings must be >= 1")
        if not 0 <= self.random_shift_pad_px <= self.image_size // 4:
            raise ValueError("random_shift_pad_px must be in [0, image_size / 4]")
        if self.weights_sha256 is not None:
            self.weights_sha256 = self.weights_sha256.strip().lower()
            if not _SHA256_HEX.fullmatch(self.weights_sha256):
                raise ValueError("weights_sha256 must be 64 hex digits (the output of sha256sum)")
        # A path without a hash would load whatever sits at that path: refuse it up front.
        if self.weights_path is not None and self.weights_sha256 is None:
            raise ValueError("weights_sha256 is required with weights_path (run sha256sum on the file)")
        if self.weights_sha256 is not None and self.weights_path is None:
            raise ValueError("weights_sha256 is set but weights_path is not")

    def check_camera_sizes(self, sizes: Mapping[str, Sequence[int]]) -> None:
        """Raise ValueError naming the first camera whose [height, width] is not
        image_size x image_size (the encoder's spatial embeddings are built for one size)."""
        for name, size in sizes.items():
            if tuple(size[:2]) != (self.image_size, self.image_size):
                raise ValueError(
                    f"camera {name!r} gives {size[0]}x{size[1]} images but the encoder is built for "
                    f"{self.image_size}x{self.image_size}: set learner.sac.encoder.image_size to match "
                    f"env.observation.cameras[*].size (square images)"
                )

    @property
    def is_frozen(self) -> bool:
        """`frozen` with null resolved: the ResNets freeze their backbone by default, small trains."""
        return self.frozen if self.frozen is not None else self.kind in PRETRAINED_ENCODER_KINDS


# learner.sac's nine switches as they were before LeRobot's choices became the defaults (issue 13;
# SACConfig's docstring has the measurements): a run started before then resumes with these in its
# learner.sac section, and bench/sample_efficiency.py's variants build on them. Without a state
# encoder the grasp loss has none to train, so the recipe also pins grasp_trains_state_encoder off
# (a config that turns it on, as sim_pick_cube's, still loads with these on top).
RLPD_V1: dict[str, object] = {
    "actor_q": "mean", "backup_entropy": False, "target_entropy_dims": "continuous", "normalization": "mean_std",
    "max_grad_norm": None, "init": "default", "actor_std": "squashed", "state_encoder_dim": None, "activation": "relu",
    "grasp_trains_state_encoder": False,
}


def rlpd_v1_overrides() -> tuple[str, ...]:
    """RLPD_V1 as dotted overrides ("learner.sac.actor_q=mean", ..., None as null, False as false)."""

    def written(value: object) -> str:
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return tuple(f"learner.sac.{key}={written(value)}" for key, value in RLPD_V1.items())


def previous_defaults_hint() -> str:
    """What to do with a checkpoint whose networks were built by the previous defaults."""
    overrides = " ".join(rlpd_v1_overrides())
    return ("If the run was started before learner.sac's defaults became LeRobot's SAC choices and its config "
            f"does not set them, resume it (and start its actors) with the previous ones as overrides: {overrides}")


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
        target_entropy: null: -n/2, n as `target_entropy_dims` says.
        tau: target network Polyak rate.
        critic_updates_per_actor_update: critic steps per actor/temperature step.
        n_step: the critic and grasp targets bootstrap after up to n stored steps of the same
            episode: y = sum_{k<m} discount^k r_{t+k} + discount^m (1 - terminated_{t+m-1}) V(s_{t+m}),
            m = n, or fewer where the episode ends (terminated, truncated) or the buffer's stored
            steps stop first (the demo and intervention buffers end their runs where the expert
            let go). The entropy bonus is only the bootstrap's, the switch penalty only the first
            step's, and the n-step return is not corrected for the steps after the first being
            another policy's (as Ape-X, R2D2 and DrQ-v2 leave it). 1: one-step SAC, the default:
            n = 3 under the other defaults (seed 0, 30k steps) reached 90 % on pick-cube at 5,252
            (n = 1: 4,134 / 5,274 / 5,089 on seeds 0-2), and on Meta-World push its first 10k
            steps had an area of 0.13 under the success curve (n = 1: 0.10 / 0.18 / 0.045), never
            90 % in 30k (0.6 at the end): no gain to set it on.
        backup_entropy: include the entropy bonus in the critic target (LeRobot; RLPD: off).
        grasp_switch_penalty: reward subtracted for each gripper switch (grasp critic only).
        grasp_exploration: while training (not in evaluation), the probability that the acting
            gripper action is drawn uniformly from {open, stay, close} instead of the grasp
            critic's argmax (epsilon-greedy exploration of the gripper; 0 turns it off).
        grasp_trains_state_encoder: the grasp critic's loss also trains the shared state encoder
            (`state_encoder_dim`), with an Adam state of its own (the grasp optimiser holds the
            encoder's parameters beside the critic optimiser), as LeRobot's discrete critic does:
            its optimiser is built over the discrete critic's parameters, which include the
            shared encoder's. false: the critic loss alone shapes the encoder. The image encoder
            stays the critic loss's either way. Measured on our pick-cube in one process
            (bench/inprocess.py, 10k env steps, evaluations every 1k): 90 % at 4,000 / 4,000 /
            8,000 env steps on seeds 0-2 (median 4,000) against 6,000 / 5,000 / 6,000 without it
            (median 6,000) and LeRobot's own SAC's 5,000 / 5,000 / 4,000 in the same harness;
            seed 2 was slower with it. Off by default (a run started before it resumes as it
            was); configs/sim_pick_cube.yaml turns it on; peg-insert and the image task are
            unmeasured with it and keep it off.
        encoder: image encoder, one per camera (used only when the observation has images).

    Switches, each one difference from LeRobot's SAC in how the losses read or how the networks
    are built (bench/sample_efficiency.py's variants; results kept under
    bench/results/sample_efficiency/). The defaults are LeRobot's choice on all nine
    ("lerobot_like"); the previous recipe ("rlpd_v1": mean, no backup entropy, continuous dims,
    mean_std, no clipping, default init, squashed std, no state encoder, ReLU) is nine overrides
    away. Measured from 20 scripted demos at 2 updates per env step of 2 critic steps, as env
    steps to 90 % deterministic success (area under the success curve in brackets):
      - Meta-World reach (10k steps): 4,000 / 9,000 / never (0.71 / 0.44 / 0.44, seeds 0-2);
        rlpd_v1 never (0.28 / 0.22 / 0.23); LeRobot's own SAC in the same harness never / never
        / 6,000 (area median 0.46, seeds 0-2).
      - our pick-cube (10k): 4,134 / 5,274 / 5,089 (0.66 / 0.71 / 0.63, seeds 0-2); rlpd_v1 7,278
        (0.48, seed 0).
      - our reach (5k, tests/test_run.py's settings): 2,012 / 2,016 / 2,001 (0.76 / 0.74 / 0.72,
        seeds 0-2), 100 % at the end of each; rlpd_v1 3,026 / 2,014 / 2,024 (0.62 / 0.66 / 0.74),
        100 % at the end of each. But tests/test_run.py itself, with all nine, ended at 0 % (3k)
        and 5 % (5k) in two of three parallel suite runs, so configs/sim_reach.yaml pins rlpd_v1.
    No switch moved Meta-World reach alone (seed 0: 0.16-0.22 against 0.28); the three network
    choices together gave 0.52, the six loss and input choices 0.39, all but the state encoder
    0.21: the gain needs both groups and the state encoder. The cost is update speed: on the
    2-core CPU the HIL-SERL recipe (bench/learner.py's workload) ran about 28 updates/s against
    41 for rlpd_v1 and 35 without the state encoder (one 3 s run each, in the same minutes).
        actor_q: the actor maximises the "mean" (RLPD) or the "min" (SAC, LeRobot) of the
            critic ensemble's Q values.
        target_entropy_dims: with `target_entropy` null, it is -n/2 for n = the "continuous"
            action dims (rlpd_v1) or "all" of them, the gripper included (LeRobot).
        normalization: the state input's fixed affine normalisation, fitted before the first
            update from demos and early online data: "mean_std" ((s - mean) / std, rlpd_v1),
            "min_max" (onto [-1, 1] from the observed min and max, LeRobot's) or "none".
        max_grad_norm: clip each network's gradient to this global L2 norm (LeRobot: 40);
            null: no clipping.
        init: "default" (PyTorch's uniform fan-in init) or "orthogonal" (orthogonal weights,
            zero biases, as LeRobot).
        state_encoder_dim: null: the networks read the normalised state itself (rlpd_v1); D: they
            read Linear(S, D) -> LayerNorm -> tanh of it, one state encoder shared by every
            network and trained by the critic loss only (LeRobot's, D = 256).
        activation: the hidden layers' nonlinearity in actor, critics and grasp critic, after
            each LayerNorm: "relu" (rlpd_v1) or "silu" (LeRobot's).
        actor_std: how the actor's log-std head gives its std: "squashed" (tanh into
            [-5, 2]; initial std about 0.22, rlpd_v1) or "clamped" (clamp(exp(head), 1e-5, 10) with
            the mean and std heads initialised in +-0.05: initial std about 1, LeRobot's).

    Expert actions in the actor loss (off by default):
        bc_weight: w >= 0. The actor's loss gains w * mean|Q| * BC, BC the mean over the batch's
            expert rows (demonstrations, interventions: MixedSampler's `expert`) of the squared
            distance, averaged over the continuous dims, between the actor's deterministic action
            and the expert's. Scaling by the batch's mean |Q| (detached) keeps the balance between
            the two terms independent of the reward scale, as TD3+BC does (Fujimoto & Gu 2021;
            its alpha = 2.5 is w = 0.4). 0: plain SAC.
        bc_q_filter: count an expert row only where the critics value the expert's action at
            least as highly as the actor's (the Q-filter of Nair et al. 2018), so that the term
            fades where the policy has learned better than the demonstrator. Reads the same
            mean or min over the ensemble as `actor_q`.
      Measured with bc_weight 0.4 and the filter on top of the defaults (kept as
      "lerobot_like+bc04"; 20 scripted demos, 10k env steps, same harness as above), area under
      the success curve against the defaults' on the same seed:
        - Meta-World push: 0.27 against 0.10 (seed 0; success 0.1-0.5 from 5k against 0-0.1,
          0.4 once), but 0.19 against 0.18 on seed 1 (earlier success, 0.1 at 2k where the
          defaults had 0 until 6k, then the same 0.3-0.4). Neither reached 90 %.
        - Meta-World reach: 0.50 against 0.71 (seed 0): 0.7 at 2k against 0.4, but it swung
          (0.1 at 5k) and never reached 90 % (0.85 at 10k), where the defaults did at 4k.
        - our pick-cube: 0.75 against 0.66 (seed 0): 90 % at 5,016 against 4,134 steps.
      About 10 % fewer updates/s (one more actor and critic forward per actor step). Off by
      default: it reached 90 % sooner nowhere, and its one clear gain (push, seed 0) did not
      repeat on seed 1.

    Speed (changes no loss):
        compile_critics: run the critic ensemble's forward (online and target) through
            torch.compile, which fuses each layer's LayerNorm, per-member affine and activation (and
            their backward). Measured with bench/learner.py --compile on the 2-core CPU, with the
            fused optimiser and allocator settings already on (issue 13's note): +10 % updates/s on
            the peer workload with 10 critics, and 7-16 % fewer on the others, within this
            machine's run-to-run spread. Costs a compile at the first updates (tens of seconds on a
            CPU) and, on the CPU, a C++ compiler (g++); results differ from eager in the last float
            bits. Off by default: it did not pay on the CPU, and is unmeasured on a GPU.
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
    n_step: int = 1
    backup_entropy: bool = True
    grasp_switch_penalty: float = 0.05
    grasp_exploration: float = 0.1
    grasp_trains_state_encoder: bool = False
    actor_q: Literal["mean", "min"] = "min"
    target_entropy_dims: Literal["continuous", "all"] = "all"
    normalization: Literal["mean_std", "min_max", "none"] = "min_max"
    max_grad_norm: float | None = 40.0
    init: Literal["default", "orthogonal"] = "orthogonal"
    actor_std: Literal["squashed", "clamped"] = "clamped"
    state_encoder_dim: int | None = 256
    activation: Literal["relu", "silu"] = "silu"
    bc_weight: float = 0.0
    bc_q_filter: bool = True
    compile_critics: bool = False
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

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
        if not 0 <= self.grasp_exploration <= 1:
            raise ValueError(f"grasp_exploration must be a probability in [0, 1], got {self.grasp_exploration}")
        if self.max_grad_norm is not None and not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number (null: no clipping), got {self.max_grad_norm}")
        if self.state_encoder_dim is not None and not 1 <= self.state_encoder_dim <= 4096:
            raise ValueError(f"state_encoder_dim must be in [1, 4096] (null: no state encoder), got {self.state_encoder_dim}")
        if self.grasp_trains_state_encoder and self.state_encoder_dim is None:
            raise ValueError("grasp_trains_state_encoder needs a state encoder to train: set state_encoder_dim "
                             "(256 is LeRobot's) or grasp_trains_state_encoder: false")
        if self.critic_updates_per_actor_update < 1:
            raise ValueError("critic_updates_per_actor_update must be >= 1")
        if not 1 <= self.n_step <= 50:
            raise ValueError(f"n_step must be an integer in [1, 50] (1: one-step targets), got {self.n_step}")
        if not (math.isfinite(self.bc_weight) and 0 <= self.bc_weight <= 100):
            raise ValueError(f"bc_weight must be a number in [0, 100] (0: no behaviour-cloning term), got {self.bc_weight}")
