"""SACAgent and Policy with cameras: the shared encoder, stopped gradients, frozen features once
per batch, augmentation only in training, static (frozen) weights apart, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hilrl.policies.sac import Policy, SACAgent
from hilrl.transport.sections.sac import EncoderConfig, SACConfig

S, A = 5, 4  # state width; env action: xyz + gripper
SIZE = 32
CAMERAS = ("front", "wrist")


def config(**encoder) -> SACConfig:
    return SACConfig(hidden_dims=[32, 32], encoder=EncoderConfig(image_size=SIZE, feature_dim=16, **encoder))


def make_agent(seed: int = 0, cameras=CAMERAS, **encoder) -> SACAgent:
    return SACAgent(S, A, True, config(**encoder), seed=seed, cameras=cameras)


def make_batch(b: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def images() -> dict[str, torch.Tensor]:
        return {c: torch.randint(0, 256, (b, SIZE, SIZE, 3), generator=g, dtype=torch.uint8) for c in CAMERAS}

    return {
        "obs": torch.randn(b, S, generator=g),
        "next_obs": torch.randn(b, S, generator=g),
        "obs_images": images(),
        "next_obs_images": images(),
        "action": torch.rand(b, A, generator=g) * 2 - 1,
        "reward": torch.randn(b, generator=g),
        "terminated": (torch.rand(b, generator=g) < 0.1).float(),
        "gripper_switched": torch.rand(b, generator=g) < 0.2,
    }


def observation(b: int | None = None, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lead = () if b is None else (b,)
    obs = {"state": rng.normal(size=(*lead, S)).astype(np.float32)}
    for c in CAMERAS:
        obs[c] = rng.integers(0, 256, (*lead, SIZE, SIZE, 3), dtype=np.uint8)
    return obs


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}


def test_networks_read_state_and_image_features_from_one_shared_encoder():
    agent = make_agent()
    assert agent.encoder is not None and agent.encoder.cameras == CAMERAS
    # The state part is what ObsNormalizer gives: the state itself, or its state encoder's features.
    assert agent.obs_norm.out_dim == (agent.config.state_encoder_dim or S)
    width = agent.obs_norm.out_dim + 2 * 16
    assert agent.actor.trunk.net[0].in_features == width
    assert agent.critic.linears[0].weight.shape[1] == width + A - 1
    assert agent.grasp_critic.net.net[0].in_features == width
    # The critic optimiser owns the encoder; no other optimiser sees it.
    encoder_params = {id(p) for p in agent.encoder.parameters()}
    owned = {id(p) for group in agent.critic_optimizer.param_groups for p in group["params"]}
    assert encoder_params <= owned
    for opt in (agent.actor_optimizer, agent.grasp_optimizer, agent.temperature_optimizer):
        assert not encoder_params & {id(p) for group in opt.param_groups for p in group["params"]}


def test_only_the_critic_loss_moves_the_encoder():
    agent = make_agent()
    batch = make_batch()
    features, next_features = agent.batch_features(batch)
    before = snapshot(agent.encoder)
    actor_before = snapshot(agent.actor)
    agent._actor_temperature_step(features.detach())
    agent._grasp_step(batch, features.detach(), next_features)
    assert not changed(before, agent.encoder)
    assert changed(actor_before, agent.actor)  # the actor step itself did something
    agent._critic_step(batch, features, next_features)
    moved = changed(before, agent.encoder)
    assert any(".backbone." in f".{n}" for n in moved) and any(".head." in f".{n}" for n in moved)


def test_in_an_update_gradients_reach_the_encoder_from_the_critic_loss_only():
    agent = make_agent()
    backward_passes: list[torch.nn.Module] = []

    def count_gradients(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda grad: backward_passes.append(module))

    for name in CAMERAS:
        agent.encoder.encoders[name].register_forward_hook(count_gradients)
    k = agent.config.critic_updates_per_actor_update
    agent.update([make_batch(seed=s) for s in range(k)])
    # One backward pass per camera per critic step: the grasp critic and actor losses stop at the
    # encoder's output.
    assert len(backward_passes) == len(CAMERAS) * k


def test_update_trains_from_images_and_reduces_td_error_on_a_fixed_batch():
    agent = make_agent(random_shift_pad_px=0)
    batch = make_batch(b=32)

    def td() -> float:
        with torch.no_grad():
            features, next_features = agent.batch_features(batch)
            q = agent.critic(features, batch["action"][:, :-1])
            return float((q - agent.compute_critic_target(batch, next_features)).abs().mean())

    first = td()
    for _ in range(150):
        metrics = agent.update(batch)
    assert td() < 0.3 * first
    assert all(np.isfinite(v) for v in metrics.values())


def test_frozen_backbone_runs_once_per_batch_for_obs_and_once_for_next_obs():
    agent = make_agent(frozen=True)
    calls: list[int] = []
    for name in CAMERAS:
        agent.encoder.encoders[name].backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    batches = [make_batch(b=8, seed=s) for s in range(agent.config.critic_updates_per_actor_update)]
    before = snapshot(agent.encoder)
    agent.update(batches)
    # Per critic step and camera: one pass over obs and one over next_obs; the actor, critics and
    # grasp critic all read those maps (no extra pass for the actor step).
    assert calls == [8] * (2 * len(CAMERAS) * len(batches))
    moved = changed(before, agent.encoder)
    assert moved and all(".head." in f".{n}" for n in moved)  # heads train, the backbone does not


def test_augmentation_changes_training_images_and_keeps_shape_and_dtype():
    agent = make_agent()
    images = make_batch(b=16)["obs_images"]
    shifted = agent.augment(images)
    for c in CAMERAS:
        assert shifted[c].shape == images[c].shape and shifted[c].dtype == torch.uint8
    assert any(not torch.equal(shifted[c], images[c]) for c in CAMERAS)
    off = make_agent(random_shift_pad_px=0).augment(images)
    assert all(torch.equal(off[c], images[c]) for c in CAMERAS)


def test_acting_never_augments():
    agent = make_agent()
    obs = observation(b=6)
    first = agent.act(obs, deterministic=True)
    generator_state = agent.update_generator.get_state()
    for _ in range(3):
        np.testing.assert_array_equal(agent.act(obs, deterministic=True), first)
    # act() draws nothing from the training stream that augmentation uses.
    assert torch.equal(agent.update_generator.get_state(), generator_state)
    assert agent.act({**obs, "extra_camera": obs["front"]}, True).shape == (6, A)  # other keys ignored
    with pytest.raises(KeyError, match="wrist"):
        agent.act({"state": obs["state"], "front": obs["front"]}, True)


@pytest.mark.parametrize("frozen", [False, True])
def test_policy_acts_like_the_agent_with_static_weights_sent_once(frozen):
    agent = make_agent(frozen=frozen)
    agent.update(make_batch())
    policy = Policy(S, A, True, config(frozen=frozen), seed=3, cameras=CAMERAS)
    dynamic, static = agent.actor_tensors(), agent.static_actor_tensors()
    if frozen:
        assert static and all(".backbone." in n for n in static)
        assert not any(".backbone." in n for n in dynamic)
        assert not policy.static_loaded
        with pytest.raises(ValueError, match="backbone"):
            policy.load_tensors(dynamic)  # the first load needs the static part
        with pytest.raises(RuntimeError, match="frozen encoder"):
            policy.act(observation(), True)
        policy.load_tensors({**static, **dynamic})
    else:
        assert static == {} and any(".backbone." in n for n in dynamic)
        policy.load_tensors(dynamic)
    obs = observation(b=4)
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
    np.testing.assert_array_equal(policy.act(observation(), True), agent.act(observation(), True))

    # Later versions carry only what training changes, and the policy follows them.
    agent.update(make_batch(seed=5))
    policy.load_tensors(agent.actor_tensors())
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))


def test_checkpoint_round_trip_with_an_encoder_is_bit_identical():
    a = make_agent(seed=0)
    a.update(make_batch())
    b = make_agent(seed=7)
    b.load_state_arrays(a.state_arrays())
    assert any(k.startswith("optim.critic.encoder.") for k in a.state_arrays())
    batch = make_batch(seed=2)
    ma, mb = a.update(batch), b.update(batch)
    assert ma == mb
    obs = observation(b=3)
    np.testing.assert_array_equal(a.act(obs, False), b.act(obs, False))


def test_state_only_agent_still_takes_a_plain_state_array():
    agent = SACAgent(S, A, True, config(), seed=0)
    assert agent.encoder is None and agent.static_actor_tensors() == {}
    state = np.zeros(S, np.float32)
    np.testing.assert_array_equal(agent.act(state, True), agent.act({"state": state}, True))
