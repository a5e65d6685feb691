"""Gamepad intervention device: a game controller (Xbox layout by default) drives the arm when the
operator takes over; its buttons work the gripper, label episodes and stop the arm. This driver
reads the pad; the mapping from what it reads to an env action is the actor's
(`hilrl.actor.operators.GamepadOperator`).

Pattern: a *reader thread keeps the newest sample* (as the SpaceMouse's does). `GamepadReader`
polls pygame at `poll_hz`: each poll drains pygame's event queue (hotplug events, and every
JOYBUTTONDOWN, so a press shorter than a poll is never lost) and reads the current axes, buttons
and hats, which it keeps as the newest `GamepadSample`. Presses of the configured controls are
queued by name ("close_gripper", "success", "stop", ...); the control loop never waits on the pad:
each step the operator takes the newest sample and the queued presses under a lock. Draining the
queue at `poll_hz` also keeps it from filling (a full SDL queue drops new events, presses among
them) while the actor is busy elsewhere (a reset, a wait for the learner).

All pygame calls happen in the reader's thread (or, with `start_thread=False`, in the caller's),
the one that initialised `pygame.display`, as pygame's docs ask of `pygame.event.get()`. pygame's
event queue needs the video subsystem, but no window: unless `SDL_VIDEODRIVER` is already set, the
reader initialises it with SDL's "dummy" driver (no window, no X server or Wayland needed, over ssh
too) and sets `SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1`, restoring both variables afterwards.

pygame API this relies on (pygame 2.x, SDL2; docs: pygame.org/docs/ref/joystick.html and
ref/event.html, the same text ships in site-packages/pygame/docs):
    pygame.display.init() / get_init() / quit(); pygame.joystick.init() / get_init() / quit().
    pygame.joystick.get_count() -> number of joysticks; Joystick(i) for 0 <= i < get_count()
        (opened on creation; pygame.error otherwise; pygame 2 returns the same object for a device
        already open, so listing never closes the pad in use).
    Joystick: get_name(), get_guid(), get_instance_id() (what events carry; the device index is not
        stable across hotplugs), get_numaxes() / get_axis(i) (-1..1; under SDL an analog trigger
        rests at -1 and reads +1 fully pulled), get_numbuttons() / get_button(i),
        get_numhats() / get_hat(i) -> (x, y), each -1, 0 or 1 (y: +1 up), quit().
    pygame.event.get() -> the queued events (it pumps, which is also what updates the joystick
        state): JOYBUTTONDOWN (instance_id, button), JOYDEVICEADDED (device_index),
        JOYDEVICEREMOVED (instance_id); other events are dropped.
    pygame.error: what pygame raises.

Failures:
    pygame not installed, or it cannot initialise -> `InputDeviceError` when the device is built,
        saying how to install it.
    no joystick matches `joystick` -> `InputDeviceError` listing every connected joystick (index,
        name, axes/buttons/hats) or saying none is connected, and how to check.
    unplugged mid-episode (JOYDEVICEREMOVED for the pad in use, or get_count() drops and the pad is
        no longer among the connected ones) -> the reader marks itself disconnected and logs ONE
        warning; the operator lets the policy act (the intervention ends) and the actor keeps
        running. When a matching joystick is plugged in again (JOYDEVICEADDED), it is opened
        again and the reader logs that it is back.

Analog triggers (`trigger_axes`) are read as a pull from 0 (released) to 1 (fully pulled). SDL may
report 0 for an axis it has not polled yet, which would read as half pulled: a trigger reads 0
until it has reported its rest position (-1) once since the pad was opened.

Default mapping (an Xbox 360 / One / Series pad under SDL2 on Linux: axes 0/1 left stick x/y,
2 left trigger, 3/4 right stick x/y, 5 right trigger; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB,
6 Back/View, 7 Start/Menu; hat 0 the d-pad. Stick y reads -1 pushed up):
    left stick: action x (right = +x) and y (up = +y); right stick up/down: z (up = +z);
    rotation (only with `rotation: true` and an env with rotation dims): right stick left/right:
        rz; right trigger minus left trigger: rx; d-pad up/down: ry;
    RB (right bumper): close the gripper; LB: open it;
    A: success (ends the episode); B: failure (ends the episode);
    Y held: "the scene shows success" for `hilrl record-labels`;
    Back/View: operator stop (the arm holds until `hilrl clear-errors`; see `GamepadConfig.stop`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hilrl.hardware.errors import InputDeviceError
from hilrl.hardware.spacemouse import apply_deadzone
from hilrl.transport.schema import RangeError

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# The action axes a mapping can drive, in the env's order (hilrl.transport.action.action_names).
MOTION_FIELDS = ("x", "y", "z", "rx", "ry", "rz")
# The controls that are pressed (buttons or triggers), by config field.
CONTROL_FIELDS = ("close_gripper", "open_gripper", "success", "failure", "stop", "success_hold")
# A trigger counts as at rest (and from then on is read) once it reads within this of -1.
TRIGGER_REST_TOLERANCE = 0.05
# Presses kept between two control steps (a person presses a few buttons a second); a stop is
# never dropped.
MAX_PRESSES = 256
# How long building the reader waits for its thread to initialise pygame and open the pad, s.
STARTUP_TIMEOUT_S = 10.0
# While the pad is lost, look for it again at least this often, s (a plug-in event is acted on at once).
RETRY_S = 1.0
MAX_INDEX = 63  # larger axis / button / hat indices are certainly typos

CHECK_HELP = (
    "Check the cable, or that a wireless pad is paired and switched on (its receiver plugged in); "
    "on Linux `ls -l /dev/input/by-id/ | grep -i joystick` should list it (`evtest` or `jstest` "
    "read it), and your user needs read access to its /dev/input/event* node (the `input` group: "
    "sudo usermod -aG input $USER, then log in again). Steam and other game launchers can grab a "
    "pad: close them."
)


# ---------------------------------------------------------------------------- configuration


def _check_index(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX):
        raise RangeError(name, f"must be an index in [0, {MAX_INDEX}] or null, got {value!r}")


@dataclass(frozen=True)
class AxisMapping:
    """What drives one action axis:

        action = scale * (axis - minus_axis + hat_x + hat_y)

    each term 0 when not set, then clipped to [-1, 1]. A stick axis reads -1..1 after the deadzone;
    a trigger axis (listed in `trigger_axes`) reads its pull 0..1; a hat (the d-pad) reads -1, 0 or
    1 on each of its x (+1 right) and y (+1 up) components.

    Attributes:
        axis: the joystick axis index (pygame `Joystick.get_axis`) that drives it; None: none.
        minus_axis: an axis subtracted from it: with two triggers, one pulls +, the other - (e.g.
            axis 5, the right trigger, and minus_axis 2, the left one); None: none.
        hat_x / hat_y: the index of a hat (pygame `Joystick.get_hat`; the d-pad is hat 0) whose
            left/right (hat_x) or down/up (hat_y) drives it; None: none.
        scale: action per unit of input; the sign flips the axis, 0 disables it.
    """

    axis: int | None = None
    minus_axis: int | None = None
    hat_x: int | None = None
    hat_y: int | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("axis", "minus_axis", "hat_x", "hat_y"):
            _check_index(name, getattr(self, name))
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not (
            math.isfinite(self.scale) and abs(self.scale) <= 10
        ):
            raise RangeError("scale", f"must be a finite number in [-10, 10], got {self.scale!r}")

    @property
    def axes(self) -> tuple[int, ...]:
        """The joystick axes it reads."""
        return tuple(a for a in (self.axis, self.minus_axis) if a is not None)

    @property
    def hats(self) -> tuple[int, ...]:
        """The hats it reads."""
        return tuple(h for h in (self.hat_x, self.hat_y) if h is not None)

    @property
    def enabled(self) -> bool:
        return self.scale != 0 and bool(self.axes or self.hats)


@dataclass(frozen=True)
class Control:
    """A gamepad control that is either pressed or not: a button, or an analog trigger pulled past
    `GamepadConfig.trigger_press`. Exactly one of the two is set.

    Attributes:
        button: the button index (pygame `Joystick.get_button`).
        trigger: the axis index of an analog trigger; it must be listed in `trigger_axes`.
    """

    button: int | None = None
    trigger: int | None = None

    def __post_init__(self) -> None:
        _check_index("button", self.button)
        _check_index("trigger", self.trigger)
        if (self.button is None) == (self.trigger is None):
            raise RangeError("button", f"give exactly one of button and trigger, got {self.describe()}")

    def describe(self) -> str:
        if self.button is not None and self.trigger is None:
            return f"button {self.button}"
        if self.trigger is not None and self.button is None:
            return f"trigger axis {self.trigger}"
        return f"button {self.button}, trigger {self.trigger}"


@dataclass
class GamepadConfig:
    """The `actor.intervention.gamepad:` section. Defaults fit an Xbox-layout pad under SDL2 (see
    the module docstring); other pads number their axes and buttons differently (a PS4 pad under
    pygame 2: right stick axes 2/3, triggers 4/5, d-pad buttons 11-14): check each control once at
    low speed, and flip an axis with a negative scale to match the TCP frame.

    Attributes:
        joystick: which joystick: an index (pygame's device index, 0 = the first), a name substring
            (case-insensitive, e.g. "xbox"), or None: the first joystick with enough axes, buttons
            and hats for this mapping (a SpaceMouse also shows up as a joystick, with 2 buttons).
            The same rule picks the pad again when it is plugged back in.
        deadzone: fraction of full scale, on each stick axis and trigger pull, below which it reads
            0; the rest is rescaled to grow from 0 at the deadzone's edge to 1 at full deflection.
            Any driven axis past it is an intervention. Worn sticks drift to about 0.1.
        hold_s: the intervention lasts this long (s) after the last stick motion past the deadzone
            or press of a gripper or label control, holding the arm still, so a pause does not hand
            control back to the policy.
        poll_hz: how often the reader thread reads the pad, Hz.
        x, y, z: what drives action x, y, z (`AxisMapping`).
        rotation: drive the env's rotation dims (rx, ry, rz) too, when the env has them; False:
            they stay 0 (the orientation holds) and their controls are no intervention.
        rx, ry, rz: what drives action rx, ry, rz (with `rotation`).
        trigger_axes: the axes that are analog triggers (rest -1 under SDL, read as a pull 0..1).
        trigger_press: a trigger used as a `Control` counts as pressed once its pull (after the
            deadzone) reaches this fraction.
        close_gripper / open_gripper: controls that close / open the gripper (the gripper action is
            +1 / -1 on the step after the press, then 0 = keep); None disables.
        success / failure: controls that end the episode with a human label (once per press);
            None disables.
        stop: the operator stop (`hilrl.actor.interventions.InterventionWrapper`): the robot server
            holds the arm and latches "operator_stop" (motion is refused until `hilrl clear-errors
            --config FILE`), the episode ends and the actor exits with an error; None disables.
            Default: Back/View, the small button left of the Xbox logo: a deliberate press, never
            brushed by a thumb working the sticks or the face buttons, and a stray press fails safe
            (the arm holds). One press stops, a press during a reset too. It is no emergency stop:
            keep the robot's own stop button within reach.
        success_hold: `hilrl record-labels` only: while held, the recorded frames are labelled as
            showing success (`hilrl.actor.operators.GamepadOperator.success_held`); None disables.
        reconnect: open the pad again when it is plugged back in (False: it stays lost).
    Each control uses its own button or trigger, and a trigger that is a control drives no motion.
    """

    joystick: int | str | None = None
    deadzone: float = 0.15
    hold_s: float = 0.5
    poll_hz: float = 100.0
    x: AxisMapping = field(default_factory=lambda: AxisMapping(axis=0))
    y: AxisMapping = field(default_factory=lambda: AxisMapping(axis=1, scale=-1.0))
    z: AxisMapping = field(default_factory=lambda: AxisMapping(axis=4, scale=-1.0))
    rotation: bool = False
    rx: AxisMapping = field(default_factory=lambda: AxisMapping(axis=5, minus_axis=2))
    ry: AxisMapping = field(default_factory=lambda: AxisMapping(hat_y=0, scale=0.5))
    rz: AxisMapping = field(default_factory=lambda: AxisMapping(axis=3))
    trigger_axes: list[int] = field(default_factory=lambda: [2, 5])
    trigger_press: float = 0.5
    close_gripper: Control | None = field(default_factory=lambda: Control(button=5))
    open_gripper: Control | None = field(default_factory=lambda: Control(button=4))
    success: Control | None = field(default_factory=lambda: Control(button=0))
    failure: Control | None = field(default_factory=lambda: Control(button=1))
    stop: Control | None = field(default_factory=lambda: Control(button=6))
    success_hold: Control | None = field(default_factory=lambda: Control(button=3))
    reconnect: bool = True

    def __post_init__(self) -> None:
        selector = self.joystick
        if isinstance(selector, bool) or not (
            selector is None or (isinstance(selector, int) and selector >= 0) or (isinstance(selector, str) and selector.strip())
        ):
            raise RangeError("joystick", f"must be an index >= 0, a name substring or null, got {selector!r}")
        if not (math.isfinite(self.deadzone) and 0 <= self.deadzone < 1):
            raise RangeError("deadzone", f"must be in [0, 1) (fraction of full scale), got {self.deadzone!r}")
        if not (math.isfinite(self.hold_s) and 0 <= self.hold_s <= 60):
            raise RangeError("hold_s", f"must be in [0, 60] s, got {self.hold_s!r}")
        if not (math.isfinite(self.poll_hz) and 0 < self.poll_hz <= 1000):
            raise RangeError("poll_hz", f"must be in (0, 1000] Hz, got {self.poll_hz!r}")
        if not (math.isfinite(self.trigger_press) and 0 < self.trigger_press < 1):
            raise RangeError("trigger_press", f"must be in (0, 1) (fraction of a full pull), got {self.trigger_press!r}")
        triggers = list(self.trigger_axes)
        for value in triggers:
            _check_index("trigger_axes", value)
        if len(set(triggers)) != len(triggers):
            raise RangeError("trigger_axes", f"must be distinct axis indices, got {triggers}")
        self.trigger_axes = triggers
        for name in MOTION_FIELDS:
            if not isinstance(getattr(self, name), AxisMapping):
                raise RangeError(name, f"must be an AxisMapping, got {getattr(self, name)!r}")
        seen: dict[tuple[str, int], str] = {}
        for name, control in self.controls.items():
            key = ("button", control.button) if control.button is not None else ("trigger", control.trigger)
            if key in seen:
                raise RangeError(name, f"uses {control.describe()}, already used by {seen[key]}")
            seen[key] = name
            if control.trigger is not None:
                if control.trigger not in triggers:
                    raise RangeError(
                        name, f"uses trigger axis {control.trigger}, which is not in trigger_axes {triggers}"
                    )
                for motion in self.motion_fields:
                    if control.trigger in getattr(self, motion).axes:
                        raise RangeError(
                            name, f"uses trigger axis {control.trigger}, which also drives {motion}: "
                            f"move one of them (or set {motion}.scale: 0)"
                        )

    @property
    def controls(self) -> dict[str, Control]:
        """The enabled controls by name (close_gripper, open_gripper, success, failure, stop, success_hold)."""
        return {n: getattr(self, n) for n in CONTROL_FIELDS if getattr(self, n) is not None}

    @property
    def motion_fields(self) -> tuple[str, ...]:
        """The action axes this config drives: x, y, z, and rx, ry, rz with `rotation`."""
        return MOTION_FIELDS if self.rotation else MOTION_FIELDS[:3]

    def needs(self) -> dict[str, tuple[int, str]]:
        """The highest axis, button and hat index this config reads, each with the field reading
        it: {"axes": (index, field), "buttons": ..., "hats": ...} (absent: none read)."""
        used: dict[str, tuple[int, str]] = {}

        def note(kind: str, index: int | None, where: str) -> None:
            if index is not None and (kind not in used or index > used[kind][0]):
                used[kind] = (index, where)

        for name in self.motion_fields:
            mapping: AxisMapping = getattr(self, name)
            if mapping.enabled:
                for attr in ("axis", "minus_axis"):
                    note("axes", getattr(mapping, attr), f"{name}.{attr}")
                for attr in ("hat_x", "hat_y"):
                    note("hats", getattr(mapping, attr), f"{name}.{attr}")
        for name, control in self.controls.items():
            note("buttons", control.button, f"{name}.button")
            note("axes", control.trigger, f"{name}.trigger")
        return used


# ---------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class GamepadSample:
    """The newest pad state.

    Attributes:
        axes: (numaxes,) after the deadzone: stick axes -1..1, trigger axes their pull 0..1 (0
            until the trigger has reported its rest position once).
        raw_axes: (numaxes,) as pygame reports them, -1..1.
        buttons: 0/1 per button.
        hats: (x, y) per hat, each -1, 0 or 1.
        held: the named controls held down now (`GamepadConfig.controls`).
        read_s: when the reader read it, on the reader's clock, s.
    """

    axes: np.ndarray
    raw_axes: np.ndarray
    buttons: tuple[int, ...]
    hats: tuple[tuple[int, int], ...]
    held: frozenset[str]
    read_s: float


def import_pygame() -> Any:
    """The pygame module, or an `InputDeviceError` saying how to install it."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner on stdout at import
    try:
        return importlib.import_module("pygame")
    except (ImportError, OSError) as exc:  # OSError: its SDL2 shared library cannot be loaded
        raise InputDeviceError(
            f"the gamepad needs pygame, which could not be imported ({exc!r}): pip install 'hilrl[real]' "
            "(or pip install pygame)"
        ) from exc


@contextlib.contextmanager
def _sdl_environment() -> Iterator[None]:
    """No window for pygame's event queue, and pad input whatever has the focus: SDL's dummy video
    driver and background joystick events, unless the environment already chose; restored after."""
    wanted = {"SDL_VIDEODRIVER": "dummy", "SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS": "1"}
    added = [k for k in wanted if k not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class GamepadReader:
    """Background reader keeping the newest gamepad sample (see the module docstring).

    Args:
        config: which joystick, deadzone, rates, controls.
        backend: the pygame module (tests pass a fake); None imports pygame.
        clock: monotonic clock in seconds, for sample and press times.
        start_thread: poll in a background thread at `config.poll_hz` (all pygame calls happen
            there); False: the caller calls `poll()`, in one thread.
    Raises:
        InputDeviceError: pygame missing or failing to initialise, or no matching joystick.
    """

    def __init__(
        self,
        config: GamepadConfig,
        backend: Any = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ):
        self.config = config
        self._lib = backend if backend is not None else import_pygame()
        self._clock = clock
        self._controls = config.controls
        self._triggers = frozenset(config.trigger_axes)
        self._needs = config.needs()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._latest: GamepadSample | None = None
        self._presses: deque[tuple[float, str]] = deque(maxlen=MAX_PRESSES)
        self._stop_press_s: float | None = None  # the first stop press not yet taken
        self._connected = False
        self._disconnects = 0
        self._joy: Any = None
        self._instance_id: int | None = None
        self._count = 0
        self._retry_at_s = 0.0
        self._armed: set[int] = set()  # triggers seen at rest since the pad was opened
        self._trigger_down: set[str] = set()  # trigger controls pulled past trigger_press
        self._inited: list[Any] = []  # the pygame modules this reader initialised (quit on close)
        self.name = ""
        self.index = -1
        self._thread: threading.Thread | None = None
        if not start_thread:
            self._start()
            return
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gamepad-reader", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            self._stop.set()
            raise InputDeviceError(f"gamepad: pygame did not initialise its joystick support within {STARTUP_TIMEOUT_S:g} s")
        if self._startup_error is not None:
            self._thread.join(timeout=2.0)
            raise self._startup_error

    # ------------------------------------------------------------------ what the operator reads

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def disconnects(self) -> int:
        """How many times the pad was lost."""
        with self._lock:
            return self._disconnects

    @property
    def threaded(self) -> bool:
        """Whether the reader thread polls (else the caller must call `poll()`)."""
        return self._thread is not None

    def latest(self) -> GamepadSample | None:
        """The newest sample, or None while disconnected."""
        with self._lock:
            return self._latest

    def take_presses(self) -> list[tuple[float, str]]:
        """Every press of a named control since the last call, oldest first: (read time s, name)."""
        with self._lock:
            presses = list(self._presses)
            self._presses.clear()
            stop_s, self._stop_press_s = self._stop_press_s, None
        if stop_s is not None and all(name != "stop" for _, name in presses):
            presses.insert(0, (stop_s, "stop"))  # its entry was pushed out of a full queue
        return presses

    # ------------------------------------------------------------------ starting and stopping

    def _start(self) -> None:
        """Initialise pygame's display (for the event queue) and joystick modules, open the pad and
        read it once; on failure, undo the initialisation and raise InputDeviceError."""
        lib = self._lib
        try:
            with _sdl_environment():
                for module in (lib.display, lib.joystick):  # the display first: it starts SDL's event queue
                    if not module.get_init():
                        module.init()
                        self._inited.append(module)
            lib.event.get()  # what was queued before the pad was open (its JOYDEVICEADDED among it)
        except Exception as exc:
            self._shutdown()
            raise InputDeviceError(
                f"gamepad: pygame could not initialise its joystick support ({exc!r}). It runs with no "
                "window (SDL_VIDEODRIVER=dummy unless set); check `python -c \"import pygame; "
                "pygame.display.init(); pygame.joystick.init(); print(pygame.joystick.get_count())\"`"
            ) from exc
        try:
            self._open()
        except BaseException:
            self._shutdown()
            raise
        with self._lock:
            self._connected = True
        self.poll()

    def _run(self) -> None:
        try:
            self._start()
        except BaseException as exc:
            self._startup_error = exc if isinstance(exc, InputDeviceError) else InputDeviceError(f"gamepad: {exc!r}")
            self._ready.set()
            return
        self._ready.set()
        period = 1.0 / self.config.poll_hz
        next_s = time.monotonic()
        try:
            while not self._stop.is_set():
                self.poll()  # never raises: a failure marks the pad lost (one warning)
                next_s += period
                delay = next_s - time.monotonic()
                if delay < 0:  # late (a stalled machine): restart the schedule rather than burst
                    next_s, delay = time.monotonic(), 0.0
                self._stop.wait(delay)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Close the pad and quit the pygame modules this reader initialised (in its thread)."""
        self._release_joystick()
        while self._inited:
            module = self._inited.pop()
            try:
                module.quit()
            except Exception as exc:
                log.debug("quitting %r failed: %r", module, exc)

    def close(self) -> None:
        """Stop the thread and close the pad."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        else:
            self._shutdown()
        with self._lock:
            self._connected = False
            self._latest = None

    # ------------------------------------------------------------------ reading

    def poll(self) -> None:
        """One read cycle: drain the event queue (presses, hotplug), then read the pad's state. The
        reader thread calls it at `poll_hz`; without the thread, the caller does."""
        now = self._clock()
        try:
            self._poll(now)
        except Exception as exc:  # pygame.error from a pad that went away between two calls
            if self.connected:
                self._mark_disconnected(f"reading it failed ({exc!r})", now)
            else:
                log.debug("gamepad still unavailable: %r", exc)

    def _poll(self, now: float) -> None:
        lib = self._lib
        removed = added = False
        events = lib.event.get()
        connected = self.connected
        for event in events:
            kind = event.type
            if kind == lib.JOYDEVICEADDED:
                added = True
            elif not connected or removed or getattr(event, "instance_id", None) != self._instance_id:
                continue  # another joystick's, or from before the pad was (re)opened
            elif kind == lib.JOYDEVICEREMOVED:
                removed = True
            elif kind == lib.JOYBUTTONDOWN:
                self._press_button(int(event.button), now)
        count, before = int(lib.joystick.get_count()), self._count
        self._count = count
        if connected and not removed and count < before and not self._still_present(count):
            removed = True  # no JOYDEVICEREMOVED seen (a full queue drops events), but it is gone
        if removed:
            self._mark_disconnected("it was unplugged (or its wireless link dropped)", now)
            connected = False
        if not connected:
            # Plugged in (an event, or more joysticks than before), or the periodic retry.
            due = added or count > before or now >= self._retry_at_s
            if not (self.config.reconnect and count > 0 and due and self._try_reconnect(now)):
                return
        self._read_state(now)

    def _press_button(self, button: int, now: float) -> None:
        for name, control in self._controls.items():
            if control.button == button:
                self._queue_press(name, now)

    def _queue_press(self, name: str, now: float) -> None:
        with self._lock:
            self._presses.append((now, name))
            if name == "stop" and self._stop_press_s is None:
                self._stop_press_s = now  # kept apart: a full queue never drops a stop

    def _read_state(self, now: float) -> None:
        joy, cfg = self._joy, self.config
        raw = np.array([float(joy.get_axis(i)) for i in range(joy.get_numaxes())])
        buttons = tuple(int(bool(joy.get_button(i))) for i in range(joy.get_numbuttons()))
        hats = tuple(tuple(int(v) for v in joy.get_hat(i)) for i in range(joy.get_numhats()))
        axes = apply_deadzone(raw, cfg.deadzone)
        for i in self._triggers:
            if i >= raw.size:
                continue
            if raw[i] <= -1.0 + TRIGGER_REST_TOLERANCE:
                self._armed.add(i)
            pull = (raw[i] + 1.0) / 2.0 if i in self._armed else 0.0
            axes[i] = apply_deadzone(np.array([pull]), cfg.deadzone)[0]
        held: set[str] = set()
        for name, control in self._controls.items():
            if control.button is not None:
                down = control.button < len(buttons) and bool(buttons[control.button])
            else:
                down = control.trigger < axes.size and axes[control.trigger] >= cfg.trigger_press
                if down and name not in self._trigger_down:  # a trigger's press: read from its state
                    self._queue_press(name, now)
                (self._trigger_down.add if down else self._trigger_down.discard)(name)
            if down:
                held.add(name)
        sample = GamepadSample(axes=axes, raw_axes=raw, buttons=buttons, hats=hats,  # type: ignore[arg-type]
                               held=frozenset(held), read_s=now)
        with self._lock:
            self._latest = sample

    # ------------------------------------------------------------------ opening and losing it

    def _list(self) -> list[tuple[int, Any]]:
        """(device index, Joystick) for every connected joystick (pygame 2 returns the object
        already open for the pad in use, so nothing is closed by listing)."""
        lib = self._lib
        return [(i, lib.joystick.Joystick(i)) for i in range(int(lib.joystick.get_count()))]

    @staticmethod
    def _describe(index: int, joy: Any) -> str:
        return (f"{index}: {joy.get_name()!r} ({joy.get_numaxes()} axes, {joy.get_numbuttons()} buttons, "
                f"{joy.get_numhats()} hats)")

    def _shortfall(self, joy: Any) -> str | None:
        """What this config reads that `joy` does not have, or None."""
        have = {"axes": joy.get_numaxes(), "buttons": joy.get_numbuttons(), "hats": joy.get_numhats()}
        for kind, (index, where) in self._needs.items():
            if index >= have[kind]:
                one = {"axes": "axis", "buttons": "button", "hats": "hat"}[kind]
                return f"{where} reads {one} {index}, but it has {have[kind]} {kind}"
        return None

    def _open(self) -> None:
        """Open the joystick `config.joystick` selects; InputDeviceError naming the connected ones."""
        selector = self.config.joystick
        try:
            found = self._list()
        except Exception as exc:  # pygame.error: the joystick module failed
            raise InputDeviceError(f"gamepad: listing joysticks failed ({exc!r}). {CHECK_HELP}") from exc
        if not found:
            raise InputDeviceError(
                "gamepad: no joystick is connected (pygame.joystick.get_count() is 0). " + CHECK_HELP
            )
        listing = "; ".join(self._describe(i, j) for i, j in found)
        if isinstance(selector, int):
            candidates = [(i, j) for i, j in found if i == selector]
            what = f"joystick index {selector}"
        elif isinstance(selector, str):
            candidates = [(i, j) for i, j in found if selector.lower() in str(j.get_name()).lower()]
            what = f"a joystick named like {selector!r}"
        else:
            candidates = found
            what = "a joystick"
        if not candidates:
            raise InputDeviceError(
                f"gamepad: {what} is not connected. Connected joysticks: {listing}. Set "
                f"actor.intervention.gamepad.joystick to one of these indices or a part of its name. {CHECK_HELP}"
            )
        shortfalls = []
        for index, joy in candidates:
            short = self._shortfall(joy)
            if short is None:
                self._use(index, joy)
                return
            shortfalls.append(f"{joy.get_name()!r}: {short}")
        raise InputDeviceError(
            f"gamepad: no connected joystick fits actor.intervention.gamepad ({'; '.join(shortfalls)}). "
            f"Connected joysticks: {listing}. Map its axes and buttons (the module docstring of "
            "hilrl.hardware.gamepad has the Xbox layout) or pick another with `joystick`."
        )

    def _use(self, index: int, joy: Any) -> None:
        self._joy = joy
        self._instance_id = int(joy.get_instance_id())
        self._count = int(self._lib.joystick.get_count())
        self._armed = set()
        self._trigger_down = set()
        self.name, self.index = str(joy.get_name()), index
        log.info("gamepad: %s, guid %s", self._describe(index, joy), joy.get_guid())

    def _still_present(self, count: int) -> bool:
        """Whether the pad in use is among the `count` connected joysticks (by instance id)."""
        try:
            return any(int(self._lib.joystick.Joystick(i).get_instance_id()) == self._instance_id for i in range(count))
        except Exception:  # the list changed under us: the next poll looks again
            return True

    def _release_joystick(self) -> None:
        joy, self._joy = self._joy, None
        try:
            if joy is not None:
                joy.quit()
        except Exception as exc:  # a removed pad may refuse to close; nothing to do about it
            log.debug("closing the gamepad failed: %r", exc)

    def _mark_disconnected(self, reason: str, now: float) -> None:
        with self._lock:
            if not self._connected:
                return
            self._connected = False
            self._disconnects += 1
            self._latest = None
        then = "it is opened again once plugged back in" if self.config.reconnect else "not reconnecting (gamepad.reconnect is off)"
        log.warning("gamepad %r disconnected: %s. The intervention ends and the policy acts; %s.", self.name, reason, then)
        self._release_joystick()
        self._instance_id = None
        self._retry_at_s = now + RETRY_S

    def _try_reconnect(self, now: float) -> bool:
        self._retry_at_s = now + RETRY_S
        try:
            self._open()
        except InputDeviceError as exc:
            log.debug("gamepad still unavailable: %s", exc)  # the warning was logged once already
            return False
        with self._lock:
            self._connected = True
        log.info("gamepad reconnected: %s", self.name)
        return True

