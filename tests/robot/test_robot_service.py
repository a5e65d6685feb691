"""RobotService in-process on the real simulated arm: backend faults become error replies, the
watchdog on a controlled clock, and the lockstep/realtime rules."""

from __future__ import annotations

import numpy as np
import pytest

from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.inprocess import InProcessRobot
from hilrl.robot_server.interface import RobotServerError
from hilrl.robot_server.service import RobotService
from hilrl.robot_server.sim.backend import make_backend
from hilrl.transport.robot_messages import ErrorReply, GetState, Render, RobotState, SetGripper

pytestmark = pytest.mark.timeout(60)


class ManualClock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_backend_exceptions_become_backend_error_replies():
    config = ServerConfig()
    backend = make_backend(config, "reach")
    service = RobotService(backend, config)

    def broken(*args, **kwargs):
        raise RuntimeError("gripper driver fell over")

    backend.set_gripper = broken
    backend.render = broken
    for request in (SetGripper(0.5), Render(["front"])):
        reply = service.handle(request, now_s=0.0)
        assert isinstance(reply, ErrorReply) and reply.code == "backend_error"
        assert "gripper driver fell over" in reply.message
    assert isinstance(service.handle(GetState(), now_s=0.0), RobotState)
    backend.close()


def test_a_realtime_only_backend_refuses_the_lockstep_clock():
    backend = make_backend(ServerConfig(), "reach")
    backend.realtime_only = True  # as a real arm declares itself
    with pytest.raises(ValueError, match="realtime"):
        RobotService(backend, ServerConfig(clock="lockstep"))
    backend.close()


def test_watchdog_on_a_controlled_clock_with_real_physics():
    clock = ManualClock()
    config = ServerConfig(clock="realtime")
    robot = InProcessRobot.from_config(config, "reach", clock=clock)
    try:
        start = robot.state()
        # Armed only by a motion command: an idle arm at home is not "holding".
        clock.now_s += 1.0
        idle = robot.state()
        assert idle.status == "ok" and idle.robot_time_s == pytest.approx(start.robot_time_s + 1.0)
        commanded = idle.tcp_position_m + np.array([0.04, 0.0, 0.0])
        assert robot.set_pose_target(commanded, idle.tcp_quaternion_wxyz).status == "ok"
        clock.now_s += 0.15
        assert robot.state().status == "ok"  # within the timeout
        clock.now_s += 0.1
        held = robot.state()
        assert held.status == "holding"
        # Held where the arm was when the watchdog fired: short of the commanded point.
        assert held.target_position_m[0] < commanded[0] - 0.002
        clock.now_s += 1.0
        rest = robot.state()
        assert rest.status == "holding"
        assert np.linalg.norm(rest.tcp_linear_velocity_m_per_s) < 0.005
        np.testing.assert_allclose(rest.target_position_m, held.target_position_m)
        # The next command ends the hold; GoHome disarms the watchdog.
        assert robot.set_pose_target(rest.tcp_position_m, rest.tcp_quaternion_wxyz).status == "ok"
        robot.go_home()
        clock.now_s += 0.5
        assert robot.state().status == "ok"
    finally:
        robot.close()


def test_realtime_catch_up_is_capped_when_calls_are_far_apart():
    clock = ManualClock()
    robot = InProcessRobot.from_config(ServerConfig(clock="realtime"), "reach", clock=clock)
    try:
        t0 = robot.state().robot_time_s
        clock.now_s += 60.0  # a stalled caller: robot time runs slow rather than simulating a minute
        assert robot.state().robot_time_s - t0 == pytest.approx(1.0)
        with pytest.raises(RobotServerError) as info:
            robot.advance(1)
        assert info.value.code == "unsupported"
    finally:
        robot.close()


def test_lockstep_force_latch_clears_and_the_arm_can_go_home():
    """A force error latched while pressing must not re-latch on ClearErrors when no physics ran
    since (lockstep): otherwise the sim could never recover through GoHome."""
    from hilrl.robot_server.safety import SafetyConfig

    config = ServerConfig(clock="lockstep", safety=SafetyConfig(workspace_min_m=(0.25, -0.35, -0.2), max_force_n=10.0))
    robot = InProcessRobot(RobotService(make_backend(config, "reach"), config))
    try:
        state = robot.go_home()
        target = state.tcp_position_m.copy()
        latched = None
        for _ in range(40):  # press down into the table, 5 cm per command
            target[2] = max(target[2] - 0.05, -0.15)
            try:
                robot.set_pose_target(target, state.tcp_quaternion_wxyz)
            except RobotServerError:
                break
            latched = robot.advance(1)
            if latched.errors:
                break
        assert latched is not None and any(e.startswith("force_limit") for e in latched.errors)
        with pytest.raises(RobotServerError, match="controller_error"):
            robot.go_home()
        cleared = robot.clear_errors()
        assert cleared.errors == [] and cleared.status == "ok"
        home = robot.go_home()
        assert home.errors == [] and home.tcp_position_m[2] > 0.1
        assert robot.advance(1).errors == []  # at home nothing presses: it stays clear
    finally:
        robot.close()
