"""LeRobot datasets out and in (hilrl.tools.lerobot_io): an export loads in LeRobot's own
LeRobotDataset with the right episodes, frames and values; demos round-trip through export and
import unchanged; a run exports all, successful or the last N episodes; what cannot be converted
is a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hilrl.actor.recorder import ChunkRecorder
from hilrl.tools.lerobot_io import (
    FINAL_OBSERVATIONS,
    ImportSpec,
    LeRobotFormatError,
    export_lerobot,
    import_lerobot,
    main_export,
    main_import,
    read_episodes,
)
from hilrl.transport.chunkfile import ChunkDirectory, write_json_atomic
from hilrl.transport.config import config_path, load_document
from hilrl.transport.learner_messages import LEARNER_MESSAGES
from hilrl.transport.run_dir import RunDir
from tests.lerobot_support import lerobot_dataset_class

S, A = 5, 4
CAMERAS = {"front": (12, 16, 3), "wrist": (8, 8, 3)}


def _write_episodes(store: ChunkDirectory, session: str, lengths: list[int], seed: int, *, succeed: list[bool],
                    cameras: dict = CAMERAS, intervened_from: int | None = None) -> None:
    """Episodes through the actor's own recorder: random states, images and actions in [-1, 1];
    a success terminates with reward 1, else a time limit truncates."""
    rng = np.random.default_rng(seed)
    recorder = ChunkRecorder(A, chunk_steps=4, cameras=tuple(cameras))

    def obs() -> dict:
        return {"state": rng.standard_normal(S).astype(np.float32),
                **{c: rng.integers(0, 256, shape, dtype=np.uint8) for c, shape in cameras.items()}}

    seq = 0
    for e, (length, ok) in enumerate(zip(lengths, succeed, strict=True)):
        recorder.start_episode(e, obs())
        chunks = []
        for t in range(length):
            last = t == length - 1
            chunks += recorder.add_step(rng.uniform(-1, 1, A).astype(np.float32), float(last and ok), last and ok,
                                        last and not ok, intervened_from is not None and t >= intervened_from,
                                        bool(t % 3 == 0), 7, obs())
        for chunk in chunks:
            seq += 1
            chunk.actor_session, chunk.seq = session, seq
            store.append(chunk, LEARNER_MESSAGES)


def _demo_folder(path: Path, lengths=(6, 9, 4), succeed=(True, True, True), cameras=CAMERAS) -> Path:
    store = ChunkDirectory(path)
    _write_episodes(store, "demos-1", list(lengths), 0, succeed=list(succeed), cameras=cameras)
    store.close()
    write_json_atomic(path / "demos.json", {"task": "pick_cube", "episodes": len(lengths)})
    return path


def _records(folder: Path) -> list[dict[str, np.ndarray]]:
    """Each episode's records as arrays (what the learner's buffers read)."""
    out = []
    for ep in read_episodes(folder):
        rec = {name: ep.column(name) for name in ("obs_state", "action", "reward", "terminated", "truncated",
                                                   "intervened", "gripper_switched", "has_action", "step_index",
                                                   "policy_version")}
        rec.update({f"image.{c}": ep.images(c) for c in ep.records[0].obs_images})
        out.append(rec)
    return out


def test_an_export_loads_in_lerobots_own_dataset_class_with_the_same_values(tmp_path):
    LeRobotDataset = lerobot_dataset_class()
    demos = _demo_folder(tmp_path / "demos")
    summary = export_lerobot(demos, tmp_path / "ds", fps=10)
    assert summary["episodes"] == 3 and summary["frames"] == 6 + 9 + 4
    dataset = LeRobotDataset("local/hilrl-test", root=tmp_path / "ds")
    assert dataset.num_episodes == 3 and dataset.num_frames == 19 and dataset.fps == 10
    assert {"intervened", "next.terminated", "policy_version", "observation.images.front"} <= set(dataset.meta.features)
    episodes = read_episodes(demos)
    frame = 0
    for e, ep in enumerate(episodes):
        acted = ep.column("has_action")
        for t in range(ep.steps):
            item = dataset[frame]
            assert int(item["episode_index"]) == e and int(item["frame_index"]) == t
            np.testing.assert_array_equal(item["observation.state"].numpy(), ep.column("obs_state")[acted][t])
            np.testing.assert_array_equal(item["action"].numpy(), ep.column("action")[acted][t])
            assert float(item["next.reward"]) == ep.column("reward")[acted][t]
            assert bool(item["next.done"]) == (t == ep.steps - 1)
            # LeRobot gives images as float CHW in [0, 1]; PNG is lossless.
            image = (item["observation.images.front"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            np.testing.assert_array_equal(image, ep.images("front")[acted][t])
            assert item["task"] == "pick_cube"
            frame += 1
    assert dataset.meta.stats["observation.state"]["mean"].shape == (S,)
    np.testing.assert_allclose(dataset.meta.stats["action"]["max"],
                               np.max([ep.column("action")[ep.column("has_action")].max(axis=0) for ep in episodes],
                                      axis=0), rtol=1e-6)


def test_demos_round_trip_through_export_and_import_unchanged(tmp_path):
    demos = _demo_folder(tmp_path / "demos")
    export_lerobot(demos, tmp_path / "ds")
    summary = import_lerobot(tmp_path / "ds", tmp_path / "back")
    assert summary["episodes"] == 3 and summary["transitions"] == 19 and summary["final_observations_approximated"] == 0
    before, after = _records(demos), _records(tmp_path / "back")
    assert len(before) == len(after) == 3
    for a, b in zip(before, after, strict=True):
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # ... and the import is a demo folder the learner loads.
    from hilrl.learner.rlpd import RLPDTrainer
    from hilrl.transport.sections.learner import LearnerConfig
    from hilrl.transport.sections.sac import SACConfig

    trainer = RLPDTrainer(LearnerConfig(sac=SACConfig(hidden_dims=[8])), S, A, True, CAMERAS, "cpu")
    for _, chunk in ChunkDirectory(tmp_path / "back").iter_messages(LEARNER_MESSAGES):
        trainer.add_demo_chunk(chunk)
    assert len(trainer.demo) == 19  # every transition sampleable, the rewarded last ones included


def test_a_run_exports_all_successful_or_the_last_episodes_of_every_robot(tmp_path):
    run = tmp_path / "run"
    paths = RunDir(run)
    paths.learner_chunks.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(load_document(config_path("sim_pick_cube"))))
    store = ChunkDirectory(paths.learner_chunks)
    _write_episodes(store, "actor-a", [5, 7, 3], 1, succeed=[True, False, True], cameras={}, intervened_from=2)
    _write_episodes(store, "actor-b", [4, 6], 2, succeed=[False, True], cameras={})
    store.close()
    everything = export_lerobot(run, tmp_path / "all")
    assert everything["episodes"] == 5 and everything["frames"] == 25 and everything["fps"] == 10.0
    assert everything["task"] == "pick_cube" and everything["cameras"] == []
    successful = export_lerobot(run, tmp_path / "ok", only_successful=True)
    assert successful["episodes"] == 3 and successful["frames"] == 5 + 3 + 6
    last = export_lerobot(run, tmp_path / "last", last=2)
    assert last["episodes"] == 2 and last["frames"] == 4 + 6  # the store's order: actor-b's came last
    import pyarrow.parquet as pq

    data = pq.read_table(tmp_path / "all" / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    assert sum(data["intervened"]) == (5 - 2) + (7 - 2) + (3 - 2)  # the operator's steps are flagged
    assert data["index"] == list(range(25))


def test_a_dataset_without_our_final_observations_imports_with_the_last_one_standing_in(tmp_path):
    export_lerobot(_demo_folder(tmp_path / "demos"), tmp_path / "ds")
    (tmp_path / "ds" / FINAL_OBSERVATIONS).unlink()  # as any other LeRobot dataset
    summary = import_lerobot(tmp_path / "ds", tmp_path / "back", ImportSpec(cameras={"cam": "observation.images.front"}))
    assert summary["final_observations_approximated"] == 3 and summary["cameras"] == ["cam"]
    for rec in _records(tmp_path / "back"):
        np.testing.assert_array_equal(rec["obs_state"][-1], rec["obs_state"][-2])  # final = last frame's
        assert rec["terminated"][-2] and not rec["has_action"][-1]


def test_what_cannot_be_converted_is_an_error_naming_it(tmp_path, capsys):
    demos = _demo_folder(tmp_path / "demos", cameras={})
    export_lerobot(demos, tmp_path / "ds")
    with pytest.raises(LeRobotFormatError, match="exists"):
        export_lerobot(demos, tmp_path / "ds")
    with pytest.raises(LeRobotFormatError, match="no feature 'observation.joints'.*observation.state"):
        import_lerobot(tmp_path / "ds", tmp_path / "x", ImportSpec(state=["observation.joints"]))
    info_path = tmp_path / "ds" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.top"] = {"dtype": "video", "shape": [8, 8, 3], "names": None}
    info_path.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match="video feature"):
        import_lerobot(tmp_path / "ds", tmp_path / "x", ImportSpec(cameras={"top": "observation.images.top"}))
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    assert main_import(["--format", "lerobot", str(tmp_path / "ds"), str(tmp_path / "x")], prog="hilrl import") == 2
    err = capsys.readouterr().err
    assert "v2.1" in err and "Traceback" not in err
    assert main_export(["--format", "lerobot", str(tmp_path / "nowhere"), str(tmp_path / "y")], prog="hilrl export") == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_an_action_outside_our_range_is_refused_on_import(tmp_path):
    export_lerobot(_demo_folder(tmp_path / "demos", cameras={}), tmp_path / "ds")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ds" / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    actions = np.array(table.column("action").to_pylist(), np.float32) * 3.0
    column = pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), A)
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", column), path)
    with pytest.raises(LeRobotFormatError, match=r"outside \[-1, 1\].*rescale"):
        import_lerobot(tmp_path / "ds", tmp_path / "back")
    shutil.rmtree(tmp_path / "back", ignore_errors=True)


def test_a_dataset_round_trips_through_import_and_export(tmp_path):
    import pyarrow.parquet as pq

    export_lerobot(_demo_folder(tmp_path / "demos"), tmp_path / "ds")
    import_lerobot(tmp_path / "ds", tmp_path / "demos2")
    export_lerobot(tmp_path / "demos2", tmp_path / "ds2")
    for part in ("data/chunk-000/file-000.parquet", FINAL_OBSERVATIONS):
        first, second = pq.read_table(tmp_path / "ds" / part), pq.read_table(tmp_path / "ds2" / part)
        assert first.schema == second.schema and first.equals(second), part  # PNG bytes included
    info, info2 = (json.loads((d / "meta" / "info.json").read_text()) for d in (tmp_path / "ds", tmp_path / "ds2"))
    assert info == info2
    assert json.loads((tmp_path / "ds" / "meta" / "stats.json").read_text()) == \
        json.loads((tmp_path / "ds2" / "meta" / "stats.json").read_text())
