"""A fake panda-py (pip package panda-python) for the franka backend's tests: no robot, no
libfranka. Put `tests/robot/fake_panda_py` first on `sys.path` (or PYTHONPATH for a server
process) and `import panda_py` gets this package.

It imitates exactly the API the backend uses, as bound in panda-py 0.8 / 1.x (src/_core.cpp,
_core.pyi): `Panda(hostname, name, realtime_config)`, `get_state`, `get_model`, `get_robot`,
`start_controller`, `stop_controller`, `move_to_joint_position(positions, speed_factor)`,
`recover`, `raise_error`. The controller's loop "runs" as in panda-py: starting one first stops
the running one and recovers from errors.

The arm is DYNAMIC: while a `controllers.CartesianImpedance` runs, the TCP is a mass-spring-damper
driven by the impedance law the controller was given (panda-py's, franka_example_controllers'
cartesian_impedance_example_controller):

    translation, per axis i = x, y, z:
        mass_kg * dv_i/dt = K_i (x_ref_i - x_i) - D_i v_i + F_ext_i
    rotation, per axis i = x, y, z (base frame):
        inertia_kg_m2 * dw_i/dt = K_rot_i e_i - D_rot_i w_i + T_ext_i

- K_i, K_rot_i: the diagonal of the controller's `impedance` (first 3 entries N/m, last 3 N m
  per unit of e); off-diagonal entries are ignored (the backend sends a diagonal).
- D = damping_ratio * 2 * sqrt(K), per entry: panda-py's damping from its ratio.
- e: panda-py's orientation error, the vector part of the error quaternion q_ref * q^-1 (the sign
  chosen so its w >= 0, i.e. the shorter way): sin(angle/2) * axis, base frame. For small angles
  the rotational stiffness per radian is K_rot / 2, which is why the backend sends 2 k_r.
- `mass_kg` (default 1.0): the effective Cartesian mass. With 1 kg, panda-py's damping ratio is
  exactly the physical one, zeta = D / (2 sqrt(K m)) = damping_ratio.
- `inertia_kg_m2` (default 2.0): the effective rotational inertia. The physical ratio of the
  linearised rotation is D_rot / (2 sqrt(K_rot / 2 * I)) = damping_ratio * sqrt(2 / I), so 2 kg m^2
  makes panda-py's ratio the physical one for rotation too, as 1 kg does for translation.
- F_ext, T_ext: `external_wrench` (6,), set by a test, plus the optional table contact below. The
  arm reports the same total wrench in O_F_ext_hat_K (libfranka's estimate of the wrench the
  environment exerts on the arm, base frame).
- Table (optional, off by default): with `table_height_m` set, a TCP below that height is pushed
  up by table_stiffness_n_per_m * depth - table_damping_ns_per_m * v_z (never pulling down).
- The null space, the filter (`filter_coeff`) and gravity are not modelled: the controller's
  nullspace stiffness and filter are recorded only.

Integration: semi-implicit (symplectic) Euler at a fixed `step_s` = 1 ms (libfranka's rate): v
first, then x with the new v; the orientation turns by the new w over the step. It runs lazily,
from the last observation up to now (`clock`, time.monotonic by default), whenever the arm is
observed or commanded (get_state, get_position, get_orientation, start/stop_controller, the
controller's setters), so no thread is needed. One catch-up simulates at most `max_catchup_s` (2 s);
the rest is dropped (the arm stands still for it) and counted in `dropped_catchups` /
`dropped_s`, so a test that sleeps long does not hang. The integrator is stable while
K step^2 / m + 2 D step / m < 4 per axis (rotation: K_rot / 2 and I); beyond that the fake raises
rather than explode (raise `mass_kg`).

When no controller runs, the arm brakes: the velocity is 0 at once and the pose stays (libfranka
holds the arm when no controller runs), whatever the external wrench.

Reported state: O_T_EE is the dynamic pose; dq holds the TCP twist (v, w) in its first six
entries, so the fake zero Jacobian ([I6 | 0], libfranka.Model.zero_jacobian) gives the backend
J dq = the model's twist; q[:6] integrates the same twist (q[6] stays). The state's `time` is the
simulated time, in whole 1 ms steps.

`move_to_joint_position` is libfranka's own joint motion generator, not the impedance law: a timed
teleport taking (largest joint distance) / (speed_factor * `joint_speed_rad_per_s`), clipped to
[`joint_move_min_s`, `joint_move_max_s`] so tests stay fast.

Test hooks: `inject_reflex(name)` (the control loop dies with a libfranka-like exception, the
robot reports robot_mode kReflex and the error flag), `press_user_stop()` /
`release_user_stop()`, `external_wrench`, `mass_kg`, `inertia_kg_m2`, `table_height_m` (and its
stiffness and damping), `set_clock(clock)` (a manual clock for deterministic tests), `velocity`,
`angular_velocity`, `wrench()`, `calls` (every API call by name), `controllers` (every controller
started), `move_calls` ((q, speed_factor) per joint move) and `move_durations_s`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from panda_py import _arm, controllers, libfranka
from panda_py.libfranka import Duration, Errors, RealtimeConfig, RobotMode, RobotState

__version__ = "0.8.1+fake"
__all__ = ["Panda", "controllers", "libfranka"]

_IDENTITY = [float(v) for v in np.eye(4).flatten(order="F")]


class Panda:
    def __init__(self, hostname: str, name: str = "panda",
                 realtime_config: RealtimeConfig = RealtimeConfig.kIgnore):
        if not isinstance(realtime_config, RealtimeConfig):
            raise TypeError(f"realtime_config must be a libfranka.RealtimeConfig, got {realtime_config!r}")
        if not hostname or hostname.startswith("unreachable"):
            raise RuntimeError(f"libfranka: Connection error: cannot connect to {hostname}")
        self.hostname = hostname
        self.name = name
        self.realtime_config = realtime_config
        # The dynamic model (see the module docstring).
        self.mass_kg = 1.0
        self.inertia_kg_m2 = 2.0
        self.step_s = 0.001
        self.max_catchup_s = 2.0
        self.external_wrench = np.zeros(6)
        self.table_height_m: float | None = None
        self.table_stiffness_n_per_m = 20000.0
        self.table_damping_ns_per_m = 100.0
        self.dropped_catchups = 0
        self.dropped_s = 0.0
        # The joint motion generator.
        self.joint_speed_rad_per_s = 2.0
        self.joint_move_min_s = 0.01
        self.joint_move_max_s = 0.25
        self.calls: list[str] = []
        self.controllers: list[controllers.CartesianImpedance] = []
        self.move_calls: list[tuple[np.ndarray, float]] = []
        self.move_durations_s: list[float] = []
        self._lock = threading.RLock()
        self._q = _arm.READY_Q.copy()
        self._position, self._quat = _arm.fk(self._q)
        self._velocity = np.zeros(3)
        self._omega = np.zeros(3)
        self._controller: controllers.CartesianImpedance | None = None
        self._mode = RobotMode.kIdle
        self._errors: set[str] = set()
        self._last_motion_errors: set[str] = set()
        self._user_stopped = False
        self._pending_error: Exception | None = None
        self.clock: Callable[[], float] = time.monotonic
        self._t0 = self.clock()
        self._t = self._t0
        self._model = libfranka.Model()
        self._robot = libfranka.Robot(self)

    # ------------------------------------------------------------------ the fake arm

    def _advance(self) -> None:
        """Integrate the arm from the last observation to now (whole steps; call with the lock)."""
        steps = int((self.clock() - self._t) / self.step_s)
        if steps <= 0:
            return
        ctrl = self._controller
        if ctrl is None or not ctrl.running:
            self._brake()
            self._t += steps * self.step_s
            return
        max_steps = int(round(self.max_catchup_s / self.step_s))
        if steps > max_steps:
            self.dropped_catchups += 1
            self.dropped_s += (steps - max_steps) * self.step_s
            self._t += (steps - max_steps) * self.step_s
            steps = max_steps
        self._integrate(steps, *ctrl._law())
        self._t += steps * self.step_s

    def _integrate(self, steps: int, ref_position: np.ndarray, ref_quat: np.ndarray, stiffness: np.ndarray,
                   damping_ratio: float) -> None:
        """`steps` steps of semi-implicit Euler under one impedance law (Python floats: fast)."""
        dt, m, inertia = self.step_s, float(self.mass_kg), float(self.inertia_kg_m2)
        k = [max(float(v), 0.0) for v in stiffness]
        d = [damping_ratio * 2.0 * math.sqrt(v) for v in k]
        self._check_stable(k, d, m, inertia)
        fx, fy, fz, tx, ty, tz = (float(v) for v in self.external_wrench)
        rx, ry, rz = (float(v) for v in ref_position)
        rw, rqx, rqy, rqz = (float(v) for v in ref_quat)
        x, y, z = (float(v) for v in self._position)
        vx, vy, vz = (float(v) for v in self._velocity)
        qw, qx, qy, qz = (float(v) for v in self._quat)
        wx, wy, wz = (float(v) for v in self._omega)
        table = self.table_height_m
        k_table, d_table = float(self.table_stiffness_n_per_m), float(self.table_damping_ns_per_m)
        moved = [0.0] * 6
        for _ in range(steps):
            contact = 0.0
            if table is not None and z < table:
                contact = max(0.0, k_table * (table - z) - d_table * vz)
            vx += dt * (k[0] * (rx - x) - d[0] * vx + fx) / m
            vy += dt * (k[1] * (ry - y) - d[1] * vy + fy) / m
            vz += dt * (k[2] * (rz - z) - d[2] * vz + fz + contact) / m
            x += dt * vx
            y += dt * vy
            z += dt * vz
            # e: vector part of q_ref * q^-1, w >= 0 (panda-py flips q when q_ref . q < 0).
            ew = rw * qw + rqx * qx + rqy * qy + rqz * qz
            ex = -rw * qx + rqx * qw - rqy * qz + rqz * qy
            ey = -rw * qy + rqx * qz + rqy * qw - rqz * qx
            ez = -rw * qz - rqx * qy + rqy * qx + rqz * qw
            if ew < 0.0:
                ex, ey, ez = -ex, -ey, -ez
            wx += dt * (k[3] * ex - d[3] * wx + tx) / inertia
            wy += dt * (k[4] * ey - d[4] * wy + ty) / inertia
            wz += dt * (k[5] * ez - d[5] * wz + tz) / inertia
            # q <- exp(w dt) * q (w in the base frame)
            speed = math.sqrt(wx * wx + wy * wy + wz * wz)
            if speed > 0.0:
                half = 0.5 * speed * dt
                s = math.sin(half) / speed
                dw, dx, dy, dz = math.cos(half), s * wx, s * wy, s * wz
                qw, qx, qy, qz = (dw * qw - dx * qx - dy * qy - dz * qz, dw * qx + dx * qw + dy * qz - dz * qy,
                                  dw * qy - dx * qz + dy * qw + dz * qx, dw * qz + dx * qy - dy * qx + dz * qw)
                norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
                qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
            moved[0] += dt * vx
            moved[1] += dt * vy
            moved[2] += dt * vz
            moved[3] += dt * wx
            moved[4] += dt * wy
            moved[5] += dt * wz
        self._position = np.array([x, y, z])
        self._velocity = np.array([vx, vy, vz])
        self._quat = np.array([qw, qx, qy, qz])
        self._omega = np.array([wx, wy, wz])
        self._q[:6] += moved

    def _check_stable(self, k: list[float], d: list[float], mass: float, inertia: float) -> None:
        dt = self.step_s
        k_table = self.table_stiffness_n_per_m if self.table_height_m is not None else 0.0
        d_table = self.table_damping_ns_per_m if self.table_height_m is not None else 0.0
        for i in range(6):
            if i < 3:
                stiff, damp, m = k[i] + (k_table if i == 2 else 0.0), d[i] + (d_table if i == 2 else 0.0), mass
            else:
                stiff, damp, m = 0.5 * k[i], d[i], inertia
            if m <= 0 or stiff * dt * dt / m + 2.0 * damp * dt / m >= 4.0:
                raise ValueError(
                    f"fake panda-py: axis {i} (stiffness {stiff:g}, damping {damp:g}, mass/inertia {m:g}) "
                    f"is unstable at a {dt * 1000:g} ms step; raise mass_kg / inertia_kg_m2"
                )

    def _brake(self) -> None:
        self._velocity = np.zeros(3)
        self._omega = np.zeros(3)

    def _stop_loop(self) -> None:
        if self._controller is not None:
            self._controller._stop()
            self._controller = None
        self._brake()
        if self._mode == RobotMode.kMove:
            self._mode = RobotMode.kIdle

    def _auto_recover(self) -> None:
        """What panda-py does before starting any motion (Panda::recover)."""
        if self._user_stopped:
            raise RuntimeError("libfranka: Automatic error recovery command rejected: user stop pressed")
        if self._errors or self._mode == RobotMode.kReflex:
            self._errors.clear()
            self._mode = RobotMode.kIdle

    # ------------------------------------------------------------------ test hooks

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use `clock` (seconds, non-decreasing) from now on, e.g. a manual one for a
        deterministic test: the arm is integrated up to now on the old clock first."""
        with self._lock:
            self._advance()
            elapsed = self._t - self._t0
            self.clock = clock
            self._t = clock()
            self._t0 = self._t - elapsed

    def wrench(self) -> np.ndarray:
        """The wrench the environment exerts on the arm now: `external_wrench` plus the table's."""
        with self._lock:
            wrench = np.array(self.external_wrench, dtype=np.float64)
            table = self.table_height_m
            if table is not None and self._position[2] < table:
                wrench[2] += max(0.0, self.table_stiffness_n_per_m * (table - self._position[2])
                                 - self.table_damping_ns_per_m * self._velocity[2])
            return wrench

    @property
    def velocity(self) -> np.ndarray:
        """The TCP's linear velocity now, m/s (base frame)."""
        with self._lock:
            self._advance()
            return self._velocity.copy()

    @property
    def angular_velocity(self) -> np.ndarray:
        """The TCP's angular velocity now, rad/s (base frame)."""
        with self._lock:
            self._advance()
            return self._omega.copy()

    def inject_reflex(self, name: str = "cartesian_reflex") -> None:
        """The robot aborts the running motion with a reflex, as libfranka reports it."""
        with self._lock:
            self._advance()
            self._stop_loop()
            self._mode = RobotMode.kReflex
            self._errors = {name}
            self._last_motion_errors = {name}
            self._pending_error = RuntimeError(
                f'libfranka: Move command aborted: motion aborted by reflex! ["{name}"]'
            )

    def press_user_stop(self) -> None:
        with self._lock:
            self._advance()
            self._stop_loop()
            self._user_stopped = True
            self._mode = RobotMode.kUserStopped
            self._pending_error = RuntimeError("libfranka: Move command aborted: User Stop pressed!")

    def release_user_stop(self) -> None:
        with self._lock:
            self._user_stopped = False
            self._mode = RobotMode.kIdle

    @property
    def controller(self) -> controllers.CartesianImpedance | None:
        """The running controller, if any."""
        with self._lock:
            return self._controller if self._controller is not None and self._controller.running else None

    # ------------------------------------------------------------------ panda-py's API

    def get_state(self) -> RobotState:
        with self._lock:
            self._advance()
            dq = np.concatenate([self._velocity, self._omega, [0.0]])
            return RobotState(
                O_T_EE=_arm.column_major(self._position, self._quat),
                O_F_ext_hat_K=[float(v) for v in self.wrench()],
                q=[float(v) for v in self._q],
                dq=[float(v) for v in dq],
                robot_mode=self._mode,
                current_errors=Errors(self._errors),
                last_motion_errors=Errors(self._last_motion_errors),
                time=Duration(int(round((self._t - self._t0) * 1000))),
                F_T_EE=list(_IDENTITY),
                EE_T_K=list(_IDENTITY),
            )

    def get_position(self) -> np.ndarray:
        with self._lock:
            self._advance()
            return self._position.copy()

    def get_orientation(self, scalar_first: bool = False) -> np.ndarray:
        with self._lock:
            self._advance()
            w, x, y, z = self._quat
            return np.array([w, x, y, z] if scalar_first else [x, y, z, w])

    def get_model(self) -> libfranka.Model:
        return self._model

    def get_robot(self) -> libfranka.Robot:
        return self._robot

    def start_controller(self, controller: controllers.TorqueController) -> None:
        if not isinstance(controller, controllers.TorqueController):
            raise TypeError("start_controller(controller: TorqueController)")
        with self._lock:
            self.calls.append("start_controller")
            self._advance()
            self._stop_loop()
            self._auto_recover()
            controller._start(self._position, self._quat, self._q, owner=self)
            self._controller = controller
            self.controllers.append(controller)
            self._mode = RobotMode.kMove

    def stop_controller(self) -> None:
        with self._lock:
            self.calls.append("stop_controller")
            self._advance()
            self._stop_loop()

    def move_to_joint_position(self, positions, speed_factor: float = 0.2, stiffness=None, damping=None,
                               dq_threshold: float = 0.001, success_threshold: float = 0.01) -> bool:
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not 0 < speed_factor <= 1:
            raise TypeError("move_to_joint_position(positions: 7 floats, speed_factor in (0, 1])")
        with self._lock:
            self.calls.append("move_to_joint_position")
            self.move_calls.append((q.copy(), float(speed_factor)))
            self._advance()
            self._stop_loop()
            self._auto_recover()
            distance_rad = float(np.abs(q - self._q).max())
            duration_s = min(max(distance_rad / (speed_factor * self.joint_speed_rad_per_s), self.joint_move_min_s),
                             self.joint_move_max_s)
            self.move_durations_s.append(duration_s)
        time.sleep(duration_s)  # the motion; panda-py releases the GIL meanwhile
        with self._lock:
            self._advance()  # braked: no controller runs
            self._q = q.copy()
            self._position, self._quat = _arm.fk(q)
            self._brake()
            self._mode = RobotMode.kIdle
        return True

    def recover(self) -> None:
        with self._lock:
            self.calls.append("recover")
            self._auto_recover()

    def raise_error(self) -> None:
        with self._lock:
            error, self._pending_error = self._pending_error, None
        if error is not None:
            raise error
