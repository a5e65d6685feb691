"""`RobotEnv`: the gymnasium environment around a robot (simulated or real).

Space contract
    observation: Dict{"state": Box(float32, (n,)), <camera>: Box(uint8, (H, W, 3)) per policy camera}
        The state layout is `ObservationConfig.state` (see actor/config.py for each block). Each
        camera's frame is cropped to its `crop` (x, y, width, height, source pixels) and resized
        to its `size` (H, W) (actor/frames.py); uint8 throughout.
    action: Box(-1, 1, (3 [+3 rotation] [+1 gripper],), float32)
        xyz: TCP translation in the TCP frame, times `translation_scale_m`;
        rotation (when `rotation_scale_rad` > 0): rotation vector in the TCP frame, times the scale;
        gripper (when enabled, last): >= 0.5 closes, <= -0.5 opens, in between keeps the command.
    reward: `success_reward` on the step the task succeeds, else 0.
        Success is the task's own check (`task_succeeded`: the robot's task signal, e.g. the sim's,
        or the geometric `success_position_m`), or, with `env.reward_classifier` set, the reward
        classifier's decision on this step's classifier frames: probability >= the threshold
        stored with the classifier (policies/classifier.py). An operator's success/failure label
        comes after the env's step and overrides either (InterventionWrapper).
    terminated: the task succeeded. truncated: the time limit was reached or the robot reported a
        controller error (info["robot_errors"]). A time limit is never a termination.
    info: "succeeded", "intervened" (False here; intervention wrappers set it), "robot_time_s",
        "robot_errors"; after a step also "gripper_switched" (the action changed the gripper command).
        With any camera configured, also:
        "image_capture_time_s": {camera: capture time, s, on the clock of `Images.capture_time_s`};
        "image_age_s": {"newest": s, "oldest": s}: robot_time_s of the state the observation was
            built from minus the newest / oldest frame's capture time. The sim renders at its
            current simulation time on the same clock, so both are ~0 there; a real camera's
            frames are older by its latency. Negative means the frame was captured after the
            state was read (frames are read just after the state).
        "classifier_images": {camera: uint8 (H, W, 3)} for `role: classifier` cameras, which are
            never in the observation (present only when such cameras are configured).
        With `env.reward_classifier`, also "classifier_probability" (float in [0, 1], of the
        observation's frames; "succeeded" is it >= the classifier's threshold) and
        "task_succeeded" (the task's own check, reported only: ground truth in the sim).

One step: new TCP target = measured pose + scaled action, clipped to the workspace box, sent to the
robot (which clips again); then either one lockstep `advance` (sim, lockstep clock) or a wait until
the next control tick (realtime clock); then the new state (and camera frames) is read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from hilrl.actor.frames import check_crop, crop_resize
from hilrl.robot_server.interface import RobotInterface
from hilrl.transport.action import GRIPPER_THRESHOLD, ActionConfig, action_names
from hilrl.transport.robot_messages import RobotState
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.spatial import (
    orientation_error,
    quat_mul,
    quat_normalize,
    quat_to_matrix,
    rotvec_to_quat,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Frames:
    """One capture of every configured camera, cropped and resized, and what is read off it."""

    policy: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8: the observation's images
    info: dict[str, Any]  # the info keys the frames give (image_capture_time_s, image_age_s, ...)
    classifier_probability: float | None  # the reward classifier's, with env.reward_classifier


@dataclass(frozen=True)
class _Reading:
    """Everything one observation is made of: the robot state, the observation built from it and
    the frames captured with it. Success and info are computed from a reading, never from what an
    earlier call left on the env."""

    state: RobotState
    obs: dict[str, np.ndarray]
    frames: _Frames | None  # None without cameras


class RobotEnv(gym.Env):
    """Gymnasium environment over any `RobotInterface`.

    Args:
        config: the `env:` section.
        robot: connected robot (in-process sim or `RobotClient`); the env owns and closes it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: EnvConfig, robot: RobotInterface, render_mode: str | None = None):
        self.config = config
        self.robot = robot
        self.render_mode = render_mode
        self.server_info = robot.info()
        self.lockstep = self.server_info.clock == "lockstep"
        self.control_period_s = self.server_info.control_period_s
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.control_period_s)}
        obs_config = config.observation
        missing = [c for c in obs_config.camera_names if c not in self.server_info.cameras]
        if missing:
            raise ValueError(
                f"env.observation.cameras: {missing} not provided by the robot (it has {self.server_info.cameras})"
            )
        if config.workspace_min_m is None:
            self.workspace_min_m = np.asarray(self.server_info.workspace_min_m, dtype=np.float64)
            self.workspace_max_m = np.asarray(self.server_info.workspace_max_m, dtype=np.float64)
        else:
            self.workspace_min_m = np.asarray(config.workspace_min_m, dtype=np.float64)
            self.workspace_max_m = np.asarray(config.workspace_max_m, dtype=np.float64)

        self.action_space = gym.spaces.Box(-1.0, 1.0, (config.action_dim,), np.float32)
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (config.state_dim,), np.float32)}
        # One render call per observation for every camera (policy and classifier alone, so
        # classifier cameras cost nothing unless configured): the frames share one capture.
        self._cameras = {c.name: c for c in obs_config.camera_configs}
        if self._cameras:
            # Crops are checked against the frame the robot really delivers, not a config value.
            probe = robot.render(list(self._cameras))
            for i, name in enumerate(probe.cameras):
                check_crop(name, self._cameras[name].crop, tuple(probe.pixels[i].shape[:2]))
        for cam in obs_config.policy_cameras:
            spaces[cam.name] = gym.spaces.Box(0, 255, (*cam.size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

        self.robot_state: RobotState | None = None
        self._reset_position = np.zeros(3)
        self._reset_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._gripper_cmd = 1.0
        self._steps = 0
        self._next_tick_s = 0.0
        self._last_reading: _Reading | None = None  # what render() shows
        self.reward_classifier = self._load_reward_classifier() if config.reward_classifier else None

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        state = self.robot.state()
        if state.errors:
            if not self.config.clear_errors_on_reset:
                raise RuntimeError(
                    f"robot reports controller errors {state.errors}; make the cell safe, then clear "
                    "them (set env.clear_errors_on_reset: true to do it at every reset in the sim)"
                )
            log.warning("clearing controller errors at reset: %s", state.errors)
            self.robot.clear_errors()
        episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        state = self.robot.go_home(
            position_noise_m=self.config.reset_position_noise_m,
            rotation_noise_rad=self.config.reset_rotation_noise_rad,
            seed=episode_seed,
        )
        self._reset_position = state.tcp_position_m.copy()
        self._reset_quat = state.tcp_quaternion_wxyz.copy()
        self._gripper_cmd = state.gripper_opening
        self._steps = 0
        self._next_tick_s = time.monotonic() + self.control_period_s
        self.robot_state = state
        reading = self._read(state)
        return reading.obs, self._info(reading, self._succeeded(reading))

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.robot_state is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self.action_space.shape}")
        if not np.isfinite(action).all():
            raise ValueError(f"action contains NaN or inf: {action}")
        action = np.clip(action, -1.0, 1.0)

        position, quat = self._target_from_action(action, self.robot_state)
        self.robot.set_pose_target(position, quat)
        gripper_switched = False
        if self.config.action.gripper:
            g = action[-1]
            command = 0.0 if g >= GRIPPER_THRESHOLD else 1.0 if g <= -GRIPPER_THRESHOLD else self._gripper_cmd
            if command != self._gripper_cmd:
                self.robot.set_gripper(command)
                self._gripper_cmd = command
                gripper_switched = True
        if self.lockstep:
            state = self.robot.advance(1)
        else:
            self._wait_for_tick()
            state = self.robot.state()
        self.robot_state = state
        self._steps += 1

        reading = self._read(state)
        succeeded = self._succeeded(reading)
        terminated = succeeded
        truncated = not terminated and (self._steps >= self.config.max_episode_steps or bool(state.errors))
        if state.errors:
            log.warning("robot reported controller errors; ending the episode: %s", state.errors)
        reward = self.config.success_reward if succeeded else 0.0
        info = self._info(reading, succeeded)
        info["gripper_switched"] = gripper_switched
        return reading.obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frames = self._last_reading.frames if self._last_reading is not None else None
        if frames is not None and frames.policy:
            return next(iter(frames.policy.values()))
        return self.robot.render([self.server_info.cameras[0]]).pixels[0]

    @property
    def action_config(self) -> ActionConfig:
        """The action layout operators and experts drive (`env.action`)."""
        return self.config.action

    @property
    def has_gripper(self) -> bool:
        """The last action dim is the gripper command (`env.action.gripper`)."""
        return self.config.action.gripper

    @property
    def action_names(self) -> list[str]:
        """Name of each action dim (x, y, z, [rx, ry, rz], [gripper])."""
        return action_names(self.config.action)

    def hold(self) -> None:
        """Hold the arm where it is now (target := the measured pose): what the actor does the
        moment it must stop driving (refused by the learner), without waiting for the watchdog."""
        state = self.robot.state()
        if not state.errors:  # latched: the server already holds it and refuses motion
            self.robot.set_pose_target(state.tcp_position_m, state.tcp_quaternion_wxyz)

    def close(self) -> None:
        self.robot.close()

    # ------------------------------------------------------------------ internals

    def _target_from_action(self, action: np.ndarray, state: RobotState) -> tuple[np.ndarray, np.ndarray]:
        """Measured pose + action (TCP frame), clipped to the workspace box."""
        act = self.config.action
        rot = quat_to_matrix(state.tcp_quaternion_wxyz)
        position = state.tcp_position_m + rot @ (action[:3] * act.translation_scale_m)
        position = np.clip(position, self.workspace_min_m, self.workspace_max_m)
        if act.rotation_scale_rad > 0:
            delta = rotvec_to_quat(rot @ (action[3:6] * act.rotation_scale_rad))
            quat = quat_normalize(quat_mul(delta, state.tcp_quaternion_wxyz))
        else:
            quat = self._reset_quat
        return position, quat

    def _wait_for_tick(self) -> None:
        now = time.monotonic()
        if self._next_tick_s > now:
            time.sleep(self._next_tick_s - now)
            self._next_tick_s += self.control_period_s
        else:  # late: start a fresh schedule rather than bursting to catch up
            self._next_tick_s = now + self.control_period_s

    def _read(self, state: RobotState) -> _Reading:
        """The observation of `state`: its state vector, and with cameras the frames captured now
        (just after the state was read). Kept as the reading render() shows."""
        obs: dict[str, np.ndarray] = {"state": self._state_vector(state)}
        frames = self._capture(state) if self._cameras else None
        if frames is not None:
            obs.update(frames.policy)
        self._last_reading = _Reading(state, obs, frames)
        return self._last_reading

    def _state_vector(self, state: RobotState) -> np.ndarray:
        """The `env.observation.state` blocks of `state`, in their configured order, (n,) float32."""
        blocks = []
        for key in self.config.observation.state:
            if key == "tcp_pose":
                blocks.append(state.tcp_position_m - self._reset_position)
                blocks.append(orientation_error(state.tcp_quaternion_wxyz, self._reset_quat))
            elif key == "tcp_twist":
                blocks += [state.tcp_linear_velocity_m_per_s, state.tcp_angular_velocity_rad_per_s]
            elif key == "tcp_wrench":
                blocks += [state.tcp_force_n, state.tcp_torque_nm]
            elif key == "gripper":
                blocks.append([state.gripper_opening])
            elif key == "object":
                if state.object_state is None:
                    raise RuntimeError("env.observation.state has 'object', but this robot reports no object state (sim only)")
                # Relative to the current TCP: the feature a wrist camera would give, and the one a
                # reaching or grasping policy needs directly.
                blocks.append(np.asarray(state.object_state[:3]) - state.tcp_position_m)
        return np.concatenate(blocks).astype(np.float32)

    def _capture(self, state: RobotState) -> _Frames:
        """One render of every configured camera (policy and classifier ones), cropped and resized;
        their capture times and ages against `state`; the reward classifier's probability on them."""
        images = self.robot.render(list(self._cameras))
        policy: dict[str, np.ndarray] = {}
        classifier: dict[str, np.ndarray] = {}
        for i, name in enumerate(images.cameras):
            cam = self._cameras[name]
            frame = crop_resize(images.pixels[i], cam.crop, cam.size)
            (policy if cam.role == "policy" else classifier)[name] = frame
        # The sim renders every camera at one time; real cameras (one device each, see
        # hardware/cameras.py) report a capture time per frame.
        times = getattr(images, "capture_times_s", None) or [images.capture_time_s] * len(images.cameras)
        capture = {name: float(t) for name, t in zip(images.cameras, times, strict=True)}
        ages = [state.robot_time_s - t for t in capture.values()]
        info: dict[str, Any] = {"image_capture_time_s": capture, "image_age_s": {"newest": min(ages), "oldest": max(ages)}}
        if classifier:
            info["classifier_images"] = classifier
        probability = None
        if self.reward_classifier is not None:
            # Classifier cameras first, else the policy camera of that name (a classifier
            # trained on policy frames when no camera has role classifier).
            seen = {name: classifier.get(name, policy.get(name)) for name in self.reward_classifier.cameras}
            probability = self.reward_classifier.probability(seen)
            info["classifier_probability"] = probability
        return _Frames(policy, info, probability)

    def task_succeeded(self, state: RobotState) -> bool:
        """The task's own success check: the robot says so (the sim's task check), or the TCP is
        within `success_tolerance_m` of `success_position_m` (a real cell's geometric success,
        e.g. a peg in its hole)."""
        goal = self.config.success_position_m
        if goal is not None and np.linalg.norm(state.tcp_position_m - np.asarray(goal)) <= self.config.success_tolerance_m:
            return True
        return bool(state.task_success)

    def _succeeded(self, reading: _Reading) -> bool:
        """Success of an observation: the reward classifier's decision on its frames when one is
        configured, else `task_succeeded` of its state."""
        if self.reward_classifier is not None:
            assert reading.frames is not None and reading.frames.classifier_probability is not None
            return reading.frames.classifier_probability >= self.reward_classifier.threshold
        return self.task_succeeded(reading.state)

    def _load_reward_classifier(self) -> Any:
        """The classifier `env.reward_classifier` names, hash-checked, its cameras checked
        against this env's. Errors name the config key."""
        # torch is imported only when a classifier is configured.
        from hilrl.policies.classifier import ClassifierHashError, load_classifier

        ref = self.config.reward_classifier
        assert ref is not None
        try:
            classifier = load_classifier(ref.path, ref.sha256, ref.device)
        except ClassifierHashError as exc:
            raise SchemaError("env.reward_classifier.sha256", str(exc)) from None
        except (FileNotFoundError, ValueError) as exc:
            raise SchemaError("env.reward_classifier.path", str(exc)) from None
        for name, size in classifier.cameras.items():
            cam = self._cameras.get(name)
            if cam is None:
                raise SchemaError(
                    "env.reward_classifier",
                    f"the classifier {ref.path} sees camera {name!r}, which env.observation.cameras does not "
                    f"configure (it has {sorted(self._cameras) or 'none'})",
                )
            if tuple(cam.size) != tuple(size):
                raise SchemaError(
                    "env.reward_classifier",
                    f"the classifier {ref.path} takes {size[0]}x{size[1]} frames from camera {name!r}, but "
                    f"env.observation.cameras gives it {cam.size[0]}x{cam.size[1]}",
                )
        log.info("reward classifier %s: cameras %s, threshold %.4f", ref.path, list(classifier.cameras), classifier.threshold)
        return classifier

    def _info(self, reading: _Reading, succeeded: bool) -> dict[str, Any]:
        """The info dict of an observation (module docstring); `succeeded` is `_succeeded(reading)`."""
        state = reading.state
        info = {
            "succeeded": succeeded,
            "intervened": False,
            "robot_time_s": state.robot_time_s,
            "robot_errors": list(state.errors),
            "gripper_switched": False,
            **(reading.frames.info if reading.frames is not None else {}),
        }
        if self.reward_classifier is not None:
            info["task_succeeded"] = self.task_succeeded(state)
        return info
