"""The robot server's limits: what may move the arm, how far, how fast, how stiffly. Next to the
hardware, enforced by `RobotService` for every backend, trusting no client and no config.

Two levels of bound:

- **Absolute caps** (`HARD_CAPS`, module constants): no config can exceed them. Each `robot_server.
  safety` value is checked against its cap when the config is loaded, and a value outside is a
  config error naming the key and the range. The caps follow industrial and vendor practice:
  ISO 10218-1's reduced speed (250 mm/s at the tool, the default speed cap) and libfranka's
  Cartesian limits (1.7 m/s, 2.5 rad/s; our caps stay below), a watchdog of at most 1 s, a
  per-command step of at most 10 cm.
- **Configured limits** (`SafetyConfig`, the `robot_server.safety` section): the box the TCP may
  reach, the orientation limits around home, the per-command step, the watchdog, the force limit,
  the TCP speed caps, the reset randomisation caps and the ranges impedance requests must fall in
  (`ImpedanceLimits`, defaults bracketing the reference controller's 2000 N/m, 89 N s/m,
  150 N m/rad, 7 N m s/rad, clip 0.01 m / 0.05 rad).

Where each bound acts:

    SetPoseTarget   box, orientation limits, step from the measured pose (RobotService.safe_target)
    SetImpedance    every field within ImpedanceLimits, finite; refused while errors are latched
    GoHome          noise within the reset caps; the start pose (start_pose) clipped to the box and
                    the orientation limits; home itself must lie inside them (check_home)
    the reference   moves towards the accepted target no faster than the speed caps
                    (SpeedLimiter: every physics step in the sim, the reference thread on the
                    Franka), so even a far target or a stiff controller gives a bounded speed
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from hilrl.transport.robot_messages import ImpedanceParams
from hilrl.transport.schema import RangeError, check_range
from hilrl.transport.spatial import (
    orientation_error,
    quat_conj,
    quat_mul,
    quat_normalize,
    quat_to_rotvec,
    rotvec_to_quat,
)

# ---------------------------------------------------------------------------- absolute caps

MAX_WORKSPACE_EXTENT_M = 1.5
"""No box coordinate beyond this distance from the base, m (a Panda reaches 0.855 m)."""
MAX_ORIENTATION_LIMIT_RAD = math.pi
MAX_STEP_M = 0.10
MAX_STEP_RAD = 0.5
MAX_WATCHDOG_TIMEOUT_S = 1.0
MAX_FORCE_N = 150.0
MAX_TCP_SPEED_M_PER_S = 1.0
"""Below libfranka's 1.7 m/s Cartesian limit."""
MAX_TCP_ANGULAR_SPEED_RAD_PER_S = 2.5
MAX_RESET_POSITION_NOISE_M = 0.10
MAX_RESET_ROTATION_NOISE_RAD = 0.5

IMPEDANCE_CAPS: dict[str, float] = {
    "translational_stiffness_n_per_m": 5000.0,
    "translational_damping_ns_per_m": 1000.0,
    "rotational_stiffness_nm_per_rad": 500.0,
    "rotational_damping_nms_per_rad": 100.0,
    "translational_clip_m": 0.05,
    "rotational_clip_rad": 0.3,
    "nullspace_stiffness_nm_per_rad": 50.0,
    "nullspace_damping_nms_per_rad": 20.0,
}
"""The largest value any `ImpedanceLimits` range may allow, per ImpedanceParams field."""

HARD_CAPS: dict[str, float] = {
    "workspace_min_m / workspace_max_m (each coordinate, m)": MAX_WORKSPACE_EXTENT_M,
    "orientation_limit_rad": MAX_ORIENTATION_LIMIT_RAD,
    "max_step_m": MAX_STEP_M,
    "max_step_rad": MAX_STEP_RAD,
    "watchdog_timeout_s": MAX_WATCHDOG_TIMEOUT_S,
    "max_force_n": MAX_FORCE_N,
    "max_tcp_speed_m_per_s": MAX_TCP_SPEED_M_PER_S,
    "max_tcp_angular_speed_rad_per_s": MAX_TCP_ANGULAR_SPEED_RAD_PER_S,
    "max_reset_position_noise_m": MAX_RESET_POSITION_NOISE_M,
    "max_reset_rotation_noise_rad": MAX_RESET_ROTATION_NOISE_RAD,
    **{f"impedance.{k}": v for k, v in IMPEDANCE_CAPS.items()},
}
"""Every absolute cap by the `robot_server.safety` key it bounds (README, `hilrl doctor`)."""


# ---------------------------------------------------------------------------- configured limits


@dataclass
class ImpedanceLimits:
    """`robot_server.safety.impedance`: the range [low, high] each impedance parameter may take,
    in the configured impedance and in every `SetImpedance` request (same fields and units as
    `ImpedanceParams`). Each high is at most its absolute cap (`IMPEDANCE_CAPS`)."""

    translational_stiffness_n_per_m: tuple[float, float] = (0.0, 3000.0)
    translational_damping_ns_per_m: tuple[float, float] = (20.0, 200.0)
    rotational_stiffness_nm_per_rad: tuple[float, float] = (0.0, 300.0)
    rotational_damping_nms_per_rad: tuple[float, float] = (1.0, 30.0)
    translational_clip_m: tuple[float, float] = (0.001, 0.02)
    rotational_clip_rad: tuple[float, float] = (0.005, 0.1)
    nullspace_stiffness_nm_per_rad: tuple[float, float] = (0.0, 20.0)
    nullspace_damping_nms_per_rad: tuple[float, float] = (0.0, 5.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            low, high = getattr(self, f.name)
            cap = IMPEDANCE_CAPS[f.name]
            if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high <= cap):
                raise RangeError(f.name, f"must be [low, high] with 0 <= low <= high <= {cap:g}, got [{low}, {high}]")

    def violation(self, params: ImpedanceParams) -> tuple[str, float, float, float] | None:
        """The first field of `params` outside its range (or not finite) as (field, value, low,
        high), or None when every field is within its range."""
        for f in fields(self):
            value = getattr(params, f.name)
            low, high = getattr(self, f.name)
            if not (math.isfinite(value) and low <= value <= high):
                return f.name, value, low, high
        return None


@dataclass
class SafetyConfig:
    """`robot_server.safety`: server-side limits on everything that moves the arm. Every value has
    an absolute cap (module constants); defaults are what the reference systems use.

    Attributes:
        workspace_min_m, workspace_max_m: box (base frame) every TCP target position is clipped to;
            the home TCP position must lie inside (the server refuses to start otherwise).
        orientation_limit_rad: per-axis half-width of the allowed target orientation, as a rotation
            vector relative to the home orientation (home frame); targets outside are clipped.
        max_step_m: a target may lie at most this far (per axis) from the measured TCP position;
            a larger jump is clipped (bounds how far one command can move the arm), <= 0.1 m.
        max_step_rad: the same limit for orientation (rotation-vector components), <= 0.5 rad.
        watchdog_timeout_s: realtime clock only: with no motion command for this long, the server
            sets the target to the measured pose (the arm holds still) until the next command;
            <= 1 s.
        max_force_n: an external force above this latches a "force_limit" controller error (the
            arm holds; motion commands are refused until `ClearErrors`); <= 150 N.
        max_tcp_speed_m_per_s: the controller's reference moves towards the target no faster than
            this, so the TCP does not either (ISO 10218-1's reduced speed, 0.25 m/s, by default);
            <= 1 m/s.
        max_tcp_angular_speed_rad_per_s: the same for the reference's rotation; <= 2.5 rad/s.
        max_reset_position_noise_m / max_reset_rotation_noise_rad: the largest start-pose
            randomisation a `GoHome` may ask for (larger requests are refused); <= 0.1 m / 0.5 rad.
            The start pose is clipped to the box and orientation limits as well.
        impedance: the ranges `SetImpedance` requests (and `robot_server.impedance`) must fall in.
    """

    workspace_min_m: tuple[float, float, float] = (0.25, -0.35, 0.0)
    workspace_max_m: tuple[float, float, float] = (0.75, 0.35, 0.45)
    orientation_limit_rad: tuple[float, float, float] = (0.5, 0.5, 1.0)
    max_step_m: float = 0.05
    max_step_rad: float = 0.3
    watchdog_timeout_s: float = 0.2
    max_force_n: float = 100.0
    max_tcp_speed_m_per_s: float = 0.25
    max_tcp_angular_speed_rad_per_s: float = 1.0
    max_reset_position_noise_m: float = 0.05
    max_reset_rotation_noise_rad: float = 0.3
    impedance: ImpedanceLimits = field(default_factory=ImpedanceLimits)

    def __post_init__(self) -> None:
        for name in ("workspace_min_m", "workspace_max_m"):
            for i, v in enumerate(getattr(self, name)):
                check_range(f"{name}[{i}]", v, -MAX_WORKSPACE_EXTENT_M, MAX_WORKSPACE_EXTENT_M, unit="m")
        for i, (lo, hi) in enumerate(zip(self.workspace_min_m, self.workspace_max_m, strict=True)):
            if lo >= hi:
                raise RangeError(f"workspace_min_m[{i}]", f"= {lo} must be below workspace_max_m[{i}] = {hi}")
        for i, v in enumerate(self.orientation_limit_rad):
            check_range(f"orientation_limit_rad[{i}]", v, 0.0, MAX_ORIENTATION_LIMIT_RAD, unit="rad")
        check_range("max_step_m", self.max_step_m, 0.0, MAX_STEP_M, low_open=True, unit="m")
        check_range("max_step_rad", self.max_step_rad, 0.0, MAX_STEP_RAD, low_open=True, unit="rad")
        check_range("watchdog_timeout_s", self.watchdog_timeout_s, 0.0, MAX_WATCHDOG_TIMEOUT_S, low_open=True, unit="s")
        check_range("max_force_n", self.max_force_n, 0.0, MAX_FORCE_N, low_open=True, unit="N")
        check_range("max_tcp_speed_m_per_s", self.max_tcp_speed_m_per_s, 0.0, MAX_TCP_SPEED_M_PER_S,
                    low_open=True, unit="m/s")
        check_range("max_tcp_angular_speed_rad_per_s", self.max_tcp_angular_speed_rad_per_s, 0.0,
                    MAX_TCP_ANGULAR_SPEED_RAD_PER_S, low_open=True, unit="rad/s")
        check_range("max_reset_position_noise_m", self.max_reset_position_noise_m, 0.0,
                    MAX_RESET_POSITION_NOISE_M, unit="m")
        check_range("max_reset_rotation_noise_rad", self.max_reset_rotation_noise_rad, 0.0,
                    MAX_RESET_ROTATION_NOISE_RAD, unit="rad")


# ---------------------------------------------------------------------------- home and resets


def home_violation(position_m: np.ndarray, safety: SafetyConfig, tolerance_m: float = 1e-6) -> str | None:
    """Why a home TCP position does not lie inside the box, or None when it does. (Its orientation
    is the origin of the orientation limits, so it always lies inside those.)"""
    low = np.asarray(safety.workspace_min_m) - tolerance_m
    high = np.asarray(safety.workspace_max_m) + tolerance_m
    position = np.asarray(position_m, dtype=np.float64)
    if np.all(position >= low) and np.all(position <= high):
        return None
    return (
        f"the home TCP position {np.round(position, 3).tolist()} lies outside the workspace box "
        f"robot_server.safety.workspace_min_m {list(safety.workspace_min_m)} .. workspace_max_m "
        f"{list(safety.workspace_max_m)}: every reset would jump the arm into the box. Choose the home "
        "pose and the box together (README, 'Home and box')"
    )


def start_pose(
    home_position_m: np.ndarray,
    home_quaternion_wxyz: np.ndarray,
    position_noise_m: float,
    rotation_noise_rad: float,
    rng: np.random.Generator,
    clip_position,
    clip_orientation,
) -> tuple[np.ndarray, np.ndarray]:
    """A randomised start pose: home plus a uniform offset of at most the noise half-widths (per
    axis), then clipped by the given position and orientation clips (the box and the orientation
    limits). Six numbers are drawn whatever the noise, so one seed gives one sequence of starts."""
    offset = rng.uniform(-1.0, 1.0, 3) * position_noise_m
    rotation = rng.uniform(-1.0, 1.0, 3) * rotation_noise_rad
    position = clip_position(np.asarray(home_position_m, dtype=np.float64) + offset)
    quat = clip_orientation(quat_normalize(quat_mul(rotvec_to_quat(rotation), home_quaternion_wxyz)))
    return position, quat


# ---------------------------------------------------------------------------- speed


Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


def _qmul(a: Quat, b: Quat) -> Quat:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw)


def _error_rotvec(target: Quat, current: Quat) -> Vec3:
    """Rotation vector taking `current` to `target` (base frame, shortest way): what
    transport.spatial.orientation_error computes, in scalar arithmetic."""
    w, x, y, z = _qmul(target, (current[0], -current[1], -current[2], -current[3]))
    if w < 0.0:
        w, x, y, z = -w, -x, -y, -z
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return (2.0 * x, 2.0 * y, 2.0 * z)
    k = 2.0 * math.atan2(s, w) / s
    return (x * k, y * k, z * k)


def _turned(q: Quat, v: Vec3) -> Quat:
    """`q` rotated by the rotation vector `v` (base frame), normalised."""
    angle = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if angle < 1e-12:
        r = (1.0, 0.5 * v[0], 0.5 * v[1], 0.5 * v[2])
    else:
        k = math.sin(0.5 * angle) / angle
        r = (math.cos(0.5 * angle), v[0] * k, v[1] * k, v[2] * k)
    w, x, y, z = _qmul(r, q)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    return (w / n, x / n, y / n, z / n)


def _follow(error: Vec3, velocity: Vec3, cap: float, accel: float, dt_s: float) -> Vec3:
    """The next velocity towards a goal `error` away: the braking-limited speed along the error
    (v <= sqrt(2 a d), and no further than the goal in one step), capped, reached from `velocity`
    within the acceleration limit."""
    ex, ey, ez = error
    distance = math.sqrt(ex * ex + ey * ey + ez * ez)
    if distance > 0.0:
        speed = min(cap, math.sqrt(2.0 * accel * distance), distance / dt_s if dt_s > 0 else 0.0)
        k = speed / distance
        wx, wy, wz = ex * k, ey * k, ez * k
    else:
        wx = wy = wz = 0.0
    cx, cy, cz = wx - velocity[0], wy - velocity[1], wz - velocity[2]
    size = math.sqrt(cx * cx + cy * cy + cz * cz)
    limit = accel * dt_s
    if size <= limit:
        return (wx, wy, wz)
    k = limit / size
    return (velocity[0] + cx * k, velocity[1] + cy * k, velocity[2] + cz * k)


_REST: Vec3 = (0.0, 0.0, 0.0)


class SpeedLimiter:
    """A reference pose that follows a goal pose no faster than the speed caps, with bounded
    acceleration.

    Each `step(goal, dt)` moves the reference along the straight line (position) and the shortest
    rotation (orientation) towards the goal. Its speed ramps up and down at most at the
    acceleration limits and never exceeds the caps; near the goal it brakes so it arrives without
    a jump (v <= sqrt(2 a d) at distance d). The impedance controller pulls towards this
    reference, not the goal, so the arm's speed stays near the cap whatever the target distance or
    the stiffness (with the lead bound, `lead_limits`: a reference that ran far ahead while the
    arm accelerated would let the arm catch up faster than the cap).

    It runs every physics step in the sim, so its arithmetic is on Python floats, not numpy
    (several times faster for 3- and 4-vectors); `position_m` / `quaternion_wxyz` are arrays.

    Args:
        max_speed_m_per_s, max_angular_speed_rad_per_s: the caps.
        position_m, quaternion_wxyz: the initial reference (the measured pose).
        max_accel_m_per_s2, max_angular_accel_rad_per_s2: the acceleration limits.
    """

    def __init__(
        self,
        max_speed_m_per_s: float,
        max_angular_speed_rad_per_s: float,
        position_m: np.ndarray,
        quaternion_wxyz: np.ndarray,
        max_accel_m_per_s2: float = 2.0,
        max_angular_accel_rad_per_s2: float = 8.0,
    ):
        self.max_speed_m_per_s = float(max_speed_m_per_s)
        self.max_angular_speed_rad_per_s = float(max_angular_speed_rad_per_s)
        self.max_accel_m_per_s2 = float(max_accel_m_per_s2)
        self.max_angular_accel_rad_per_s2 = float(max_angular_accel_rad_per_s2)
        self.reset(position_m, quaternion_wxyz)

    def reset(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> None:
        """Put the reference at rest at a pose (hold, go-home, a controller restart)."""
        self._position: Vec3 = tuple(float(v) for v in position_m)  # type: ignore[assignment]
        self._quat: Quat = tuple(float(v) for v in quat_normalize(np.asarray(quaternion_wxyz, dtype=np.float64)))  # type: ignore[assignment]
        self._velocity: Vec3 = _REST
        self._angular_velocity: Vec3 = _REST
        self.position_m = np.array(self._position)
        self.quaternion_wxyz = np.array(self._quat)

    @property
    def velocity_m_per_s(self) -> np.ndarray:
        return np.array(self._velocity)

    @property
    def angular_velocity_rad_per_s(self) -> np.ndarray:
        return np.array(self._angular_velocity)

    def step(self, goal_position_m: np.ndarray, goal_quaternion_wxyz: np.ndarray, dt_s: float) -> None:
        """Advance the reference towards the goal by one interval of `dt_s` seconds. (Each part
        costs almost nothing while it rests on its goal.)"""
        goal_p: Vec3 = (float(goal_position_m[0]), float(goal_position_m[1]), float(goal_position_m[2]))
        if self._velocity != _REST or goal_p != self._position:
            p = self._position
            self._velocity = v = _follow((goal_p[0] - p[0], goal_p[1] - p[1], goal_p[2] - p[2]), self._velocity,
                                         self.max_speed_m_per_s, self.max_accel_m_per_s2, dt_s)
            # At rest again means arrived (to rounding): sit exactly on the goal.
            self._position = goal_p if v == _REST else (p[0] + v[0] * dt_s, p[1] + v[1] * dt_s, p[2] + v[2] * dt_s)
            self.position_m = np.array(self._position)
        goal_q: Quat = (float(goal_quaternion_wxyz[0]), float(goal_quaternion_wxyz[1]),
                        float(goal_quaternion_wxyz[2]), float(goal_quaternion_wxyz[3]))
        if self._angular_velocity != _REST or goal_q != self._quat:
            self._angular_velocity = w = _follow(_error_rotvec(goal_q, self._quat), self._angular_velocity,
                                                 self.max_angular_speed_rad_per_s, self.max_angular_accel_rad_per_s2, dt_s)
            self._quat = goal_q if w == _REST else _turned(self._quat, (w[0] * dt_s, w[1] * dt_s, w[2] * dt_s))
            self.quaternion_wxyz = np.array(self._quat)


def lead_limits(params: ImpedanceParams, max_speed_m_per_s: float, max_angular_speed_rad_per_s: float) -> tuple[float, float]:
    """How far the reference may lead the measured pose (m, rad) so the impedance law's steady
    speed stays at or under the caps: at speed v a damped spring settles with a lead of v D / K, so a lead
    of at most v_cap D / K cannot drive the TCP faster than v_cap (inf without stiffness)."""
    def lead(cap: float, stiffness: float, damping: float) -> float:
        return cap * damping / stiffness if stiffness > 0 else math.inf

    return (
        lead(max_speed_m_per_s, params.translational_stiffness_n_per_m, params.translational_damping_ns_per_m),
        lead(max_angular_speed_rad_per_s, params.rotational_stiffness_nm_per_rad, params.rotational_damping_nms_per_rad),
    )


def lead_limited(
    reference_position_m: np.ndarray,
    reference_quaternion_wxyz: np.ndarray,
    measured_position_m: np.ndarray,
    measured_quaternion_wxyz: np.ndarray,
    max_lead_m: float,
    max_lead_rad: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference pulled back to within `max_lead_m` / `max_lead_rad` (Euclidean norms) of the
    measured pose. A reference that ran far ahead while the arm accelerated would let the arm
    catch up faster than the cap; bounded, it cannot."""
    lead = reference_position_m - measured_position_m
    distance = math.sqrt(float(lead @ lead))
    position = reference_position_m if distance <= max_lead_m else measured_position_m + lead * (max_lead_m / distance)
    error = orientation_error(reference_quaternion_wxyz, measured_quaternion_wxyz)
    angle = math.sqrt(float(error @ error))
    if angle <= max_lead_rad:
        return position, reference_quaternion_wxyz
    return position, quat_normalize(quat_mul(rotvec_to_quat(error * (max_lead_rad / angle)), measured_quaternion_wxyz))


def clip_to_orientation_limits(quat: np.ndarray, home_quat: np.ndarray, limit_rad: np.ndarray) -> np.ndarray:
    """`quat` with its rotation relative to home (rotation vector, home frame) clipped per axis to
    +-`limit_rad`."""
    relative = quat_to_rotvec(quat_mul(quat_conj(home_quat), quat))
    clipped = np.clip(relative, -limit_rad, limit_rad)
    if np.array_equal(clipped, relative):
        return quat
    return quat_normalize(quat_mul(home_quat, rotvec_to_quat(clipped)))
