"""Binary reward classifier: "does this camera frame show the task succeeded?"

    images {camera: (B, H, W, 3) uint8}  (the classifier cameras, in `cameras` order)
      -> MultiCameraEncoder (policies/encoders.py: one backbone + head per camera, EncoderConfig)
      -> (B, n_cams * feature_dim)
      -> MLP: [Linear -> ReLU] per hidden width -> Linear -> (B,) logit
    success probability = sigmoid(logit); success = probability >= threshold

Training (`train_classifier`, driven by `hilrl train-classifier`, learner/classifier_train.py) on
frames recorded by `hilrl record-labels` (actor/labels.py):
    - the split is by EPISODE (`split_episodes`): consecutive frames of an episode are nearly
      identical, so splitting frames would put near-copies of validation frames in training and
      report a validation accuracy that is really training accuracy;
    - DrQ random shift (policies.encoders.random_shift, `encoder.random_shift_pad_px`) on every
      training batch, never when evaluating;
    - binary cross-entropy on the logit, the positive class weighted by negatives / positives of
      the training split (`balance_classes`);
    - the decision threshold is chosen on the validation frames only (`select_threshold`: F1 or a
      precision target) and stored with the model; validation metrics are computed at it;
    - deterministic under `seed` (initialisation, split, shuffling, augmentation).

Files (`save_classifier` / `load_classifier`), never pickle:
    classifier.npz   every tensor of the model's state_dict (policies.encoders.save_encoder_weights:
                     plain .npz, read with allow_pickle=False after a SHA-256 check)
    classifier.json  format, version, the weights file's name and SHA-256, cameras and their image
                     size, encoder config, MLP widths, threshold and how it was chosen, metrics
The env pins the JSON by its SHA-256 (`env.reward_classifier.sha256`), and the JSON pins the
weights: config -> JSON -> weights is one hash chain, so neither the threshold nor the weights can
change behind the config's back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hilrl.policies.classifier_config import ClassifierTrainConfig
from hilrl.policies.encoders import (
    MultiCameraEncoder,
    load_state_arrays,
    random_shift,
    read_encoder_weights,
    read_pinned_file,
    save_encoder_weights,
    sha256_bytes,
)
from hilrl.transport.chunkfile import write_json_atomic
from hilrl.transport.schema import SchemaError, from_dict
from hilrl.transport.sections.sac import EncoderConfig

log = logging.getLogger(__name__)

CLASSIFIER_FORMAT = "hilrl-reward-classifier"
CLASSIFIER_VERSION = 1
CLASSIFIER_JSON = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.npz"
# Frames per forward pass when evaluating (memory only; results do not depend on it).
EVAL_BATCH = 256


class ClassifierHashError(ValueError):
    """A classifier JSON file is not the one its SHA-256 pins."""


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class RewardClassifier(nn.Module):
    """MultiCameraEncoder + MLP -> one success logit per sample.

    Args:
        cameras: classifier camera names (the encoder's output order).
        encoder: per-camera encoder config (image_size = the frames' height = width).
        hidden_dims: MLP hidden widths (ReLU after each).
        read_weights: read `encoder.weights_path` (a pretrained backbone) when set; False when
            every tensor is loaded afterwards (`load_classifier`).
    forward: {camera: (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1]} -> (B,) float32 logits.
    """

    def __init__(self, cameras: Sequence[str], encoder: EncoderConfig, hidden_dims: Sequence[int], read_weights: bool = True):
        super().__init__()
        self.cameras = tuple(cameras)
        self.encoder = MultiCameraEncoder(self.cameras, encoder, read_weights=read_weights)
        layers: list[nn.Module] = []
        width = self.encoder.out_dim
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(images)).squeeze(-1)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


def predict_probabilities(
    model: RewardClassifier, images: Mapping[str, np.ndarray], device: torch.device, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """Success probabilities (N,) float64 of N frames per camera ({camera: (N, H, W, 3) uint8}),
    in eval mode, no augmentation, no gradient."""
    n = len(next(iter(images.values())))
    out = np.empty(n, dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = {
                    cam: torch.as_tensor(np.ascontiguousarray(images[cam][start : start + batch_size]), device=device)
                    for cam in model.cameras
                }
                logits = model(batch).double()
                out[start : start + batch_size] = torch.sigmoid(logits).cpu().numpy()
    finally:
        model.train(was_training)
    return out


# --------------------------------------------------------------------------------------------
# Metrics and the decision threshold
# --------------------------------------------------------------------------------------------


def binary_metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 and the confusion counts of `probabilities >= threshold`
    against `labels` ((N,) bool). Precision (recall) is 0 when nothing is predicted (present)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pred = p >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    n = len(y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "frames": n,
        "positives": int(y.sum()),
        "negatives": int(n - y.sum()),
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
    }


def threshold_candidates(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Every distinct way a threshold can cut the given frames, with its confusion counts.

    With the distinct probabilities sorted in decreasing order u_0 > u_1 > ... > u_{m-1},
    candidate j predicts success for every frame with p >= u_j; its threshold lies halfway to the
    next lower value, (u_j + u_{j+1}) / 2 (u_{m-1} / 2 for the last), which separates the same
    frames with the largest margin either side. Returns arrays of length m: threshold, tp, fp, fn.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    values, inverse = np.unique(-p, return_inverse=True)  # ascending in -p: decreasing in p
    u = -values
    pos = np.bincount(inverse, weights=y, minlength=len(u))
    neg = np.bincount(inverse, weights=~y, minlength=len(u))
    tp = np.cumsum(pos)
    fp = np.cumsum(neg)
    fn = y.sum() - tp
    lower = np.append(u[1:], 0.0)
    return {"threshold": (u + lower) / 2.0, "tp": tp, "fp": fp, "fn": fn}


def select_threshold(
    probabilities: np.ndarray, labels: np.ndarray, rule: str = "f1", precision_target: float = 0.95
) -> tuple[float, str]:
    """The decision threshold for `rule`, from these (validation) frames; returns (threshold, the
    rule that applied).

    "f1": the candidate (see `threshold_candidates`) with the highest F1; among equals the highest
        threshold (a false success is the costlier error for a reward).
    "precision": the lowest candidate with precision >= precision_target (most recall at that
        precision; among equal recall the highest threshold); "f1" when none reaches it, reported
        as "f1 (precision target X not reached)".
    Raises:
        ValueError: no positive or no negative frame (no threshold can be chosen honestly).
    """
    y = np.asarray(labels, dtype=bool)
    if not y.any() or y.all():
        raise ValueError(
            f"choosing a threshold needs success and non-success frames; got {int(y.sum())} success and "
            f"{int((~y).sum())} other frames"
        )
    c = threshold_candidates(probabilities, y)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    if rule == "precision":
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        ok = (precision >= precision_target) & (tp > 0)
        if ok.any():
            best_recall = tp[ok].max()
            j = int(np.flatnonzero(ok & (tp == best_recall))[0])
            return float(c["threshold"][j]), "precision"
        log.warning("no threshold reaches precision %.3f on the validation frames; choosing by F1", precision_target)
        rule_used = f"f1 (precision target {precision_target:g} not reached)"
    elif rule == "f1":
        rule_used = "f1"
    else:
        raise ValueError(f"unknown threshold rule {rule!r}; expected 'f1' or 'precision'")
    f1 = 2 * tp / (2 * tp + fp + fn)
    j = int(np.argmax(f1))  # first maximum = highest threshold among equals
    return float(c["threshold"][j]), rule_used


# --------------------------------------------------------------------------------------------
# Data and the episode split
# --------------------------------------------------------------------------------------------


@dataclass
class LabelledData:
    """Labelled frames for training (actor.labels.read_label_set returns these).

    Attributes:
        images: camera -> (N, H, W, 3) uint8.
        labels: (N,) bool, True = the frame shows success.
        episodes: (N,) int64, the episode each frame comes from (the split keeps episodes whole).
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if len(self.episodes) != n or any(len(v) != n for v in self.images.values()):
            raise ValueError("images, labels and episodes must hold the same number of frames")

    def subset(self, mask: np.ndarray) -> LabelledData:
        """The frames where `mask` ((N,) bool) is True."""
        return LabelledData({k: v[mask] for k, v in self.images.items()}, self.labels[mask], self.episodes[mask])


def split_episodes(episodes: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train episode ids, validation episode ids), disjoint, both sorted.

    Episodes with a success frame and episodes without are shuffled (seeded) and split separately,
    round(fraction * n) of each group to validation, at least one and at most n - 1 when the group
    has two or more episodes (a single episode of a group goes to training).
    Raises:
        ValueError: fewer than two episodes, or the split leaves a side without success frames or
            without other frames (record more episodes).
    """
    episodes = np.asarray(episodes)
    labels = np.asarray(labels, dtype=bool)
    ids = np.unique(episodes)
    if len(ids) < 2:
        raise ValueError(f"a split by episode needs at least 2 episodes, got {len(ids)}")
    has_success = {int(e): bool(labels[episodes == e].any()) for e in ids}
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for group in ([e for e in ids if has_success[int(e)]], [e for e in ids if not has_success[int(e)]]):
        group = [int(e) for e in rng.permutation(np.asarray(group, dtype=np.int64))]
        n_val = 0 if len(group) < 2 else min(max(round(fraction * len(group)), 1), len(group) - 1)
        val += group[:n_val]
        train += group[n_val:]
    for name, side in (("training", train), ("validation", val)):
        y = labels[np.isin(episodes, side)]
        if not y.any() or y.all():
            raise ValueError(
                f"the {name} episodes {sorted(side)} hold {int(y.sum())} success and {int((~y).sum())} other "
                "frames; both are needed on both sides: record more episodes (at least two that show success)"
            )
    return sorted(train), sorted(val)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass
class TrainedClassifier:
    """What `train_classifier` returns.

    Attributes:
        model: the trained network (eval mode, on `device`).
        threshold: the decision threshold on the success probability, chosen on validation.
        threshold_rule: the rule that chose it ("f1", "precision", or the F1 fallback).
        metrics: validation and training metrics at the threshold, the split, the loss history.
        config: the training config used.
        device: where the model is.
    """

    model: RewardClassifier
    threshold: float
    threshold_rule: str
    metrics: dict[str, Any]
    config: ClassifierTrainConfig
    device: torch.device


def check_frames(images: Mapping[str, np.ndarray], cameras: Sequence[str], image_size: int, where: str) -> None:
    """Every camera present as (N, image_size, image_size, 3) uint8; ValueError naming `where`."""
    for cam in cameras:
        if cam not in images:
            raise ValueError(f"no frames for classifier camera {cam!r}; have {sorted(images)}")
        x = images[cam]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
            raise ValueError(f"camera {cam!r}: frames must be (N, H, W, 3) uint8, got {x.dtype} {x.shape}")
        if x.shape[1:3] != (image_size, image_size):
            raise ValueError(
                f"{where}: camera {cam!r} frames are {x.shape[1]}x{x.shape[2]} pixels but the encoder is built for "
                f"{image_size}x{image_size}; set it to the recorded size (square frames)"
            )


def train_classifier(
    data: LabelledData, cameras: Sequence[str], config: ClassifierTrainConfig, progress: bool = False
) -> TrainedClassifier:
    """Train a reward classifier on `data` (see the module docstring); deterministic under
    `config.seed` on one device and thread count.

    Args:
        data: labelled frames of several episodes.
        cameras: which cameras of `data.images` the classifier sees (its input order).
        config: training settings, encoder included.
        progress: log each epoch's mean training loss at INFO.
    Raises:
        ValueError: frames of the wrong size, or too few episodes / classes to split.
    """
    cameras = list(cameras)
    check_frames(data.images, cameras, config.encoder.image_size, "reward_classifier.train.encoder.image_size")
    train_eps, val_eps = split_episodes(data.episodes, data.labels, config.validation_fraction, config.seed)
    train = data.subset(np.isin(data.episodes, train_eps))
    val = data.subset(np.isin(data.episodes, val_eps))
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    try:
        return _train(train, val, train_eps, val_eps, cameras, config, device, progress)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, whatever this run used


def _train(
    train: LabelledData, val: LabelledData, train_eps: list[int], val_eps: list[int], cameras: list[str],
    config: ClassifierTrainConfig, device: torch.device, progress: bool,
) -> TrainedClassifier:
    """The training loop, evaluation and threshold choice of `train_classifier`."""
    started = time.monotonic()

    # Initialisation from the seed, without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = RewardClassifier(cameras, config.encoder, config.hidden_dims)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling and augmentation draws
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    x = {cam: torch.as_tensor(np.ascontiguousarray(train.images[cam]), device=device) for cam in cameras}
    y = torch.as_tensor(train.labels, dtype=torch.float32, device=device)
    n_pos = float(train.labels.sum())
    n_neg = float(len(train.labels) - n_pos)
    pos_weight = torch.tensor(n_neg / n_pos if config.balance_classes else 1.0, device=device)
    pad = config.encoder.random_shift_pad_px
    history: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        total, seen = 0.0, 0
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = {cam: x[cam][idx] for cam in cameras}
            if pad > 0:
                batch = {cam: random_shift(img, pad, generator=generator, channels_last=True) for cam, img in batch.items()}
            logits = model(batch)
            loss = F.binary_cross_entropy_with_logits(logits, y[idx], pos_weight=pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append(total / seen)
        if progress:
            log.info("epoch %d/%d: training loss %.4f", epoch + 1, config.epochs, history[-1])
    model.eval()

    p_val = predict_probabilities(model, val.images, device)
    threshold, rule = select_threshold(p_val, val.labels, config.threshold, config.precision_target)
    p_train = predict_probabilities(model, train.images, device)
    metrics = {
        "threshold": threshold,
        "threshold_rule": rule,
        "validation": binary_metrics(p_val, val.labels, threshold),
        "train": binary_metrics(p_train, train.labels, threshold),
        "validation_episodes": val_eps,
        "train_episodes": train_eps,
        "loss_history": [round(v, 6) for v in history],
        "device": str(device),
        "wall_time_s": round(time.monotonic() - started, 3),
    }
    return TrainedClassifier(model, threshold, rule, metrics, config, device)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def save_classifier(trained: TrainedClassifier, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Write classifier.npz and classifier.json into `out_dir` (created); returns (the JSON's
    path, the JSON's SHA-256), which is what `env.reward_classifier` takes. `extra` goes into the
    JSON under "source" (e.g. the labels folder and its manifest hash)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_sha = save_encoder_weights(trained.model.cpu(), out / CLASSIFIER_WEIGHTS)
    trained.model.to(trained.device)
    encoder = dataclasses.asdict(trained.config.encoder)
    # The full state_dict is in the .npz: a backbone file is provenance only, never read again.
    backbone = {"path": encoder.pop("weights_path"), "sha256": encoder.pop("weights_sha256")}
    size = trained.config.encoder.image_size
    doc = {
        "format": CLASSIFIER_FORMAT,
        "version": CLASSIFIER_VERSION,
        "weights_file": CLASSIFIER_WEIGHTS,
        "weights_sha256": weights_sha,
        "cameras": {cam: [size, size] for cam in trained.model.cameras},
        "encoder": encoder,
        "pretrained_backbone": backbone if backbone["path"] else None,
        "hidden_dims": list(trained.config.hidden_dims),
        "threshold": trained.threshold,
        "threshold_rule": trained.threshold_rule,
        "precision_target": trained.config.precision_target if trained.config.threshold == "precision" else None,
        "metrics": trained.metrics,
        "train_config": {k: v for k, v in dataclasses.asdict(trained.config).items() if k != "encoder"},
        "source": dict(extra or {}),
        "created_unix_s": round(time.time(), 3),
    }
    path = out / CLASSIFIER_JSON
    write_json_atomic(path, doc, fsync=True)
    return path, sha256_bytes(path.read_bytes())


@dataclass
class LoadedClassifier:
    """A classifier read back by `load_classifier`, ready to score frames.

    Attributes:
        model: the network, eval mode, on `device`.
        threshold: success = probability >= threshold (chosen on validation when trained).
        cameras: camera name -> (height, width) of the frames it takes, in input order.
        path: the JSON file it came from. meta: the JSON's contents (metrics, rule, ...).
    """

    model: RewardClassifier
    threshold: float
    cameras: dict[str, tuple[int, int]]
    device: torch.device
    path: Path
    meta: dict[str, Any]

    def probability(self, frames: Mapping[str, np.ndarray]) -> float:
        """Success probability of one observation: {camera: (H, W, 3) uint8} -> float in [0, 1]."""
        batch = {}
        for cam, size in self.cameras.items():
            try:
                frame = np.asarray(frames[cam])
            except KeyError:
                raise KeyError(f"reward classifier {self.path}: no frame for camera {cam!r}; got {sorted(frames)}") from None
            if frame.shape != (*size, 3) or frame.dtype != np.uint8:
                raise ValueError(
                    f"reward classifier {self.path}: camera {cam!r} gives {frame.dtype} {frame.shape}, "
                    f"the classifier takes uint8 {(*size, 3)}"
                )
            batch[cam] = frame[None]
        return float(predict_probabilities(self.model, batch, self.device)[0])

    def probabilities(self, images: Mapping[str, np.ndarray]) -> np.ndarray:
        """Success probabilities (N,) of {camera: (N, H, W, 3) uint8}."""
        return predict_probabilities(self.model, images, self.device)


def load_classifier(path: str | Path, sha256: str, device: str = "cpu") -> LoadedClassifier:
    """Read a classifier written by `save_classifier`: the JSON after checking its SHA-256, then
    the weights file it names after checking theirs. Never unpickles.

    Raises:
        FileNotFoundError: the JSON or the weights file is missing (named).
        ClassifierHashError: the JSON's SHA-256 is not `sha256`.
        ValueError: a SHA-256 mismatch of the weights file (names the file, expected and actual), or a file that is not
            a reward classifier of this version (names what is wrong).
    """
    path = Path(path).expanduser()
    data = read_pinned_file(
        path, sha256, "reward classifier file",
        hint="; the file is not the one the config pins (retrained or altered): check it, then put its hash in the config",
        error=ClassifierHashError,
    )
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"reward classifier {path} is not valid JSON: {exc}") from None
    bad = f"reward classifier {path}"
    if not isinstance(meta, dict) or meta.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{bad} is not a {CLASSIFIER_FORMAT} file")
    if meta.get("version") != CLASSIFIER_VERSION:
        raise ValueError(f"{bad}: version {meta.get('version')!r} is not supported (this code reads {CLASSIFIER_VERSION})")
    threshold = meta.get("threshold")
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or not 0 <= threshold <= 1:
        raise ValueError(f"{bad}: threshold must be a probability in [0, 1], got {threshold!r}")
    weights_file = meta.get("weights_file")
    if not isinstance(weights_file, str) or Path(weights_file).name != weights_file or weights_file in ("", ".", ".."):
        raise ValueError(f"{bad}: weights_file must be a file name next to it, got {weights_file!r}")
    cameras_raw = meta.get("cameras")
    if not isinstance(cameras_raw, dict) or not cameras_raw:
        raise ValueError(f"{bad}: cameras must map camera names to [height, width]")
    cameras: dict[str, tuple[int, int]] = {}
    for cam, size in cameras_raw.items():
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError(f"{bad}: cameras.{cam} must be [height, width], got {size!r}")
        cameras[cam] = (size[0], size[1])
    try:
        encoder = from_dict(EncoderConfig, meta.get("encoder"), "encoder")
        hidden = [int(h) for h in meta.get("hidden_dims", [])]
    except (SchemaError, TypeError, ValueError) as exc:
        raise ValueError(f"{bad}: {exc}") from None
    arrays = read_encoder_weights(path.parent / weights_file, str(meta.get("weights_sha256", "")))
    torch_device = resolve_device(device)
    model = RewardClassifier(list(cameras), encoder, hidden, read_weights=False)
    load_state_arrays(model, arrays, str(path.parent / weights_file))
    model.to(torch_device).eval()
    return LoadedClassifier(model, float(threshold), cameras, torch_device, path, meta)
