"""The Robotiq gripper behind the franka backend's GripperDriver (robot_server/franka/gripper.py
RobotiqHand), against the emulated gripper on a real Modbus TCP socket."""

from __future__ import annotations

import time

import pytest
from robotiq_emulator import RobotiqEmulator

from hilrl.hardware.robotiq import RobotiqConfig
from hilrl.robot_server.franka.gripper import RobotiqHand


@pytest.fixture
def emulator():
    emu = RobotiqEmulator().start()
    yield emu
    emu.stop()


def hand_for(emu: RobotiqEmulator) -> RobotiqHand:
    return RobotiqHand(RobotiqConfig(transport="tcp", host=emu.host, port_number=emu.port, timeout_s=0.1,
                                     retries=1, activation_timeout_s=2.0, poll_period_s=0.01))


def wait_for(pred, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.timeout(30)
def test_commands_return_at_once_and_the_fingers_follow(emulator):
    hand = hand_for(emulator)
    try:
        started = time.monotonic()
        hand.grasp()
        assert time.monotonic() - started < 0.01  # never waits on Modbus
        assert wait_for(lambda: hand.opening() < 0.05), hand.opening()
        hand.set_opening(0.6)
        assert wait_for(lambda: abs(hand.opening() - 0.6) < 0.03), hand.opening()
    finally:
        hand.close()


@pytest.mark.timeout(30)
def test_a_lost_link_is_logged_once_and_recovers(emulator, caplog):
    hand = hand_for(emulator)
    try:
        emulator.drop_requests(None)  # stop answering
        hand.set_opening(0.2)
        assert wait_for(lambda: hand.last_error is not None)
        time.sleep(0.3)
        warnings = [r for r in caplog.records if "robotiq gripper" in r.getMessage()]
        assert len(warnings) == 1
        emulator.drop_requests(0)
        # The command survived the outage and is sent once the link is back.
        assert wait_for(lambda: abs(hand.opening() - 0.2) < 0.03, 5.0), hand.opening()
        assert hand.last_error is None
    finally:
        hand.close()
