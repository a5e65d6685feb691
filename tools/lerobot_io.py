"""LeRobot datasets out and in: `hilrl export --format lerobot` and `hilrl import --format lerobot`.

    hilrl export --format lerobot DIR OUT [--only-successful] [--last N] [--fps HZ] [--task TEXT]
    hilrl import --format lerobot DATASET OUT [--state F[,F...]] [--camera NAME=FEATURE ...]
                 [--action F] [--reward F] [--done F]

DIR is a demo folder (`hilrl record-demos`, a run's demos/) or a run directory (its learner's
store, every episode every robot sent). OUT of an export is a LeRobotDataset in the v3.0 layout
(LeRobot >= 0.4), written here with pyarrow, without LeRobot itself:

    meta/info.json                       codebase_version v3.0, fps, features, totals, paths
    meta/stats.json                      per feature: min, max, mean, std, count, q01 ... q99
    meta/tasks.parquet                   the task text -> task_index (one task: the config's)
    meta/episodes/chunk-000/file-000.parquet   per episode: length, where its frames are, stats/*
    data/chunk-000/file-NNN.parquet      one row per frame, files of about 100 MB
    meta/hilrl/final_observations.parquet      each episode's final observation (ours, see below)

A frame is one of our transitions: the observation and the action taken from it, with what that
step returned (`next.*`):

    observation.state             float32 (S,)       the state vector
    observation.images.<camera>   image (H, W, 3)    PNG, as LeRobot stores image features
    action                        float32 (A,)       our [-1, 1] action (gripper last)
    next.reward, next.done        float32, bool      done = terminated or truncated
    next.terminated               bool               (ours) done by the task, not a time limit
    intervened                    bool               (ours) the operator drove this step
    gripper_switched              bool               (ours) the step changed the gripper command
    policy_version                int64              (ours) the weights that acted (-1: none)
    timestamp, frame_index, episode_index, index, task_index   LeRobot's own

LeRobot has no place for an episode's final observation (the next observation of its last
frame). The export keeps it in meta/hilrl/final_observations.parquet, which LeRobot ignores, so an
export imports back exactly. A dataset without it (any other LeRobot dataset) imports with the
last frame's observation standing in as the final one: exact for a terminated episode (its next
observation is never bootstrapped from), an approximation for a time limit.

Import maps features by a small spec (the flags above; defaults: state `observation.state`,
every image feature as a camera named after its last dotted part, action `action`, reward
`next.reward`, done `next.done`, and our extra features when present) onto a demo folder the
learner takes as `learner.demos`. Video features are refused (decode them to images first).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.actor.recorder import ChunkRecorder
from hilrl.tools.browse import chunk_files
from hilrl.transport.chunkfile import (
    ChunkDirectory,
    ChunkFileError,
    read_message,
    write_json_atomic,
)
from hilrl.transport.config import load_document
from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk
from hilrl.transport.run_dir import RunDir

CODEBASE_VERSION = "v3.0"
DATA_FILE_BYTES = 100 * 1024 * 1024  # LeRobot's default data file size
FINAL_OBSERVATIONS = "meta/hilrl/final_observations.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
EXTRA_FLAGS = ("next.terminated", "intervened", "gripper_switched")


class LeRobotFormatError(Exception):
    """The source or dataset cannot be converted; the message says why (exit code 2)."""


# ---------------------------------------------------------------------------------- our episodes


@dataclass
class Episode:
    """One episode's records in order (K = transitions + 1 with its final observation).

    state (K, S) float32; images {camera: (K, H, W, 3) uint8}; action (K, A) float32; reward,
    terminated, truncated, intervened, gripper_switched, has_action (K,); policy_version (K,).
    complete: the final observation record (has_action False) is the last record.
    """

    session: str
    episode_id: int
    records: list[TransitionChunk] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in self.records])

    def images(self, camera: str) -> np.ndarray:
        return np.concatenate([c.obs_images[camera] for c in self.records])

    @property
    def complete(self) -> bool:
        return bool(not self.records[-1].has_action[-1])

    @property
    def steps(self) -> int:
        return int(self.column("has_action").sum())

    @property
    def succeeded(self) -> bool:
        """A step terminated it with a positive reward (the sim's and our demos' success)."""
        return bool((self.column("terminated") & (self.column("reward") > 0) & self.column("has_action")).any())


def _select(chunk: TransitionChunk, mask: np.ndarray) -> TransitionChunk:
    fields = {name: getattr(chunk, name)[mask] for name in (
        "obs_state", "action", "reward", "terminated", "truncated", "intervened", "gripper_switched", "has_action",
        "episode_id", "step_index", "policy_version")}
    return TransitionChunk(actor_session=chunk.actor_session, seq=chunk.seq,
                           obs_images={k: v[mask] for k, v in chunk.obs_images.items()}, robot_name=chunk.robot_name,
                           **fields)


def read_episodes(folder: Path) -> list[Episode]:
    """Every episode in a chunk folder, in the order their first records were stored (episodes of
    several actors interleave in a run's store; each is kept apart by its session)."""
    episodes: dict[tuple[str, int], Episode] = {}
    for file in chunk_files(folder).values():
        try:
            _, msg = read_message(file, LEARNER_MESSAGES)
        except ChunkFileError as exc:
            raise LeRobotFormatError(f"{file} does not read back ({exc}); nothing was written") from None
        if not isinstance(msg, TransitionChunk) or len(msg) == 0:
            continue
        for episode_id in dict.fromkeys(msg.episode_id.tolist()):
            key = (msg.actor_session, int(episode_id))
            ep = episodes.setdefault(key, Episode(msg.actor_session, int(episode_id)))
            ep.records.append(_select(msg, msg.episode_id == episode_id))
    return [ep for ep in episodes.values() if ep.steps > 0]


def _source(path: Path) -> tuple[Path, dict[str, Any]]:
    """(the chunk folder, what the source says about itself: task, fps) of a demo folder or run."""
    if not path.is_dir():
        raise LeRobotFormatError(f"{path}: no such folder")
    run = RunDir(path)
    config = run.saved_config()
    about: dict[str, Any] = {"task": "", "fps": 10}
    if config is not None:
        doc = load_document(config)
        about["task"] = doc.get("task", "")
        about["fps"] = (doc.get("robot_server") or {}).get("control_rate_hz", 10)
    if (path / "demos.json").is_file():
        about["task"] = json.loads((path / "demos.json").read_text()).get("task", about["task"])
        return path, about
    if config is not None and run.learner_chunks.is_dir():
        return run.learner_chunks, about
    if chunk_files(path):
        return path, about
    raise LeRobotFormatError(f"{path} is neither a demo folder (demos.json and chunk files) nor a run directory "
                             "(a saved config and learner/link/chunks)")


# ---------------------------------------------------------------------------------- statistics


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of (N, ...) values: min, max, mean, std, count and the
    quantiles q01 ... q99 over the frames; an image's are per channel over pixels too, scaled to
    [0, 1], shaped (3, 1, 1)."""
    if image:
        data = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0  # (N * H * W, 3)
        shape: tuple[int, ...] = (values.shape[-1], 1, 1)
    else:
        data = values.reshape(len(values), -1).astype(np.float64)
        shape = data.shape[1:]
    out = {"min": data.min(axis=0), "max": data.max(axis=0), "mean": data.mean(axis=0), "std": data.std(axis=0)}
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = np.quantile(data, q, axis=0)
    out = {k: v.reshape(shape) for k, v in out.items()}
    out["count"] = np.array([len(values)], np.int64)
    return out


def _merge_stats(parts: list[dict[str, np.ndarray]], weights: list[int]) -> dict[str, np.ndarray]:
    """Dataset statistics from the episodes': exact min, max, mean, std and count; quantiles as the
    frame-weighted mean of the episodes' (as LeRobot aggregates them)."""
    w = np.array(weights, np.float64)
    total = w.sum()
    mean = sum(p["mean"] * wi for p, wi in zip(parts, w, strict=True)) / total
    second = sum((p["std"] ** 2 + p["mean"] ** 2) * wi for p, wi in zip(parts, w, strict=True)) / total
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(np.maximum(second - mean**2, 0.0)), "count": np.array([int(total)], np.int64)}
    for key in parts[0]:
        if key.startswith("q"):
            out[key] = sum(p[key] * wi for p, wi in zip(parts, w, strict=True)) / total
    return out


# ---------------------------------------------------------------------------------- export


def _png(image: np.ndarray) -> bytes:
    import imageio.v3 as iio  # a dependency (gymnasium's MuJoCo envs need it); PNG through pillow

    return iio.imwrite("<bytes>", np.ascontiguousarray(image), extension=".png")


def _hf_feature(spec: dict[str, Any]) -> dict[str, Any]:
    """The `datasets` feature of a LeRobot feature (what LeRobot's get_hf_features_from_features
    makes), for the data files' schema metadata."""
    if spec["dtype"] == "image":
        return {"_type": "Image"}
    if tuple(spec["shape"]) == (1,):
        return {"dtype": spec["dtype"], "_type": "Value"}
    return {"feature": {"dtype": spec["dtype"], "_type": "Value"}, "length": spec["shape"][0], "_type": "List"}


def _features(state_dim: int, action_dim: int, cameras: dict[str, tuple[int, ...]]) -> dict[str, dict[str, Any]]:
    scalar = {"shape": [1], "names": None}
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None}}
    for camera, shape in cameras.items():
        features[f"observation.images.{camera}"] = {"dtype": "image", "shape": list(shape),
                                                    "names": ["height", "width", "channels"]}
    features.update({
        "action": {"dtype": "float32", "shape": [action_dim], "names": None},
        "next.reward": {"dtype": "float32", **scalar}, "next.done": {"dtype": "bool", **scalar},
        "next.terminated": {"dtype": "bool", **scalar}, "intervened": {"dtype": "bool", **scalar},
        "gripper_switched": {"dtype": "bool", **scalar}, "policy_version": {"dtype": "int64", **scalar},
        "timestamp": {"dtype": "float32", **scalar}, "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar}, "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    })
    return features


def _arrow_type(spec: dict[str, Any]) -> Any:
    import pyarrow as pa

    if spec["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[spec["dtype"]]
    return value if tuple(spec["shape"]) == (1,) else pa.list_(value, spec["shape"][0])


def _frames(ep: Episode, episode_index: int, first_index: int, fps: float, cameras: Sequence[str]) -> dict[str, Any]:
    """The episode's frames as columns (the transitions: records with an action)."""
    acted = ep.column("has_action")
    n = int(acted.sum())
    terminated, truncated = ep.column("terminated")[acted], ep.column("truncated")[acted]
    frame = np.arange(n, dtype=np.int64)
    columns: dict[str, Any] = {"observation.state": ep.column("obs_state")[acted].astype(np.float32)}
    for camera in cameras:
        columns[f"observation.images.{camera}"] = [{"bytes": _png(img), "path": None}
                                                   for img in ep.images(camera)[acted]]
    columns.update({
        "action": ep.column("action")[acted].astype(np.float32),
        "next.reward": ep.column("reward")[acted].astype(np.float32),
        "next.done": terminated | truncated, "next.terminated": terminated,
        "intervened": ep.column("intervened")[acted], "gripper_switched": ep.column("gripper_switched")[acted],
        "policy_version": ep.column("policy_version")[acted].astype(np.int64),
        "timestamp": (frame / fps).astype(np.float32), "frame_index": frame,
        "episode_index": np.full(n, episode_index, np.int64), "index": first_index + frame,
        "task_index": np.zeros(n, np.int64),
    })
    return columns


def _table(columns: dict[str, Any], features: dict[str, dict[str, Any]]) -> Any:
    import pyarrow as pa

    arrays = []
    for name, spec in features.items():
        value = columns[name]
        kind = _arrow_type(spec)
        if isinstance(kind, pa.FixedSizeListType):
            flat = np.ascontiguousarray(value).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, kind.value_type), kind.list_size))
        else:
            arrays.append(pa.array(value, kind))
    return pa.Table.from_arrays(arrays, names=list(features))


def export_lerobot(source: Path, out: Path, *, only_successful: bool = False, last: int | None = None,
                   fps: float | None = None, task: str | None = None) -> dict[str, Any]:
    """Write the episodes of `source` (a demo folder or a run) as a LeRobotDataset v3.0 in `out`
    (which must not exist); returns a summary. Raises LeRobotFormatError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if out.exists():
        raise LeRobotFormatError(f"{out} exists: give a new folder (an export never overwrites)")
    folder, about = _source(source)
    episodes = read_episodes(folder)
    found = len(episodes)
    if only_successful:
        episodes = [ep for ep in episodes if ep.succeeded]
    if last is not None:
        episodes = episodes[-last:] if last > 0 else []
    if not episodes:
        raise LeRobotFormatError(f"{source}: no episode to export ({found} found"
                                 f"{', none successful' if only_successful else ''})")
    fps = float(fps if fps is not None else about["fps"])
    task = task if task is not None else (about["task"] or "task")
    first = episodes[0].records[0]
    cameras = {name: tuple(images.shape[1:]) for name, images in first.obs_images.items()}
    features = _features(first.obs_state.shape[1], first.action.shape[1], cameras)
    schema = pa.schema([(name, _arrow_type(spec)) for name, spec in features.items()],
                       metadata={"huggingface": json.dumps({"info": {"features": {
                           name: _hf_feature(spec) for name, spec in features.items()}}})})
    tmp = out.with_name(out.name + f".tmp-{uuid.uuid4().hex[:8]}")
    (tmp / "data" / "chunk-000").mkdir(parents=True)
    writer, file_index, file_bytes, index = None, -1, 0, 0
    episode_rows: list[dict[str, Any]] = []
    per_feature: dict[str, list[dict[str, np.ndarray]]] = {}
    finals: list[dict[str, Any]] = []
    try:
        for episode_index, ep in enumerate(episodes):
            columns = _frames(ep, episode_index, index, fps, list(cameras))
            table = _table(columns, features)
            if writer is None or file_bytes >= DATA_FILE_BYTES:
                if writer is not None:
                    writer.close()
                file_index, file_bytes = file_index + 1, 0
                writer = pq.ParquetWriter(tmp / "data" / "chunk-000" / f"file-{file_index:03d}.parquet", schema)
            writer.write_table(table.replace_schema_metadata(schema.metadata))
            file_bytes += table.nbytes
            n = table.num_rows
            stats = {}
            for name, spec in features.items():
                if spec["dtype"] == "image":
                    stats[name] = feature_stats(ep.images(name.removeprefix("observation.images."))[ep.column("has_action")],
                                                image=True)
                else:
                    stats[name] = feature_stats(np.asarray(columns[name]))
                per_feature.setdefault(name, []).append(stats[name])
            row: dict[str, Any] = {"episode_index": episode_index, "tasks": [task], "length": n,
                                   "data/chunk_index": 0, "data/file_index": file_index,
                                   "dataset_from_index": index, "dataset_to_index": index + n,
                                   "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for name, values in stats.items():
                for stat, value in values.items():
                    row[f"stats/{name}/{stat}"] = value.tolist()
            episode_rows.append(row)
            if ep.complete:
                final = {"episode_index": episode_index, "observation.state": ep.records[-1].obs_state[-1].tolist()}
                for camera in cameras:
                    final[f"observation.images.{camera}"] = {"bytes": _png(ep.records[-1].obs_images[camera][-1]),
                                                             "path": None}
                finals.append(final)
            index += n
        if writer is not None:
            writer.close()
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(episode_rows), tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
        pq.write_table(_tasks_table([task]), tmp / "meta" / "tasks.parquet")
        (tmp / "meta" / "hilrl").mkdir()
        if finals:
            pq.write_table(pa.Table.from_pylist(finals), tmp / FINAL_OBSERVATIONS)
        stats = {name: {k: v.tolist() for k, v in _merge_stats(parts, [e["length"] for e in episode_rows]).items()}
                 for name, parts in per_feature.items()}
        write_json_atomic(tmp / "meta" / "stats.json", stats)
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": about.get("robot_type"),
                "total_episodes": len(episodes), "total_frames": index, "total_tasks": 1, "chunks_size": 1000,
                "data_files_size_in_mb": DATA_FILE_BYTES // (1024 * 1024), "video_files_size_in_mb": 200,
                "fps": int(round(fps)) if float(fps).is_integer() else fps, "splits": {"train": f"0:{len(episodes)}"},
                "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
                "features": features}
        write_json_atomic(tmp / "meta" / "info.json", info)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "episodes": len(episodes), "frames": index, "found": found, "cameras": list(cameras),
            "fps": fps, "task": task, "data_files": file_index + 1, "final_observations": len(finals)}


def _tasks_table(tasks: list[str]) -> Any:
    """meta/tasks.parquet as pandas writes it (LeRobot reads it with pandas: the task text is the
    index, task_index the column)."""
    import pyarrow as pa

    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
         "metadata": None}], "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}}
    return pa.Table.from_arrays([pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.string())],
                                names=["task_index", "__index_level_0__"]).replace_schema_metadata(
        {"pandas": json.dumps(pandas_meta)})


# ---------------------------------------------------------------------------------- import


@dataclass
class ImportSpec:
    """Which dataset features make our records (the module docstring's defaults)."""

    state: list[str] = field(default_factory=lambda: ["observation.state"])
    cameras: dict[str, str] | None = None  # our camera name -> image feature; None: every image feature
    action: str = "action"
    reward: str = "next.reward"
    done: str = "next.done"


def _decode(cell: dict[str, Any] | None, feature: str, root: Path) -> np.ndarray:
    import imageio.v3 as iio

    if cell is None:
        raise LeRobotFormatError(f"{feature}: a frame has no image")
    data = cell.get("bytes")
    if data is None and cell.get("path"):
        data = (root / cell["path"]).read_bytes()
    image = iio.imread(io.BytesIO(data))
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise LeRobotFormatError(f"{feature}: images must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


def import_lerobot(dataset: Path, out: Path, spec: ImportSpec | None = None) -> dict[str, Any]:
    """Turn a LeRobotDataset (v3.0, local folder) into a demo folder in `out` (which must not
    exist); returns the summary written as OUT/demos.json. Raises LeRobotFormatError."""
    import pyarrow.parquet as pq

    spec = spec or ImportSpec()
    info_path = dataset / "meta" / "info.json"
    if not info_path.is_file():
        raise LeRobotFormatError(f"{dataset}: no meta/info.json (is it a LeRobotDataset folder?)")
    info = json.loads(info_path.read_text())
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise LeRobotFormatError(f"{dataset}: codebase_version {info.get('codebase_version')!r}; this reads v3.x "
                                 "(convert older datasets with LeRobot's own v2.1 -> v3.0 script first)")
    features: dict[str, dict[str, Any]] = info["features"]
    videos = [name for name, f in features.items() if f["dtype"] == "video"]
    cameras = spec.cameras if spec.cameras is not None else {
        name.split(".")[-1]: name for name, f in features.items() if f["dtype"] == "image"}
    wanted = [*spec.state, spec.action, spec.reward, spec.done, *cameras.values()]
    missing = [name for name in wanted if name not in features]
    if missing:
        raise LeRobotFormatError(f"{dataset} has no feature {missing[0]!r}; it has {', '.join(sorted(features))} "
                                 "(map others with the import flags)")
    as_video = [name for name in wanted if name in videos]
    if as_video:
        raise LeRobotFormatError(f"{dataset}: {as_video[0]} is a video feature, which this import does not decode: "
                                 "convert the dataset's videos to image features first, or leave the camera out "
                                 "with --camera")
    if out.exists():
        raise LeRobotFormatError(f"{out} exists: give a new folder (an import never overwrites)")
    files = sorted((dataset / "data").glob("*/*.parquet"))
    finals: dict[int, dict[str, Any]] = {}
    if (dataset / FINAL_OBSERVATIONS).is_file():
        finals = {row["episode_index"]: row for row in pq.read_table(dataset / FINAL_OBSERVATIONS).to_pylist()}
    flags = [f for f in EXTRA_FLAGS if f in features]
    has_version = "policy_version" in features
    columns = ["episode_index", "frame_index", *spec.state, spec.action, spec.reward, spec.done, *cameras.values(),
               *flags, *(["policy_version"] if has_version else [])]
    first_action = features[spec.action]["shape"][0]
    recorder = ChunkRecorder(first_action, chunk_steps=10, cameras=tuple(cameras))
    tmp = out.with_name(out.name + f".tmp-{uuid.uuid4().hex[:8]}")  # renamed to OUT once complete
    store = ChunkDirectory(tmp)
    session = f"lerobot-{uuid.uuid4().hex[:12]}"
    seq = episodes = transitions = approximated = 0
    started = time.monotonic()

    def observation(row: dict[str, Any]) -> dict[str, np.ndarray]:
        state = np.concatenate([np.atleast_1d(np.asarray(row[f], np.float32)) for f in spec.state])
        return {"state": state, **{cam: _decode(row[f], f, dataset) for cam, f in cameras.items()}}

    try:
        for episode_rows in _episodes_in(files, columns):
            index = int(episode_rows[0]["episode_index"])
            recorder.start_episode(episodes, observation(episode_rows[0]))
            chunks: list[TransitionChunk] = []
            for i, row in enumerate(episode_rows):
                last = i == len(episode_rows) - 1
                done = bool(row[spec.done]) or last  # the dataset's episode ends at its last frame
                terminated = bool(row["next.terminated"]) if "next.terminated" in flags else bool(row[spec.done])
                if last and index in finals:
                    next_obs = observation(finals[index])
                elif last:
                    next_obs = observation(row)  # no final observation in the dataset: the last one stands in
                    approximated += 1
                else:
                    next_obs = observation(episode_rows[i + 1])
                action = np.asarray(row[spec.action], np.float32)
                if not np.all(np.isfinite(action)) or np.abs(action).max(initial=0) > 1 + 1e-6:
                    raise LeRobotFormatError(f"episode {index} frame {row['frame_index']}: {spec.action} is outside "
                                             "[-1, 1] (our action format): rescale it before importing")
                chunks += recorder.add_step(
                    action, float(row[spec.reward]), done and terminated, done and not terminated,
                    bool(row.get("intervened", False)), bool(row.get("gripper_switched", False)),
                    int(row["policy_version"]) if has_version else -1, next_obs)
            chunks += recorder.end_episode()
            for chunk in chunks:
                seq += 1
                chunk.actor_session, chunk.seq = session, seq
                store.append(chunk, LEARNER_MESSAGES)
            transitions += len(episode_rows)
            episodes += 1
    except BaseException:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store.close()
    tasks = pq.read_table(dataset / "meta" / "tasks.parquet").to_pylist() if (dataset / "meta" / "tasks.parquet").is_file() else []
    texts = [v for row in tasks for v in row.values() if isinstance(v, str)]
    summary = {"task": texts[0] if texts else "", "episodes": episodes, "attempts": episodes,
               "transitions": transitions, "cameras": list(cameras), "driver": "lerobot", "device": "none",
               "source": str(dataset), "final_observations_approximated": approximated,
               "wall_time_s": round(time.monotonic() - started, 3)}
    write_json_atomic(tmp / "demos.json", summary, fsync=True)
    tmp.rename(out)
    return summary


def _episodes_in(files: Sequence[Path], columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    """Each episode's rows in frame order (an episode may span data files)."""
    import pyarrow.parquet as pq

    current: list[dict[str, Any]] = []
    for path in files:
        for row in pq.read_table(path, columns=columns).to_pylist():
            if current and row["episode_index"] != current[-1]["episode_index"]:
                yield sorted(current, key=lambda r: r["frame_index"])
                current = []
            current.append(row)
    if current:
        yield sorted(current, key=lambda r: r["frame_index"])


# ---------------------------------------------------------------------------------- command lines


def main_export(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Export demos or a run as a LeRobotDataset (v3.0).")
    parser.add_argument("--format", choices=["lerobot"], required=True)
    parser.add_argument("source", type=Path, help="a demo folder or a run directory")
    parser.add_argument("out", type=Path, help="the dataset folder to write (must not exist)")
    parser.add_argument("--only-successful", action="store_true", help="only episodes that ended in success")
    parser.add_argument("--last", type=int, metavar="N", help="only the last N episodes (after --only-successful)")
    parser.add_argument("--fps", type=float, help="frames per second (default: the config's control rate)")
    parser.add_argument("--task", help="the task text (default: the config's task name)")
    args = parser.parse_args(argv)
    if args.last is not None and args.last < 1:
        parser.error("--last must be >= 1")
    try:
        summary = export_lerobot(args.source, args.out, only_successful=args.only_successful, last=args.last,
                                 fps=args.fps, task=args.task)
    except LeRobotFormatError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def main_import(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Import a LeRobotDataset (v3.0) as a demo folder.")
    parser.add_argument("--format", choices=["lerobot"], required=True)
    parser.add_argument("dataset", type=Path, help="a local LeRobotDataset folder (meta/info.json)")
    parser.add_argument("out", type=Path, help="the demo folder to write (must not exist)")
    parser.add_argument("--state", default="observation.state", help="comma-separated features concatenated as the state")
    parser.add_argument("--camera", action="append", default=None, metavar="NAME=FEATURE",
                        help="a camera from an image feature (repeat; default: every image feature)")
    parser.add_argument("--action", default="action")
    parser.add_argument("--reward", default="next.reward")
    parser.add_argument("--done", default="next.done")
    args = parser.parse_args(argv)
    cameras = None
    if args.camera is not None:
        pairs = [c.split("=", 1) for c in args.camera]
        if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
            parser.error("--camera takes NAME=FEATURE, e.g. --camera front=observation.images.front")
        cameras = dict(pairs)
    spec = ImportSpec(state=args.state.split(","), cameras=cameras, action=args.action, reward=args.reward,
                      done=args.done)
    try:
        summary = import_lerobot(args.dataset, args.out, spec)
    except LeRobotFormatError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0
