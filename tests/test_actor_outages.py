"""The actor when a peer goes away, with real processes started by hand on free loopback ports (a
robot server on the realtime clock, `hilrl learner`, `hilrl actor`):

- the robot server killed under a running actor: the episode so far reaches the learner cut
  short, one error line names `robot_server.address` and what to do, exit 3, no traceback;
- with `actor.robot_wait_s`, a robot server restarted on the same port is waited for and the actor
  carries on from a fresh reset;
- with `actor.learner_grace_s`, a learner gone that long (after `link.peer_timeout_s`) makes the
  actor hold the arm and exit 4, naming `link.address` and the spool that keeps the experience;
- RUN_DIR/actor/link.json holds the link's counters whatever the ending.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
import types
from pathlib import Path

import pytest
import yaml
from process_support import free_port, spawn, stop, wait_for

from hilrl.actor.loop import EXIT_CODES, Actor, main
from hilrl.actor.throttle import LockstepThrottle
from hilrl.configs import config_path
from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.config import load_document, section
from hilrl.transport.learner_messages import LEARNER_MESSAGES, EpisodeStats, TransitionChunk
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError

ROBOT = "cell-a"


def _config(tmp_path: Path, *overrides: str) -> tuple[Path, int, str, str]:
    """A reach config on the realtime clock (robot server, 10 Hz) on free ports, small learner
    that never trains (training_starts far away: it only stores and acknowledges), written to
    tmp_path/config.yaml; (its path, the robot server's port, the robot and link addresses)."""
    robot_port = free_port()
    robot, link = f"tcp://127.0.0.1:{robot_port}", f"tcp://127.0.0.1:{free_port()}"
    doc = load_document(config_path("sim_reach"), [
        "robot_server.clock=realtime", f"robot_server.address={robot}", "robot_server.request_timeout_s=0.5",
        f"link.address={link}", "env.connection=server",
        "learner.demos=[]", "learner.batch_size=16", "learner.training_starts=100000", "learner.sac.hidden_dims=[32, 32]",
        "actor.intervention.device=none", "actor.progress_every_s=0.5", f"actor.robot_name={ROBOT}",
        "dashboard.enabled=false", *overrides,
    ])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, robot_port, robot, link


def _robot_server(config: Path, port: int, log: Path):
    proc = spawn(["robot-server", "--config", str(config), "--port", str(port)], log)
    wait_for(lambda: "listening" in log.read_text() or proc.poll() is not None, 60, "the robot server")
    assert proc.poll() is None, log.read_text()[-2000:]
    return proc


def _progress(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith(f"[actor {ROBOT}] env steps")]


def _env_steps(log: Path) -> int:
    """The env steps of the actor's latest progress line (0 before the first)."""
    lines = _progress(log)
    return int(re.match(rf"\[actor {ROBOT}\] env steps (\d+)", lines[-1]).group(1)) if lines else 0


def _stored(run_dir: Path, kind: str) -> list:
    folder = RunDir(run_dir).learner_link / kind
    return [m for _, m in ChunkDirectory(folder).iter_messages(LEARNER_MESSAGES)] if folder.exists() else []


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error:" in line or " ERROR " in line]


@pytest.mark.timeout(120)
def test_robot_server_killed_under_the_actor_exits_3_naming_it_and_keeps_what_was_recorded(tmp_path):
    config, robot_port, robot, link = _config(tmp_path)
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    server = learner = actor = None
    try:
        learner = spawn(["learner", "--config", str(config), "--run-dir", str(run_dir)], logs / "learner.log")
        server = _robot_server(config, robot_port, logs / "robot.log")
        actor = spawn(["actor", "--config", str(config), "--run-dir", str(run_dir)], logs / "actor.log")
        # Mid-episode (50 steps each) with the learner acknowledging.
        wait_for(lambda: _env_steps(logs / "actor.log") >= 25 and "learner connected" in _progress(logs / "actor.log")[-1]
                 or actor.poll() is not None, 60, "the actor stepping with its learner")
        assert actor.poll() is None, (logs / "actor.log").read_text()[-3000:]
        stop(server, signal.SIGKILL)
        killed = time.monotonic()
        code = actor.wait(30)
        took_s = time.monotonic() - killed
        text = (logs / "actor.log").read_text()
        assert code == 3, text[-3000:]
        assert took_s < 12, took_s  # 3 tries of 0.5 s, then the link's flush to a live learner
        assert "Traceback" not in text, text[-3000:]
        errors = _error_lines(text)
        assert len(errors) == 1, errors
        assert robot in errors[0] and "robot_server.address" in errors[0], errors[0]
        assert "watchdog" in errors[0] and "hilrl robot-server" in errors[0] and "actor.robot_wait_s" in errors[0]

        # Nothing recorded was dropped: every step the actor took is stored by the learner, the
        # last episode closed by its final observation (cut short: no terminal flag).
        counters = json.loads(RunDir(run_dir).actor_link_stats.read_text())
        assert counters["robot_name"] == ROBOT and counters["unacked_at_exit"] == 0, counters
        wait_for(lambda: len(_stored(run_dir, "chunks")) + len(_stored(run_dir, "stats")) >= counters["messages_sent"],
                 10, "the learner to store everything the actor sent")
        chunks = [m for m in _stored(run_dir, "chunks") if isinstance(m, TransitionChunk)]
        stats = [m for m in _stored(run_dir, "stats") if isinstance(m, EpisodeStats)]
        assert len(chunks) + len(stats) == counters["messages_sent"]
        env_steps = _env_steps(logs / "actor.log")  # the final progress line
        assert env_steps >= 25 and sum(int(c.has_action.sum()) for c in chunks) == env_steps
        last = max(chunks, key=lambda c: c.seq)
        assert not last.has_action[-1] and not last.terminated.any()
        cut = [s for s in stats if s.episode_id == int(last.episode_id[-1])]
        assert len(cut) == 1 and not cut[0].success and 0 < cut[0].length < 50
    finally:
        for proc in (actor, learner, server):
            stop(proc)


@pytest.mark.timeout(120)
def test_with_robot_wait_s_the_actor_waits_for_a_restarted_robot_server_and_carries_on(tmp_path):
    config, robot_port, robot, _ = _config(tmp_path, "actor.robot_wait_s=20")
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    server = actor = None
    try:
        server = _robot_server(config, robot_port, logs / "robot1.log")
        actor = spawn(["actor", "--config", str(config), "--run-dir", str(run_dir)], logs / "actor.log")
        wait_for(lambda: _env_steps(logs / "actor.log") >= 15 or actor.poll() is not None, 60, "the actor stepping")
        stop(server, signal.SIGKILL)
        wait_for(lambda: "waiting up to 20 s" in (logs / "actor.log").read_text() or actor.poll() is not None, 10,
                 "the actor to say it waits for the robot server")
        time.sleep(2.0)
        assert actor.poll() is None, (logs / "actor.log").read_text()[-3000:]
        before = _env_steps(logs / "actor.log")
        server = _robot_server(config, robot_port, logs / "robot2.log")
        wait_for(lambda: _env_steps(logs / "actor.log") >= before + 15 or actor.poll() is not None, 30,
                 "the actor stepping again after the restart")
        assert actor.poll() is None, (logs / "actor.log").read_text()[-3000:]
        stop(actor, signal.SIGINT)
        text = (logs / "actor.log").read_text()
        assert actor.returncode == 0, text[-3000:]
        assert "Traceback" not in text and not _error_lines(text), text[-3000:]
        assert f"the robot server at {robot} answers again" in text
        waiting = [line for line in text.splitlines() if "stopped answering" in line]
        assert len(waiting) == 1 and "actor.robot_wait_s" in waiting[0], waiting
        assert "no reply to" not in text.split("waiting up to 20 s", 1)[1]  # the probes are quiet
        counters = json.loads(RunDir(run_dir).actor_link_stats.read_text())
        assert counters["messages_sent"] >= 3 and counters["unacked_at_exit"] == counters["messages_sent"]  # no learner
    finally:
        stop(actor)
        stop(server)


@pytest.mark.timeout(120)
def test_learner_gone_past_learner_grace_s_holds_the_arm_and_exits_4(tmp_path):
    config, robot_port, _, link = _config(tmp_path, "actor.learner_grace_s=2")
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    server = learner = actor = None
    try:
        learner = spawn(["learner", "--config", str(config), "--run-dir", str(run_dir)], logs / "learner.log")
        server = _robot_server(config, robot_port, logs / "robot.log")
        # The grace also runs from the actor's start until the first welcome: the learner is up first.
        wait_for(lambda: "listening on" in (logs / "learner.log").read_text() or learner.poll() is not None, 60,
                 "the learner")
        assert learner.poll() is None, (logs / "learner.log").read_text()[-3000:]
        actor = spawn(["actor", "--config", str(config), "--run-dir", str(run_dir)], logs / "actor.log")
        wait_for(lambda: "learner connected" in (_progress(logs / "actor.log") or [""])[-1] or actor.poll() is not None,
                 60, "the actor connected to its learner")
        assert actor.poll() is None, (logs / "actor.log").read_text()[-3000:]
        time.sleep(1.0)
        stop(learner, signal.SIGKILL)
        killed = time.monotonic()
        code = actor.wait(30)
        took_s = time.monotonic() - killed
        text = (logs / "actor.log").read_text()
        assert code == 4, text[-3000:]
        assert 4.0 <= took_s < 11, took_s  # peer_timeout_s 3 + grace 2, then no flush to wait for
        assert "Traceback" not in text, text[-3000:]
        errors = _error_lines(text)
        assert len(errors) == 1, errors
        spool = RunDir(run_dir).spool
        for fragment in (link, "link.address", "actor.learner_grace_s=2", str(spool), "same --run-dir", "arm is held"):
            assert fragment in errors[0], (fragment, errors[0])

        counters = json.loads(RunDir(run_dir).actor_link_stats.read_text())
        assert counters["robot_name"] == ROBOT and counters["resent_messages"] >= 0
        assert counters["messages_sent"] > counters["unacked_at_exit"] >= 4, counters  # ~1 chunk/s unacked since the kill
        assert len(ChunkDirectory(spool).indices()) == counters["unacked_at_exit"]
    finally:
        for proc in (actor, learner, server):
            stop(proc)


# ------------------------------------------------------------------------ in-process checks


@pytest.mark.parametrize("key", ["robot_wait_s", "learner_grace_s"])
def test_the_new_keys_are_validated_naming_the_key(key):
    from hilrl.actor.config import ActorConfig

    for bad in ("-1", ".nan"):
        with pytest.raises(SchemaError) as info:
            section(load_document(config_path("sim_reach"), [f"actor.{key}={bad}"]), "actor", ActorConfig)
        assert info.value.key == f"actor.{key}"
    assert getattr(section(load_document(config_path("sim_reach"), [f"actor.{key}=2.5"]), "actor", ActorConfig), key) == 2.5
    for path in sorted(Path(config_path("sim_reach")).parent.glob("*.yaml")):
        if key == "robot_wait_s" and path.stem.startswith("gym_"):
            continue  # a gymnasium env has no robot server to wait for
        assert key in yaml.safe_load(path.read_text())["actor"], path


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"], prog="hilrl actor")
    out = capsys.readouterr().out
    assert "exit codes:" in out and all(f"  {code}  " in out for code in EXIT_CODES)
    assert set(EXIT_CODES) == {0, 1, 2, 3, 4}


def test_link_counters_that_cannot_be_written_are_logged_not_raised(tmp_path, monkeypatch, caplog):
    actor = Actor.__new__(Actor)  # only what write_link_stats reads
    actor.paths = RunDir(tmp_path)
    actor.settings = types.SimpleNamespace(robot_name=ROBOT)
    actor.link = types.SimpleNamespace(resent_messages=2, unacked=1)
    actor.messages_sent = 7
    (tmp_path / "actor").mkdir()
    actor.write_link_stats()
    assert json.loads(actor.paths.actor_link_stats.read_text()) == {
        "robot_name": ROBOT, "messages_sent": 7, "resent_messages": 2, "unacked_at_exit": 1}

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hilrl.actor.loop.write_json_atomic", full_disk)
    with caplog.at_level(logging.ERROR, logger="hilrl.actor.loop"):
        actor.write_link_stats()
    assert any("No space left" in r.getMessage() and "link.json" in r.getMessage() for r in caplog.records)


def test_the_throttle_gives_up_on_the_first_welcome_at_the_learner_grace():
    class NoLearner:
        learner_alive, learner_session, learner_updates_done, learner_env_steps_ahead, refused = False, None, 0, 0, None

    from hilrl.actor.config import ActorConfig

    throttle = LockstepThrottle(ActorConfig(learner_wait_s=60.0), "tcp://127.0.0.1:1")
    started = time.monotonic()
    assert throttle.wait_for_learner(NoLearner(), threading.Event(), give_up_s=0.2) is False
    assert time.monotonic() - started < 2.0
