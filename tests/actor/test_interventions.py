"""Interventions: the scripted operator takes over by its rule, the wrapper executes and reports the
operator's action, and the recorded action is the one that ran."""

from __future__ import annotations

import numpy as np

from hilrl.actor.config import InterventionConfig
from hilrl.actor.experts import make_expert
from hilrl.actor.interventions import (
    InterventionWrapper,
    ScriptedOperator,
    make_intervention_device,
)
from hilrl.actor.make import make_sim_env
from hilrl.transport.spatial import quat_to_matrix


def test_drift_rule_takes_over_when_the_policy_pushes_away_and_hands_back():
    env = make_sim_env("reach")
    try:
        config = InterventionConfig(device="scripted", rule="drift", patience_steps=2, takeover_steps=3, max_per_episode=1)
        wrapped = InterventionWrapper(env, make_intervention_device(config, "reach", env))
        wrapped.reset(seed=0)
        flags, taken = [], []
        for _ in range(10):
            state = env.robot_state
            # Straight away from the goal, in the action's frame (the TCP frame, as the expert's).
            away = -(quat_to_matrix(state.tcp_quaternion_wxyz).T @ (state.object_state[:3] - state.tcp_position_m))
            policy_action = np.clip(away / np.linalg.norm(away), -1, 1).astype(np.float32)
            _, _, terminated, truncated, info = wrapped.step(policy_action)
            flags.append(info["intervened"])
            taken.append(info["action_taken"])
            if not info["intervened"]:
                np.testing.assert_array_equal(info["action_taken"], policy_action)
            if terminated or truncated:
                break
        # patience 2: steps 0 and 1 drift, the takeover starts at step 1 and lasts 3 steps; then
        # max_per_episode=1 hands control back for good.
        assert flags[:5] == [False, True, True, True, False]
        assert sum(flags) == 3
        assert wrapped.device.takeovers == 1
    finally:
        wrapped.close()


def test_operator_action_is_the_expert_action_and_drives_to_success():
    env = make_sim_env("reach")
    try:
        config = InterventionConfig(device="scripted", rule="drift", patience_steps=1, takeover_steps=50)
        wrapped = InterventionWrapper(env, ScriptedOperator(config, make_expert("reach", env.config.action)))
        wrapped.reset(seed=1)
        for _ in range(50):
            _, _, terminated, truncated, info = wrapped.step(np.zeros(3, np.float32))  # a policy that never moves
            assert info["intervened"]
            if terminated or truncated:
                break
        assert terminated and info["succeeded"]
    finally:
        wrapped.close()


def test_no_device_means_no_wrapper():
    env = make_sim_env("reach")
    try:
        assert make_intervention_device(InterventionConfig(device="none"), "reach", env) is None
    finally:
        env.close()


def test_random_rule_rate_matches_probability():
    env = make_sim_env("reach")
    try:
        config = InterventionConfig(device="scripted", rule="random", probability=0.2, takeover_steps=1, max_per_episode=10_000)
        op = ScriptedOperator(config, make_expert("reach", env.config.action), seed=3)
        env.reset(seed=0)
        hits = sum(op.intervene(env.robot_state, np.zeros(3, np.float32)) is not None for _ in range(2000))
        assert 300 < hits < 500  # 400 expected
    finally:
        env.close()


class _LabellingDevice:
    """Never takes over; labels the episode on the step given."""

    def __init__(self, label, on_step: int, with_label_method: bool = True):
        self._verdict, self._on_step, self.steps = label, on_step, 0
        if not with_label_method:
            self.label = None  # type: ignore[assignment]

    def reset(self) -> None:
        self.steps = 0

    def intervene(self, state, policy_action):
        self.steps += 1
        return None

    def label(self):
        return self._verdict if self.steps == self._on_step else None

    def close(self) -> None:
        pass


def test_a_human_label_ends_the_episode_with_the_operators_verdict():
    for verdict, reward in (("success", 1.0), ("failure", 0.0)):
        wrapped = InterventionWrapper(make_sim_env("reach"), _LabellingDevice(verdict, on_step=3))
        try:
            wrapped.reset(seed=0)
            for step in range(1, 4):
                _, r, terminated, truncated, info = wrapped.step(np.zeros(3, np.float32))
                assert not info["intervened"]
                if step < 3:
                    assert not terminated and info["human_label"] is None and r == 0.0
            assert terminated and not truncated and r == reward
            assert info["human_label"] == verdict and info["succeeded"] is (verdict == "success")
        finally:
            wrapped.close()


def test_label_is_optional_and_the_scripted_operator_never_labels():
    env = make_sim_env("reach")
    try:
        wrapped = InterventionWrapper(env, _LabellingDevice("success", on_step=1, with_label_method=False))
        wrapped.reset(seed=0)
        _, _, terminated, _, info = wrapped.step(np.zeros(3, np.float32))
        assert not terminated and info["human_label"] is None
        op = ScriptedOperator(InterventionConfig(device="scripted"), make_expert("reach", env.config.action))
        assert op.label() is None
    finally:
        env.close()
