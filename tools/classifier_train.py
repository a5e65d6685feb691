"""Train the reward classifier:
`hilrl train-classifier --config FILE --labels DIR [--out DIR] [--epochs N] [--seed N]`.

Reads a label folder from `hilrl record-labels` (actor/labels.py), trains the classifier described
by `reward_classifier.train` (policies/classifier_config.py) on the frames of most episodes,
chooses the decision threshold on the held-out episodes (policies/classifier.py), writes
OUT/classifier.npz and OUT/classifier.json (default OUT: DIR/classifier), and prints one JSON
object: the validation and training metrics, the threshold, and the `env.reward_classifier`
section (path and SHA-256 of the JSON) to paste into the task config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hilrl.policies.classifier_config import RewardClassifierConfig
from hilrl.tools.labels import read_label_set
from hilrl.transport.config import load_document, section
from hilrl.transport.schema import SchemaError


def train_from_labels(
    doc: dict[str, Any], labels_dir: str | Path, out_dir: str | Path | None = None, epochs: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Train on `labels_dir` with the document's `reward_classifier.train`, write the files, and
    return the summary that `main` prints."""
    from hilrl.policies.classifier import LabelledData, save_classifier, train_classifier

    config = section(doc, "reward_classifier", RewardClassifierConfig).train
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    labels = read_label_set(labels_dir)
    data = LabelledData(labels.images, labels.labels, labels.episodes)
    trained = train_classifier(data, list(labels.cameras), config, progress=True)
    out = Path(out_dir) if out_dir is not None else Path(labels_dir) / "classifier"
    source = {
        "labels_dir": str(labels_dir),
        "labels_manifest_sha256": labels.manifest_sha256,
        "task": labels.manifest.get("task"),
        "camera_role": labels.manifest.get("camera_role"),
        "label_source": labels.manifest.get("label_source"),
    }
    path, sha256 = save_classifier(trained, out, source)
    metrics = trained.metrics
    return {
        "threshold": trained.threshold,
        "threshold_rule": trained.threshold_rule,
        "validation": metrics["validation"],
        "train": metrics["train"],
        "validation_episodes": metrics["validation_episodes"],
        "train_episodes": metrics["train_episodes"],
        "cameras": list(labels.cameras),
        "wall_time_s": metrics["wall_time_s"],
        "env": {"reward_classifier": {"path": str(path), "sha256": sha256}},
    }


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Train the reward classifier on frames from hilrl record-labels.")
    parser.add_argument("--config", required=True, help="task YAML file (its reward_classifier.train section)")
    parser.add_argument("--labels", type=Path, required=True, help="folder written by hilrl record-labels")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default LABELS/classifier)")
    parser.add_argument("--epochs", type=int, default=None, help="override reward_classifier.train.epochs")
    parser.add_argument("--seed", type=int, default=None, help="override reward_classifier.train.seed")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. reward_classifier.train.device=cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    try:
        doc = load_document(args.config, args.overrides)
        summary = train_from_labels(doc, args.labels, args.out, args.epochs, args.seed)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
