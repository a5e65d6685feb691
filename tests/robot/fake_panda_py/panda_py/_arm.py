"""The fake arm's kinematics (quaternions (w, x, y, z), the repo's own helpers from transport.spatial).

Not the Panda's kinematics: a smooth, invertible stand-in so joint postures map to distinct TCP
poses near the real ready pose (x 0.307 m, z 0.487 m, gripper pointing down).
"""

from __future__ import annotations

import math

import numpy as np

from hilrl.transport.spatial import (  # noqa: F401 (used by the package)
    quat_conj,
    quat_mul,
    quat_to_matrix,
    quat_to_rotvec,
    rotvec_to_quat,
)

READY_Q = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
READY_POSITION = np.array([0.307, 0.0, 0.487])
DOWN_WXYZ = np.array([0.0, 1.0, 0.0, 0.0])  # 180 degrees about x: the gripper points down


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
