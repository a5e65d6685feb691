"""The simulated arm on its own: real MuJoCo physics through `SimBackend`, no server, no env.

These check what the sim promises in robot_server/sim/*.py and DESIGN.md ("Simulated robot"):
the impedance controller settles on targets, the reference-error clip bounds contact forces,
a seed fixes the whole trajectory, the gripper moves, controller errors latch until cleared, and
the cameras render headless.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (conftest.py does it too)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hilrl.robot_server.config import SimConfig  # noqa: E402
from hilrl.robot_server.sim.backend import SimBackend  # noqa: E402
from hilrl.robot_server.sim.scene import (  # noqa: E402
    CUBE_HALF_SIZE_M,
    GRIPPER_FORCE_LIMIT_N,
    JOINT_LIMITS_RAD,
)
from hilrl.transport.robot_messages import ImpedanceParams  # noqa: E402
from hilrl.transport.spatial import orientation_error, quat_mul, rotvec_to_quat  # noqa: E402

PERIOD_S = 0.1  # one control period at the shipped 10 Hz


def _run(backend: SimBackend, seconds: float):
    """Advance in control periods; returns the state after each one."""
    states = []
    for _ in range(int(round(seconds / PERIOD_S))):
        backend.advance(PERIOD_S)
        states.append(backend.state())
    return states


# ---------------------------------------------------------------------------------- impedance


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "task, offset_m, rotvec_rad",
    [
        ("reach", (0.04, -0.03, -0.025), (0.15, 0.10, -0.15)),  # 5.6 cm, 0.23 rad
        ("pick_cube", (-0.035, 0.03, 0.03), (-0.1, 0.2, 0.1)),  # 5.5 cm, 0.24 rad
    ],
)
def test_impedance_controller_settles_on_a_target(task, offset_m, rotvec_rad):
    backend = SimBackend(task)
    start = backend.state()
    target_pos = start.tcp_position_m + np.array(offset_m)
    target_quat = quat_mul(rotvec_to_quat(np.array(rotvec_rad)), start.tcp_quaternion_wxyz)
    assert 0.05 <= np.linalg.norm(offset_m) <= 0.06
    assert 0.2 <= np.linalg.norm(rotvec_rad) <= 0.3
    backend.set_target(target_pos, target_quat)

    states = _run(backend, 3.0)

    first, last = states[0], states[-1]
    # It really moved there (not already there): a tenth of a second in it is still far away...
    assert np.linalg.norm(first.tcp_position_m - target_pos) > 0.02
    # ...and within a few simulated seconds it has settled, to within 2 mm and 0.02 rad, at rest.
    assert np.linalg.norm(last.tcp_position_m - target_pos) < 0.002
    assert np.linalg.norm(orientation_error(target_quat, last.tcp_quaternion_wxyz)) < 0.02
    assert np.linalg.norm(last.tcp_linear_velocity_m_per_s) < 0.005
    assert np.linalg.norm(last.tcp_angular_velocity_rad_per_s) < 0.02
    assert last.status == "ok" and last.errors == []
    np.testing.assert_allclose(last.target_position_m, target_pos)
    # Free motion: no external force reported.
    assert np.linalg.norm(last.tcp_force_n) < 1.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stiffness, clip_m", [(2000.0, 0.01), (2000.0, 0.005), (1000.0, 0.01)])
def test_pressing_into_the_table_is_bounded_by_stiffness_times_clip(stiffness, clip_m):
    params = ImpedanceParams(translational_stiffness_n_per_m=stiffness, translational_clip_m=clip_m)
    backend = SimBackend("reach", impedance=params)
    start = backend.state()
    # Table top is z = 0: aim 10 cm into it. Unclipped, that is a ~0.35 m error (hundreds of N).
    target = np.array([start.tcp_position_m[0], start.tcp_position_m[1], -0.10])
    backend.set_target(target, start.tcp_quaternion_wxyz)

    _run(backend, 5.0)  # descend (speed ~ K clip / D) and come to rest on the table
    tail = _run(backend, 1.0)

    expected = stiffness * clip_m
    forces = np.array([s.tcp_force_n for s in tail])
    fz = forces[:, 2]
    # The table pushes up on the TCP (external wrench, base frame) with K * clip, steadily.
    np.testing.assert_allclose(fz, expected, rtol=0.1)
    assert np.ptp(fz) < 0.05 * expected
    assert np.abs(forces[:, :2]).max() < 0.2 * expected
    last = tail[-1]
    assert last.tcp_position_m[2] > 0.0  # resting on the table, not through it
    assert np.linalg.norm(last.tcp_linear_velocity_m_per_s) < 0.005
    assert last.errors == []


# ---------------------------------------------------------------------------------- determinism


def _offset_start(backend: SimBackend, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A start pose a little off home, drawn from `seed` (the service draws real ones)."""
    rng = np.random.default_rng(seed)
    rotation = rotvec_to_quat(rng.uniform(-0.05, 0.05, 3))
    return backend.home_position_m + rng.uniform(-0.02, 0.02, 3), quat_mul(rotation, backend.home_quaternion_wxyz)


def _trajectory(backend: SimBackend, seed: int, read_state_every_step: bool = False):
    """go_home(seed) + a fixed sequence of targets and gripper commands; joint positions per step."""
    backend.go_home(*_offset_start(backend, seed), seed=seed)
    start = backend.state()
    joints = [start.joint_positions_rad]
    for k in range(15):
        backend.set_target(
            start.tcp_position_m + [0.004 * k, -0.002 * k, -0.008 * k], start.tcp_quaternion_wxyz
        )
        backend.set_gripper(1.0 if k < 8 else 0.0)
        backend.advance(PERIOD_S)
        if read_state_every_step:
            backend.state()
        joints.append(backend.data.qpos[:7].copy())
    return np.array(joints), start


@pytest.mark.timeout(60)
def test_same_seed_gives_a_bit_identical_trajectory():
    a_joints, a_start = _trajectory(SimBackend("pick_cube"), seed=11)
    # A second, separately built backend (and reading the state in between, which runs mj_forward)
    # must not change a single bit.
    b_joints, b_start = _trajectory(SimBackend("pick_cube"), seed=11, read_state_every_step=True)
    assert np.array_equal(a_joints, b_joints)
    assert np.array_equal(a_start.object_state, b_start.object_state)
    # The arm did move along the way.
    assert np.abs(a_joints[-1] - a_joints[0]).max() > 0.05


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", ["reach", "pick_cube", "peg_insert"])
def test_different_seed_gives_a_different_start_and_object_placement(task):
    backend = SimBackend(task)
    backend.go_home(*_offset_start(backend, 1), seed=1)
    one = backend.state()
    backend.go_home(*_offset_start(backend, 2), seed=2)
    two = backend.state()
    assert np.linalg.norm(one.tcp_position_m - two.tcp_position_m) > 1e-4
    assert not np.array_equal(one.joint_positions_rad, two.joint_positions_rad)
    assert np.linalg.norm(one.object_state[:3] - two.object_state[:3]) > 1e-3
    # Seed 1 again reproduces the first placement exactly.
    backend.go_home(*_offset_start(backend, 1), seed=1)
    again = backend.state()
    assert np.array_equal(again.object_state, one.object_state)
    assert np.array_equal(again.joint_positions_rad, one.joint_positions_rad)


# ---------------------------------------------------------------------------------- gripper


@pytest.mark.timeout(60)
def test_gripper_closes_and_opens_with_nothing_between_the_fingers():
    backend = SimBackend("reach")
    assert backend.state().gripper_opening > 0.98
    backend.set_gripper(0.0)
    closed = _run(backend, 1.0)[-1]
    assert closed.gripper_opening < 0.02
    backend.set_gripper(1.0)
    opened = _run(backend, 1.0)[-1]
    assert opened.gripper_opening > 0.98
    # Half way: the position actuators track the command.
    backend.set_gripper(0.5)
    half = _run(backend, 1.0)[-1]
    assert half.gripper_opening == pytest.approx(0.5, abs=0.03)


@pytest.mark.timeout(60)
def test_gripper_grasps_the_cube_within_its_force_limit():
    backend = SimBackend("pick_cube")
    backend.go_home(backend.home_position_m, backend.home_quaternion_wxyz, seed=1)
    start = backend.state()
    cube = start.object_state
    down = start.tcp_quaternion_wxyz
    backend.set_target(np.array([cube[0], cube[1], 0.15]), down)
    _run(backend, 1.5)
    backend.set_target(np.array([cube[0], cube[1], CUBE_HALF_SIZE_M - 0.005]), down)
    _run(backend, 2.0)
    backend.set_gripper(0.0)
    grasping = _run(backend, 1.0)[-1]
    # The fingers stop at the cube (4 cm of the 8 cm stroke), not through it...
    assert grasping.gripper_opening == pytest.approx(2 * CUBE_HALF_SIZE_M / 0.08, abs=0.06)
    finger_forces = backend.data.actuator_force[7:9]
    # ...squeezing it, with at most the force limit per finger.
    assert np.all(np.abs(finger_forces) > 1.0)
    assert np.all(np.abs(finger_forces) <= GRIPPER_FORCE_LIMIT_N + 1e-6)
    backend.set_target(np.array([cube[0], cube[1], 0.15]), down)
    lifted = _run(backend, 2.0)[-1]
    assert lifted.task_success
    assert lifted.object_state[2] > CUBE_HALF_SIZE_M + 0.06


# ---------------------------------------------------------------------------------- error latch


@pytest.mark.timeout(60)
def test_joint_limit_error_latches_until_cleared():
    backend = SimBackend("reach")
    start = backend.state()
    # A target at the arm's own base folds the elbow (joint 4) into its limit.
    backend.set_target(np.array([0.0, 0.0, 0.05]), start.tcp_quaternion_wxyz)
    states = _run(backend, 3.0)
    failed = next((s for s in states if s.errors), None)
    assert failed is not None, "driving joint 4 into its limit raised no controller error"
    assert failed.status == "error"
    assert any(e.startswith("joint_limit") and "joint 4" in e for e in failed.errors)
    q4 = failed.joint_positions_rad[3]
    assert min(abs(q4 - JOINT_LIMITS_RAD[3, 0]), abs(q4 - JOINT_LIMITS_RAD[3, 1])) < 0.02
    # The latch made the arm hold where it was (target = measured pose), not chase the target.
    assert np.linalg.norm(failed.target_position_m - np.array([0.0, 0.0, 0.05])) > 0.1

    # The error stays latched: more time, even going home (away from the limit), does not clear it.
    _run(backend, 0.5)
    backend.go_home(backend.home_position_m, backend.home_quaternion_wxyz, seed=0)
    after_home = _run(backend, 0.5)[-1]
    assert after_home.status == "error"
    assert any(e.startswith("joint_limit") for e in after_home.errors)
    assert np.all(
        np.abs(after_home.joint_positions_rad[:, None] - JOINT_LIMITS_RAD) > 0.1
    )  # home is clear

    backend.clear_errors()
    cleared = backend.state()
    assert cleared.status == "ok" and cleared.errors == []
    assert _run(backend, 0.5)[-1].errors == []  # and it does not come back by itself at home


@pytest.mark.timeout(60)
def test_a_brief_joint_limit_excursion_within_one_lockstep_period_latches():
    backend = SimBackend("reach")
    assert backend.state().errors == []
    backend.data.qpos[0] = JOINT_LIMITS_RAD[0, 1] + 0.01  # joint 1 past its upper limit
    backend.advance(PERIOD_S)  # one whole lockstep period (50 physics steps) in one call
    state = backend.state()
    # The limit constraint and the controller pull the joint back inside within the period, but
    # the reflex fired at the step it happened, as it would have with the realtime clock.
    assert state.joint_positions_rad[0] < JOINT_LIMITS_RAD[0, 1] - 0.01
    assert state.status == "error"
    assert any(e.startswith("joint_limit") and "joint 1" in e for e in state.errors)
    backend.clear_errors()
    assert backend.state().errors == []


@pytest.mark.timeout(60)
def test_diverged_physics_latches_an_error_and_resets_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT to the working directory
    backend = SimBackend("reach")
    home = backend.state()
    backend.data.qvel[1] = np.nan
    backend.advance(PERIOD_S)
    state = backend.state()
    # MuJoCo resets a diverged state itself; that must not pass silently as "ok".
    assert state.status == "error"
    assert any(e.startswith("physics_diverged") for e in state.errors)
    assert np.isfinite(state.joint_positions_rad).all()
    np.testing.assert_allclose(state.tcp_position_m, home.tcp_position_m, atol=0.005)
    backend.clear_errors()
    backend.advance(PERIOD_S)
    assert backend.state().errors == []


# ---------------------------------------------------------------------------------- cameras


@pytest.mark.timeout(60)
def test_cameras_render_uint8_frames_of_the_configured_size():
    backend = SimBackend("pick_cube", sim=SimConfig(image_height=96, image_width=64))
    try:
        frames, time_s = backend.render(["front", "wrist"])
        assert frames.dtype == np.uint8
        assert frames.shape == (2, 96, 64, 3)
        assert time_s == pytest.approx(backend.state().robot_time_s)
        front, wrist = frames.astype(np.int16)
        assert front.std() > 5 and wrist.std() > 5  # real pictures, not a blank buffer
        assert np.abs(front - wrist).mean() > 5  # two different viewpoints
        # A single camera gives the same picture as in the pair.
        (only_wrist,), _ = backend.render(["wrist"])
        assert np.abs(only_wrist.astype(np.int16) - wrist).mean() < 1.0

        # The front camera sees the arm move.
        state = backend.state()
        backend.set_target(state.tcp_position_m + [0.0, 0.1, -0.05], state.tcp_quaternion_wxyz)
        _run(backend, 2.0)
        (moved,), _ = backend.render(["front"])
        assert np.abs(moved.astype(np.int16) - front).mean() > 0.5

        with pytest.raises(ValueError, match="top"):
            backend.render(["front", "top"])
    finally:
        backend.close()
