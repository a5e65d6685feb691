"""The learning contract (hilrl.transport.contract): per-robot settings never change it, contract
keys always do, and a mismatch names every differing key with both values."""

from __future__ import annotations

import pytest

from hilrl.configs import config_path
from hilrl.transport.config import load_document
from hilrl.transport.contract import contract_differences, contract_hash, learning_contract

BASE = learning_contract(load_document(config_path("sim_reach")))

PER_ROBOT = [
    "actor.seed=7",
    "actor.robot_name=cell-b",
    "robot_server.address=tcp://127.0.0.1:6001",
    "robot_server.safety.max_step_m=0.03",
    "link.address=tcp://127.0.0.1:6002",
    "env.connection=server",
    "env.reset_position_noise_m=0.01",
    "dashboard.enabled=false",
    "learner.batch_size=64",
    "learner.demos=[runs/demos]",
    "learner.updates_per_env_step=0",
]
CONTRACT = [
    ("env.action.translation_scale_m=0.02", "env.action.translation_scale_m: learner 0.03, actor 0.02"),
    ("task=pick_cube", 'task: learner "reach", actor "pick_cube"'),
    ("robot_server.control_rate_hz=20", "robot_server.control_rate_hz: learner 10.0, actor 20.0"),
    ("env.max_episode_steps=51", "env.max_episode_steps: learner "),
    ("learner.sac.hidden_dims=[64, 64]", "learner.sac.hidden_dims: learner [256, 256], actor [64, 64]"),
    ("env.observation.state=[tcp_pose, object]", "env.observation.state: learner "),
]


@pytest.mark.parametrize("override", PER_ROBOT)
def test_per_robot_settings_leave_the_contract_alone(override):
    contract = learning_contract(load_document(config_path("sim_reach"), [override]))
    assert contract == BASE and contract_hash(contract) == contract_hash(BASE)


@pytest.mark.parametrize(("override", "line"), CONTRACT, ids=[o for o, _ in CONTRACT])
def test_contract_keys_are_compared_and_named_with_both_values(override, line):
    actor = learning_contract(load_document(config_path("sim_reach"), [override]))
    assert contract_hash(actor) != contract_hash(BASE)
    differences = contract_differences(actor, BASE)
    assert any(d.startswith(line) for d in differences), differences


def test_defaults_written_out_agree_with_defaults_left_out():
    """A key set to its default on one side and absent on the other is no difference."""
    doc = load_document(config_path("sim_reach"))
    explicit = load_document(config_path("sim_reach"), ["learner.sac.discount=0.97", "env.success_reward=1.0"])
    assert learning_contract(explicit) == learning_contract(doc)


def test_every_difference_is_listed_sorted():
    actor = learning_contract(load_document(config_path("sim_reach"),
                                            ["env.action.translation_scale_m=0.02", "task=pick_cube"]))
    differences = contract_differences(actor, BASE)
    assert [d.split(":")[0] for d in differences] == ["env.action.translation_scale_m", "task"]
    assert contract_differences({"a": 1}, {}) == ["a: learner (not set), actor 1"]
