"""Robotiq gripper driver against a real pymodbus server on loopback (robotiq_emulator.py).

Covers activation, motion to targets, status decoding, a grasp stopped by an object, fault
statuses, Modbus exception replies and silence (bounded retries, bounded time), bad commands,
stroke conversion, config validation, and the RTU client (its serial parameters, and RTU framing
end to end through pyserial's socket:// URL)."""

from __future__ import annotations

import math
import socket
import time

import pytest

# The emulator uses pymodbus 3.16's SimDevice datastore and its per-request action hook.
pytest.importorskip("pymodbus", minversion="3.16")

from pymodbus import FramerType  # noqa: E402
from pymodbus.client import ModbusSerialClient, ModbusTcpClient  # noqa: E402

from hilrl.hardware.errors import (
    GripperError,  # noqa: E402
    RobotError,  # noqa: E402
)
from hilrl.hardware.robotiq import (  # noqa: E402
    COMMAND_ADDRESS,
    STATUS_ADDRESS,
    GripperFaultError,
    RobotiqConfig,
    RobotiqGripper,
    build_client,
    decode_status,
    encode_command,
    opening_to_position,
)
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402

# This folder is on sys.path (pytest's prepend import mode, no __init__.py).
from robotiq_emulator import RobotiqEmulator  # noqa: E402  # isort: skip

pytestmark = pytest.mark.timeout(20)

ONE_STEP = 1.0 / 255  # one position count, normalised


# Fixtures live here rather than in a conftest.py: the folder is shared with other drivers' tests.


@pytest.fixture
def emulators():
    """`emulators(**kwargs)` starts a RobotiqEmulator; all of them stop at teardown."""
    started: list[RobotiqEmulator] = []

    def start(**kwargs) -> RobotiqEmulator:
        emulator = RobotiqEmulator(**kwargs)
        started.append(emulator)
        return emulator.start()

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(emulators) -> RobotiqEmulator:
    """One Modbus TCP emulated gripper with the default timings."""
    return emulators()


@pytest.fixture
def grippers():
    """Connect grippers with `grippers(emulator, **config)`; all closed at teardown."""
    opened: list[RobotiqGripper] = []

    def connect(emulator: RobotiqEmulator, **overrides) -> RobotiqGripper:
        settings = {
            "transport": "tcp",
            "host": emulator.host,
            "port_number": emulator.port,
            "timeout_s": 0.1,
            "retries": 2,
            "activation_timeout_s": 2.0,
            "move_timeout_s": 3.0,
            "poll_period_s": 0.01,
        }
        settings.update(overrides)
        gripper = RobotiqGripper(RobotiqConfig(**settings))
        opened.append(gripper)
        gripper.connect()
        return gripper

    yield connect
    for gripper in opened:
        gripper.close()


@pytest.fixture
def gripper(emulator, grippers) -> RobotiqGripper:
    """A connected (not yet activated) gripper on `emulator`."""
    return grippers(emulator)


def _writes(emulator, since: int = 0):
    return [r for r in emulator.requests[since:] if r.function_code == 16]


# -- activation ------------------------------------------------------------------------------


def test_activate_resets_then_sets_ract_and_waits_for_gsta_3(emulators, grippers):
    emulator = emulators(activation_s=0.15)
    gripper = grippers(emulator)
    assert not gripper.status().activated

    started = time.monotonic()
    status = gripper.activate()
    elapsed = time.monotonic() - started

    assert status.activated and status.activation_state == 3 and status.fault_code == 0
    assert elapsed >= 0.15  # it waited for the gripper, not just for the write
    writes = _writes(emulator)
    assert [(w.address, w.values) for w in writes[:2]] == [
        (COMMAND_ADDRESS, [0x0000, 0, 0]),  # reset: rACT = 0
        (COMMAND_ADDRESS, [0x0100, 0, 0]),  # activate: rACT = 1
    ]
    reads = [r for r in emulator.requests if r.function_code == 4]
    assert reads and all((r.address, r.count) == (STATUS_ADDRESS, 3) for r in reads)


def test_activation_that_never_completes_fails_in_bounded_time(emulators, grippers):
    emulator = emulators(activation_s=60.0)
    gripper = grippers(emulator)
    started = time.monotonic()
    with pytest.raises(GripperError, match=r"not activated within 0.3 s.*gSTA=1") as info:
        gripper.activate(timeout_s=0.3)
    assert time.monotonic() - started < 1.5
    assert info.value.operation == "activate"


def test_activation_fault_is_raised_with_its_message(emulator, gripper):
    emulator.set_fault(0x0D, sticky=True)
    with pytest.raises(GripperFaultError, match="activation fault") as info:
        gripper.activate()
    assert info.value.fault_code == 0x0D
    assert isinstance(info.value, RobotError)


# -- motion ----------------------------------------------------------------------------------


def test_close_open_and_move_reach_their_targets(emulator, gripper):
    gripper.activate()

    closed = gripper.close_fingers()
    assert closed.opening == pytest.approx(0.0, abs=ONE_STEP)
    assert closed.object_state == 3 and not closed.object_detected and not closed.moving
    assert closed.opening_m == pytest.approx(0.0, abs=0.085 * ONE_STEP)

    opened = gripper.open_fingers()
    assert opened.opening == pytest.approx(1.0, abs=ONE_STEP)
    assert opened.opening_m == pytest.approx(0.085, abs=0.085 * ONE_STEP)

    middle = gripper.move(0.4)
    assert middle.opening == pytest.approx(0.4, abs=ONE_STEP)
    assert middle.requested_opening == pytest.approx(0.4, abs=ONE_STEP)
    assert emulator.snapshot().position == pytest.approx(opening_to_position(0.4), abs=0.5)


def test_command_registers_carry_position_speed_and_force(emulator, gripper):
    gripper.activate()
    before = len(emulator.requests)
    gripper.move(0.25, speed=0.5, force=0.2)
    first_write = _writes(emulator, before)[0]
    assert first_write.address == COMMAND_ADDRESS
    # byte0 = rACT|rGTO, byte3 = rPR, byte4 = rSP, byte5 = rFR (big-endian register pairs)
    assert first_write.values == [0x0900, 191, (128 << 8) | 51]
    assert encode_command(0x09, 191, 128, 51) == first_write.values


def test_speed_scales_the_motion_time(emulators, grippers):
    emulator = emulators(full_stroke_s=0.1)
    gripper = grippers(emulator)
    gripper.activate()
    gripper.open_fingers()

    started = time.monotonic()
    gripper.move(0.0, speed=1.0)
    fast_s = time.monotonic() - started
    gripper.open_fingers()
    started = time.monotonic()
    gripper.move(0.0, speed=0.0)
    slow_s = time.monotonic() - started

    assert slow_s > 2 * fast_s
    assert slow_s >= 0.1 / 0.15 * 0.9  # the emulator's slowest speed is 15 % of the fastest


def test_set_opening_returns_while_the_fingers_still_move(emulators, grippers):
    emulator = emulators(full_stroke_s=1.0)
    gripper = grippers(emulator)
    gripper.activate()
    started = time.monotonic()
    status = gripper.set_opening(0.0)
    assert time.monotonic() - started < 0.3
    assert status.opening > 0.5  # barely started
    final = gripper.wait_until_stopped()
    assert final.opening == pytest.approx(0.0, abs=ONE_STEP)


def test_set_gripper_has_the_robot_interface_semantics(emulator, gripper):
    gripper.activate()
    assert gripper.set_gripper(0.0) is None  # 0.0 = closed, no wait
    assert gripper.wait_until_stopped().opening == pytest.approx(0.0, abs=ONE_STEP)
    gripper.set_gripper(1.0)  # 1.0 = open
    assert gripper.wait_until_stopped().opening == pytest.approx(1.0, abs=ONE_STEP)


def test_wait_until_stopped_gives_up_at_its_deadline(emulators, grippers):
    emulator = emulators(full_stroke_s=20.0)
    gripper = grippers(emulator)
    gripper.activate()
    started = time.monotonic()
    with pytest.raises(GripperError, match="still moving after 0.2 s") as info:
        gripper.move(0.0, timeout_s=0.2)
    assert time.monotonic() - started < 1.0
    assert info.value.operation == "wait_until_stopped"


# -- status decoding -------------------------------------------------------------------------


def test_status_decoding_of_the_manual_examples():
    # 2F-85 manual: opening completed: 07D0 = F900, 07D1 = 0000, 07D2 = 0D00.
    done = decode_status([0xF900, 0x0000, 0x0D00], stroke_m=0.085)
    assert done.activated and done.go_to and not done.moving and not done.object_detected
    assert done.object_state == 3 and done.position == 0x0D and done.position_request == 0
    assert done.opening == pytest.approx((255 - 13) / 255)
    assert done.opening_m == pytest.approx(0.085 * (255 - 13) / 255)

    # Grasp completed: B900 00FF BD00 -> contact while closing at 189/255.
    grasp = decode_status([0xB900, 0x00FF, 0xBD00], stroke_m=0.085)
    assert grasp.object_detected and grasp.object_state == 2 and grasp.position == 189
    assert grasp.requested_opening == 0.0

    # Still moving: 3900 0000 BB10 -> gOBJ 0, current 0x10 (about 160 mA).
    moving = decode_status([0x3900, 0x0000, 0xBB10], stroke_m=0.085)
    assert moving.moving and not moving.object_detected
    assert moving.current_a == pytest.approx(0.16)

    # Activation in progress: 1100.
    activating = decode_status([0x1100, 0, 0], stroke_m=0.085)
    assert activating.activation_state == 1 and not activating.activated and not activating.moving

    # Contact while opening, a fault, and a gateway fault in the high nibble.
    opening_contact = decode_status([0x7900, 0x0E00, 0x4000], stroke_m=0.05)
    assert opening_contact.object_detected and opening_contact.object_state == 1
    assert opening_contact.fault_code == 0x0E and "overcurrent" in opening_contact.fault_message
    gateway = decode_status([0x3100, 0x9000, 0], stroke_m=0.05)
    assert gateway.fault_code == 0 and gateway.controller_fault == 9
    assert "kFLT 0x9" in gateway.fault_message
    unknown = decode_status([0x3100, 0x0100, 0], stroke_m=0.05)
    assert unknown.fault_message == "unknown fault 0x01"


def test_status_read_from_the_emulator_mid_motion(emulators, grippers):
    emulator = emulators(full_stroke_s=2.0)
    gripper = grippers(emulator)
    gripper.activate()
    gripper.set_opening(0.0, force=1.0)
    time.sleep(0.15)
    status = gripper.status()
    assert status.moving and status.go_to and status.activated
    assert status.current_a > 0
    assert 0.0 < status.opening < 1.0
    assert status.requested_opening == 0.0


def test_holding_register_status_reads_use_fc03(emulator, grippers):
    gripper = grippers(emulator, status_registers="holding")
    gripper.activate()
    reads = [r for r in emulator.requests if r.function_code in (3, 4)]
    assert reads and {r.function_code for r in reads} == {3}
    assert gripper.move(0.5).opening == pytest.approx(0.5, abs=ONE_STEP)


# -- grasping --------------------------------------------------------------------------------


def test_object_detected_mid_close(emulator, gripper):
    gripper.activate()
    gripper.open_fingers()
    emulator.set_obstacle(0.4)

    status = gripper.close_fingers()

    assert status.object_detected and status.object_state == 2 and not status.moving
    assert status.opening == pytest.approx(0.4, abs=ONE_STEP)
    assert status.opening_m == pytest.approx(0.4 * 0.085, abs=0.085 * ONE_STEP)
    assert status.current_a > 0  # holding the object

    released = gripper.open_fingers()  # away from the object
    assert not released.object_detected and released.opening == pytest.approx(1.0, abs=ONE_STEP)


# -- faults ----------------------------------------------------------------------------------


def test_fault_status_raises_gripper_fault_error_with_the_message(emulator, gripper):
    gripper.activate()
    emulator.set_fault(0x0E)

    with pytest.raises(GripperFaultError, match=r"fault 0x0E: overcurrent triggered") as info:
        gripper.move(0.0)
    assert info.value.fault_code == 0x0E
    assert info.value.status.fault_code == 0x0E
    with pytest.raises(GripperFaultError, match="overcurrent"):
        gripper.set_gripper(0.5)

    # A reset and re-activation clears a (non-sticky) fault, as on the real gripper.
    gripper.activate()
    assert gripper.move(0.5).fault_code == 0


def test_motion_before_activation_is_refused_without_writing(emulator, gripper):
    # Writing rACT = 1 to a gripper in reset would start an activation (the fingers sweep).
    with pytest.raises(GripperError, match=r"not activated \(gSTA=0\): call activate\(\) first"):
        gripper.set_opening(0.0)
    assert not _writes(emulator)
    gripper.activate()
    assert gripper.move(0.0).opening == pytest.approx(0.0, abs=ONE_STEP)


def test_a_gripper_reset_by_someone_else_reports_fault_0x07(emulator, gripper):
    gripper.activate()
    gripper.move(0.5)
    emulator.set_fault(0x07)  # e.g. another master cleared rACT and asked for a motion
    with pytest.raises(GripperFaultError, match="activation bit must be set") as info:
        gripper.set_opening(0.0)
    assert info.value.fault_code == 0x07


# -- link failures ---------------------------------------------------------------------------


def test_exception_replies_are_retried_then_succeed(emulator, grippers):
    gripper = grippers(emulator, retries=3)
    before = emulator.request_count()
    emulator.reply_exception(0x06, count=2)  # slave device busy, twice
    status = gripper.status()
    assert status.activation_state == 0
    assert emulator.request_count() - before == 3  # two busy replies, then the answer


@pytest.mark.parametrize(
    ("code", "name"), [(0x02, "illegal data address"), (0x04, "slave device failure")]
)
def test_exception_replies_exhaust_the_retries_into_gripper_error(emulator, grippers, code, name):
    gripper = grippers(emulator, retries=2)
    gripper.activate()
    emulator.reply_exception(code)  # every request

    before = emulator.request_count()
    with pytest.raises(GripperError) as info:
        gripper.status()
    message = str(info.value)
    assert "read status failed after 3 tries" in message
    assert "unit 9" in message and "0x07D0" in message
    assert f"Modbus exception 0x{code:02X} ({name})" in message
    assert (info.value.operation, info.value.address, info.value.unit_id) == (
        "read status",
        0x07D0,
        9,
    )
    assert emulator.request_count() - before == 3
    assert not isinstance(info.value, GripperFaultError)

    with pytest.raises(GripperError, match=r"write command failed.*0x03E8") as info:
        gripper.set_opening(0.5)
    assert info.value.address == COMMAND_ADDRESS


@pytest.mark.timeout(10)
def test_no_reply_raises_gripper_error_in_bounded_time(emulator, grippers):
    timeout_s, retries = 0.1, 3
    gripper = grippers(emulator, timeout_s=timeout_s, retries=retries)
    gripper.status()  # connected and answering
    emulator.drop_requests(None)
    before = emulator.request_count()

    started = time.monotonic()
    with pytest.raises(
        GripperError, match=r"read status failed after 4 tries.*No response"
    ) as info:
        gripper.status()
    elapsed = time.monotonic() - started

    assert (retries + 1) * timeout_s * 0.9 <= elapsed < (retries + 1) * timeout_s + 0.5
    assert elapsed <= gripper.config.max_transaction_s
    assert emulator.request_count() - before == retries + 1
    assert "ModbusIOException" in info.value.last_error

    emulator.clear_injections()
    assert gripper.status().activation_state == 0  # the driver recovers once the gripper answers


def test_a_late_reply_is_never_taken_for_the_next_answer(emulator, grippers):
    gripper = grippers(emulator, timeout_s=0.1, retries=2)
    gripper.activate()
    gripper.move(1.0)
    emulator.delay_replies(0.3, count=1)  # the first try's reply comes after the timeout

    before = emulator.request_count()
    status = gripper.status()
    assert emulator.request_count() - before == 2  # retried once, on a fresh connection
    assert status.activated and status.opening == pytest.approx(1.0, abs=ONE_STEP)
    time.sleep(0.3)  # the late reply has been sent (to the closed connection) by now
    assert gripper.move(0.0).opening == pytest.approx(0.0, abs=ONE_STEP)


@pytest.mark.timeout(10)
def test_unreachable_gateway_fails_to_connect_in_bounded_time():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gripper = RobotiqGripper(
        RobotiqConfig(transport="tcp", port_number=port, timeout_s=0.1, retries=2)
    )
    started = time.monotonic()
    with pytest.raises(
        GripperError, match=rf"connect failed after 3 tries.*127.0.0.1:{port}"
    ) as info:
        gripper.connect()
    assert time.monotonic() - started < gripper.config.max_transaction_s
    assert info.value.operation == "connect"
    gripper.close()


# -- bad commands ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, 1.5, -0.1, math.inf, "0.5", None, True])
def test_bad_commands_are_rejected_before_anything_is_sent(emulator, gripper, value):
    gripper.activate()
    before = emulator.request_count()
    with pytest.raises(ValueError, match="opening"):
        gripper.move(value)
    with pytest.raises(ValueError, match="opening"):
        gripper.set_gripper(value)
    if value is not None:  # None means the configured default
        with pytest.raises(ValueError, match="speed"):
            gripper.move(0.5, speed=value)
        with pytest.raises(ValueError, match="force"):
            gripper.set_opening(0.5, force=value)
    assert emulator.request_count() == before


def test_bad_wait_limits_and_metric_openings_are_rejected(emulator, gripper):
    with pytest.raises(ValueError, match="opening_m"):
        gripper.move_m(0.09)  # wider than the 2F-85's 85 mm
    with pytest.raises(ValueError, match="timeout_s"):
        gripper.wait_until_stopped(timeout_s=math.nan)
    with pytest.raises(ValueError, match="timeout_s"):
        gripper.activate(timeout_s=-1.0)


# -- models and stroke -----------------------------------------------------------------------


@pytest.mark.parametrize(("model", "stroke_m"), [("2f85", 0.085), ("hande", 0.050)])
def test_stroke_conversion_per_model(emulator, grippers, model, stroke_m):
    assert RobotiqConfig(model=model).stroke_m == stroke_m
    gripper = grippers(emulator, model=model)
    gripper.activate()
    status = gripper.move_m(0.030)
    assert status.opening == pytest.approx(0.030 / stroke_m, abs=ONE_STEP)
    assert status.opening_m == pytest.approx(0.030, abs=stroke_m * ONE_STEP)
    assert gripper.open_fingers().opening_m == pytest.approx(stroke_m, abs=stroke_m * ONE_STEP)


def test_custom_stroke_overrides_the_model():
    assert RobotiqConfig(model="hande", stroke_m=0.04).stroke_m == 0.04


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "3f"}, "model"),
        ({"transport": "udp"}, "transport"),
        ({"transport": "rtu", "port": ""}, "port"),
        ({"baudrate": 0}, "baudrate"),
        ({"port_number": 70000}, "port_number"),
        ({"unit_id": 0}, "unit_id"),
        ({"unit_id": 248}, "unit_id"),
        ({"retries": -1}, "retries"),
        ({"retries": 11}, "retries"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"timeout_s": math.nan}, "timeout_s"),
        ({"activation_timeout_s": -1.0}, "activation_timeout_s"),
        ({"move_timeout_s": math.inf}, "move_timeout_s"),
        ({"poll_period_s": 0.0}, "poll_period_s"),
        ({"speed": 1.5}, "speed"),
        ({"force": math.nan}, "force"),
        ({"status_registers": "coils"}, "status_registers"),
        ({"stroke_m": -0.01}, "stroke_m"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        RobotiqConfig(**overrides)


def test_config_from_a_yaml_mapping():
    config = from_dict(
        RobotiqConfig,
        {
            "model": "hande",
            "transport": "tcp",
            "host": "127.0.0.1",
            "port_number": 5020,
            "unit_id": 9,
        },
        "gripper",
    )
    assert config.stroke_m == 0.05 and config.endpoint == "tcp://127.0.0.1:5020"
    with pytest.raises(SchemaError, match=r"gripper\.unit_d.*did you mean 'unit_id'"):
        from_dict(RobotiqConfig, {"unit_d": 9}, "gripper")
    with pytest.raises(SchemaError, match=r"gripper: unit_id must be in 1..247"):
        from_dict(RobotiqConfig, {"unit_id": 300}, "gripper")


# -- RTU -------------------------------------------------------------------------------------


def test_rtu_client_is_built_with_the_gripper_serial_settings():
    pytest.importorskip("serial")  # pymodbus' serial client needs pyserial (pymodbus[serial])
    config = RobotiqConfig(transport="rtu", port="/dev/ttyUSB7", timeout_s=0.3)
    client = build_client(config)  # not opened: there is no serial hardware here
    assert isinstance(client, ModbusSerialClient)
    params = client.comm_params
    assert (params.host, params.baudrate, params.bytesize, params.parity, params.stopbits) == (
        "/dev/ttyUSB7",
        115200,
        8,
        "N",
        1,
    )
    assert params.timeout_connect == 0.3
    assert client.retries == 0  # the driver retries, so it bounds the total time
    assert type(client.framer).__name__ == "FramerRTU"
    assert not client.connected
    assert config.unit_id == 9 and config.endpoint == "rtu:/dev/ttyUSB7"

    tcp = build_client(RobotiqConfig(transport="tcp", port_number=5020))
    assert isinstance(tcp, ModbusTcpClient)
    assert (tcp.comm_params.host, tcp.comm_params.port) == ("127.0.0.1", 5020)
    assert type(tcp.framer).__name__ == "FramerSocket"
    assert FramerType.RTU.value == "rtu"


def test_rtu_frames_end_to_end_over_a_socket_url(emulators, grippers):
    # pyserial's socket:// URL carries the RTU frames (with their CRC) over loopback TCP to a
    # server that uses the RTU framer: the serial client's whole code path but the UART.
    pytest.importorskip("serial")
    emulator = emulators(framer="rtu")
    gripper = grippers(
        emulator, transport="rtu", port=f"socket://127.0.0.1:{emulator.port}", timeout_s=0.2
    )
    assert isinstance(gripper._client, ModbusSerialClient)
    assert gripper.activate().activated
    assert gripper.move(0.5).opening == pytest.approx(0.5, abs=ONE_STEP)
    emulator.reply_exception(0x04)
    with pytest.raises(GripperError, match=r"unit 9 at rtu:socket://.*slave device failure"):
        gripper.status()


def test_older_pymodbus_unit_keyword_is_used():
    # pymodbus < 3.10 calls the unit id `slave=`; the driver asks the client which it takes.
    class OldClient:
        def __init__(self):
            self.calls = []

        def connect(self):
            return True

        def close(self):
            pass

        def read_input_registers(self, address, *, count=1, slave=1, no_response_expected=False):
            self.calls.append(("read", address, count, slave))
            return type("Reply", (), {"registers": [0x3100, 0, 0], "isError": lambda self: False})()

        def write_registers(self, address, values, *, slave=1, no_response_expected=False):
            self.calls.append(("write", address, list(values), slave))
            return type("Reply", (), {"isError": lambda self: False})()

    client = OldClient()
    gripper = RobotiqGripper(RobotiqConfig(unit_id=7), client=client)
    assert gripper.activate().activated
    assert client.calls[:3] == [
        ("write", COMMAND_ADDRESS, [0, 0, 0], 7),
        ("write", COMMAND_ADDRESS, [0x0100, 0, 0], 7),
        ("read", STATUS_ADDRESS, 3, 7),
    ]
