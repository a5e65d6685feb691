"""SpaceMouse intervention device: a 3Dconnexion 6-DoF mouse drives the arm when the operator
takes over; its buttons work the gripper and label episodes as succeeded or failed.

Pattern: a *reader thread keeps the newest sample*. `SpaceMouseReader` polls pyspacemouse at
`read_hz`. pyspacemouse processes one HID report per `read()` call, and a deflected SpaceMouse
sends a report every 8-16 ms, so each poll drains every report that arrived since the last one
(until the report timestamp `t` stops changing) and keeps only the newest axes, stamped with the
time it was read. Button changes are different: every one is queued, so a click shorter than a
control period is never lost. The control loop never waits on the device: each step
`SpaceMouseOperator.intervene` (hilrl.actor.operators: the mapping
to an action lives with the actor) takes the newest sample and the queued button changes under a lock.

pyspacemouse API this relies on (1.1.x; 2.x where it differs):
    open(device=NAME, path=PATH) -> a device with read()/close(), or None when nothing was found;
        raises when no supported device is connected (2.x: RuntimeError) or when the hidraw node
        cannot be opened (easyhid: HIDException("Failed to open device"), which is what a missing
        udev permission looks like). 2.x opens a path with open_by_path(PATH).
    device.read() -> state with t (s, time of the last processed report), x, y, z, roll, pitch,
        yaw (normalised to about -1..1) and buttons (0/1 per button). The state object (2.x) and its
        buttons list (1.x) are mutated in place by later reads, so values are copied out at once.
        Raises once the device is unplugged (hidapi's read returns -1).
    list_devices() -> names of the supported devices connected (2.x: get_connected_spacemice(),
        (path, name) pairs).
No callbacks are registered: the drain loop sees every report anyway.

Failures:
    not installed, not found, permission denied -> `InputDeviceError` when the device is built,
        with the udev rule that fixes permissions and the devices that were found.
    unplugged mid-episode (read raises, or the axes stay frozen while deflected for longer than
        `stale_timeout_s`: a deflected SpaceMouse streams reports, so silence means it is gone) ->
        the reader marks itself disconnected and logs ONE warning; the operator lets the policy
        act (the intervention ends) and the actor keeps running; the reader retries opening the
        device with exponential backoff and logs when it is back.

Gestures (buttons). A gesture is a chord (a set of buttons pressed together) that fires when all
its buttons are released (short) or once the chord has been held `long_press_s` (long). Firing on
release is what lets one two-button SpaceMouse do everything: pressing both buttons to label an
episode never also moves the gripper, because the chord that is released is {0, 1}, not {0}.
Defaults (two-button SpaceMouse Compact/Wireless: 0 = left, 1 = right):
    left click: close the gripper; right click: open it;
    both buttons clicked together: success; both held for `long_press_s` (1 s): failure;
    left button held alone for `long_press_s`: operator stop (the arm holds until `hilrl
    clear-errors`; `SpaceMouseConfig.stop`). A held left button then never also closes the gripper.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hilrl.hardware.errors import InputDeviceError

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Axis names as pyspacemouse reports them, in the order of `SpaceMouseSample.axes`.
AXES = ("x", "y", "z", "roll", "pitch", "yaw")
TRANSLATION_AXES = ("x", "y", "z")
ROTATION_AXES = ("roll", "pitch", "yaw")
# A poll drains at most this many reports (a 250 reports/s device at 100 Hz leaves ~3 per poll);
# the cap only bounds a poll if a library ever returned a fresh timestamp on every call.
MAX_REPORTS_PER_POLL = 64
# Button changes kept between two control steps (a person clicks a few times a second).
MAX_BUTTON_EVENTS = 256

UDEV_HELP = (
    "On Linux, give your user access to the SpaceMouse's hidraw node with a udev rule, e.g. in "
    "/etc/udev/rules.d/99-spacemouse.rules:\n"
    '    SUBSYSTEM=="hidraw", ATTRS{idVendor}=="256f", MODE="0666"\n'
    "  and for older 3Dconnexion units sold under Logitech's vendor id 046d (SpaceNavigator, "
    "SpaceMouse Pro, ...):\n"
    '    SUBSYSTEM=="hidraw", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c6??", MODE="0666"\n'
    "then run `sudo udevadm control --reload-rules && sudo udevadm trigger` and re-plug the device. "
    "pyspacemouse also needs the hidapi C library (Debian/Ubuntu: sudo apt-get install libhidapi-dev)."
)


# ---------------------------------------------------------------------------- configuration


@dataclass
class ButtonBinding:
    """A button gesture: a chord of buttons pressed together.

    Attributes:
        buttons: indices into pyspacemouse's `buttons` list (0 = left, 1 = right on two-button
            models), all pressed together.
        long: False: fires when the chord is released before `long_press_s`; True: fires once the
            chord has been held for `long_press_s` (releasing it afterwards fires nothing else).
    """

    buttons: list[int]
    long: bool = False

    def __post_init__(self) -> None:
        buttons = [int(b) for b in self.buttons]
        if not buttons or min(buttons) < 0 or len(set(buttons)) != len(buttons):
            raise ValueError(f"buttons must be distinct button indices >= 0, got {self.buttons}")
        self.buttons = sorted(buttons)


@dataclass
class SpaceMouseConfig:
    """The `actor.intervention.spacemouse:` section.

    Axes: pyspacemouse reports x, y, z, roll, pitch, yaw normalised to about -1..1 (full
    deflection). Each env action axis is driven by one device axis:

        action[i] = translation_scale[i] * dz(device[translation_axes[i]])       i = 0, 1, 2
        action[3 + i] = rotation_scale[i] * dz(device[rotation_axes[i]])          (env with rotation)

    clipped to [-1, 1], where dz() zeroes |v| <= deadzone and rescales the rest so the output grows
    from 0 at the deadzone's edge to 1 at full deflection. The env's action is in the TCP frame, so
    the mapping depends on how the tool is mounted and where the operator stands: check each axis
    once at low speed and swap with `translation_axes` / flip with a negative scale.

    Attributes:
        device: pyspacemouse device name to open (e.g. "SpaceMouse Compact"); None: the first
            supported device found.
        path: hidraw path to open (e.g. "/dev/hidraw3") when several are connected; None: by name.
        read_hz: how often the reader thread polls the device, Hz.
        deadzone: fraction of full scale, on the normalised axes, below which an axis reads 0.
            Any action axis past it is an intervention.
        translation_axes: device axes driving action x, y, z: a permutation of x, y, z.
        rotation_axes: device axes driving action rotation x, y, z (only when the env has rotation
            dims): a permutation of roll, pitch, yaw.
        translation_scale: action per unit of deadzone-corrected deflection, per action axis; the
            sign flips an axis, 0 disables it.
        rotation_scale: the same for the rotation action axes.
        hold_s: the intervention lasts this long (s) after the last motion past the deadzone, button
            press or gripper gesture, holding the arm still, so a pause to regrip the cap does not
            hand control back to the policy.
        long_press_s: how long a chord is held for a `long` gesture, s.
        close_gripper / open_gripper: gestures that close / open the gripper (the gripper action
            is +1 / -1 on the next step, then 0 = keep); None disables.
        toggle_gripper: a gesture that opens a closed gripper and closes an open one (by the
            measured opening), for one-button use; None disables.
        success / failure: gestures that end the episode with a human label (success: reward as
            for task success; failure: reward 0).
        stop: the operator-stop gesture (`hilrl.actor.interventions.InterventionWrapper`): the
            robot server holds the arm and latches "operator_stop" (motion is refused until `hilrl
            clear-errors --config FILE`), the episode ends and the actor exits with an error; None
            disables. Default: the left button held alone for `long_press_s`, the one chord the
            other defaults leave free besides the right button held. Left rather than right: the
            one-button set-up for `hilrl record-labels` below keeps button 1 free as the success
            hold button, and a config that moves `failure` to the right button held keeps
            working. A click (the gripper) or both buttons (labels) never trigger it, and holding
            the left button a second is quick to do without looking; a press held through a reset
            still counts once it has lasted `long_press_s`. It is no emergency stop: keep the
            robot's own stop button within reach.
        success_hold_button: `hilrl record-labels` only: a button index that, while held, marks
            the recorded frames as showing success (`hilrl.actor.operators.SpaceMouseOperator.success_held`); None
            disables. It must not be part of any enabled gesture (its release would fire that
            gesture): on a two-button SpaceMouse free one, e.g. toggle_gripper: {buttons: [0]},
            close_gripper/open_gripper/success/failure: null, success_hold_button: 1.
        stale_timeout_s: the device counts as gone when its axes stay deflected past the deadzone
            with no new report for this long, s (it streams while deflected); 0 disables.
        reconnect: keep trying to reopen a device that disappeared.
        reconnect_initial_s / reconnect_max_s: first wait between attempts and the cap it doubles
            up to, s.
    """

    device: str | None = None
    path: str | None = None
    read_hz: float = 100.0
    deadzone: float = 0.1
    translation_axes: list[str] = field(default_factory=lambda: list(TRANSLATION_AXES))
    rotation_axes: list[str] = field(default_factory=lambda: list(ROTATION_AXES))
    translation_scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    rotation_scale: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    hold_s: float = 0.5
    long_press_s: float = 1.0
    close_gripper: ButtonBinding | None = field(default_factory=lambda: ButtonBinding([0]))
    open_gripper: ButtonBinding | None = field(default_factory=lambda: ButtonBinding([1]))
    toggle_gripper: ButtonBinding | None = None
    success: ButtonBinding | None = field(default_factory=lambda: ButtonBinding([0, 1]))
    failure: ButtonBinding | None = field(default_factory=lambda: ButtonBinding([0, 1], long=True))
    stop: ButtonBinding | None = field(default_factory=lambda: ButtonBinding([0], long=True))
    success_hold_button: int | None = None
    stale_timeout_s: float = 0.5
    reconnect: bool = True
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.read_hz <= 1000:
            raise ValueError(f"read_hz must be in (0, 1000] Hz, got {self.read_hz}")
        if not 0 <= self.deadzone < 1:
            raise ValueError(f"deadzone must be in [0, 1) (fraction of full scale), got {self.deadzone}")
        for name, allowed in (("translation_axes", TRANSLATION_AXES), ("rotation_axes", ROTATION_AXES)):
            axes = list(getattr(self, name))
            if sorted(axes) != sorted(allowed):
                raise ValueError(f"{name} must be a permutation of {list(allowed)}, got {axes}")
            setattr(self, name, axes)
        for name in ("translation_scale", "rotation_scale"):
            scale = [float(v) for v in getattr(self, name)]
            if len(scale) != 3 or not all(math.isfinite(v) and abs(v) <= 10 for v in scale):
                raise ValueError(f"{name} must be 3 finite numbers in [-10, 10], got {getattr(self, name)}")
            setattr(self, name, scale)
        for name in ("hold_s", "stale_timeout_s"):
            if not 0 <= getattr(self, name) <= 60:
                raise ValueError(f"{name} must be in [0, 60] s, got {getattr(self, name)}")
        if not 0 < self.long_press_s <= 10:
            raise ValueError(f"long_press_s must be in (0, 10] s, got {self.long_press_s}")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError(
                f"reconnect_initial_s must be > 0 and <= reconnect_max_s, got {self.reconnect_initial_s} "
                f"and {self.reconnect_max_s}"
            )
        seen: dict[tuple[tuple[int, ...], bool], str] = {}
        for name, binding in self.gestures.items():
            key = (tuple(binding.buttons), binding.long)
            if key in seen:
                raise ValueError(f"{name} uses the same gesture as {seen[key]}: buttons {binding.buttons}, long={binding.long}")
            seen[key] = name
            if self.success_hold_button is not None and self.success_hold_button in binding.buttons:
                raise ValueError(
                    f"success_hold_button {self.success_hold_button} is also in the {name} gesture "
                    f"(buttons {binding.buttons}); set {name}: null or hold another button"
                )
        if self.success_hold_button is not None and self.success_hold_button < 0:
            raise ValueError(f"success_hold_button must be a button index >= 0, got {self.success_hold_button}")

    @property
    def gestures(self) -> dict[str, ButtonBinding]:
        """The enabled gestures by name (close_gripper, open_gripper, toggle_gripper, success, failure, stop)."""
        names = ("close_gripper", "open_gripper", "toggle_gripper", "success", "failure", "stop")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


# ---------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class SpaceMouseSample:
    """The newest device state.

    Attributes:
        axes: (6,) x, y, z, roll, pitch, yaw as pyspacemouse reports them (about -1..1).
        buttons: 0/1 per button.
        read_s: when the reader read it, on the reader's clock, s.
        device_t: pyspacemouse's timestamp of the last report, s (its own clock).
    """

    axes: np.ndarray
    buttons: tuple[int, ...]
    read_s: float
    device_t: float


def import_pyspacemouse() -> Any:
    """The pyspacemouse module, or an `InputDeviceError` saying how to install it."""
    try:
        return importlib.import_module("pyspacemouse")
    except (ImportError, OSError, AttributeError) as exc:  # OSError/AttributeError: hidapi's C library is missing
        raise InputDeviceError(
            f"the SpaceMouse needs pyspacemouse and hidapi, which could not be imported ({exc!r}): "
            "pip install 'hilrl[real]' (or pip install pyspacemouse) and, on Debian/Ubuntu, "
            "sudo apt-get install libhidapi-dev"
        ) from exc


def list_spacemice(lib: Any) -> list[str]:
    """Supported devices pyspacemouse can see (names; 'name at path' with 2.x); never raises."""
    try:
        if hasattr(lib, "list_devices"):
            return [str(name) for name in lib.list_devices()]
        if hasattr(lib, "get_connected_spacemice"):
            return [f"{name} at {path}" for path, name in lib.get_connected_spacemice()]
    except Exception as exc:  # enumeration problems belong in the message, not a second traceback
        return [f"(listing devices failed: {exc!r})"]
    return []


def _looks_like_not_found(exc: BaseException) -> bool:
    """Whether an open() failure means "no such device" (else: found, but cannot be opened)."""
    text = str(exc).lower()
    # KeyError: 1.x looks an unknown device name up in its table of supported devices.
    return isinstance(exc, (FileNotFoundError, KeyError)) or any(
        s in text for s in ("no device", "not found", "no connected", "no hid", "unknown device")
    )


class SpaceMouseReader:
    """Background reader keeping the newest SpaceMouse sample (see the module docstring).

    Args:
        config: device, rates, staleness and reconnect settings.
        backend: the pyspacemouse module (tests pass a fake); None imports pyspacemouse.
        clock: monotonic clock in seconds, for sample times, staleness and reconnect backoff.
        start_thread: poll in a background thread at `config.read_hz`; False: the caller calls
            `poll()` (deterministic tests).
    Raises:
        InputDeviceError: pyspacemouse missing, no device found, or the device cannot be opened.
    """

    def __init__(
        self,
        config: SpaceMouseConfig,
        backend: Any = None,
        clock: Clock = time.monotonic,
        start_thread: bool = True,
    ):
        self.config = config
        self._lib = backend if backend is not None else import_pyspacemouse()
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._latest: SpaceMouseSample | None = None
        self._events: deque[tuple[float, tuple[int, ...]]] = deque(maxlen=MAX_BUTTON_EVENTS)
        self._last_buttons: tuple[int, ...] | None = None
        self._last_device_t: float | None = None
        self._connected = False
        self._disconnects = 0
        self._backoff_s = config.reconnect_initial_s
        self._retry_at_s = 0.0
        self._handle = self._open()
        self._connected = True
        self._last_report_s = clock()
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ what the operator reads

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def disconnects(self) -> int:
        """How many times the device was lost (lets a reader of events notice a gap)."""
        with self._lock:
            return self._disconnects

    def latest(self) -> SpaceMouseSample | None:
        """The newest sample, or None while disconnected or before the first read."""
        with self._lock:
            return self._latest

    def take_button_events(self) -> list[tuple[float, tuple[int, ...]]]:
        """Every button change since the last call, oldest first: (read time s, buttons)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    # ------------------------------------------------------------------ reading

    def poll(self) -> None:
        """One read cycle: drain pending reports (or, while disconnected, maybe try to reopen).
        The reader thread calls it at `read_hz`; without the thread, the caller does."""
        now = self._clock()
        if not self.connected:
            if self.config.reconnect and now >= self._retry_at_s:
                self._try_reconnect(now)
            return
        try:
            sample = self._drain(now)
        except Exception as exc:  # hidapi raises once the device is unplugged
            self._mark_disconnected(f"reading it failed ({exc!r})", now)
            return
        stale = self.config.stale_timeout_s
        if stale > 0 and now - self._last_report_s > stale and np.abs(sample.axes).max() > self.config.deadzone:
            self._mark_disconnected(f"no report for {now - self._last_report_s:.2f} s while its cap was deflected", now)
            return
        with self._lock:
            self._latest = sample

    def _read_state(self) -> Any:
        state = self._handle.read() if hasattr(self._handle, "read") else self._lib.read()
        if state is None:  # 1.x returns None once its device is closed
            raise InputDeviceError("read() returned no state")
        return state

    def _drain(self, now: float) -> SpaceMouseSample:
        for _ in range(MAX_REPORTS_PER_POLL):
            state = self._read_state()
            # Copy now: later reads mutate the state (2.x) and its buttons list (1.x) in place.
            device_t = float(state.t)
            axes = np.array([float(getattr(state, a)) for a in AXES])
            buttons = tuple(int(bool(b)) for b in getattr(state, "buttons", ()))
            if buttons != self._last_buttons:
                with self._lock:
                    self._events.append((now, buttons))
                self._last_buttons = buttons
            fresh = device_t != self._last_device_t
            self._last_device_t = device_t
            if not fresh:
                break
            self._last_report_s = now
        return SpaceMouseSample(axes=axes, buttons=buttons, read_s=now, device_t=device_t)

    def _run(self) -> None:
        period = 1.0 / self.config.read_hz
        next_s = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # a bug here must not kill input silently, nor spam the log
                if self.connected:
                    self._mark_disconnected(f"the reader failed ({exc!r})", self._clock())
            next_s += period
            delay = next_s - time.monotonic()
            if delay < 0:  # late (a stalled machine): restart the schedule rather than burst
                next_s, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    # ------------------------------------------------------------------ opening and losing it

    def _open(self) -> Any:
        lib, cfg = self._lib, self.config
        found = list_spacemice(lib)
        what = cfg.path or cfg.device or "the first SpaceMouse"
        try:
            if cfg.path is not None and hasattr(lib, "open_by_path"):  # 2.x
                handle = lib.open_by_path(cfg.path)
            else:
                kwargs: dict[str, Any] = {}
                if cfg.device is not None:
                    kwargs["device"] = cfg.device
                if cfg.path is not None:
                    kwargs["path"] = cfg.path
                handle = lib.open(**kwargs)
        except Exception as exc:
            if _looks_like_not_found(exc) and not isinstance(exc, PermissionError):
                raise InputDeviceError(self._not_found_message(what, found, exc)) from exc
            raise InputDeviceError(
                f"SpaceMouse: {what} was found but cannot be opened ({exc}); this is almost always a "
                f"permission problem on its /dev/hidraw* node. Supported devices found: {found or 'none'}. "
                f"{UDEV_HELP}"
            ) from exc
        if handle is None:  # 1.x: nothing matching was found
            raise InputDeviceError(self._not_found_message(what, found, None))
        return handle

    @staticmethod
    def _not_found_message(what: str, found: list[str], exc: BaseException | None) -> str:
        why = f" ({exc})" if exc is not None else ""
        return (
            f"SpaceMouse: {what} not found{why}. Supported devices found: {found or 'none'}. "
            "Check the cable or wireless receiver (lsusb lists 3Dconnexion devices under vendor "
            "256f, older ones under 046d), set actor.intervention.spacemouse.device/path to one "
            f"that is listed, and if it is plugged in but not listed, check permissions. {UDEV_HELP}"
        )

    def _mark_disconnected(self, reason: str, now: float) -> None:
        with self._lock:
            if not self._connected:
                return
            self._connected = False
            self._disconnects += 1
            self._latest = None
            self._events.clear()
        self._last_buttons = None
        self._last_device_t = None
        self._backoff_s = self.config.reconnect_initial_s
        self._retry_at_s = now + self._backoff_s
        then = (
            f"retrying every {self.config.reconnect_initial_s:g}-{self.config.reconnect_max_s:g} s"
            if self.config.reconnect
            else "not reconnecting (spacemouse.reconnect is off)"
        )
        log.warning("SpaceMouse disconnected: %s. The intervention ends and the policy acts; %s.", reason, then)
        self._close_handle()

    def _try_reconnect(self, now: float) -> None:
        try:
            handle = self._open()
        except InputDeviceError as exc:
            self._retry_at_s = now + self._backoff_s
            self._backoff_s = min(2 * self._backoff_s, self.config.reconnect_max_s)
            log.debug("SpaceMouse still unavailable: %s", exc)  # the warning was logged once already
            return
        self._handle = handle
        self._last_report_s = now
        log.info("SpaceMouse reconnected")  # before the flag: whoever sees it connected can see why
        with self._lock:
            self._connected = True

    def _close_handle(self) -> None:
        handle, self._handle = self._handle, None
        try:
            if handle is not None and hasattr(handle, "close"):
                handle.close()
        except Exception as exc:  # an unplugged device may refuse to close; nothing to do about it
            log.debug("closing the SpaceMouse failed: %r", exc)

    def close(self) -> None:
        """Stop the thread and close the device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            self._connected = False
        self._close_handle()


# ---------------------------------------------------------------------------- gestures


class ButtonGestures:
    """Recognises chord gestures (see the module docstring) from button changes.

    A press session starts when the first button goes down and ends when all are up; its chord is
    every button pressed during it. On release the short gesture with exactly that chord fires;
    while exactly the chord is held, the long gesture with it fires once `long_press_s` has passed.
    At most one gesture fires per session.
    """

    def __init__(self, gestures: dict[str, ButtonBinding], long_press_s: float):
        self._short = {frozenset(b.buttons): n for n, b in gestures.items() if not b.long}
        self._long = {frozenset(b.buttons): n for n, b in gestures.items() if b.long}
        self._long_press_s = long_press_s
        self.clear()

    def clear(self) -> None:
        """Forget any press in progress (the device was lost: a release it never saw fires nothing)."""
        self._pressed: frozenset[int] = frozenset()
        self._chord: frozenset[int] = frozenset()
        self._start_s = 0.0
        self._done = False

    def update(self, buttons: tuple[int, ...], t: float) -> list[str]:
        """Feed one button change at time `t` (s); returns the gestures it completes."""
        fired = self.tick(t)  # a long press that matured before this change
        pressed = frozenset(i for i, b in enumerate(buttons) if b)
        if pressed and not self._pressed:
            self._chord, self._start_s, self._done = frozenset(), t, False
        self._chord |= pressed
        if not pressed and self._pressed and not self._done:
            name = self._short.get(self._chord)
            if name is not None:
                fired.append(name)
        self._pressed = pressed
        return fired

    def tick(self, now: float) -> list[str]:
        """Long gestures that have matured by `now` (s)."""
        if self._pressed and not self._done and self._pressed == self._chord and now - self._start_s >= self._long_press_s:
            name = self._long.get(self._chord)
            if name is not None:
                self._done = True
                return [name]
        return []


# ---------------------------------------------------------------------------- operator


def apply_deadzone(values: np.ndarray, deadzone: float) -> np.ndarray:
    """Zero |v| <= deadzone; rescale the rest so it grows from 0 at the edge to 1 at full scale."""
    v = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
    return np.where(np.abs(v) > deadzone, np.sign(v) * (np.abs(v) - deadzone) / (1.0 - deadzone), 0.0)


