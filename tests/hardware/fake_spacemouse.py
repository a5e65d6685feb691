"""A fake `pyspacemouse` module, standing in at the library's API boundary.

Tests put `FakeSpaceMouse(...).module` in `sys.modules["pyspacemouse"]`, so the driver code above
it (hardware/spacemouse.py) is exactly what runs on a robot. It behaves like pyspacemouse 1.1.x over
a 3Dconnexion device, as far as the driver can tell:

    open(callback=None, dof_callback=None, dof_callback_arr=None, button_callback=None,
         button_callback_arr=None, set_nonblocking_loop=True, device=None, path=None,
         DeviceNumber=0) -> device, or None when the named device/path is not there; raises
         Exception("No device connected/supported!") when nothing is connected and
         HIDException("Failed to open device") when the hidraw node is not readable (permissions).
    read() / device.read(): processes at most ONE pending HID report per call (like a nonblocking
        hid_read) and returns the state namedtuple (t, x, y, z, roll, pitch, yaw, buttons); `t` is
        the time of the last processed report and `buttons` is one list mutated in place by later
        reports, as in pyspacemouse. While the cap is deflected the device streams a repeat report
        every `report_period_s`, like a real SpaceMouse; at rest it sends nothing.
        Raises HIDException once unplugged (hidapi's read returns -1).
    list_devices() -> names of the connected supported devices.
    close().

Test controls: move(), press(), release(), click(), unplug(), plug(), freeze() (plugged but
silent), permission_denied. Time comes from an injectable clock (`FakeClock`).
"""

from __future__ import annotations

import math
import threading
import types
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

AXES = ("x", "y", "z", "roll", "pitch", "yaw")


class SpaceNavigator(NamedTuple):
    """pyspacemouse 1.x's state tuple."""

    t: float
    x: float
    y: float
    z: float
    roll: float
    pitch: float
    yaw: float
    buttons: list[int]


class HIDException(Exception):
    """easyhid's exception type."""


class FakeClock:
    """A monotonic clock the test advances by hand, s."""

    def __init__(self, start: float = 100.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


class _Handle:
    """The device object pyspacemouse.open() returns."""

    def __init__(self, fake: FakeSpaceMouse):
        self._fake = fake
        self.closed = False

    def read(self) -> SpaceNavigator | None:
        if self.closed:
            return None  # 1.x: read() on a closed device
        return self._fake._read()

    def close(self) -> None:
        self.closed = True


class FakeSpaceMouse:
    """One emulated SpaceMouse plus the `pyspacemouse` module that reaches it.

    Args:
        clock: time source for report timestamps and streaming, s.
        name: the device name pyspacemouse would report.
        path: its hidraw path.
        buttons: number of buttons.
        report_period_s: repeat-report period while the cap is deflected, s.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        name: str = "SpaceMouse Compact",
        path: str = "/dev/hidraw7",
        buttons: int = 2,
        report_period_s: float = 0.008,
    ):
        self.clock = clock
        self.name = name
        self.path = path
        self.report_period_s = report_period_s
        self.plugged = True
        self.permission_denied = False
        self.frozen = False
        self.open_calls: list[dict[str, Any]] = []
        self.reads = 0
        self._lock = threading.Lock()
        self._axes = dict.fromkeys(AXES, 0.0)
        self._buttons = [0] * buttons  # mutated in place, like pyspacemouse's ButtonState
        self._t = -1.0
        self._last_report_s = -math.inf
        self._pending: deque[tuple[str, Any]] = deque()
        self._handle: _Handle | None = None
        self._callbacks: dict[str, Any] = {}
        self.module = self._make_module()

    # ------------------------------------------------------------------ what the test does

    def move(self, **axes: float) -> None:
        """Queue one motion report setting these axes (others keep their value)."""
        unknown = set(axes) - set(AXES)
        assert not unknown, f"unknown axes {unknown}"
        with self._lock:
            self._pending.append(("axes", dict(axes)))

    def rest(self) -> None:
        """Queue the report of the cap let go (all axes 0)."""
        self.move(**dict.fromkeys(AXES, 0.0))

    def press(self, *buttons: int) -> None:
        """Queue one button report with these buttons down (in addition to those already down)."""
        with self._lock:
            self._pending.append(("press", buttons))

    def release(self, *buttons: int) -> None:
        """Queue one button report with these buttons up (all when none given)."""
        with self._lock:
            self._pending.append(("release", buttons))

    def click(self, *buttons: int) -> None:
        """Press these buttons together, then release them (two reports)."""
        self.press(*buttons)
        self.release(*buttons)

    def unplug(self) -> None:
        with self._lock:
            self.plugged = False

    def plug(self) -> None:
        """Plug it back in: a fresh device at rest, nothing pending."""
        with self._lock:
            self.plugged = True
            self.frozen = False
            self._axes = dict.fromkeys(AXES, 0.0)
            self._buttons = [0] * len(self._buttons)
            self._pending.clear()
            self._t = -1.0

    def freeze(self) -> None:
        """The device stops reporting, but reads do not fail (the last state is returned)."""
        with self._lock:
            self.frozen = True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # ------------------------------------------------------------------ the device side

    def _state(self) -> SpaceNavigator:
        return SpaceNavigator(self._t, *(self._axes[a] for a in AXES), self._buttons)

    def _read(self) -> SpaceNavigator:
        with self._lock:
            self.reads += 1
            if not self.plugged:
                raise HIDException("Failed to read from HID device: -1")
            now = self.clock()
            kind: str | None = None
            if self._pending and not self.frozen:
                kind, value = self._pending.popleft()
                if kind == "axes":
                    self._axes.update(value)
                elif kind == "press":
                    for b in value:
                        self._buttons[b] = 1
                else:
                    for b in value or range(len(self._buttons)):
                        self._buttons[b] = 0
            elif (
                not self.frozen
                and any(v != 0 for v in self._axes.values())
                and now - self._last_report_s >= self.report_period_s
            ):
                kind = "axes"  # a deflected SpaceMouse keeps reporting
            if kind is None:
                return self._state()
            # pyspacemouse stamps reports with a high-resolution timer, so two are never equal;
            # the test clock may stand still between reads.
            self._t = max(now, self._t + 1e-6)
            self._last_report_s = now
            state = self._state()
            callbacks = dict(self._callbacks)
        if kind == "axes" and callbacks.get("dof_callback"):
            callbacks["dof_callback"](state)
        if kind in ("press", "release") and callbacks.get("button_callback"):
            callbacks["button_callback"](state, state.buttons)
        return state

    # ------------------------------------------------------------------ the module

    def _make_module(self) -> types.ModuleType:
        fake = self
        module = types.ModuleType("pyspacemouse")
        module.__version__ = "1.1.4"  # type: ignore[attr-defined]

        def list_devices() -> list[str]:
            return [fake.name] if fake.plugged else []

        def open(  # noqa: A001 - pyspacemouse's name
            callback=None,
            dof_callback=None,
            dof_callback_arr=None,
            button_callback=None,
            button_callback_arr=None,
            set_nonblocking_loop=True,
            device=None,
            path=None,
            DeviceNumber=0,  # noqa: N803 - pyspacemouse's name
        ):
            fake.open_calls.append({"device": device, "path": path})
            if device is None:
                if not list_devices():
                    raise Exception("No device connected/supported!")
                device = fake.name
            if not fake.plugged or device != fake.name or (path is not None and path != fake.path):
                return None  # 1.x prints "No supported devices found" and returns None
            if fake.permission_denied:
                raise HIDException("Failed to open device")
            fake._callbacks = {"dof_callback": dof_callback, "button_callback": button_callback}
            fake._handle = _Handle(fake)
            return fake._handle

        def read():
            return fake._handle.read() if fake._handle is not None else None

        def close():
            if fake._handle is not None:
                fake._handle.close()

        module.list_devices = list_devices  # type: ignore[attr-defined]
        module.open = open  # type: ignore[attr-defined]
        module.read = read  # type: ignore[attr-defined]
        module.close = close  # type: ignore[attr-defined]
        module.HIDException = HIDException  # type: ignore[attr-defined]
        return module
