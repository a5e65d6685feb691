"""Human (or scripted) interventions: who may take over from the policy, and the wrapper that lets
them.

`InterventionDevice` is the one interface every operator input implements: the sim's scripted
operator now, the SpaceMouse and keyboard in the hardware issue. Each step the device sees the
policy's proposed action and either lets it through (returns None) or returns the operator's
action, which replaces the policy's.

`InterventionWrapper` (a gymnasium wrapper with that single job) executes the operator's action
when there is one and reports it: `info["intervened"]` and `info["action_taken"]` (the action that
actually ran, which is what gets recorded for learning).
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from actor.config import InterventionConfig
from actor.experts import Expert, make_expert
from transport.robot_messages import RobotState


class InterventionDevice(Protocol):
    """An operator input that can take over from the policy."""

    def reset(self) -> None:
        """A new episode starts."""
        ...

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        """The operator's action for this step, or None to let the policy act.

        Args:
            state: the robot's latest state (the sim's includes privileged object state).
            policy_action: what the policy proposes, in the env's action space.
        """
        ...

    def close(self) -> None: ...


class ScriptedOperator:
    """A simulated operator: the task's scripted expert, taking over by a configurable rule.

    Rules:
        drift: the policy's commanded translation points more than `drift_angle_deg` away from
            the expert's (or the policy barely moves while the expert would) for `patience_steps`
            steps in a row; the operator then drives for `takeover_steps` steps and hands back.
        random: takes over with probability `probability` on any step.
    At most `max_per_episode` takeovers per episode.

    Args:
        config: the rule and its thresholds.
        expert: the expert whose actions the operator gives.
        seed: seeds the random rule.
    """

    def __init__(self, config: InterventionConfig, expert: Expert, seed: int = 0):
        self.config = config
        self.expert = expert
        self._rng = np.random.default_rng(seed)
        self._cos_threshold = float(np.cos(np.deg2rad(config.drift_angle_deg)))
        self.reset()

    def reset(self) -> None:
        self.expert.reset()
        self._drifting = 0
        self._driving_left = 0
        self.takeovers = 0

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        expert_action = self.expert.act(state)  # always consulted, so a phase machine keeps its memory
        if self._driving_left > 0:
            self._driving_left -= 1
            return expert_action
        if self.takeovers >= self.config.max_per_episode:
            return None
        if self._wants_takeover(expert_action, policy_action):
            self.takeovers += 1
            self._drifting = 0
            self._driving_left = self.config.takeover_steps - 1
            return expert_action
        return None

    def _wants_takeover(self, expert_action: np.ndarray, policy_action: np.ndarray) -> bool:
        if self.config.rule == "random":
            return bool(self._rng.random() < self.config.probability)
        e, p = expert_action[:3], policy_action[:3]
        e_norm, p_norm = np.linalg.norm(e), np.linalg.norm(p)
        if e_norm < 0.1:
            drifting = False  # the expert is (nearly) still: nothing to disagree about
        elif p_norm < 0.1:
            drifting = True
        else:
            drifting = float(e @ p) / (e_norm * p_norm) < self._cos_threshold
        self._drifting = self._drifting + 1 if drifting else 0
        return self._drifting >= self.config.patience_steps

    def close(self) -> None:
        pass


class InterventionWrapper(gym.Wrapper):
    """Lets an `InterventionDevice` replace the policy's action.

    info gains "intervened" (bool) and "action_taken" (the executed action, env action space).
    """

    def __init__(self, env: gym.Env, device: InterventionDevice):
        super().__init__(env)
        self.device = device

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.device.reset()
        return self.env.reset(**kwargs)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        operator_action = self.device.intervene(self.env.unwrapped.robot_state, np.asarray(action))
        taken = np.asarray(action if operator_action is None else operator_action, dtype=np.float32)
        obs, reward, terminated, truncated, info = self.env.step(taken)
        info["intervened"] = operator_action is not None
        info["action_taken"] = taken
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.device.close()
        super().close()


def make_intervention_device(config: InterventionConfig, task: str, env: gym.Env, seed: int = 0) -> InterventionDevice | None:
    """The device `config` names for this env (None when interventions are off)."""
    if config.device == "none":
        return None
    if config.device == "scripted":
        return ScriptedOperator(config, make_expert(task, env.unwrapped.config.action), seed)
    raise ValueError(f"actor.intervention.device: {config.device!r} is not available yet")
