"""Fake `panda_py.controllers`: `CartesianImpedance` with panda-py 0.8 / 1.x's constructor and
setters (src/_core.cpp bindings). Orientations are (x, y, z, w), as in panda-py.

The fake arm (`panda_py.Panda`) integrates this controller's impedance law (`_law()`: reference,
stiffness diagonal, damping ratio) while it runs; every setter first brings the arm up to now
under the old law, so a change takes effect when it is made, not from the last observation. Test
hooks: `history` (every call with its arguments), `running`, `reference()`.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np

from panda_py import _arm


def _vector(value, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise TypeError(f"{name} must be {n} finite floats, got {value!r}")
    return arr


class TorqueController:
    def __init__(self):
        self._started_s: float | None = None

    def get_time(self) -> float:
        return 0.0 if self._started_s is None else time.monotonic() - self._started_s


class CartesianImpedance(TorqueController):
    def __init__(self, impedance=None, damping_ratio: float = 1.0, nullspace_stiffness: float = 0.5,
                 filter_coeff: float = 1.0):
        super().__init__()
        if impedance is None:
            impedance = np.diag([200.0, 200.0, 200.0, 10.0, 10.0, 10.0])
        self.impedance = self._matrix(impedance)
        self.damping_ratio = float(damping_ratio)
        self.nullspace_stiffness = float(nullspace_stiffness)
        self.filter_coeff = float(filter_coeff)
        self.running = False
        self.history: list[tuple] = []
        self._lock = threading.Lock()
        self._owner = None  # the fake Panda running this controller
        self._position = np.zeros(3)
        self._quat_wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        self.q_nullspace = np.asarray(_arm.READY_Q, dtype=np.float64).copy()

    @staticmethod
    def _matrix(impedance) -> np.ndarray:
        k = np.asarray(impedance, dtype=np.float64)
        if k.shape != (6, 6) or not np.isfinite(k).all():
            raise TypeError(f"impedance must be a 6x6 matrix, got shape {k.shape}")
        return k

    # -- called by the fake Panda
    def _start(self, position: np.ndarray, quat_wxyz: np.ndarray, q: np.ndarray, owner=None) -> None:
        with self._lock:
            self._position, self._quat_wxyz = position.copy(), quat_wxyz.copy()
            self.q_nullspace = q.copy()
            self.running = True
            self._owner = owner
            self._started_s = time.monotonic()

    def _stop(self) -> None:
        with self._lock:
            self.running = False
            self._owner = None

    def _law(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(reference position, reference quaternion wxyz, stiffness diagonal (6,), damping ratio)."""
        with self._lock:
            return self._position.copy(), self._quat_wxyz.copy(), np.diag(self.impedance).copy(), self.damping_ratio

    @contextmanager
    def _change(self):
        """Bring the arm up to now under the current law, then hold both locks for the change
        (the Panda's first, as the Panda takes them)."""
        owner = self._owner
        if owner is None:
            with self._lock:
                yield
            return
        with owner._lock:
            owner._advance()
            with self._lock:
                yield

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, quaternion wxyz) the controller pulls towards."""
        with self._lock:
            return self._position.copy(), self._quat_wxyz.copy()

    # -- panda-py's API
    def set_control(self, position, orientation, q_nullspace=None) -> None:
        position = _vector(position, 3, "position")
        xyzw = _vector(orientation, 4, "orientation")
        if abs(np.linalg.norm(xyzw) - 1.0) > 1e-6:
            raise ValueError(f"orientation {xyzw} is not a unit quaternion")
        q_ns = _arm.READY_Q if q_nullspace is None else _vector(q_nullspace, 7, "q_nullspace")
        with self._change():
            self.history.append(("set_control", position.copy(), xyzw.copy(), np.array(q_ns)))
            self._position = position
            self._quat_wxyz = np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]])
            self.q_nullspace = np.array(q_ns)

    def set_impedance(self, impedance) -> None:
        k = self._matrix(impedance)
        with self._change():
            self.history.append(("set_impedance", k.copy()))
            self.impedance = k

    def set_damping_ratio(self, damping: float) -> None:
        with self._change():
            self.history.append(("set_damping_ratio", float(damping)))
            self.damping_ratio = float(damping)

    def set_nullspace_stiffness(self, nullspace_stiffness: float) -> None:
        with self._change():
            self.history.append(("set_nullspace_stiffness", float(nullspace_stiffness)))
            self.nullspace_stiffness = float(nullspace_stiffness)

    def set_filter(self, filter_coeff: float) -> None:
        with self._change():
            self.history.append(("set_filter", float(filter_coeff)))
            self.filter_coeff = float(filter_coeff)
