"""Fake `panda_py.libfranka`: the slice of panda-py's libfranka binding the franka backend uses.

Names, argument orders and layouts follow panda-py's bindings (src/libfranka.cpp and the
libfranka.pyi stub): `RobotState` arrays are flat lists, transforms 16 values column-major, the
Jacobian 42 values column-major (6x7); `Gripper` commands block until the fingers stop and can be
aborted with `stop()` from another thread.
"""

from __future__ import annotations

import enum
import threading
import time

import numpy as np

from panda_py import _arm


class RobotMode(enum.Enum):
    kOther = 0
    kIdle = 1
    kMove = 2
    kGuiding = 3
    kReflex = 4
    kUserStopped = 5
    kAutomaticErrorRecovery = 6


class Frame(enum.Enum):
    kJoint1 = 0
    kJoint2 = 1
    kJoint3 = 2
    kJoint4 = 3
    kJoint5 = 4
    kJoint6 = 5
    kJoint7 = 6
    kFlange = 7
    kEndEffector = 8
    kStiffness = 9


class RealtimeConfig(enum.Enum):
    kEnforce = 0
    kIgnore = 1


ERROR_NAMES = (
    "cartesian_reflex",
    "joint_reflex",
    "communication_constraints_violation",
    "power_limit_violation",
    "joint_position_limits_violation",
    "self_collision_avoidance_violation",
)


class Errors:
    """libfranka's error flags: one bool attribute per error, falsy when none is set."""

    def __init__(self, active: frozenset[str] | set[str] = frozenset()):
        for name in ERROR_NAMES:
            setattr(self, name, name in active)

    def __bool__(self) -> bool:
        return any(getattr(self, n) for n in ERROR_NAMES)

    def __repr__(self) -> str:
        return "[" + ", ".join(f'"{n}"' for n in ERROR_NAMES if getattr(self, n)) + "]"


class Duration:
    def __init__(self, milliseconds: int = 0):
        self._ms = int(milliseconds)

    def to_sec(self) -> float:
        return self._ms / 1000.0

    def to_msec(self) -> int:
        return self._ms


class RobotState:
    """A snapshot; attributes as in libfranka (only those the backend reads are filled in)."""

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class Model:
    def zero_jacobian(self, frame: Frame, robot_state: RobotState) -> list[float]:
        if frame != Frame.kEndEffector or not isinstance(robot_state, RobotState):
            raise TypeError("zero_jacobian(frame: Frame, robot_state: RobotState)")
        return [float(v) for v in _arm.JACOBIAN.flatten(order="F")]

    def pose(self, frame: Frame, q, F_T_EE, EE_T_K) -> list[float]:
        q = np.asarray(q, dtype=np.float64)
        if frame != Frame.kEndEffector or q.shape != (7,) or len(F_T_EE) != 16 or len(EE_T_K) != 16:
            raise TypeError("pose(frame: Frame, q: 7 floats, F_T_EE: 16 floats, EE_T_K: 16 floats)")
        return _arm.column_major(*_arm.fk(q))


class Robot:
    """`Panda.get_robot()`: `read_once` (a fresh state) and `set_collision_behavior` (recorded in
    `collision_behavior`; refused while a controller runs, as libfranka refuses commands in
    motion)."""

    def __init__(self, panda):
        self._panda = panda
        self.collision_behavior: tuple[list[float], ...] | None = None

    def read_once(self) -> RobotState:
        return self._panda.get_state()

    def set_collision_behavior(self, lower_torque_thresholds, upper_torque_thresholds, lower_force_thresholds,
                               upper_force_thresholds) -> None:
        args = [list(map(float, v)) for v in (lower_torque_thresholds, upper_torque_thresholds,
                                              lower_force_thresholds, upper_force_thresholds)]
        if [len(a) for a in args] != [7, 7, 6, 6]:
            raise TypeError("set_collision_behavior(7 torques, 7 torques, 6 forces, 6 forces)")
        if self._panda.controller is not None:
            raise RuntimeError("libfranka: command rejected: command not possible in the current mode (\"Move\")")
        self.collision_behavior = tuple(args)


class GripperState:
    def __init__(self, width: float, max_width: float, is_grasped: bool, time_ms: int):
        self.width = width
        self.max_width = max_width
        self.is_grasped = is_grasped
        self.temperature = 30
        self.time = Duration(time_ms)


class Gripper:
    """A Franka Hand: fingers move at the commanded speed; `object_width_m` (set by a test) is an
    object between the fingers that a closing motion stops on.

    Test hooks: `calls` (every command with its arguments), `object_width_m`.
    """

    def __init__(self, franka_address: str):
        if not franka_address or franka_address.startswith("nogripper"):
            raise RuntimeError(f"libfranka gripper: Connection to {franka_address} failed")
        self.max_width = 0.08
        self.object_width_m: float | None = None
        self.calls: list[tuple] = []
        self._width = 0.05
        self._is_grasped = False
        self._lock = threading.Lock()
        self._motion_gen = 0
        self._stopped_gen = 0
        self._t0 = time.monotonic()

    def _record(self, *call) -> None:
        with self._lock:
            self.calls.append(call)

    def _motion(self, target: float, speed: float, stop_on_object: bool) -> bool:
        """Move to `target`; False when stopped (by `stop()` or an object)."""
        with self._lock:
            self._motion_gen += 1
            gen = self._motion_gen
        last = time.monotonic()
        while True:
            time.sleep(0.002)
            now = time.monotonic()
            with self._lock:
                if self._stopped_gen == gen:
                    return False
                step = speed * (now - last)
                last = now
                delta = target - self._width
                if abs(delta) <= step:
                    new = target
                else:
                    new = self._width + step * (1 if delta > 0 else -1)
                obj = self.object_width_m
                if stop_on_object and obj is not None and new < obj <= self._width:
                    self._width = obj
                    return False
                self._width = new
                if new == target:
                    return True

    def homing(self) -> bool:
        self._record("homing")
        with self._lock:
            self._width = self.max_width
        return True

    def move(self, width: float, speed: float) -> bool:
        if not 0.0 <= width <= self.max_width or speed <= 0:
            raise RuntimeError(f"libfranka gripper: invalid move(width={width}, speed={speed})")
        self._record("move", width, speed)
        with self._lock:
            self._is_grasped = False
        return self._motion(width, speed, stop_on_object=False) or False

    def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.005) -> bool:
        if not 0.0 <= width <= self.max_width or speed <= 0 or force <= 0:
            raise RuntimeError(f"libfranka gripper: invalid grasp(width={width}, speed={speed}, force={force})")
        self._record("grasp", width, speed, force, epsilon_inner, epsilon_outer)
        self._motion(width, speed, stop_on_object=True)
        with self._lock:
            if self._stopped_gen == self._motion_gen:
                return False
            self._is_grasped = width - epsilon_inner < self._width < width + epsilon_outer
            return self._is_grasped

    def stop(self) -> bool:
        self._record("stop")
        with self._lock:
            self._stopped_gen = self._motion_gen
        return True

    def read_once(self) -> GripperState:
        with self._lock:
            return GripperState(self._width, self.max_width, self._is_grasped,
                                int((time.monotonic() - self._t0) * 1000))
