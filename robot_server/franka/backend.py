"""The real arm: a Franka Emika Panda (or FR3) through panda-py, the pip binding of libfranka.

`FrankaBackend` implements `robot_server.backend.ArmBackend`. No ROS: panda-py runs libfranka's
1 kHz torque loop on its own C++ thread, and this backend feeds that loop's Cartesian impedance
controller (`panda_py.controllers.CartesianImpedance`) from Python. The safety layer (workspace
box, per-command step limit, watchdog, force limit, error latch) is `RobotService`'s, shared with
the sim; this module adds what only the real arm needs:

- **Reference clip.** panda-py's controller pulls towards its reference with no clip on the pose
  error, so a reference 5 cm away (one command's step limit) would push with 100 N. A thread
  re-centres the reference on the measured pose `FrankaConfig.reference_rate_hz` times a second:
  reference = measured + clip(goal - measured), per axis, with `impedance.translational_clip_m` /
  `rotational_clip_rad`, as the sim's controller does every physics step. The force the arm can
  exert stays about stiffness x clip, and if Python stalls the arm settles at most one clip away
  from where it was, then holds.
- **Parameter mapping** (`ImpedanceParams` -> panda-py):
    impedance = diag(k_t, k_t, k_t, 2 k_r, 2 k_r, 2 k_r)
  panda-py's rotational error is the vector part of the error quaternion, sin(angle/2) * axis,
  so 2 k_r gives k_r N m per radian for small angles. Damping is one ratio for all six axes:
  panda-py uses D = ratio * 2 * sqrt(diag(impedance)). `FrankaConfig.damping_ratio`, or when null
  ratio = d_t / (2 sqrt(k_t)), which reproduces the translational damping exactly; the rotational
  damping then is ratio * 2 * sqrt(2 k_r), not `rotational_damping_nms_per_rad` (logged when it
  differs by more than 2x). The null-space term pulls towards the home posture with
  `FrankaConfig.nullspace_stiffness_nm_per_rad` (or the impedance section's), damped by panda-py
  with 2 sqrt(k); `nullspace_damping_nms_per_rad` is not used.
- **Errors.** A reflex (or any libfranka control exception) stops panda-py's control thread; the
  exception is collected with `Panda.raise_error()` and the robot's `robot_mode` / `current_errors`
  are read from every state. Each is latched and reported in `RobotState.errors` until an
  explicit `clear_errors`, which runs libfranka's automatic error recovery (`Panda.recover()`) and
  restarts the controller holding the measured pose. Nothing recovers on its own.
- **Twist** is J(q) dq with libfranka's zero Jacobian of the end-effector frame
  (`Model.zero_jacobian`), base frame. **Wrench** is libfranka's estimate `O_F_ext_hat_K`: force and
  torque the environment exerts, base frame, about the stiffness frame K (the end effector unless
  K is configured otherwise in Desk).
- **Speed.** The goal the clipped reference chases is itself rate-limited (`SpeedLimiter`, the
  same one the sim uses at every physics step): it moves towards the accepted target no faster than
  `safety.max_tcp_speed_m_per_s` / `max_tcp_angular_speed_rad_per_s`, each reference tick.
- **Home.** `go_home` stops the controller, moves in joint space to
  `FrankaConfig.home_joint_positions_rad` (`Panda.move_to_joint_position`, its speed factor lowered
  so the TCP stays under the speed cap), restarts the controller holding the reached pose and then,
  for a randomised start, drives to the start pose the service chose (drawn within the reset caps
  and clipped to the box and orientation limits, `RobotService._go_home`) and waits for it.

Quaternions: this project uses (w, x, y, z); panda-py's `set_control` and `get_orientation()` use
(x, y, z, w). Conversions happen only in `_xyzw` and `_pose_from_state`.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from hilrl.robot_server.config import FrankaConfig, ServerConfig
from hilrl.robot_server.franka.gripper import FrankaHand, GripperDriver, RobotiqHand
from hilrl.robot_server.safety import SafetyConfig, SpeedLimiter, lead_limited, lead_limits
from hilrl.transport.robot_messages import ImpedanceParams, RobotState
from hilrl.transport.spatial import orientation_error, quat_mul, quat_normalize, rotvec_to_quat

log = logging.getLogger(__name__)

INSTALL_HINT = (
    'pip install -e ".[franka]" (the panda-python package: panda-py with libfranka bundled). '
    "The robot PC also needs a PREEMPT_RT kernel and realtime scheduling rights, and the robot "
    "needs FCI activated in Desk; see the README section \"Real robot: Franka\""
)

# Openings below this close with force (a grasp): a position move onto an object stalls
# without holding it.
GRASP_BELOW_OPENING = 0.05

FULL_SPEED_TCP_M_PER_S = 1.7
"""libfranka's Cartesian velocity limit: what the TCP may reach with every joint at full speed."""

_START_TIMEOUT_S = 1.0  # a (re)started controller must tick within this
_DAMPING_RESEND_S = 0.5  # see set_impedance
_SETTLE_POSITION_M = 0.002
_SETTLE_ROTATION_RAD = 0.01
_POLL_S = 0.01


class FrankaSetupError(RuntimeError):
    """The franka backend cannot start: missing package, missing/wrong config, robot unreachable.

    The message says what to install or which config key to fix.
    """


def import_panda_py() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(panda_py, panda_py.controllers, panda_py.libfranka), imported on first use.

    Raises:
        FrankaSetupError: panda-py is not installed (the message holds the install command).
    """
    try:
        panda_py = importlib.import_module("panda_py")
        controllers = importlib.import_module("panda_py.controllers")
        libfranka = importlib.import_module("panda_py.libfranka")
    except ImportError as exc:
        raise FrankaSetupError(f"the franka backend needs panda-py, which cannot be imported ({exc}): {INSTALL_HINT}") from exc
    return panda_py, controllers, libfranka


# ---------------------------------------------------------------------------------- conversions


def impedance_matrix(params: ImpedanceParams) -> np.ndarray:
    """panda-py's 6x6 Cartesian impedance (translation N/m, rotation N m per unit of the error
    quaternion's vector part) for our stiffnesses; see the module docstring."""
    k_t = params.translational_stiffness_n_per_m
    k_r = params.rotational_stiffness_nm_per_rad
    return np.diag([k_t, k_t, k_t, 2.0 * k_r, 2.0 * k_r, 2.0 * k_r])


MAX_DERIVED_DAMPING_RATIO = 2.0
"""The derived ratio's cap: d_t / (2 sqrt(k_t)) grows without bound as the stiffness goes to 0,
and panda-py applies the same ratio to the rotational axes, where a huge damping makes the 1 kHz
torque loop unstable (found by the property tests on the dynamic fake)."""


def damping_ratio(params: ImpedanceParams, override: float | None) -> float:
    """The one damping ratio panda-py takes: `override`, else d_t / (2 sqrt(k_t)) capped at
    MAX_DERIVED_DAMPING_RATIO (1.0 if k_t is 0)."""
    if override is not None:
        return float(override)
    k_t = params.translational_stiffness_n_per_m
    if k_t <= 0:
        return 1.0
    return min(params.translational_damping_ns_per_m / (2.0 * math.sqrt(k_t)), MAX_DERIVED_DAMPING_RATIO)


def _xyzw(quat_wxyz: np.ndarray) -> np.ndarray:
    return np.array([quat_wxyz[1], quat_wxyz[2], quat_wxyz[3], quat_wxyz[0]], dtype=np.float64)


def matrix_to_quat_wxyz(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    # Pivot on the largest of w, x, y, z so the square root never sees a tiny number.
    if trace > max(m[0, 0], m[1, 1], m[2, 2]):
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0))
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 0.0))
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 0.0))
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return quat_normalize(np.array(q))


def pose_from_column_major(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,) m, quaternion (w, x, y, z)) of libfranka's 16-value column-major 4x4 transform."""
    t = np.asarray(transform, dtype=np.float64).reshape(4, 4).T
    return t[:3, 3].copy(), matrix_to_quat_wxyz(t[:3, :3])


def active_error_names(errors: Any) -> list[str]:
    """Names of the flags set in a libfranka `Errors` (e.g. ["cartesian_reflex"])."""
    if errors is None:
        return []
    names = []
    for name in dir(errors):
        if name.startswith("_"):
            continue
        try:
            value = getattr(errors, name)
        except Exception:
            continue
        if value is True:
            names.append(name)
    return names


# ---------------------------------------------------------------------------------- backend


class FrankaBackend:
    """A Franka arm (+ gripper) through panda-py, behind the shared safety layer.

    Args:
        config: the server config; `config.franka` says where the robot is and how to drive it,
            `config.impedance` sets the controller, `config.safety.max_step_*` bound the random
            start offset of `go_home`.
        gripper: a ready `GripperDriver` to use instead of the one `config.franka.gripper` names.
    Raises:
        FrankaSetupError: panda-py missing, no hostname, the robot or gripper unreachable.
    """

    name = "franka"
    task = ""
    cameras: tuple[str, ...] = ()
    realtime_only = True

    def __init__(self, config: ServerConfig, gripper: GripperDriver | None = None):
        fc: FrankaConfig = config.franka
        if not fc.hostname:
            raise FrankaSetupError(
                "robot_server.franka.hostname is required for the franka backend: the address of "
                "the robot's control box (FCI), e.g. 172.16.0.2"
            )
        self.franka_config = fc
        self.safety: SafetyConfig = config.safety
        self.control_period_s = config.control_period_s
        self._params = config.impedance
        self._home_q = np.asarray(fc.home_joint_positions_rad, dtype=np.float64)
        # Guards the controller handle, the goal and the error latch; held around every
        # set_control so the reference thread and requests never interleave.
        self._lock = threading.RLock()
        self._controller: Any = None  # the running CartesianImpedance, None when stopped
        self._errors: list[str] = []
        self._goal_position_m = np.zeros(3)
        self._goal_quat = np.array([1.0, 0.0, 0.0, 0.0])
        # The goal the clipped reference chases moves towards the accepted target no faster than
        # the speed caps (robot_server.safety); see _feed_once_locked.
        self._limited = SpeedLimiter(
            config.safety.max_tcp_speed_m_per_s, config.safety.max_tcp_angular_speed_rad_per_s,
            self._goal_position_m, self._goal_quat,
        )
        self._fed_s: float | None = None  # when the reference was last fed (monotonic s)
        self._resend_damping_until_s = 0.0
        self._stop_feeding = threading.Event()
        self._feeder: threading.Thread | None = None
        self.gripper: GripperDriver | None = gripper
        self.panda: Any = None

        panda_py, self._controllers, self._libfranka = import_panda_py()
        realtime = (
            self._libfranka.RealtimeConfig.kEnforce if fc.realtime == "enforce" else self._libfranka.RealtimeConfig.kIgnore
        )
        try:
            self.panda = panda_py.Panda(fc.hostname, realtime_config=realtime)
        except Exception as exc:
            raise FrankaSetupError(
                f"cannot connect to the Franka at {fc.hostname!r} (robot_server.franka.hostname): "
                f"{type(exc).__name__}: {exc}. Check the Ethernet link to the control box, that "
                "the brakes are open and FCI is activated in Desk, and that panda-python's "
                "libfranka version matches the robot's system version"
                + (
                    "; realtime: enforce also needs a PREEMPT_RT kernel and realtime scheduling "
                    "rights (or set robot_server.franka.realtime: ignore to try without)"
                    if fc.realtime == "enforce"
                    else ""
                )
            ) from exc
        try:
            self._model = self.panda.get_model()
            self._set_collision_behavior(fc)
            self._frame = self._libfranka.Frame.kEndEffector
            self.home_position_m, self.home_quaternion_wxyz = self._home_pose()
            self._log_damping_mapping()
            if self.gripper is None:
                self.gripper = self._make_gripper(fc)
            start_errors = self._robot_errors(self.panda.get_state())
            if start_errors:
                # The arm stays uncontrolled (the robot holds still on its own) until an explicit
                # clear_errors: starting a controller would run libfranka's recovery implicitly.
                with self._lock:
                    for error in start_errors:
                        self._latch(error)
            else:
                self._start_controller()
            self._feeder = threading.Thread(target=self._feed_references, name="franka-reference", daemon=True)
            self._feeder.start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup helpers

    def _set_collision_behavior(self, fc: FrankaConfig) -> None:
        """The reflex thresholds, set before any controller runs (libfranka refuses them during
        motion). Contact and collision thresholds are set alike: the reflex is what matters here."""
        if fc.collision_torque_thresholds_nm is None or fc.collision_force_thresholds is None:
            return
        torques = [float(v) for v in fc.collision_torque_thresholds_nm]
        forces = [float(v) for v in fc.collision_force_thresholds]
        try:
            self.panda.get_robot().set_collision_behavior(torques, torques, forces, forces)
        except Exception as exc:
            raise FrankaSetupError(
                "the robot refused the collision thresholds (robot_server.franka.collision_torque_thresholds_nm / "
                f"collision_force_thresholds): {type(exc).__name__}: {exc}"
            ) from exc
        log.info("collision reflex thresholds: joints %s N m, end effector %s N / N m", torques, forces)

    def _home_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose at the home posture, with the end effector configured on the robot."""
        state = self.panda.get_state()
        transform = self._model.pose(self._frame, list(self._home_q), state.F_T_EE, state.EE_T_K)
        return pose_from_column_major(transform)

    def _make_gripper(self, fc: FrankaConfig) -> GripperDriver | None:
        if fc.gripper == "none":
            return None
        if fc.gripper == "robotiq":
            try:
                return RobotiqHand(fc.robotiq)
            except Exception as exc:
                raise FrankaSetupError(
                    f"cannot start the Robotiq gripper (robot_server.franka.robotiq): {type(exc).__name__}: {exc}"
                ) from exc
        try:
            return FrankaHand(
                self._libfranka,
                fc.hostname,
                force_n=fc.gripper_force_n,
                speed_m_per_s=fc.gripper_speed_m_per_s,
                grasp_epsilon_m=fc.gripper_grasp_epsilon_m,
                homing=fc.gripper_homing,
            )
        except Exception as exc:
            raise FrankaSetupError(
                f"cannot start the Franka Hand at {fc.hostname!r} (robot_server.franka.gripper: "
                f"franka_hand): {type(exc).__name__}: {exc}; set robot_server.franka.gripper: none "
                "if no Franka Hand is mounted"
            ) from exc

    def _log_damping_mapping(self) -> None:
        p = self._params
        ratio = damping_ratio(p, self.franka_config.damping_ratio)
        rotational = ratio * 2.0 * math.sqrt(2.0 * p.rotational_stiffness_nm_per_rad)
        wanted = p.rotational_damping_nms_per_rad
        if wanted > 0 and not 0.5 <= rotational / wanted <= 2.0:
            log.info(
                "panda-py takes one damping ratio (%.3f) for all axes: rotational damping is "
                "%.1f N m s/rad, not the configured %.1f",
                ratio, rotational, wanted,
            )

    def _nullspace_stiffness(self) -> float:
        override = self.franka_config.nullspace_stiffness_nm_per_rad
        return float(self._params.nullspace_stiffness_nm_per_rad if override is None else override)

    # ------------------------------------------------------------------ controller lifecycle

    def _measured_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return pose_from_column_major(self.panda.get_state().O_T_EE)

    def _start_controller(self) -> None:
        """Start a fresh impedance controller holding the measured pose; returns once it ticks."""
        with self._lock:
            self._stop_controller()
            before_s = self.panda.get_state().time.to_sec()
            ctrl = self._controllers.CartesianImpedance(
                impedance=impedance_matrix(self._params),
                damping_ratio=damping_ratio(self._params, self.franka_config.damping_ratio),
                nullspace_stiffness=self._nullspace_stiffness(),
                filter_coeff=self.franka_config.filter_coeff,
            )
            self.panda.start_controller(ctrl)
            self._controller = ctrl
            # The state is only fresh once the new loop has ticked; until then it may still show
            # the errors just recovered from, which must not be latched again.
            deadline = time.monotonic() + _START_TIMEOUT_S
            while self.panda.get_state().time.to_sec() <= before_s:
                if time.monotonic() > deadline:
                    self._stop_controller()
                    raise RuntimeError(f"the impedance controller did not start within {_START_TIMEOUT_S} s")
                time.sleep(0.001)
            position, quat = self._measured_pose()
            self._goal_position_m, self._goal_quat = position, quat
            self._limited.reset(position, quat)
            self._fed_s = time.monotonic()
            ctrl.set_control(position, _xyzw(quat), self._home_q)

    def _stop_controller(self) -> None:
        """Stop panda-py's control loop (the robot then holds still by itself)."""
        with self._lock:
            self._controller = None
            if self.panda is not None:
                self.panda.stop_controller()

    def _reference_locked(self, position: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The speed-limited goal clipped to within the impedance clips of the measured pose
        (position, quat)."""
        p, goal = self._params, self._limited
        # The speed caps' lead bound first (the steady speed then stays at or under the cap; under it for stiff settings, whose lead is shorter than one reference period), then the clip.
        max_lead_m, max_lead_rad = lead_limits(p, goal.max_speed_m_per_s, goal.max_angular_speed_rad_per_s)
        lead_position, lead_quat = lead_limited(goal.position_m, goal.quaternion_wxyz, position, quat, max_lead_m, max_lead_rad)
        step = np.clip(lead_position - position, -p.translational_clip_m, p.translational_clip_m)
        rotation = np.clip(orientation_error(lead_quat, quat), -p.rotational_clip_rad, p.rotational_clip_rad)
        return position + step, quat_normalize(quat_mul(rotvec_to_quat(rotation), quat))

    def _feed_once_locked(self) -> None:
        ctrl = self._controller
        if ctrl is None or self._errors:
            return
        now_s = time.monotonic()
        # The speed-limited goal advances by the time since the last feed, at most one reference
        # period at a time: a stalled thread does not let it jump when it resumes.
        dt_s = 0.0 if self._fed_s is None else min(now_s - self._fed_s, 1.0 / self.franka_config.reference_rate_hz)
        self._fed_s = now_s
        self._limited.step(self._goal_position_m, self._goal_quat, max(dt_s, 0.0))
        position, quat = self._measured_pose()
        ref_position, ref_quat = self._reference_locked(position, quat)
        ctrl.set_control(ref_position, _xyzw(ref_quat), self._home_q)
        if time.monotonic() < self._resend_damping_until_s:
            ctrl.set_damping_ratio(damping_ratio(self._params, self.franka_config.damping_ratio))

    def _feed_references(self) -> None:
        period_s = 1.0 / self.franka_config.reference_rate_hz
        next_s = time.monotonic()
        failing = False
        while not self._stop_feeding.wait(max(0.0, next_s - time.monotonic())):
            next_s = max(next_s + period_s, time.monotonic())
            try:
                with self._lock:
                    self._feed_once_locked()
                failing = False
            except Exception as exc:
                if not failing:
                    log.exception("updating the impedance reference failed; holding the arm")
                    with self._lock:
                        self._latch(f"reference_update_failed: {type(exc).__name__}: {exc}")
                        self._hold_locked()
                failing = True

    # ------------------------------------------------------------------ errors

    def _robot_errors(self, state: Any) -> list[str]:
        """Errors the robot itself reports in a libfranka state."""
        mode = state.robot_mode
        mode_name = getattr(mode, "name", str(mode))
        names = active_error_names(state.current_errors)
        if mode == self._libfranka.RobotMode.kReflex:
            names += [n for n in active_error_names(state.last_motion_errors) if n not in names]
        errors = [f"{n}: reported by the robot (robot_mode {mode_name})" for n in names]
        if mode == self._libfranka.RobotMode.kReflex and not names:
            errors.append("reflex: the robot stopped in a reflex (robot_mode kReflex)")
        if mode == self._libfranka.RobotMode.kUserStopped:
            errors.append("user_stop: the user stop is pressed; release it, then send clear_errors")
        return errors

    def _latch(self, error: str) -> None:
        """Latch one error (one per kind, the text before ':'); the reference thread stops and a
        controller still running holds the measured pose. Call with the lock held."""
        kind = error.split(":", 1)[0]
        if not any(e.split(":", 1)[0] == kind for e in self._errors):
            log.error("franka controller error: %s", error)
            self._errors.append(error)
            if self._controller is not None:
                self._hold_locked()

    def _poll_errors(self, state: Any) -> None:
        """Collect a stopped control loop's exception and the robot's own error reports."""
        found = []
        try:
            self.panda.raise_error()
        except Exception as exc:  # panda-py re-raises the control thread's libfranka exception
            message = str(exc)
            kind = next((n for n in _KNOWN_ERROR_NAMES if n in message), "control_exception")
            found.append(f"{kind}: panda-py's control loop stopped: {message}")
        found += self._robot_errors(state)
        if found:
            with self._lock:
                for error in found:
                    self._latch(error)

    # ------------------------------------------------------------------ ArmBackend

    def state(self) -> RobotState:
        state = self.panda.get_state()
        self._poll_errors(state)
        position, quat = pose_from_column_major(state.O_T_EE)
        dq = np.asarray(state.dq, dtype=np.float64)
        jacobian = np.asarray(self._model.zero_jacobian(self._frame, state), dtype=np.float64).reshape(7, 6).T
        twist = jacobian @ dq
        wrench = np.asarray(state.O_F_ext_hat_K, dtype=np.float64)
        opening = self.gripper.opening() if self.gripper is not None else 1.0
        with self._lock:
            errors = list(self._errors)
            goal_position, goal_quat = self._goal_position_m.copy(), self._goal_quat.copy()
        return RobotState(
            robot_time_s=float(state.time.to_sec()),
            tcp_position_m=position,
            tcp_quaternion_wxyz=quat,
            tcp_linear_velocity_m_per_s=twist[:3].copy(),
            tcp_angular_velocity_rad_per_s=twist[3:].copy(),
            tcp_force_n=wrench[:3].copy(),
            tcp_torque_nm=wrench[3:].copy(),
            joint_positions_rad=np.asarray(state.q, dtype=np.float64),
            joint_velocities_rad_per_s=dq,
            gripper_opening=float(opening),
            target_position_m=goal_position,
            target_quaternion_wxyz=goal_quat,
            status="error" if errors else "ok",
            errors=errors,
        )

    def set_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> None:
        with self._lock:
            if self._controller is None or self._errors:
                shown = "; ".join(self._errors) or "the controller is stopped"
                raise RuntimeError(f"the impedance controller is not running ({shown}); send clear_errors")
            self._goal_position_m = np.array(position_m, dtype=np.float64)
            self._goal_quat = quat_normalize(quaternion_wxyz)
            try:
                # At once rather than at the reference thread's next tick: less latency.
                self._feed_once_locked()
            except BaseException:
                self._hold_locked()
                raise

    def _hold_locked(self) -> None:
        try:
            position, quat = self._measured_pose()
        except Exception:
            log.exception("cannot read the pose to hold")
            return
        self._goal_position_m, self._goal_quat = position, quat
        self._limited.reset(position, quat)
        if self._controller is not None:
            self._controller.set_control(position, _xyzw(quat), self._home_q)

    def hold(self) -> None:
        with self._lock:
            self._hold_locked()

    def set_gripper(self, opening: float) -> None:
        if self.gripper is None:
            raise RuntimeError("no gripper is configured (robot_server.franka.gripper: none)")
        opening = float(np.clip(opening, 0.0, 1.0))
        if opening < GRASP_BELOW_OPENING:
            self.gripper.grasp()
        else:
            self.gripper.set_opening(opening)

    def set_impedance(self, params: ImpedanceParams) -> None:
        with self._lock:
            self._params = params
            self._log_damping_mapping()
            ctrl = self._controller
            if ctrl is None:
                return  # the next controller is built with these
            ctrl.set_impedance(impedance_matrix(params))
            ctrl.set_damping_ratio(damping_ratio(params, self.franka_config.damping_ratio))
            ctrl.set_nullspace_stiffness(self._nullspace_stiffness())
            # A smaller clip (or lead bound) takes effect now, not at the reference thread's next
            # tick: the reference in force must never be further from the TCP than the new clip.
            self._feed_once_locked()
            # panda-py before 1.0 derives the damping from the stiffness the loop currently
            # uses, which reaches the new value only on later ticks (filtered when filter_coeff
            # < 1); re-sending the ratio for a while makes the damping match either way.
            self._resend_damping_until_s = time.monotonic() + _DAMPING_RESEND_S

    def clear_errors(self) -> None:
        """Recover from latched errors (libfranka's automatic error recovery) and restart the
        controller holding the measured pose. Only ever called on an explicit client request."""
        with self._lock:
            if self._controller is not None and not self._errors:
                return  # nothing to recover from: leave the running controller alone
            if self._errors:
                log.info("clearing franka errors on request: %s", "; ".join(self._errors))
            self._stop_controller()
            try:
                self.panda.raise_error()  # a stopped loop's exception, not collected yet
            except Exception as exc:
                log.info("discarding the control loop's exception on clear_errors: %s", exc)
            # Raises while the cause persists (e.g. the user stop is still pressed): the latch
            # then stays, and the reply names the problem.
            self.panda.recover()
            self._errors = []
            try:
                self._start_controller()
            except Exception as exc:
                self._latch(f"controller_start_failed: {type(exc).__name__}: {exc}")
                raise

    def go_home(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray, seed: int | None) -> None:
        """Joint-space move to the home posture, then (for a randomised start the service chose
        and clipped to the box) a Cartesian move there under the speed caps; returns when there
        (or after `home_timeout_s`, holding). `seed` is not used: a real cell has no objects to
        place."""
        fc = self.franka_config
        with self._lock:
            if self._errors:
                raise RuntimeError(f"go_home refused: errors latched ({'; '.join(self._errors)}); send clear_errors")
            self._stop_controller()
        try:
            reached = self.panda.move_to_joint_position(self._home_q.copy(), speed_factor=self.home_speed_factor)
        except Exception as exc:
            with self._lock:
                self._latch(f"go_home_failed: {type(exc).__name__}: {exc}")
            raise
        self._poll_errors(self.panda.get_state())  # panda-py keeps a failed move's exception
        with self._lock:
            if self._errors:
                raise RuntimeError(f"go_home stopped: {'; '.join(self._errors)}")
        if reached is False:
            log.warning("go_home: the joint move ended short of the home posture (see panda-py's log)")
        self._start_controller()
        goal_position = np.array(position_m, dtype=np.float64)
        goal_quat = quat_normalize(quaternion_wxyz)
        if np.abs(goal_position - self.home_position_m).max() < 1e-9 and np.abs(
            orientation_error(goal_quat, self.home_quaternion_wxyz)
        ).max() < 1e-9:
            return
        with self._lock:
            self._goal_position_m, self._goal_quat = goal_position.copy(), goal_quat.copy()
        deadline = time.monotonic() + fc.home_timeout_s
        while True:
            state = self.panda.get_state()
            self._poll_errors(state)
            with self._lock:
                if self._errors:
                    raise RuntimeError(f"go_home stopped: {'; '.join(self._errors)}")
            position, quat = pose_from_column_major(state.O_T_EE)
            if (
                np.abs(goal_position - position).max() < _SETTLE_POSITION_M
                and np.abs(orientation_error(goal_quat, quat)).max() < _SETTLE_ROTATION_RAD
            ):
                return
            if time.monotonic() > deadline:
                log.warning(
                    "go_home: the randomised start pose was not reached within %.1f s "
                    "(robot_server.franka.home_timeout_s); holding where the arm is",
                    fc.home_timeout_s,
                )
                self.hold()
                return
            time.sleep(_POLL_S)

    @property
    def home_speed_factor(self) -> float:
        """Speed factor of the joint move home: the configured one, lowered so the TCP stays under
        the speed cap (libfranka's joint motion at full speed moves the TCP at up to about
        FULL_SPEED_TCP_M_PER_S)."""
        return min(self.franka_config.home_speed_factor,
                   self.safety.max_tcp_speed_m_per_s / FULL_SPEED_TCP_M_PER_S)

    def advance(self, duration_s: float) -> None:
        """No-op: the real arm runs on its own clock."""

    def render(self, cameras: list[str]) -> tuple[np.ndarray, float]:
        raise ValueError(f"the franka backend has no cameras (asked for {cameras}); real cameras live on the actor")

    def close(self) -> None:
        """Stop feeding references, hold, stop the controller, release the gripper driver."""
        self._stop_feeding.set()
        if self._feeder is not None and self._feeder is not threading.current_thread():
            self._feeder.join(2.0)
        if self.panda is not None:
            with self._lock:
                try:
                    if self._controller is not None:
                        self._hold_locked()
                finally:
                    try:
                        self._stop_controller()
                    except Exception:
                        log.exception("stopping the franka controller failed")
        if self.gripper is not None:
            try:
                self.gripper.close()
            except Exception:
                log.exception("closing the gripper driver failed")


# libfranka's error flags (franka::Errors), used to name the exception a control loop ended with.
_KNOWN_ERROR_NAMES = (
    "cartesian_reflex",
    "joint_reflex",
    "self_collision_avoidance_violation",
    "communication_constraints_violation",
    "power_limit_violation",
    "joint_position_limits_violation",
    "joint_velocity_violation",
    "cartesian_position_limits_violation",
    "cartesian_velocity_violation",
    "force_control_safety_violation",
    "controller_torque_discontinuity",
    "tau_j_range_violation",
    "instability_detected",
    "max_goal_pose_deviation_violation",
    "max_path_pose_deviation_violation",
    "cartesian_velocity_profile_safety_violation",
    "joint_move_in_wrong_direction",
    "start_elbow_sign_inconsistent",
)


def make_backend(config: ServerConfig, task: str = "") -> FrankaBackend:
    """The franka backend for a server config (`task` is ignored: a real cell has no sim task).

    Raises:
        FrankaSetupError: a config the franka backend cannot run with, or a setup problem.
    """
    if config.clock != "realtime":
        raise FrankaSetupError(
            "the franka backend runs on the robot's own clock: set robot_server.clock: realtime "
            "(or --clock realtime), not lockstep"
        )
    if task:
        log.info("the franka backend has no sim task; ignoring task %r", task)
    return FrankaBackend(config)
