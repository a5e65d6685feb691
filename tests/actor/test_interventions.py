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


# ---------------------------------------------------------------------------------- operator quality


class _TodaysOperator:
    """The scripted operator as it was before `operator_quality` existed (a frozen reference)."""

    def __init__(self, config, expert, seed=0):
        self.config, self.expert = config, expert
        self._rng = np.random.default_rng(seed)
        self._cos_threshold = float(np.cos(np.deg2rad(config.drift_angle_deg)))
        self.reset()

    def reset(self):
        self.expert.reset()
        self._drifting = self._driving_left = self.takeovers = 0

    def intervene(self, state, policy_action):
        expert_action = self.expert.act(state)
        if self._driving_left > 0:
            self._driving_left -= 1
            return expert_action
        if self.takeovers >= self.config.max_per_episode:
            return None
        if self._wants_takeover(expert_action, policy_action):
            self.takeovers += 1
            self._drifting = 0
            self._driving_left = self.config.takeover_steps - 1
            return expert_action
        return None

    def _wants_takeover(self, expert_action, policy_action):
        if self.config.rule == "random":
            return bool(self._rng.random() < self.config.probability)
        e, p = expert_action[:3], policy_action[:3]
        e_norm, p_norm = np.linalg.norm(e), np.linalg.norm(p)
        if e_norm < 0.1:
            drifting = False
        elif p_norm < 0.1:
            drifting = True
        else:
            drifting = float(e @ p) / (e_norm * p_norm) < self._cos_threshold
        self._drifting = self._drifting + 1 if drifting else 0
        return self._drifting >= self.config.patience_steps


def _away_from_goal(state) -> np.ndarray:
    away = -(quat_to_matrix(state.tcp_quaternion_wxyz).T @ (state.object_state[:3] - state.tcp_position_m))
    return np.clip(away / np.linalg.norm(away), -1, 1).astype(np.float32)


def _scripted_run(operator, steps: int = 100, seed: int = 0, policy=None):
    """The operator's answers (None or its action) over `steps` reach steps, driven through the
    wrapper by a policy that drifts: away from the goal, with bursts toward it (default)."""
    env = make_sim_env("reach")
    answers = []
    try:
        env.reset(seed=seed)
        operator.reset()
        for step in range(steps):
            state = env.robot_state
            if policy is not None:
                action = policy(step, state)
            else:
                action = -_away_from_goal(state) if step % 17 < 4 else _away_from_goal(state)
            answer = operator.intervene(state, action)
            answers.append(None if answer is None else np.array(answer))
            # What the wrapper would execute.
            _, _, terminated, truncated, _ = env.step(action if answer is None else answer)
            if terminated or truncated:
                env.reset(seed=seed + step + 1)
                operator.reset()
    finally:
        env.close()
    return answers


def _reach_action():
    env = make_sim_env("reach")
    try:
        return env.config.action
    finally:
        env.close()


def _same_answers(a, b) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and x.dtype == y.dtype and np.array_equal(x, y))
        for x, y in zip(a, b, strict=True))


def test_quality_one_is_todays_operator_exactly():
    action = _reach_action()
    # Large maxima, so a quality-1 operator that leaked any of them would show it.
    flaws = {"operator_quality": 1.0, "operator_noise_std_max": 2.0, "operator_delay_steps_max": 50, "operator_bias_max": 2.0}
    for rule in ("drift", "random"):
        base = {"device": "scripted", "rule": rule, "probability": 0.1, "max_per_episode": 8, "takeover_steps": 5}
        today = _scripted_run(_TodaysOperator(InterventionConfig(**base), make_expert("reach", action), seed=4))
        default = _scripted_run(ScriptedOperator(InterventionConfig(**base), make_expert("reach", action), seed=4))
        explicit = _scripted_run(ScriptedOperator(InterventionConfig(**base, **flaws), make_expert("reach", action), seed=4))
        assert sum(a is not None for a in today) >= 10, rule  # the run does exercise takeovers
        assert _same_answers(default, today), rule
        assert _same_answers(explicit, today), rule


class _ConstantExpert:
    """Always the same action (xyz, then the gripper)."""

    def __init__(self, action):
        from hilrl.transport.action import ActionConfig

        self.action_config = ActionConfig(gripper=True)
        self._action = np.asarray(action, np.float32)

    def reset(self) -> None:
        pass

    def act(self, state):
        return self._action.copy()


def test_low_quality_adds_noise_of_the_configured_std_and_keeps_the_gripper_and_bounds():
    quality, std_max = 0.3, 0.5
    expert_action = np.array([0.0, 0.0, 0.9, 1.0], np.float32)  # z near the bound: clipping shows
    config = InterventionConfig(device="scripted", rule="random", probability=1.0, takeover_steps=1_000_000,
                                max_per_episode=1, operator_quality=quality, operator_noise_std_max=std_max,
                                operator_bias_max=0.0)  # no offset: the difference is the noise alone
    op = ScriptedOperator(config, _ConstantExpert(expert_action), seed=5)
    env = make_sim_env("reach")
    state = env.robot_state
    env.close()
    actions = []
    for _ in range(3000):
        a = op.intervene(state, np.zeros(4, np.float32))
        if a is not None:
            actions.append(a)
    actions = np.array(actions)
    assert len(actions) > 2900 and actions.dtype == np.float32
    diff = actions - expert_action
    expected = std_max * (1 - quality)
    measured = diff[:, :2].std(axis=0)  # x and y: far from the bounds, unclipped
    assert np.all(np.abs(measured - expected) < 0.3 * expected), (measured, expected)
    assert np.all(actions[:, -1] == 1.0)  # the gripper is the expert's
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions[:, 2] == 1.0).mean() > 0.2  # noise past the bound was clipped, not dropped


def test_a_late_operator_starts_its_first_takeover_patience_plus_delay_steps_in():
    action = _reach_action()
    never_moves = lambda step, state: np.zeros(3, np.float32)  # noqa: E731  (always "wrong": the expert moves)
    for quality, delay in ((1.0, 0), (0.3, 4), (0.5, 3), (0.0, 6)):  # floor(6 * (1 - q) + 0.5)
        config = InterventionConfig(device="scripted", rule="drift", patience_steps=3, takeover_steps=4,
                                    max_per_episode=1, operator_quality=quality)
        op = ScriptedOperator(config, make_expert("reach", action), seed=0)
        assert op.delay_steps == delay
        answers = _scripted_run(op, steps=20, policy=never_moves)
        first = next(i for i, a in enumerate(answers) if a is not None)
        assert first == 3 + delay - 1, (quality, first)  # 0-based: the (patience + delay)-th step


def test_a_late_operator_under_the_random_rule_starts_delay_steps_after_it_fires():
    action = _reach_action()
    base = {"device": "scripted", "rule": "random", "probability": 0.3, "takeover_steps": 1, "max_per_episode": 1}
    prompt = _scripted_run(ScriptedOperator(InterventionConfig(**base), make_expert("reach", action), seed=2), steps=40)
    late_op = ScriptedOperator(InterventionConfig(**base, operator_quality=0.5), make_expert("reach", action), seed=2)
    late = _scripted_run(late_op, steps=40)
    fired = next(i for i, a in enumerate(prompt) if a is not None)
    assert [i for i, a in enumerate(late) if a is not None] == [fired + late_op.delay_steps]


def test_same_seed_same_operator_different_seed_different_operator():
    action = _reach_action()
    config = InterventionConfig(device="scripted", rule="drift", max_per_episode=8, operator_quality=0.4)

    def run(seed):
        return _scripted_run(ScriptedOperator(config, make_expert("reach", action), seed=seed), steps=60)

    a, b, c = run(7), run(7), run(8)
    assert sum(x is not None for x in a) >= 10
    assert _same_answers(a, b)
    assert not _same_answers(a, c)


def test_operator_quality_settings_are_validated():
    import pytest

    for kwargs, name in (({"operator_quality": 1.5}, "operator_quality"), ({"operator_quality": -0.1}, "operator_quality"),
                         ({"operator_quality": float("nan")}, "operator_quality"),
                         ({"operator_noise_std_max": -1.0}, "operator_noise_std_max"),
                         ({"operator_delay_steps_max": -1}, "operator_delay_steps_max"),
                         ({"operator_bias_max": 3.0}, "operator_bias_max")):
        with pytest.raises(ValueError, match=rf"{name} must be in \["):
            InterventionConfig(**kwargs)
    InterventionConfig(operator_quality=0.0)
    InterventionConfig(operator_quality=1.0)


def test_a_low_quality_operator_needs_to_know_the_gripper_for_an_expert_without_action_config():
    import pytest

    class Bare:
        def reset(self):
            pass

        def act(self, state):
            return np.zeros(3, np.float32)

    ScriptedOperator(InterventionConfig(device="scripted"), Bare())  # quality 1: nothing to know
    with pytest.raises(ValueError, match="gripper"):
        ScriptedOperator(InterventionConfig(device="scripted", operator_quality=0.5), Bare())
    ScriptedOperator(InterventionConfig(device="scripted", operator_quality=0.5), Bare(), gripper=False)


def test_a_poor_operator_driving_whole_episodes_succeeds_less_often_than_the_expert():
    env = make_sim_env("pick_cube")
    n = env.action_space.shape[0]
    successes = {}
    try:
        for quality in (1.0, 0.2):
            config = InterventionConfig(device="scripted", rule="drift", patience_steps=1, takeover_steps=1000,
                                        max_per_episode=1000, operator_quality=quality)
            wrapped = InterventionWrapper(env, ScriptedOperator(config, make_expert("pick_cube", env.config.action), seed=0))
            successes[quality] = 0
            for episode in range(8):
                wrapped.reset(seed=episode)
                terminated = truncated = False
                while not (terminated or truncated):
                    _, _, terminated, truncated, info = wrapped.step(np.zeros(n, np.float32))  # a policy that never moves
                successes[quality] += int(terminated and info["succeeded"])
    finally:
        env.close()
    assert successes[1.0] >= 7, successes
    assert successes[0.2] <= successes[1.0] - 3, successes
