"""Human (or scripted) interventions: who may take over from the policy, and the wrapper that lets
them.

`InterventionDevice` is the one interface every operator input implements: the sim's scripted
operator, the SpaceMouse (hardware/spacemouse.py) and the keyboard (hardware/keyboard.py). Each
step the device sees the policy's proposed action and either lets it through (returns None) or
returns the operator's action, which replaces the policy's. A device may also let the operator
label the episode (`label()`: "success" or "failure"), which ends it, and may report whether the
operator is holding a "success" control right now (`success_held()`: SpaceMouse
`success_hold_button`, keyboard `success_toggle`), which `hilrl record-labels` (actor/labels.py)
uses to label frames for the reward classifier, and may let the operator stop the arm
(`stop_requested()`: SpaceMouse `stop` gesture, keyboard `stop` key).

`InterventionWrapper` (a gymnasium wrapper) has one job: carry out what the operator does. It
executes the operator's action when there is one and reports it: `info["intervened"]` and
`info["action_taken"]` (the action that actually ran, which is what gets recorded for learning);
and when the operator labels the episode it ends it there with the operator's verdict.

Operator stop: when the device asks for a stop, the wrapper sends the robot `stop(...)` at once
(before any motion command of that step; the robot server holds the arm and latches
"operator_stop" until a clear errors), logs an error saying how to resume, and ends the episode
(truncated, `info["operator_stop"]` = that message). From then on the wrapper refuses to reset or
step (`OperatorStopped`, a RuntimeError): no reset may clear the latch behind the operator's back
(sim configs clear errors at every reset), so the actor stops and the operator resumes
deliberately: `hilrl clear-errors --config FILE`, then a restart.

Order of judges within one step: the env decides success first (its task check, or the reward
classifier on the step's frames when `env.reward_classifier` is set, actor/env.py); the wrapper
then polls the operator's label, which overrides the env's reward, termination and "succeeded".
So a human label always wins over the classifier: a classifier false positive the operator marks
"failure" ends the episode with reward 0, and a success the classifier misses still pays when the
operator marks it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np

from hilrl.actor.config import InterventionConfig
from hilrl.actor.experts import Expert, expert_for
from hilrl.actor.operators import GamepadOperator, KeyboardOperator, SpaceMouseOperator
from hilrl.hardware.errors import RobotError
from hilrl.transport.robot_messages import RobotState

log = logging.getLogger(__name__)

HumanLabel = Literal["success", "failure"]


class OperatorStopped(RuntimeError):
    """The operator stopped the arm (the message says how to resume); nothing more may move it."""


class InterventionDevice(Protocol):
    """An operator input that can take over from the policy.

    `label()`, `success_held()` and `stop_requested()` are optional: a device without `label`
    never labels episodes; one without `success_held` cannot label frames for the reward
    classifier (`hilrl record-labels` then needs the sim's ground truth: the scripted operator);
    one without `stop_requested` never stops the arm (the scripted operator). An optional `name`
    attribute names the device in the stop's messages (default: its class name).
    """

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

    def label(self) -> HumanLabel | None:
        """The operator's verdict on the episode since the last call ("success" / "failure"), or
        None. Polled once per step, after the step; a label is returned once."""
        ...

    def success_held(self) -> bool:
        """Whether the operator is signalling "the scene shows success" right now (a button held,
        or a key toggled on). Polled once per recorded frame by `hilrl record-labels`."""
        ...

    def stop_requested(self) -> bool:
        """Whether the operator gave the stop gesture (or key) since the last call; true once per
        stop. Polled by the wrapper at every reset and twice per step (before the step's motion
        command and after the step). A stop given during a reset must still be reported."""
        ...

    def close(self) -> None: ...


class ScriptedOperator:
    """A simulated operator: the task's scripted expert, taking over by a configurable rule.

    Rules:
        drift: the policy's commanded translation points more than `drift_angle_deg` away from
            the expert's (or the policy barely moves while the expert would) for `patience_steps`
            steps in a row; the operator then drives for `takeover_steps` steps and hands back.
        random: takes over with probability `probability` on any step.
    At most `max_per_episode` takeovers per episode (`takeovers` counts this episode's, from the
    step each one starts).

    Quality (`operator_quality` q in [0, 1]; the loss is L = 1 - q). At q = 1 the operator is the
    expert exactly: the same actions, the same takeover steps and the same random stream as an
    operator without the setting. Below 1 it is worse in three ways, all drawn from a generator
    seeded by `seed` (kept apart from the random rule's, so the rule's draws do not change):
        noisy: each action it drives gets Gaussian noise of std `operator_noise_std_max` * L on
            every continuous dim (translation, rotation; never the gripper), then is clipped to
            [-1, 1];
        late: it reacts d = floor(`operator_delay_steps_max` * L + 0.5) steps late. drift: the
            policy must drift `patience_steps` + d steps in a row; random: the takeover starts d
            steps after the rule fires (the policy keeps acting meanwhile; the rule is not
            consulted again until then);
        imprecise: at each takeover's start, with probability L the operator adds a constant
            offset of norm `operator_bias_max` * L (a uniformly random direction over the
            continuous dims, drawn once per takeover) to the expert's continuous dims for that
            whole takeover; and with probability L / 2 it hands back early, after
            max(1, `takeover_steps` // 2) steps.
    The gripper dim is always the expert's own.

    Args:
        config: the rule and its thresholds, and the operator's quality.
        expert: the expert whose actions the operator gives.
        seed: seeds the random rule and the operator's imperfections.
        gripper: whether the action's last dim is the gripper; None reads the expert's
            `action_config.gripper`. Needed below quality 1 for an expert without `action_config`.
    Raises:
        ValueError: quality below 1 and no way to tell whether the action has a gripper dim.
    """

    def __init__(self, config: InterventionConfig, expert: Expert, seed: int = 0, gripper: bool | None = None):
        self.config = config
        self.expert = expert
        self._rng = np.random.default_rng(seed)
        self._cos_threshold = float(np.cos(np.deg2rad(config.drift_angle_deg)))
        self._loss = 1.0 - float(config.operator_quality)
        # Its own stream (a child of the same seed): the random rule's draws stay today's.
        self._flaw_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        self._noise_std = config.operator_noise_std_max * self._loss
        self._delay_steps = int(np.floor(config.operator_delay_steps_max * self._loss + 0.5))
        self._bias_norm = config.operator_bias_max * self._loss
        if gripper is None:
            action_config = getattr(expert, "action_config", None)
            if action_config is None and self._loss > 0:
                raise ValueError(
                    f"operator_quality {config.operator_quality} < 1 needs to know whether the action has a "
                    f"gripper dim, and the expert {type(expert).__name__} has no action_config: pass gripper=")
            gripper = bool(getattr(action_config, "gripper", False))
        self._gripper = gripper
        self.reset()

    @property
    def delay_steps(self) -> int:
        """How many steps late this operator reacts (0 at quality 1)."""
        return self._delay_steps

    def reset(self) -> None:
        self.expert.reset()
        self._drifting = 0
        self._driving_left = 0
        self._pending = -1  # random rule, late operator: steps until a fired takeover starts (-1: none)
        self._bias: np.ndarray | None = None
        self.takeovers = 0

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        expert_action = self.expert.act(state)  # always consulted, so a phase machine keeps its memory
        if self._driving_left > 0:
            self._driving_left -= 1
            return self._drive(expert_action)
        if self.takeovers >= self.config.max_per_episode:
            return None
        if self._pending > 0:  # the random rule fired; the operator has not reacted yet
            self._pending -= 1
            if self._pending > 0:
                return None
            return self._start(expert_action)
        if self._wants_takeover(expert_action, policy_action):
            if self.config.rule == "random" and self._delay_steps > 0:
                self._pending = self._delay_steps
                return None
            return self._start(expert_action)
        return None

    def _start(self, expert_action: np.ndarray) -> np.ndarray:
        """A takeover starts on this step: count it, decide its flaws, drive its first step."""
        self.takeovers += 1
        self._drifting = 0
        self._pending = -1
        steps = self.config.takeover_steps
        if self._loss > 0:
            n = expert_action.shape[0] - (1 if self._gripper else 0)
            biased, early = self._flaw_rng.random(2)
            direction = self._flaw_rng.standard_normal(n)
            norm = float(np.linalg.norm(direction))
            self._bias = None
            if biased < self._loss and self._bias_norm > 0 and norm > 0:
                self._bias = direction * (self._bias_norm / norm)
            if early < self._loss / 2:
                steps = max(1, steps // 2)
        self._driving_left = steps - 1
        return self._drive(expert_action)

    def _drive(self, expert_action: np.ndarray) -> np.ndarray:
        """The operator's action for one driven step: the expert's, with this operator's flaws."""
        if self._loss == 0:
            return expert_action  # the expert itself, bit for bit
        action = np.array(expert_action, dtype=np.float64)
        n = action.shape[0] - (1 if self._gripper else 0)
        noise = self._flaw_rng.standard_normal(n) * self._noise_std
        offset = self._bias if self._bias is not None else 0.0
        action[:n] = np.clip(action[:n] + offset + noise, -1.0, 1.0)
        return action.astype(np.asarray(expert_action).dtype, copy=False)

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
        return self._drifting >= self.config.patience_steps + self._delay_steps

    def label(self) -> HumanLabel | None:
        return None  # the sim's success comes from the task itself

    def close(self) -> None:
        pass


class InterventionWrapper(gym.Wrapper):
    """Carries out what an `InterventionDevice`'s operator does: takes over, and labels episodes.

    Each step: the operator's action, when there is one, replaces the policy's; info gains
    "intervened" (bool) and "action_taken" (the executed action, env action space). Then the
    device's `label()` is polled once; a label ends the episode on this step and overrides the
    env's own reward and termination, whether they came from the task check or from the reward
    classifier (the operator is the judge; "classifier_probability" stays in info as it was):
        "success": terminated, reward = the env's `success_reward` (1.0 by default),
            info["succeeded"] = True;
        "failure": terminated, reward = 0.0, info["succeeded"] = False;
    in both cases truncated = False and info["human_label"] is the label. Without a label,
    info["human_label"] is None and the env's results pass through unchanged.

    Operator stop (the device's `stop_requested()`, see the module docstring): polled before the
    step's motion command and again after the step. Before: the robot is sent `stop(...)`, no
    motion command goes out, and the step returns the previous observation with reward 0,
    truncated, info["action_taken"] zeros (the arm held) and "intervened" False. After: the robot
    is sent `stop(...)` and the step's results stand, but the episode ends (truncated unless it
    terminated). Either way info["operator_stop"] is the message (else None) and
    info["robot_errors"] what the robot latched; `stopped` keeps the message, and any later
    `reset` or `step` raises `OperatorStopped`. A stop the robot could not be sent raises
    `OperatorStopped` at once.

    Attributes:
        stopped: the stop message once the operator stopped the arm, else None.
    """

    def __init__(self, env: gym.Env, device: InterventionDevice):
        super().__init__(env)
        self.device = device
        # `label` is optional in the protocol: a device without it never ends an episode.
        self._label = getattr(device, "label", None)
        # So is `stop_requested`: a device without it never stops the arm.
        self._stop_requested = getattr(device, "stop_requested", None)
        self.device_name = str(getattr(device, "name", type(device).__name__))
        self._success_reward = float(getattr(getattr(env.unwrapped, "config", None), "success_reward", 1.0))
        self.stopped: str | None = None
        self._last: tuple[Any, dict] | None = None  # the latest observation and info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._refuse_after_stop()
        self.device.reset()
        if self._take_stop() is not None:  # given during the reset, or before the first step
            raise OperatorStopped(self.stopped)
        obs, info = self.env.reset(**kwargs)
        self._last = (obs, info)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        self._refuse_after_stop()
        state = self._take_stop()
        if state is not None:  # before any motion command of this step
            return self._stopped_step(state)
        operator_action = self.device.intervene(self.env.unwrapped.robot_state, np.asarray(action))
        taken = np.asarray(action if operator_action is None else operator_action, dtype=np.float32)
        obs, reward, terminated, truncated, info = self.env.step(taken)
        self._last = (obs, info)
        info["intervened"] = operator_action is not None
        info["action_taken"] = taken
        label = self._label() if self._label is not None else None
        info["human_label"] = label
        info["operator_stop"] = None
        if label is not None:
            if label not in ("success", "failure"):
                raise ValueError(f"{type(self.device).__name__}.label() returned {label!r}; expected 'success', 'failure' or None")
            succeeded = label == "success"
            reward = self._success_reward if succeeded else 0.0
            terminated, truncated = True, False
            info["succeeded"] = succeeded
        state = self._take_stop()
        if state is not None:  # given during the step: the episode ends here
            truncated = not terminated
            info["operator_stop"] = self.stopped
            info["robot_errors"] = list(state.errors)
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ operator stop

    def _refuse_after_stop(self) -> None:
        if self.stopped is not None:
            raise OperatorStopped(self.stopped)

    def _take_stop(self) -> RobotState | None:
        """When the device asks for a stop: send it to the robot, log, remember; the robot's state
        after the stop (None: no stop asked)."""
        if self._stop_requested is None or not self._stop_requested():
            return None
        env = self.env.unwrapped
        reason = f"operator {self.device_name} stop gesture"
        try:
            state = env.robot.stop(reason)
        except (RobotError, OSError) as exc:
            self.stopped = (
                f"operator stop ({self.device_name}): sending stop to the robot FAILED ({exc}); the "
                "arm was NOT told to stop: use the robot's own stop button if it moves. The actor "
                "sends no more commands (a robot server holds the arm once its watchdog sees none)"
            )
            log.error("%s", self.stopped)
            raise OperatorStopped(self.stopped) from exc
        env.robot_state = state  # the env's view of the arm stays current
        self.stopped = self._stop_message(getattr(env.config, "connection", "server"))
        log.error("%s (latched: %s)", self.stopped, "; ".join(state.errors) or "nothing")
        return state

    def _stop_message(self, connection: str) -> str:
        if connection == "inprocess":
            how = ("the simulated arm runs in this process (env.connection: inprocess), so restarting "
                   "the actor starts it afresh")
        else:
            how = "to resume, make the cell safe, run `hilrl clear-errors --config FILE` (this run's config), then restart the actor"
        return (f"operator stop ({self.device_name}): the arm is held and the robot latched "
                f"'operator_stop' (motion is refused until errors are cleared); {how}")

    def _stopped_step(self, state: RobotState) -> tuple[Any, float, bool, bool, dict]:
        """The step a stop replaced: nothing moved, the episode ends (truncated)."""
        assert self._last is not None, "reset() comes before step()"
        obs, last_info = self._last
        info = {
            **last_info,
            "succeeded": False,
            "intervened": False,
            "action_taken": np.zeros(self.action_space.shape, np.float32),
            "human_label": None,
            "gripper_switched": False,
            "robot_time_s": state.robot_time_s,
            "robot_errors": list(state.errors),
            "operator_stop": self.stopped,
        }
        return obs, 0.0, False, True, info

    def close(self) -> None:
        self.device.close()
        super().close()


def make_intervention_device(config: InterventionConfig, task: str, env: gym.Env, seed: int = 0) -> InterventionDevice | None:
    """The device `config` names for this env (None when interventions are off).

    Raises:
        InputDeviceError (hardware.errors): the SpaceMouse, the terminal or the gamepad cannot be
            used; the message says how to fix it.
    """
    if config.device == "none":
        return None
    if config.device == "scripted":
        return ScriptedOperator(config, expert_for(task, env), seed, gripper=env.unwrapped.has_gripper)
    action = env.unwrapped.action_config  # a gymnasium env refuses one an operator cannot drive
    if config.device == "spacemouse":
        return SpaceMouseOperator(config.spacemouse, action)
    if config.device == "keyboard":
        return KeyboardOperator(config.keyboard, action)
    if config.device == "gamepad":
        return GamepadOperator(config.gamepad, action)
    raise ValueError(f"actor.intervention.device: unknown device {config.device!r}")


def wait_for_operator(device: InterventionDevice, state: RobotState, idle_action: np.ndarray, period_s: float,
                      sleep: Callable[[float], None] = time.sleep) -> int:
    """Block until the operator gives any input on `device` (SpaceMouse motion or a button, a
    motion key), polling it every `period_s` seconds with `idle_action` as the proposal; returns
    the number of polls.

    Between operator-driven episodes the arm holds at home while the operator puts the scene back
    by hand; the next episode starts when the operator is ready, so the time limit does not run
    while the operator's hands are busy. Nothing is sent to the robot meanwhile (a server at home
    holds its pose), and Ctrl-C interrupts the wait. Any input starts, a label gesture too, but the
    label itself is dropped: it belongs to no episode.
    """
    polls = 0
    while True:
        polls += 1
        started = device.intervene(state, idle_action) is not None
        if hasattr(device, "label"):
            device.label()
        if started:
            return polls
        sleep(period_s)
