"""residual_sac (hilrl.policies.residual): the first actions are the base policy's, the residual
moves them by at most `scale`, and the critics score executed actions; warm start
(hilrl.learner.warm_start) loads exactly the networks that fit and names the rest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hilrl.learner.imitation import BCTrainer
from hilrl.learner.replay import to_torch
from hilrl.learner.rlpd import RLPDTrainer
from hilrl.learner.warm_start import warm_start
from hilrl.policies.residual import (
    ResidualPolicy,
    ResidualSACAgent,
    acting_policy,
    load_base_policy,
)
from hilrl.policies.sac import Policy, SACAgent
from hilrl.transport.checkpoint import Checkpoint, acting_tensors, write_checkpoint
from hilrl.transport.config import config_path, load_document
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.algorithm import BCConfig, ResidualConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig
from tests.learning_core.replay_support import Episode, chunks, records

# The sim pick-cube task's layout (its config is the base run's saved config): state, action
# (xyz and the gripper).
S, A = 16, 4
SAC = SACConfig(hidden_dims=[32, 32])


def _pick_cube_doc(*overrides: str) -> dict:
    return load_document(config_path("sim_pick_cube"), ["learner.sac.hidden_dims=[32, 32]", *overrides])


def _bc_run(tmp_path: Path, state_dim: int = S, sac: SACConfig = SAC) -> tuple[Path, BCTrainer]:
    """A finished `bc` run on disk: its saved config and a checkpoint of a trained BC agent."""
    trainer = BCTrainer(LearnerConfig(algorithm="bc", batch_size=16, sac=sac, bc=BCConfig(updates=20)),
                        state_dim, A, has_gripper=True, device="cpu")
    rec = records([Episode(e, 8, "terminated") for e in range(6)])
    rec["obs_state"] = np.random.default_rng(0).standard_normal((len(rec["obs_state"]), state_dim)).astype(np.float32)
    rec["action"] = np.clip(rec["obs_state"][:, :A], -1, 1)
    for chunk in chunks(rec, 7):
        trainer.add_demo_chunk(chunk)
    while trainer.may_update():
        trainer.update()
    run = tmp_path / "bc-run"
    paths = RunDir(run)
    paths.learner.mkdir(parents=True)
    paths.config_json.write_text(json.dumps(_pick_cube_doc("learner.algorithm=bc")))
    tensors, counters = trainer.state()
    write_checkpoint(paths.checkpoint, Checkpoint(updates=counters["updates"], weights_version=0, config_hash="",
                                                  sampler_rng=counters["sampler_rng"], tensors=tensors))
    return run, trainer


def _observations(n: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, S)).astype(np.float32)


def test_the_residual_starts_as_the_base_policy_and_moves_it_by_at_most_its_scale(tmp_path):
    run, bc = _bc_run(tmp_path)
    base = load_base_policy(run, S, A, has_gripper=True, cameras=[])
    obs = _observations()
    np.testing.assert_allclose(base.act(obs, deterministic=True), bc.agent.act(obs, deterministic=True), atol=1e-6)
    agent = ResidualSACAgent(S, A, True, SAC, base, scale=0.2, seed=3)
    first = agent.act(obs, deterministic=True)
    np.testing.assert_array_equal(first, base.act(obs, deterministic=True))  # exactly the base's
    explored = agent.act(obs, deterministic=False)
    base_action = base.act(obs, deterministic=True)
    assert np.abs(explored[:, :3] - base_action[:, :3]).max() <= 0.2 + 1e-6
    assert np.abs(explored[:, :3] - base_action[:, :3]).max() > 0.01  # it does explore
    np.testing.assert_array_equal(explored[:, 3], base_action[:, 3])  # the gripper is the base's
    # The actor process's ResidualPolicy, fed the agent's weights, acts the same.
    policy = acting_policy(S, A, True, LearnerConfig(algorithm="residual_sac", sac=SAC,
                                                     residual=ResidualConfig(base_run=str(run), scale=0.2)), [])
    assert isinstance(policy, ResidualPolicy)
    policy.load_tensors(agent.actor_tensors())
    np.testing.assert_allclose(policy.act(obs, deterministic=True), first, atol=1e-6)


def test_the_critics_score_the_executed_action_and_the_residual_trains(tmp_path):
    run, _ = _bc_run(tmp_path)
    base = load_base_policy(run, S, A, has_gripper=True, cameras=[])
    agent = ResidualSACAgent(S, A, True, SAC, base, scale=0.5, seed=3)
    agent.set_obs_normalization(np.full(S, 0.1), np.ones(S))
    residual = torch.full((4, 3), 1.0)
    base_action = torch.tensor([[0.9, 0.0, -0.2]] * 4)
    np.testing.assert_allclose(agent.executed(residual, base_action).numpy(), [[1.0, 0.5, 0.3]] * 4, atol=1e-6)
    rng = np.random.default_rng(0)
    batch = to_torch({
        "obs_state": rng.standard_normal((16, S)).astype(np.float32),
        "next_obs_state": rng.standard_normal((16, S)).astype(np.float32),
        "action": rng.uniform(-1, 1, (16, A)).astype(np.float32), "reward": np.ones(16, np.float32),
        "terminated": np.zeros(16, bool), "truncated": np.zeros(16, bool), "intervened": np.zeros(16, bool),
        "gripper_switched": np.zeros(16, bool)}, "cpu")
    before = agent.actor.mean.weight.detach().clone()
    for _ in range(5):
        agent.update(batch)
    assert not torch.equal(agent.actor.mean.weight, before)
    with pytest.raises(ValueError, match="base"):
        agent.executed(residual, None)


def test_a_missing_or_unfitting_base_policy_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(SchemaError, match="learner.residual.base_run") as missing:
        load_base_policy(tmp_path / "nowhere", S, A, True, [])
    assert "bc" in str(missing.value)
    run, _ = _bc_run(tmp_path)
    with pytest.raises(SchemaError, match="learner.residual.base_run.*does not fit"):
        load_base_policy(run, S + 1, A, True, [])
    with pytest.raises(ValueError, match="base_run"):
        LearnerConfig(algorithm="residual_sac")


def test_warm_start_loads_exactly_the_networks_that_fit_and_names_those_it_skipped(tmp_path):
    run, bc = _bc_run(tmp_path)
    trainer = RLPDTrainer(LearnerConfig(sac=SAC), S, A, has_gripper=True, device="cpu")
    fresh = trainer.agent.state_arrays()
    report = warm_start(trainer.agent, run)
    assert report.loaded == {"obs_norm": "source", "actor": "source", "grasp_critic": "source",
                             "grasp_critic_target": "copied from grasp_critic"}
    assert set(report.skipped) == {"critic", "critic_target"}
    after, source = trainer.agent.state_arrays(), bc.agent.state_arrays()
    for name, value in after.items():
        net = name.split(".")[0]
        if net in ("obs_norm", "actor", "grasp_critic"):
            np.testing.assert_array_equal(value, source[name], err_msg=name)
        elif net == "grasp_critic_target":
            np.testing.assert_array_equal(value, source["grasp_critic" + name[len(net):]], err_msg=name)
        else:  # critics, temperature, optimiser state, random streams: this run's own
            np.testing.assert_array_equal(value, fresh[name], err_msg=name)
    assert report.tensors == sum(1 for n in after if n.split(".")[0] in report.loaded)
    np.testing.assert_array_equal(trainer.agent.act(_observations(), True), bc.agent.act(_observations(), True))


def test_warm_start_from_a_run_where_nothing_fits_or_without_a_checkpoint_is_an_error(tmp_path):
    run, _ = _bc_run(tmp_path, state_dim=S + 2)
    agent = SACAgent(S, A, True, SAC)
    with pytest.raises(SchemaError, match="learner.init_from: nothing in .* fits.*obs_norm"):
        warm_start(agent, run)
    with pytest.raises(SchemaError, match="learner.init_from.*no checkpoint"):
        warm_start(agent, tmp_path / "empty")


def test_with_a_state_encoder_nothing_that_reads_it_loads_unless_the_encoder_did(tmp_path):
    encoded = SACConfig(hidden_dims=[32, 32], state_encoder_dim=24)
    # Different state widths: the encoder misfits; the actor's input width (24) would fit but its
    # features would not mean the same, so it stays as initialised.
    wider, _ = _bc_run(tmp_path / "wider", state_dim=S + 2, sac=encoded)
    with pytest.raises(SchemaError, match="nothing in .* fits.*actor: it reads the state encoder"):
        warm_start(SACAgent(S, A, True, encoded), wider)
    same, bc = _bc_run(tmp_path / "same", sac=encoded)
    agent = SACAgent(S, A, True, encoded, seed=3)
    report = warm_start(agent, same)
    assert {"obs_norm", "actor", "grasp_critic"} <= set(report.loaded)
    obs = _observations(8)
    np.testing.assert_array_equal(agent.act(obs, True), bc.agent.act(obs, True))


def test_base_policy_actions_match_the_acting_networks_it_was_built_from(tmp_path):
    run, bc = _bc_run(tmp_path)
    policy = Policy(S, A, True, SAC)
    policy.load_tensors(acting_tensors(bc.agent.state_arrays()))
    base = load_base_policy(run, S, A, True, [])
    obs = _observations(8)
    np.testing.assert_array_equal(base.act(obs, True), policy.act(obs, True))
