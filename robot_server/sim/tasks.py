"""The simulated tasks: where objects go at reset, the ground-truth success test, and the
privileged object features the sim reports (used by scripted experts and state-based policies).

Each task documents its `object_state` layout. Randomisation draws only from the generator it is
given, so a seed fixes the whole episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hilrl.robot_server.sim.scene import CUBE_HALF_SIZE_M, HOLE_DEPTH_M, PEG_HALF_WIDTH_M

DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])  # TCP z axis pointing at the table, fingers along y


@dataclass(frozen=True)
class TaskSpec:
    """Per-task constants.

    Attributes:
        home_position_m: TCP home position (base frame).
        home_quaternion_wxyz: TCP home orientation.
        gripper_opening_at_home: gripper command applied at reset (0 closed .. 1 open).
    """

    home_position_m: tuple[float, float, float]
    home_quaternion_wxyz: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)
    gripper_opening_at_home: float = 1.0


class Task:
    """Base: a task places its objects, judges success and reports object features."""

    name = ""
    spec = TaskSpec(home_position_m=(0.5, 0.0, 0.2))

    def __init__(self, model: mujoco.MjModel):
        self.model = model

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Place objects (positions only; velocities are zeroed by the caller)."""

    def success(self, data: mujoco.MjData) -> bool:
        raise NotImplementedError

    def object_state(self, data: mujoco.MjData) -> np.ndarray:
        raise NotImplementedError


class Reach(Task):
    """Bring the TCP within 2 cm of a goal point. object_state: goal position (3,), m."""

    name = "reach"
    spec = TaskSpec(home_position_m=(0.45, 0.0, 0.25))
    tolerance_m = 0.02
    goal_low = np.array([0.38, -0.15, 0.08])
    goal_high = np.array([0.62, 0.15, 0.25])

    def __init__(self, model: mujoco.MjModel):
        super().__init__(model)
        self._goal = model.body("goal").id
        self._tcp = model.site("tcp").id

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self.model.body_pos[self._goal] = rng.uniform(self.goal_low, self.goal_high)

    def success(self, data: mujoco.MjData) -> bool:
        gap = data.site_xpos[self._tcp] - self.model.body_pos[self._goal]
        return bool(np.linalg.norm(gap) < self.tolerance_m)

    def object_state(self, data: mujoco.MjData) -> np.ndarray:
        return self.model.body_pos[self._goal].copy()


class PickCube(Task):
    """Grasp the cube and lift it at least 6 cm off the table. object_state: cube position (3,), m."""

    name = "pick_cube"
    spec = TaskSpec(home_position_m=(0.5, 0.0, 0.2))
    lift_m = 0.06
    place_low = np.array([0.4, -0.15])
    place_high = np.array([0.6, 0.15])

    def __init__(self, model: mujoco.MjModel):
        super().__init__(model)
        self._qpos = model.joint("cube").qposadr[0]
        self._body = model.body("cube").id

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.place_low, self.place_high)
        data.qpos[self._qpos : self._qpos + 7] = [xy[0], xy[1], CUBE_HALF_SIZE_M, 1, 0, 0, 0]

    def success(self, data: mujoco.MjData) -> bool:
        return bool(data.xpos[self._body][2] > CUBE_HALF_SIZE_M + self.lift_m)

    def object_state(self, data: mujoco.MjData) -> np.ndarray:
        return data.xpos[self._body].copy()


class PegInsert(Task):
    """Insert the held peg at least 2 cm into the hole.

    object_state (6,): hole top centre (3), then the peg tip position (3), m.

    The peg is fixed in the hand (as if grasped before the episode), so the gripper plays no part.
    """

    name = "peg_insert"
    spec = TaskSpec(home_position_m=(0.5, 0.0, 0.17), gripper_opening_at_home=PEG_HALF_WIDTH_M * 2 / 0.08)
    insert_depth_m = 0.02
    place_low = np.array([0.45, -0.1])
    place_high = np.array([0.55, 0.1])

    def __init__(self, model: mujoco.MjModel):
        super().__init__(model)
        self._hole = model.body("hole").id
        self._tip = model.site("peg_tip").id

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.place_low, self.place_high)
        self.model.body_pos[self._hole] = [xy[0], xy[1], 0.0]

    def hole_top(self) -> np.ndarray:
        return self.model.body_pos[self._hole] + np.array([0.0, 0.0, HOLE_DEPTH_M])

    def success(self, data: mujoco.MjData) -> bool:
        tip = data.site_xpos[self._tip]
        top = self.hole_top()
        centred = np.linalg.norm(tip[:2] - top[:2]) < 0.01
        return bool(centred and tip[2] < top[2] - self.insert_depth_m)

    def object_state(self, data: mujoco.MjData) -> np.ndarray:
        return np.concatenate([self.hole_top(), data.site_xpos[self._tip]])


TASKS: dict[str, type[Task]] = {t.name: t for t in (Reach, PickCube, PegInsert)}


def make_task(name: str, model: mujoco.MjModel) -> Task:
    try:
        return TASKS[name](model)
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None
