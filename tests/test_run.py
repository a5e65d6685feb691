"""`hilrl run`, the main job, end to end: demos recorded, then a robot server, a learner and an
actor as three processes on loopback; the reach task must actually be learned (CI-sized)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.serial
@pytest.mark.timeout(600)
def test_run_learns_reach_to_90_percent(tmp_path, hilrl):
    run_dir = tmp_path / "run"
    # 5,000 env steps, at sim_reach's own learner.sac recipe (RLPD_V1; its config says why): on
    # three bench seeds at these settings, two were at 100 % from 3,000 on and the third at
    # 90 / 80 / 90 / 100 % at 2k / 3k / 4k / 5k. Runs across processes are not bit-reproducible.
    steps = 5000
    done = hilrl(
        "run", "--config", "configs/sim_reach.yaml", "--run-dir", str(run_dir),
        "--max-env-steps", str(steps), "--eval-episodes", "20",
        "learner.updates_per_env_step=2", "learner.batch_size=128", timeout_s=540,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == steps
    assert summary["eval_episodes"] == 20
    assert summary["eval_success_rate"] >= 0.9, summary
    # 2 updates per env step, held from the learner's start (training_starts in): it waits when
    # ahead, and the lockstep actor waits when it is behind. (With LeRobot's choices, 1 per step
    # at batch 128 ended a run at 25 % after 3,000 steps.)
    assert 2 * (steps - 800) <= summary["updates"] <= 2 * steps, summary
    assert 1.9 <= summary["updates_per_env_step_held"] <= 2.0, summary
    assert summary["demo_transitions"] > 0 and summary["intervention_transitions"] > 0
    # what a user is promised: demos, logs, a checkpoint, the resolved config, progress lines
    assert (run_dir / "demos" / "demos.json").exists()
    assert (run_dir / "learner" / "checkpoint.bin").exists()
    assert (run_dir / "config.yaml").exists()
    assert "env steps" in done.stdout and "updates" in done.stdout
    assert not list(run_dir.rglob("*.tmp")), "results must be written atomically"
    # The saved resolved config is the one the processes ran: its hash is the handshake's, which
    # the learner also stored in its checkpoint.
    from hilrl.transport.checkpoint import read_checkpoint
    from hilrl.transport.config import document_hash, load_document
    from hilrl.transport.run_dir import RunDir

    checkpoint = read_checkpoint(RunDir(run_dir).checkpoint)
    assert checkpoint.config_hash == document_hash(load_document(run_dir / "config.yaml"))


@pytest.mark.timeout(60)
def test_run_names_a_misspelt_config_key(tmp_path, hilrl):
    done = hilrl("run", "--config", "configs/sim_reach.yaml", "learner.batch_sise=64", "--run-dir", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "learner.batch_sise" in done.stderr and "batch_size" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists(), "nothing may start on a bad config"


@pytest.mark.timeout(60)
def test_run_names_an_unknown_task_and_takes_a_shipped_config_by_name(tmp_path, hilrl):
    done = hilrl("run", "--config", "sim_reach", "task=reech", "--run-dir", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    assert "task: 'reech' is not a simulated task" in done.stderr and "reach, pick_cube, peg_insert" in done.stderr
    assert "Traceback" not in done.stderr
    missing = hilrl("run", "--config", "sim_reech", "--run-dir", str(tmp_path / "r"))
    assert missing.returncode == 2 and "shipped: " in missing.stderr and "sim_reach" in missing.stderr
    listed = hilrl("configs")
    assert listed.returncode == 0
    assert {line.split()[0] for line in listed.stdout.splitlines()} == {
        p.stem for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")
    }


@pytest.mark.timeout(120)
def test_record_demos_keeps_successful_episodes(tmp_path, hilrl):
    out = tmp_path / "demos"
    done = hilrl("record-demos", "--config", "configs/sim_pick_cube.yaml", "--episodes", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "demos.json").read_text())
    assert summary["episodes"] == 3 and summary["transitions"] > 0

    from hilrl.transport.chunkfile import ChunkDirectory
    from hilrl.transport.learner_messages import LEARNER_MESSAGES

    chunks = [m for _, m in ChunkDirectory(out).iter_messages(LEARNER_MESSAGES)]
    assert sum(int(c.has_action.sum()) for c in chunks) == summary["transitions"]
    finals = [c for c in chunks if not c.has_action[-1]]
    assert len(finals) == 3  # each kept episode ends with its final observation record
    assert all(c.reward[c.has_action].sum() <= 1 for c in chunks)
    assert sum(float(c.reward.sum()) for c in chunks) == 3.0  # each demo succeeded exactly once


@pytest.mark.timeout(180)
def test_ctrl_c_stops_all_three_with_a_final_checkpoint(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilrl.tools.cli", "run", "--config", "configs/sim_reach.yaml", "--run-dir", str(run_dir),
         "--max-env-steps", "100000", "learner.checkpoint_every_updates=100000"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        progress = run_dir / "learner" / "progress.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if progress.exists() and json.loads(progress.read_text() or "{}").get("updates", 0) > 50:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        else:
            raise AssertionError("training never started")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the main job
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    # the learner wrote its final checkpoint on the way out (periodic ones were disabled)
    learner_log = (run_dir / "learner.log").read_text()
    assert "checkpoint at" in learner_log, learner_log[-2000:]
    assert (run_dir / "learner" / "checkpoint.bin").exists()
    assert "robot server stopping" in (run_dir / "robot_server.log").read_text()
    # no process of the run is left behind
    leftovers = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes still running: {leftovers}"


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from every /proc/<n>/stat: its 4th field is the parent)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(command name)"
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _describe(pids: list[int]) -> list[str]:
    """What each live process of `pids` is and where it waits: its command, state and kernel wait
    channel (for a failure message)."""
    out = []
    for pid in filter(_alive, pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            continue
        out.append(f"{pid} [{state}, {wchan}] {cmd}")
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.timeout(180)
def test_a_sigkilled_run_leaves_no_process_behind(tmp_path):
    """`hilrl run` killed by SIGKILL (a timeout, the OOM killer): its robot server, learner and
    actor stop too (they used to train and serve on, orphaned, for as long as the machine ran)."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "hilrl.tools.cli", "run", "--config", "sim_reach", "--run-dir",
                             str(run_dir), "--max-env-steps", "100000", "dashboard.enabled=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run_dir / "learner" / "progress.json").exists():
            time.sleep(0.2)
        children = _children(proc.pid)
        assert len(children) == 3, children  # robot server, learner, actor
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Each stops cleanly on its SIGTERM, the actor after waiting up to 5 s for acks from the
        # gone learner (6-8 s in all here with the CPU oversubscribed); in one run of the whole
        # suite on 2 cores a child outlived a 30 s wait (the message now names which).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], f"children outlived the killed launcher: {_describe(children)}"
    finally:
        proc.kill()
        for child in children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
