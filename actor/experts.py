"""Scripted experts for the simulated tasks (demonstrations now, scripted operators later).

An expert reads the privileged robot state the sim reports (`RobotState.object_state`) and returns
an action in the env's own action space, exactly as a policy or a SpaceMouse would: normalised TCP
-frame deltas in [-1, 1] and, where the task has one, the gripper dimension (+1 close, -1 open).
Each expert is a small phase machine that re-derives its phase from the scene every step, so it
recovers when the object slips or an operator has moved the arm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hilrl.transport.action import ActionConfig
from hilrl.transport.robot_messages import RobotState
from hilrl.transport.spatial import quat_to_matrix

CLOSE, OPEN, KEEP = 1.0, -1.0, 0.0


class Expert:
    """Base: turns a desired base-frame TCP displacement into a normalised action."""

    def __init__(self, action: ActionConfig):
        self.action_config = action
        self.n_action = action.dim

    def reset(self) -> None:
        """Forget per-episode memory."""

    def act(self, state: RobotState) -> np.ndarray:
        raise NotImplementedError

    def _action(self, state: RobotState, delta_m: np.ndarray, gripper: float = KEEP) -> np.ndarray:
        rot = quat_to_matrix(state.tcp_quaternion_wxyz)
        out = np.zeros(self.n_action, dtype=np.float32)
        out[:3] = np.clip(rot.T @ delta_m / self.action_config.translation_scale_m, -1.0, 1.0)
        if self.action_config.gripper:
            out[-1] = gripper
        return out


class ReachExpert(Expert):
    """Straight to the goal."""

    def act(self, state: RobotState) -> np.ndarray:
        return self._action(state, state.object_state[:3] - state.tcp_position_m, OPEN)


class PickCubeExpert(Expert):
    """Hover above the cube, descend, close, lift.

    Args:
        hover_m: height of the TCP above the cube centre while aligning.
        grasp_steps: steps to hold still while the fingers close.
    """

    def __init__(self, action: ActionConfig, hover_m: float = 0.06, grasp_steps: int = 3):
        super().__init__(action)
        self.hover_m = hover_m
        self.grasp_steps = grasp_steps
        self._closing = 0

    def reset(self) -> None:
        self._closing = 0

    def act(self, state: RobotState) -> np.ndarray:
        cube = state.object_state[:3]
        tcp = state.tcp_position_m
        xy_gap = np.linalg.norm(cube[:2] - tcp[:2])
        z_gap = tcp[2] - cube[2]
        between_fingers = xy_gap < 0.012 and abs(z_gap) < 0.012
        if self._closing >= self.grasp_steps and between_fingers:
            return self._action(state, np.array([0.0, 0.0, 0.05]), CLOSE)  # lift
        if between_fingers:
            self._closing += 1
            return self._action(state, np.zeros(3), CLOSE)
        self._closing = 0
        if xy_gap > 0.006:
            # Align above the cube; rise first if low, so the fingers do not sweep it away.
            target_z = cube[2] + self.hover_m if z_gap < 0.03 or xy_gap > 0.02 else tcp[2]
            delta = np.array([cube[0] - tcp[0], cube[1] - tcp[1], target_z - tcp[2]])
            if z_gap < 0.03:
                delta[:2] = 0.0
            return self._action(state, delta, OPEN)
        delta = np.array([cube[0] - tcp[0], cube[1] - tcp[1], cube[2] - tcp[2]])
        return self._action(state, delta, OPEN)


class PegInsertExpert(Expert):
    """Align the peg tip above the hole, then push down; compliance absorbs small errors."""

    def act(self, state: RobotState) -> np.ndarray:
        top, tip = state.object_state[:3], state.object_state[3:6]
        tip_z = tip[2]
        xy = top[:2] - tip[:2]
        if np.linalg.norm(xy) > 0.002:
            above_rim = tip_z > top[2] + 0.005
            dz = 0.0 if above_rim else 0.02
            return self._action(state, np.array([xy[0], xy[1], dz if not above_rim else 0.0]))
        return self._action(state, np.array([xy[0], xy[1], -0.05]))


EXPERTS: dict[str, type[Expert]] = {"reach": ReachExpert, "pick_cube": PickCubeExpert, "peg_insert": PegInsertExpert}


def expert_for(task: str, env: Any) -> Any:
    """The scripted expert of an env: the sim task's (for a `RobotEnv`), or the one a gymnasium
    env's `env.gymnasium.expert` names (its `scripted_expert()`, a `ScriptedForeignExpert`). Both
    have `reset()` and `act(state)`, state being what the env's `robot_state` holds.

    Raises:
        ValueError: no expert for this task or env (the message names how to give one).
    """
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "scripted_expert"):
        return unwrapped.scripted_expert()
    return make_expert(task, unwrapped.config.action)


def make_expert(task: str, action: ActionConfig) -> Expert:
    """The scripted expert of a sim task, for an env built with `action`."""
    try:
        return EXPERTS[task](action)
    except KeyError:
        raise ValueError(f"no scripted expert for task {task!r}; experts exist for {', '.join(EXPERTS)}") from None
