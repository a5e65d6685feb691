"""`hilrl run --robots N`: N simulated robot servers and N actors feeding one learner on loopback
(CI-sized: two robots, a few hundred env steps), and the flag's validation."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.timeout(240)
def test_two_robots_feed_one_learner(tmp_path, hilrl):
    from hilrl.transport.chunkfile import ChunkDirectory
    from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk
    from hilrl.transport.run_dir import RunDir

    run_dir = tmp_path / "run"
    done = hilrl(
        "run", "--config", "sim_reach", "--run-dir", str(run_dir), "--robots", "2", "--max-env-steps", "400",
        "--eval-episodes", "2", "dashboard.enabled=false", "learner.sac.hidden_dims=[32,32]", "learner.batch_size=32",
        "learner.training_starts=50", timeout_s=230,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    paths = RunDir(run_dir)
    names = ["sim-0", "sim-1"]

    summary = json.loads(paths.summary.read_text())
    assert set(summary["robots"]) == set(names), summary
    for name in names:
        assert summary["robots"][name]["env_steps"] == 200, summary  # --max-env-steps is the total: 400 / 2
        assert summary["robots"][name]["eval_episodes"] == 2, summary
    assert summary["env_steps"] == 400, summary
    assert summary["eval_episodes"] == 4, summary
    assert 0.0 <= summary["eval_success_rate"] <= 1.0
    assert "updates_per_env_step_held" in summary

    progress = json.loads(paths.progress.read_text())
    assert set(names) <= set(progress["robots"]), progress["robots"]
    for name in names:
        assert progress["robots"][name]["env_steps"] > 0 and progress["robots"][name]["episodes"] > 0, progress["robots"]

    # each robot's actor in its own run directory, with its logs; the learner's part at the top
    assert set(paths.robots()) == set(names)
    for name in names:
        robot = paths.robot(name)
        assert robot.actor.is_dir() and robot.actor_eval.is_file()
        assert robot.log("actor").is_file() and robot.log("robot_server").is_file()
    assert not paths.actor.exists() and not paths.log("actor").exists()
    assert paths.checkpoint.exists() and paths.config_yaml.exists()
    assert "robots:" in done.stdout and "sim-0" in done.stdout  # the per-robot progress lines

    # The robots' reset sequences differ (each actor's seed is mixed with its robot name): the
    # first observation of each one's first episode, as the learner stored it.
    first: dict[str, tuple[int, np.ndarray]] = {}
    for _, msg in ChunkDirectory(paths.learner_chunks).iter_messages(LEARNER_MESSAGES):
        if not isinstance(msg, TransitionChunk):
            continue
        for i in np.flatnonzero(msg.step_index == 0):
            episode = int(msg.episode_id[i])
            if msg.robot_name not in first or episode < first[msg.robot_name][0]:
                first[msg.robot_name] = (episode, msg.obs_state[i].copy())
    assert set(names) <= set(first), sorted(first)
    assert not np.allclose(first["sim-0"][1], first["sim-1"][1]), (first["sim-0"], first["sim-1"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("robots", ["0", "17", "two"])
def test_robots_out_of_range_is_refused(tmp_path, hilrl, robots):
    done = hilrl("run", "--config", "sim_reach", "--robots", robots, "--run-dir", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    assert "--robots" in done.stderr and "1 to 16" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists(), "nothing may start on a bad --robots"
