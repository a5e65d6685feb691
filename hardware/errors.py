"""The drivers' errors, in a module with no dependencies, so any layer can catch them without
loading a driver (or its library: pyrealsense2, pymodbus, pyspacemouse, pygame).

    RobotError                  the arm or one of its devices failed (the robot client's errors too)
      GripperError              a gripper transaction failed after every retry, or a wait timed out
        GripperFaultError       the gripper reports a fault (hilrl.hardware.robotiq: it carries a status)
    CameraNotFoundError         a requested RealSense serial is not connected
    InputDeviceError            an operator input device (SpaceMouse, keyboard, gamepad) cannot be used
"""

from __future__ import annotations

from collections.abc import Sequence


class RobotError(Exception):
    """The arm or one of its devices failed: the base of the robot client's errors
    (`hilrl.robot_server.client`) and of the gripper drivers' errors."""


class GripperError(RobotError):
    """A gripper transaction failed after every retry, or a wait ran out of time.

    Attributes:
        operation: what was being done ("read status", "write command", "connect", ...).
        unit_id: Modbus unit id.
        address: first register of the transaction (None when no register was involved).
        last_error: text of the last failure.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        unit_id: int | None = None,
        address: int | None = None,
        last_error: str = "",
    ):
        self.operation = operation
        self.unit_id = unit_id
        self.address = address
        self.last_error = last_error
        super().__init__(message)


class CameraNotFoundError(RuntimeError):
    """A requested RealSense serial is not connected.

    Attributes:
        requested: the missing serials (with the camera's name where one was given).
        connected: the serials connected when the check ran.
    """

    def __init__(self, requested: Sequence[str], connected: Sequence[str]):
        self.requested = list(requested)
        self.connected = list(connected)
        found = f"connected: {', '.join(self.connected)}" if self.connected else "no RealSense connected"
        plural = "s" if len(self.requested) > 1 else ""
        super().__init__(f"RealSense camera{plural} {', '.join(self.requested)} not found ({found})")


class InputDeviceError(RuntimeError):
    """An operator input device cannot be used; the message says why and how to fix it."""
