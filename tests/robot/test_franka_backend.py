"""The franka backend at panda-py's API boundary, on a fake panda-py (tests/robot/fake_panda_py):
the shared safety layer applies to it (workspace box, step limit, watchdog, error latch), the
reference stays within the impedance clip of the measured pose, reflexes latch until an explicit
ClearErrors, go_home moves in joint space and restarts the controller, the gripper never blocks,
a missing panda-py names the install command, and a real server process serves the franka backend
to the unchanged RobotClient."""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hilrl.robot_server.client import RobotClient
from hilrl.robot_server.config import PANDA_READY_POSTURE_RAD, FrankaConfig, ServerConfig
from hilrl.robot_server.franka.backend import (
    FrankaBackend,
    FrankaSetupError,
    damping_ratio,
    impedance_matrix,
    matrix_to_quat_wxyz,
    pose_from_column_major,
)
from hilrl.robot_server.process import start_server_process
from hilrl.robot_server.safety import SafetyConfig
from hilrl.robot_server.server import ConfigError, make_backend
from hilrl.robot_server.service import RobotService
from hilrl.transport.robot_messages import (
    Ack,
    ClearErrors,
    ErrorReply,
    GetInfo,
    GetState,
    GoHome,
    ImpedanceParams,
    RobotState,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
)
from hilrl.transport.schema import SchemaError, from_dict
from hilrl.transport.spatial import (
    orientation_error,
    quat_conj,
    quat_mul,
    quat_to_matrix,
    quat_to_rotvec,
    rotvec_to_quat,
)

FAKE_DIR = Path(__file__).resolve().parent / "fake_panda_py"
HOST = "172.16.0.2"
SAFETY = SafetyConfig(
    workspace_min_m=(0.2, -0.3, 0.2),
    workspace_max_m=(0.6, 0.3, 0.6),
    watchdog_timeout_s=0.1,
)
BOX_MIN = np.array(SAFETY.workspace_min_m)
BOX_MAX = np.array(SAFETY.workspace_max_m)
CLIP_M = ImpedanceParams().translational_clip_m
EPS = 1e-9


@pytest.fixture(autouse=True, scope="module")
def _use_the_fake(fake_panda_py):
    """Every test here runs against the fake panda-py (conftest.fake_panda_py)."""


def franka_config(safety: SafetyConfig = SAFETY, impedance: ImpedanceParams | None = None, **franka) -> ServerConfig:
    franka.setdefault("hostname", HOST)
    return ServerConfig(
        backend="franka",
        clock="realtime",
        safety=safety,
        impedance=impedance or ImpedanceParams(),
        franka=FrankaConfig(**franka),
    )


@pytest.fixture
def arm():
    """(backend, service, config) on the fake; every backend built with it is closed at teardown."""
    made: list[FrankaBackend] = []

    def build(**kwargs) -> tuple[FrankaBackend, RobotService, ServerConfig]:
        config = franka_config(**kwargs)
        backend = FrankaBackend(config)
        made.append(backend)
        return backend, RobotService(backend, config), config

    yield build
    for backend in made:
        backend.close()


def call(service: RobotService, msg):
    return service.handle(msg, time.monotonic())


def wait_for(predicate, timeout_s: float, what: str, tick: RobotService | None = None):
    """Poll `predicate` (running the service's periodic checks, like the server loop) until true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if tick is not None:
            tick.tick(time.monotonic())
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


# ---------------------------------------------------------------------------------- conversions


@pytest.mark.timeout(10)
def test_pose_conversions_and_impedance_mapping():
    rng = np.random.default_rng(0)
    rotations = [rng.normal(size=3) for _ in range(200)]
    rotations += [np.array([math.pi, 0, 0]), np.array([0, math.pi, 0]), np.array([0, 0, math.pi]), np.zeros(3)]
    for v in rotations:
        q = rotvec_to_quat(v)
        back = matrix_to_quat_wxyz(quat_to_matrix(q))
        assert abs(abs(float(np.dot(back, q))) - 1.0) < 1e-9, (v, q, back)
        assert back[0] >= 0
    # libfranka's column-major layout: the translation sits in elements 12..14.
    t = np.eye(4)
    t[:3, :3] = quat_to_matrix(rotvec_to_quat([0.1, -0.2, 0.3]))
    t[:3, 3] = [0.4, -0.1, 0.3]
    position, quat = pose_from_column_major(t.flatten(order="F"))
    np.testing.assert_allclose(position, [0.4, -0.1, 0.3])
    np.testing.assert_allclose(quat, rotvec_to_quat([0.1, -0.2, 0.3]), atol=1e-12)

    params = ImpedanceParams()
    k = impedance_matrix(params)
    np.testing.assert_allclose(np.diag(k), [2000, 2000, 2000, 300, 300, 300])
    ratio = damping_ratio(params, None)
    # panda-py damps with ratio * 2 sqrt(K): the translational damping comes out as configured.
    assert ratio * 2 * math.sqrt(k[0, 0]) == pytest.approx(params.translational_damping_ns_per_m)
    assert damping_ratio(params, 0.7) == 0.7


# ---------------------------------------------------------------------------------- (a) safety layer


@pytest.mark.timeout(20)
def test_workspace_box_and_step_limit_apply_and_the_reference_stays_within_the_clip(arm):
    backend, service, _ = arm()
    state = call(service, GetState())
    assert isinstance(state, RobotState) and state.status == "ok", state
    p0, q0 = state.tcp_position_m, state.tcp_quaternion_wxyz
    reply = call(service, SetPoseTarget(np.array([5.0, -5.0, 5.0]), q0))
    assert isinstance(reply, RobotState), reply
    expected = np.clip(np.clip([5.0, -5.0, 5.0], BOX_MIN, BOX_MAX), p0 - SAFETY.max_step_m, p0 + SAFETY.max_step_m)
    np.testing.assert_allclose(reply.target_position_m, expected, atol=1e-9)
    np.testing.assert_allclose(backend.state().target_position_m, expected, atol=1e-9)
    # What reaches panda-py's controller is the goal clipped to the impedance clip around the
    # measured pose (the arm has barely moved since).
    ctrl = backend.panda.controller
    _, ref_position, ref_xyzw, q_nullspace = ctrl.history[-1]
    measured = backend.state().tcp_position_m
    assert np.all(np.abs(ref_position - measured) <= CLIP_M + 0.003), (ref_position, measured)
    assert np.all(np.sign(ref_position - p0)[[0, 1]] == np.sign(expected - p0)[[0, 1]])
    np.testing.assert_allclose(q_nullspace, PANDA_READY_POSTURE_RAD)

    # Keep pushing beyond x max and below z min: targets stop at the box's faces.
    deadline = time.monotonic() + 8.0
    while True:
        state = call(service, GetState())
        reply = call(service, SetPoseTarget(np.array([5.0, 0.0, -3.0]), q0))
        assert reply.status == "ok", reply.errors
        target = reply.target_position_m
        assert np.all(target >= BOX_MIN - EPS) and np.all(target <= BOX_MAX + EPS), target
        assert np.all(np.abs(target - state.tcp_position_m) <= SAFETY.max_step_m + 0.01), (target, state.tcp_position_m)
        if target[0] == pytest.approx(BOX_MAX[0]) and target[2] == pytest.approx(BOX_MIN[2]):
            break
        assert time.monotonic() < deadline, f"never reached the box's faces; last target {target}"
        time.sleep(0.05)


@pytest.mark.timeout(20)
def test_orientation_is_clipped_and_reaches_the_arm_in_the_right_convention(arm):
    backend, service, _ = arm()
    info = call(service, GetInfo())
    assert info.backend == "franka" and info.task == "" and info.cameras == [] and info.clock == "realtime"
    home_q = info.home_quaternion_wxyz
    state = call(service, GetState())
    position = state.tcp_position_m
    limits = np.array(SAFETY.orientation_limit_rad)
    wanted = quat_mul(home_q, rotvec_to_quat([1.2, -1.0, 2.5]))  # beyond every axis limit
    reply = call(service, SetPoseTarget(position, wanted))
    relative = quat_to_rotvec(quat_mul(quat_conj(home_q), reply.target_quaternion_wxyz))
    assert np.all(np.abs(relative) <= limits + 1e-9), relative
    # The step limit is relative to the pose measured when the request arrived (the arm was at
    # rest); the reply's own pose is measured a moment later, with the arm already turning.
    step = orientation_error(reply.target_quaternion_wxyz, state.tcp_quaternion_wxyz)
    assert np.abs(step).max() == pytest.approx(SAFETY.max_step_rad, abs=1e-6)
    # A small rotation about z is reached: (w, x, y, z) <-> (x, y, z, w) is converted correctly.
    goal = quat_mul(rotvec_to_quat([0.0, 0.0, 0.2]), state.tcp_quaternion_wxyz)
    deadline = time.monotonic() + 5.0
    while True:
        call(service, SetPoseTarget(position, goal))
        now = backend.state()
        if np.abs(orientation_error(goal, now.tcp_quaternion_wxyz)).max() < 0.005:
            break
        assert time.monotonic() < deadline, f"orientation never reached: {now.tcp_quaternion_wxyz} vs {goal}"
        time.sleep(0.02)
    np.testing.assert_allclose(now.tcp_position_m, position, atol=0.002)


# ---------------------------------------------------------------------------------- (b) stalls


@pytest.mark.timeout(20)
def test_watchdog_holds_the_arm_when_the_client_stalls(arm):
    backend, service, _ = arm()
    start = call(service, GetState())
    commanded = start.tcp_position_m + np.array([0.04, 0.0, 0.0])
    sent_at = time.monotonic()
    reply = call(service, SetPoseTarget(commanded, start.tcp_quaternion_wxyz))
    np.testing.assert_allclose(reply.target_position_m, commanded, atol=1e-12)
    # Silence from the client; the server loop keeps running the service's checks.
    held = wait_for(lambda: (s := call(service, GetState())).status == "holding" and s, 2.0, "the watchdog", service)
    held_at = time.monotonic()
    assert held_at - sent_at >= SAFETY.watchdog_timeout_s - 0.01
    assert held.target_position_m[0] < commanded[0] - 0.002  # held short of the commanded point
    # The controller's reference is the measured pose, and the arm stays there.
    ref_position, _ = backend.panda.controller.reference()
    np.testing.assert_allclose(ref_position, held.target_position_m, atol=5e-4)
    # The arm was moving (~0.2 m/s) when held: it brakes within a short overshoot (critically
    # damped, ~v / (e sqrt(K / m)) = 1.6 mm on the fake), then settles back on the held pose.
    settle_until = time.monotonic() + 0.3
    furthest = held.target_position_m[0]
    while time.monotonic() < settle_until:
        furthest = max(furthest, backend.state().tcp_position_m[0])
        time.sleep(0.005)
    assert furthest - held.target_position_m[0] < 0.003, furthest
    before = backend.state()
    time.sleep(0.2)
    service.tick(time.monotonic())
    after = backend.state()
    assert np.abs(after.tcp_position_m - before.tcp_position_m).max() < 1e-4
    assert np.linalg.norm(after.tcp_linear_velocity_m_per_s) < 1e-3
    np.testing.assert_allclose(after.tcp_position_m, held.target_position_m, atol=5e-4)
    # The next motion command ends the hold.
    resumed = call(service, SetPoseTarget(after.tcp_position_m, after.tcp_quaternion_wxyz))
    assert resumed.status == "ok"


@pytest.mark.timeout(20)
def test_a_stalled_reference_thread_leaves_the_arm_at_most_one_clip_away(arm):
    backend, service, _ = arm()
    start = backend.state()
    # Python stops updating the reference right after a 4 cm target was accepted.
    backend._stop_feeding.set()
    backend._feeder.join(2.0)
    call(service, SetPoseTarget(start.tcp_position_m + np.array([0.04, 0.0, 0.0]), start.tcp_quaternion_wxyz))
    time.sleep(0.4)
    moved = backend.state().tcp_position_m - start.tcp_position_m
    assert moved[0] <= CLIP_M + 1e-6, moved
    # Tighter still with the speed cap: the speed-limited goal advanced by at most one reference
    # period at the cap when the target came, so the arm crept towards it and stopped.
    period_s = 1.0 / backend.franka_config.reference_rate_hz
    assert -1e-6 <= moved[0] <= SAFETY.max_tcp_speed_m_per_s * period_s + 1e-4, moved


@pytest.mark.timeout(20)
def test_close_holds_and_stops_the_controller(arm):
    backend, service, _ = arm()
    start = backend.state()
    call(service, SetPoseTarget(start.tcp_position_m + np.array([0.04, 0.0, 0.0]), start.tcp_quaternion_wxyz))
    time.sleep(0.05)
    backend.close()
    assert backend.panda.controller is None
    assert backend.panda.calls[-1] == "stop_controller"
    stopped = backend.panda.get_position()
    time.sleep(0.1)
    np.testing.assert_allclose(backend.panda.get_position(), stopped, atol=1e-12)
    backend.close()  # idempotent


# ---------------------------------------------------------------------------------- (c) reflexes


@pytest.mark.timeout(20)
def test_reflex_is_latched_refuses_motion_and_clears_only_on_clear_errors(arm):
    backend, service, _ = arm()
    start = call(service, GetState())
    call(service, SetPoseTarget(start.tcp_position_m + np.array([0.02, 0.0, 0.0]), start.tcp_quaternion_wxyz))
    time.sleep(0.05)
    controllers_before = len(backend.panda.controllers)
    backend.panda.inject_reflex("cartesian_reflex")
    tripped = call(service, GetState())
    assert tripped.status == "error"
    assert any(e.startswith("cartesian_reflex") for e in tripped.errors), tripped.errors
    for request in (
        SetPoseTarget(tripped.tcp_position_m.copy(), tripped.tcp_quaternion_wxyz.copy()),
        SetGripper(0.0),
        GoHome(),
    ):
        refused = call(service, request)
        assert isinstance(refused, ErrorReply) and refused.code == "controller_error", refused
        assert "cartesian_reflex" in refused.message and "clear_errors" in refused.message
    # Time passing (with the server's periodic checks) does not clear it; nothing recovers alone.
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        service.tick(time.monotonic())
        time.sleep(0.01)
    still = call(service, GetState())
    assert still.status == "error" and still.errors == tripped.errors
    assert "recover" not in backend.panda.calls
    assert len(backend.panda.controllers) == controllers_before
    with pytest.raises(RuntimeError, match="clear_errors"):
        backend.set_target(still.tcp_position_m, still.tcp_quaternion_wxyz)

    cleared = call(service, ClearErrors())
    # "holding": the watchdog tripped meanwhile (no pose target for a while), as it should.
    assert isinstance(cleared, RobotState) and cleared.status == "holding" and cleared.errors == [], cleared
    assert backend.panda.calls.count("recover") == 1
    assert len(backend.panda.controllers) == controllers_before + 1
    np.testing.assert_allclose(cleared.target_position_m, cleared.tcp_position_m, atol=1e-3)
    goal = cleared.tcp_position_m + np.array([0.0, 0.0, 0.02])
    moved = call(service, SetPoseTarget(goal, cleared.tcp_quaternion_wxyz))
    assert moved.status == "ok"
    wait_for(lambda: backend.state().tcp_position_m[2] > goal[2] - 0.002, 3.0, "the arm to move after clearing")


@pytest.mark.timeout(20)
def test_clear_errors_fails_while_the_user_stop_is_pressed_and_the_latch_stays(arm):
    backend, service, _ = arm()
    backend.panda.press_user_stop()
    stopped = call(service, GetState())
    assert stopped.status == "error" and any(e.startswith("user_stop") for e in stopped.errors), stopped.errors
    failed = call(service, ClearErrors())
    assert isinstance(failed, ErrorReply) and failed.code == "backend_error" and "user stop" in failed.message
    assert call(service, GetState()).status == "error"
    backend.panda.release_user_stop()
    cleared = call(service, ClearErrors())
    assert isinstance(cleared, RobotState) and cleared.status == "ok", cleared


@pytest.mark.timeout(20)
def test_errors_present_at_startup_are_latched_not_recovered(monkeypatch):
    panda_py = importlib.import_module("panda_py")
    original = panda_py.Panda.__init__

    def in_reflex(self, *args, **kwargs):  # the robot was left in a reflex before the server started
        original(self, *args, **kwargs)
        self.inject_reflex("joint_reflex")

    monkeypatch.setattr(panda_py.Panda, "__init__", in_reflex)
    backend = FrankaBackend(franka_config(gripper="none"))
    try:
        state = backend.state()
        assert state.status == "error" and any(e.startswith("joint_reflex") for e in state.errors), state.errors
        assert "start_controller" not in backend.panda.calls and "recover" not in backend.panda.calls
        backend.clear_errors()
        assert backend.state().status == "ok" and backend.panda.controller is not None
        assert state.gripper_opening == 1.0  # no gripper: reported open
    finally:
        backend.close()


# ---------------------------------------------------------------------------------- (d) home


@pytest.mark.timeout(20)
def test_go_home_moves_to_the_configured_posture_and_restarts_the_controller(arm):
    home_q = np.array(PANDA_READY_POSTURE_RAD) + np.array([0.1, -0.2, 0.05, 0.1, -0.1, 0.05, 0.2])
    backend, service, _ = arm(home_joint_positions_rad=tuple(home_q), home_speed_factor=0.3)
    info = call(service, GetInfo())
    start = call(service, GetState())
    assert np.linalg.norm(start.tcp_position_m - info.home_position_m) > 0.01  # starts elsewhere
    call(service, SetPoseTarget(start.tcp_position_m + np.array([0.02, 0.0, 0.0]), start.tcp_quaternion_wxyz))
    controllers_before = len(backend.panda.controllers)
    home = call(service, GoHome())
    assert isinstance(home, RobotState) and home.status == "ok", home
    q, speed = backend.panda.move_calls[-1]
    np.testing.assert_allclose(q, home_q)
    # The configured 0.3 is lowered so the TCP stays under the speed cap (0.25 of libfranka's 1.7 m/s).
    assert speed == pytest.approx(min(0.3, SAFETY.max_tcp_speed_m_per_s / 1.7))
    calls = backend.panda.calls
    after_move = calls[calls.index("move_to_joint_position") + 1:]
    assert after_move[-1] == "start_controller" and set(after_move) <= {"stop_controller", "start_controller"}
    assert len(backend.panda.controllers) == controllers_before + 1
    np.testing.assert_allclose(home.joint_positions_rad, home_q, atol=1e-3)
    np.testing.assert_allclose(home.tcp_position_m, info.home_position_m, atol=1e-3)
    assert np.abs(orientation_error(home.tcp_quaternion_wxyz, info.home_quaternion_wxyz)).max() < 1e-3
    np.testing.assert_allclose(home.target_position_m, home.tcp_position_m, atol=1e-3)

    # A randomised start pose: within the noise, reproducible from the seed.
    first = call(service, GoHome(position_noise_m=0.02, rotation_noise_rad=0.05, seed=7))
    second = call(service, GoHome(position_noise_m=0.02, rotation_noise_rad=0.05, seed=7))
    for noisy in (first, second):
        offset = noisy.tcp_position_m - info.home_position_m
        assert np.all(np.abs(offset) <= 0.02 + 0.003), offset
        rotation = orientation_error(noisy.tcp_quaternion_wxyz, info.home_quaternion_wxyz)
        assert np.all(np.abs(rotation) <= 0.05 + 0.012), rotation
    assert np.abs(first.tcp_position_m - info.home_position_m).max() > 0.002
    np.testing.assert_allclose(first.tcp_position_m, second.tcp_position_m, atol=0.003)
    # "Noise" above the reset cap is refused, naming the cap; the arm stays where it was.
    far = service.handle(GoHome(position_noise_m=5.0, seed=1), time.monotonic())
    assert isinstance(far, ErrorReply) and far.code == "bad_field" and "max_reset_position_noise_m" in far.message
    # The largest allowed noise stays inside the box, and the start is reached under the speed cap.
    for seed in range(3):
        capped = call(service, GoHome(position_noise_m=SAFETY.max_reset_position_noise_m, seed=seed))
        assert np.all(capped.tcp_position_m >= np.array(SAFETY.workspace_min_m) - 0.003)
        assert np.all(capped.tcp_position_m <= np.array(SAFETY.workspace_max_m) + 0.003)


# ---------------------------------------------------------------------------------- (e) gripper


@pytest.mark.timeout(20)
def test_gripper_opening_maps_to_width_and_close_grasps_with_the_configured_force(arm):
    backend, service, _ = arm(gripper_force_n=55.0, gripper_speed_m_per_s=0.2, gripper_grasp_epsilon_m=0.08)
    fake = backend.gripper._gripper
    assert fake.calls[0] == ("homing",)
    t0 = time.monotonic()
    assert isinstance(call(service, SetGripper(0.5)), Ack)
    assert time.monotonic() - t0 < 0.05  # the move runs on the driver's thread
    wait_for(lambda: abs(backend.state().gripper_opening - 0.5) < 0.02, 3.0, "opening 0.5")
    assert ("move", 0.04, 0.2) in fake.calls

    fake.object_width_m = 0.03
    t0 = time.monotonic()
    backend.set_gripper(0.0)
    backend.set_gripper(0.0)  # a repeat is not re-issued
    assert time.monotonic() - t0 < 0.05
    wait_for(lambda: abs(backend.state().gripper_opening - 0.03 / 0.08) < 0.02, 3.0, "the grasp")
    grasps = [c for c in fake.calls if c[0] == "grasp"]
    assert grasps == [("grasp", 0.0, 0.2, 55.0, 0.08, 0.08)]
    wait_for(lambda: fake.read_once().is_grasped, 2.0, "is_grasped")


@pytest.mark.timeout(20)
def test_a_new_gripper_command_preempts_a_running_motion(arm):
    backend, _, _ = arm(gripper_speed_m_per_s=0.05)
    fake = backend.gripper._gripper
    backend.set_gripper(0.0)  # 8 cm at 5 cm/s: 1.6 s
    wait_for(lambda: backend.state().gripper_opening < 0.9, 2.0, "the close to start")
    backend.set_gripper(1.0)
    wait_for(lambda: ("stop",) in fake.calls, 2.0, "the running grasp to be stopped")
    wait_for(lambda: backend.state().gripper_opening > 0.99, 3.0, "the fingers to open again")
    assert fake.calls[-1] == ("move", 0.08, 0.05)


# ---------------------------------------------------------------------------------- (f) setup errors


@pytest.mark.timeout(10)
def test_missing_panda_py_names_the_install_command(monkeypatch):
    for name in [n for n in sys.modules if n == "panda_py" or n.startswith("panda_py.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "panda_py", None)  # as if not installed
    with pytest.raises(FrankaSetupError) as info:
        FrankaBackend(franka_config())
    assert 'pip install -e ".[franka]"' in str(info.value)
    assert "PREEMPT_RT" in str(info.value) and "realtime" in str(info.value)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[franka\]"'):
        make_backend(franka_config(), "")


@pytest.mark.timeout(10)
def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"robot_server\.franka\.hostname"):
        make_backend(franka_config(hostname=""), "")
    with pytest.raises(ConfigError, match=r"robot_server\.clock"):
        make_backend(ServerConfig(backend="franka", franka=FrankaConfig(hostname=HOST)), "")
    with pytest.raises(ConfigError, match=r"robot_server\.franka\.hostname.*unreachable-robot"):
        make_backend(franka_config(hostname="unreachable-robot"), "")
    with pytest.raises(ConfigError, match=r"robot_server\.franka\.gripper"):
        make_backend(franka_config(hostname="nogripper-robot"), "")
    # A Robotiq that cannot be reached (no serial adapter here) names its section and port.
    with pytest.raises(ConfigError, match=r"robot_server\.franka\.robotiq.*ttyUSB0"):
        make_backend(franka_config(gripper="robotiq"), "")
    with pytest.raises(SchemaError, match=r"robot_server\.franka: home_speed_factor"):
        from_dict(ServerConfig, {"franka": {"home_speed_factor": 1.5}}, "robot_server")
    with pytest.raises(SchemaError, match=r"robot_server\.franka\.home_joint_positions_rad"):
        from_dict(ServerConfig, {"franka": {"home_joint_positions_rad": [0.0, 1.0]}}, "robot_server")
    with pytest.raises(SchemaError, match=r"robot_server\.franka\.gripper"):
        from_dict(ServerConfig, {"franka": {"gripper": "suction"}}, "robot_server")


@pytest.mark.timeout(10)
def test_collision_thresholds_reach_the_robot_before_any_controller_runs(arm):
    torques, forces = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0), (60.0, 60.0, 60.0, 25.0, 25.0, 25.0)
    backend, _, _ = arm(collision_torque_thresholds_nm=torques, collision_force_thresholds=forces)
    # Set (contact and collision alike) while no controller ran: the fake refuses them in motion.
    assert backend.panda.get_robot().collision_behavior == (list(torques), list(torques), list(forces), list(forces))
    assert backend.panda.controller is not None
    untouched, _, _ = arm()
    assert untouched.panda.get_robot().collision_behavior is None  # null: the robot's own setting
    for bad in ({"collision_torque_thresholds_nm": torques},
                {"collision_torque_thresholds_nm": torques[:6], "collision_force_thresholds": forces},
                {"collision_torque_thresholds_nm": torques, "collision_force_thresholds": (0.0, *forces[1:])}):
        with pytest.raises(SchemaError, match=r"robot_server\.franka: collision_"):
            from_dict(ServerConfig, {"franka": {"hostname": HOST, **{k: list(v) for k, v in bad.items()}}},
                      "robot_server")


@pytest.mark.timeout(10)
def test_impedance_and_realtime_settings_reach_panda_py(arm):
    backend, service, _ = arm(realtime="ignore", nullspace_stiffness_nm_per_rad=3.0, filter_coeff=0.5)
    import panda_py

    assert backend.panda.realtime_config == panda_py.libfranka.RealtimeConfig.kIgnore
    ctrl = backend.panda.controller
    np.testing.assert_allclose(np.diag(ctrl.impedance), [2000, 2000, 2000, 300, 300, 300])
    assert ctrl.nullspace_stiffness == 3.0 and ctrl.filter_coeff == 0.5
    params = ImpedanceParams(translational_stiffness_n_per_m=900.0, translational_damping_ns_per_m=30.0,
                             rotational_stiffness_nm_per_rad=40.0)
    assert isinstance(call(service, SetImpedance(params)), Ack)
    np.testing.assert_allclose(np.diag(ctrl.impedance), [900, 900, 900, 80, 80, 80])
    assert ctrl.damping_ratio == pytest.approx(30.0 / (2 * 30.0))
    assert ctrl.nullspace_stiffness == 3.0


# ---------------------------------------------------------------------------------- (g) server process


@pytest.mark.timeout(40)
def test_server_process_serves_the_franka_backend_to_the_unchanged_client(tmp_path, monkeypatch):
    config = tmp_path / "franka.yaml"
    config.write_text(
        "robot_server:\n"
        "  backend: franka\n"
        "  clock: realtime\n"
        "  safety:\n"
        "    workspace_min_m: [0.2, -0.3, 0.2]\n"
        "    workspace_max_m: [0.6, 0.3, 0.6]\n"
        "  franka:\n"
        f"    hostname: {HOST}\n"
        "    gripper: franka_hand\n"
    )
    # The child process imports the fake panda-py, exactly as it would import the real one.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(FAKE_DIR), os.environ.get("PYTHONPATH", "")) if p))
    server = start_server_process("", config=config, clock="realtime", extra_args=["--backend", "franka"], timeout_s=30)
    try:
        with RobotClient(server.endpoint, timeout_s=5.0) as client:
            info = client.info()
            assert info.backend == "franka" and info.task == "" and info.cameras == []
            assert info.clock == "realtime"
            np.testing.assert_allclose(info.home_position_m, [0.307, 0.0, 0.487], atol=1e-9)
            state = client.state()
            assert state.status == "ok", state.errors
            p0 = state.tcp_position_m
            reply = client.set_pose_target(np.array([5.0, 0.0, 0.4]), state.tcp_quaternion_wxyz)
            expected = np.clip(np.clip([5.0, 0.0, 0.4], BOX_MIN, BOX_MAX), p0 - SAFETY.max_step_m, p0 + SAFETY.max_step_m)
            np.testing.assert_allclose(reply.target_position_m, expected, atol=1e-9)
            deadline = time.monotonic() + 5.0
            while client.state().tcp_position_m[0] < p0[0] + 0.01:
                assert time.monotonic() < deadline, "the arm did not move"
                client.set_pose_target(expected, state.tcp_quaternion_wxyz)
                time.sleep(0.05)
            client.set_gripper(0.5)
            cleared = client.clear_errors()
            assert cleared.status in ("ok", "holding") and cleared.errors == []
    except BaseException:
        print(server.log_tail())
        raise
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()
