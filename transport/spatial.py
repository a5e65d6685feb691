"""Pose conventions of the wire protocol, and the few rotation operations both ends need.

Quaternions are unit (w, x, y, z) arrays, float64. A rotation vector ("rotvec") is axis * angle in
radians. These are numpy-only so the robot server, the actor and the drivers share one definition.
"""

from __future__ import annotations

import math

import numpy as np

IDENTITY_QUAT = np.array([1.0, 0.0, 0.0, 0.0])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion with non-negative w (one of the two representations of a rotation)."""
    q = np.asarray(q, dtype=np.float64)
    # Scaled by the largest component first, so huge (1e300) or tiny components neither overflow
    # nor underflow the norm.
    scale = float(np.max(np.abs(q))) if q.size else 0.0
    if not math.isfinite(scale) or scale == 0.0:
        raise ValueError(f"quaternion {q} has no direction")
    q = q / scale
    n = np.linalg.norm(q)
    if n * scale < 1e-9:
        raise ValueError(f"quaternion {q * scale} has no direction")
    q = q / n
    return -q if q[0] < 0 else q


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) of a unit quaternion, angle in [0, pi]."""
    q = quat_normalize(q)
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return 2.0 * q[1:]
    angle = 2.0 * np.arctan2(s, q[0])
    return q[1:] / s * angle


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation vector (3,)."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.array([1.0, 0.5 * v[0], 0.5 * v[1], 0.5 * v[2]]) / np.sqrt(1 + 0.25 * angle**2)
    axis = v / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a unit quaternion."""
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vector v (3,) rotated by unit quaternion q."""
    return quat_to_matrix(q) @ v


def orientation_error(q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) that takes q_current to q_target: shortest way, |angle| <= pi."""
    return quat_to_rotvec(quat_mul(q_target, quat_conj(q_current)))
