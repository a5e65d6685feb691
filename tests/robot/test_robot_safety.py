"""Server-side safety on the real simulated arm: workspace and orientation boxes, the per-command
step limit, the realtime watchdog and the controller error latch. Targets are sent raw (hand-made
messages on a bare socket), so nothing on the client side helps."""

from __future__ import annotations

import time

import numpy as np
import pytest
from robot_test_support import RawClient

from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.inprocess import InProcessRobot
from hilrl.robot_server.interface import RobotServerError
from hilrl.robot_server.safety import SafetyConfig
from hilrl.transport.robot_messages import (
    Advance,
    ClearErrors,
    ErrorReply,
    GetInfo,
    GetState,
    GoHome,
    RobotState,
    SetGripper,
    SetPoseTarget,
)
from hilrl.transport.spatial import (
    orientation_error,
    quat_conj,
    quat_mul,
    quat_to_rotvec,
    rotvec_to_quat,
)

pytestmark = pytest.mark.timeout(120)

SAFETY = SafetyConfig()
BOX_MIN = np.array(SAFETY.workspace_min_m)
BOX_MAX = np.array(SAFETY.workspace_max_m)
EPS = 1e-9


class Session:
    """Numbered raw requests to one server."""

    def __init__(self, endpoint: str):
        self.raw = RawClient(endpoint)
        self.seq = 0

    def __call__(self, msg):
        self.seq += 1
        envelope, reply = self.raw.request(msg, seq=self.seq)
        assert envelope.seq == self.seq
        return reply

    def target(self, position, quat) -> RobotState:
        reply = self(SetPoseTarget(np.asarray(position, dtype=float), np.asarray(quat, dtype=float)))
        assert isinstance(reply, RobotState), reply
        return reply


@pytest.fixture
def session(lockstep_server):
    s = Session(lockstep_server.endpoint)
    home = s(GoHome())
    assert isinstance(home, RobotState) and home.status == "ok", home
    yield s
    s.raw.close()


def _relative_rotvec(home_quat, quat):
    """Orientation as a rotation vector relative to home, in the home frame."""
    return quat_to_rotvec(quat_mul(quat_conj(home_quat), quat))


def test_far_target_is_limited_to_one_step_from_the_measured_pose(session):
    state = session(GetState())
    p0, q0 = state.tcp_position_m, state.tcp_quaternion_wxyz
    reply = session.target([5.0, -5.0, 5.0], q0)
    expected = np.clip(np.clip([5.0, -5.0, 5.0], BOX_MIN, BOX_MAX), p0 - SAFETY.max_step_m, p0 + SAFETY.max_step_m)
    np.testing.assert_allclose(reply.target_position_m, expected, atol=1e-12)
    assert np.all(np.abs(reply.target_position_m - p0) <= SAFETY.max_step_m + EPS)
    # The backend got what the reply says (the next state reports the same target).
    np.testing.assert_allclose(session(GetState()).target_position_m, expected, atol=1e-12)


def test_position_never_leaves_the_workspace_box(session):
    quat = session(GetState()).tcp_quaternion_wxyz
    height = session(GetState()).tcp_position_m[2]
    # Beyond x max, then (from there) below the table: the target stops at the box's faces.
    for far in ([5.0, 0.0, height], [5.0, 0.0, -3.0]):
        for _ in range(10):
            reply = session.target(far, quat)
            assert reply.status == "ok", reply.errors
            target = reply.target_position_m
            assert np.all(target >= BOX_MIN - EPS) and np.all(target <= BOX_MAX + EPS), target
            assert np.all(np.abs(target - reply.tcp_position_m) <= SAFETY.max_step_m + EPS)
            session(Advance(3))
    assert target[0] == pytest.approx(BOX_MAX[0]) and target[2] == pytest.approx(BOX_MIN[2])


def test_orientation_is_clipped_per_axis_around_home_and_per_step(session):
    info = session(GetInfo())
    home_q = info.home_quaternion_wxyz
    wanted = quat_mul(home_q, rotvec_to_quat([1.2, -1.0, 2.5]))  # beyond every axis limit
    state = session(GetState())
    position = state.tcp_position_m
    limits = np.array(SAFETY.orientation_limit_rad)
    for i in range(10):
        reply = session.target(position, wanted)
        relative = _relative_rotvec(home_q, reply.target_quaternion_wxyz)
        assert np.all(np.abs(relative) <= limits + 1e-9), relative
        step = orientation_error(reply.target_quaternion_wxyz, reply.tcp_quaternion_wxyz)
        assert np.all(np.abs(step) <= SAFETY.max_step_rad + 1e-6), step
        if i == 0:
            assert np.abs(step).max() == pytest.approx(SAFETY.max_step_rad)
        session(Advance(3))
    np.testing.assert_allclose(relative, limits * np.sign([1.2, -1.0, 2.5]), atol=1e-6)


def test_quaternion_is_normalised_and_zero_norm_refused(session):
    state = session(GetState())
    reply = session.target(state.tcp_position_m, 3.0 * state.tcp_quaternion_wxyz)
    assert np.linalg.norm(reply.target_quaternion_wxyz) == pytest.approx(1.0)
    refused = session(SetPoseTarget(state.tcp_position_m.copy(), np.zeros(4)))
    assert isinstance(refused, ErrorReply) and refused.code == "bad_field"
    assert "quaternion_wxyz" in refused.message


@pytest.mark.timeout(60)
def test_watchdog_holds_the_arm_when_commands_stop(servers):
    server = servers(clock="realtime")
    s = Session(server.endpoint)
    try:
        start = s(GetState())
        assert start.status == "ok"
        commanded = start.tcp_position_m + np.array([0.04, 0.0, 0.0])
        sent_at = time.monotonic()
        reply = s.target(commanded, start.tcp_quaternion_wxyz)
        assert reply.status == "ok"
        np.testing.assert_allclose(reply.target_position_m, commanded, atol=1e-12)
        # Then silence: only reads, which are not motion commands.
        held_at = None
        states = []
        while time.monotonic() - sent_at < 3.0:
            state = s(GetState())
            now = time.monotonic()
            states.append((now, state))
            if held_at is None and state.status == "holding":
                held_at = now
            if held_at is not None and now - held_at > 1.2:
                break
            time.sleep(0.02)
        assert held_at is not None, "the watchdog never tripped"
        # Not before the timeout (with the robot's own clock as the reference), and soon after it.
        assert SAFETY.watchdog_timeout_s - 0.02 <= held_at - sent_at <= SAFETY.watchdog_timeout_s + 0.4
        first_holding = next(st for _, st in states if st.status == "holding")
        assert first_holding.robot_time_s - reply.robot_time_s >= SAFETY.watchdog_timeout_s - 0.01
        # The target was reset to where the arm was, short of the commanded point...
        assert first_holding.target_position_m[0] < commanded[0] - 0.002
        # ...and the arm comes to rest within about a second.
        settled = [st for t, st in states if t - held_at >= 1.0]
        assert settled, "not observed long enough"
        assert all(st.status == "holding" for _, st in states if _ >= held_at)
        speed = np.linalg.norm(settled[-1].tcp_linear_velocity_m_per_s)
        assert speed < 0.005, f"TCP still moving at {speed * 1000:.1f} mm/s"
        # The next motion command ends the hold.
        resumed = s.target(settled[-1].tcp_position_m, settled[-1].tcp_quaternion_wxyz)
        assert resumed.status == "ok"
    finally:
        s.raw.close()


def _press_into_table(session: Session) -> RobotState:
    """Drive the TCP down onto the table until the force limit trips; returns the tripping state."""
    quat = session(GetState()).tcp_quaternion_wxyz
    for _ in range(20):
        state = session(GetState())
        reply = session(SetPoseTarget(np.array([*state.tcp_position_m[:2], -0.5]), quat))
        if isinstance(reply, ErrorReply):
            break
        state = session(Advance(2))
        if state.errors:
            return state
    pytest.fail(f"the force limit never tripped; last state {state}")


def test_error_latch_refuses_motion_until_clear_errors(servers, tmp_path):
    config = tmp_path / "task.yaml"
    config.write_text("robot_server:\n  safety:\n    max_force_n: 5.0\n")
    server = servers(extra_args=["--config", str(config)])
    s = Session(server.endpoint)
    try:
        tripped = _press_into_table(s)
        assert tripped.status == "error"
        assert any(e.startswith("force_limit") for e in tripped.errors), tripped.errors
        assert np.linalg.norm(tripped.tcp_force_n) > 5.0
        for request in (SetPoseTarget(tripped.tcp_position_m.copy(), tripped.tcp_quaternion_wxyz.copy()),
                        SetGripper(0.0), GoHome()):
            refused = s(request)
            assert isinstance(refused, ErrorReply) and refused.code == "controller_error", refused
            assert "force_limit" in refused.message and "clear_errors" in refused.message
        # Time passing does not clear it; the arm holds, so the contact force relaxes.
        relaxed = s(Advance(10))
        assert relaxed.status == "error" and relaxed.errors == tripped.errors
        assert np.linalg.norm(relaxed.tcp_force_n) < 5.0
        cleared = s(ClearErrors())
        assert cleared.status == "ok" and cleared.errors == [], cleared.errors
        moved = s.target(cleared.tcp_position_m + np.array([0.0, 0.0, 0.05]), cleared.tcp_quaternion_wxyz)
        assert moved.status == "ok"
        assert isinstance(s(GoHome()), RobotState)
    finally:
        s.raw.close()


def test_in_process_robot_applies_the_same_safety_layer():
    config = ServerConfig(safety=SafetyConfig(max_force_n=5.0))
    robot = InProcessRobot.from_config(config, "reach")
    try:
        state = robot.state()
        p0 = state.tcp_position_m
        reply = robot.set_pose_target([5.0, 0.0, 5.0], state.tcp_quaternion_wxyz)
        expected = np.clip(np.clip([5.0, 0.0, 5.0], BOX_MIN, BOX_MAX), p0 - SAFETY.max_step_m, p0 + SAFETY.max_step_m)
        np.testing.assert_allclose(reply.target_position_m, expected, atol=1e-12)
        with pytest.raises(RobotServerError) as info:
            robot.set_pose_target([np.nan, 0.0, 0.3], state.tcp_quaternion_wxyz)
        assert info.value.code == "bad_field" and "position_m" in str(info.value)
        with pytest.raises(RobotServerError) as info:
            robot.render(["ceiling"])
        assert info.value.code == "bad_field" and "ceiling" in str(info.value)
        before = robot.state().robot_time_s
        assert robot.advance(3).robot_time_s == pytest.approx(before + 0.3)
        # Drive into the table: the service latches the force limit in-process too.
        for _ in range(20):
            s = robot.state()
            try:
                robot.set_pose_target([*s.tcp_position_m[:2], -0.5], s.tcp_quaternion_wxyz)
            except RobotServerError as exc:
                assert exc.code == "controller_error"
                break
            if robot.advance(2).errors:
                break
        assert robot.state().status == "error"
        with pytest.raises(RobotServerError) as info:
            robot.go_home()
        assert info.value.code == "controller_error"
        robot.advance(10)
        assert robot.clear_errors().status == "ok"
    finally:
        robot.close()


@pytest.mark.timeout(30)
def test_in_process_robot_realtime_clock_follows_wall_time():
    robot = InProcessRobot.from_config(ServerConfig(clock="realtime"), "reach")
    try:
        t0 = robot.state().robot_time_s
        time.sleep(0.3)
        t1 = robot.state().robot_time_s
        assert 0.25 <= t1 - t0 <= 0.45
        with pytest.raises(RobotServerError) as info:
            robot.advance(1)
        assert info.value.code == "unsupported"
    finally:
        robot.close()
