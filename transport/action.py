"""The action layout every process agrees on: what an action vector in [-1, 1] holds and how the
gripper dimension reads.

    action = [dx, dy, dz, (droll, dpitch, dyaw), (gripper)]   TCP-frame deltas, scaled per task

The rotation dims exist when `rotation_scale_rad > 0`, the gripper dim (last) when `gripper`. The
gripper dim is a three-way command: >= GRIPPER_THRESHOLD closes, <= -GRIPPER_THRESHOLD opens,
anything between keeps the current command. The env (hilrl.actor.env) applies it to the robot and
the SAC agent's grasp critic (hilrl.policies.sac) discretises it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

GRIPPER_THRESHOLD = 0.5
"""|gripper action| at or past which the gripper closes (+) or opens (-)."""


@dataclass
class ActionConfig:
    """How a normalised action in [-1, 1] becomes a robot command.

    Attributes:
        translation_scale_m: TCP translation for an action of 1.0 on an axis, per step.
        rotation_scale_rad: TCP rotation for an action of 1.0 on an axis, per step; 0 removes the
            three rotation dimensions from the action space (orientation held at the reset pose).
        gripper: include the gripper dimension (last): >= GRIPPER_THRESHOLD closes, <=
            -GRIPPER_THRESHOLD opens, between stays.
    """

    translation_scale_m: float = 0.02
    rotation_scale_rad: float = 0.0
    gripper: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.translation_scale_m <= 0.1:
            raise ValueError(f"translation_scale_m must be in (0, 0.1], got {self.translation_scale_m}")
        if not 0 <= self.rotation_scale_rad <= 0.5:
            raise ValueError(f"rotation_scale_rad must be in [0, 0.5], got {self.rotation_scale_rad}")

    @property
    def dim(self) -> int:
        """Action length: xyz, then rotation if enabled, then the gripper if enabled."""
        return 3 + (3 if self.rotation_scale_rad > 0 else 0) + (1 if self.gripper else 0)


def action_names(action: ActionConfig) -> list[str]:
    """Name of each action dimension, in order (dashboards, logs, exported datasets)."""
    names = ["x", "y", "z"]
    if action.rotation_scale_rad > 0:
        names += ["rx", "ry", "rz"]
    if action.gripper:
        names.append("gripper")
    return names
