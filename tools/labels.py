"""Record labelled frames for the reward classifier:
`hilrl record-labels --config FILE --out DIR [--episodes N | --frames N]`.

Every step of every episode saves the classifier cameras' frames with a label: does this frame
show the task succeeded? The frames are those of the `role: classifier` cameras
(`info["classifier_images"]`); when no camera has that role, the policy cameras' frames from the
observation are used instead (the classifier then sees what the policy sees), and the manifest
records which (`camera_role`).

Who drives and who labels, from `actor.intervention.device`:
    scripted (sim): the task's scripted expert drives every step, and the label is the sim's own
        success check (`info["succeeded"]`: ground truth, e.g. the cube is 6 cm up). A configured
        `env.reward_classifier` is switched off for recording, so the labels can never come from
        a classifier.
    spacemouse / keyboard / gamepad (a real cell, or the sim teleoperated): the operator drives
        (no policy: when the device lets go the arm holds still), and the label is the device's
        `success_held()`: the SpaceMouse's `success_hold_button` held, the keyboard's
        `success_toggle` key toggled on, or the gamepad's `success_hold` button held (Y by
        default), at the moment the frame is taken. The operator's
        success/failure gesture ends the episode early (it labels no frame).
Between an operator's episodes the arm waits at home while the scene is set up by hand; the
operator's first input starts the next one (`--no-wait`: at once). An episode ends at the env's
time limit or a controller error, at the operator's end gesture, or
`reward_classifier.labels.steps_after_success` steps after its first success frame. The env's own
termination on success is ignored here: showing the success for a while is the point.

Balance: all success frames are kept; the others are subsampled uniformly at random over the whole
session (seeded) to at most `max_negative_ratio` per success frame (see LabelConfig). The frames
are first written to `DIR/.staging/` as they are recorded (nothing is held in memory beyond one
episode), then the kept ones are written to DIR and the staging folder is removed.

On disk, no pickle (transport/chunkfile.py message files, CRC-checked):
    DIR/000000000.chunk ...   one `LabelledFrames` message per episode with kept frames
    DIR/labels.json           the manifest: format, task, cameras and their frame size, the camera
                              role, label source, balance settings, counts (recorded and kept,
                              success and not), one entry per episode with its file and counts
`read_label_set(DIR)` reads it back, checking every file against the manifest.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.actor.config import ActorConfig
from hilrl.policies.classifier_config import LabelConfig, RewardClassifierConfig
from hilrl.transport.chunkfile import ChunkDirectory, ChunkFileError, write_json_atomic
from hilrl.transport.codec import Registry
from hilrl.transport.config import document_hash, load_document, section
from hilrl.transport.schema import SchemaError

log = logging.getLogger(__name__)

LABELS_FORMAT = "hilrl-labels"
LABELS_VERSION = 1
MANIFEST = "labels.json"
STAGING = ".staging"
# `--frames` mode stops after this many episodes even when the target is not reached (e.g. an
# expert that never succeeds), so a recording cannot run forever.
MAX_EPISODES = 10_000


@dataclass
class LabelledFrames:
    """One episode's labelled frames (a message file).

    Attributes:
        session: the recording session's id.
        episode: episode number within the session (0, 1, ...).
        label: (K,) bool, True = the frame shows success.
        step_index: (K,) int32, the frame's step in the episode (0 = the reset observation).
        images: camera -> (K, H, W, 3) uint8.
    """

    session: str
    episode: int
    label: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    step_index: np.ndarray = field(metadata={"shape": (None,), "dtype": "int32"})
    images: dict[str, np.ndarray] = field(default_factory=dict, metadata={"shape": (None, None, None, 3), "dtype": "uint8"})

    def __post_init__(self) -> None:
        k = len(self.label)
        if len(self.step_index) != k or any(len(v) != k for v in self.images.values()):
            raise ValueError("label, step_index and every camera's images must hold the same number of frames")


LABEL_MESSAGES = Registry({"labelled_frames": LabelledFrames})


# ---------------------------------------------------------------------------------- sources


def label_cameras(env: Any) -> tuple[dict[str, tuple[int, int]], str]:
    """({camera: (H, W)}, role) of the frames to record: the env's `role: classifier` cameras,
    else its policy cameras ("policy"). Raises ValueError when it has no camera at all."""
    obs_config = env.unwrapped.config.observation
    cams = obs_config.classifier_cameras
    role = "classifier"
    if not cams:
        cams, role = obs_config.policy_cameras, "policy"
    if not cams:
        raise SchemaError(
            "env.observation.cameras",
            "record-labels needs at least one camera (role: classifier, or policy cameras to fall back on)",
        )
    return {c.name: (int(c.size[0]), int(c.size[1])) for c in cams}, role


def frames_of(obs: dict[str, np.ndarray], info: dict[str, Any], cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """This step's frame of each recorded camera: info["classifier_images"] first, else obs."""
    classifier = info.get("classifier_images", {})
    return {cam: classifier[cam] if cam in classifier else obs[cam] for cam in cameras}


class ExpertLabeller:
    """Sim: the task's scripted expert drives; labels are the sim's success check."""

    description = "sim task success check (info['succeeded']); the scripted expert drives"

    def __init__(self, task: str, env: Any):
        from hilrl.actor.experts import expert_for

        self.expert = expert_for(task, env)

    def reset(self) -> None:
        self.expert.reset()

    def act(self, state: Any) -> np.ndarray:
        return self.expert.act(state)

    def success(self, info: dict[str, Any]) -> bool:
        return bool(info["succeeded"])

    def episode_ended(self) -> bool:
        return False

    def close(self) -> None:
        pass


class OperatorLabeller:
    """An operator device drives (no policy) and labels frames with `success_held()`."""

    def __init__(self, device: Any, action_dim: int, name: str):
        if not callable(getattr(device, "success_held", None)):
            raise ValueError(
                f"actor.intervention.device: {name} cannot label frames (it has no success_held()); "
                "use spacemouse (with spacemouse.success_hold_button), keyboard or gamepad, or scripted in the sim"
            )
        self.device = device
        self.description = f"operator ({name}): success held"
        self._zeros = np.zeros(action_dim, dtype=np.float32)
        self._label = getattr(device, "label", None)

    def reset(self) -> None:
        self.device.reset()

    def act(self, state: Any) -> np.ndarray:
        action = self.device.intervene(state, self._zeros)
        # No policy here: when the operator lets go the arm holds still (and the gripper keeps).
        return self._zeros if action is None else np.asarray(action, dtype=np.float32)

    def success(self, info: dict[str, Any]) -> bool:
        return bool(self.device.success_held())

    def episode_ended(self) -> bool:
        return self._label is not None and self._label() is not None

    def close(self) -> None:
        self.device.close()


# ---------------------------------------------------------------------------------- balance


def balance(labels: Sequence[np.ndarray], max_negative_ratio: float | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Which frames to keep, per episode ((K_e,) bool masks for each episode's (K_e,) labels).

    Every success frame is kept; of the N other frames, min(N, floor(ratio * P)) are kept (P:
    success frames in all episodes), drawn uniformly without replacement over all episodes
    together, so early and late episodes and early and late steps are treated alike. With
    `max_negative_ratio` None, or no success frame at all (nothing to balance against: logged),
    everything is kept.
    """
    labels = [np.asarray(y, dtype=bool) for y in labels]
    n_pos = sum(int(y.sum()) for y in labels)
    n_neg = sum(int((~y).sum()) for y in labels)
    if max_negative_ratio is None or n_pos == 0:
        if n_pos == 0 and n_neg:
            log.warning("no success frame was recorded: every frame is kept, but a classifier needs success frames too")
        return [np.ones(len(y), dtype=bool) for y in labels]
    keep_neg = min(n_neg, math.floor(max_negative_ratio * n_pos))
    chosen = np.zeros(n_neg, dtype=bool)
    chosen[rng.choice(n_neg, size=keep_neg, replace=False)] = True
    masks, offset = [], 0
    for y in labels:
        mask = y.copy()
        neg = np.flatnonzero(~y)
        mask[neg] = chosen[offset : offset + len(neg)]
        offset += len(neg)
        masks.append(mask)
    return masks


def balanced_size(labels: Sequence[np.ndarray], max_negative_ratio: float | None) -> int:
    """How many frames `balance` would keep (for `--frames`)."""
    n_pos = sum(int(np.sum(y)) for y in labels)
    n_all = sum(len(y) for y in labels)
    if max_negative_ratio is None or n_pos == 0:
        return n_all
    return n_pos + min(n_all - n_pos, math.floor(max_negative_ratio * n_pos))


# ---------------------------------------------------------------------------------- recording


def record_labels(
    doc: dict[str, Any],
    out_dir: str | Path,
    episodes: int | None = None,
    frames: int | None = None,
    seed: int = 0,
    device: Any = None,
    wait_for_input: bool = True,
) -> dict[str, Any]:
    """Record labelled frames into `out_dir` (see the module docstring); returns the manifest.

    Args:
        doc: the task config document.
        out_dir: a new or empty folder.
        episodes: record this many episodes; or
        frames: record whole episodes until the balanced set holds at least this many frames.
        seed: episode i resets with seed + i.
        device: an InterventionDevice to use instead of building `actor.intervention.device`
            (tests, scripts); it must have success_held().
        wait_for_input: an operator's episodes start when the operator gives a first input after
            the reset (the scene is set up by hand meanwhile; see actor.interventions.wait_for_operator).
    Raises:
        SchemaError / ValueError: bad config, no camera, no operator, a non-empty `out_dir`.
    """
    from hilrl.actor.interventions import make_intervention_device
    from hilrl.actor.make import make_env

    if (episodes is None) == (frames is None):
        raise ValueError("give exactly one of episodes and frames")
    if (episodes is not None and episodes < 1) or (frames is not None and frames < 1):
        raise ValueError("episodes / frames must be >= 1")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; record labels into a new folder")
    label_cfg: LabelConfig = section(doc, "reward_classifier", RewardClassifierConfig).labels
    intervention = section(doc, "actor", ActorConfig).intervention
    task = doc.get("task", "")
    if device is None and intervention.device == "none":
        raise SchemaError(
            "actor.intervention.device",
            "record-labels needs an operator: scripted (sim: the expert drives, the sim labels), spacemouse "
            "(with spacemouse.success_hold_button), keyboard or gamepad",
        )
    doc = copy.deepcopy(doc)
    if isinstance(doc.get("env"), dict) and doc["env"].get("reward_classifier"):
        # Labels come from the task or the operator, never from a classifier being trained.
        log.info("record-labels: env.reward_classifier is ignored while recording labels")
        doc["env"]["reward_classifier"] = None

    env = make_env(doc)
    labeller: ExpertLabeller | OperatorLabeller | None = None
    staging: ChunkDirectory | None = None
    final: ChunkDirectory | None = None
    try:
        cameras, role = label_cameras(env)
        if device is not None:
            labeller = OperatorLabeller(device, env.action_space.shape[0], type(device).__name__)
        elif intervention.device == "scripted":
            labeller = ExpertLabeller(task, env)
        else:
            labeller = OperatorLabeller(
                make_intervention_device(intervention, task, env, seed), env.action_space.shape[0], intervention.device
            )
        out.mkdir(parents=True, exist_ok=True)
        staging = ChunkDirectory(out / STAGING)
        session = f"labels-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        recorded: list[np.ndarray] = []  # per episode: every frame's label
        max_steps = env.unwrapped.config.max_episode_steps
        episode = 0
        try:
            while True:
                if episodes is not None and episode >= episodes:
                    break
                if frames is not None and balanced_size(recorded, label_cfg.max_negative_ratio) >= frames:
                    break
                if frames is not None and episode >= MAX_EPISODES:
                    log.warning("stopping after %d episodes without reaching %d balanced frames", episode, frames)
                    break
                wait = wait_for_input and isinstance(labeller, OperatorLabeller)
                msg = _record_episode(env, labeller, cameras, label_cfg.steps_after_success, max_steps, seed + episode,
                                      wait, episode + 1)
                msg.session, msg.episode = session, episode
                staging.append(msg, LABEL_MESSAGES)
                recorded.append(np.array(msg.label))
                episode += 1
                kept = balanced_size(recorded, label_cfg.max_negative_ratio)
                print(
                    f"episode {episode}: {len(msg.label)} frames, {int(msg.label.sum())} success "
                    f"({kept} frames in the balanced set so far)",
                    flush=True,
                )
        except KeyboardInterrupt:
            # An operator stops a session with Ctrl-C: keep the whole episodes recorded so far.
            print(f"interrupted: keeping the {episode} whole episodes recorded so far", flush=True)

        masks = balance(recorded, label_cfg.max_negative_ratio, np.random.default_rng(label_cfg.seed))
        final = ChunkDirectory(out)
        entries = []
        for index, (y, mask) in zip(staging.indices(), zip(recorded, masks, strict=True), strict=True):
            _, msg = staging.read(index, LABEL_MESSAGES)
            entry = {
                "episode": int(msg.episode),
                "file": None,
                "recorded_frames": len(y),
                "recorded_positives": int(y.sum()),
                "frames": int(mask.sum()),
                "positives": int((y & mask).sum()),
                "negatives": int((~y & mask).sum()),
            }
            if mask.any():
                kept_msg = LabelledFrames(
                    session=msg.session,
                    episode=msg.episode,
                    label=np.array(msg.label[mask]),
                    step_index=np.array(msg.step_index[mask]),
                    images={cam: np.array(v[mask]) for cam, v in msg.images.items()},
                )
                entry["file"] = final.append(kept_msg, LABEL_MESSAGES).name
            entries.append(entry)
        all_labels = np.concatenate(recorded) if recorded else np.zeros(0, dtype=bool)
        manifest = {
            "format": LABELS_FORMAT,
            "version": LABELS_VERSION,
            "task": task,
            "session": session,
            "cameras": {cam: list(size) for cam, size in cameras.items()},
            "camera_role": role,
            "label_source": labeller.description,
            "max_negative_ratio": label_cfg.max_negative_ratio,
            "steps_after_success": label_cfg.steps_after_success,
            "balance_seed": label_cfg.seed,
            "episode_seed": seed,
            "counts": {
                "episodes": len(entries),
                "recorded_frames": int(len(all_labels)),
                "recorded_positives": int(all_labels.sum()),
                "recorded_negatives": int((~all_labels).sum()),
                "frames": sum(e["frames"] for e in entries),
                "positives": sum(e["positives"] for e in entries),
                "negatives": sum(e["negatives"] for e in entries),
            },
            "episodes": entries,
            "config_hash": document_hash(doc),
            "wall_time_s": round(time.monotonic() - started, 3),
        }
        write_json_atomic(out / MANIFEST, manifest, fsync=True)
    finally:
        if labeller is not None:
            labeller.close()
        env.close()
        for d in (staging, final):
            if d is not None:
                d.close()
    shutil.rmtree(out / STAGING, ignore_errors=True)
    return manifest


def _record_episode(
    env: Any, labeller: ExpertLabeller | OperatorLabeller, cameras: dict[str, tuple[int, int]],
    steps_after_success: int, max_steps: int, seed: int, wait_for_input: bool = False, number: int = 1,
) -> LabelledFrames:
    """One episode: a frame and its label at the reset and after every step (module docstring)."""
    obs, info = env.reset(seed=seed)
    labeller.reset()
    if wait_for_input:
        from hilrl.actor.interventions import wait_for_operator

        assert isinstance(labeller, OperatorLabeller)
        print(f"episode {number}: the arm is home; set the scene up, then give any input on the operator's device "
              "to start; Ctrl-C stops", flush=True)
        wait_for_operator(labeller.device, env.unwrapped.robot_state, np.zeros(env.action_space.shape, np.float32),
                          env.unwrapped.control_period_s)
        obs, info = env.reset(seed=seed)  # the scene as the operator left it; the time limit from now
        labeller.reset()
    images: dict[str, list[np.ndarray]] = {cam: [] for cam in cameras}
    labels: list[bool] = []
    step, first_success = 0, None
    while True:
        positive = labeller.success(info)
        for cam, frame in frames_of(obs, info, list(cameras)).items():
            images[cam].append(np.array(frame, dtype=np.uint8))
        labels.append(positive)
        if positive and first_success is None:
            first_success = step
        if first_success is not None and steps_after_success and step - first_success >= steps_after_success:
            break
        if step >= max_steps or info.get("robot_errors"):
            break
        if step > 0 and labeller.episode_ended():
            break
        # Termination (the env's success) is not a stop: the success is shown for a while.
        obs, _, _, _, info = env.step(labeller.act(env.unwrapped.robot_state))
        step += 1
    return LabelledFrames(
        session="",
        episode=0,
        label=np.array(labels, dtype=bool),
        step_index=np.arange(len(labels), dtype=np.int32),
        images={cam: np.stack(v) for cam, v in images.items()},
    )


# ---------------------------------------------------------------------------------- reading


@dataclass
class LabelSet:
    """A recorded label folder, read back and checked (`read_label_set`).

    Attributes:
        images: camera -> (N, H, W, 3) uint8, all kept frames, episode by episode.
        labels: (N,) bool. episodes: (N,) int64 episode of each frame. steps: (N,) int32 its step.
        cameras: camera -> (H, W), in the manifest's order.
        manifest: the manifest's contents. manifest_sha256: its SHA-256 (provenance).
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray
    steps: np.ndarray
    cameras: dict[str, tuple[int, int]]
    manifest: dict[str, Any]
    manifest_sha256: str


def read_label_set(path: str | Path) -> LabelSet:
    """Read a folder written by `record_labels`, checking each file against the manifest.

    Raises:
        FileNotFoundError: no manifest.
        ValueError: the manifest or a file does not match (names it), or a file is corrupt.
    """
    import hashlib

    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: not a folder written by hilrl record-labels")
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != LABELS_FORMAT or manifest.get("version") != LABELS_VERSION:
        raise ValueError(f"{manifest_path} is not a {LABELS_FORMAT} version {LABELS_VERSION} manifest")
    cameras = {str(c): (int(s[0]), int(s[1])) for c, s in manifest["cameras"].items()}
    images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    labels, episodes, steps = [], [], []
    for entry in manifest["episodes"]:
        name = entry.get("file")
        if name is None:
            continue
        if not isinstance(name, str) or Path(name).name != name:
            raise ValueError(f"{manifest_path}: episode {entry.get('episode')}: file must be a name in the folder, got {name!r}")
        try:
            _, msg = _read_frames_file(root / name)
        except ChunkFileError as exc:
            raise ValueError(str(exc)) from None
        where = f"{root / name}"
        if msg.episode != entry["episode"] or len(msg.label) != entry["frames"] or int(msg.label.sum()) != entry["positives"]:
            raise ValueError(f"{where} does not match its manifest entry {entry}")
        if set(msg.images) != set(cameras):
            raise ValueError(f"{where} holds cameras {sorted(msg.images)}, the manifest lists {sorted(cameras)}")
        for cam, size in cameras.items():
            if msg.images[cam].shape[1:] != (*size, 3):
                raise ValueError(f"{where}: camera {cam!r} frames are {msg.images[cam].shape[1:]}, the manifest says {(*size, 3)}")
            images[cam].append(msg.images[cam])
        labels.append(msg.label)
        episodes.append(np.full(len(msg.label), msg.episode, dtype=np.int64))
        steps.append(msg.step_index)
    if not labels:
        raise ValueError(f"{root}: the label set holds no frames")
    return LabelSet(
        images={cam: np.concatenate(v) for cam, v in images.items()},
        labels=np.concatenate(labels).astype(bool),
        episodes=np.concatenate(episodes),
        steps=np.concatenate(steps).astype(np.int32),
        cameras=cameras,
        manifest=manifest,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
    )


def _read_frames_file(path: Path) -> tuple[Any, LabelledFrames]:
    from hilrl.transport.chunkfile import read_message

    envelope, msg = read_message(path, LABEL_MESSAGES)
    if not isinstance(msg, LabelledFrames):
        raise ChunkFileError(path, f"holds a {envelope.kind} message, not labelled frames")
    return envelope, msg


# ---------------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Record camera frames labelled success / not success, for the reward classifier "
        "(sim: the scripted expert drives and the sim labels; real: the operator drives and holds "
        "the success button).",
    )
    parser.add_argument("--config", required=True, help="task YAML file")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--episodes", type=int, help="episodes to record (default 20)")
    amount.add_argument("--frames", type=int, help="record whole episodes until the balanced set holds this many frames")
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i")
    parser.add_argument("--no-wait", action="store_true", help="operator: start each episode at once after the "
                        "reset, instead of waiting at home for the operator's first input")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.max_episode_steps=50")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    episodes = args.episodes if args.episodes is not None or args.frames is not None else 20
    if (episodes is not None and episodes < 1) or (args.frames is not None and args.frames < 1):
        parser.error("--episodes / --frames must be >= 1")
    try:
        doc = load_document(args.config, args.overrides)
        manifest = record_labels(doc, args.out, episodes=episodes, frames=args.frames, seed=args.seed,
                                 wait_for_input=not args.no_wait)
    except (SchemaError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: manifest[k] for k in ("task", "cameras", "camera_role", "label_source", "counts")}))
    return 0
