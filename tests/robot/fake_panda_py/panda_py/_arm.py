"""The fake arm's kinematics and quaternion helpers (numpy only; quaternions (w, x, y, z) here).

Not the Panda's kinematics: a smooth, invertible stand-in so joint postures map to distinct TCP
poses near the real ready pose (x 0.307 m, z 0.487 m, gripper pointing down).
"""

from __future__ import annotations

import math

import numpy as np

READY_Q = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
READY_POSITION = np.array([0.307, 0.0, 0.487])
DOWN_WXYZ = np.array([0.0, 1.0, 0.0, 0.0])  # 180 degrees about x: the gripper points down


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * v / angle])


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return 2.0 * q[1:]
    return q[1:] / s * 2.0 * math.atan2(s, q[0])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def fk(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, quaternion wxyz) of the fake TCP at joint positions q (7,)."""
    dq = np.asarray(q, dtype=np.float64) - READY_Q
    position = READY_POSITION + 0.1 * dq[:3]
    rotation = 0.1 * dq[3:6] + np.array([0.0, 0.0, 0.5 * dq[6]])
    return position, quat_mul(rotvec_to_quat(rotation), DOWN_WXYZ)


def column_major(position: np.ndarray, quat_wxyz: np.ndarray) -> list[float]:
    """libfranka's layout of a 4x4 transform: 16 values, column-major."""
    t = np.eye(4)
    t[:3, :3] = quat_to_matrix(quat_wxyz)
    t[:3, 3] = position
    return [float(v) for v in t.flatten(order="F")]


# The fake's Jacobian: TCP twist = J dq with the first six joints mapping one-to-one onto the
# twist, so the backend's J @ dq reproduces the fake's twist exactly.
JACOBIAN = np.hstack([np.eye(6), np.zeros((6, 1))])
