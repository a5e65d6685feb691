"""The safety envelope's bypasses, each as a regression test (hilrl.robot_server.safety), on the real
simulated arm through the same `RobotService` a server process runs:

- SetImpedance was unbounded (a 10 m clip and 1e7 N/m passed straight to the controller; NaN too)
  and accepted while errors were latched;
- no Cartesian speed cap: a stiff controller drove the TCP at 2.1 m/s;
- GoHome randomisation ignored the box (noise 0.5 m put the TCP outside it; 5 m latched a joint);
- a home outside the box turned every reset into a jump into the box;
- an operator stop did not exist.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.inprocess import InProcessRobot
from hilrl.robot_server.interface import RobotServerError
from hilrl.robot_server.safety import SafetyConfig
from hilrl.transport.robot_messages import ErrorReply, GoHome, ImpedanceParams, SetImpedance
from hilrl.transport.spatial import quat_mul, rotvec_to_quat

pytestmark = pytest.mark.timeout(120)

CONTROL_RATE_HZ = 100.0  # lockstep periods of 10 ms: the speed is sampled finely
SPEED_TOLERANCE_M_PER_S = 0.03  # the arm lags its capped reference and may overshoot it a little


def robot(task: str = "reach", **safety) -> InProcessRobot:
    config = ServerConfig(control_rate_hz=CONTROL_RATE_HZ, safety=SafetyConfig(**safety))
    return InProcessRobot.from_config(config, task)


def far_target_speeds(arm: InProcessRobot, offset_m, periods: int = 60) -> list[float]:
    """Ask for a target `offset_m` away every period (the step limit keeps it one step ahead of
    the measured pose); the TCP speeds after each period, m/s."""
    home = arm.state()
    speeds = []
    for _ in range(periods):
        state = arm.state()
        arm.set_pose_target(state.tcp_position_m + np.asarray(offset_m), home.tcp_quaternion_wxyz)
        state = arm.advance(1)
        speeds.append(float(np.linalg.norm(state.tcp_linear_velocity_m_per_s)))
    return speeds


# ---------------------------------------------------------------------------- impedance


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("translational_clip_m", 10.0),
        ("translational_stiffness_n_per_m", 1e7),
        ("translational_stiffness_n_per_m", 1e5),
        ("rotational_clip_rad", 1.0),
        ("translational_damping_ns_per_m", 0.0),  # undamped: the arm would oscillate
    ],
)
def test_set_impedance_outside_the_limits_is_refused_naming_the_field_and_range(field, value):
    arm = robot()
    try:
        before = arm.state()
        with pytest.raises(RobotServerError) as info:
            arm.set_impedance(dataclasses.replace(ImpedanceParams(), **{field: value}))
        assert info.value.code == "bad_field"
        assert field in str(info.value) and f"robot_server.safety.impedance.{field}" in str(info.value)
        # Nothing changed: the default controller still moves the arm at its usual speed.
        assert max(far_target_speeds(arm, [0.0, 0.2, 0.0], periods=30)) < 0.25 + SPEED_TOLERANCE_M_PER_S
        assert arm.state().errors == before.errors
    finally:
        arm.close()


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_impedance_is_refused_in_process(bad):
    params = ImpedanceParams()
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(params, translational_stiffness_n_per_m=bad)
    # A caller that skips the dataclass check and the codec (the service called in process) is
    # still refused, and the sim never diverges into a reset loop.
    object.__setattr__(params, "translational_stiffness_n_per_m", bad)
    arm = robot()
    try:
        reply = arm.service.handle(SetImpedance(params), 0.0)
        assert isinstance(reply, ErrorReply), reply
        assert reply.code == "bad_field" and "translational_stiffness_n_per_m" in reply.message
        state = arm.advance(5)
        assert state.errors == [] and np.isfinite(state.tcp_position_m).all()
        # Through the codec, a non-finite number never leaves the client.
        with pytest.raises(ValueError, match="non-finite"):
            arm.set_impedance(params)
    finally:
        arm.close()


def test_set_impedance_is_refused_while_errors_are_latched():
    arm = robot()
    try:
        arm.stop("test")
        with pytest.raises(RobotServerError) as info:
            arm.set_impedance(ImpedanceParams(translational_stiffness_n_per_m=1000.0))
        assert info.value.code == "controller_error"
        arm.clear_errors()
        arm.set_impedance(ImpedanceParams(translational_stiffness_n_per_m=1000.0))  # accepted now
    finally:
        arm.close()


# ---------------------------------------------------------------------------- speed


def test_the_stiffest_allowed_controller_stays_under_the_speed_cap():
    """Stiffness and clip at the top of their ranges (3000 N/m x 2 cm would chase at 0.67 m/s):
    the capped reference keeps the TCP at the cap."""
    arm = robot()
    try:
        arm.set_impedance(ImpedanceParams(translational_stiffness_n_per_m=3000.0, translational_damping_ns_per_m=20.0,
                                          translational_clip_m=0.02))
        speeds = far_target_speeds(arm, [0.0, 0.3, 0.0])
        assert max(speeds) <= 0.25 + SPEED_TOLERANCE_M_PER_S, max(speeds)
        assert max(speeds) > 0.2  # it does move, at about the cap
    finally:
        arm.close()


def test_a_lower_speed_cap_is_what_the_tcp_follows():
    arm = robot(max_tcp_speed_m_per_s=0.05)
    try:
        speeds = far_target_speeds(arm, [0.0, 0.2, 0.0])
        assert max(speeds) <= 0.05 + SPEED_TOLERANCE_M_PER_S, max(speeds)
        assert np.mean(speeds[20:]) > 0.04
    finally:
        arm.close()


def test_rotation_speed_is_capped():
    arm = robot(max_tcp_angular_speed_rad_per_s=0.3, orientation_limit_rad=(1.0, 1.0, 1.0))
    try:
        home = arm.state()
        rates = []
        for _ in range(40):
            state = arm.state()
            # 0.6 rad about z away from home: clipped per step, so the target stays ahead.
            target = quat_mul(rotvec_to_quat(np.array([0.0, 0.0, 0.6])), home.tcp_quaternion_wxyz)
            arm.set_pose_target(state.tcp_position_m, target)
            state = arm.advance(1)
            rates.append(float(np.linalg.norm(state.tcp_angular_velocity_rad_per_s)))
        assert max(rates) <= 0.3 + 0.1, max(rates)
        assert max(rates) > 0.2
    finally:
        arm.close()


# ---------------------------------------------------------------------------- home and resets


@pytest.mark.parametrize("noise", [0.5, 5.0])
def test_go_home_noise_above_the_cap_is_refused(noise):
    arm = robot()
    try:
        with pytest.raises(RobotServerError) as info:
            arm.go_home(position_noise_m=noise)
        assert info.value.code == "bad_field" and "max_reset_position_noise_m" in str(info.value)
        with pytest.raises(RobotServerError) as info:
            arm.go_home(rotation_noise_rad=noise)
        assert info.value.code == "bad_field" and "max_reset_rotation_noise_rad" in str(info.value)
        assert arm.state().errors == []
    finally:
        arm.close()


@pytest.mark.parametrize("noise", [math.inf, math.nan])
def test_non_finite_go_home_noise_is_refused_in_process(noise):
    with pytest.raises(ValueError, match="finite"):
        GoHome(position_noise_m=noise)
    msg = GoHome()
    object.__setattr__(msg, "position_noise_m", noise)  # a caller that skips the check
    arm = robot()
    try:
        reply = arm.service.handle(msg, 0.0)
        assert isinstance(reply, ErrorReply) and reply.code == "bad_field", reply
        assert "max_reset_position_noise_m" in reply.message
    finally:
        arm.close()


def test_randomised_starts_stay_inside_a_box_tight_around_home():
    """A box whose edge lies 1 cm from home and the largest allowed noise: every start is inside."""
    probe = robot()
    home = probe.info().home_position_m
    probe.close()
    box_min = (home[0] - 0.01, home[1] - 0.3, home[2] - 0.01)
    box_max = (home[0] + 0.2, home[1] + 0.01, home[2] + 0.2)
    arm = robot(workspace_min_m=box_min, workspace_max_m=box_max, max_reset_position_noise_m=0.1)
    try:
        starts = []
        for seed in range(12):
            state = arm.go_home(position_noise_m=0.1, rotation_noise_rad=0.3, seed=seed)
            assert state.errors == []
            starts.append(state.tcp_position_m)
        starts = np.array(starts)
        tol = 2e-3  # the sim places the arm by IK and lets it settle under gravity
        assert (starts >= np.array(box_min) - tol).all() and (starts <= np.array(box_max) + tol).all()
        assert len({tuple(np.round(s, 4)) for s in starts}) > 6  # still randomised
        again = arm.go_home(position_noise_m=0.1, rotation_noise_rad=0.3, seed=3)
        np.testing.assert_allclose(again.tcp_position_m, starts[3], atol=1e-9)  # a seed, one start
    finally:
        arm.close()


def test_a_home_outside_the_box_refuses_to_start_naming_the_keys():
    probe = robot()
    home = probe.info().home_position_m
    probe.close()
    with pytest.raises(ValueError) as info:
        robot(workspace_min_m=(home[0] + 0.05, -0.3, 0.0), workspace_max_m=(home[0] + 0.2, 0.3, 0.5))
    message = str(info.value)
    assert "workspace_min_m" in message and "workspace_max_m" in message and "home" in message


# ---------------------------------------------------------------------------- operator stop


def test_stop_holds_and_latches_until_clear_errors():
    arm = robot()
    try:
        state = arm.state()
        arm.set_pose_target(state.tcp_position_m + [0.0, 0.05, 0.0], state.tcp_quaternion_wxyz)
        arm.advance(3)  # moving
        stopped = arm.stop("pendant")
        assert any(e.startswith("operator_stop") and "pendant" in e for e in stopped.errors)
        held = arm.advance(50)
        assert np.linalg.norm(held.tcp_linear_velocity_m_per_s) < 0.01
        for request in (lambda: arm.set_pose_target(held.tcp_position_m + [0.0, 0.05, 0.0], held.tcp_quaternion_wxyz),
                        lambda: arm.set_gripper(0.0), lambda: arm.go_home()):
            with pytest.raises(RobotServerError) as info:
                request()
            assert info.value.code == "controller_error" and "operator_stop" in str(info.value)
        assert arm.stop("again").errors == stopped.errors  # a repeated stop is accepted, latched once
        assert arm.clear_errors().errors == []
        arm.set_pose_target(held.tcp_position_m + [0.0, 0.02, 0.0], held.tcp_quaternion_wxyz)
    finally:
        arm.close()
