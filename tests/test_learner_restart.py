"""The learner dies (SIGKILL) in the middle of a run on the realtime clock and comes back with
`--resume`: no transition is lost or duplicated (counted by sequence number), the actor's
control loop never stalls while the learner is gone, and the resumed learner keeps training.
And the worst moment: the actor killed too while the learner is down; restarted with the same run
directory, it resends every chunk it had finished (its spool), and each is stored exactly once.

Real processes on loopback: a robot server (sim, realtime, 10 Hz), `hilrl learner`, `hilrl actor`.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from process_support import free_port, spawn, stop, wait_for

from hilrl.configs import config_path
from hilrl.robot_server.process import start_server_process
from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.config import load_document
from hilrl.transport.learner_messages import LEARNER_MESSAGES, EpisodeStats, TransitionChunk

REPO = Path(__file__).resolve().parents[1]
# 20 s of control at 10 Hz: the resumed learner must be up before the actor ends its run (it then
# waits at most 5 s for acks and spools the rest). At 12 s, with a second test process on the 2
# cores, the resumed learner was once not up in time, and 80 steps were left in the spool.
ENV_STEPS = 200


def stored(run_dir: Path, kind: str) -> list:
    folder = run_dir / "learner" / "link" / kind
    if not folder.exists():
        return []
    return [msg for _, msg in ChunkDirectory(folder).iter_messages(LEARNER_MESSAGES)]


@pytest.mark.timeout(180)
def test_learner_sigkill_and_resume_loses_and_duplicates_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config, port = _realtime_config(run_dir, "learner.checkpoint_every_updates=20")
    server = learner = actor = None
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        server = start_server_process("reach", config=config, port=port, log_path=logs / "server.log")
        learner = spawn(["learner", "--config", str(config), "--run-dir", str(run_dir)], logs / "learner1.log")
        actor = spawn(
            ["actor", "--config", str(config), "--run-dir", str(run_dir), "--max-env-steps", str(ENV_STEPS)],
            logs / "actor.log",
        )
        # Let data flow and training start, then kill the learner without any chance to clean up.
        wait_for(lambda: len(stored(run_dir, "chunks")) >= 8, 60, "the first stored chunks")
        learner.send_signal(signal.SIGKILL)
        learner.wait()
        killed_at = time.monotonic()
        time.sleep(4.0)  # longer than link.peer_timeout_s: the actor knows the learner is gone
        assert actor.poll() is None, "the actor must keep running without its learner"
        learner = spawn(["learner", "--resume", str(run_dir)], logs / "learner2.log")
        assert actor.wait(90) == 0, (logs / "actor.log").read_text()[-3000:]
        time.sleep(1.0)  # the actor flushed before exiting; let the learner drain
    finally:
        stop(actor)
        stop(learner)
        if server is not None:
            server.stop()

    learner_log = (logs / "learner2.log").read_text()
    assert "resumed at" in learner_log, learner_log[-2000:]
    chunks = [m for m in stored(run_dir, "chunks") if isinstance(m, TransitionChunk)]
    stats = [m for m in stored(run_dir, "stats") if isinstance(m, EpisodeStats)]
    # Chunks and episode stats share one sequence space per actor session: together they must
    # be exactly 1..N, each once.
    keys = [(m.actor_session, m.seq) for m in chunks + stats]
    assert len(set(keys)) == len(keys), "a chunk or stats message was stored twice"
    sessions = {s for s, _ in keys}
    assert len(sessions) == 1
    seqs = sorted(seq for _, seq in keys)
    assert seqs == list(range(1, len(seqs) + 1)), f"missing sequence numbers: {sorted(set(range(1, max(seqs) + 1)) - set(seqs))}"
    # Every env step the actor took is stored exactly once.
    assert sum(int(c.has_action.sum()) for c in chunks) == ENV_STEPS, \
        f"{len(_spooled_keys(run_dir))} messages left in the actor's spool: the resumed learner was not up in time"
    steps = sorted((int(c.episode_id[i]), int(c.step_index[i])) for c in chunks for i in range(len(c)))
    assert len(steps) == len(set(steps))
    # The control loop kept its 10 Hz while the learner was dead: no period above two periods.
    worst_ms = max(s.period_max_ms for s in stats)
    assert worst_ms <= 200.0, f"a control period took {worst_ms:.0f} ms"
    assert len(stats) >= 2
    # The resumed learner kept training from its checkpoint.
    progress = json.loads((run_dir / "learner" / "progress.json").read_text())
    assert progress["updates"] > 20
    assert time.monotonic() - killed_at < 150
    assert np.isfinite([s.episode_return for s in stats]).all()


def _realtime_config(run_dir: Path, *overrides: str) -> tuple[Path, int]:
    """A reach config on the realtime clock (a robot server process, 10 Hz) on free ports, written
    to RUN_DIR/config.yaml; (its path, the robot server's port)."""
    doc = load_document(
        config_path("sim_reach"),
        [
            "robot_server.clock=realtime",
            f"robot_server.address=tcp://127.0.0.1:{free_port()}",
            f"link.address=tcp://127.0.0.1:{free_port()}",
            "env.connection=server",
            "learner.training_starts=30",
            "learner.demos=[]",
            "actor.intervention.device=none",
            "actor.chunk_steps=5",
            *overrides,
        ],
    )
    config = run_dir / "config.yaml"
    config.write_text(yaml.safe_dump(doc))
    return config, int(doc["robot_server"]["address"].rsplit(":", 1)[1])


def _spooled_keys(run_dir: Path) -> set[tuple[str, int]]:
    spool = ChunkDirectory(run_dir / "actor" / "spool")
    keys = set()
    for index in spool.indices():
        body = spool.read_header(index)["body"]
        keys.add((body["actor_session"], body["seq"]))
    return keys


@pytest.mark.timeout(240)
def test_actor_sigkill_while_the_learner_is_down_loses_no_finished_chunk(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config, port = _realtime_config(run_dir)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = learner = actor = None
    try:
        server = start_server_process("reach", config=config, port=port, log_path=logs / "server.log")
        learner = spawn(["learner", "--config", str(config), "--run-dir", str(run_dir)], logs / "learner1.log")
        actor = spawn(["actor", "--config", str(config), "--run-dir", str(run_dir), "--max-env-steps", "100000"],
                      logs / "actor1.log")
        wait_for(lambda: len(stored(run_dir, "chunks")) >= 4, 60, "the first stored chunks")
        learner.send_signal(signal.SIGKILL)
        learner.wait()
        time.sleep(4.0)  # 40 env steps (8 chunks) with nobody to acknowledge them
        actor.send_signal(signal.SIGKILL)
        actor.wait()
        at_kill = _spooled_keys(run_dir)
        assert len(at_kill) >= 6, f"the outage's chunks must be on disk: {len(at_kill)} spooled"
        first_session = {s for s, _ in at_kill}
        assert len(first_session) == 1
        learner = spawn(["learner", "--resume", str(run_dir)], logs / "learner2.log")
        actor = spawn(["actor", "--config", str(config), "--run-dir", str(run_dir), "--max-env-steps", "20",
                       "--eval-episodes", "0"], logs / "actor2.log")
        assert actor.wait(120) == 0, (logs / "actor2.log").read_text()[-3000:]
        wait_for(lambda: at_kill <= {(m.actor_session, m.seq) for m in stored(run_dir, "chunks") + stored(run_dir, "stats")},
                 30, "every spooled chunk to be stored")
    finally:
        stop(actor)
        stop(learner)
        if server is not None:
            server.stop()
    messages = stored(run_dir, "chunks") + stored(run_dir, "stats")
    keys = [(m.actor_session, m.seq) for m in messages]
    assert len(set(keys)) == len(keys), "a message was stored twice"
    (session,) = first_session
    seqs = sorted(seq for s, seq in keys if s == session)
    # The killed actor's messages: every one up to the last it had on disk, none missing.
    assert seqs == list(range(1, max(seqs) + 1)), sorted(set(range(1, max(seqs) + 1)) - set(seqs))
    assert max(seqs) >= max(seq for _, seq in at_kill)


@pytest.mark.timeout(120)
def test_a_checkpoint_of_the_previous_defaults_is_refused_with_the_overrides_that_resume_it(tmp_path):
    """A run started before learner.sac's defaults changed (its config leaves the nine switches
    out, its checkpoint holds the previous recipe's networks): `--resume` names the misfit and the
    overrides that rebuild those networks; with them it resumes."""
    from hilrl.learner.main import Learner
    from hilrl.transport.sections.sac import RLPD_V1, rlpd_v1_overrides

    previous = list(rlpd_v1_overrides())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    doc = load_document(config_path("sim_reach"), ["learner.demos=[]", f"link.address=tcp://127.0.0.1:{free_port()}",
                                                   *previous])
    learner = Learner(doc, run_dir, resume=False)
    assert learner.checkpoint()
    learner.link.close()
    for key in RLPD_V1:  # as an old run's saved config: the switches were not written
        doc["learner"]["sac"].pop(key, None)
    (run_dir / "config.json").write_text(json.dumps(doc))

    log = tmp_path / "refused.log"
    refused = spawn(["learner", "--resume", str(run_dir)], log)
    assert refused.wait(60) == 2
    text = log.read_text()
    assert "does not fit the networks this config builds" in text and "Traceback" not in text
    assert " ".join(previous) in text

    log = tmp_path / "resumed.log"
    resumed = spawn(["learner", "--resume", str(run_dir), *previous], log)
    try:
        wait_for(lambda: "resumed at 0 updates" in log.read_text(), 60, "the resume with the previous defaults")
    finally:
        stop(resumed)
