"""The lab's way: a learner and an actor started by hand as separate processes, each with its own
per-robot overrides, train together; an actor whose learning contract differs is refused within
seconds with every differing key and both values, holds its arm and exits non-zero."""

from __future__ import annotations

import json
import time

import pytest
from process_support import free_port, spawn, stop, wait_for

from hilrl.robot_server.client import RobotClient


def _progress(run_dir) -> dict:
    path = run_dir / "learner" / "progress.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.timeout(240)
def test_per_robot_overrides_train_together_and_a_contract_mismatch_is_refused(tmp_path):
    link = f"link.address=tcp://127.0.0.1:{free_port()}"
    learner = actor = server = None
    try:
        learner = spawn(["learner", "--config", "sim_reach", "--run-dir", str(tmp_path / "learner-run"), link,
                         "learner.batch_size=64", "learner.training_starts=100", "learner.progress_every_s=1"],
                        tmp_path / "learner.log")
        # Per-robot settings that differ from the learner's: seed, robot name, throttle, frame age.
        actor = spawn(["actor", "--config", "sim_reach", "--run-dir", str(tmp_path / "actor-run"), link,
                       "actor.seed=7", "actor.robot_name=cell-b", "env.reset_position_noise_m=0.01",
                       "actor.progress_every_s=1",
                       "--max-env-steps", "300", "--eval-episodes", "0"], tmp_path / "actor.log")
        assert actor.wait(180) == 0, (tmp_path / "actor.log").read_text()[-3000:]
        wait_for(lambda: _progress(tmp_path / "learner-run").get("env_steps", 0) >= 300, 30,
                 "the learner to count the actor's 300 env steps")
        actor_log = (tmp_path / "actor.log").read_text()
        assert "refused" not in actor_log
        # Progress lines, every second and at the end: totals, rates, the link, the robot.
        lines = [line for line in actor_log.splitlines() if line.startswith("[actor cell-b] env steps")]
        assert lines and lines[-1].startswith("[actor cell-b] env steps 300/300"), actor_log[-2000:]
        assert "episodes" in lines[-1] and "learner connected" in lines[-1] and "weights v" in lines[-1]
        wait_for(lambda: "cell-b" in (tmp_path / "learner.log").read_text(), 10, "a learner progress line naming the robot")
        learner_lines = [line for line in (tmp_path / "learner.log").read_text().splitlines()
                         if line.startswith("[learner] updates")]
        assert learner_lines and "env steps" in learner_lines[-1] and "buffers online" in learner_lines[-1]

        # Another robot whose action scale differs: refused at once, named, with both values.
        robot_port = free_port()
        server = spawn(["robot-server", "--config", "sim_reach", "--port", str(robot_port), "--clock", "realtime"],
                       tmp_path / "robot.log")
        address = f"tcp://127.0.0.1:{robot_port}"
        wait_for(lambda: "listening" in (tmp_path / "robot.log").read_text(), 60, "the robot server")
        started = time.monotonic()
        refused = spawn(["actor", "--config", "sim_reach", "--run-dir", str(tmp_path / "refused-run"), link,
                         "env.connection=server", f"robot_server.address={address}",
                         "env.action.translation_scale_m=0.02", "--max-env-steps", "2000"], tmp_path / "refused.log")
        code = refused.wait(60)
        took_s = time.monotonic() - started
        log = (tmp_path / "refused.log").read_text()
        assert code != 0, log[-2000:]
        assert "env.action.translation_scale_m: learner 0.03, actor 0.02" in log, log[-2000:]
        assert "Traceback" not in log, log[-3000:]
        assert took_s < 30, took_s  # the actor's own start-up included (torch, MuJoCo)
        # The arm was left holding, at rest.
        with RobotClient(address, timeout_s=2.0) as robot:
            time.sleep(0.3)
            state = robot.state()
            assert sum(v * v for v in state.tcp_linear_velocity_m_per_s) ** 0.5 < 0.01
    finally:
        for proc in (actor, learner, server):
            stop(proc)
