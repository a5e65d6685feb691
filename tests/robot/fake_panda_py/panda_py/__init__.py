"""A fake panda-py (pip package panda-python) for the franka backend's tests: no robot, no
libfranka. Put `tests/robot/fake_panda_py` first on `sys.path` (or PYTHONPATH for a server
process) and `import panda_py` gets this package.

It imitates exactly the API the backend uses, as bound in panda-py 0.8 / 1.x (src/_core.cpp,
_core.pyi): `Panda(hostname, name, realtime_config)`, `get_state`, `get_model`, `get_robot`,
`start_controller`, `stop_controller`, `move_to_joint_position(positions, speed_factor)`,
`recover`, `raise_error`; with a tiny kinematic model: while a controller runs, the TCP moves
towards its reference with first-order dynamics (time constant `time_constant_s`), computed from
the elapsed time whenever the arm is observed, so no thread is needed. The controller's loop
"runs" as in panda-py: starting one first stops the running one and recovers from errors.

Test hooks: `inject_reflex(name)` (the control loop dies with a libfranka-like exception, the
robot reports robot_mode kReflex and the error flag), `press_user_stop()` /
`release_user_stop()`, `external_wrench`, `calls` (every API call by name), `controllers` (every
controller started).
"""

from __future__ import annotations

import math
import threading
import time

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
        self.time_constant_s = 0.05
        self.joint_move_s = 0.05
        self.external_wrench = np.zeros(6)
        self.calls: list[str] = []
        self.controllers: list[controllers.CartesianImpedance] = []
        self.move_calls: list[tuple[np.ndarray, float]] = []
        self._lock = threading.RLock()
        self._q = _arm.READY_Q.copy()
        self._position, self._quat = _arm.fk(self._q)
        self._twist = np.zeros(6)
        self._controller: controllers.CartesianImpedance | None = None
        self._mode = RobotMode.kIdle
        self._errors: set[str] = set()
        self._last_motion_errors: set[str] = set()
        self._user_stopped = False
        self._pending_error: Exception | None = None
        self._t0 = time.monotonic()
        self._t = self._t0
        self._model = libfranka.Model()
        self._robot = libfranka.Robot(self)

    # ------------------------------------------------------------------ the fake arm

    def _advance(self) -> None:
        """Move the arm from the last observation to now."""
        now = time.monotonic()
        dt = now - self._t
        self._t = now
        ctrl = self._controller
        if ctrl is None or not ctrl.running or dt <= 0:
            self._twist = np.zeros(6)
            return
        ref_position, ref_quat = ctrl.reference()
        alpha = 1.0 - math.exp(-dt / self.time_constant_s)
        old_position = self._position
        self._position = self._position + alpha * (ref_position - self._position)
        error = _arm.quat_to_rotvec(_arm.quat_mul(ref_quat, _arm.quat_conj(self._quat)))
        self._quat = _arm.quat_mul(_arm.rotvec_to_quat(alpha * error), self._quat)
        self._quat /= np.linalg.norm(self._quat)
        self._twist = np.concatenate([ref_position - self._position, (1.0 - alpha) * error]) / self.time_constant_s
        self._q[:6] += np.concatenate([self._position - old_position, alpha * error])

    def _stop_loop(self) -> None:
        if self._controller is not None:
            self._controller._stop()
            self._controller = None
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
            dq = np.concatenate([self._twist, [0.0]])
            return RobotState(
                O_T_EE=_arm.column_major(self._position, self._quat),
                O_F_ext_hat_K=[float(v) for v in self.external_wrench],
                q=[float(v) for v in self._q],
                dq=[float(v) for v in dq],
                robot_mode=self._mode,
                current_errors=Errors(self._errors),
                last_motion_errors=Errors(self._last_motion_errors),
                time=Duration(int((self._t - self._t0) * 1000)),
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
            controller._start(self._position, self._quat, self._q)
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
        time.sleep(self.joint_move_s)  # the motion; panda-py releases the GIL meanwhile
        with self._lock:
            self._q = q.copy()
            self._position, self._quat = _arm.fk(q)
            self._t = time.monotonic()
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
