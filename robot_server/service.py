"""The robot server's request handling and safety layer, shared by every arm backend.

`RobotService` turns one decoded request into one reply. It knows nothing about sockets: the
ZeroMQ server (`server.py`) and the in-process robot (`inprocess.InProcessRobot`) both call it,
so the same limits apply with or without a server process. It trusts no client:

- Pose targets: quaternion normalised; position clipped to the workspace box; orientation clipped
  to a per-axis box around the home orientation (rotation vector in the home frame); then the
  per-command motion limit (per axis, relative to the *measured* TCP pose), then the boxes again.
- Impedance requests: every field finite and within `safety.impedance` (hilrl.robot_server.safety),
  else `ErrorReply("bad_field")` naming the field and the range; refused while errors are latched.
- Home and resets (one implementation for every backend): home must lie inside the box (the
  service refuses to start otherwise); `GoHome` noise must be finite and within the reset caps, and
  the randomised start pose is drawn here and clipped to the box and the orientation limits before
  the backend moves there.
- Error latch: while the backend reports errors (or the service has latched "force_limit" or
  "operator_stop"), motion requests are refused with `ErrorReply("controller_error")`. Only
  `ClearErrors` clears the latch. `Stop` (any client, never refused) holds the arm and latches
  "operator_stop".
- Speed: the backends move their controller's reference towards the accepted target no faster than
  `safety.max_tcp_speed_m_per_s` / `max_tcp_angular_speed_rad_per_s` (`SpeedLimiter`).
- Watchdog (realtime clock only): no `SetPoseTarget` for `watchdog_timeout_s` -> the arm holds its
  measured pose and states report "holding" until the next target.
- Any exception from the backend becomes `ErrorReply("backend_error")`; a request never kills the
  server.

`PhysicsPacer` keeps a simulated arm on the wall clock for the realtime clock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from hilrl.robot_server.backend import ArmBackend
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.safety import clip_to_orientation_limits, home_violation, start_pose
from hilrl.transport.robot_messages import (
    Ack,
    Advance,
    ClearErrors,
    ErrorReply,
    GetInfo,
    GetState,
    GoHome,
    Images,
    Render,
    RobotState,
    ServerInfo,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
    Stop,
)
from hilrl.transport.spatial import (
    orientation_error,
    quat_mul,
    quat_normalize,
    rotvec_to_quat,
)

log = logging.getLogger(__name__)

Reply = RobotState | Ack | ErrorReply | ServerInfo | Images

_ORIENTATION_CLIP_ROUNDS = 20


class RequestRefused(Exception):
    """A request the safety layer refuses; `handle` turns it into ErrorReply(code, message)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class RobotService:
    """Safety layer and request dispatch for one arm backend.

    Args:
        backend: the arm (already constructed; the service does not own its lifetime).
        config: server configuration; `config.safety` holds every limit applied here and
            `config.clock` decides whether `Advance` is served and whether the watchdog runs.
    """

    def __init__(self, backend: ArmBackend, config: ServerConfig):
        if config.clock == "lockstep" and backend.realtime_only:
            raise ValueError(
                f"the {backend.name} backend runs on its own clock; use clock: realtime, not lockstep"
            )
        self.backend = backend
        self.config = config
        safety = config.safety
        self._box_min_m = np.asarray(safety.workspace_min_m, dtype=np.float64)
        self._box_max_m = np.asarray(safety.workspace_max_m, dtype=np.float64)
        self._orientation_limit_rad = np.asarray(safety.orientation_limit_rad, dtype=np.float64)
        self._home_quat = quat_normalize(backend.home_quaternion_wxyz)
        problem = home_violation(backend.home_position_m, safety)
        if problem is not None:
            raise ValueError(problem)
        self._reset_rng = np.random.default_rng()
        self._latched: list[str] = []  # errors the service itself latched (force limit)
        self._last_motion_s: float | None = None  # None: watchdog disarmed
        self._holding = False
        self._tick_failing = False
        self._handlers: dict[type, Callable[[Any, float], Reply]] = {
            GetInfo: self._get_info,
            GetState: self._get_state,
            SetPoseTarget: self._set_pose_target,
            SetGripper: self._set_gripper,
            GoHome: self._go_home,
            SetImpedance: self._set_impedance,
            ClearErrors: self._clear_errors,
            Stop: self._stop,
            Render: self._render,
            Advance: self._advance,
        }

    # ------------------------------------------------------------------ public API

    def handle(self, msg: Any, now_s: float) -> Reply:
        """Serve one request; returns its reply (never raises for a bad request or a backend fault).

        Args:
            msg: a decoded request dataclass from `transport.robot_messages`.
            now_s: the server's monotonic clock in seconds (drives the watchdog).
        """
        handler = self._handlers.get(type(msg))
        if handler is None:
            return ErrorReply(
                "unknown_kind",
                f"{type(msg).__name__} is not a request; requests are "
                f"{', '.join(t.__name__ for t in self._handlers)}",
            )
        try:
            return handler(msg, now_s)
        except RequestRefused as exc:
            return ErrorReply(exc.code, str(exc))
        except Exception as exc:  # the server outlives any backend fault
            log.exception("backend failed on %s", type(msg).__name__)
            return ErrorReply("backend_error", f"{type(msg).__name__} failed in the backend: {type(exc).__name__}: {exc}")

    def tick(self, now_s: float) -> None:
        """Periodic checks between requests (realtime clock): watchdog and force limit.

        Args:
            now_s: the server's monotonic clock in seconds.
        """
        if self.config.clock != "realtime":
            return  # lockstep: nothing moves between requests, so there is nothing to watch
        try:
            if (
                not self._holding
                and self._last_motion_s is not None
                and now_s - self._last_motion_s > self.config.safety.watchdog_timeout_s
            ):
                log.warning(
                    "watchdog: no pose target for %.3f s (limit %.3f s); holding the measured pose",
                    now_s - self._last_motion_s,
                    self.config.safety.watchdog_timeout_s,
                )
                self.backend.hold()
                self._holding = True
            self._observe(self.backend.state(), check_force=True)
            self._tick_failing = False
        except Exception:
            if not self._tick_failing:  # once per failure streak: this runs every few ms
                log.exception("backend failed during the periodic safety check")
            self._tick_failing = True

    @property
    def errors(self) -> list[str]:
        """Errors latched by the service itself (the backend reports its own in its state)."""
        return list(self._latched)

    # ------------------------------------------------------------------ safety helpers

    def _observe(self, state: RobotState, check_force: bool = False) -> RobotState:
        """Return the state as clients should see it; with `check_force`, first latch the force
        limit if it is exceeded.

        The force is judged only where physics has just moved (the realtime tick, after an
        Advance): a state read, a clear or a go-home must not latch a force the arm already
        stopped producing. (After a latch the arm holds its measured pose, so contact relaxes as
        soon as physics runs; re-judging on ClearErrors in lockstep, where time stands still,
        would latch the same stale force again and leave the sim unrecoverable.)
        """
        force_n = float(np.linalg.norm(state.tcp_force_n))
        limit_n = self.config.safety.max_force_n
        if check_force and force_n > limit_n and not any(e.startswith("force_limit") for e in self._latched):
            message = f"force_limit: external force {force_n:.1f} N exceeded {limit_n:.1f} N"
            log.error("%s; holding the arm", message)
            self._latched.append(message)
            self.backend.hold()
        errors = [*state.errors, *self._latched]
        if errors or state.status == "error":
            status = "error"
        elif self._holding:
            status = "holding"
        else:
            status = state.status
        if status == state.status and errors == state.errors:
            return state
        return dataclasses.replace(state, status=status, errors=errors)

    def _state(self) -> RobotState:
        return self._observe(self.backend.state())

    def _require_no_errors(self, request: str) -> RobotState:
        state = self._state()
        if state.errors or state.status == "error":
            shown = "; ".join(state.errors) or "controller reports status 'error'"
            raise RequestRefused(
                "controller_error",
                f"{request} refused: controller error latched ({shown}); make the cell safe, "
                "then send clear_errors",
            )
        return state

    def safe_target(
        self, position_m: np.ndarray, quaternion_wxyz: np.ndarray, state: RobotState
    ) -> tuple[np.ndarray, np.ndarray]:
        """The target the arm may accept, given a requested one and the measured state.

        Args:
            position_m: requested TCP position (3,), base frame.
            quaternion_wxyz: requested TCP orientation (4,), need not be normalised.
            state: the measured state (the motion limit is relative to the measured TCP pose).
        Returns:
            (position_m, quaternion_wxyz) inside the workspace box, the orientation box, and within
            one command's motion limit of the measured pose (the boxes win if they conflict).
        Raises:
            RequestRefused: a quaternion with no direction (code "bad_field").
        """
        try:
            quat = quat_normalize(quaternion_wxyz)
        except ValueError:
            raise RequestRefused(
                "bad_field", f"set_pose_target.quaternion_wxyz {list(quaternion_wxyz)} has no direction (zero norm)"
            ) from None
        position = np.clip(np.asarray(position_m, dtype=np.float64), self._box_min_m, self._box_max_m)
        quat = self._clip_orientation(quat)

        safety = self.config.safety
        measured_pos = np.asarray(state.tcp_position_m, dtype=np.float64)
        position = np.clip(position, measured_pos - safety.max_step_m, measured_pos + safety.max_step_m)
        position = np.clip(position, self._box_min_m, self._box_max_m)

        # The orientation box (home frame) and the step limit (base frame, about the measured
        # orientation) do not commute, so one pass of each can leave the other slightly violated;
        # alternating the two clips converges to a target meeting both when one exists. The box
        # is applied last: it wins if they cannot both hold.
        measured_quat = quat_normalize(state.tcp_quaternion_wxyz)
        for _ in range(_ORIENTATION_CLIP_ROUNDS):
            error = orientation_error(quat, measured_quat)
            step = np.clip(error, -safety.max_step_rad, safety.max_step_rad)
            if np.array_equal(step, error):
                break
            quat = self._clip_orientation(quat_normalize(quat_mul(rotvec_to_quat(step), measured_quat)))
        return position, quat

    def _clip_orientation(self, quat: np.ndarray) -> np.ndarray:
        return clip_to_orientation_limits(quat, self._home_quat, self._orientation_limit_rad)

    def _clip_position(self, position: np.ndarray) -> np.ndarray:
        return np.clip(position, self._box_min_m, self._box_max_m)

    # ------------------------------------------------------------------ request handlers

    def _get_info(self, msg: GetInfo, now_s: float) -> ServerInfo:
        b = self.backend
        return ServerInfo(
            backend=b.name,
            task=b.task,
            clock=self.config.clock,
            control_period_s=self.config.control_period_s,
            cameras=list(b.cameras),
            home_position_m=np.asarray(b.home_position_m, dtype=np.float64),
            home_quaternion_wxyz=np.asarray(self._home_quat, dtype=np.float64),
            workspace_min_m=self._box_min_m.copy(),
            workspace_max_m=self._box_max_m.copy(),
            watchdog_timeout_s=self.config.safety.watchdog_timeout_s,
        )

    def _get_state(self, msg: GetState, now_s: float) -> RobotState:
        return self._state()

    def _set_pose_target(self, msg: SetPoseTarget, now_s: float) -> RobotState:
        position = np.asarray(msg.position_m, dtype=np.float64)
        quat = np.asarray(msg.quaternion_wxyz, dtype=np.float64)
        # Checked here as well as in the codec: in-process callers skip the wire.
        if position.shape != (3,) or quat.shape != (4,):
            raise RequestRefused(
                "bad_field",
                f"set_pose_target: position_m must have shape (3,) and quaternion_wxyz (4,), "
                f"got {position.shape} and {quat.shape}",
            )
        if not (np.isfinite(position).all() and np.isfinite(quat).all()):
            raise RequestRefused("bad_field", "set_pose_target: position_m or quaternion_wxyz contains NaN or inf")
        state = self._require_no_errors("set_pose_target")
        position, quat = self.safe_target(position, quat, state)
        self.backend.set_target(position, quat)
        self._last_motion_s = now_s
        self._holding = False
        state = self._state()
        # The reply shows exactly what was accepted, whatever the backend echoes.
        return dataclasses.replace(state, target_position_m=position, target_quaternion_wxyz=quat)

    def _set_gripper(self, msg: SetGripper, now_s: float) -> Ack:
        opening = msg.opening
        # Checked here as well as in the message: an in-process caller may skip it, and a NaN
        # opening would reach the finger actuators (np.clip keeps NaN).
        if not (isinstance(opening, (int, float)) and 0.0 <= opening <= 1.0):
            raise RequestRefused("bad_field", f"set_gripper.opening = {opening!r} is outside [0, 1]")
        self._require_no_errors("set_gripper")
        self.backend.set_gripper(float(opening))
        return Ack()

    def _go_home(self, msg: GoHome, now_s: float) -> RobotState:
        safety = self.config.safety
        for name, value, cap, cap_key in (
            ("position_noise_m", msg.position_noise_m, safety.max_reset_position_noise_m, "max_reset_position_noise_m"),
            ("rotation_noise_rad", msg.rotation_noise_rad, safety.max_reset_rotation_noise_rad, "max_reset_rotation_noise_rad"),
        ):
            # Checked here as well as in the message: in-process callers may build it unchecked.
            if not (np.isfinite(value) and 0.0 <= value <= cap):
                raise RequestRefused(
                    "bad_field", f"go_home.{name} = {value!r} is outside [0, {cap:g}] (robot_server.safety.{cap_key})"
                )
        self._require_no_errors("go_home")
        if msg.seed is not None:
            self._reset_rng = np.random.default_rng(msg.seed)
        position, quat = start_pose(
            self.backend.home_position_m, self._home_quat, msg.position_noise_m, msg.rotation_noise_rad,
            self._reset_rng, self._clip_position, self._clip_orientation,
        )
        self.backend.go_home(position, quat, msg.seed)
        # At home the target equals the pose, so the arm is at rest: the watchdog re-arms on the
        # next pose target.
        self._last_motion_s = None
        self._holding = False
        return self._state()

    def _set_impedance(self, msg: SetImpedance, now_s: float) -> Ack:
        problem = self.config.safety.impedance.violation(msg.params)
        if problem is not None:
            name, value, low, high = problem
            raise RequestRefused(
                "bad_field",
                f"set_impedance.params.{name} = {value!r} is outside [{low:g}, {high:g}] "
                f"(robot_server.safety.impedance.{name})",
            )
        self._require_no_errors("set_impedance")
        self.backend.set_impedance(msg.params)
        return Ack()

    def _clear_errors(self, msg: ClearErrors, now_s: float) -> RobotState:
        if self._latched:
            log.info("clearing latched errors on request: %s", "; ".join(self._latched))
        self.backend.clear_errors()
        self._latched.clear()
        return self._state()

    def _stop(self, msg: Stop, now_s: float) -> RobotState:
        """Hold and latch "operator_stop" (never refused: a stop must always get through)."""
        if not any(e.startswith("operator_stop") for e in self._latched):
            message = f"operator_stop: {msg.reason or 'a client sent stop'}; send clear_errors to resume"
            log.error("%s; holding the arm", message)
            self._latched.append(message)
        try:
            self.backend.hold()
        except Exception:  # the latch stands whatever the backend says; the reply still comes
            log.exception("holding the arm on stop failed")
        self._holding = True
        return self._state()

    def _render(self, msg: Render, now_s: float) -> Images:
        valid = list(self.backend.cameras)
        if not valid:
            raise RequestRefused("unsupported", f"the {self.backend.name} backend has no cameras to render")
        unknown = [c for c in msg.cameras if c not in valid]
        if unknown:
            raise RequestRefused(
                "bad_field",
                f"render.cameras: unknown camera {', '.join(repr(c) for c in unknown)}; valid: {', '.join(valid)}",
            )
        pixels, capture_time_s = self.backend.render(list(msg.cameras))
        return Images(cameras=list(msg.cameras), pixels=pixels, capture_time_s=float(capture_time_s))

    def _advance(self, msg: Advance, now_s: float) -> RobotState:
        if self.config.clock != "lockstep":
            raise RequestRefused("unsupported", "advance is only served with the lockstep clock; this server runs realtime")
        self.backend.advance(msg.periods * self.config.control_period_s)
        return self._observe(self.backend.state(), check_force=True)


class PhysicsPacer:
    """Keeps a simulated arm on the wall clock (realtime clock) and runs the service's checks.

    Physics advances in whole physics steps; the remainder carries to the next call so robot time
    tracks wall time without drift. If the caller falls behind by more than `max_catch_up_s`, the
    excess is dropped (robot time runs slow) rather than simulated, so a slow machine degrades
    instead of spiralling.

    Args:
        service: the service whose backend to advance and whose `tick` to run.
        timestep_s: physics step of the backend.
        max_catch_up_s: most robot time simulated per call.
        chunk_s: physics is advanced in chunks of at most this long with a `tick` after each, so
            the watchdog and force limit act within a chunk even over a long catch-up.
    """

    def __init__(
        self,
        service: RobotService,
        timestep_s: float,
        max_catch_up_s: float = 0.05,
        chunk_s: float = 0.01,
    ):
        self.service = service
        self.timestep_s = timestep_s
        self.max_catch_up_s = max_catch_up_s
        self.chunk_s = max(chunk_s, timestep_s)
        self._last_s: float | None = None
        self._debt_s = 0.0
        self.dropped_s = 0.0  # total wall time not simulated because we fell behind

    def catch_up(self, now_s: float) -> float:
        """Advance physics to `now_s` (monotonic seconds); returns the time dropped by this call."""
        if self._last_s is None:
            self._last_s = now_s
            return 0.0
        self._debt_s += max(0.0, now_s - self._last_s)
        self._last_s = now_s
        dropped = 0.0
        if self._debt_s > self.max_catch_up_s:
            dropped = self._debt_s - self.max_catch_up_s
            self._debt_s = self.max_catch_up_s
            self.dropped_s += dropped
        virtual_s = now_s - self._debt_s
        steps = int(self._debt_s / self.timestep_s + 1e-9)
        steps_per_chunk = max(1, int(self.chunk_s / self.timestep_s + 1e-9))
        if steps == 0:
            self.service.tick(now_s)
        while steps > 0:
            n = min(steps, steps_per_chunk)
            duration = n * self.timestep_s
            self._debt_s -= duration
            virtual_s += duration
            steps -= n
            self.service.backend.advance(duration)
            self.service.tick(virtual_s)
        self._debt_s = max(0.0, self._debt_s)
        return dropped
