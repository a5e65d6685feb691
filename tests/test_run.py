"""`hilrl run`, the main job: a robot server child process plus the scripted expert, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def hilrl(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hilrl_cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.mark.timeout(150)
def test_run_drives_the_sim_through_a_server_and_writes_a_summary(tmp_path):
    run_dir = tmp_path / "run"
    done = hilrl("run", "--config", "configs/sim_pick_cube.yaml", "--episodes", "3", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == "pick_cube"
    assert summary["eval_episodes"] == 3
    assert summary["eval_success_rate"] == 1.0
    assert 3 <= summary["env_steps"] <= 300
    assert summary["wall_time_s"] > 0
    assert "robot server" in (run_dir / "robot_server.log").read_text()
    assert "episode 3/3: success" in done.stdout
    assert not list(run_dir.glob("*.tmp")), "summary must be written atomically"


@pytest.mark.timeout(60)
def test_run_names_a_misspelt_config_key(tmp_path):
    done = hilrl("run", "--config", "configs/sim_reach.yaml", "env.max_episod_steps=5", "--run-dir", str(tmp_path))
    assert done.returncode != 0
    assert "max_episod_steps" in done.stderr and "max_episode_steps" in done.stderr
    assert "Traceback" not in done.stderr
