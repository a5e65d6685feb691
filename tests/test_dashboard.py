"""The rerun dashboard: the real Actor and Learner write recordings that rerun reads back with the
expected entities; a disabled (or rerun-less) dashboard writes nothing; a failing logger never
stops the control loop; the `--dashboard` flag and the `dashboard:` section.

Recordings are read back with the installed rerun's chunk reader (`rerun.chunk.RrdReader`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hilrl.actor.dashboard import ActorDashboard
from hilrl.configs import config_path
from hilrl.learner.dashboard import LearnerDashboard
from hilrl.tools.run import free_loopback_port
from hilrl.transport.config import document_hash, load_document, section
from hilrl.transport.dashboard import (
    Dashboard,
    DashboardConfig,
    _listening,
    dashboard_overrides,
    default_recording_id,
)
from hilrl.transport.schema import SchemaError

rerun_chunk = pytest.importorskip("rerun.chunk")


def _read(path: Path) -> dict[str, list]:
    """Entity path -> the chunks holding data for it (static chunks, such as series names, left out)."""
    reader = rerun_chunk.RrdReader(path)
    entities: dict[str, list] = {}
    for chunk in reader.stream().to_chunks():
        if not chunk.is_static:
            entities.setdefault(chunk.entity_path, []).append(chunk)
    return entities


def _column(chunks: list, name: str) -> list:
    values: list = []
    for chunk in chunks:
        batch = chunk.to_record_batch()
        if name in batch.schema.names:
            values += batch.column(name).to_pylist()
    return values


def _doc(tmp_path: Path, *extra: str) -> dict:
    """sim_reach, small and fast: one 32x32 camera, short episodes, a tiny network, a free port."""
    return load_document(
        config_path("sim_reach"),
        [
            "env.max_episode_steps=12",
            "env.observation.cameras=[{name: front, size: [32, 32]}]",
            "learner.sac.encoder.image_size=32",
            "learner.sac.encoder.feature_dim=16",
            "learner.sac.hidden_dims=[32, 32]",
            "learner.device=cpu",
            "learner.batch_size=8",
            "learner.training_starts=16",
            "learner.replay_capacity=1000",
            "learner.weights_every_updates=2",
            "learner.updates_per_env_step=0",
            "actor.intervention.rule=random",
            "actor.intervention.probability=0.5",
            f"link.address=tcp://127.0.0.1:{free_loopback_port()}",
            "dashboard.log_images_every_steps=2",
            "dashboard.log_every_updates=1",
            *extra,
        ],
    )


def _actor_steps(actor, steps: int) -> None:
    """Drive the actor's own loop body with no learner (the link is never started: chunks queue,
    and closing it spills them to the spool at once)."""
    while actor.env_steps < steps:
        actor._episode(steps)


# ---------------------------------------------------------------------------------- real processes


@pytest.mark.timeout(120)
def test_actor_and_learner_record_the_dashboard(tmp_path):
    from hilrl.actor.loop import Actor
    from hilrl.learner.main import Learner

    doc = _doc(tmp_path)
    stop, actor_stop = threading.Event(), threading.Event()
    learner = Learner(doc, tmp_path, resume=False, stop=stop)
    learner_thread = threading.Thread(target=learner.run, daemon=True)
    learner_thread.start()
    actor = Actor(doc, tmp_path, stop=actor_stop)

    def enough() -> None:
        # Env steps, updates (losses) and chunks acted on by the policy (the version lag),
        # however slowly the first weights arrive on a busy machine.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            actor.env_steps >= 40 and learner.updates >= 4 and learner.fleet.acting_version >= 0
        ):
            time.sleep(0.05)
        actor_stop.set()

    threading.Thread(target=enough, daemon=True).start()
    try:
        actor.run()  # on this thread: the env's renderer belongs to the thread that made it
    finally:
        actor_stop.set()
        actor.close()  # run() closed its link first, after the learner stored every chunk
        time.sleep(1.2)  # the learner logs buffers and the version lag once a second
        stop.set()
        learner_thread.join(30)
    assert not learner_thread.is_alive()
    assert learner.updates >= 4 and learner.fleet.acting_version >= 0
    n = actor.env_steps

    folder = tmp_path / "dashboard"
    assert sorted(p.name for p in folder.glob("*.rrd")) == ["actor.rrd", "learner.rrd"]
    actor_rec, learner_rec = _read(folder / "actor.rrd"), _read(folder / "learner.rrd")
    for path in ("/actor/camera/front", "/actor/action/policy", "/actor/action/operator", "/actor/intervened",
                 "/actor/reward", "/actor/loop_period_ms", "/actor/image_age_ms", "/actor/episode/success",
                 "/actor/episode/return", "/actor/policy_version", "/actor/episodes"):
        assert path in actor_rec, f"{path} missing; the actor logged {sorted(actor_rec)}"
    for path in ("/learner/loss/critic", "/learner/loss/actor", "/learner/q_mean", "/learner/temperature",
                 "/learner/entropy", "/learner/updates_per_s", "/learner/buffer/online", "/learner/buffer/demo",
                 "/learner/buffer/intervention", "/learner/weights_version", "/learner/version_lag"):
        assert path in learner_rec, f"{path} missing; the learner logged {sorted(learner_rec)}"

    # Every env step on the step timeline; images every 2nd step, subsampled in time only (32 px
    # is under the size limit).
    steps = sorted(_column(actor_rec["/actor/reward"], "step"))
    assert steps == list(range(1, n + 1))
    assert sorted(_column(actor_rec["/actor/camera/front"], "step")) == list(range(2, n + 1, 2))
    # The operator's action appears exactly on the intervened steps.
    flags = dict(zip(_column(actor_rec["/actor/intervened"], "step"),
                     [v[0] for v in _column(actor_rec["/actor/intervened"], "Scalars:scalars")], strict=True))
    operator_steps = set(_column(actor_rec["/actor/action/operator"], "step"))
    assert operator_steps and operator_steps == {s for s, v in flags.items() if v == 1.0}
    policy = _column(actor_rec["/actor/action/policy"], "Scalars:scalars")
    assert len(policy) == n and all(len(a) == 3 for a in policy)  # reach: xyz
    # Learner: losses on the update timeline, one point per update (log_every_updates=1), and the
    # buffer it trained from.
    updates = _column(learner_rec["/learner/loss/critic"], "update")
    assert updates[:4] == [1, 2, 3, 4]
    online = [v[0] for v in _column(learner_rec["/learner/buffer/online"], "Scalars:scalars")]
    assert max(online) == n
    assert all(v[0] >= 0 for v in _column(learner_rec["/learner/version_lag"], "Scalars:scalars"))
    # One recording id for both: a viewer shows them as one recording.
    ids = {e.recording_id for p in ("actor.rrd", "learner.rrd") for e in rerun_chunk.RrdReader(folder / p).recordings()}
    assert ids == {default_recording_id(tmp_path)}


@pytest.mark.timeout(60)
def test_disabled_dashboard_writes_nothing(tmp_path):
    from hilrl.actor.loop import Actor

    actor = Actor(_doc(tmp_path, "dashboard.enabled=false"), tmp_path)
    try:
        _actor_steps(actor, 5)
    finally:
        actor.link.close()
        actor.close()
    assert actor.env_steps == 5
    learner = LearnerDashboard(DashboardConfig(enabled=False), tmp_path)
    learner.training(10, 5, {"critic_loss": 1.0})
    learner.status(10, 5, 1.0, {"online": 5}, 0, 0, 0.0, 0.0)
    learner.close()
    assert not (tmp_path / "dashboard").exists()


@pytest.mark.timeout(30)
def test_without_rerun_the_dashboard_is_a_no_op(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "rerun", None)  # `import rerun` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="hilrl.transport.dashboard"):
        dashboard = ActorDashboard(DashboardConfig(), tmp_path, "reach", ["x", "y", "z"])
    assert not dashboard.recording.active
    assert "rerun cannot be imported" in caplog.text
    dashboard.step(1, {"state": np.zeros(3)}, np.zeros(3), {}, 0.0, 10.0)
    dashboard.close()
    assert not (tmp_path / "dashboard").exists()


class _BrokenStream:
    """Stands in for a RecordingStream whose every call fails."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError(f"rerun is broken ({name})")

        return fail


@pytest.mark.timeout(60)
def test_a_failing_logger_does_not_break_the_loop(tmp_path, caplog):
    from hilrl.actor.loop import Actor

    actor = Actor(_doc(tmp_path), tmp_path)
    recording = actor.dashboard.recording
    real, recording._stream = recording._stream, _BrokenStream()
    try:
        with caplog.at_level(logging.WARNING, logger="hilrl.transport.dashboard"):
            _actor_steps(actor, 15)
            actor.link.close()
            actor.close()
    finally:
        real.disconnect()
    assert actor.env_steps == 15
    failures = [r for r in caplog.records if "logging failed" in r.getMessage()]
    assert len(failures) == 1  # logged once ...
    assert recording.failures >= 15 + actor.episodes  # ... and counted every time
    assert "failed in all" in caplog.text


# ---------------------------------------------------------------------------------- details


@pytest.mark.timeout(30)
def test_classifier_probability_images_and_size_limit(tmp_path):
    config = DashboardConfig(log_images_every_steps=3, max_image_size_px=64)
    dashboard = ActorDashboard(config, tmp_path, "pick_cube", ["x", "y", "z", "gripper"])
    for step in range(1, 7):
        info = {"intervened": False, "classifier_probability": step / 10,
                "classifier_images": {"side": np.zeros((100, 100, 3), np.uint8)}}
        obs = {"state": np.zeros(4, np.float32), "front": np.zeros((128, 96, 3), np.uint8)}
        dashboard.step(step, obs, np.zeros(4, np.float32), info, 0.0, None)
    dashboard.close()
    rec = _read(tmp_path / "dashboard" / "actor.rrd")
    assert [v[0] for v in _column(rec["/actor/classifier_probability"], "Scalars:scalars")] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert sorted(_column(rec["/actor/camera/front"], "step")) == [3, 6]
    assert "/actor/camera/side" in rec
    assert "/actor/loop_period_ms" not in rec  # no period on a first step
    # 128 x 96 with stride 2 -> 64 x 48 (height, width, channels in the image format).
    formats = _column(rec["/actor/camera/front"], "Image:format")
    assert formats and all(f[0]["height"] == 64 and f[0]["width"] == 48 for f in formats)


@pytest.mark.timeout(30)
def test_a_restarted_process_keeps_the_earlier_recording(tmp_path):
    for _ in range(2):
        Dashboard(DashboardConfig(), tmp_path, "learner").close()
    assert sorted(p.name for p in (tmp_path / "dashboard").glob("*.rrd")) == ["learner-2.rrd", "learner.rrd"]


@pytest.mark.timeout(60)
def test_serve_mode_streams_to_a_loopback_server(tmp_path):
    port, web_port = free_loopback_port(), free_loopback_port()
    config = DashboardConfig(mode="serve", viewer_port=port, web_port=web_port, viewer_start_timeout_s=30)
    first = Dashboard(config, tmp_path, "actor")
    try:
        if first.viewer is None and not _listening("127.0.0.1", port):
            pytest.skip("the rerun binary could not start a server here")
        assert _listening("127.0.0.1", port)
        # The web viewer comes up a moment after the gRPC server (seconds on a busy CI machine).
        deadline = time.monotonic() + 20
        while not _listening("127.0.0.1", web_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listening("127.0.0.1", web_port)
        # The second process finds the server and joins it rather than starting another.
        second = Dashboard(config, tmp_path, "learner")
        assert second.viewer is None and second.active
        with first.guard():
            first.set_time(step=1)
            first.scalar("actor/reward", 1.0)
        first.close()
        second.close()
        assert "/actor/reward" in _read(tmp_path / "dashboard" / "actor.rrd")
    finally:
        if first.viewer is not None:
            first.viewer.terminate()
            first.viewer.wait(10)


@pytest.mark.timeout(30)
def test_flag_overrides_and_section():
    assert dashboard_overrides(None) == []
    assert dashboard_overrides("off") == ["dashboard.enabled=false"]
    doc = load_document(config_path("sim_reach"), dashboard_overrides("spawn"))
    config = section(doc, "dashboard", DashboardConfig)
    assert config.enabled and config.mode == "spawn" and config.bind == "127.0.0.1"
    assert not section(load_document(config_path("sim_reach"), dashboard_overrides("off")), "dashboard",
                       DashboardConfig).enabled
    # What a process shows is not part of the handshake: actor and learner may differ.
    assert document_hash(doc) == document_hash(load_document(config_path("sim_reach")))
    with pytest.raises(SchemaError) as info:
        section(load_document(config_path("sim_reach"), ["dashboard.mode=web"]), "dashboard", DashboardConfig)
    assert info.value.key == "dashboard.mode"
    with pytest.raises(SchemaError, match="log_every_updates"):
        section(load_document(config_path("sim_reach"), ["dashboard.log_every_updates=0"]), "dashboard",
                DashboardConfig)
