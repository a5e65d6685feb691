"""Human operators as intervention devices: the mapping from an input device to an env action.

The drivers (`hilrl.hardware.spacemouse`, `hilrl.hardware.keyboard`) read the device and nothing
else: axes, buttons and gestures, keys. The classes here turn what they read into the env's action
layout (`hilrl.transport.action.ActionConfig`: xyz, optional rotation, optional gripper) and into
episode labels, as `InterventionDevice`s (hilrl.actor.interventions):

    SpaceMouseOperator   axes past the deadzone move the TCP, gestures work the gripper and label
    KeyboardOperator     motion keys nudge the TCP, keys work the gripper and label
    GamepadOperator      sticks past the deadzone move the TCP, buttons work the gripper and label

All return None from `intervene` when the operator is idle (the policy acts), an action clipped
to [-1, 1] otherwise; `label()` hands over a success/failure label once, and `stop_requested()`
is true once after the operator's stop gesture, key or button (`SpaceMouseConfig.stop`,
`KeyboardConfig.stop`, `GamepadConfig.stop`; the wrapper then stops the arm). A stop is never dropped: unlike a label,
one given during a reset still counts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from hilrl.hardware.gamepad import GamepadConfig, GamepadReader, GamepadSample
from hilrl.hardware.keyboard import (
    MOTION_KEYS,
    KeyboardConfig,
    KeySource,
    TerminalKeySource,
    key_name,
    plain_keys,
)
from hilrl.hardware.spacemouse import (
    AXES,
    ButtonGestures,
    SpaceMouseConfig,
    SpaceMouseReader,
    SpaceMouseSample,
    apply_deadzone,
)
from hilrl.transport.action import ActionConfig
from hilrl.transport.robot_messages import RobotState

log = logging.getLogger(__name__)

Label = Literal["success", "failure"]
Clock = Callable[[], float]


class SpaceMouseOperator:
    """`InterventionDevice` for a SpaceMouse (actor/interventions.py).

    Any action axis past the deadzone, any button held, or a gripper gesture is an intervention,
    which lasts `hold_s` after the last of them (the arm is held still in between). The operator's
    action: the mapped axes (translation; rotation when the env has rotation dims) and, with a
    gripper, +1 / -1 on the step after a close / open gesture, else 0 (keep); clipped to [-1, 1].
    A lost device ends the intervention at once; the policy acts until it is back. The stop
    gesture makes `stop_requested()` true once.

    Attributes:
        name: the device's name in messages ("spacemouse", as `actor.intervention.device`).

    Args:
        config: the `spacemouse:` section.
        action: the env's action layout (which dims exist).
        backend: the pyspacemouse module (tests pass a fake); None imports it.
        clock: monotonic clock, s (shared with the reader, so hold times are on one clock).
        start_thread: run the reader thread (False: call `reader.poll()` yourself).
    """

    name = "spacemouse"

    def __init__(
        self,
        config: SpaceMouseConfig,
        action: ActionConfig,
        backend: Any = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ):
        self.config = config
        self._clock = clock
        self._rotation = action.rotation_scale_rad > 0
        self._gripper = action.gripper
        self._dim = action.dim
        t_idx = [AXES.index(a) for a in config.translation_axes]
        r_idx = [AXES.index(a) for a in config.rotation_axes]
        self._axis_index = np.array(t_idx + r_idx)
        self._axis_scale = np.array(config.translation_scale + config.rotation_scale)
        if not self._rotation:
            self._axis_scale[3:] = 0.0  # no rotation dims: twisting the cap is not an intervention
        self._gestures = ButtonGestures(config.gestures, config.long_press_s)
        # The stop gesture alone, fed the same button changes but never cleared at a reset: a
        # stop held through a reset (the arm going home) still fires once it has lasted
        # long_press_s. `_gestures` knows it too, so a long stop press never also fires the
        # short gesture of its chord on release.
        self._stop_gesture = ButtonGestures({"stop": config.stop} if config.stop else {}, config.long_press_s)
        self.reader = SpaceMouseReader(config, backend, clock, start_thread)
        self._seen_disconnects = 0
        self._stop = False
        self.reset()

    def reset(self) -> None:
        # Clicks during the reset belong to no episode, but a stop among them still counts.
        self._update_gestures(self._clock(), stop_only=True)
        self._gestures.clear()
        self._label: Label | None = None
        self._gripper_gesture: str | None = None  # fired, not yet sent: the next step sends it
        self._last_active_s = -math.inf

    def motion(self, sample: SpaceMouseSample | None) -> np.ndarray:
        """(6,) translation and rotation action for `sample` (before clipping; zeros for None)."""
        if sample is None:
            return np.zeros(6)
        return self._axis_scale * apply_deadzone(sample.axes[self._axis_index], self.config.deadzone)

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        now = self._clock()
        self._update_gestures(now)
        if not self.reader.connected:
            self._last_active_s = -math.inf
            self._gripper_gesture = None
            return None
        sample = self.reader.latest()
        motion = self.motion(sample)
        held = sample is not None and any(sample.buttons)
        if np.any(motion != 0) or held or self._gripper_gesture is not None:
            self._last_active_s = now
        if now - self._last_active_s > self.config.hold_s:
            return None
        action = np.zeros(self._dim, dtype=np.float32)
        action[:3] = motion[:3]
        if self._rotation:
            action[3:6] = motion[3:6]
        if self._gripper and self._gripper_gesture is not None:
            action[-1] = self._gripper_command(self._gripper_gesture, state)
        self._gripper_gesture = None
        return np.clip(action, -1.0, 1.0)

    def label(self) -> Label | None:
        """The operator's success/failure label since the last call, if any (then cleared)."""
        self._update_gestures(self._clock())
        label, self._label = self._label, None
        return label

    def stop_requested(self) -> bool:
        """Whether the operator gave the stop gesture since the last call (then cleared)."""
        self._update_gestures(self._clock())
        stop, self._stop = self._stop, False
        return stop

    def success_held(self) -> bool:
        """Whether `success_hold_button` is held in the newest sample (False when it is not
        configured or the device is disconnected). For `hilrl record-labels`."""
        button = self.config.success_hold_button
        sample = self.reader.latest() if button is not None else None
        return sample is not None and button < len(sample.buttons) and bool(sample.buttons[button])

    def _update_gestures(self, now: float, stop_only: bool = False) -> None:
        """Feed the queued button changes to the gesture trackers and act on what fires
        (`stop_only`: to the stop tracker alone, the others' clicks being dropped)."""
        disconnects = self.reader.disconnects
        if disconnects != self._seen_disconnects:  # a press the device never finished reporting
            self._seen_disconnects = disconnects
            self._gestures.clear()
            self._stop_gesture.clear()
        fired: list[str] = []
        for t, buttons in self.reader.take_button_events():
            if not stop_only:
                fired += self._gestures.update(buttons, t)
            fired += self._stop_gesture.update(buttons, t)
        if not stop_only:
            fired += self._gestures.tick(now)
        fired += self._stop_gesture.tick(now)
        for name in fired:
            if name == "stop":
                if not self._stop:
                    log.info("operator stop gesture on the SpaceMouse")
                self._stop = True
            elif name in ("success", "failure"):
                self._label = name  # type: ignore[assignment]
                log.info("operator labelled the episode: %s", name)
            else:
                self._gripper_gesture = name

    @staticmethod
    def _gripper_command(name: str, state: RobotState) -> float:
        """+1 closes, -1 opens (the env's gripper convention); toggle goes by the measured
        opening (0 closed .. 1 open)."""
        if name == "close_gripper":
            return 1.0
        if name == "open_gripper":
            return -1.0
        return -1.0 if state.gripper_opening < 0.5 else 1.0

    def close(self) -> None:
        self.reader.close()


class KeyboardOperator:
    """`InterventionDevice` driven by key presses (see the module docstring).

    Attributes:
        name: the device's name in messages ("keyboard", as `actor.intervention.device`).

    Args:
        config: the `keyboard:` section.
        action: the env's action layout (which dims exist).
        source: where keys come from; None: the terminal on standard input.
        clock: monotonic clock, s.
    Raises:
        InputDeviceError: (default source) standard input is not a usable terminal.
    """

    name = "keyboard"

    def __init__(
        self,
        config: KeyboardConfig,
        action: ActionConfig,
        source: KeySource | None = None,
        clock: Clock = time.monotonic,
    ):
        self.config = config
        self._bindings = config.bindings
        self._gripper = action.gripper
        self._dim = action.dim
        self._clock = clock
        self.source = source if source is not None else TerminalKeySource()
        log.info(
            "keyboard intervention: %s", ", ".join(f"{key_name(k)}={name}" for k, name in self._bindings.items())
        )
        self._stop = False
        self.reset()

    def reset(self) -> None:
        # Keys typed during the reset belong to no episode, but a stop among them still counts.
        if any(self._bindings.get(c.lower()) == "stop" for c in plain_keys(self.source.read_keys())):
            self._request_stop()
        self._axis_dir = np.zeros(3)
        self._axis_s = np.full(3, -math.inf)  # time of each axis's latest press
        self._last_key_s = -math.inf
        self._gripper_cmd = 0.0
        self._label: Label | None = None
        self._success_held = False

    def _take_keys(self, now: float) -> None:
        for char in plain_keys(self.source.read_keys()):
            name = self._bindings.get(char.lower())
            if name is None:
                continue  # unbound keys (and escape sequences) are ignored, not an intervention
            self._last_key_s = now
            if name in MOTION_KEYS:
                axis, direction = MOTION_KEYS[name]
                self._axis_dir[axis] = direction
                self._axis_s[axis] = now
            elif name == "close_gripper":
                self._gripper_cmd = 1.0
            elif name == "open_gripper":
                self._gripper_cmd = -1.0
            elif name == "success_toggle":
                self._success_held = not self._success_held
                log.info("success %s", "shown" if self._success_held else "no longer shown")
            elif name == "stop":
                self._request_stop()
            else:
                self._label = name  # type: ignore[assignment]
                log.info("operator labelled the episode: %s", name)

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        now = self._clock()
        self._take_keys(now)
        if now - self._last_key_s > self.config.hold_s:
            return None
        action = np.zeros(self._dim, dtype=np.float32)
        moving = now - self._axis_s <= self.config.motion_s
        action[:3] = np.where(moving, self._axis_dir * self.config.speed, 0.0)
        if self._gripper:
            action[-1] = self._gripper_cmd
        self._gripper_cmd = 0.0
        return np.clip(action, -1.0, 1.0)

    def label(self) -> Label | None:
        """The operator's success/failure label since the last call, if any (then cleared)."""
        self._take_keys(self._clock())
        label, self._label = self._label, None
        return label

    def stop_requested(self) -> bool:
        """Whether the operator pressed the stop key since the last call (then cleared)."""
        self._take_keys(self._clock())
        stop, self._stop = self._stop, False
        return stop

    def _request_stop(self) -> None:
        if not self._stop:
            log.info("operator stop key (%s) pressed", key_name(self.config.stop))
        self._stop = True

    def success_held(self) -> bool:
        """Whether `success_toggle` is toggled on (for `hilrl record-labels`)."""
        self._take_keys(self._clock())
        return self._success_held

    def close(self) -> None:
        self.source.close()


class GamepadOperator:
    """`InterventionDevice` for a gamepad (actor/interventions.py; the pad: hardware/gamepad.py).

    Any driven axis past the deadzone, a press of a gripper or label control, or one of them held
    (the success-hold control too) is an intervention, which lasts `hold_s` after the last of them
    (the arm is held still in between). The operator's action: the mapped axes (x, y, z; rx, ry, rz
    when the env has rotation dims and `rotation` is on) and, with a gripper, +1 / -1 on the step
    after a close / open press, else 0 (keep); clipped to [-1, 1]. `label()` hands over "success"
    or "failure" once per press; `success_held()` is whether the success-hold control is held;
    `stop_requested()` is true once per press of the stop control, a press during a reset too. A
    lost pad ends the intervention at once (the reader logs one warning); the policy acts until it
    is back.

    Attributes:
        name: the device's name in messages ("gamepad", as `actor.intervention.device`).

    Args:
        config: the `gamepad:` section.
        action: the env's action layout (which dims exist).
        backend: the pygame module (tests pass a fake); None imports it.
        clock: monotonic clock, s (shared with the reader, so hold times are on one clock).
        start_thread: run the reader thread; False: the operator polls the reader at each call
            (`intervene`, `label`, `stop_requested`, `success_held`, `reset`), in the caller's thread.
    Raises:
        InputDeviceError: pygame is missing or no matching joystick is connected.
    """

    name = "gamepad"
    # Controls whose press or hold is an intervention (the stop ends the episode instead).
    ACTIVE_CONTROLS = frozenset({"close_gripper", "open_gripper", "success", "failure", "success_hold"})

    def __init__(
        self,
        config: GamepadConfig,
        action: ActionConfig,
        backend: Any = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ):
        self.config = config
        self._clock = clock
        self._rotation = action.rotation_scale_rad > 0 and config.rotation
        self._gripper = action.gripper
        self._dim = action.dim
        # Without rotation dims (or with rotation off) the rotation controls are no intervention.
        self._mappings = [getattr(config, n) for n in ("x", "y", "z")]
        if self._rotation:
            self._mappings += [getattr(config, n) for n in ("rx", "ry", "rz")]
        self.reader = GamepadReader(config, backend, clock, start_thread)
        self._stop = False
        self.reset()

    def reset(self) -> None:
        # Presses during the reset belong to no episode, but a stop among them still counts.
        self._take_presses(stop_only=True)
        self._label: Label | None = None
        self._gripper_cmd = 0.0  # pressed, not yet sent: the next step sends it
        self._last_active_s = -math.inf

    def motion(self, sample: GamepadSample | None) -> np.ndarray:
        """(6,) translation and rotation action for `sample` (before clipping; zeros for None, and
        for the rotation dims unless they are driven)."""
        out = np.zeros(6)
        if sample is None:
            return out
        for i, m in enumerate(self._mappings):
            value = 0.0
            if m.axis is not None:
                value += float(sample.axes[m.axis])
            if m.minus_axis is not None:
                value -= float(sample.axes[m.minus_axis])
            if m.hat_x is not None:
                value += float(sample.hats[m.hat_x][0])
            if m.hat_y is not None:
                value += float(sample.hats[m.hat_y][1])
            out[i] = m.scale * value
        return out

    def intervene(self, state: RobotState, policy_action: np.ndarray) -> np.ndarray | None:
        now = self._clock()
        self._take_presses()
        if not self.reader.connected:
            self._last_active_s = -math.inf
            self._gripper_cmd = 0.0
            return None
        sample = self.reader.latest()
        motion = self.motion(sample)
        held = sample is not None and bool(sample.held & self.ACTIVE_CONTROLS)
        if np.any(motion != 0) or held:
            self._last_active_s = now
        if now - self._last_active_s > self.config.hold_s:
            return None
        action = np.zeros(self._dim, dtype=np.float32)
        action[:3] = motion[:3]
        if self._rotation:
            action[3:6] = motion[3:6]
        if self._gripper:
            action[-1] = self._gripper_cmd
        self._gripper_cmd = 0.0
        return np.clip(action, -1.0, 1.0)

    def label(self) -> Label | None:
        """The operator's success/failure label since the last call, if any (then cleared)."""
        self._take_presses()
        label, self._label = self._label, None
        return label

    def stop_requested(self) -> bool:
        """Whether the operator pressed the stop control since the last call (then cleared)."""
        self._take_presses()
        stop, self._stop = self._stop, False
        return stop

    def success_held(self) -> bool:
        """Whether the success-hold control is held in the newest sample (False when it is not
        configured or the pad is disconnected). For `hilrl record-labels`."""
        self._poll()
        sample = self.reader.latest()
        return sample is not None and "success_hold" in sample.held

    def _poll(self) -> None:
        if not self.reader.threaded:
            self.reader.poll()

    def _take_presses(self, stop_only: bool = False) -> None:
        """Act on the presses queued since the last call (`stop_only`: drop all but the stop)."""
        self._poll()
        for t, name in self.reader.take_presses():
            if name == "stop":
                if not self._stop:
                    log.info("operator stop button on the gamepad")
                self._stop = True
            elif stop_only or name not in self.ACTIVE_CONTROLS:
                continue
            elif name in ("success", "failure"):
                self._label = name  # type: ignore[assignment]
                self._last_active_s = max(self._last_active_s, t)
                log.info("operator labelled the episode: %s", name)
            elif name in ("close_gripper", "open_gripper"):
                self._gripper_cmd = 1.0 if name == "close_gripper" else -1.0
                self._last_active_s = max(self._last_active_s, t)

    def close(self) -> None:
        self.reader.close()
