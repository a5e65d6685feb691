"""The imitation core (hilrl.learner.imitation): bc trains its configured updates on the demos and
stops; hg_dagger goes on at the configured ratio on demos plus takeovers; the held-out episodes
are never trained on; lockstep actors wait while the first updates run."""

from __future__ import annotations

import numpy as np
import pytest

from hilrl.learner.imitation import BCTrainer
from hilrl.learner.main import Learner
from hilrl.transport.config import config_path, load_document
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.algorithm import BCConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig
from tests.learning_core.replay_support import ACTION_DIM, STATE_DIM, Episode, chunks, records


def _trainer(algorithm: str = "bc", updates: int = 30, utd: float = 2.0, validation_fraction: float = 0.25) -> BCTrainer:
    config = LearnerConfig(algorithm=algorithm, batch_size=16, replay_capacity=500, updates_per_env_step=utd,
                           bc=BCConfig(updates=updates, validation_fraction=validation_fraction,
                                       validate_every_updates=10),
                           sac=SACConfig(hidden_dims=[16, 16]))
    return BCTrainer(config, STATE_DIM, ACTION_DIM, has_gripper=False, device="cpu")


def _demos(trainer: BCTrainer, episodes: int = 8) -> None:
    for chunk in chunks(records([Episode(e, 6, "terminated") for e in range(episodes)]), 5, session="demo"):
        trainer.add_demo_chunk(chunk)


def _train(trainer: BCTrainer) -> list[dict]:
    out = []
    while trainer.may_update():
        out.append(trainer.update())
    return out


def test_bc_trains_its_updates_on_the_demos_then_stops_and_never_trains_on_held_out_episodes():
    trainer = _trainer("bc", updates=30)
    assert not trainer.may_update()  # nothing to learn from yet
    _demos(trainer)
    # Every 4th episode (0 and 4) is held out: 6 transitions each.
    assert len(trainer.validation) == 12 and len(trainer.demo) == 36
    assert set(trainer.validation.obs_state[trainer.validation.valid, 0]) == {0.0, 4.0}
    assert not set(trainer.demo.obs_state[trainer.demo.valid, 0]) & {0.0, 4.0}
    assert trainer.env_steps_ahead() == 30  # lockstep actors wait for the policy
    published = []
    metrics = []
    while trainer.may_update():
        metrics.append(trainer.update())
        published.append(trainer.must_publish())
    assert trainer.updates == 30 and published == [False] * 29 + [True]
    assert "bc_val_loss" in metrics[-1] and "bc_val_loss" not in metrics[0]  # validated every 10 updates
    assert metrics[-1]["bc_loss"] < metrics[0]["bc_loss"]
    # Online experience with takeovers changes nothing for bc: it is done.
    for chunk in chunks(records([Episode(50, 8, intervened=np.ones(8, bool))]), 4):
        trainer.add_chunk(chunk)
    assert not trainer.may_update() and trainer.env_steps_ahead() == 0 and trainer.env_steps == 8


def test_hg_dagger_goes_on_at_the_ratio_on_demos_and_takeovers_only():
    trainer = _trainer("hg_dagger", updates=20, utd=2.0)
    _demos(trainer)
    _train(trainer)
    assert trainer.updates == 20
    policy_steps = records([Episode(60, 10)])  # no takeover: the policy's own steps
    for chunk in chunks(policy_steps, 4):
        trainer.add_chunk(chunk)
    assert len(trainer.intervention) == 0 and len(trainer.online) == 10
    _train(trainer)
    assert trainer.updates == 20 + 2 * 10 and trainer.held_ratio() == 2.0
    takeover = np.zeros(10, bool)
    takeover[4:] = True
    for chunk in chunks(records([Episode(61, 10, intervened=takeover)]), 3):
        trainer.add_chunk(chunk)
    assert len(trainer.intervention) == 6  # only the operator's steps are trained on
    assert trainer.env_steps_ahead() == 10
    _train(trainer)
    assert trainer.updates == 20 + 2 * 20 and trainer.env_steps_ahead() == 0
    # The union is sampled: batches hold demo and takeover transitions (episodes < 8 and 61).
    sources = {int(e) for _ in range(10) for e in trainer._sample()["obs_state"][:, 0]}
    assert 61 in sources and sources & set(range(8)) and not sources & {0, 4, 60}


def test_a_checkpoint_resumes_bc_bit_identically():
    a = _trainer("hg_dagger", updates=12)
    _demos(a)
    for _ in range(6):
        a.update()
    tensors, counters = a.state()
    b = _trainer("hg_dagger", updates=12)
    _demos(b)
    b.load_state(tensors, **counters)
    assert [a.update() for _ in range(6)] == [b.update() for _ in range(6)]


def test_the_learner_process_picks_the_imitation_core_and_bc_without_demos_is_an_error_naming_the_key(tmp_path):
    doc = load_document(config_path("sim_reach"), ["dashboard.enabled=false", "link.address=tcp://127.0.0.1:0",
                                                   "learner.algorithm=hg_dagger"])
    learner = Learner(doc, tmp_path, resume=False)
    try:
        assert isinstance(learner.trainer, BCTrainer) and learner.agent is learner.trainer.agent
    finally:
        learner.link.close()
    bc = load_document(config_path("sim_reach"), ["learner.algorithm=bc"])
    with pytest.raises(SchemaError, match="learner.demos"):
        Learner.validate(bc)
    with pytest.raises(SchemaError, match="learner.algorithm"):
        Learner.validate(load_document(config_path("sim_reach"), ["learner.algorithm=dagger"]))
