"""Replay buffers: each observation stored once, next observation by index, correct at chunk
boundaries, episode ends, truncations, intervention boundaries and wrap-around."""

from __future__ import annotations

import numpy as np
import pytest
from replay_support import ACTION_DIM, STATE_DIM, Episode, check_pairs, chunks, records

from hilrl.learner.replay import ReplayBuffer

CAMERAS = {"front": (8, 8, 3), "wrist": (6, 4, 3)}


def valid_transitions(buffer: ReplayBuffer) -> set[tuple[int, int]]:
    """(episode, step) of every sampleable transition, read from the slots."""
    slots = np.flatnonzero(buffer.valid)
    return {(int(e), int(s)) for e, s in zip(buffer.episode_id[slots], buffer.step_index[slots], strict=True)}


def reference_valid(rec: dict, capacity: int, select: np.ndarray | None = None) -> set[tuple[int, int]]:
    """The same rule, written plainly: writes = selected transitions and the records that follow
    them (same episode, next step); a transition is valid when its next observation is the next
    write and both are among the last `capacity` writes."""
    writes = []  # (episode, step, selected, continues the previous write)
    prev = None
    for i in range(len(rec["episode_id"])):
        ep, step = int(rec["episode_id"][i]), int(rec["step_index"][i])
        selected = bool(rec["has_action"][i]) and (select is None or bool(select[i]))
        is_next = prev is not None and prev[2] and prev[0] == ep and prev[1] + 1 == step
        if selected or is_next:
            writes.append((ep, step, selected, is_next))
        prev = (ep, step, selected)
    kept = writes[-capacity:]
    return {kept[j][:2] for j in range(len(kept) - 1) if kept[j][2] and kept[j + 1][3]}


def fill(buffer: ReplayBuffer, rec: dict, sizes, select_field: str | None = None) -> None:
    for chunk in chunks(rec, sizes):
        buffer.add_chunk(chunk, None if select_field is None else getattr(chunk, select_field))


def test_next_obs_across_chunk_boundaries():
    rec = records([Episode(1, 10), Episode(2, 7), Episode(3, 12, "terminated")], CAMERAS)
    buffer = ReplayBuffer(100, STATE_DIM, ACTION_DIM, CAMERAS)
    fill(buffer, rec, [3, 1, 4, 2])  # chunk boundaries fall everywhere, including mid-transition
    assert len(buffer) == 10 + 7 + 12
    assert valid_transitions(buffer) == {(e, s) for e, n in ((1, 10), (2, 7), (3, 12)) for s in range(n)}
    batch = buffer.sample(500, np.random.default_rng(0))
    check_pairs(batch, CAMERAS)


def test_chunk_of_one_record_at_a_time_equals_one_big_chunk():
    rec = records([Episode(1, 5), Episode(2, 3, "cut"), Episode(3, 4, "terminated")], CAMERAS)
    a = ReplayBuffer(50, STATE_DIM, ACTION_DIM, CAMERAS)
    b = ReplayBuffer(50, STATE_DIM, ACTION_DIM, CAMERAS)
    fill(a, rec, 1)
    fill(b, rec, 1000)
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(a.obs_state, b.obs_state)
    for name in CAMERAS:
        np.testing.assert_array_equal(a.obs_images[name], b.obs_images[name])


def test_termination_pairs_last_transition_with_final_obs():
    rec = records([Episode(4, 6, "terminated"), Episode(5, 3, "terminated")])
    buffer = ReplayBuffer(64, STATE_DIM, ACTION_DIM)
    fill(buffer, rec, 4)
    batch = buffer.sample(400, np.random.default_rng(1))
    check_pairs(batch)
    step, ep = batch["obs_state"][:, 1], batch["obs_state"][:, 0]
    last = np.where(ep == 4, 5, 2)
    np.testing.assert_array_equal(batch["terminated"], step == last)
    assert batch["terminated"].any()
    # The final observation (step 6 / step 3) is stored but never sampled as a transition's obs.
    assert not np.any((ep == 4) & (step == 6)) and not np.any((ep == 5) & (step == 3))
    assert not batch["truncated"].any()


def test_truncation_bootstraps_from_stored_final_obs():
    rec = records([Episode(7, 5, "truncated")])
    buffer = ReplayBuffer(16, STATE_DIM, ACTION_DIM)
    fill(buffer, rec, 2)
    batch = buffer.sample(200, np.random.default_rng(2))
    check_pairs(batch)
    last = batch["obs_state"][:, 1] == 4
    assert last.any()
    np.testing.assert_array_equal(batch["truncated"], last)
    assert not batch["terminated"].any()  # a time limit is never a termination
    np.testing.assert_array_equal(batch["next_obs_state"][last, 1], 5)  # the stored final obs


def test_intervention_buffer_holds_only_intervened_transitions_with_their_next_obs():
    iv1 = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1], bool)  # takeovers of 2, 1 and 3 steps (last to the end)
    iv2 = np.array([1, 1, 0, 0, 0, 1], bool)
    rec = records([Episode(1, 10, "terminated", iv1), Episode(2, 6, "truncated", iv2), Episode(3, 4)], CAMERAS)
    buffer = ReplayBuffer(64, STATE_DIM, ACTION_DIM, CAMERAS)
    online = ReplayBuffer(64, STATE_DIM, ACTION_DIM, CAMERAS)
    for chunk in chunks(rec, [3, 2, 5]):
        buffer.add_chunk(chunk, select=chunk.intervened)
        online.add_chunk(chunk)
    want = {(1, s) for s in np.flatnonzero(iv1)} | {(2, s) for s in np.flatnonzero(iv2)}
    assert valid_transitions(buffer) == want
    assert len(buffer) == len(want) == 9
    assert len(online) == 20
    batch = buffer.sample(500, np.random.default_rng(3))
    check_pairs(batch, CAMERAS)
    assert batch["intervened"].all()
    # Only the observations the intervened transitions need were written: each takeover's steps
    # plus the one observation after it (an intervention boundary is a no-action slot).
    assert buffer.slots_written == len(want) + 5  # 5 takeovers
    assert buffer.has_action.sum() == len(want)


def test_episode_change_without_final_obs_never_yields_a_valid_transition():
    rec = records([Episode(1, 5, "cut"), Episode(2, 3, "cut"), Episode(3, 4)])
    buffer = ReplayBuffer(32, STATE_DIM, ACTION_DIM)
    fill(buffer, rec, [5, 3, 1])  # the cut falls exactly on a chunk boundary, and elsewhere
    assert (1, 4) not in valid_transitions(buffer)
    assert (2, 2) not in valid_transitions(buffer)
    assert len(buffer) == 4 + 2 + 4
    check_pairs(buffer.sample(300, np.random.default_rng(4)))


def test_new_episode_that_happens_to_continue_the_step_count_is_not_a_next_obs():
    # Episode 1 is cut after step 2; episode 9's first record has step index 3 (e.g. a resumed
    # counter) but another episode id, so it must not become episode 1's next observation.
    a = records([Episode(1, 3, "cut")])
    b = records([Episode(9, 5)])
    b["step_index"] = b["step_index"] + 3
    b["obs_state"][:, 1] += 3
    buffer = ReplayBuffer(32, STATE_DIM, ACTION_DIM)
    fill(buffer, a, 2)
    fill(buffer, b, 2)
    assert valid_transitions(buffer) == {(1, 0), (1, 1)} | {(9, s) for s in range(3, 8)}


def test_lost_record_inside_an_episode_breaks_only_that_transition():
    rec = records([Episode(1, 8)])
    keep = rec["step_index"] != 4  # record of step 4 lost
    rec = {k: ({c: v[keep] for c, v in val.items()} if k == "obs_images" else val[keep]) for k, val in rec.items()}
    buffer = ReplayBuffer(32, STATE_DIM, ACTION_DIM)
    fill(buffer, rec, 3)
    assert valid_transitions(buffer) == {(1, s) for s in (0, 1, 2, 5, 6, 7)}


@pytest.mark.parametrize("select_field", [None, "intervened"])
@pytest.mark.parametrize("capacity", [2, 3, 37])
def test_wrap_around_keeps_every_sample_consistent(capacity, select_field):
    rng = np.random.default_rng(capacity)
    episodes = []
    for ep in range(60):
        steps = int(rng.integers(1, 13))
        intervened = rng.random(steps) < 0.4
        episodes.append(Episode(100 + ep, steps, str(rng.choice(["terminated", "truncated", "cut"])), intervened))
    rec = records(episodes, CAMERAS)
    sizes = [int(s) for s in rng.integers(1, 2 * capacity + 3, 50)]
    buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM, CAMERAS)
    seen = {k: v[:0] for k, v in rec.items() if k != "obs_images"}
    sample_rng = np.random.default_rng(0)
    for chunk in chunks(rec, sizes):
        select = None if select_field is None else chunk.intervened
        buffer.add_chunk(chunk, select)
        seen = {k: np.concatenate([v, getattr(chunk, k)]) for k, v in seen.items()}
        want = reference_valid(seen, capacity, None if select_field is None else seen["intervened"])
        assert valid_transitions(buffer) == want
        assert len(buffer) == len(want) <= capacity - 1
        if len(buffer):
            batch = buffer.sample(64, sample_rng)
            check_pairs(batch, CAMERAS)
            if select_field:
                assert batch["intervened"].all()
            # Flags belong to the sampled transition: terminated/truncated only on an episode's last step.
            ends = {e.episode_id: (e.steps - 1, e.end) for e in episodes}
            for e, s, term, trunc in zip(batch["obs_state"][:, 0], batch["obs_state"][:, 1], batch["terminated"], batch["truncated"], strict=True):
                last, end = ends[int(e)]
                assert term == (s == last and end == "terminated")
                assert trunc == (s == last and end == "truncated")


def test_oversized_chunk_wraps_within_one_call():
    rec = records([Episode(1, 30), Episode(2, 25, "terminated")], CAMERAS)
    buffer = ReplayBuffer(10, STATE_DIM, ACTION_DIM, CAMERAS)
    fill(buffer, rec, 1000)
    assert valid_transitions(buffer) == reference_valid(rec, 10)
    check_pairs(buffer.sample(100, np.random.default_rng(5)), CAMERAS)


def test_interleaved_actor_sessions_with_colliding_episode_ids():
    """Two actors, both counting episodes from 0, whose chunks arrive interleaved: each waiting
    transition is paired with its own session's next observation."""
    rec_a = records([Episode(0, 7), Episode(1, 5, "terminated")], CAMERAS, tag=1)
    rec_b = records([Episode(0, 9), Episode(1, 4)], CAMERAS, tag=2)
    chunks_a, chunks_b = chunks(rec_a, 3, session="actor-a"), chunks(rec_b, 4, session="actor-b")
    buffer = ReplayBuffer(200, STATE_DIM, ACTION_DIM, CAMERAS)
    for i in range(max(len(chunks_a), len(chunks_b))):
        for cs in (chunks_a, chunks_b):
            if i < len(cs):
                buffer.add_chunk(cs[i])
    assert len(buffer) == 7 + 5 + 9 + 4  # nothing lost at the interleavings
    batch = buffer.sample(1000, np.random.default_rng(6))
    check_pairs(batch, CAMERAS)
    assert set(np.unique(batch["obs_state"][:, 2])) == {1.0, 2.0}
    # Each interleaving that split a transition from its next obs re-stored one observation.
    assert buffer.slots_written > len(rec_a["obs_state"]) + len(rec_b["obs_state"])


def test_waiting_transition_overwritten_by_another_session_is_dropped_not_mispaired():
    rec_a = records([Episode(0, 6)], tag=1)
    a1, a2 = chunks(rec_a, 3, session="actor-a")[:2]
    buffer = ReplayBuffer(8, STATE_DIM, ACTION_DIM)
    buffer.add_chunk(a1)  # steps 0..2, step 2 waits for step 3
    for chunk in chunks(records([Episode(0, 9)], tag=2), 5, session="actor-b"):
        buffer.add_chunk(chunk)  # 10 writes: the ring forgets actor-a's slots
    buffer.add_chunk(a2)  # steps 3..5
    batch = buffer.sample(500, np.random.default_rng(7))
    check_pairs(batch)
    from_a = batch["obs_state"][:, 2] == 1
    assert set(batch["obs_state"][from_a, 1].astype(int)) == {3, 4}  # step 2's next obs came too late


def test_no_action_records_are_never_sampled_and_empty_buffer_refuses_to_sample():
    buffer = ReplayBuffer(8, STATE_DIM, ACTION_DIM)
    with pytest.raises(ValueError):
        buffer.sample(1, np.random.default_rng(0))
    rec = records([Episode(1, 0)])  # a reset observation and nothing else
    fill(buffer, rec, 1)
    assert len(buffer) == 0 and buffer.slots_written == 0


def test_chunk_shape_mismatch_is_refused():
    buffer = ReplayBuffer(8, STATE_DIM, ACTION_DIM, CAMERAS)
    rec = records([Episode(1, 3)])  # no images
    with pytest.raises(ValueError, match="cameras"):
        fill(buffer, rec, 4)
    buffer = ReplayBuffer(8, STATE_DIM + 1, ACTION_DIM)
    with pytest.raises(ValueError, match="obs_state"):
        fill(buffer, rec, 4)


def test_bytes_per_transition_is_one_observation():
    cameras = {"front": (64, 64, 3), "wrist": (64, 64, 3)}
    state_dim = STATE_DIM
    obs_bytes = 2 * 64 * 64 * 3 + 4 * state_dim
    buffer = ReplayBuffer(1000, state_dim, ACTION_DIM, cameras)
    rec = records([Episode(i, 99) for i in range(12)], cameras)  # 100 records per episode
    fill(buffer, rec, 10)
    assert len(buffer) == len(reference_valid(rec, 1000)) >= 980  # full ring: 99 transitions per 100 slots
    per_transition = buffer.nbytes / len(buffer)
    assert per_transition <= 1.05 * obs_bytes, (per_transition, obs_bytes)
    # Storing next_obs as well would need twice the images.
    assert per_transition < 0.55 * (2 * obs_bytes)
