"""Messages between a robot client (the actor) and the robot server.

Request/reply. Every request gets exactly one reply: the reply named in its docstring, or an
`ErrorReply` naming the problem. Every reply's envelope carries the server's timestamp, and
`RobotState` also carries the robot's own clock.

Frames: the base frame of the arm (x forward, y left, z up, origin at the base). Positions in
metres, orientations as unit quaternions (w, x, y, z), angles in radians, forces in newtons, torques
in newton metres. The TCP (tool centre point) lies between the gripper fingertips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hilrl.transport.codec import Registry


def _vec(n: int | None, dtype: str = "float64") -> dict:
    return {"shape": (n,), "dtype": dtype}


# ---------------------------------------------------------------- parameters carried in messages


@dataclass
class ImpedanceParams:
    """Cartesian impedance controller parameters (mirrors the real arm's controller).

    The reference error (target minus measured pose) is clipped per axis before the stiffness is
    applied; that clip bounds the force the arm can exert in contact (stiffness x clip), which is what
    makes contact compliant. Defaults are the reference systems' values for a Franka.
    """

    translational_stiffness_n_per_m: float = 2000.0
    translational_damping_ns_per_m: float = 89.0
    rotational_stiffness_nm_per_rad: float = 150.0
    rotational_damping_nms_per_rad: float = 7.0
    translational_clip_m: float = 0.01
    rotational_clip_rad: float = 0.05
    nullspace_stiffness_nm_per_rad: float = 1.0
    nullspace_damping_nms_per_rad: float = 0.5

    def __post_init__(self) -> None:
        # `not value >= 0` also refuses NaN (for which `value < 0` is false); the wire codec refuses
        # non-finite numbers already, in-process callers skip it. What range a server accepts is
        # its own (robot_server.safety.impedance).
        for name, value in vars(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.translational_clip_m <= 0 or self.rotational_clip_rad <= 0:
            raise ValueError("translational_clip_m and rotational_clip_rad must be > 0")


# ---------------------------------------------------------------- requests


@dataclass
class GetInfo:
    """Ask what the server serves. Reply: `ServerInfo`."""


@dataclass
class GetState:
    """Read the arm's current state. Reply: `RobotState`."""


@dataclass
class SetPoseTarget:
    """Set the impedance controller's TCP target. Reply: `RobotState` (after clipping).

    The server clips the target to its workspace box and to its per-command motion limit, whatever
    the client did; the reply's `target_*` fields show what was accepted.
    """

    position_m: np.ndarray = field(metadata=_vec(3))
    quaternion_wxyz: np.ndarray = field(metadata=_vec(4))


@dataclass
class SetGripper:
    """Command the gripper opening. Reply: `Ack`.

    Attributes:
        opening: 0.0 fully closed .. 1.0 fully open.
    """

    opening: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.opening <= 1.0:
            raise ValueError(f"opening must be in [0, 1], got {self.opening}")


@dataclass
class GoHome:
    """Move to the home pose (and, in the sim, reset the task's objects). Reply: `RobotState`.

    Attributes:
        position_noise_m: half-width of a uniform random offset added to the home TCP position.
        rotation_noise_rad: half-width of a uniform random rotation (per axis) of the home TCP.
        seed: seeds the randomisation (start pose and, in the sim, object placement).
    """

    position_noise_m: float = 0.0
    rotation_noise_rad: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("position_noise_m", "rotation_noise_rad"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass
class SetImpedance:
    """Replace the impedance parameters. Reply: `Ack`."""

    params: ImpedanceParams


@dataclass
class ClearErrors:
    """Clear a controller error after the operator has made the cell safe. Reply: `RobotState`."""


@dataclass
class Stop:
    """Operator stop: the arm holds where it is and the server latches "operator_stop" until
    `ClearErrors`; motion requests are refused meanwhile. Any client may send it, whatever is
    latched, and it is never refused. Reply: `RobotState`.

    Attributes:
        reason: who or what stopped the arm (shown in the latched error and the server's log).
    """

    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.reason) > 200:
            raise ValueError(f"reason must be at most 200 characters, got {len(self.reason)}")


@dataclass
class Render:
    """Render simulated cameras (sim backend only). Reply: `Images`."""

    cameras: list[str]


@dataclass
class Advance:
    """Advance the simulation by whole control periods (lockstep clock only). Reply: `RobotState`."""

    periods: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.periods <= 1000:
            raise ValueError(f"periods must be in [1, 1000], got {self.periods}")


# ---------------------------------------------------------------- replies


@dataclass
class Ack:
    """The request was applied."""


@dataclass
class ErrorReply:
    """The request was refused or failed.

    Attributes:
        code: machine-readable reason, e.g. "garbled", "bad_version", "unknown_kind", "bad_frame",
            "too_large", "bad_field", "controller_error", "unsupported".
        message: what went wrong, naming the offending field or value.
    """

    code: str
    message: str


@dataclass
class ServerInfo:
    """What a robot server serves.

    Attributes:
        backend: "sim" or "franka".
        task: task name for the sim ("reach", "pick_cube", "peg_insert"), "" on a real arm.
        clock: "lockstep" (physics advances only on `Advance`) or "realtime".
        control_period_s: one control period (what `Advance(1)` simulates).
        cameras: names of cameras `Render` accepts.
        home_position_m / home_quaternion_wxyz: TCP home pose.
        workspace_min_m / workspace_max_m: the server's workspace box for TCP targets.
        watchdog_timeout_s: commands must arrive at least this often in realtime mode, or the arm holds.
    """

    backend: str
    task: str
    clock: Literal["lockstep", "realtime"]
    control_period_s: float
    cameras: list[str]
    home_position_m: np.ndarray = field(metadata=_vec(3))
    home_quaternion_wxyz: np.ndarray = field(metadata=_vec(4))
    workspace_min_m: np.ndarray = field(metadata=_vec(3))
    workspace_max_m: np.ndarray = field(metadata=_vec(3))
    watchdog_timeout_s: float = 0.2


@dataclass
class RobotState:
    """One snapshot of the arm.

    Attributes:
        robot_time_s: the robot's own clock (simulation time for the sim backend).
        tcp_position_m, tcp_quaternion_wxyz: measured TCP pose in the base frame.
        tcp_linear_velocity_m_per_s, tcp_angular_velocity_rad_per_s: measured TCP twist, base frame.
        tcp_force_n, tcp_torque_nm: external wrench the environment exerts on the TCP, base frame,
            estimated from joint torques (as the Franka estimates it).
        joint_positions_rad, joint_velocities_rad_per_s: shape (n_joints,).
        gripper_opening: 0.0 closed .. 1.0 open (measured).
        target_position_m, target_quaternion_wxyz: the controller's current (accepted) target.
        status: "ok", "holding" (watchdog tripped: target reset to the measured pose), or "error".
        errors: active controller errors, e.g. ["joint_limit: joint 4"]; cleared only by
            `ClearErrors`.
        task_success: sim only: the task's ground-truth success; None on a real arm.
        object_state: sim only: privileged object features of the task (layout per task), else None.
    """

    robot_time_s: float
    tcp_position_m: np.ndarray = field(metadata=_vec(3))
    tcp_quaternion_wxyz: np.ndarray = field(metadata=_vec(4))
    tcp_linear_velocity_m_per_s: np.ndarray = field(metadata=_vec(3))
    tcp_angular_velocity_rad_per_s: np.ndarray = field(metadata=_vec(3))
    tcp_force_n: np.ndarray = field(metadata=_vec(3))
    tcp_torque_nm: np.ndarray = field(metadata=_vec(3))
    joint_positions_rad: np.ndarray = field(metadata=_vec(None))
    joint_velocities_rad_per_s: np.ndarray = field(metadata=_vec(None))
    gripper_opening: float = 1.0
    target_position_m: np.ndarray = field(default_factory=lambda: np.zeros(3), metadata=_vec(3))
    target_quaternion_wxyz: np.ndarray = field(
        default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]), metadata=_vec(4)
    )
    status: Literal["ok", "holding", "error"] = "ok"
    errors: list[str] = field(default_factory=list)
    task_success: bool | None = None
    object_state: np.ndarray | None = field(default=None, metadata=_vec(None))


@dataclass
class Images:
    """Rendered camera frames.

    Attributes:
        cameras: camera names, in the order of `pixels`.
        pixels: uint8 array of shape (n_cameras, height, width, 3).
        capture_time_s: robot clock when the frames were rendered.
    """

    cameras: list[str]
    pixels: np.ndarray = field(metadata={"shape": (None, None, None, 3), "dtype": "uint8"})
    capture_time_s: float = 0.0


ROBOT_MESSAGES = Registry(
    {
        "get_info": GetInfo,
        "get_state": GetState,
        "set_pose_target": SetPoseTarget,
        "set_gripper": SetGripper,
        "go_home": GoHome,
        "set_impedance": SetImpedance,
        "clear_errors": ClearErrors,
        "stop": Stop,
        "render": Render,
        "advance": Advance,
        "ack": Ack,
        "error": ErrorReply,
        "server_info": ServerInfo,
        "robot_state": RobotState,
        "images": Images,
    }
)
