"""BCAgent: the loss learns, the actor's Policy runs its tensors, serialisation, validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from hilrl.policies.bc import BCAgent
from hilrl.policies.sac import Policy, SACAgent, UnfittedNormalizationWarning
from hilrl.transport.sections.algorithm import BCConfig
from hilrl.transport.sections.sac import EncoderConfig, SACConfig

S, A = 6, 4  # state width; env action: xyz + gripper
IMAGE = 32


def small_config(**kwargs) -> SACConfig:
    return SACConfig(hidden_dims=[64, 64], **kwargs)


def image_config(frozen: bool | None = None, **kwargs) -> SACConfig:
    encoder = EncoderConfig(kind="small", image_size=IMAGE, feature_dim=16, frozen=frozen)
    return SACConfig(hidden_dims=[32, 32], encoder=encoder, **kwargs)


def make_batch(b: int = 64, seed: int = 0, cameras: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Recorded (s, a): the continuous action a smooth function of the state, the gripper
    open / stay / close from the sign of state feature 0 (|s_0| < 0.5: stay)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(b, S, generator=g)
    weight = torch.linspace(-1.0, 1.0, S * (A - 1)).reshape(S, A - 1)
    continuous = torch.tanh(0.7 * obs @ weight)
    gripper = torch.where(obs[:, 0] > 0.5, 1.0, torch.where(obs[:, 0] < -0.5, -1.0, 0.0))
    batch = {"obs": obs, "action": torch.cat([continuous, gripper.unsqueeze(-1)], dim=-1)}
    if cameras:
        batch["obs_images"] = {
            cam: torch.randint(0, 256, (b, IMAGE, IMAGE, 3), generator=g, dtype=torch.uint8) for cam in cameras
        }
    return batch


def fitted(agent: BCAgent) -> BCAgent:
    """The input normalisation set (as the learner does), so no warning."""
    agent.set_obs_normalization(np.zeros(S), np.full(S, 1.5))
    return agent


def image_obs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.normal(size=(n, S)).astype(np.float32),
        "wrist": rng.integers(0, 256, size=(n, IMAGE, IMAGE, 3), dtype=np.uint8),
    }


def test_updates_reduce_the_loss_and_the_action_approaches_the_targets():
    agent = fitted(BCAgent(S, A, True, small_config(), BCConfig(lr=1e-3), seed=0))
    batch = make_batch(b=128)
    before = agent.validation_loss(batch)["bc_val_action_mse"]
    for _ in range(200):
        metrics = agent.update(batch)
    after = agent.validation_loss(batch)["bc_val_action_mse"]
    assert after < before / 5, (before, after)
    assert set(metrics) == {"bc_loss", "bc_action_mse", "bc_gripper_ce", "bc_gripper_accuracy"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert agent.updates == 200
    action = agent.act(batch["obs"].numpy(), deterministic=True)
    error = np.abs(action[:, :-1] - batch["action"][:, :-1].numpy()).mean()
    assert error < 0.1, error


def test_the_grasp_head_learns_a_separable_gripper_labelling():
    agent = fitted(BCAgent(S, A, True, small_config(), BCConfig(lr=3e-3), seed=1))
    batch = make_batch(b=128, seed=3)
    labels = batch["action"][:, -1]
    assert {-1.0, 0.0, 1.0} == set(labels.tolist())  # all three classes present
    assert agent.validation_loss(batch)["bc_val_gripper_accuracy"] < 0.8
    for _ in range(150):
        agent.update(batch)
    assert agent.validation_loss(batch)["bc_val_gripper_accuracy"] >= 0.99
    np.testing.assert_array_equal(agent.act(batch["obs"].numpy())[:, -1], labels.numpy())


def test_gripper_weight_scales_the_cross_entropy():
    agent = BCAgent(S, A, True, small_config(), BCConfig(gripper_weight=2.5), seed=0)
    total, parts = agent.loss(make_batch(), train=True)
    torch.testing.assert_close(total, parts["bc_action_mse"] + 2.5 * parts["bc_gripper_ce"])
    plain = BCAgent(S, 3, False, small_config(), BCConfig(), seed=0)
    batch = make_batch()
    batch["action"] = batch["action"][:, :3]
    total, parts = plain.loss(batch, train=True)
    assert set(parts) == {"bc_loss", "bc_action_mse"}
    torch.testing.assert_close(total, parts["bc_action_mse"])


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_max_grad_norm_bounds_the_step(clip, monkeypatch):
    """The gradient Adam steps with (actor, grasp head, encoder together) has a global L2 norm of
    at most `max_grad_norm`; without it the same update's gradient is far larger."""
    agent = fitted(BCAgent(S, A, True, image_config(max_grad_norm=clip), BCConfig(), seed=0, cameras=["wrist"]))
    norms: list[float] = []
    step = agent.optimizer.step

    def record(*args, **kwargs):
        grads = [p.grad for g in agent.optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(*args, **kwargs)

    monkeypatch.setattr(agent.optimizer, "step", record)
    agent.update(make_batch(b=16, cameras=("wrist",)))
    assert len(norms) == 1
    if clip is None:
        assert norms[0] > 1e-2  # unclipped, far above the limit
    else:
        assert norms[0] <= clip * 1.0001, norms


@pytest.mark.parametrize("has_gripper", [True, False])
@pytest.mark.parametrize("init", ["default", "orthogonal"])
def test_same_seed_same_initial_acting_weights_as_sac(has_gripper, init):
    action_dim = A if has_gripper else A - 1
    config = small_config(init=init, ensemble_size=3)
    bc = BCAgent(S, action_dim, has_gripper, config, BCConfig(), seed=7).actor_tensors()
    sac = SACAgent(S, action_dim, has_gripper, config, seed=7).actor_tensors()
    assert bc.keys() == sac.keys()
    for name in sac:
        np.testing.assert_array_equal(bc[name], sac[name], err_msg=name)
    other = BCAgent(S, action_dim, has_gripper, config, BCConfig(), seed=8).actor_tensors()
    assert not np.array_equal(other["actor.mean.weight"], bc["actor.mean.weight"])


def test_policy_from_actor_tensors_acts_like_the_agent():
    agent = BCAgent(S, A, True, small_config(), BCConfig(), seed=2)
    stats = np.random.default_rng(5)
    agent.set_obs_normalization(stats.normal(size=S), stats.uniform(0.05, 2.0, size=S))
    for i in range(3):
        agent.update(make_batch(seed=i))
    tensors = agent.actor_tensors()
    assert {k.split(".")[0] for k in tensors} == {"obs_norm", "actor", "grasp_critic"}
    assert agent.static_actor_tensors() == {}
    policy = Policy(S, A, True, small_config())
    obs = np.random.default_rng(1).normal(size=(32, S)).astype(np.float32)
    assert not np.array_equal(policy.act(obs, True), agent.act(obs, True))
    policy.load_tensors(tensors)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
    np.testing.assert_array_equal(policy.act(obs[3], True), agent.act(obs[3]))  # deterministic by default
    noisy = agent.act(obs, deterministic=False)
    assert noisy.shape == (32, A) and (np.abs(noisy) <= 1).all()
    assert not np.array_equal(noisy[:, :-1], agent.act(obs)[:, :-1])


@pytest.mark.parametrize("frozen", [False, True])
def test_policy_with_a_camera_acts_like_the_agent(frozen):
    config = image_config(frozen=frozen)
    agent = fitted(BCAgent(S, A, True, config, BCConfig(), seed=3, cameras=["wrist"]))
    for i in range(2):
        agent.update(make_batch(b=16, seed=i, cameras=("wrist",)))
    static = agent.static_actor_tensors()
    assert bool(static) == frozen and all(".backbone." in k for k in static)
    policy = Policy(S, A, True, config, cameras=["wrist"])
    obs = image_obs(8, seed=4)
    if frozen:  # the first load needs the backbone too
        with pytest.raises(ValueError, match="missing"):
            policy.load_tensors(agent.actor_tensors())
    policy.load_tensors({**agent.actor_tensors(), **static})
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs))
    agent.update(make_batch(b=16, seed=2, cameras=("wrist",)))
    policy.load_tensors(agent.actor_tensors())  # later updates: the trained tensors alone
    single = {k: v[0] for k, v in obs.items()}
    np.testing.assert_array_equal(policy.act(single, True), agent.act(single))


@pytest.mark.parametrize("cameras", [(), ("wrist",)])
def test_state_arrays_round_trip_gives_bit_identical_next_updates(cameras):
    config = image_config() if cameras else small_config(max_grad_norm=1.0)
    a = fitted(BCAgent(S, A, True, config, BCConfig(), seed=0, cameras=cameras))
    for i in range(3):
        a.update(make_batch(b=16, seed=i, cameras=cameras))
    arrays = a.state_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    assert {"obs_norm.std", "actor.mean.weight", "grasp_critic.net.net.0.weight", "rng.update", "rng.act",
            "updates", "optim.bc.actor.mean.weight.exp_avg_sq", "optim.bc.grasp_critic.net.net.0.bias.step"} <= set(arrays)
    if cameras:
        assert any(k.startswith("optim.bc.encoder.") for k in arrays)
    b = BCAgent(S, A, True, config, BCConfig(), seed=99, cameras=cameras)  # overwritten
    b.load_state_arrays(arrays)
    assert b.updates == 3
    for i in range(3, 6):
        batch = make_batch(b=16, seed=i, cameras=cameras)
        assert a.update(batch) == b.update(batch)
    after_a, after_b = a.state_arrays(), b.state_arrays()
    assert after_a.keys() == after_b.keys()
    for name in after_a:
        np.testing.assert_array_equal(after_a[name], after_b[name], err_msg=name)
    obs = image_obs(4, seed=0) if cameras else np.ones(S, np.float32)
    np.testing.assert_array_equal(a.act(obs, False), b.act(obs, False))
    # The array codec promotes 0-d arrays (Adam steps, updates) to shape (1,).
    c = BCAgent(S, A, True, config, BCConfig(), seed=7, cameras=cameras)
    c.load_state_arrays({k: v.reshape(1) if v.ndim == 0 else v for k, v in a.state_arrays().items()})
    batch = make_batch(b=16, seed=10, cameras=cameras)
    assert a.update(batch) == c.update(batch)


def test_load_state_arrays_refuses_bad_input_and_changes_nothing():
    a = fitted(BCAgent(S, A, True, small_config(), BCConfig(), seed=0))
    fresh = BCAgent(S, A, True, small_config(), BCConfig(), seed=5).state_arrays()  # no optimiser state
    assert not any(k.startswith("optim.") for k in fresh)
    a.update(make_batch())
    trained = a.state_arrays()
    missing = dict(trained)
    del missing["optim.bc.actor.mean.weight.exp_avg"]
    bad = {
        "'grasp_critic.net.net.0.weight'": {k: v for k, v in trained.items() if k != "grasp_critic.net.net.0.weight"},
        "actor.mean.weight": {**fresh, "actor.mean.weight": np.zeros((2, 2), np.float32)},
        "unknown": {**fresh, "critic.extra": np.zeros(1, np.float32)},
        "optim.bc.actor.mean.weight": missing,
        "'updates'": {k: v for k, v in trained.items() if k != "updates"},
    }
    for name, arrays in bad.items():
        with pytest.raises(ValueError, match=name):
            a.load_state_arrays(arrays)
    for name, value in a.state_arrays().items():
        np.testing.assert_array_equal(value, trained[name], err_msg=name)
    a.load_state_arrays(fresh)  # a fresh agent's arrays (no optimiser state yet) are accepted
    assert a.updates == 0


def test_validation_loss_changes_no_weight_and_draws_no_randomness():
    agent = fitted(BCAgent(S, A, True, image_config(), BCConfig(), seed=0, cameras=["wrist"]))
    batch = make_batch(b=16, cameras=("wrist",))
    agent.update(batch)
    before = agent.state_arrays()
    first, second = agent.validation_loss(batch), agent.validation_loss(batch)
    assert first == second  # no augmentation
    assert set(first) == {"bc_val_loss", "bc_val_action_mse", "bc_val_gripper_ce", "bc_val_gripper_accuracy"}
    assert all(isinstance(v, float) for v in first.values())
    after = agent.state_arrays()
    assert after.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    _, train_metrics = agent.loss(batch, train=True)
    assert float(train_metrics["bc_loss"]) != first["bc_val_loss"]  # training augments


def test_an_unfitted_normalisation_warns_once_and_a_fitted_one_never():
    agent = BCAgent(S, A, True, small_config(), BCConfig(), seed=0)
    with pytest.warns(UnfittedNormalizationWarning, match="set_obs_normalization"):
        agent.update(make_batch())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfittedNormalizationWarning)
        agent.update(make_batch(seed=1))  # once is enough
        fitted(BCAgent(S, A, True, small_config(), BCConfig(), seed=0)).update(make_batch())
        BCAgent(S, A, True, small_config(normalization="none"), BCConfig(), seed=0).update(make_batch())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_agent_on_cuda_updates_resumes_and_feeds_a_cpu_policy():
    a = fitted(BCAgent(S, A, True, small_config(), BCConfig(), device="cuda", seed=0))
    batch = {k: v.cuda() for k, v in make_batch().items()}
    a.update(batch)
    b = BCAgent(S, A, True, small_config(), BCConfig(), device="cuda", seed=1)
    b.load_state_arrays(a.state_arrays())
    assert a.update(batch) == b.update(batch)
    policy = Policy(S, A, True, small_config(), device="cpu")
    policy.load_tensors(a.actor_tensors())
    obs = np.random.default_rng(0).normal(size=(8, S)).astype(np.float32)
    np.testing.assert_allclose(policy.act(obs, True), a.act(obs), atol=1e-5)


def test_bc_trains_a_configured_state_encoder_with_the_actor():
    agent = fitted(BCAgent(S, A, True, small_config(state_encoder_dim=16), BCConfig(lr=1e-3), seed=0))
    before = {n: p.detach().clone() for n, p in agent.obs_norm.named_parameters()}
    assert before  # Linear and LayerNorm parameters
    agent.update(make_batch(seed=0))
    assert all(not torch.equal(before[n], p) for n, p in agent.obs_norm.named_parameters())
    policy = Policy(S, A, True, small_config(state_encoder_dim=16))
    policy.load_tensors(agent.actor_tensors())
    obs = np.random.default_rng(3).normal(size=(5, S)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
