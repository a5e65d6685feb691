"""Wire codec on robot messages: every kind round-trips; every malformed request is refused by code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from robot_test_support import assert_mentions, bad_requests

from hilrl.robot_server.server import REQUEST_LIMITS
from hilrl.transport.codec import PROTOCOL_VERSION, ProtocolError, decode, encode
from hilrl.transport.robot_messages import (
    ROBOT_MESSAGES,
    Ack,
    Advance,
    ClearErrors,
    ErrorReply,
    GetInfo,
    GetState,
    GoHome,
    Images,
    ImpedanceParams,
    Render,
    RobotState,
    ServerInfo,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
    Stop,
)

pytestmark = pytest.mark.timeout(30)

_RNG = np.random.default_rng(0)


def _state(**overrides) -> RobotState:
    values = dict(
        robot_time_s=1.25,
        tcp_position_m=np.array([0.4, 0.1, 0.3]),
        tcp_quaternion_wxyz=np.array([0.0, 1.0, 0.0, 0.0]),
        tcp_linear_velocity_m_per_s=np.array([0.01, -0.02, 0.0]),
        tcp_angular_velocity_rad_per_s=np.zeros(3),
        tcp_force_n=np.array([0.0, 0.0, -3.5]),
        tcp_torque_nm=np.zeros(3),
        joint_positions_rad=_RNG.uniform(-1, 1, 7),
        joint_velocities_rad_per_s=_RNG.uniform(-1, 1, 7),
        gripper_opening=0.3,
        target_position_m=np.array([0.41, 0.1, 0.3]),
        target_quaternion_wxyz=np.array([0.0, 1.0, 0.0, 0.0]),
        status="holding",
        errors=["joint_limit: joint 4 at 2.9 rad"],
        task_success=False,
        object_state=np.array([0.5, 0.1, 0.02]),
    )
    values.update(overrides)
    return RobotState(**values)


EVERY_KIND = {
    "get_info": GetInfo(),
    "get_state": GetState(),
    "set_pose_target": SetPoseTarget(np.array([0.5, 0.0, 0.2]), np.array([0.0, 1.0, 0.0, 0.0])),
    "set_gripper": SetGripper(0.25),
    "go_home": GoHome(position_noise_m=0.02, rotation_noise_rad=0.1, seed=3),
    "set_impedance": SetImpedance(ImpedanceParams(translational_stiffness_n_per_m=1500.0)),
    "clear_errors": ClearErrors(),
    "stop": Stop(reason="pendant"),
    "render": Render(["front", "wrist"]),
    "advance": Advance(periods=5),
    "ack": Ack(),
    "error": ErrorReply("bad_field", "set_gripper.opening: out of range"),
    "server_info": ServerInfo(
        backend="sim", task="reach", clock="lockstep", control_period_s=0.1, cameras=["front", "wrist"],
        home_position_m=np.array([0.45, 0.0, 0.25]), home_quaternion_wxyz=np.array([0.0, 1.0, 0.0, 0.0]),
        workspace_min_m=np.array([0.25, -0.35, 0.0]), workspace_max_m=np.array([0.75, 0.35, 0.45]),
        watchdog_timeout_s=0.2,
    ),
    "robot_state": _state(),
    "robot_state_minimal": _state(task_success=None, object_state=None, errors=[], status="ok"),
    "images": Images(["front"], _RNG.integers(0, 255, (1, 16, 24, 3), dtype=np.uint8), capture_time_s=2.0),
}


def _assert_same(a, b) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif dataclasses.is_dataclass(x):
            _assert_same(x, y)
        else:
            assert x == y, f.name


def test_every_registered_robot_kind_is_covered():
    covered = {ROBOT_MESSAGES.kind_of(m) for m in EVERY_KIND.values()}
    assert covered == set(ROBOT_MESSAGES._by_kind)


@pytest.mark.parametrize("name", list(EVERY_KIND))
def test_round_trip(name):
    msg = EVERY_KIND[name]
    frames = encode(msg, ROBOT_MESSAGES, sender="client-1", seq=42)
    # Through bytes, as a socket would deliver them.
    envelope, decoded = decode([bytes(f) for f in frames], ROBOT_MESSAGES, REQUEST_LIMITS)
    assert envelope.kind == ROBOT_MESSAGES.kind_of(msg)
    assert envelope.sender == "client-1" and envelope.seq == 42 and envelope.time_s > 0
    _assert_same(msg, decoded)


def test_decoded_arrays_are_read_only_views():
    msg = EVERY_KIND["set_pose_target"]
    _, decoded = decode([bytes(f) for f in encode(msg, ROBOT_MESSAGES)], ROBOT_MESSAGES)
    with pytest.raises(ValueError):
        decoded.position_m[0] = 1.0


@pytest.mark.parametrize("bad", bad_requests(REQUEST_LIMITS.max_frame_bytes), ids=lambda b: b.name)
def test_malformed_request_is_refused_with_its_code(bad):
    with pytest.raises(ProtocolError) as info:
        decode(bad.frames, ROBOT_MESSAGES, REQUEST_LIMITS)
    assert info.value.code == bad.code, str(info.value)
    assert_mentions(str(info.value), bad.mentions)


def test_oversized_header_and_too_many_frames_are_refused():
    with pytest.raises(ProtocolError) as info:
        decode([b" " * (REQUEST_LIMITS.max_header_bytes + 1)], ROBOT_MESSAGES, REQUEST_LIMITS)
    assert info.value.code == "too_large" and "header" in str(info.value)
    with pytest.raises(ProtocolError) as info:
        decode([b"{}"] * (REQUEST_LIMITS.max_frames + 1), ROBOT_MESSAGES, REQUEST_LIMITS)
    assert info.value.code == "too_large" and "frames" in str(info.value)


def test_non_finite_header_values_are_refused():
    header = f'{{"v":{PROTOCOL_VERSION},"kind":"set_gripper","body":{{"opening":NaN}}}}'.encode()
    with pytest.raises(ProtocolError) as info:
        decode([header], ROBOT_MESSAGES)
    assert info.value.code == "bad_field" and "opening" in str(info.value)
    header = f'{{"v":{PROTOCOL_VERSION},"kind":"get_state","time_s":Infinity}}'.encode()
    with pytest.raises(ProtocolError) as info:
        decode([header], ROBOT_MESSAGES)
    assert info.value.code == "garbled" and "time_s" in str(info.value)


def test_empty_message_is_refused():
    with pytest.raises(ProtocolError) as info:
        decode([], ROBOT_MESSAGES)
    assert info.value.code == "garbled"
