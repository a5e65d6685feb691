"""`hilrl eval`, `hilrl browse` and operator-driven `hilrl record-demos`, against a real (tiny) run:
demos recorded by the scripted expert, then `hilrl run` for a few hundred env steps with numbered
checkpoints; the evaluation loads the learner's checkpoint into the actor's Policy without a
learner process, and browse must count what the recorders wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hilrl.actor import evaluation
from hilrl.actor.interventions import InterventionWrapper, wait_for_operator
from hilrl.actor.make import make_sim_env
from hilrl.actor.operators import KeyboardOperator
from hilrl.configs import config_path
from hilrl.hardware.keyboard import KeyboardConfig, QueuedKeySource
from hilrl.tools import browse, evaluate
from hilrl.tools.demos import record_demos
from hilrl.transport.action import ActionConfig
from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.config import load_document
from hilrl.transport.learner_messages import LEARNER_MESSAGES

RUN_STEPS = 150


def chunks_of(folder: Path) -> list:
    return [m for _, m in ChunkDirectory(folder).iter_messages(LEARNER_MESSAGES)]


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "reach"
    record_demos(load_document(config_path("sim_reach")), 3, out)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, demos, hilrl) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    done = hilrl(
        "run", "--config", "configs/sim_reach.yaml", "--run-dir", str(run), "--max-env-steps", str(RUN_STEPS),
        "--eval-episodes", "2", f"learner.demos=[{demos}]", "learner.training_starts=50", "learner.batch_size=16",
        "learner.sac.hidden_dims=[32, 32]", "learner.checkpoint_every_updates=20", "learner.keep_checkpoints=3",
        timeout_s=100,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return run


# ---------------------------------------------------------------------------------- eval


@pytest.mark.timeout(150)
def test_eval_writes_the_results_next_to_the_run_and_repeats_them_exactly(run_dir, hilrl):
    first = hilrl("eval", "--run-dir", str(run_dir), "--episodes", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout.splitlines()[0])
    for key in ("success_rate", "mean_time_to_success_s", "mean_episode_length", "interventions", "episodes",
                "checkpoint", "checkpoint_updates", "weights_version", "per_episode", "written_to"):
        assert key in result, key
    progress = json.loads((run_dir / "learner" / "progress.json").read_text())
    assert result["checkpoint_updates"] == progress["updates"] > 0  # the final checkpoint: the latest
    assert result["episodes"] == 3 and len(result["per_episode"]) == 3
    assert result["interventions"] == 0 and result["operator"] == "none"  # the scripted operator stays out
    assert result["connection"] == "inprocess"  # the run's robot server is gone; the sim runs here
    assert [e["seed"] for e in result["per_episode"]] == [10_000, 10_001, 10_002]
    assert 1 <= result["mean_episode_length"] <= 50
    if result["successes"]:
        assert result["mean_time_to_success_s"] > 0
    written = Path(result["written_to"])
    assert written.parent == run_dir / "eval" and written.name.startswith(f"eval-{result['checkpoint_updates']:09d}-")
    assert json.loads(written.read_text()) == {k: v for k, v in result.items() if k != "written_to"}
    assert not list((run_dir / "eval").glob("*.tmp")), "written atomically"

    # The same checkpoint, seeds and deterministic policy: the same episodes, in a new file.
    second = evaluate.evaluate_run(run_dir, 3)
    varying = ("evaluated_at", "wall_time_s", "written_to")
    assert {k: v for k, v in second.items() if k not in varying} == {k: v for k, v in result.items() if k not in varying}
    assert second["written_to"] != result["written_to"] and Path(second["written_to"]).exists()

    # A numbered checkpoint (learner.keep_checkpoints=3) by its update count.
    kept = evaluate.available_checkpoints(run_dir)
    assert 1 <= len(kept) <= 3 and progress["updates"] in kept
    older = min(kept)
    numbered = evaluate.evaluate_run(run_dir, 1, checkpoint=str(older), write=False)
    assert numbered["checkpoint_updates"] == older and "written_to" not in numbered


@pytest.mark.timeout(150)  # may set up the module's run
def test_eval_errors_are_messages_with_exit_code_2(run_dir, tmp_path, capsys, hilrl):
    missing = hilrl("eval", "--run-dir", str(tmp_path / "nope"), "--episodes", "1")
    assert missing.returncode == 2 and "no such run directory" in missing.stderr
    assert "Traceback" not in missing.stderr

    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(run_dir / "config.yaml", no_ckpt / "config.yaml")
    assert evaluate.main(["--run-dir", str(no_ckpt), "--episodes", "1"]) == 2
    assert "no checkpoint" in capsys.readouterr().err

    assert evaluate.main(["--run-dir", str(tmp_path), "--episodes", "1"]) == 2
    assert "no saved config" in capsys.readouterr().err

    assert evaluate.main(["--run-dir", str(run_dir), "--checkpoint", "7", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at 7 updates" in err and "kept:" in err

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint")
    assert evaluate.main(["--run-dir", str(run_dir), "--checkpoint", str(garbage), "--episodes", "1"]) == 2
    assert "not a usable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


class _TakeoverThenLabel:
    """Takes over on steps 2-3 and 6 (two takeovers), labels the episode on step 7."""

    def __init__(self, label: str):
        self._label, self.steps = label, 0

    def reset(self) -> None:
        self.steps = 0

    def intervene(self, state, policy_action):
        self.steps += 1
        return np.full_like(policy_action, 0.1) if self.steps in (2, 3, 6) else None

    def label(self):
        return self._label if self.steps == 7 else None

    def close(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_the_evaluation_core_counts_takeovers_and_operator_labels():
    env = make_sim_env("reach")
    wrapped = InterventionWrapper(env, _TakeoverThenLabel("failure"))
    try:
        results = evaluation.run_episodes(wrapped, lambda obs: np.zeros(3, np.float32), 2, seed=5)
    finally:
        wrapped.close()
    assert [r.seed for r in results] == [5, 6]
    for r in results:
        assert (r.length, r.interventions, r.intervention_steps, r.label, r.success) == (7, 2, 3, "failure", False)
    total = evaluation.summarize(results)
    assert (total.interventions, total.intervention_steps, total.labelled, total.success_rate) == (4, 6, 2, 0.0)
    assert total.mean_time_to_success_s is None and total.mean_length == 7.0


# ---------------------------------------------------------------------------------- browse


@pytest.mark.timeout(60)
def test_browse_counts_what_record_demos_wrote(demos, capsys):
    manifest = json.loads((demos / "demos.json").read_text())
    chunks = chunks_of(demos)
    lengths = [int(sum(c.has_action[c.episode_id == e].sum() for c in chunks)) for e in range(manifest["episodes"])]
    s = browse.summarize(demos, list_episodes=True)
    assert s["kind"] == "demos"
    assert s["episodes"] == manifest["episodes"] == 3
    assert s["transitions"] == manifest["transitions"] == sum(lengths)
    assert s["success_rate"] == 1.0 and s["intervention_fraction"] == 0.0
    assert s["length_steps"] == {"mean": float(np.mean(lengths)), "min": min(lengths), "max": max(lengths)}
    assert s["chunk_files"] == len(chunks) and s["cameras"] == {}
    assert [e["length"] for e in s["episode_list"]] == lengths
    assert s["disk_bytes"] == sum(p.stat().st_size for p in demos.iterdir())

    assert browse.main([str(demos)]) == 0
    out = capsys.readouterr().out
    assert "demos folder" in out and "episodes        3 (3 succeeded: 100%)" in out
    assert f"transitions     {manifest['transitions']} in {len(chunks)} chunk files" in out


@pytest.mark.timeout(150)  # may set up the module's run
def test_browse_reports_a_runs_progress_episodes_and_evaluations(run_dir, demos, capsys):
    s = browse.summarize(run_dir)
    assert s["kind"] == "run" and s["task"] == "reach"
    stats = [json.loads(line) for line in (run_dir / "learner" / "episodes.jsonl").read_text().splitlines()]
    progress = json.loads((run_dir / "learner" / "progress.json").read_text())
    e = s["episode_stats"]
    assert e["episodes"] == len(stats) and e["transitions"] == sum(x["length"] for x in stats) == RUN_STEPS
    assert e["successes"] == sum(x["success"] for x in stats)
    assert e["interventions"] == sum(x["interventions"] for x in stats)
    assert e["intervention_steps"] == sum(x["intervention_steps"] for x in stats) > 0  # the scripted operator
    stored = s["stored_transitions"]  # the same episodes, counted from the learner's chunk files
    assert (stored["episodes"], stored["transitions"], stored["successes"], stored["intervention_steps"]) == (
        e["episodes"], e["transitions"], e["successes"], e["intervention_steps"])
    assert s["learner"]["progress"]["updates"] == progress["updates"] == s["learner"]["checkpoint"]["updates"]
    assert progress["updates"] in s["learner"]["numbered_checkpoints"]
    assert s["demos"] == {str(demos): {"episodes": 3, "transitions": json.loads((demos / "demos.json").read_text())["transitions"],
                                       "success_rate": 1.0}}
    assert s["evaluations"]["final"]["eval_episodes"] == 2  # the actor's own, end of run
    assert s["run_summary"]["env_steps"] == RUN_STEPS

    assert browse.main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "run folder" in out and f"{progress['updates']} updates" in out and "final eval" in out
    assert "dashboard       " in out and "rerun" in out


@pytest.mark.timeout(60)
def test_browse_detects_label_folders_and_refuses_unknown_ones(tmp_path, capsys):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "labels.json").write_text(json.dumps(
        {"task": "peg_insert", "frames": [{"label": "success"}, {"label": "failure"}, {"label": "success"}]}))
    (labels / "000.png").write_bytes(browse.png_bytes(np.zeros((4, 4, 3), np.uint8)))
    s = browse.summarize(labels)
    assert s["kind"] == "labels" and s["label_counts"] == {"label=success": 2, "label=failure": 1}
    assert s["image_files"] == {".png": 1}
    assert browse.main([str(labels)]) == 0
    assert "frames          3 entries" in capsys.readouterr().out
    (labels / "labels.json").write_text("{not json")
    assert browse.summarize(labels)["manifest"] == "unreadable"  # tolerant of a manifest in progress

    assert browse.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert browse.main([str(tmp_path / "empty")]) == 2
    assert "not a demo, label or run folder" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_frames_export_writes_every_camera_frame_of_the_episode(tmp_path):
    from PIL import Image

    folder = tmp_path / "img_demos"
    doc = load_document(config_path("sim_reach"), [
        "env.observation.cameras=[{name: front, size: [24, 32]}, {name: wrist, size: [24, 32]}]",
        "learner.sac.encoder.image_size=[24, 32]",
    ])
    record_demos(doc, 2, folder)
    s = browse.summarize(folder, list_episodes=True)
    assert s["cameras"] == {"front": [24, 32, 3], "wrist": [24, 32, 3]}
    episode = s["episode_list"][1]
    chunks = [c for c in chunks_of(folder) if (c.episode_id == 1).any()]
    stored = np.concatenate([c.obs_images["wrist"][c.episode_id == 1] for c in chunks])
    assert len(stored) == episode["records"] == episode["length"] + 1  # the final observation too

    for use_pil in (True, False):  # Pillow, and the numpy + zlib fallback
        out = tmp_path / f"frames-{use_pil}"
        written = browse.export_frames(folder, 1, out, use_pil=use_pil)
        assert len(written) == 2 * episode["records"] == len(list(out.glob("*.png")))
        for i, frame in enumerate(stored):
            np.testing.assert_array_equal(np.asarray(Image.open(out / f"wrist-{i:04d}.png").convert("RGB")), frame)

    sheets = browse.export_frames(folder, 1, tmp_path / "sheet", sheet=True)
    assert sorted(p.name for p in sheets) == ["front-sheet.png", "wrist-sheet.png"]
    assert browse.main([str(folder), "--frames", "5", "--out", str(tmp_path / "x")]) == 2


# ---------------------------------------------------------------------------------- operator demos


class _FakeOperator:
    """An operator device: drives +x on even steps (idle on odd ones) and labels each attempt as
    scripted: ("success" | "failure", on step) or None (no label: the time limit ends it)."""

    def __init__(self, script):
        self.script, self.attempt, self.steps, self.actions, self.closed = list(script), -1, 0, [], False

    def reset(self) -> None:
        self.attempt += 1
        self.steps = 0
        self.actions.append([])

    def intervene(self, state, policy_action):
        self.steps += 1
        action = np.array([0.3, 0, 0, 0], np.float32) if self.steps % 2 == 0 else None
        self.actions[-1].append(np.zeros(4, np.float32) if action is None else action)
        return action

    def label(self):
        plan = self.script[self.attempt]
        return plan[0] if plan is not None and self.steps == plan[1] else None

    def close(self) -> None:
        self.closed = True


@pytest.mark.timeout(60)
def test_operator_demos_keep_only_the_episodes_labelled_a_success(tmp_path, capsys):
    doc = load_document(config_path("sim_pick_cube"), ["env.max_episode_steps=12"])
    device = _FakeOperator([("success", 5), ("failure", 4), None, ("success", 3)])
    out = tmp_path / "demos"
    summary = record_demos(doc, 2, out, device=device, wait_for_input=False)
    assert device.closed
    assert (summary["episodes"], summary["attempts"], summary["driver"], summary["device"]) == (
        2, 4, "operator", "_FakeOperator")
    assert json.loads((out / "demos.json").read_text()) == summary
    printed = capsys.readouterr().out
    assert "attempt 2: labelled a failure" in printed and "attempt 3: time limit" in printed
    assert "demo 2/2 recorded (labelled)" in printed

    chunks = chunks_of(out)
    for kept, attempt in ((0, 0), (1, 3)):
        mine = [c for c in chunks if (c.episode_id == kept).any()]
        actions = np.concatenate([c.action[c.has_action] for c in mine])
        np.testing.assert_array_equal(actions, np.stack(device.actions[attempt]))  # the device's, recorded
        assert sum(float(c.reward.sum()) for c in mine) == 1.0  # the label's success reward, once
        assert mine[-1].terminated[mine[-1].has_action][-1]
    assert summary["transitions"] == 5 + 3
    assert not any(c.intervened.any() for c in chunks) and all((c.policy_version == -1).all() for c in chunks)
    assert browse.summarize(out)["episodes"] == 2


class _KeyScript:
    """The real keyboard operator, its keys typed when `when(self)` names them in `keys`: by
    default on (attempt, step) of an episode; `polls` counts every call to intervene."""

    def __init__(self, keys: dict, when=lambda script: (script.attempt, script.steps)):
        self.source = QueuedKeySource()
        self.keyboard = KeyboardOperator(KeyboardConfig(), ActionConfig(gripper=True), self.source)
        self.keys, self.when = keys, when
        self.attempt, self.steps, self.polls, self.resets_at = -1, 0, 0, []

    def reset(self) -> None:
        self.attempt, self.steps = self.attempt + 1, 0
        self.resets_at.append(self.polls)
        self.keyboard.reset()

    def intervene(self, state, policy_action):
        self.source.feed(self.keys.get(self.when(self), ""))
        self.steps += 1
        self.polls += 1
        return self.keyboard.intervene(state, policy_action)

    def label(self):
        return self.keyboard.label()

    def close(self) -> None:
        self.keyboard.close()


@pytest.mark.timeout(60)
def test_keyboard_operator_records_demos_with_its_keys(tmp_path):
    doc = load_document(config_path("sim_pick_cube"))  # moving along x never lifts the cube: no task success
    # attempt 0: w (move +x), then n (failure) on the fourth step; attempt 1: w, then y on the third
    device = _KeyScript({(0, 0): "w", (0, 3): "n", (1, 0): "w", (1, 2): "y"})
    summary = record_demos(doc, 1, tmp_path / "kb", device=device, wait_for_input=False)
    assert (summary["episodes"], summary["attempts"]) == (1, 2)
    (chunk,) = chunks_of(tmp_path / "kb")
    assert int(chunk.has_action.sum()) == 3 and chunk.terminated[2] and chunk.reward[2] == 1.0
    np.testing.assert_allclose(chunk.action[:3], [[0.5, 0, 0, 0]] * 3)  # w: +x at the keyboard's speed


@pytest.mark.timeout(60)
def test_operator_demos_wait_at_home_for_the_operators_first_input(tmp_path, capsys):
    doc = load_document(config_path("sim_pick_cube"), ["env.max_episode_steps=20"])
    # Polls 0-3: the operator is busy with the scene; poll 4: a key (ready). The episode then
    # starts from a fresh reset: w moves on its first step, y (success) on its third.
    device = _KeyScript({4: "w", 5: "w", 7: "y"}, when=lambda script: script.polls)
    summary = record_demos(doc, 1, tmp_path / "wait", device=device)
    assert (summary["episodes"], summary["attempts"]) == (1, 1)
    assert "attempt 1: the arm is home; set the scene up" in capsys.readouterr().out
    # Reset, five polls of waiting, reset again: the recorded episode starts after the wait.
    assert device.resets_at == [0, 5]
    (chunk,) = chunks_of(tmp_path / "wait")
    steps = int(chunk.has_action.sum())
    assert steps == 3 and chunk.terminated[steps - 1] and chunk.reward[steps - 1] == 1.0
    np.testing.assert_allclose(chunk.action[0], [0.5, 0, 0, 0])  # the first step is the operator's


def test_wait_for_operator_polls_until_any_input_and_drops_stray_labels():
    source = QueuedKeySource()
    keyboard = KeyboardOperator(KeyboardConfig(), ActionConfig(gripper=True), source)
    keyboard.reset()
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 2:
            source.feed("x")  # not a bound key: not an input
        if len(sleeps) == 4:
            source.feed("n")  # the failure gesture: an input, but there is no episode to label

    polls = wait_for_operator(keyboard, None, np.zeros(4, np.float32), 0.1, sleep=sleep)
    assert polls == 5 and sleeps == [0.1] * 4
    assert keyboard.label() is None
