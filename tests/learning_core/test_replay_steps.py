"""ReplayBuffer.add_step: plain gymnasium steps (obs, action, reward, next_obs, terminated,
truncated) into the shared-observation buffer, without ever dropping an episode's last transition.
Property-based (hypothesis): any mix of terminations, truncations, resets the caller did not flag
and interleaved streams; every step comes back as exactly one transition with its own obs, action,
reward and next_obs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilrl.learner.replay import ReplayBuffer

S, A = 3, 2


def _transitions(buffer: ReplayBuffer) -> list[tuple]:
    """Every valid transition, read straight from the slots (obs, action, reward, next_obs, flags)."""
    out = []
    for slot in np.flatnonzero(buffer.valid):
        nxt = (slot + 1) % buffer.capacity
        out.append((tuple(buffer.obs_state[slot]), tuple(buffer.action[slot]), float(buffer.reward[slot]),
                    tuple(buffer.obs_state[nxt]), bool(buffer.terminated[slot]), bool(buffer.truncated[slot])))
    return out


# An episode: its length, and how it ends: "terminated", "truncated", "unflagged" (the caller
# resets without saying so) or "open" (still running when the steps stop; flush() stores it).
episodes = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["terminated", "truncated", "unflagged", "open"])),
                    min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(per_stream=st.lists(episodes, min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_every_step_is_one_transition_with_its_own_next_obs(per_stream, seed):
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(2000, S, A)
    expected = []
    # Interleave the streams' steps at random, as a vector env or several envs would.
    plans = []
    for stream, eps in enumerate(per_stream):
        steps = []
        for length, ending in eps:
            obs = rng.standard_normal(S).astype(np.float32)
            for i in range(length):
                last = i == length - 1
                next_obs = rng.standard_normal(S).astype(np.float32)
                action = rng.uniform(-1, 1, A).astype(np.float32)
                reward = 1.0 if last and ending == "terminated" else float(rng.integers(-3, 0))
                term, trunc = last and ending == "terminated", last and ending == "truncated"
                steps.append((obs, action, reward, next_obs, term, trunc))
                obs = next_obs
            if ending == "open":
                break  # nothing follows an episode still running
        plans.append([f"s{stream}", steps])
    while any(steps for _, steps in plans):
        name, steps = plans[rng.choice([i for i, (_, s) in enumerate(plans) if s])]
        obs, action, reward, next_obs, term, trunc = steps.pop(0)
        buffer.add_step(obs, action, reward, next_obs, term, trunc, stream=name)
        expected.append((tuple(obs), tuple(action), reward, tuple(next_obs), term, trunc))
    buffer.flush()
    assert sorted(_transitions(buffer)) == sorted(expected)
    assert len(buffer) == len(expected)


def test_every_rewarded_final_transition_is_sampled():
    buffer = ReplayBuffer(5000, S, A)
    rng = np.random.default_rng(0)
    finals = set()
    for _ in range(30):
        obs = rng.standard_normal(S).astype(np.float32)
        for i in range(int(rng.integers(1, 8))):
            next_obs = rng.standard_normal(S).astype(np.float32)
            done = i == 6 or rng.random() < 0.3
            buffer.add_step(obs, np.zeros(A, np.float32), 1.0 if done else 0.0, next_obs, done, False)
            if done:
                finals.add(tuple(next_obs))
                break
            obs = next_obs
        else:
            buffer.flush()
    batch = buffer.sample(20_000, np.random.default_rng(1))
    rewarded = {tuple(o) for o, r in zip(batch["next_obs_state"], batch["reward"], strict=True) if r == 1.0}
    assert rewarded == finals and batch["terminated"][batch["reward"] == 1.0].all()


def test_observation_dicts_with_cameras_and_clear_errors():
    buffer = ReplayBuffer(100, S, A, cameras={"front": (4, 4, 3)})

    def obs(v: float) -> dict:
        return {"state": np.full(S, v, np.float32), "front": np.full((4, 4, 3), int(v), np.uint8)}

    buffer.add_step(obs(1), np.zeros(A), 0.0, obs(2), False, False)
    buffer.add_step(obs(2), np.zeros(A), 1.0, obs(3), True, False)
    batch = buffer.sample(50, np.random.default_rng(0))
    pairs = {(int(s[0]), int(n[0]), int(i[0, 0, 0]), int(j[0, 0, 0])) for s, n, i, j in zip(
        batch["obs_state"], batch["next_obs_state"], batch["obs_images"]["front"], batch["next_obs_images"]["front"],
        strict=True)}
    assert pairs == {(1, 2, 1, 2), (2, 3, 2, 3)}
    with pytest.raises(ValueError, match="observation dicts"):
        buffer.add_step(np.zeros(S), np.zeros(A), 0.0, np.zeros(S), False, False)
    with pytest.raises(ValueError, match="state"):
        ReplayBuffer(10, S, A).add_step(np.zeros(S + 1), np.zeros(A), 0.0, np.zeros(S + 1), False, False)
