"""MixedSampler: RLPD's online / (demo + intervention) split, and to_torch's dtypes."""

from __future__ import annotations

import numpy as np
import torch
from replay_support import ACTION_DIM, STATE_DIM, Episode, check_pairs, chunks, records

from hilrl.learner.replay import MixedSampler, ReplayBuffer, to_torch

CAMERAS = {"front": (4, 4, 3)}


def buffer_with(tag: float, n_episodes: int, steps: int = 10, capacity: int = 2000) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM, CAMERAS)
    for chunk in chunks(records([Episode(int(tag) * 1000 + i, steps) for i in range(n_episodes)], CAMERAS, tag=tag), 10):
        buffer.add_chunk(chunk)
    return buffer


def test_half_online_half_demo_and_intervention_in_proportion_to_their_sizes():
    online, demo, intervention = buffer_with(1, 50), buffer_with(2, 30), buffer_with(3, 10)
    assert (len(online), len(demo), len(intervention)) == (500, 300, 100)
    sampler = MixedSampler(online, [demo, intervention], online_fraction=0.5, batch_size=256)
    rng = np.random.default_rng(0)
    from_demo = from_intervention = 0
    for _ in range(200):
        batch = sampler.sample(rng)
        tags = batch["obs_state"][:, 2]
        assert len(tags) == 256
        assert (tags[:128] == 1).all() and (tags == 1).sum() == 128  # online first, exactly 128
        from_demo += int((tags == 2).sum())
        from_intervention += int((tags == 3).sum())
        check_pairs(batch, CAMERAS)
    assert from_demo + from_intervention == 200 * 128
    assert abs(from_demo / (from_demo + from_intervention) - 0.75) < 0.02  # 300 : 100


def test_all_online_when_the_others_are_empty():
    online = buffer_with(1, 20)
    empty = ReplayBuffer(100, STATE_DIM, ACTION_DIM, CAMERAS)
    sampler = MixedSampler(online, [empty, ReplayBuffer(100, STATE_DIM, ACTION_DIM, CAMERAS)], 0.5, 256)
    batch = sampler.sample(np.random.default_rng(1))
    assert (batch["obs_state"][:, 2] == 1).all() and len(batch["obs_state"]) == 256
    assert MixedSampler(online, [], 0.5, 256).counts(np.random.default_rng(0)) == [256]


def test_to_torch_keeps_images_uint8_and_uses_the_agent_names():
    sampler = MixedSampler(buffer_with(1, 5), [buffer_with(2, 5)], 0.5, 16)
    batch = to_torch(sampler.sample(np.random.default_rng(2)), "cpu")
    assert batch["obs"].dtype == torch.float32 and batch["obs"].shape == (16, STATE_DIM)
    assert batch["next_obs"].shape == (16, STATE_DIM)
    assert batch["action"].dtype == torch.float32 and batch["action"].shape == (16, ACTION_DIM)
    assert batch["reward"].dtype == torch.float32 and batch["terminated"].dtype == torch.float32
    for key in ("truncated", "intervened", "gripper_switched"):
        assert batch[key].dtype == torch.bool and batch[key].shape == (16,)
    for key in ("obs_images", "next_obs_images"):
        assert batch[key]["front"].dtype == torch.uint8 and batch[key]["front"].shape == (16, 4, 4, 3)
    torch.testing.assert_close(batch["next_obs"][:, 1], batch["obs"][:, 1] + 1)


def test_expert_marks_the_demo_and_intervention_rows_and_the_intervened_online_ones():
    """The BC term (learner.sac.bc_weight) reads `expert`: every row from a demo or intervention
    buffer, and an online row only where the operator had taken over."""
    online = ReplayBuffer(2000, STATE_DIM, ACTION_DIM, CAMERAS)
    takeovers = np.arange(10) >= 7  # the last three steps of each online episode
    for chunk in chunks(records([Episode(1000 + i, 10, intervened=takeovers) for i in range(20)], CAMERAS, tag=1), 10):
        online.add_chunk(chunk)
    sampler = MixedSampler(online, [buffer_with(2, 10), buffer_with(3, 5)], 0.5, 256)
    batch = sampler.sample(np.random.default_rng(3))
    tags = batch["obs_state"][:, 2]
    from_online = tags == 1
    np.testing.assert_array_equal(batch["expert"][~from_online], True)
    np.testing.assert_array_equal(batch["expert"][from_online], batch["intervened"][from_online])
    assert 0 < batch["intervened"][from_online].sum() < from_online.sum()  # both kinds of online row drawn
    torch_batch = to_torch(batch, "cpu")
    assert torch_batch["expert"].dtype == torch.bool
    np.testing.assert_array_equal(torch_batch["expert"].numpy(), batch["expert"])
    # A plain buffer's batch has no `expert`: to_torch reads the intervened flag instead.
    plain = online.sample(64, np.random.default_rng(4))
    np.testing.assert_array_equal(to_torch(plain, "cpu")["expert"].numpy(), plain["intervened"])
