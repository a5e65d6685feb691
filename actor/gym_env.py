"""Any gymnasium env as the actor's env (`env.kind: gymnasium`), speaking the same contract as
`RobotEnv` (actor/env.py), so the actor loop, operators, demos, evaluation and the learner take it
unchanged.

    observation  {"state": float32 (S,), <camera>: uint8 (H, W, 3)}: the env's float parts
                 concatenated (hilrl.transport.gym_spaces, the order documented there) and the
                 image parts `env.observation.cameras` names, cropped and resized to their `size`
    action       float32 (A,) in [-1, 1]: the env's continuous dims in its order, then our gripper
                 command when `env.gymnasium.gripper` is declared; rescaled and mapped onto the
                 env's Box for each step (hilrl.transport.gym_spaces.ActionLayout)
    reward, terminated, truncated: the env's own (its time limit is `env.max_episode_steps`)
    info         "succeeded": the `env.gymnasium.success_info_key` rule on this step's info (the
                 episode's success is its final step's), also "task_succeeded"; "gripper_switched"
                 (the mapped gripper command changed); "env_info": the env's own info, untouched

A gymnasium env is stepped synchronously inside the actor (`lockstep`: the actor's throttle ties
it to the learner, as for the in-process sim). Operators and scripted experts see a `ForeignState`
(the env's raw observation and info) where a robot's state would be.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from hilrl.actor.frames import check_crop, crop_resize
from hilrl.transport.action import ActionConfig
from hilrl.transport.gym_spaces import (
    SpaceMappingError,
    layout_of,
    load_callable,
    make_gymnasium_env,
)
from hilrl.transport.observation import policy_camera_sizes
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.env import EnvConfig

log = logging.getLogger(__name__)


@dataclass
class ForeignState:
    """What operators and experts see of a gymnasium env, in place of a `RobotState`.

    Attributes:
        observation: the env's latest raw observation (its own format).
        info: the env's latest info.
        gripper_opening: 1.0 after an open command (or none yet), 0.0 after a close (a
            SpaceMouse gripper toggle reads it).
        errors: ["operator_stop"] once the operator stopped the env, else empty.
        robot_time_s: seconds since the env was built.
    """

    observation: Any
    info: dict[str, Any]
    gripper_opening: float = 1.0
    errors: list[str] = field(default_factory=list)
    robot_time_s: float = 0.0


class _Stopper:
    """The env's stand-in for a robot connection: an operator stop latches here, after which the
    env refuses to step until rebuilt (a restarted actor builds a fresh one)."""

    address = "in-process gymnasium env"

    def __init__(self, env: GymnasiumEnv):
        self._env = env

    def stop(self, reason: str) -> ForeignState:
        self._env.stopped_reason = reason
        state = self._env.robot_state
        assert state is not None, "reset() comes before a stop"
        state.errors = ["operator_stop"]
        return state

    def close(self) -> None:
        pass


class ScriptedForeignExpert:
    """A scripted policy for a gymnasium env (`env.gymnasium.expert`, "module:callable"), acting
    like our experts: `act(state)` gives an action in our [-1, 1] format.

    The callable takes the env's raw observation and returns the env's action; a class is
    instantiated with no arguments and its `get_action(observation)` used, its `reset()` called
    at each episode start when it has one.
    """

    def __init__(self, target: str, env: GymnasiumEnv):
        obj = load_callable(target)
        if isinstance(obj, type):
            obj = obj()
        self._policy = getattr(obj, "get_action", obj)
        self._reset = getattr(obj, "reset", None)
        self._env = env
        self.target = target

    def reset(self) -> None:
        if self._reset is not None:
            self._reset()

    def act(self, state: ForeignState) -> np.ndarray:
        env_action = np.asarray(self._policy(state.observation), np.float64)
        if not np.all(np.isfinite(env_action)):
            raise ValueError(f"env.gymnasium.expert {self.target} returned a non-finite action {env_action}")
        return self._env.actions.from_env(env_action)


class GymnasiumEnv(gym.Env):
    """See the module docstring.

    Args:
        config: the `env:` section, with kind gymnasium.
        render_mode: passed to the env ("rgb_array" for videos).
    Raises:
        SpaceMappingError: the env cannot be built or its spaces cannot be mapped (naming the key
            or the part).
    """

    lockstep = True  # stepped by the actor itself: nothing runs between steps
    control_period_s = 0.0  # no wall-clock rate of its own

    def __init__(self, config: EnvConfig, render_mode: str | None = None):
        assert config.kind == "gymnasium" and config.gymnasium is not None
        self.config = config
        self.gym_config = g = config.gymnasium
        self.env = make_gymnasium_env(g, config.max_episode_steps, render_mode)
        try:
            self.layout = layout_of(self.env, g, policy_camera_sizes(config))
        except BaseException:
            self.env.close()
            raise
        self.actions = self.layout.actions
        self.render_mode = render_mode
        self._cameras = config.observation.policy_cameras
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(-np.inf, np.inf, (self.layout.spec.state_dim,), np.float32)}
        for cam in self._cameras:
            spaces[cam.name] = gym.spaces.Box(0, 255, (*cam.size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.actions.action_dim,), np.float32)
        self.robot = _Stopper(self)
        self.robot_state: ForeignState | None = None
        self.stopped_reason: str | None = None
        self._started = time.monotonic()
        self._crops_checked = False
        self._last_gripper: float | None = None

    # ------------------------------------------------------------------ the env contract

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        raw, info = self.env.reset(seed=seed, options=options)
        self.actions.reset()
        self._last_gripper = None
        self.robot_state = ForeignState(raw, dict(info), robot_time_s=self._now())
        return self._observe(raw), self._info(info, succeeded=False, switched=False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.robot_state is None:
            raise RuntimeError("reset() must be called before step()")
        if self.stopped_reason is not None:
            raise RuntimeError(f"the env was stopped ({self.stopped_reason}); build a new one to go on")
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {self.action_space.shape} finite values in [-1, 1], got {action}")
        env_action = self.actions.to_env(action)
        raw, reward, terminated, truncated, info = self.env.step(env_action)
        switched, opening = False, self.robot_state.gripper_opening
        gripper = self.actions.gripper
        if gripper is not None:
            value = float(env_action[self.actions.gripper_index])
            switched = self._last_gripper is not None and value != self._last_gripper
            self._last_gripper = value
            opening = {gripper.close: 0.0, gripper.open: 1.0}.get(value, opening)  # "stay" keeps it
        succeeded = self._succeeded(info)
        if succeeded and self.gym_config.success_ends_episode:
            terminated = True
        self.robot_state = ForeignState(raw, dict(info), gripper_opening=opening, robot_time_s=self._now())
        return self._observe(raw), float(reward), bool(terminated), bool(truncated), self._info(info, succeeded, switched)

    def render(self) -> Any:
        return self.env.render()

    def hold(self) -> None:
        """Nothing moves between steps of a gymnasium env: holding is not stepping."""

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ what operators use

    @property
    def action_config(self) -> ActionConfig:
        """The action as a SpaceMouse or keyboard drives it: 3 continuous dims are xyz, 6 are xyz
        and rotation, then the gripper (when declared).

        Raises:
            SchemaError: any other number of continuous dims (an operator device has no
                axis for them).
        """
        n = len(self.actions.low)
        if n not in (3, 6):
            raise SchemaError(
                "actor.intervention.device", f"{self.gym_config.id} has {n} continuous action dims; an operator device (SpaceMouse, keyboard) "
                "drives 3 (xyz) or 6 (xyz, rotation): use the scripted operator (env.gymnasium.expert) or none")
        return ActionConfig(rotation_scale_rad=0.1 if n == 6 else 0.0, gripper=self.actions.gripper is not None)

    @property
    def has_gripper(self) -> bool:
        """The last action dim is our gripper command (`env.gymnasium.gripper` declared)."""
        return self.actions.gripper is not None

    @property
    def action_names(self) -> list[str]:
        """Name of each action dim: a0, a1, ... (the env's continuous dims), then "gripper"."""
        names = [f"a{i}" for i in range(len(self.actions.low))]
        return names + (["gripper"] if self.actions.gripper is not None else [])

    def scripted_expert(self) -> ScriptedForeignExpert:
        """The expert `env.gymnasium.expert` names.

        Raises:
            SchemaError: none is configured, or it cannot be loaded (naming env.gymnasium.expert)."""
        if not self.gym_config.expert:
            raise SchemaError(
                "env.gymnasium.expert", "no scripted policy is configured for this gymnasium env; name one as "
                "'module:callable' (it maps the env's observation to its action), or record demos with an "
                "operator device (actor.intervention.device=keyboard)")
        try:
            return ScriptedForeignExpert(self.gym_config.expert, self)
        except SpaceMappingError as exc:
            raise exc.as_schema_error() from None

    # ------------------------------------------------------------------ helpers

    def _now(self) -> float:
        return time.monotonic() - self._started

    def _observe(self, raw: Any) -> dict[str, np.ndarray]:
        converted = self.layout.observation.convert(raw)
        obs = {"state": converted["state"]}
        for cam in self._cameras:
            frame = converted[cam.name]
            if not self._crops_checked:
                check_crop(cam.name, cam.crop, frame.shape[:2])
            obs[cam.name] = crop_resize(frame, cam.crop, tuple(cam.size))
        self._crops_checked = True
        return obs

    def _succeeded(self, info: dict[str, Any]) -> bool:
        key = self.gym_config.success_info_key
        if not key:
            return False
        if key not in info:
            raise SchemaError("env.gymnasium.success_info_key", f"{self.gym_config.id}'s info has no {key!r}; its "
                              f"keys are {', '.join(map(str, info)) or 'none'}")
        value = info[key]
        threshold = self.gym_config.success_at_least
        return bool(value) if threshold is None else float(value) >= threshold

    @staticmethod
    def _info(env_info: dict[str, Any], succeeded: bool, switched: bool) -> dict[str, Any]:
        return {"succeeded": succeeded, "task_succeeded": succeeded, "gripper_switched": switched,
                "env_info": env_info}
