"""The `actor:` section of a task config: the control loop, its throttle and who may take over."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hilrl.hardware.gamepad import GamepadConfig
from hilrl.hardware.keyboard import KeyboardConfig
from hilrl.hardware.spacemouse import SpaceMouseConfig
from hilrl.transport.schema import RangeError


@dataclass
class InterventionConfig:
    """Who may take over from the policy.

    Attributes:
        device: "none"; "scripted" (sim: the task's scripted expert takes over by `rule`);
            "spacemouse" (a 3Dconnexion SpaceMouse, settings under `spacemouse`); "keyboard" (keys
            in the actor's terminal, settings under `keyboard`); "gamepad" (a game controller read
            through pygame, settings under `gamepad`). The SpaceMouse, keyboard and gamepad can
            also label an episode as succeeded or failed, which ends it, and stop the arm.
        rule: scripted operator only. "drift": take over when the policy's commanded TCP motion
            points away from the expert's by more than `drift_angle_deg` for `patience_steps`
            steps in a row; "random": take over with probability `probability` per step.
        drift_angle_deg, patience_steps: the drift rule's thresholds.
        probability: the random rule's per-step takeover probability.
        takeover_steps: how long the operator drives once it takes over, in steps.
        max_per_episode: at most this many takeovers per episode.
        operator_quality: scripted operator only: how good the operator is, in [0, 1]. 1.0 (the
            default) is the expert itself, exactly; below 1 the operator is noisy, late and
            imprecise by amounts that grow with the loss `1 - operator_quality` (the formulas are
            in `ScriptedOperator`'s docstring, actor/interventions.py). For experiments on a
            suboptimal operator (RL can improve on it, imitation cannot).
        operator_noise_std_max: the std of the Gaussian noise on the operator's continuous action
            dims at quality 0, in action units (std = this * (1 - operator_quality)).
        operator_delay_steps_max: how many steps late the operator reacts at quality 0 (delay =
            this * (1 - operator_quality), rounded), in steps.
        operator_bias_max: the norm of the operator's per-takeover constant action offset at
            quality 0, in action units (norm = this * (1 - operator_quality)).
        spacemouse: the SpaceMouse's device, axes, deadzone, hold time and button gestures
            (hardware/spacemouse.py `SpaceMouseConfig`); read only when device is "spacemouse".
        keyboard: the keyboard's keys, speed and hold time (hardware/keyboard.py
            `KeyboardConfig`); read only when device is "keyboard".
        gamepad: the gamepad's joystick, axis mapping, deadzone, hold time and buttons
            (hardware/gamepad.py `GamepadConfig`); read only when device is "gamepad".
    """

    device: Literal["none", "scripted", "spacemouse", "keyboard", "gamepad"] = "none"
    rule: Literal["drift", "random"] = "drift"
    drift_angle_deg: float = 75.0
    patience_steps: int = 3
    probability: float = 0.05
    takeover_steps: int = 8
    max_per_episode: int = 3
    operator_quality: float = 1.0
    operator_noise_std_max: float = 0.5
    operator_delay_steps_max: int = 6
    operator_bias_max: float = 0.5
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be in [0, 1]")
        if self.takeover_steps < 1 or self.patience_steps < 1 or self.max_per_episode < 0:
            raise ValueError("takeover_steps and patience_steps must be >= 1, max_per_episode >= 0")
        if not (math.isfinite(self.operator_quality) and 0 <= self.operator_quality <= 1):
            raise RangeError("operator_quality", f"must be in [0, 1] (1: the expert itself), got {self.operator_quality!r}")
        if not (math.isfinite(self.operator_noise_std_max) and 0 <= self.operator_noise_std_max <= 2):
            raise RangeError("operator_noise_std_max", f"must be in [0, 2] (action units; 0: no noise), got {self.operator_noise_std_max!r}")
        if not 0 <= self.operator_delay_steps_max <= 1000:
            raise RangeError("operator_delay_steps_max", f"must be in [0, 1000] steps (0: never late), got {self.operator_delay_steps_max!r}")
        if not (math.isfinite(self.operator_bias_max) and 0 <= self.operator_bias_max <= 2):
            raise RangeError("operator_bias_max", f"must be in [0, 2] (action units; 0: no offset), got {self.operator_bias_max!r}")


@dataclass
class ActorConfig:
    """The `actor:` section: the control loop that runs the policy and streams experience.

    Attributes:
        chunk_steps: records per transition chunk (about one second at 10 Hz).
        random_steps: act uniformly at random for this many env steps, or until weights arrive.
        throttle_slack_steps: lockstep clock only: wait while the learner reports more than this
            many env steps (of all robots) it has not yet done its `learner.updates_per_env_step`
            updates for, so the learning curve does not depend on how fast the machine is
            (actor/throttle.py). Never waits on a learner that is gone.
        learner_wait_s: lockstep runs only: the longest the actor waits for the learner, either
            for its first welcome at start or for its next update, before stepping on without it
            (logged; the throttle resumes once the learner makes progress).
        learner_grace_s: 0 (the default): a learner that is gone (not heard within
            `link.peer_timeout_s`) is waited for indefinitely, acting on the last weights while
            the experience is spooled. > 0: once the learner has been gone that long without a
            break (or has not welcomed this actor within that long of its start), the actor ends
            the episode, holds the arm and exits with code 4; the experience stays in
            RUN_DIR/actor/spool and the next actor run with the same run directory resends it.
            Seconds; a stop after peer_timeout_s + learner_grace_s of silence.
        robot_wait_s: what the actor does when the robot server stops answering (every retry of
            one request failed: `robot_server.request_timeout_s` times its tries). 0 (the
            default): it sends the episode so far (cut short), prints what happened and exits with
            code 3. > 0: it waits up to this long for the server to answer again (one log line),
            then starts a fresh episode (a reset) and carries on; exit code 3 if it does not come
            back in time. Seconds.
        device: policy inference device (the actor runs its policy on the CPU by default).
        seed: seeds episodes and exploration, mixed with the robot name (two robots with the same
            seed still get different reset sequences).
        robot_name: this actor's robot, as the learner reports it and as its seeds are mixed with;
            "" uses the machine's host name. Give each actor on one machine its own.
        progress_every_s: print one progress line this often (env steps, episodes, success and
            intervention rates, link state, weights version), s; 0 prints only the final one.
        eval_every_steps: every this many env steps, evaluate the deterministic policy for
            `eval_episodes` episodes (no interventions, not sent to the learner) and append the
            result to RUN_DIR/actor/eval_curve.jsonl. 0 disables.
        eval_episodes: episodes per periodic evaluation.
        intervention: who may take over.
    """

    # Keys that moved to another section: named with their new place instead of "unknown key".
    moved_keys: ClassVar[dict[str, str]] = {"throttle_updates_per_step": "learner.updates_per_env_step"}

    chunk_steps: int = 10
    random_steps: int = 0
    throttle_slack_steps: int = 20
    learner_wait_s: float = 60.0
    learner_grace_s: float = 0.0
    robot_wait_s: float = 0.0
    device: str = "cpu"
    seed: int = 0
    robot_name: str = ""
    progress_every_s: float = 5.0
    eval_every_steps: int = 0
    eval_episodes: int = 10
    intervention: InterventionConfig = field(default_factory=InterventionConfig)

    def __post_init__(self) -> None:
        if self.chunk_steps < 1:
            raise ValueError("chunk_steps must be >= 1")
        if self.throttle_slack_steps < 0 or not self.learner_wait_s >= 0:
            raise ValueError("throttle_slack_steps and learner_wait_s must be >= 0")
        for name in ("learner_grace_s", "robot_wait_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):  # NaN fails both
                raise RangeError(name, f"must be a finite number of seconds >= 0 (0: off), got {value!r}")
        if not self.progress_every_s >= 0:
            raise ValueError("progress_every_s must be >= 0")
        if len(self.robot_name) > 64 or not self.robot_name.isprintable():
            raise ValueError(f"robot_name must be at most 64 printable characters, got {self.robot_name!r}")
        if self.eval_every_steps < 0 or self.eval_episodes < 1:
            raise ValueError("eval_every_steps must be >= 0 and eval_episodes >= 1")
