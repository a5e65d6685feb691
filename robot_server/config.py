"""Configuration of the robot server: the `robot_server:` section of a task YAML file.

Every safety limit (`safety:`, hilrl.robot_server.safety) is enforced by the server itself, whatever
a client sends, and has an absolute cap no config can exceed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hilrl.hardware.robotiq import RobotiqConfig
from hilrl.robot_server.safety import SafetyConfig
from hilrl.transport.contract import DEFAULT_CONTROL_RATE_HZ
from hilrl.transport.link_config import CurveConfig
from hilrl.transport.robot_messages import ImpedanceParams
from hilrl.transport.schema import RangeError, check_range


@dataclass
class SimConfig:
    """Simulated arm settings.

    Attributes:
        timestep_s: physics step; the impedance controller runs at every step.
        image_height, image_width: camera render size in pixels.
    """

    timestep_s: float = 0.002
    image_height: int = 128
    image_width: int = 128

    def __post_init__(self) -> None:
        if not 0.0005 <= self.timestep_s <= 0.005:
            raise ValueError(f"timestep_s must be in [0.0005, 0.005], got {self.timestep_s}")
        if self.image_height < 8 or self.image_width < 8:
            raise ValueError("image_height and image_width must be >= 8")


PANDA_READY_POSTURE_RAD: tuple[float, float, float, float, float, float, float] = (
    0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4
)
"""The Panda's usual "ready" joint posture (libfranka's and panda-py's start posture), rad."""


@dataclass
class FrankaConfig:
    """The real arm (`backend: franka`): a Franka Emika Panda / FR3 driven through panda-py.

    Only read when `robot_server.backend` is "franka"; the safety limits stay in `safety` (shared
    with the sim). See `robot_server/franka/backend.py` for how the impedance parameters map onto
    panda-py's controller.

    Attributes:
        hostname: address of the robot's control box (the FCI interface, e.g. "172.16.0.2");
            required for the franka backend.
        realtime: "enforce": libfranka refuses to run without a realtime kernel and realtime
            scheduling (what a robot PC should have); "ignore": run anyway (stock kernels; expect
            `communication_constraints_violation` reflexes when the machine is busy).
        home_joint_positions_rad: joint posture of the home pose, rad (7 values, base to flange);
            `GoHome` moves there in joint space. The home TCP pose is this posture's forward
            kinematics with the end effector configured in Desk.
        home_speed_factor: speed of the joint-space move home, fraction of the robot's maximum
            joint velocities (0, 1].
        home_timeout_s: how long `GoHome` waits for the arm to reach a randomised start pose (the
            offset is approached with the impedance controller after the joint move), seconds.
        damping_ratio: Cartesian damping ratio of panda-py's controller (one ratio for all six
            axes); null derives it from the translational stiffness and damping in `impedance`.
        nullspace_stiffness_nm_per_rad: stiffness pulling the elbow towards the home posture,
            N m/rad; null uses `impedance.nullspace_stiffness_nm_per_rad`.
        filter_coeff: panda-py's first-order filter on references and gains, applied every 1 ms
            (1.0: no filtering; the references are already bounded, see `reference_rate_hz`).
        reference_rate_hz: how often the backend re-centres the controller's reference on the
            measured pose so the pose error stays within `impedance.translational_clip_m` /
            `rotational_clip_rad` (panda-py's controller has no clip of its own), Hz.
        gripper: "franka_hand" (the Franka Hand through libfranka), "robotiq" (a 2F-85 or Hand-E
            over Modbus, configured in `robotiq`) or "none".
        robotiq: the Robotiq gripper's link and settings (hardware/robotiq.py), read only with
            `gripper: robotiq`.
        gripper_force_n: grasp force when the gripper closes, N (the Franka Hand: 70 N
            continuous, 140 N peak).
        gripper_speed_m_per_s: finger speed of gripper moves and grasps, m/s (sum of both
            fingers).
        gripper_grasp_epsilon_m: tolerance of a grasp on the finger distance, m: a close counts as
            a grasp (and keeps its force) for any object up to this wide.
        gripper_homing: home the Franka Hand when the server starts (calibrates its width; the
            fingers open and close once, a few seconds).
        collision_torque_thresholds_nm: per joint (7 values, base to flange), the external torque
            above which the robot's collision reflex stops it, N m; null leaves the robot's own
            setting. Contact-rich tasks (insertion) trip a cautious default often; every trip
            latches an error that needs ClearErrors.
        collision_force_thresholds: the same on the end effector's estimated wrench: 3 forces (N)
            and 3 torques (N m) along / about x, y, z; null leaves the robot's own setting. Set
            both thresholds or neither (libfranka takes them together).
    """

    hostname: str = ""
    realtime: Literal["enforce", "ignore"] = "enforce"
    home_joint_positions_rad: tuple[float, float, float, float, float, float, float] = (
        PANDA_READY_POSTURE_RAD
    )
    home_speed_factor: float = 0.2
    home_timeout_s: float = 5.0
    damping_ratio: float | None = None
    nullspace_stiffness_nm_per_rad: float | None = None
    filter_coeff: float = 1.0
    reference_rate_hz: float = 200.0
    gripper: Literal["franka_hand", "robotiq", "none"] = "franka_hand"
    gripper_force_n: float = 40.0
    gripper_speed_m_per_s: float = 0.1
    gripper_grasp_epsilon_m: float = 0.08
    gripper_homing: bool = True
    robotiq: RobotiqConfig = field(default_factory=RobotiqConfig)
    collision_torque_thresholds_nm: tuple[float, ...] | None = None
    collision_force_thresholds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name, n in (("collision_torque_thresholds_nm", 7), ("collision_force_thresholds", 6)):
            values = getattr(self, name)
            if values is not None and (len(values) != n or not all(math.isfinite(v) and v > 0 for v in values)):
                raise ValueError(f"{name} must be {n} positive values (or null), got {list(values)}")
        if (self.collision_torque_thresholds_nm is None) != (self.collision_force_thresholds is None):
            raise ValueError("collision_torque_thresholds_nm and collision_force_thresholds go together: set both "
                             "or neither")
        if self.realtime not in ("enforce", "ignore"):
            raise ValueError(f"realtime must be 'enforce' or 'ignore', got {self.realtime!r}")
        if self.gripper not in ("franka_hand", "robotiq", "none"):
            raise ValueError(f"gripper must be 'franka_hand', 'robotiq' or 'none', got {self.gripper!r}")
        if len(self.home_joint_positions_rad) != 7 or not all(
            math.isfinite(q) for q in self.home_joint_positions_rad
        ):
            raise ValueError("home_joint_positions_rad must be 7 finite joint positions (rad)")
        if not 0.0 < self.home_speed_factor <= 1.0:
            raise ValueError(f"home_speed_factor must be in (0, 1], got {self.home_speed_factor}")
        if self.home_timeout_s <= 0:
            raise ValueError(f"home_timeout_s must be > 0, got {self.home_timeout_s}")
        if self.damping_ratio is not None:
            # panda-py applies the one ratio to all six axes: too high makes its 1 kHz loop unstable.
            check_range("damping_ratio", self.damping_ratio, 0.0, 2.0, low_open=True)
        if self.nullspace_stiffness_nm_per_rad is not None and self.nullspace_stiffness_nm_per_rad < 0:
            raise ValueError(
                f"nullspace_stiffness_nm_per_rad must be >= 0 (or null), got {self.nullspace_stiffness_nm_per_rad}"
            )
        if not 0.0 < self.filter_coeff <= 1.0:
            raise ValueError(f"filter_coeff must be in (0, 1], got {self.filter_coeff}")
        if not 10.0 <= self.reference_rate_hz <= 1000.0:
            raise ValueError(f"reference_rate_hz must be in [10, 1000], got {self.reference_rate_hz}")
        if not 0.0 < self.gripper_force_n <= 140.0:
            raise ValueError(f"gripper_force_n must be in (0, 140] N, got {self.gripper_force_n}")
        if self.gripper_speed_m_per_s <= 0:
            raise ValueError(f"gripper_speed_m_per_s must be > 0, got {self.gripper_speed_m_per_s}")
        if self.gripper_grasp_epsilon_m < 0:
            raise ValueError(f"gripper_grasp_epsilon_m must be >= 0, got {self.gripper_grasp_epsilon_m}")


@dataclass
class ServerConfig:
    """The `robot_server:` section.

    Attributes:
        backend: "sim" (MuJoCo) or "franka" (a real Franka arm through panda-py; needs
            `clock: realtime` and `franka.hostname`).
        clock: "lockstep": physics advances only on `Advance` requests (deterministic, for training
            in CI); "realtime": physics follows the wall clock, like a real arm.
        control_rate_hz: control rate of the actor; one lockstep `Advance` is one period.
        address: ZeroMQ endpoint the server binds (and clients connect to). Loopback by default;
            any other address needs `curve`.
        request_timeout_s: how long clients wait for a reply before retrying.
        curve: CurveZMQ keys (`hilrl keys --server-name robot_server --section robot_server`);
            null on loopback.
        franka: settings of the real arm (read only by the franka backend).
    """

    backend: Literal["sim", "franka"] = "sim"
    clock: Literal["lockstep", "realtime"] = "lockstep"
    control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ
    address: str = "tcp://127.0.0.1:5555"
    request_timeout_s: float = 1.0
    impedance: ImpedanceParams = field(default_factory=ImpedanceParams)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    curve: CurveConfig | None = None
    franka: FrankaConfig = field(default_factory=FrankaConfig)

    def __post_init__(self) -> None:
        if not 1.0 <= self.control_rate_hz <= 1000.0:
            raise ValueError(f"control_rate_hz must be in [1, 1000], got {self.control_rate_hz}")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be > 0")
        problem = self.safety.impedance.violation(self.impedance)
        if problem is not None:
            name, value, low, high = problem
            raise RangeError(f"impedance.{name}", f"must be in [{low:g}, {high:g}] (robot_server.safety.impedance."
                                                  f"{name}), got {value!r}")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz
