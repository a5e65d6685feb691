"""The gymnasium environment over the simulated arm: API conformance, space contract, action
clipping, time limits, bad actions, success, and the same env over a real robot server process.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (conftest.py does it too)

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import hilrl.actor  # noqa: E402, F401  (registers the hilrl/Sim* ids)
from hilrl.actor.make import make_env, make_sim_env  # noqa: E402
from hilrl.configs import config_path
from hilrl.robot_server.process import start_server_process  # noqa: E402
from hilrl.transport.spatial import quat_to_matrix  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SIM_IDS = ["hilrl/SimReach-v0", "hilrl/SimPickCube-v0", "hilrl/SimPegInsert-v0"]
IMAGE_SHAPE = (128, 128, 3)  # the shipped configs' camera size


def _make(env_id: str, **kwargs) -> gym.Env:
    env = gym.make(env_id, **kwargs)
    return env


def _base_push(env, direction_base: np.ndarray) -> np.ndarray:
    """Normalised action that moves the TCP along `direction_base` (base frame) at full scale."""
    raw = env.unwrapped
    rot = quat_to_matrix(raw.robot_state.tcp_quaternion_wxyz)
    action = np.zeros(raw.action_space.shape, dtype=np.float32)
    action[:3] = np.clip(rot.T @ direction_base, -1.0, 1.0)
    return action


# ---------------------------------------------------------------------------------- API


@pytest.mark.timeout(120)
@pytest.mark.parametrize("images", [False, True], ids=["state", "images"])
@pytest.mark.parametrize("env_id", SIM_IDS)
def test_check_env_passes(env_id, images):
    env = _make(env_id, images=images)
    try:
        with warnings.catch_warnings():
            # Unbounded float state is by design (forces, velocities); everything else must pass.
            warnings.filterwarnings(
                "ignore", message=".*Box observation space (minimum|maximum) value is"
            )
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "env_id, n_state, n_action",
    [
        ("hilrl/SimReach-v0", 6 + 6 + 3, 3),  # tcp_pose, tcp_twist, object; xyz
        (
            "hilrl/SimPickCube-v0",
            6 + 6 + 1 + 3,
            4,
        ),  # tcp_pose, tcp_twist, gripper, object; xyz + gripper
        ("hilrl/SimPegInsert-v0", 6 + 6 + 6 + 3, 3),  # tcp_pose, tcp_twist, tcp_wrench, object; xyz
    ],
)
def test_observation_and_action_space_contract(env_id, n_state, n_action):
    env = _make(env_id, images=True)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        assert isinstance(obs_space, gym.spaces.Dict)
        assert set(obs_space.spaces) == {"state", "front", "wrist"}
        assert obs_space["state"].shape == (n_state,) and obs_space["state"].dtype == np.float32
        for cam in ("front", "wrist"):
            assert obs_space[cam].shape == IMAGE_SHAPE and obs_space[cam].dtype == np.uint8
        assert isinstance(act_space, gym.spaces.Box)
        assert act_space.shape == (n_action,) and act_space.dtype == np.float32
        np.testing.assert_array_equal(act_space.low, -1.0)
        np.testing.assert_array_equal(act_space.high, 1.0)

        obs, info = env.reset(seed=0)
        for o in (obs, env.step(act_space.sample())[0]):
            assert set(o) == {"state", "front", "wrist"}
            assert o["state"].dtype == np.float32 and o["state"].shape == (n_state,)
            assert np.isfinite(o["state"]).all()
            for cam in ("front", "wrist"):
                assert o[cam].dtype == np.uint8 and o[cam].shape == IMAGE_SHAPE
            assert obs_space.contains(o)
        assert not np.array_equal(obs["front"], obs["wrist"])
        assert {"succeeded", "intervened", "robot_time_s", "robot_errors"} <= set(info)

        # State layout: tcp_pose first, relative to the reset pose (zero at reset); the object block
        # last, relative to the reset TCP position.
        raw = env.unwrapped
        obs, _ = env.reset(seed=1)
        np.testing.assert_allclose(obs["state"][:6], 0.0, atol=1e-5)
        expected_object = raw.robot_state.object_state[:3] - raw.robot_state.tcp_position_m
        np.testing.assert_allclose(obs["state"][-3:], expected_object, atol=1e-5)
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_same_seed_same_episode():
    def episode(seed):
        env = _make("hilrl/SimPickCube-v0")
        try:
            env.action_space.seed(seed)
            obs, _ = env.reset(seed=seed)
            states = [obs["state"]]
            for _ in range(10):
                states.append(env.step(env.action_space.sample())[0]["state"])
            return np.array(states)
        finally:
            env.close()

    a, b, c = episode(5), episode(5), episode(6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------------------------- actions


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "direction, axis, bound",
    [((1.0, 0.0, 0.0), 0, "max"), ((0.0, -1.0, 0.0), 1, "min"), ((0.0, 0.0, -1.0), 2, "min")],
)
def test_actions_pushing_out_of_the_workspace_are_clipped(direction, axis, bound):
    env = _make("hilrl/SimReach-v0", overrides=["env.max_episode_steps=1000"])
    try:
        raw = env.unwrapped
        env.reset(seed=0)
        limit = (raw.workspace_max_m if bound == "max" else raw.workspace_min_m)[axis]
        sign = 1.0 if bound == "max" else -1.0
        for _ in range(40):  # 40 x 3 cm: far beyond the box
            env.step(_base_push(env, np.array(direction)))
            state = raw.robot_state
            # The accepted target never leaves the box. The TCP follows it to the wall; arriving
            # at full speed (~0.2 m/s) the underdamped impedance controller (the real arm's gains)
            # overshoots by < 1 cm before settling back.
            assert sign * (state.target_position_m[axis] - limit) <= 1e-9
            assert sign * (state.tcp_position_m[axis] - limit) <= 0.01
        assert abs(state.tcp_position_m[axis] - limit) < 0.001  # settled at the wall
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_the_actor_clips_to_its_own_box_inside_the_servers():
    # The server's box allows x up to 0.70; the env's own (client-side) box stops at 0.55.
    env = _make(
        "hilrl/SimReach-v0",
        overrides=[
            "env.workspace_min_m=[0.30, -0.25, 0.05]",
            "env.workspace_max_m=[0.55, 0.25, 0.35]",
        ],
    )
    try:
        raw = env.unwrapped
        assert raw.server_info.workspace_max_m[0] > 0.6
        env.reset(seed=0)
        for _ in range(30):
            env.step(_base_push(env, np.array([1.0, 0.0, 0.0])))
            assert raw.robot_state.target_position_m[0] <= 0.55 + 1e-9
        assert raw.robot_state.tcp_position_m[0] == pytest.approx(0.55, abs=0.005)
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_time_limit_truncates_and_never_terminates():
    env = _make("hilrl/SimPickCube-v0", overrides=["env.max_episode_steps=5"])
    try:
        env.reset(seed=0)
        zero = np.zeros(env.action_space.shape, dtype=np.float32)  # the cube stays on the table
        for step in range(1, 6):
            _, reward, terminated, truncated, info = env.step(zero)
            assert terminated is False and reward == 0.0 and not info["succeeded"]
            assert truncated is (step == 5)
        assert info["robot_time_s"] == pytest.approx(0.5, abs=1e-6)  # 5 lockstep periods of 0.1 s
        # A new episode starts from step 0 again.
        env.reset(seed=1)
        assert env.step(zero)[3] is False
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_bad_actions_raise():
    env = _make("hilrl/SimReach-v0")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="NaN"):
            env.step(np.array([0.0, np.nan, 0.0], dtype=np.float32))
        with pytest.raises(ValueError, match="inf"):
            env.step(np.array([np.inf, 0.0, 0.0], dtype=np.float32))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(4, dtype=np.float32))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(2, dtype=np.float32))
        # A refused action changed nothing: the env still steps normally.
        _, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.float32))
        assert info["robot_errors"] == []
        assert np.isfinite(env.unwrapped.robot_state.tcp_position_m).all()
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_step_before_reset_raises():
    env = make_env(config_path("sim_reach"))
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(3, dtype=np.float32))
    finally:
        env.close()


# ---------------------------------------------------------------------------------- success


def _drive_to_goal(env, max_steps: int):
    """Proportional control on the reach goal until the episode ends; returns the last step."""
    raw = env.unwrapped
    scale = raw.config.action.translation_scale_m
    rewards = []
    for _ in range(max_steps):
        state = raw.robot_state
        gap = state.object_state[:3] - state.tcp_position_m
        rot = quat_to_matrix(state.tcp_quaternion_wxyz)
        action = np.clip(rot.T @ gap / scale, -1.0, 1.0).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    return obs, rewards, terminated, truncated, info


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reaching_the_goal_terminates_with_the_success_reward(seed):
    env = _make("hilrl/SimReach-v0", overrides=["env.success_reward=2.5"])
    try:
        _, info = env.reset(seed=seed)
        raw = env.unwrapped
        assert not info["succeeded"]
        start_gap = np.linalg.norm(
            raw.robot_state.object_state[:3] - raw.robot_state.tcp_position_m
        )
        assert start_gap > 0.02  # not already there
        _, rewards, terminated, truncated, info = _drive_to_goal(env, raw.config.max_episode_steps)
        assert terminated is True and truncated is False
        assert info["succeeded"] is True
        assert rewards[-1] == 2.5
        assert all(r == 0.0 for r in rewards[:-1])
        gap = np.linalg.norm(raw.robot_state.object_state[:3] - raw.robot_state.tcp_position_m)
        assert gap < 0.02
    finally:
        env.close()


# ---------------------------------------------------------------------------------- server


@pytest.fixture
def reach_server(tmp_path):
    server = start_server_process("reach", config=config_path("sim_reach"), log_path=tmp_path / "robot_server.log")
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"robot server exited with {code}:\n{server.log_path.read_text()[-3000:]}"


@pytest.mark.timeout(90)
def test_env_runs_over_a_robot_server_process(reach_server):
    overrides = [
        "env.connection=server",
        f"robot_server.address=tcp://127.0.0.1:{reach_server.port}",
    ]
    env = make_env(config_path("sim_reach"), [*overrides, "env.max_episode_steps=8"])
    local = make_env(config_path("sim_reach"), ["env.max_episode_steps=8"])
    try:
        assert type(env.robot).__name__ == "RobotClient"
        assert env.server_info.task == "reach" and env.server_info.clock == "lockstep"
        obs, info = env.reset(seed=3)
        local_obs, _ = local.reset(seed=3)
        assert env.observation_space.contains(obs)
        rng = np.random.default_rng(0)
        for step in range(1, 9):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            local_obs, *_ = local.step(action)
            assert env.observation_space.contains(obs)
            assert info["robot_time_s"] == pytest.approx(0.1 * step, abs=1e-6)
            assert info["robot_errors"] == []
            # Lockstep over the wire is the very same simulation as in-process, to the bit.
            assert np.array_equal(obs["state"], local_obs["state"])
            if terminated:
                break
        assert terminated or truncated
        assert truncated is (not terminated)
    finally:
        env.close()
        local.close()


def test_reaching_the_configured_success_position_ends_the_episode_with_the_reward():
    """A real cell's geometric success: the TCP within success_tolerance_m of success_position_m."""
    push = np.array([0.0, 0.0, 1.0], np.float32)
    probe = make_sim_env("reach", overrides=["env.reset_position_noise_m=0.0"])
    probe.reset(seed=0)
    for _ in range(8):
        probe.step(push)
    goal = probe.robot_state.tcp_position_m.copy()  # where 8 steps of this action lead
    start = probe.reset(seed=0) and probe.robot_state.tcp_position_m.copy()
    probe.close()
    assert np.linalg.norm(goal - start) > 0.05
    env = make_sim_env("reach", overrides=[
        f"env.success_position_m=[{goal[0]}, {goal[1]}, {goal[2]}]", "env.success_tolerance_m=0.01",
        "env.reset_position_noise_m=0.0",
    ])
    try:
        env.reset(seed=0)
        steps, terminated, reward, info = 0, False, 0.0, {}
        while not terminated and steps < 20:
            _, reward, terminated, _, info = env.step(push)
            steps += 1
        assert terminated and info["succeeded"] and reward == env.config.success_reward
        assert 5 <= steps <= 9  # not before the region is reached
        assert np.linalg.norm(env.robot_state.tcp_position_m - goal) <= 0.01
    finally:
        env.close()
