"""`hilrl doctor`: a pass/fail table with fixes, and its exit codes, against the simulated cell, a real
learner link and a robot server address where nothing listens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hilrl.tools.doctor import check_home_in_box
from hilrl.tools.doctor import main as doctor_main
from hilrl.transport.learner_messages import Hello, ObservationSpec
from hilrl.transport.link import LearnerLink
from hilrl.transport.link_config import LinkConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "sim_pick_cube_vision.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def learner(tmp_path):
    """A real learner link on a free loopback port (what a running `hilrl learner` answers with)."""
    link = LearnerLink(
        LinkConfig(address=f"tcp://127.0.0.1:{free_port()}"),
        Hello(actor_session="", protocol_version=0, observation=ObservationSpec(state_dim=1), action_dim=1, config_hash=""),
        store_dir=tmp_path / "store", learner_session="learner-doctor-test",
    )
    link.start()
    yield link
    link.close()


@pytest.mark.timeout(120)
def test_everything_passes_on_the_sim_cell_with_a_learner(learner, capsys):
    code = doctor_main(["--config", CONFIG, f"link.address={learner.endpoint}"], prog="hilrl doctor")
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ("config", "robot", "home and box", "gripper", "camera:front,wrist", "learner"):
        assert any(line.startswith(row) and " PASS " in line for line in out.splitlines()), (row, out)
    assert "state at" in out and "Hz" in out  # the robot's serving rate was measured
    assert learner.actors_alive() == []  # the doctor registered nothing with the learner


def test_home_and_box_fails_when_home_or_the_tcp_lies_outside_with_the_fix():
    info = SimpleNamespace(home_position_m=np.array([0.31, 0.0, 0.49]), workspace_min_m=np.array([0.4, -0.1, 0.02]),
                           workspace_max_m=np.array([0.6, 0.1, 0.2]))
    row = check_home_in_box(info, SimpleNamespace(tcp_position_m=np.array([0.5, 0.0, 0.1])))
    assert not row.ok and "home" in row.fix and "workspace_min_m" in row.fix
    inside = SimpleNamespace(home_position_m=np.array([0.5, 0.0, 0.15]), workspace_min_m=info.workspace_min_m,
                             workspace_max_m=info.workspace_max_m)
    assert check_home_in_box(inside, SimpleNamespace(tcp_position_m=np.array([0.5, 0.0, 0.15]))).ok
    moved_by_hand = check_home_in_box(inside, SimpleNamespace(tcp_position_m=np.array([0.3, 0.0, 0.4])))
    assert not moved_by_hand.ok and "outside" in moved_by_hand.detail


@pytest.mark.timeout(120)
def test_missing_learner_and_unreachable_robot_fail_with_fixes(capsys):
    code = doctor_main([
        "--config", CONFIG, f"link.address=tcp://127.0.0.1:{free_port()}", "env.connection=server",
        f"robot_server.address=tcp://127.0.0.1:{free_port()}", "robot_server.request_timeout_s=0.2",
    ], prog="hilrl doctor")
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    learner = next(i for i, line in enumerate(lines) if line.startswith("learner"))
    assert " FAIL " in lines[learner] and "hilrl learner" in lines[learner + 1]
    robot = next(i for i, line in enumerate(lines) if line.startswith("robot"))
    assert " FAIL " in lines[robot] and "hilrl robot-server" in lines[robot + 1]
    assert "failed: robot" in out


@pytest.mark.timeout(60)
def test_a_spacemouse_that_cannot_be_opened_fails_with_the_fix(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)  # not installed
    code = doctor_main(["--config", CONFIG, "actor.intervention.device=spacemouse", "--skip", "learner",
                        "--skip", "robot", "--skip", "cameras"], prog="hilrl doctor")
    out = capsys.readouterr().out
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("spacemouse"))
    assert " FAIL " in row and "pyspacemouse" in out


@pytest.mark.timeout(60)
def test_a_misspelt_key_exits_2_naming_it():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "hilrl.tools.cli", "doctor", "--config", CONFIG, "link.adress=x"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert "link.adress" in out and "'address'" in out and "Traceback" not in out
