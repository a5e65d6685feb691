"""Cartesian impedance torque controller, evaluated at every physics step.

    tau = J^T (K * clip(lead(x_ref - x)) - D * xdot) + N (k_ns (q_ns - q) - d_ns qdot) + bias

x_ref is the speed-limited reference (hilrl.robot_server.safety.SpeedLimiter) and lead() bounds its
distance from the TCP so that the steady speed stays at or under the cap (safety.lead_limits).

x is the TCP pose (position, and orientation as the rotation vector of the error), J the 6x7 TCP
Jacobian in the base frame, bias the Coriolis + gravity torques (what the real controller gets from
the robot model), and N = I - J^T J^{+T} the null-space projector that keeps the elbow near a
posture without disturbing the TCP. The per-axis clip of the reference error bounds the Cartesian
force to K x clip: that is what makes contact compliant, exactly as on the real arm.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from hilrl.transport.robot_messages import ImpedanceParams


class ImpedanceController:
    """Computes arm joint torques for one physics step.

    Args:
        params: gains and clips.
        n_joints: number of arm joints (7), the first dofs of the model.
    """

    def __init__(self, params: ImpedanceParams, n_joints: int = 7):
        self.n = n_joints
        self.max_lead_m = math.inf  # set by the backend from the speed caps (safety.lead_limits)
        self.max_lead_rad = math.inf
        self.set_params(params)
        self._quat = np.zeros(4)
        self._neg = np.zeros(4)
        self._err_quat = np.zeros(4)
        self._rot_err = np.zeros(3)

    def set_params(self, params: ImpedanceParams) -> None:
        self.params = params
        p = params
        self._k = np.array([p.translational_stiffness_n_per_m] * 3 + [p.rotational_stiffness_nm_per_rad] * 3)
        self._d = np.array([p.translational_damping_ns_per_m] * 3 + [p.rotational_damping_nms_per_rad] * 3)
        self._clip = np.array([p.translational_clip_m] * 3 + [p.rotational_clip_rad] * 3)

    def torques(
        self,
        jac: np.ndarray,
        tcp_pos: np.ndarray,
        tcp_mat: np.ndarray,
        q: np.ndarray,
        qd: np.ndarray,
        bias: np.ndarray,
        target_pos: np.ndarray,
        target_quat: np.ndarray,
        posture: np.ndarray,
    ) -> np.ndarray:
        """Joint torques (n,) in N m.

        Args:
            jac: (6, n) TCP Jacobian, linear rows first, base frame.
            tcp_pos: (3,) measured TCP position, m. tcp_mat: (9,) row-major rotation matrix.
            q, qd: (n,) joint positions (rad) and velocities (rad/s).
            bias: (n,) Coriolis + gravity torques.
            target_pos: (3,) m; target_quat: (4,) wxyz.
            posture: (n,) null-space posture target, rad.
        """
        mujoco.mju_mat2Quat(self._quat, tcp_mat)
        mujoco.mju_negQuat(self._neg, self._quat)
        mujoco.mju_mulQuat(self._err_quat, target_quat, self._neg)
        if self._err_quat[0] < 0:  # shortest rotation
            self._err_quat *= -1
        mujoco.mju_quat2Vel(self._rot_err, self._err_quat, 1.0)
        error = np.concatenate([target_pos - tcp_pos, self._rot_err])
        # The speed caps' lead bound (hilrl.robot_server.safety.lead_limited, inlined: this runs
        # every physics step): the reference may lead the TCP by at most max_lead_m / _rad.
        for part, max_lead in ((error[:3], self.max_lead_m), (error[3:], self.max_lead_rad)):
            lead = math.sqrt(float(part @ part))
            if lead > max_lead:
                part *= max_lead / lead
        np.clip(error, -self._clip, self._clip, out=error)
        twist = jac @ qd
        wrench = self._k * error - self._d * twist
        tau = jac.T @ wrench
        p = self.params
        tau_posture = p.nullspace_stiffness_nm_per_rad * (posture - q) - p.nullspace_damping_nms_per_rad * qd
        # Null-space projection N = I - J^T (J J^T + eps I)^-1 J; the damping term keeps it finite
        # near singular configurations.
        jjt = jac @ jac.T
        jjt[np.diag_indices_from(jjt)] += 1e-6
        proj = jac.T @ np.linalg.solve(jjt, jac @ tau_posture)
        return tau + tau_posture - proj + bias
