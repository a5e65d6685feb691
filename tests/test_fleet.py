"""Several robots into one learner.

In one process, against the real learner loop and real links: the update-to-data ratio is held
over the sum of all robots' env steps (the learner waits when it is ahead, and says so to the
actors at once), "as fast as it can" keeps updating, per-robot tallies, and episode counts that
survive a resume. Between real processes: two actors with their own robot servers, seeds and names
into one learner; one actor SIGKILLed and restarted mid-run, the learner SIGKILLed and resumed;
every finished chunk stored exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from process_support import free_port, spawn, stop, wait_for

from hilrl.learner.fleet import Fleet
from hilrl.learner.main import Learner
from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.config import config_path, load_document
from hilrl.transport.learner_messages import LEARNER_MESSAGES, EpisodeStats, TransitionChunk
from hilrl.transport.link import ActorLink
from hilrl.transport.link_config import LinkConfig

SMALL = ["learner.batch_size=16", "learner.sac.hidden_dims=[16, 16]", "learner.torch_threads=1",
         "dashboard.enabled=false", "learner.progress_every_s=0"]


def _chunk(state_dim: int, action_dim: int, k: int = 10, episode: int = 0, version: int = -1) -> TransitionChunk:
    rng = np.random.default_rng(episode)
    return TransitionChunk(
        actor_session="", seq=0,
        obs_state=rng.standard_normal((k, state_dim)).astype(np.float32),
        action=rng.uniform(-1, 1, (k, action_dim)).astype(np.float32),
        reward=np.zeros(k, np.float32), terminated=np.zeros(k, bool), truncated=np.zeros(k, bool),
        intervened=np.zeros(k, bool), gripper_switched=np.zeros(k, bool), has_action=np.ones(k, bool),
        episode_id=np.full(k, episode, np.int64), step_index=np.arange(k, dtype=np.int32),
        policy_version=np.full(k, version, np.int64),
    )


def _stats(success: bool, episode: int) -> EpisodeStats:
    return EpisodeStats(actor_session="", seq=0, episode_id=episode, episode_return=1.0, success=success,
                        length=10, interventions=0, intervention_steps=5 if success else 0,
                        intervention_fraction=0.5 if success else 0.0, period_p50_ms=100.0,
                        period_p99_ms=101.0, policy_version=0, env_steps=10)


class _Cell:
    """A learner running its real loop in a thread, with actor links named after robots."""

    def __init__(self, run_dir: Path, overrides: list[str], resume: bool = False):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        doc = load_document(config_path("sim_reach"), [*SMALL, f"link.address={self.address}", *overrides])
        self.stop = threading.Event()
        self.learner = Learner(doc, run_dir, resume=resume, stop=self.stop)
        self.thread = threading.Thread(target=self.learner.run, daemon=True)
        self.thread.start()
        self.links: list[ActorLink] = []
        self.run_dir = run_dir

    def actor(self, robot_name: str) -> ActorLink:
        config = LinkConfig(address=self.address, heartbeat_s=0.05, peer_timeout_s=1.0)
        hello = dataclasses.replace(self.learner.link.expected, robot_name=robot_name, actor_session="")
        link = ActorLink(config, hello, self.run_dir / f"spool-{robot_name}-{len(self.links)}")
        link.start()
        self.links.append(link)
        assert _wait(lambda: link.learner_alive, 10), "no welcome"
        return link

    def chunk(self, k: int = 10, episode: int = 0, version: int = -1) -> TransitionChunk:
        spec = self.learner.obs_spec
        return _chunk(spec.state_dim, self.learner.action_dim, k, episode, version)

    def close(self) -> None:
        for link in self.links:
            link.close(flush_timeout_s=2.0)
        self.stop.set()
        self.thread.join(30)


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _settled(learner: Learner, quiet_s: float = 2.0, timeout_s: float = 60) -> int:
    """The learner's update count once it has not changed for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    last, since = learner.updates, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if learner.updates != last:
            last, since = learner.updates, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
    raise AssertionError(f"the learner kept updating ({learner.updates})")


@pytest.mark.timeout(120)
def test_the_update_ratio_is_held_over_all_robots_and_the_learner_waits_when_ahead(tmp_path):
    cell = _Cell(tmp_path, ["learner.training_starts=18", "learner.updates_per_env_step=2"])
    try:
        a, b = cell.actor("cell-a"), cell.actor("cell-b")
        for episode in (0, 1):  # the warm-up: 20 env steps (18 transitions) from robot a, free of updates
            a.send_chunk(cell.chunk(episode=episode))
        assert _wait(lambda: cell.learner.progress.env_steps == 20, 10)
        assert _wait(lambda: cell.learner.trainer.training, 10)  # training has started
        assert _settled(cell.learner) == 0
        # 10 steps from each robot: 2 updates per env step over their sum, then it waits.
        b.send_chunk(cell.chunk(episode=10))
        a.send_chunk(cell.chunk(episode=2))
        assert _settled(cell.learner) == 40
        # Caught up, it tells both actors at once (not at the next heartbeat): nothing ahead.
        assert _wait(lambda: a.learner_env_steps_ahead == 0 and b.learner_env_steps_ahead == 0, 2)
        assert a.learner_updates_done == b.learner_updates_done == 40
        b.send_chunk(cell.chunk(k=5, episode=11))
        assert _settled(cell.learner) == 50
        a.send_stats(_stats(True, 0))
        b.send_stats(_stats(False, 10))
        b.send_stats(_stats(True, 11))
        assert _wait(lambda: cell.learner.progress.episodes == 3, 10)
        cell.learner._report(0.0)
        progress = json.loads((tmp_path / "learner" / "progress.json").read_text())
        assert progress["updates_per_env_step"] == 2.0 and progress["updates_per_env_step_held"] == 2.0
        robots = progress["robots"]
        assert robots["cell-a"]["env_steps"] == 30 and robots["cell-b"]["env_steps"] == 15
        assert robots["cell-a"]["episodes"] == 1 and robots["cell-b"]["episodes"] == 2
        assert robots["cell-b"]["recent_success_rate"] == 0.5 and robots["cell-b"]["link"] == "connected"
    finally:
        cell.close()

    # A resume carries the counts on (from the learner's own store) and owes nothing for them.
    cell = _Cell(tmp_path, ["learner.training_starts=18", "learner.updates_per_env_step=2"], resume=True)
    try:
        assert cell.learner.updates == 50 and cell.learner.progress.episodes == 3
        assert _settled(cell.learner) == 50
        lines = (tmp_path / "learner" / "episodes.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["robot_name"] for line in lines) == ["cell-a", "cell-b", "cell-b"]
        c = cell.actor("cell-c")
        c.send_chunk(cell.chunk(episode=20))
        assert _settled(cell.learner) == 70
        cell.learner._report(0.0)
        robots = json.loads((tmp_path / "learner" / "progress.json").read_text())["robots"]
        assert robots["cell-a"]["env_steps"] == 30 and robots["cell-a"]["link"] == "gone"
        assert robots["cell-c"]["env_steps"] == 10 and robots["cell-c"]["link"] == "connected"
    finally:
        cell.close()


@pytest.mark.timeout(60)
def test_zero_updates_per_env_step_trains_as_fast_as_it_can(tmp_path):
    cell = _Cell(tmp_path, ["learner.training_starts=18", "learner.updates_per_env_step=0"])
    try:
        a = cell.actor("cell-a")
        for episode in (0, 1):
            a.send_chunk(cell.chunk(episode=episode))
        # No new data after the warm-up, and still it keeps training.
        assert _wait(lambda: cell.learner.updates >= 100, 30)
        assert a.learner_env_steps_ahead == 0
    finally:
        cell.close()


def test_fleet_tallies_each_robot_and_its_policy_lag():
    now = [0.0]
    fleet = Fleet(clock=lambda: now[0])
    spec = (5, 3)
    for robot, version in (("a", 2), ("a", 4), ("b", -1)):
        chunk = dataclasses.replace(_chunk(*spec, version=version), robot_name=robot)
        assert fleet.add_chunk(chunk) == 10
    unnamed = dataclasses.replace(_chunk(*spec), actor_session="actor-123")
    fleet.add_chunk(unnamed)
    for robot, success in (("a", True), ("a", False), ("a", True)):
        fleet.add_episode(dataclasses.replace(_stats(success, 0), robot_name=robot))
    fleet.reports(6, {}, 1.0)
    now[0] = 2.0
    fleet.add_chunk(dataclasses.replace(_chunk(*spec), robot_name="b"))
    reports = fleet.reports(6, {"a": 0.2, "b": 5.0}, 1.0)
    assert set(reports) == {"a", "b", "actor-123"}
    assert reports["a"].env_steps == 20 and reports["a"].episodes == 3
    assert reports["a"].recent_success_rate == pytest.approx(2 / 3)
    assert reports["a"].weights_lag == 2 and reports["b"].weights_lag is None
    assert reports["a"].link == "connected" and reports["b"].link == "silent"
    assert reports["actor-123"].link == "gone"
    assert reports["b"].env_steps_per_s == 5.0  # 10 steps in the 2 s between reports


# ---------------------------------------------------------------------- separate processes

def _progress(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "learner" / "progress.json").read_text())
    except (OSError, ValueError):
        return {}


def _robot_steps(run_dir: Path, robot: str) -> int:
    return (_progress(run_dir).get("robots", {}).get(robot) or {}).get("env_steps", 0)


def _stored(run_dir: Path, kind: str) -> list:
    """The learner's stored "chunks" or "stats" (episode stats)."""
    return [msg for _, msg in ChunkDirectory(run_dir / "learner" / "link" / kind).iter_messages(LEARNER_MESSAGES)]


@pytest.mark.timeout(420)
def test_two_actors_with_their_own_robot_servers_into_one_learner(tmp_path):
    """Hand-started, as a lab does: one learner, two robot servers, two actors with different
    robot names, seeds and robot server addresses. Actor b is SIGKILLed and restarted mid-run,
    then the learner is SIGKILLed and resumed; every finished chunk is stored exactly once."""
    run = tmp_path / "learner-run"
    link = f"link.address=tcp://127.0.0.1:{free_port()}"
    shared = [link, "learner.batch_size=32", "learner.sac.hidden_dims=[32, 32]", "dashboard.enabled=false"]
    learner_args = [*shared, "learner.training_starts=100", "learner.updates_per_env_step=1",
                    "learner.progress_every_s=1", "learner.checkpoint_every_s=2"]
    procs: dict[str, object] = {}
    ports = {name: free_port() for name in ("a", "b")}

    def start_actor(name: str, seed: int) -> None:
        procs[f"actor-{name}"] = spawn(
            ["actor", "--config", "sim_reach", "--run-dir", str(tmp_path / f"actor-{name}"), *shared,
             "env.connection=server", f"robot_server.address=tcp://127.0.0.1:{ports[name]}",
             f"actor.robot_name=cell-{name}", f"actor.seed={seed}", "actor.progress_every_s=1",
             "link.peer_timeout_s=2.0"],
            tmp_path / f"actor-{name}.log")

    try:
        procs["learner"] = spawn(["learner", "--config", "sim_reach", "--run-dir", str(run), *learner_args],
                                 tmp_path / "learner.log")
        for name in ("a", "b"):
            procs[f"server-{name}"] = spawn(["robot-server", "--config", "sim_reach", "--port", str(ports[name])],
                                            tmp_path / f"server-{name}.log")
        for name in ("a", "b"):
            wait_for(lambda n=name: "listening" in (tmp_path / f"server-{n}.log").read_text(), 60, f"robot server {name}")
        start_actor("a", 0)
        start_actor("b", 1)
        wait_for(lambda: min(_robot_steps(run, "cell-a"), _robot_steps(run, "cell-b")) >= 200, 180,
                 "both robots to contribute 200 env steps")
        # Both lockstep actors wait on the learner's one global count: the ratio holds over their sum.
        progress = _progress(run)
        assert 0.8 <= progress["updates_per_env_step_held"] <= 1.05, progress

        # Actor b dies at the worst moment; a carries on; b restarted with its run directory.
        stop(procs["actor-b"], sig=9)
        a_before = _robot_steps(run, "cell-a")
        wait_for(lambda: _robot_steps(run, "cell-a") >= a_before + 100, 60, "robot a to carry on without b")
        b_before = _robot_steps(run, "cell-b")
        start_actor("b", 1)
        wait_for(lambda: _robot_steps(run, "cell-b") >= b_before + 100, 120, "robot b to rejoin")

        # The learner dies; both actors keep acting (spooling); it is resumed.
        stop(procs["learner"], sig=9)
        (run / "learner" / "progress.json").unlink()  # what the resumed learner writes is read from here on
        time.sleep(3)
        procs["learner"] = spawn(["learner", "--resume", str(run), *learner_args], tmp_path / "learner-2.log")
        wait_for(lambda: _progress(run).get("robots", {}).get("cell-a", {}).get("link") == "connected"
                 and _progress(run)["robots"].get("cell-b", {}).get("link") == "connected", 90,
                 "both actors to reconnect to the resumed learner")
        steps_at_resume = _progress(run)["env_steps"]
        wait_for(lambda: _progress(run).get("env_steps", 0) >= steps_at_resume + 200, 120,
                 "training to go on with both robots after the resume")
        # What the actors did during the outage arrives at once; the learner works it off while
        # the lockstep actors wait, and the ratio since the resume comes back to the configured one.
        wait_for(lambda: _progress(run).get("env_steps_ahead", 10**6) <= 60, 180, "the learner to catch up")
        progress = _progress(run)
        assert 0.8 <= progress["updates_per_env_step_held"] <= 1.05, progress

        for name in ("a", "b"):  # clean stops: each actor flushes what it has
            stop(procs[f"actor-{name}"])
            assert procs[f"actor-{name}"].returncode == 0, (tmp_path / f"actor-{name}.log").read_text()[-3000:]
        time.sleep(1.5)
        stop(procs["learner"])
    finally:
        for proc in procs.values():
            stop(proc, sig=9)

    chunks, stats = _stored(run, "chunks"), _stored(run, "stats")
    keys = Counter((m.actor_session, m.seq) for m in [*chunks, *stats])
    assert max(keys.values()) == 1, "a message was stored twice"
    by_session: dict[str, set[int]] = {}
    robot_of_session: dict[str, str] = {}
    for m in [*chunks, *stats]:
        by_session.setdefault(m.actor_session, set()).add(m.seq)
        robot_of_session[m.actor_session] = m.robot_name
    # Three actor sessions (a; b before and after its kill), each a gapless run of sequence
    # numbers over its chunks and episode stats: nothing sent was lost, the kill and the learner
    # outage included.
    assert sorted(robot_of_session.values()) == ["cell-a", "cell-b", "cell-b"], robot_of_session
    for session, seqs in by_session.items():
        assert seqs == set(range(1, max(seqs) + 1)), (session, sorted(set(range(1, max(seqs) + 1)) - seqs))
    # The robots' reset sequences differ (names and seeds mix into every episode's reset).
    first_obs = {}
    for c in chunks:
        if c.step_index[0] == 0 and c.robot_name not in first_obs:
            first_obs[c.robot_name] = np.array(c.obs_state[0])
    assert not np.allclose(first_obs["cell-a"], first_obs["cell-b"])
    # The learner's accounting is global and per robot, and adds up.
    final = json.loads((run / "learner" / "progress.json").read_text())
    per_robot = {name: r["env_steps"] for name, r in final["robots"].items()}
    assert sum(per_robot.values()) == final["env_steps"] == sum(int(c.has_action.sum()) for c in chunks)
    assert final["link"]["duplicates"] >= 0


@pytest.mark.timeout(120)
def test_a_full_disk_pauses_the_learners_records_and_loses_nothing_once_space_returns(tmp_path, monkeypatch, caplog):
    """ENOSPC from every file the learner writes itself (progress.json, episodes.jsonl, the
    checkpoint; the link's store has its own tests): training goes on, the failures are logged,
    and once space returns every record is written, each episode once."""
    import errno

    import hilrl.learner.main as learner_main

    full = threading.Event()
    real = {name: getattr(learner_main, name) for name in ("write_json_atomic", "write_checkpoint", "append_whole")}

    def failing(name):
        def write(*args, **kwargs):
            if full.is_set():
                raise OSError(errno.ENOSPC, "No space left on device")
            return real[name](*args, **kwargs)
        return write

    for name in real:
        monkeypatch.setattr(learner_main, name, failing(name))
    cell = _Cell(tmp_path, ["learner.training_starts=18", "learner.updates_per_env_step=1",
                            "learner.checkpoint_every_updates=5"])
    try:
        a = cell.actor("cell-a")
        for episode in (0, 1):
            a.send_chunk(cell.chunk(episode=episode))
        assert _wait(lambda: cell.learner.trainer.training, 10)
        full.set()
        for episode in range(2, 5):
            a.send_chunk(cell.chunk(episode=episode))
            a.send_stats(_stats(True, episode))
        assert _settled(cell.learner) == 30  # trained on, with nothing writable
        assert cell.thread.is_alive()
        assert _wait(lambda: "No space left on device" in caplog.text, 10)
        assert not (tmp_path / "learner" / "episodes.jsonl").exists()
        assert not (tmp_path / "learner" / "checkpoint.bin").exists()
        full.clear()  # space again
        a.send_chunk(cell.chunk(episode=5))
        a.send_stats(_stats(False, 5))
        assert _settled(cell.learner) == 40
        assert _wait(lambda: (tmp_path / "learner" / "checkpoint.bin").exists(), 10)
        assert _wait(lambda: len((tmp_path / "learner" / "episodes.jsonl").read_text().splitlines()) == 4, 10)
        assert _wait(lambda: json.loads((tmp_path / "learner" / "progress.json").read_text())["episodes"] == 4, 10)
    finally:
        cell.close()
    assert "full" in caplog.text and "training goes on" in caplog.text


@pytest.mark.timeout(60)
def test_checkpoints_come_by_wall_time_too(tmp_path):
    """With a checkpoint every million updates, a killed learner would lose all its training; by
    time, at most `checkpoint_every_s` of it."""
    cell = _Cell(tmp_path, ["learner.training_starts=18", "learner.updates_per_env_step=0",
                            "learner.checkpoint_every_updates=1000000", "learner.checkpoint_every_s=1"])
    try:
        a = cell.actor("cell-a")
        for episode in (0, 1):
            a.send_chunk(cell.chunk(episode=episode))
        path = tmp_path / "learner" / "checkpoint.bin"
        assert _wait(lambda: path.exists(), 20)
        first = path.stat().st_mtime_ns
        assert _wait(lambda: path.stat().st_mtime_ns != first, 10)  # and again a second later
        from hilrl.transport.checkpoint import read_checkpoint
        assert 0 < read_checkpoint(path).updates < 1_000_000
    finally:
        cell.close()
