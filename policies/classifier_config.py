"""The `reward_classifier:` section of a task config: recording labelled frames
(`hilrl record-labels`) and training the binary reward classifier (`hilrl train-classifier`).

Plain dataclasses, no torch, so that recording labels never imports the network code. Using a
trained classifier in the env is configured elsewhere: `env.reward_classifier` (actor/config.py)
names the classifier file and its hash.

    reward_classifier:
      labels:                  # LabelConfig: what record-labels keeps
        max_negative_ratio: 1.0
        steps_after_success: 10
        seed: 0
      train:                   # ClassifierTrainConfig: how train-classifier trains
        epochs: 30
        encoder: {kind: small, image_size: 64, feature_dim: 64, random_shift_pad_px: 4}
        ...

Which cameras the classifier sees is not configured here: it is every `role: classifier` camera
of `env.observation.cameras`, or the policy cameras when no camera has that role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hilrl.transport.sections.sac import EncoderConfig


@dataclass
class LabelConfig:
    """`reward_classifier.labels`: recording labelled frames.

    Attributes:
        max_negative_ratio: after recording, all success frames are kept and the not-success
            frames are subsampled uniformly at random (over the whole session) down to at most
            this many per success frame. null keeps every frame. Successes are rare (an episode
            shows success only at its end), so without this the set is mostly negatives.
        steps_after_success: end an episode this many steps after the first frame labelled
            success (the operator keeps showing success meanwhile: more, varied positives);
            0 runs every episode to the time limit (or the operator's end-of-episode gesture).
        seed: seeds the negative subsampling.
    """

    max_negative_ratio: float | None = 1.0
    steps_after_success: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_negative_ratio is not None and not (
            math.isfinite(self.max_negative_ratio) and self.max_negative_ratio > 0
        ):
            raise ValueError(f"max_negative_ratio must be > 0 (or null: keep every frame), got {self.max_negative_ratio}")
        if self.steps_after_success < 0:
            raise ValueError(f"steps_after_success must be >= 0, got {self.steps_after_success}")


@dataclass
class ClassifierTrainConfig:
    """`reward_classifier.train`: training the binary success classifier.

    The network is a MultiCameraEncoder (policies/encoders.py, one encoder per classifier camera,
    configured by `encoder`) followed by an MLP (`hidden_dims`, ReLU) to one logit; the success
    probability is sigmoid(logit).

    Attributes:
        epochs: passes over the training frames.
        batch_size: frames per gradient step.
        learning_rate: Adam step size.
        weight_decay: Adam L2 penalty on every trained parameter.
        hidden_dims: widths of the MLP's hidden layers between the image features and the logit.
        validation_fraction: fraction of the recorded EPISODES (not frames) held out for
            validation: consecutive frames of one episode are nearly identical, so a frame split
            would leak training frames into validation. Episodes with and without a success frame
            are split separately in this proportion (rounded, at least one episode of each kind
            on each side where there are two or more), so both classes reach validation.
        threshold: how the decision threshold on the success probability is chosen, on the
            validation frames only: "f1" maximises F1 (ties: the highest such threshold, as a false
            success rewards and ends an episode, which is worse than a missed one); "precision":
            the lowest threshold whose validation precision reaches `precision_target` (the most
            recall at that precision), falling back to "f1" (recorded in the metrics) when no
            threshold reaches it. The threshold is placed halfway between the two validation
            probabilities it separates, and stored with the model, never in a config.
        precision_target: the precision the "precision" rule asks for, in (0, 1].
        balance_classes: weight the positive class by (negatives / positives) of the training
            split in the loss, so a set that is still imbalanced after recording trains as if it
            were balanced.
        seed: seeds the network's initialisation, the episode split, shuffling and augmentation:
            the same data and seed give the same weights and threshold.
        device: "auto" (cuda when present, else cpu), "cpu" or "cuda".
        torch_threads: CPU threads for torch while training (restored afterwards); 0 keeps the
            current setting (torch's default: all cores). On a busy CPU 1 is often much faster:
            small convolutions gain nothing from threads that have to wait for a core.
        encoder: the image encoder per camera; `image_size` must equal the recorded frames' size
            (square), and `random_shift_pad_px` is the DrQ random-shift augmentation in training
            (keep it small against the image size: the classifier may need absolute positions,
            e.g. how high a cube is).
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    hidden_dims: list[int] = field(default_factory=lambda: [128])
    validation_fraction: float = 0.25
    threshold: Literal["f1", "precision"] = "f1"
    precision_target: float = 0.95
    balance_classes: bool = True
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = 0
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(kind="small", image_size=64, feature_dim=64))

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0) or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive widths, got {self.hidden_dims}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 < self.precision_target <= 1:
            raise ValueError(f"precision_target must be in (0, 1], got {self.precision_target}")
        if self.torch_threads < 0:
            raise ValueError("torch_threads must be >= 0")


@dataclass
class RewardClassifierConfig:
    """The `reward_classifier:` section (see the module docstring).

    Attributes:
        labels: what `hilrl record-labels` keeps.
        train: how `hilrl train-classifier` trains.
    """

    labels: LabelConfig = field(default_factory=LabelConfig)
    train: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)
