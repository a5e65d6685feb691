"""SACAgent: losses, ensemble, targets, acting and serialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hilrl.policies.networks import EnsembleCritic, TanhGaussianActor
from hilrl.policies.sac import Policy, SACAgent, gripper_to_index, index_to_gripper
from hilrl.transport.codec import decode, encode
from hilrl.transport.learner_messages import LEARNER_MESSAGES, Weights
from hilrl.transport.sections.sac import SACConfig

S, A = 6, 4  # state width; env action: xyz + gripper


def make_batch(b: int = 64, seed: int = 0, state_dim: int = S, action_dim: int = A) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    action = torch.rand(b, action_dim, generator=g) * 2 - 1
    return {
        "obs": torch.randn(b, state_dim, generator=g),
        "action": action,
        "reward": torch.randn(b, generator=g),
        "terminated": (torch.rand(b, generator=g) < 0.1).float(),
        "next_obs": torch.randn(b, state_dim, generator=g),
        "gripper_switched": torch.rand(b, generator=g) < 0.2,
    }


# The networks read the normalised state itself unless a test asks for a state encoder: these
# tests feed states straight into the actor and critics.
RAW_STATE = {"state_encoder_dim": None}


def small_config(**kwargs) -> SACConfig:
    return SACConfig(**{"hidden_dims": [64, 64], **RAW_STATE, **kwargs})


def mean_td(agent: SACAgent, batch: dict) -> float:
    with torch.no_grad():
        q = agent.critic(agent.batch_features(batch)[0], batch["action"][:, :-1])
        return float((q - agent.compute_critic_target(batch)).abs().mean())


def test_updates_on_a_fixed_batch_reduce_td_error():
    agent = SACAgent(S, A, True, SACConfig(), seed=0)
    batch = make_batch()
    before = mean_td(agent, batch)
    for _ in range(200):
        metrics = agent.update(batch)
    after = mean_td(agent, batch)
    assert after < 0.3 * before, (before, after)
    assert set(metrics) == {"critic_loss", "actor_loss", "temperature", "entropy", "q_mean", "grasp_loss", "td_error_abs"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert agent.updates == 200


def test_critic_ensemble_is_one_batched_network_and_matches_per_member_mlps():
    config = SACConfig(ensemble_size=10, ensemble_subsample=2, activation="relu", **RAW_STATE)
    agent = SACAgent(S, A, True, config)
    assert isinstance(agent.critic, EnsembleCritic)
    params = list(agent.critic.parameters())
    assert len(params) == 4 * 2 + 2  # two hidden layers (linear + norm) and a head, not 10 copies
    assert all(p.shape[0] == 10 for p in params)
    obs, action = torch.randn(5, S), torch.rand(5, A - 1) * 2 - 1
    q = agent.critic(obs, action)
    assert q.shape == (10, 5)
    # Member e of the batched network is exactly the e-th Linear -> LayerNorm -> ReLU MLP.
    c = agent.critic
    for e in (0, 7):
        x = torch.cat([obs, action], -1)
        for lin, norm in zip(c.linears, c.norms, strict=True):
            x = x @ lin.weight[e] + lin.bias[e]
            x = F.relu(F.layer_norm(x, x.shape[-1:], norm.weight[e, 0], norm.bias[e, 0]))
        torch.testing.assert_close(x @ c.head.weight[e] + c.head.bias[e], q[e].unsqueeze(-1))
    torch.testing.assert_close(agent.critic(obs, action, torch.tensor([7, 0])), q[[7, 0]])


def test_subsampling_draws_the_configured_number_of_distinct_critics():
    agent = SACAgent(S, A, True, SACConfig(ensemble_size=10, ensemble_subsample=2))
    seen = set()
    for _ in range(200):
        members = agent.sample_members()
        assert members.shape == (2,) and members[0] != members[1]
        seen |= set(members.tolist())
    assert seen == set(range(10))
    shapes = []
    agent.critic_target.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape)))
    agent.update(make_batch(b=8))
    assert shapes == [(2, 8)] * 2  # the target min of each critic step uses 2 of the 10 members
    assert SACAgent(S, A, True, SACConfig(ensemble_size=2)).sample_members() is None


def test_target_entropy_is_minus_half_the_continuous_dims():
    continuous = small_config(target_entropy_dims="continuous")
    assert SACAgent(S, 4, True, continuous).target_entropy == -1.5  # xyz; gripper excluded
    assert SACAgent(S, 7, True, continuous).target_entropy == -3.0  # xyz + rotation
    assert SACAgent(S, 3, False, continuous).target_entropy == -1.5
    assert SACAgent(S, 4, True, small_config(target_entropy=-5.0)).target_entropy == -5.0


def test_only_termination_masks_the_bootstrap():
    agent = SACAgent(S, A, True, small_config(discount=0.9))
    batch = make_batch(b=4)
    batch["reward"] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    batch["terminated"] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    batch["truncated"] = torch.tensor([False, True, False, True])
    agent.next_value = lambda next_obs, next_base_action=None: torch.full((len(next_obs),), 5.0)
    target = agent.compute_critic_target(batch)
    torch.testing.assert_close(target, torch.tensor([5.5, 5.5, 1.0, 1.0]))
    # Grasp critic target: same rule, minus the switch penalty.
    batch["gripper_switched"] = torch.tensor([True, False, True, False])
    grasp = agent.compute_grasp_target(batch)
    torch.testing.assert_close(grasp[2:], torch.tensor([1.0 - agent.config.grasp_switch_penalty, 1.0]))


def test_truncated_flag_does_not_change_the_real_target():
    agent = SACAgent(S, A, True, small_config(ensemble_size=4, ensemble_subsample=2))
    batch = make_batch(b=16)
    batch["terminated"] = torch.zeros(16)
    state = agent.update_generator.get_state()
    plain = agent.compute_critic_target(batch)
    agent.update_generator.set_state(state)
    truncated = agent.compute_critic_target({**batch, "truncated": torch.ones(16, dtype=torch.bool)})
    torch.testing.assert_close(plain, truncated, rtol=0, atol=0)
    assert not torch.allclose(plain, batch["reward"])  # bootstrapped


def test_grasp_target_is_double_dqn():
    agent = SACAgent(S, A, True, small_config())
    with torch.no_grad():  # make online and target nets disagree
        for p in agent.grasp_critic_target.parameters():
            p.add_(torch.randn_like(p))
    batch = make_batch(b=32)
    with torch.no_grad():
        best = agent.grasp_critic(batch["next_obs"]).argmax(-1)
        q_next = agent.grasp_critic_target(batch["next_obs"]).gather(-1, best[:, None]).squeeze(-1)
    reward = batch["reward"] - agent.config.grasp_switch_penalty * batch["gripper_switched"].float()
    want = reward + agent.config.discount * (1 - batch["terminated"]) * q_next
    torch.testing.assert_close(agent.compute_grasp_target(batch), want)


def test_obs_normalization_is_applied_and_floored():
    agent = SACAgent(S, A, True, small_config(), seed=0)
    obs = np.random.default_rng(0).normal(size=(8, S)).astype(np.float32)
    before = agent.act(obs, True)
    mean, std = np.full(S, 3.0), np.full(S, 1e-6)
    agent.set_obs_normalization(mean, std)
    assert torch.equal(agent.obs_norm.std, torch.full((S,), 1e-2))  # constant features are not blown up
    # acting on obs normalised by hand with identity statistics gives the same actions
    reference = SACAgent(S, A, True, small_config(), seed=0)
    np.testing.assert_allclose(agent.act(obs, True), reference.act(((obs - 3.0) / 1e-2).astype(np.float32), True), atol=1e-6)
    assert not np.allclose(agent.act(obs, True), before)
    with pytest.raises(ValueError, match="shape"):
        agent.set_obs_normalization(np.zeros(S + 1), np.ones(S + 1))


def test_gripper_mapping_follows_the_env_thresholds():
    g = torch.tensor([-1.0, -0.5, -0.49, 0.0, 0.49, 0.5, 1.0])
    assert gripper_to_index(g).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert index_to_gripper(torch.tensor([0, 1, 2])).tolist() == [-1.0, 0.0, 1.0]


def test_tanh_gaussian_log_prob_has_the_change_of_variables_correction():
    torch.manual_seed(0)
    actor = TanhGaussianActor(S, 3, [32])
    obs = torch.randn(50, S)
    g = torch.Generator().manual_seed(3)
    action, log_prob = actor.sample(obs, g)
    mean, log_std = actor(obs)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    u = mean + log_std.exp() * noise
    base = torch.distributions.Normal(mean, log_std.exp())
    # log(1 - tanh(u)^2) in its numerically stable form (the naive one loses precision for |u| > 3)
    log_det = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
    want = (base.log_prob(u) - log_det).sum(-1)
    torch.testing.assert_close(action, torch.tanh(u))
    torch.testing.assert_close(log_prob, want, rtol=1e-4, atol=1e-4)
    assert ((log_std >= -5) & (log_std <= 2)).all()
    torch.testing.assert_close(actor.deterministic(obs), torch.tanh(mean))


def test_act_shapes_ranges_and_deterministic_repeatability():
    agent = SACAgent(S, A, True, small_config(), seed=1)
    obs = np.random.default_rng(0).normal(size=(20, S)).astype(np.float32)
    a1, a2 = agent.act(obs, deterministic=True), agent.act(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    assert a1.shape == (20, A) and a1.dtype == np.float32
    single = agent.act(obs[0], deterministic=True)
    assert single.shape == (A,)
    np.testing.assert_allclose(single, a1[0], rtol=0, atol=1e-6)
    noisy = agent.act(obs, deterministic=False)
    assert not np.array_equal(noisy[:, :-1], a1[:, :-1])
    assert (np.abs(noisy) <= 1).all()
    assert set(np.unique(np.concatenate([a1[:, -1], noisy[:, -1]]))) <= {-1.0, 0.0, 1.0}
    # No gripper: every dim continuous.
    plain = SACAgent(S, 3, False, small_config())
    assert plain.act(obs, deterministic=True).shape == (20, 3) and plain.grasp_critic is None


def test_state_arrays_round_trip_gives_bit_identical_next_updates():
    config = SACConfig(hidden_dims=[32, 32], ensemble_size=10, ensemble_subsample=2)
    a = SACAgent(S, A, True, config, seed=0)
    for i in range(3):
        a.update(make_batch(seed=i))
    arrays = a.state_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    assert {"log_alpha", "rng.update", "updates", "optim.critic.head.weight.exp_avg_sq",
            "optim.temperature.log_alpha.step", "grasp_critic_target.net.net.0.weight"} <= set(arrays)
    b = SACAgent(S, A, True, config, seed=99)  # different init and random streams, overwritten
    b.load_state_arrays(arrays)
    for i in range(3, 6):
        batch = make_batch(seed=i)
        assert a.update(batch) == b.update(batch)
    after_a, after_b = a.state_arrays(), b.state_arrays()
    assert after_a.keys() == after_b.keys()
    for name in after_a:
        np.testing.assert_array_equal(after_a[name], after_b[name], err_msg=name)
    np.testing.assert_array_equal(a.act(np.ones(S, np.float32), False), b.act(np.ones(S, np.float32), False))
    # The array codec promotes 0-d arrays (log_alpha, Adam steps, updates) to shape (1,).
    c = SACAgent(S, A, True, config, seed=7)
    c.load_state_arrays({k: v.reshape(1) if v.ndim == 0 else v for k, v in a.state_arrays().items()})
    batch = make_batch(seed=10)
    assert a.update(batch) == c.update(batch)


def test_load_state_arrays_refuses_bad_input_and_accepts_a_fresh_agent():
    a = SACAgent(S, A, True, small_config())
    fresh = a.state_arrays()  # no optimizer state yet
    SACAgent(S, A, True, small_config(), seed=5).load_state_arrays(fresh)
    with pytest.raises(ValueError, match="unknown"):
        a.load_state_arrays({**fresh, "critic.extra": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="actor.mean.weight"):
        a.load_state_arrays({**fresh, "actor.mean.weight": np.zeros((2, 2), np.float32)})
    missing = dict(fresh)
    del missing["log_alpha"]
    with pytest.raises(ValueError, match="log_alpha"):
        a.load_state_arrays(missing)


def test_policy_from_actor_tensors_acts_like_the_agent():
    agent = SACAgent(S, A, True, small_config(), seed=2)
    stats = np.random.default_rng(5)
    agent.set_obs_normalization(stats.normal(size=S), stats.uniform(0.05, 2.0, size=S))
    for i in range(3):
        agent.update(make_batch(seed=i))
    tensors = agent.actor_tensors()
    assert all(v.dtype == np.float32 for v in tensors.values())
    # no critics shipped; the input normalisation travels with the actor
    assert {k.split(".")[0] for k in tensors} == {"obs_norm", "actor", "grasp_critic"}
    # Arrays off the wire are read-only views.
    for v in tensors.values():
        v.setflags(write=False)
    policy = Policy(S, A, True, small_config(), device="cpu")
    obs = np.random.default_rng(1).normal(size=(32, S)).astype(np.float32)
    assert not np.array_equal(policy.act(obs, True), agent.act(obs, True))
    policy.load_tensors(tensors)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
    np.testing.assert_array_equal(policy.act(obs[3], True), agent.act(obs[3], True))
    explore = policy.act(obs, False)
    assert explore.shape == (32, A) and (np.abs(explore) <= 1).all()
    with pytest.raises(ValueError, match="missing"):
        policy.load_tensors({k: v for k, v in tensors.items() if not k.startswith("grasp")})
    with pytest.raises(ValueError, match="obs_norm"):
        policy.load_tensors({k: v for k, v in tensors.items() if not k.startswith("obs_norm")})
    no_gripper = SACAgent(S, 3, False, small_config())
    p2 = Policy(S, 3, False, small_config())
    p2.load_tensors(no_gripper.actor_tensors())
    np.testing.assert_array_equal(p2.act(obs, True), no_gripper.act(obs, True))


def test_actor_tensors_cross_the_wire_as_a_weights_message():
    """Default codec limits (64 frames, 16 MiB each) hold the default 256-256 policy."""
    agent = SACAgent(22, 7, True, SACConfig(), seed=3)
    frames = encode(Weights(version=5, tensors=agent.actor_tensors()), LEARNER_MESSAGES)
    _, weights = decode([bytes(f) for f in frames], LEARNER_MESSAGES)
    policy = Policy(22, 7, True, SACConfig())
    policy.load_tensors(weights.tensors)
    obs = np.random.default_rng(0).normal(size=(4, 22)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))


def test_same_seed_same_agent():
    a, b = SACAgent(S, A, True, small_config(), seed=4), SACAgent(S, A, True, small_config(), seed=4)
    batch = make_batch()
    assert a.update(batch) == b.update(batch)


def test_update_takes_one_fresh_batch_per_critic_step():
    agent = SACAgent(S, A, True, small_config(critic_updates_per_actor_update=3))
    agent.update([make_batch(seed=i) for i in range(3)])
    with pytest.raises(ValueError, match="expected critic_updates_per_actor_update"):
        agent.update([make_batch(seed=0)] * 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_agent_on_cuda_updates_resumes_and_feeds_a_cpu_policy():
    config = SACConfig(hidden_dims=[32, 32], ensemble_size=10, ensemble_subsample=2)
    a = SACAgent(S, A, True, config, device="cuda", seed=0)
    batch = {k: v.cuda() for k, v in make_batch().items()}
    a.update(batch)
    b = SACAgent(S, A, True, config, device="cuda", seed=1)
    b.load_state_arrays(a.state_arrays())
    assert a.update(batch) == b.update(batch)
    policy = Policy(S, A, True, config, device="cpu")
    policy.load_tensors(a.actor_tensors())
    obs = np.random.default_rng(0).normal(size=(8, S)).astype(np.float32)
    np.testing.assert_allclose(policy.act(obs, True), a.act(obs, True), atol=1e-5)


def test_an_unfitted_normalisation_warns_once_and_a_fitted_one_never():
    from hilrl.policies.sac import UnfittedNormalizationWarning

    agent = SACAgent(S, A, True, small_config(), seed=0)
    with pytest.warns(UnfittedNormalizationWarning, match="set_obs_normalization"):
        agent.update(make_batch())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfittedNormalizationWarning)
        agent.update(make_batch(seed=1))  # once is enough
        fitted = SACAgent(S, A, True, small_config(), seed=0)
        fitted.set_obs_normalization(np.full(S, 0.5), np.full(S, 2.0))
        fitted.update(make_batch())


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_gripper_exploration_is_the_configured_rate(rate):
    config = small_config(grasp_exploration=rate)
    agent = SACAgent(S, A, True, config, seed=0)
    policy = Policy(S, A, True, config, seed=0)
    policy.load_tensors(agent.actor_tensors())
    obs = np.zeros((2000, S), np.float32)  # one state: the grasp critic's argmax is one value
    greedy = policy.act(obs[:1], deterministic=True)[0, -1]
    for actor in (agent, policy):
        gripper = actor.act(obs, deterministic=False)[:, -1]
        if rate == 0.0:
            assert np.all(gripper == greedy)
        else:  # uniform over open / stay / close
            values, counts = np.unique(gripper, return_counts=True)
            assert len(values) == 3 and counts.min() > 500, (values, counts)
    with pytest.raises(ValueError, match="grasp_exploration"):
        SACConfig(grasp_exploration=1.5)


# ---------------------------------------------------------------- the ablation switches


def test_actor_q_switch_maximises_the_mean_or_the_min_of_the_critics():
    """One actor step's loss is alpha log pi - Q with Q the ensemble's mean or min: replayed by
    hand from the same generator state, the loss matches only the configured reduction."""
    batch = make_batch()
    for reduction in ("mean", "min"):
        agent = SACAgent(S, A, True, small_config(actor_q=reduction, ensemble_size=4), seed=0)
        features = agent.obs_norm(batch["obs"])
        state = agent.update_generator.get_state()
        with torch.no_grad():
            action, log_prob = agent.actor.sample(features, agent.update_generator)
            qs = agent.critic(features, action)
        expected = {name: float((agent.alpha.detach() * log_prob - q).mean())
                    for name, q in (("mean", qs.mean(0)), ("min", qs.min(0).values))}
        agent.update_generator.set_state(state)
        got = float(agent._actor_temperature_step(features.detach())["actor_loss"])
        assert got == pytest.approx(expected[reduction], rel=1e-5)
        other = "min" if reduction == "mean" else "mean"
        assert got != pytest.approx(expected[other], rel=1e-3)


def test_target_entropy_dims_all_counts_the_gripper():
    assert SACAgent(S, 4, True, small_config(target_entropy_dims="all")).target_entropy == -2.0  # (3 + 1) / 2
    assert SACAgent(S, 3, False, small_config(target_entropy_dims="all")).target_entropy == -1.5  # no gripper


def test_max_grad_norm_bounds_every_networks_step():
    """The gradient each optimiser (critics, actor, grasp critic) steps with has a global L2 norm
    of at most `max_grad_norm`; without it the same update's gradients are far larger."""
    batch = make_batch()
    for clip in (None, 1e-3):
        agent = SACAgent(S, A, True, small_config(max_grad_norm=clip), seed=0)
        norms = {}
        original = torch.optim.Adam.step

        def record(opt, *args, _norms=norms, _step=original, **kwargs):
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            _norms.setdefault(id(opt), []).append(float(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads]))))
            return _step(opt, *args, **kwargs)

        torch.optim.Adam.step = record
        try:
            agent.update(make_batch(seed=3))
            agent.update(batch)
        finally:
            torch.optim.Adam.step = original
        clipped = [norms[id(o)] for o in (agent.critic_optimizer, agent.actor_optimizer, agent.grasp_optimizer)]
        if clip is None:
            assert max(max(n) for n in clipped) > 1e-2  # unclipped gradients are far larger
        else:
            assert all(n <= clip * 1.0001 for ns in clipped for n in ns), clipped
    with pytest.raises(ValueError, match="max_grad_norm"):
        SACConfig(max_grad_norm=0.0)


def test_orthogonal_init_gives_orthogonal_weights_and_zero_biases():
    agent = SACAgent(S, A, True, small_config(init="orthogonal", ensemble_size=3), seed=0)
    first = agent.actor.trunk.net[0]
    w = first.weight.detach()  # (64, S): orthonormal columns
    np.testing.assert_allclose((w.T @ w).numpy(), np.eye(S), atol=1e-5)
    assert torch.all(first.bias == 0)
    for member in agent.critic.linears[1].weight.detach():  # (64, 64) per member
        np.testing.assert_allclose((member.T @ member).numpy(), np.eye(64), atol=1e-4)
    assert torch.all(agent.critic.head.bias == 0)
    default = SACAgent(S, A, True, small_config(init="default"), seed=0).actor.trunk.net[0]
    assert not torch.all(default.bias == 0)
    # The target critic starts as a copy of the (orthogonal) critic.
    torch.testing.assert_close(agent.critic_target.linears[0].weight, agent.critic.linears[0].weight)


@pytest.mark.parametrize("init", ["default", "orthogonal"])
def test_actor_std_switch_sets_the_initial_spread_and_its_bounds(init):
    obs = torch.randn(256, S, generator=torch.Generator().manual_seed(3))
    squashed = SACAgent(S, A, True, small_config(init=init, actor_std="squashed"), seed=0).actor
    clamped = SACAgent(S, A, True, small_config(init=init, actor_std="clamped"), seed=0).actor
    with torch.no_grad():
        std_squashed = squashed(obs)[1].exp()
        std_clamped = clamped(obs)[1].exp()
    # ours starts near exp(-1.5) ~ 0.22; LeRobot's near 1 (heads in +-0.05 even after orthogonal init)
    assert 0.1 < float(std_squashed.median()) < 0.4
    assert 0.7 < float(std_clamped.median()) < 1.4
    assert float(clamped.log_std.weight.abs().max()) <= 0.05
    # Far outside the head's usual range, each stays inside its own bounds.
    with torch.no_grad():
        for actor in (squashed, clamped):
            actor.log_std.bias.fill_(100.0)
        assert torch.allclose(squashed(obs)[1], torch.tensor(2.0))
        assert torch.allclose(clamped(obs)[1], torch.tensor(math.log(10.0)))
        for actor in (squashed, clamped):
            actor.log_std.bias.fill_(-100.0)
        assert torch.allclose(squashed(obs)[1], torch.tensor(-5.0))
        assert torch.allclose(clamped(obs)[1], torch.tensor(math.log(1e-5)))


def test_a_clamped_std_agent_trains_and_its_policy_acts_alike():
    config = small_config(actor_std="clamped")
    agent = SACAgent(S, A, True, config, seed=1)
    for i in range(3):
        info = agent.update(make_batch(seed=i))
    assert all(math.isfinite(v) for v in info.values())
    policy = Policy(S, A, True, config)
    policy.load_tensors(agent.actor_tensors())
    obs = np.random.default_rng(2).normal(size=(16, S)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
    # The parameterisation is part of the policy: a squashed-std Policy reads the same tensors as
    # a different exploration distribution.
    assert policy.actor.std_mode == "clamped"
    with pytest.raises(ValueError, match="std must be"):
        TanhGaussianActor(S, 3, [8], std="exp")


def test_a_state_encoder_is_shared_trained_by_the_critic_only_and_travels_with_the_actor():
    config = small_config(state_encoder_dim=16)
    agent = SACAgent(S, A, True, config, seed=0)
    agent.set_obs_normalization(np.zeros(S), np.ones(S) * 2)
    assert agent.actor.trunk.net[0].in_features == 16 and agent.critic.linears[0].weight.shape[1] == 16 + A - 1
    obs = torch.randn(8, S)
    with torch.no_grad():
        features = agent.obs_norm(obs)
    assert features.shape == (8, 16) and float(features.abs().max()) < 1  # tanh-bounded
    before = {n: p.detach().clone() for n, p in agent.obs_norm.named_parameters()}
    agent.update(make_batch(seed=0))
    assert all(not torch.equal(before[n], p) for n, p in agent.obs_norm.named_parameters())
    # With the critic frozen (lr 0), actor and grasp steps leave the state encoder alone.
    frozen_critic = SACAgent(S, A, True, small_config(state_encoder_dim=16, critic_lr=0.0), seed=0)
    actor_before = frozen_critic.actor.mean.weight.detach().clone()
    encoder_before = {n: p.detach().clone() for n, p in frozen_critic.obs_norm.named_parameters()}
    frozen_critic.update(make_batch(seed=0))
    assert not torch.equal(actor_before, frozen_critic.actor.mean.weight)
    assert all(torch.equal(encoder_before[n], p) for n, p in frozen_critic.obs_norm.named_parameters())
    # The actor process's Policy builds and loads it; a resumed agent continues bit-identically.
    policy = Policy(S, A, True, config)
    policy.load_tensors(agent.actor_tensors())
    o = np.random.default_rng(0).normal(size=(4, S)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(o, True), agent.act(o, True))
    resumed = SACAgent(S, A, True, config, seed=5)
    resumed.load_state_arrays(agent.state_arrays())
    assert agent.update(make_batch(seed=1)) == resumed.update(make_batch(seed=1))
    with pytest.raises(ValueError, match="state_encoder_dim"):
        SACConfig(state_encoder_dim=0)


def test_grasp_trains_state_encoder_lets_the_grasp_loss_shape_the_encoder_and_resumes():
    # The critic frozen (lr 0): only the grasp step can move the encoder, and it does only with the switch.
    def encoder_moved(**switch) -> bool:
        agent = SACAgent(S, A, True, small_config(state_encoder_dim=16, critic_lr=0.0, **switch), seed=0)
        agent.set_obs_normalization(np.zeros(S), np.ones(S))
        before = {n: p.detach().clone() for n, p in agent.obs_norm.named_parameters()}
        agent.update(make_batch(seed=0))
        return any(not torch.equal(before[n], p) for n, p in agent.obs_norm.named_parameters())

    assert encoder_moved(grasp_trains_state_encoder=True)
    assert not encoder_moved(grasp_trains_state_encoder=False)
    # The grasp optimiser's Adam state for the encoder is its own, and a resumed agent carries it on.
    config = small_config(state_encoder_dim=16, grasp_trains_state_encoder=True)
    agent = SACAgent(S, A, True, config, seed=0)
    agent.set_obs_normalization(np.zeros(S), np.ones(S))
    agent.update(make_batch(seed=0))
    arrays = agent.state_arrays()
    assert any(k.startswith("optim.grasp_critic.obs_norm.") for k in arrays)
    resumed = SACAgent(S, A, True, config, seed=5)
    resumed.load_state_arrays(arrays)
    assert agent.update(make_batch(seed=1)) == resumed.update(make_batch(seed=1))
    # Without a state encoder there is nothing to train: refused, naming the fix.
    with pytest.raises(ValueError, match="grasp_trains_state_encoder needs a state encoder.*state_encoder_dim"):
        SACConfig(state_encoder_dim=None, grasp_trains_state_encoder=True)


def test_the_activation_switch_reaches_actor_critics_grasp_critic_and_the_policy():
    relu = SACAgent(S, A, True, small_config(activation="relu"), seed=0)
    silu = SACAgent(S, A, True, small_config(activation="silu"), seed=0)
    batch = make_batch(seed=0)
    obs, action = batch["obs"], batch["action"][:, :-1]
    with torch.no_grad():
        # Same weights (same seed), different nonlinearity: every network's output moves ...
        torch.testing.assert_close(relu.critic.linears[0].weight, silu.critic.linears[0].weight)
        assert not torch.allclose(relu.critic(obs, action), silu.critic(obs, action))
        assert not torch.allclose(relu.actor(obs)[0], silu.actor(obs)[0])
        assert not torch.allclose(relu.grasp_critic(obs), silu.grasp_critic(obs))
        # ... and a hand-written SiLU critic member gives the ensemble's numbers.
        x = torch.cat([obs, action], -1)
        for linear, norm in zip(silu.critic.linears, silu.critic.norms, strict=True):
            w, b = linear.weight[0], linear.bias[0]
            x = F.silu(F.layer_norm(x @ w + b, (w.shape[1],)) * norm.weight[0] + norm.bias[0])
        q0 = (x @ silu.critic.head.weight[0] + silu.critic.head.bias[0]).squeeze(-1)
        torch.testing.assert_close(q0, silu.critic(obs, action)[0], rtol=1e-5, atol=1e-5)
    silu.update(batch)
    policy = Policy(S, A, True, small_config(activation="silu"))
    policy.load_tensors(silu.actor_tensors())
    o = obs.numpy()[:5]
    np.testing.assert_array_equal(policy.act(o, True), silu.act(o, True))
    with pytest.raises(ValueError, match="activation must be"):
        EnsembleCritic(S, 3, [8], 2, activation="tanh")


class _PrefersAction(torch.nn.Module):
    """A stand-in critic ensemble (E, B) whose every member values an action by its closeness to
    `best`: Q(s, a) = -|a - best|^2, whatever the state."""

    def __init__(self, best: torch.Tensor, ensemble_size: int = 2):
        super().__init__()
        self.best, self.ensemble_size = best, ensemble_size

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        return (-(action - self.best).pow(2).sum(-1)).expand(self.ensemble_size, -1)


def test_bc_term_counts_only_the_expert_rows_the_q_filter_keeps():
    """bc_rows is the share of the batch the BC term counted: every expert row without the filter;
    with it only those whose action the critics value at least as much as the actor's own (here:
    the expert rows at the critic's best action, not the ones at the worst corner)."""
    best = torch.full((A - 1,), 0.9)
    batch = make_batch(b=64)
    rows = torch.arange(64)
    batch["expert"] = rows < 32
    batch["action"][:16, :-1] = best  # expert, valued highest
    batch["action"][16:32, :-1] = -1.0  # expert, valued below anything the actor can sample
    for q_filter, expected in ((True, 16 / 64), (False, 32 / 64)):
        agent = SACAgent(S, A, True, small_config(bc_weight=1.0, bc_q_filter=q_filter), seed=0)
        agent.critic = _PrefersAction(best)
        metrics = agent._actor_temperature_step(agent.obs_norm(batch["obs"]).detach(), batch)
        assert metrics["bc_rows"] == pytest.approx(expected)
        assert float(metrics["bc_loss"]) > 0


def test_bc_term_pulls_the_deterministic_action_towards_the_experts():
    """Trained on the same batches, an agent with the BC term ends with its deterministic action
    on the expert rows' states much nearer the experts' action than one without."""
    target = torch.tensor([0.6, -0.4, 0.2])
    batches = []
    for seed in range(8):
        batch = make_batch(b=64, seed=seed)
        batch["expert"] = torch.arange(64) % 2 == 0
        batch["action"][batch["expert"], :-1] = target
        batches.append(batch)
    errors = {}
    for weight in (0.0, 5.0):
        agent = SACAgent(S, A, True, small_config(bc_weight=weight, bc_q_filter=False), seed=0)
        for i in range(150):
            agent.update([batches[(2 * i + j) % 8] for j in range(2)])
        states = torch.cat([b["obs"][b["expert"]] for b in batches])
        with torch.no_grad():
            action = agent.actor.deterministic(agent.obs_norm(states))
        errors[weight] = float((action - target).pow(2).mean())
    assert errors[5.0] < 0.02 and errors[5.0] < 0.2 * errors[0.0], errors


def test_bc_weight_is_validated_and_needs_expert_rows():
    for bad in (-0.1, float("nan"), 1e3):
        with pytest.raises(ValueError, match="bc_weight"):
            SACConfig(bc_weight=bad)
    agent = SACAgent(S, A, True, small_config(bc_weight=0.4), seed=0)
    agent.set_obs_normalization(np.zeros(S), np.ones(S))
    with pytest.raises(ValueError, match="expert"):
        agent.update(make_batch())
    # Off (the default): no expert rows needed, no BC metrics.
    assert "bc_loss" not in SACAgent(S, A, True, small_config(), seed=0).update(make_batch())
