"""The checkpoint format (hilrl.transport.checkpoint): what the acting policy takes from a
checkpoint is every tensor of the agent's acting networks, nothing less, for every agent shape;
checkpoints round-trip and the kept numbered ones are pruned."""

from __future__ import annotations

import numpy as np
import pytest

from hilrl.policies.sac import Policy, SACAgent
from hilrl.transport.checkpoint import (
    ACTING_NETWORKS,
    Checkpoint,
    acting_tensors,
    keep_numbered,
    read_checkpoint,
    write_checkpoint,
)
from hilrl.transport.run_dir import RunDir
from hilrl.transport.sections.sac import EncoderConfig, SACConfig

S, SIZE = 9, 32

SHAPES = {
    "state, gripper": dict(action_dim=4, gripper=True, cameras=[], encoder={}),
    "state, no gripper": dict(action_dim=3, gripper=False, cameras=[], encoder={}),
    "two cameras, trained encoder": dict(action_dim=4, gripper=True, cameras=["front", "wrist"], encoder={}),
    "one camera, frozen backbone": dict(action_dim=4, gripper=True, cameras=["wrist"], encoder={"frozen": True}),
}


def _config(encoder: dict) -> SACConfig:
    return SACConfig(hidden_dims=[32, 32], encoder=EncoderConfig(image_size=SIZE, feature_dim=16, **encoder))


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_the_acting_policy_takes_every_tensor_of_the_acting_networks(shape: str) -> None:
    s = SHAPES[shape]
    config = _config(s["encoder"])
    agent = SACAgent(S, s["action_dim"], s["gripper"], config, seed=0, cameras=s["cameras"])
    acting = acting_tensors(agent.state_arrays())
    published = {**agent.actor_tensors(), **agent.static_actor_tensors()}
    # What evaluation reads from a checkpoint is exactly what the learner publishes to actors.
    assert set(acting) == set(published), sorted(set(acting) ^ set(published))
    assert {name.split(".", 1)[0] for name in acting} <= set(ACTING_NETWORKS)
    policy = Policy(S, s["action_dim"], s["gripper"], config, seed=1, cameras=s["cameras"])
    policy.load_tensors(acting)  # raises on a missing, unknown or misshapen tensor
    rng = np.random.default_rng(0)
    obs = {"state": rng.normal(size=S).astype(np.float32)}
    obs |= {c: rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for c in s["cameras"]}
    if not s["cameras"]:
        obs = obs["state"]
    np.testing.assert_allclose(policy.act(obs, deterministic=True), agent.act(obs, deterministic=True), atol=1e-5)


def test_a_checkpoint_missing_an_acting_tensor_does_not_load() -> None:
    agent = SACAgent(S, 4, True, _config({}), seed=0)
    acting = acting_tensors(agent.state_arrays())
    dropped = next(name for name in acting if name.startswith("grasp_critic."))
    del acting[dropped]
    policy = Policy(S, 4, True, _config({}), seed=1)
    with pytest.raises(ValueError, match="grasp_critic"):
        policy.load_tensors(acting)


def test_checkpoint_round_trip_and_numbered_pruning(tmp_path) -> None:
    paths = RunDir(tmp_path)
    paths.learner.mkdir()
    tensors = {"actor.w": np.arange(6, dtype=np.float32).reshape(2, 3), "log_alpha": np.float32(0.1).reshape(())}
    for updates in (100, 200, 300):
        write_checkpoint(paths.checkpoint, Checkpoint(updates, updates // 100, "hash", {"state": 1}, tensors))
        keep_numbered(paths.checkpoint, paths.numbered_checkpoint(updates), keep=2)
    back = read_checkpoint(paths.checkpoint)
    assert (back.updates, back.weights_version, back.config_hash, back.sampler_rng) == (300, 3, "hash", {"state": 1})
    np.testing.assert_array_equal(back.tensors["actor.w"], tensors["actor.w"])
    assert list(paths.numbered_checkpoints()) == [200, 300]
    assert read_checkpoint(paths.numbered_checkpoint(200)).updates == 200
    assert not list(paths.checkpoints.glob(".*.tmp"))
