"""ChunkRecorder: env steps -> records with the next observation by index (see
transport/learner_messages.py): one record per observation, a final no-action record per episode."""

from __future__ import annotations

import numpy as np

from hilrl.actor.recorder import ChunkRecorder


def obs(value: float) -> dict[str, np.ndarray]:
    return {"state": np.full(2, value, np.float32), "front": np.full((4, 4, 3), int(value) % 256, np.uint8)}


def run_episode(rec: ChunkRecorder, episode_id: int, n_steps: int, end: str) -> list:
    chunks = []
    rec.start_episode(episode_id, obs(0))
    for t in range(1, n_steps + 1):
        last = t == n_steps
        chunks += rec.add_step(
            np.full(3, t, np.float32), reward=float(last and end == "terminated"),
            terminated=last and end == "terminated", truncated=last and end == "truncated",
            intervened=t % 2 == 0, gripper_switched=t == 1, policy_version=7, next_obs=obs(t),
        )
    return chunks


def test_records_hold_each_observation_once_with_a_final_record():
    rec = ChunkRecorder(action_dim=3, chunk_steps=4, cameras=("front",))
    chunks = run_episode(rec, 5, n_steps=10, end="truncated")
    assert [len(c) for c in chunks] == [4, 4, 3]  # 10 transitions + 1 final observation
    state = np.concatenate([c.obs_state[:, 0] for c in chunks])
    np.testing.assert_array_equal(state, np.arange(11))  # every observation exactly once, in order
    has_action = np.concatenate([c.has_action for c in chunks])
    assert has_action[:10].all() and not has_action[10]
    # the action in record t left observation t, so its next observation is record t + 1
    actions = np.concatenate([c.action[:, 0] for c in chunks])
    np.testing.assert_array_equal(actions[:10], np.arange(1, 11))
    truncated = np.concatenate([c.truncated for c in chunks])
    terminated = np.concatenate([c.terminated for c in chunks])
    assert truncated[9] and not terminated.any()
    assert all((c.episode_id == 5).all() for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c.step_index for c in chunks]), np.arange(11))
    np.testing.assert_array_equal(np.concatenate([c.obs_images["front"][:, 0, 0, 0] for c in chunks]), np.arange(11))


def test_flags_follow_their_steps():
    rec = ChunkRecorder(action_dim=3, chunk_steps=100)
    (chunk,) = run_episode(rec, 0, n_steps=4, end="terminated")
    np.testing.assert_array_equal(chunk.intervened, [False, True, False, True, False])
    np.testing.assert_array_equal(chunk.gripper_switched, [True, False, False, False, False])
    np.testing.assert_array_equal(chunk.terminated, [False, False, False, True, False])
    np.testing.assert_array_equal(chunk.reward, [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(chunk.policy_version, [7, 7, 7, 7, -1])


def test_episode_cut_short_keeps_the_last_next_observation():
    rec = ChunkRecorder(action_dim=3, chunk_steps=2)
    rec.start_episode(0, obs(0))
    chunks = rec.add_step(np.zeros(3), 0.0, False, False, False, False, 0, obs(1))
    chunks += rec.add_step(np.zeros(3), 0.0, False, False, False, False, 0, obs(2))  # fills a chunk
    assert [len(c) for c in chunks] == [2]
    tail = rec.end_episode()  # the caller stops mid-episode right after a chunk was cut
    assert len(tail) == 1 and len(tail[0]) == 1 and not tail[0].has_action[0]
    assert tail[0].obs_state[0, 0] == 2


def test_episode_without_steps_leaves_nothing():
    rec = ChunkRecorder(action_dim=3, chunk_steps=2)
    rec.start_episode(0, obs(0))
    assert rec.end_episode() == []
