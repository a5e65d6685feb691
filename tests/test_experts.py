"""Scripted experts: each succeeds on at least 95% of 50 seeded episodes of its task (they will
record the demonstrations the learner starts from, so a weak expert means weak demos)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import hilrl.actor  # noqa: F401  (registers the hilrl/Sim* ids)
from hilrl.actor.experts import make_expert

TASK_IDS = {"reach": "hilrl/SimReach-v0", "pick_cube": "hilrl/SimPickCube-v0", "peg_insert": "hilrl/SimPegInsert-v0"}


def run_expert_episodes(task: str, episodes: int) -> tuple[int, list[int]]:
    """(successes, episode lengths) of the expert over seeds 0..episodes-1."""
    env = gym.make(TASK_IDS[task])
    raw = env.unwrapped
    expert = make_expert(task, raw.config.action)
    successes, lengths = 0, []
    try:
        for seed in range(episodes):
            env.reset(seed=seed)
            expert.reset()
            steps, terminated, truncated = 0, False, False
            while not (terminated or truncated):
                _, reward, terminated, truncated, info = env.step(expert.act(raw.robot_state))
                steps += 1
            successes += int(terminated and info["succeeded"] and reward == raw.config.success_reward)
            lengths.append(steps)
    finally:
        env.close()
    return successes, lengths


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", sorted(TASK_IDS))
def test_expert_success_rate_at_least_95_percent(task):
    successes, lengths = run_expert_episodes(task, 50)
    assert successes >= 48, f"{task}: expert succeeded on {successes}/50 episodes"
    # An expert that only succeeds at the time limit would be a poor demonstrator.
    assert sum(lengths) / len(lengths) < 0.5 * gym.spec(TASK_IDS[task]).make().unwrapped.config.max_episode_steps


def test_expert_action_fits_the_env_action_space():
    env = gym.make("hilrl/SimPickCube-v0")
    try:
        env.reset(seed=3)
        expert = make_expert("pick_cube", env.unwrapped.config.action)
        action = expert.act(env.unwrapped.robot_state)
        assert env.action_space.contains(action)
    finally:
        env.close()


def test_unknown_task_has_no_expert():
    from hilrl.transport.action import ActionConfig

    with pytest.raises(ValueError, match="no scripted expert for task 'stack'"):
        make_expert("stack", ActionConfig())
