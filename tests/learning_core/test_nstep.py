"""n-step critic targets (`learner.sac.n_step`): the buffer's walk sums the right rewards of one
episode and stops where it must (termination, the final observation, the end of a buffer's
selection, another actor's records, overwritten slots); the agent bootstraps with discount ** m;
the trainer hands its n and discount to every buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from replay_support import ACTION_DIM, STATE_DIM, Episode, chunks, records

from hilrl.learner.replay import MixedSampler, ReplayBuffer, to_torch
from hilrl.learner.rlpd import RLPDTrainer
from hilrl.policies.sac import SACAgent
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig

DISCOUNT = 0.9


def stored(buffer: ReplayBuffer) -> set[tuple[float, int, int]]:
    """(tag, episode, step) of every sampleable transition."""
    slots = np.flatnonzero(buffer.valid)
    return {(float(buffer.obs_state[i, 2]), int(buffer.obs_state[i, 0]), int(buffer.obs_state[i, 1])) for i in slots}


def expected_run(sample_key: tuple[float, int, int], n_step: int, kept: set, ends: dict) -> int:
    """m for a row starting at (tag, episode, step): on while the next step is a stored
    transition too and the current one did not terminate."""
    tag, episode, step = sample_key
    last_step, end = ends[(tag, episode)]
    m = 1
    while m < n_step:
        current = step + m - 1
        if current == last_step and end == "terminated":
            break
        if (tag, episode, current + 1) not in kept:
            break
        m += 1
    return m


def check_rows(batch: dict, buffer_view: set, n_step: int, ends: dict) -> np.ndarray:
    """Every row against the reference walk; returns its m (n,)."""
    tag, ep, step = batch["obs_state"][:, 2], batch["obs_state"][:, 0].astype(int), batch["obs_state"][:, 1].astype(int)
    steps = batch.get("bootstrap_steps", np.ones(len(step), np.int32))
    for i in range(len(step)):
        key = (float(tag[i]), int(ep[i]), int(step[i]))
        m = expected_run(key, n_step, buffer_view, ends)
        assert steps[i] == m, (key, steps[i], m)
        want_reward = sum(DISCOUNT**k * (step[i] + k) / 100.0 for k in range(m))  # replay_support: r = step / 100
        np.testing.assert_allclose(batch["reward"][i], want_reward, rtol=1e-5, atol=1e-6)
        assert batch["next_obs_state"][i, 0] == ep[i] and batch["next_obs_state"][i, 2] == tag[i]
        assert batch["next_obs_state"][i, 1] == step[i] + m  # the observation after the m-th step
        last_step, end = ends[(key[0], key[1])]
        assert batch["terminated"][i] == (step[i] + m - 1 == last_step and end == "terminated")
        assert batch["truncated"][i] == (step[i] + m - 1 == last_step and end == "truncated")
        np.testing.assert_allclose(batch["action"][i, 0], step[i] / 1000.0, atol=1e-6)  # the first step's
    return np.asarray(steps)


@pytest.mark.parametrize("select_field", [None, "intervened"])
@pytest.mark.parametrize("capacity", [3, 37, 400])
@pytest.mark.parametrize("n_step", [3, 6])
def test_the_walk_matches_a_reference_through_wrap_around_and_selections(capacity, select_field, n_step):
    rng = np.random.default_rng(capacity + n_step)
    episodes = []
    for ep in range(60):
        steps = int(rng.integers(1, 13))
        episodes.append(Episode(100 + ep, steps, str(rng.choice(["terminated", "truncated", "cut"])),
                                rng.random(steps) < 0.5))
    ends = {(0.0, e.episode_id): (e.steps - 1, e.end) for e in episodes}
    rec = records(episodes)
    buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM)
    sample_rng = np.random.default_rng(1)
    longest = 1
    for chunk in chunks(rec, [int(s) for s in rng.integers(1, 2 * capacity + 3, 80)]):
        buffer.add_chunk(chunk, None if select_field is None else chunk.intervened)
        if len(buffer):
            batch = buffer.sample(64, sample_rng, n_step=n_step, discount=DISCOUNT)
            longest = max(longest, int(check_rows(batch, stored(buffer), n_step, ends).max()))
    if capacity > 3:  # the walk did run on somewhere, not only stop early
        assert longest == n_step if select_field is None else longest >= 3  # runs of takeovers are shorter


def test_two_actors_interleaved_walk_only_their_own_episodes():
    """Chunks of two actors whose episode ids collide arrive interleaved: each row's steps are
    its own actor's, and the observation re-stored at each interleaving ends nobody's walk early."""
    rec_a = records([Episode(0, 11), Episode(1, 5, "terminated")], tag=1)
    rec_b = records([Episode(0, 9), Episode(1, 4)], tag=2)
    buffer = ReplayBuffer(500, STATE_DIM, ACTION_DIM)
    chunks_a, chunks_b = chunks(rec_a, 3, session="actor-a"), chunks(rec_b, 4, session="actor-b")
    for i in range(max(len(chunks_a), len(chunks_b))):
        for cs in (chunks_a, chunks_b):
            if i < len(cs):
                buffer.add_chunk(cs[i])
    ends = {(1.0, 0): (10, "truncated"), (1.0, 1): (4, "terminated"), (2.0, 0): (8, "truncated"), (2.0, 1): (3, "truncated")}
    batch = buffer.sample(2000, np.random.default_rng(2), n_step=4, discount=DISCOUNT)
    steps = check_rows(batch, stored(buffer), 4, ends)
    # Every transition but each episode's last three walks all four steps: no interleaving cut them.
    far_from_end = np.array([batch["obs_state"][i, 1] + 3 <= ends[(float(batch["obs_state"][i, 2]),
                                                                   int(batch["obs_state"][i, 0]))][0]
                             for i in range(len(steps))])
    assert (steps[far_from_end] == 4).all() and far_from_end.any()


@pytest.mark.parametrize("capacity", [5, 17, 61])
def test_interleaved_actors_through_wrap_around(capacity):
    """Two actors' chunks of random sizes, interleaved at random, into a ring that wraps many times:
    after every chunk each row matches the reference walk over what the ring still holds (a
    re-stored transition is followed only while it is intact)."""
    rng = np.random.default_rng(capacity)
    ends, streams = {}, []
    for tag, session in ((1.0, "actor-a"), (2.0, "actor-b")):
        episodes = [Episode(ep, int(rng.integers(1, 12)), str(rng.choice(["terminated", "truncated", "cut"])))
                    for ep in range(40)]
        ends.update({(tag, e.episode_id): (e.steps - 1, e.end) for e in episodes})
        streams.append(chunks(records(episodes, tag=tag), [int(k) for k in rng.integers(1, 9, 100)], session=session))
    buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM)
    sample_rng = np.random.default_rng(3)
    while any(streams):
        stream = streams[int(rng.integers(len(streams)))] if all(streams) else next(s for s in streams if s)
        buffer.add_chunk(stream.pop(0))
        if len(buffer):
            check_rows(buffer.sample(32, sample_rng, n_step=5, discount=DISCOUNT), stored(buffer), 5, ends)


def test_one_step_sampling_is_unchanged():
    """n_step 1 (the default) draws exactly the one-step rows, with no bootstrap_steps column."""
    rec = records([Episode(0, 8, "terminated"), Episode(1, 6)])
    a, b = ReplayBuffer(64, STATE_DIM, ACTION_DIM), ReplayBuffer(64, STATE_DIM, ACTION_DIM)
    for chunk in chunks(rec, 5):
        a.add_chunk(chunk)
        b.add_chunk(chunk)
    one = a.sample(100, np.random.default_rng(3))
    also_one = b.sample(100, np.random.default_rng(3), n_step=1, discount=DISCOUNT)
    assert "bootstrap_steps" not in one and one.keys() == also_one.keys()
    for key, value in one.items():
        if not isinstance(value, dict):
            np.testing.assert_array_equal(value, also_one[key], err_msg=key)
    with pytest.raises(ValueError, match="n_step"):
        a.sample(4, np.random.default_rng(0), n_step=0)


def test_the_agent_bootstraps_with_discount_to_the_m():
    """(y - r) of an n-step row is discount ** (m - 1) times that of the same row read as one
    step: the bootstrapped value is the same, discounted once per summed step."""
    config = SACConfig(hidden_dims=[32, 32], discount=DISCOUNT, state_encoder_dim=None)
    agent = SACAgent(STATE_DIM, ACTION_DIM, True, config, seed=0)
    g = torch.Generator().manual_seed(4)
    b = 32
    batch = {"obs": torch.randn(b, STATE_DIM, generator=g), "next_obs": torch.randn(b, STATE_DIM, generator=g),
             "action": torch.rand(b, ACTION_DIM, generator=g) * 2 - 1, "reward": torch.randn(b, generator=g),
             "terminated": (torch.arange(b) % 5 == 0).float(), "gripper_switched": torch.zeros(b, dtype=torch.bool)}
    steps = (torch.arange(b) % 4 + 1).float()
    targets = {}
    for name, compute in (("critic", agent.compute_critic_target), ("grasp", agent.compute_grasp_target)):
        state = agent.update_generator.get_state()
        one = compute(batch)
        agent.update_generator.set_state(state)
        many = compute({**batch, "bootstrap_steps": steps})
        targets[name] = (one, many)
        bootstrap_one, bootstrap_many = one - batch["reward"], many - batch["reward"]
        torch.testing.assert_close(bootstrap_many, bootstrap_one * DISCOUNT ** (steps - 1), rtol=1e-5, atol=1e-6)
        terminated = batch["terminated"].bool()
        torch.testing.assert_close(many[terminated], batch["reward"][terminated])  # no bootstrap after an end
        assert (bootstrap_many[~terminated & (steps > 1)].abs() < bootstrap_one[~terminated & (steps > 1)].abs()).all()


def test_the_trainer_draws_n_step_rows_from_every_buffer():
    """learner.sac.n_step reaches the sampler: online, demo and intervention rows all come as
    n-step rows with the configured discount, and the update runs on them."""
    config = LearnerConfig(batch_size=64, training_starts=10, replay_capacity=500, seed=0,
                           sac=SACConfig(hidden_dims=[16, 16], n_step=3, discount=DISCOUNT))
    trainer = RLPDTrainer(config, STATE_DIM, ACTION_DIM, has_gripper=True, device="cpu")
    assert isinstance(trainer.sampler, MixedSampler) and (trainer.sampler.n_step, trainer.sampler.discount) == (3, DISCOUNT)
    rec = records([Episode(0, 12, intervened=np.arange(12) < 6), Episode(1, 9, "terminated")])
    for chunk in chunks(rec, 5):
        trainer.add_chunk(chunk)
    for chunk in chunks(records([Episode(7, 10)], tag=3), 4, session="demo"):
        trainer.add_demo_chunk(chunk)
    batch = trainer.sampler.sample(np.random.default_rng(5))
    ends = {(0.0, 0): (11, "truncated"), (0.0, 1): (8, "terminated"), (3.0, 7): (9, "truncated")}
    # Rows come online first, then demo and intervention ones; the intervention buffer holds
    # steps 0-5 of episode 0 only: its rows stop at step 5.
    from_intervention = (np.arange(64) >= 32) & (batch["obs_state"][:, 2] == 0)
    assert from_intervention.any() and (batch["obs_state"][from_intervention, 1] + batch["bootstrap_steps"][from_intervention] <= 6).all()
    rest = ~from_intervention
    check_rows({k: (v[rest] if not isinstance(v, dict) else v) for k, v in batch.items()},
               stored(trainer.online) | stored(trainer.demo), 3, ends)
    assert to_torch(batch, "cpu")["bootstrap_steps"].dtype == torch.float32
    metrics = trainer.update()
    assert np.isfinite(list(metrics.values())).all()


def test_n_step_is_validated():
    with pytest.raises(ValueError, match="n_step must be an integer in \\[1, 50\\]"):
        SACConfig(n_step=0)
    with pytest.raises(ValueError, match="n_step"):
        MixedSampler(ReplayBuffer(4, 2, 1), [], 0.5, 8, n_step=0)
