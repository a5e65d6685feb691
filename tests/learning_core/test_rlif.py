"""RLIF's reward (hilrl.learner.rlif): the policy step the operator took over from pays -penalty,
wherever the chunks are cut, and nothing else pays (or the task reward is kept)."""

from __future__ import annotations

import numpy as np
import pytest

from hilrl.learner.rlpd import RLPDTrainer
from hilrl.transport.sections.algorithm import RLIFConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig
from tests.learning_core.replay_support import ACTION_DIM, STATE_DIM, Episode, chunks, records

# Episode 0: takeovers start at steps 3 and 7 (the policy's steps 2 and 6 pay), one at step 0 of
# episode 1 (no policy step before it in that episode: nothing pays, and not episode 0's last).
EPISODES = [
    Episode(0, 10, "truncated", intervened=np.array([0, 0, 0, 1, 1, 0, 0, 1, 1, 1], bool)),
    Episode(1, 6, "terminated", intervened=np.array([1, 1, 0, 0, 0, 0], bool)),
]
PENALISED = {(0, 2), (0, 6)}


def _trainer(task_reward: bool = False, penalty: float = 2.0) -> RLPDTrainer:
    config = LearnerConfig(algorithm="rlif", batch_size=8, training_starts=1, replay_capacity=200,
                           rlif=RLIFConfig(penalty=penalty, task_reward=task_reward), sac=SACConfig(hidden_dims=[8]))
    return RLPDTrainer(config, STATE_DIM, ACTION_DIM, has_gripper=False, device="cpu")


def _stored_rewards(trainer: RLPDTrainer) -> dict[tuple[int, int], float]:
    """(episode, step) -> reward of every sampleable online transition."""
    buf = trainer.online
    slots = np.flatnonzero(buf.valid)
    return {(int(buf.obs_state[i, 0]), int(buf.obs_state[i, 1])): float(buf.reward[i]) for i in slots}


@pytest.mark.parametrize("sizes", [100, 1, 3, [4, 1, 2], 7])
def test_the_step_before_each_takeover_pays_the_penalty_however_the_chunks_are_cut(sizes):
    trainer = _trainer()
    for chunk in chunks(records(EPISODES), sizes):
        trainer.add_chunk(chunk)
    rewards = _stored_rewards(trainer)
    assert len(rewards) == 16
    assert {key for key, r in rewards.items() if r != 0} == PENALISED, rewards
    assert all(rewards[key] == -2.0 for key in PENALISED)


def test_with_the_task_reward_the_penalty_is_added_to_it():
    trainer = _trainer(task_reward=True, penalty=1.0)
    for chunk in chunks(records(EPISODES), 3):
        trainer.add_chunk(chunk)
    rewards = _stored_rewards(trainer)
    for (episode, step), reward in rewards.items():
        task = step / 100.0  # replay_support's reward
        assert reward == pytest.approx(task - (1.0 if (episode, step) in PENALISED else 0.0))


def test_demonstrations_pay_nothing_without_the_task_reward_and_keep_it_with_it():
    for task_reward in (False, True):
        trainer = _trainer(task_reward=task_reward)
        for chunk in chunks(records([Episode(0, 5, "terminated")]), 2):
            trainer.add_demo_chunk(chunk)
        buf = trainer.demo
        slots = np.flatnonzero(buf.valid)
        expected = buf.obs_state[slots, 1] / 100.0 if task_reward else np.zeros(len(slots))
        np.testing.assert_allclose(buf.reward[slots], expected, atol=1e-6)


def test_a_sac_trainer_keeps_the_task_reward():
    config = LearnerConfig(batch_size=8, training_starts=1, replay_capacity=200, sac=SACConfig(hidden_dims=[8]))
    trainer = RLPDTrainer(config, STATE_DIM, ACTION_DIM, has_gripper=False, device="cpu")
    for chunk in chunks(records(EPISODES), 3):
        trainer.add_chunk(chunk)
    rewards = _stored_rewards(trainer)
    assert all(r == pytest.approx(step / 100.0) for (_, step), r in rewards.items())


def test_plain_steps_are_refused_for_rlif_rather_than_trained_on_the_task_reward():
    trainer = _trainer()
    obs = np.zeros(STATE_DIM, np.float32)
    with pytest.raises(ValueError, match="add_chunk"):
        trainer.add_step(obs, np.zeros(ACTION_DIM, np.float32), 1.0, obs, False, False)
