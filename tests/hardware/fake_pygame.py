"""A fake `pygame` module, standing in at the library's API boundary for the gamepad driver.

Tests pass `FakePygame().module` as the reader's backend (or put it in `sys.modules["pygame"]`), so
the driver code above it (hardware/gamepad.py) is exactly what runs with a real pad. It behaves like
pygame 2.x over SDL2, as far as the driver can tell (pygame.org/docs/ref/joystick.html, event.html):

    display.init() / get_init() / quit(); joystick.init() / get_init() / quit(): joystick calls
        raise pygame.error("joystick system not initialized") before joystick.init(), and
        event.get() / pump() raise pygame.error("video system not initialized") before
        display.init(), as pygame's do. joystick.init() queues JOYDEVICEADDED for each pad present.
    joystick.get_count(); joystick.Joystick(i) for 0 <= i < get_count() (else pygame.error
        "Invalid joystick device number"); the same object again for a pad already open (pygame 2).
        Device indices follow the plugged pads in order, so they shift when one is unplugged;
        instance ids only grow (a re-plugged pad gets a new one).
    Joystick: get_name, get_guid, get_instance_id, get_numaxes/get_axis, get_numbuttons/get_button,
        get_numhats/get_hat, quit, get_init. An index out of range raises pygame.error; after quit()
        (or joystick.quit()) every call raises pygame.error("Joystick not initialized"). A removed
        pad's object keeps answering with its last state, as SDL's does.
    event.get() / pump(): what the test did to a pad since the last pump happens now, in order:
        the pad's state changes, and, for a pad that is open, JOYAXISMOTION / JOYBUTTONDOWN /
        JOYBUTTONUP / JOYHATMOTION events carry its instance_id. Plugging and unplugging also take
        effect at a pump (get_count() changes then, as SDL detects hotplugs while pumping) and
        queue JOYDEVICEADDED (device_index) / JOYDEVICEREMOVED (instance_id). Events of other
        kinds (window, audio) are queued too, so a reader must ignore what it does not know.

Test controls on a `FakePad`: set_axis(), press(), release(), click() (press and release between
two pumps), set_hat(), unplug(), plug() (FakePygame.plug(pad) re-plugs it); `on_pump` runs a
callback at each pump (a scripted operator for tests that use the reader's thread).
"""

from __future__ import annotations

import os
import threading
import types
from collections import deque
from collections.abc import Callable
from typing import Any

# pygame 2's event type numbers (SDL2's).
JOYAXISMOTION = 0x600
JOYBALLMOTION = 0x601
JOYHATMOTION = 0x602
JOYBUTTONDOWN = 0x603
JOYBUTTONUP = 0x604
JOYDEVICEADDED = 0x605
JOYDEVICEREMOVED = 0x606
WINDOWEVENT = 0x200  # an event the driver has no use for

XBOX_NAME = "Xbox 360 Controller"
XBOX_GUID = "030000005e0400008e02000014010000"


class PygameError(RuntimeError):
    """pygame.error."""


class Event:
    """pygame.event.Event: a type and attributes."""

    def __init__(self, type: int, **attrs: Any):  # noqa: A002 - pygame's name
        self.type = type
        self.__dict__.update(attrs)

    def __repr__(self) -> str:
        return f"<Event({self.type:#x} {self.__dict__})>"


class FakePad:
    """One emulated game controller: its physical state as the test sets it.

    Args:
        fake: the FakePygame it is plugged into.
        name, guid: what pygame reports.
        axes, buttons, hats: how many.
        trigger_axes: axes resting at -1 (analog triggers under SDL).
        triggers_unread: the triggers read 0 until first moved (SDL before its first poll of them).
    """

    def __init__(self, fake: FakePygame, name: str, guid: str, axes: int, buttons: int, hats: int,
                 trigger_axes: tuple[int, ...], triggers_unread: bool):
        self.fake = fake
        self.name = name
        self.guid = guid
        # At rest: sticks centred, triggers released (-1), unless SDL has not read them yet (0).
        self.rest_axes = [-1.0 if i in trigger_axes and not triggers_unread else 0.0 for i in range(axes)]
        self.axes = list(self.rest_axes)
        self.buttons = [0] * buttons
        self.hats = [(0, 0)] * hats
        self.plugged = False
        self.instance_id = -1
        self.on_pump: Callable[[FakePad], None] | None = None
        self._pending: deque[tuple[str, Any]] = deque()  # physical changes the next pump applies

    # ------------------------------------------------------------------ what the test does

    def set_axis(self, axis: int, value: float) -> None:
        assert 0 <= axis < len(self.axes) and -1.0 <= value <= 1.0
        self._queue("axis", (axis, float(value)))

    def set_axes(self, **values: float) -> None:
        """set_axes(a0=0.5, a4=-1.0): several axes."""
        for key, value in values.items():
            self.set_axis(int(key.lstrip("a")), value)

    def press(self, *buttons: int) -> None:
        for b in buttons:
            assert 0 <= b < len(self.buttons)
            self._queue("button", (b, 1))

    def release(self, *buttons: int) -> None:
        for b in buttons or range(len(self.buttons)):
            self._queue("button", (b, 0))

    def click(self, *buttons: int) -> None:
        """Press and release, both before the next pump (a press shorter than a poll)."""
        self.press(*buttons)
        self.release(*buttons)

    def set_hat(self, hat: int, value: tuple[int, int]) -> None:
        assert 0 <= hat < len(self.hats) and all(v in (-1, 0, 1) for v in value)
        self._queue("hat", (hat, tuple(value)))

    def unplug(self) -> None:
        """Pulled out: the next pump removes it."""
        self.fake._hotplug("remove", self)

    def plug(self) -> None:
        """Plugged back in (at rest): the next pump adds it, with a new instance id."""
        self.fake._hotplug("add", self)

    # ------------------------------------------------------------------ the device side

    def _queue(self, kind: str, value: Any) -> None:
        with self.fake._lock:
            self._pending.append((kind, value))

    def _apply(self, opened: bool) -> list[Event]:
        """Apply the pending changes (at a pump); the events an open pad sends for them."""
        events: list[Event] = []
        while self._pending:
            kind, value = self._pending.popleft()
            if kind == "axis":
                i, v = value
                self.axes[i] = v
                events.append(Event(JOYAXISMOTION, instance_id=self.instance_id, joy=0, axis=i, value=v))
            elif kind == "button":
                b, v = value
                if self.buttons[b] != v:
                    self.buttons[b] = v
                    events.append(Event(JOYBUTTONDOWN if v else JOYBUTTONUP, instance_id=self.instance_id, joy=0, button=b))
            else:
                h, v = value
                self.hats[h] = v
                events.append(Event(JOYHATMOTION, instance_id=self.instance_id, joy=0, hat=h, value=v))
        return events if opened else []  # "Joysticks will not send any events until initialized"


class _Joystick:
    """pygame.joystick.Joystick over one FakePad."""

    def __init__(self, fake: FakePygame, pad: FakePad):
        self._fake = fake
        self._pad = pad
        self._instance_id = pad.instance_id
        self._open = True
        # SDL keeps the last state of a removed pad: a snapshot taken at removal.
        self._frozen: tuple[list[float], list[int], list[tuple[int, int]]] | None = None

    def _check(self) -> None:
        if not self._open or not self._fake.joystick_inited:
            raise PygameError("Joystick not initialized")

    def _state(self) -> tuple[list[float], list[int], list[tuple[int, int]]]:
        if self._frozen is not None:
            return self._frozen
        return self._pad.axes, self._pad.buttons, self._pad.hats

    def _freeze(self) -> None:
        axes, buttons, hats = self._pad.axes, self._pad.buttons, self._pad.hats
        self._frozen = (list(axes), list(buttons), list(hats))

    def init(self) -> None:
        self._open = True

    def quit(self) -> None:
        self._open = False
        self._fake._forget(self)

    def get_init(self) -> bool:
        return self._open

    def get_name(self) -> str:
        return self._pad.name

    def get_guid(self) -> str:
        self._check()
        return self._pad.guid

    def get_instance_id(self) -> int:
        self._check()
        return self._instance_id

    def get_numaxes(self) -> int:
        self._check()
        return len(self._state()[0])

    def get_numbuttons(self) -> int:
        self._check()
        return len(self._state()[1])

    def get_numhats(self) -> int:
        self._check()
        return len(self._state()[2])

    def get_numballs(self) -> int:
        self._check()
        return 0

    def get_axis(self, i: int) -> float:
        self._check()
        axes = self._state()[0]
        if not 0 <= i < len(axes):
            raise PygameError("Invalid joystick axis")
        self._fake.axis_reads += 1
        return axes[i]

    def get_button(self, i: int) -> bool:
        self._check()
        buttons = self._state()[1]
        if not 0 <= i < len(buttons):
            raise PygameError("Invalid joystick button")
        return bool(buttons[i])

    def get_hat(self, i: int) -> tuple[int, int]:
        self._check()
        hats = self._state()[2]
        if not 0 <= i < len(hats):
            raise PygameError("Invalid joystick hat")
        return hats[i]


class FakePygame:
    """Emulated pygame 2 with any number of pads plugged in (`plug_pad`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.display_inited = False
        self.joystick_inited = False
        self.video_driver_at_init: str | None = None  # SDL_VIDEODRIVER when display.init() ran
        self.background_events_at_init: str | None = None
        self.axis_reads = 0
        self.pumps = 0
        self.pump_threads: set[str] = set()  # names of the threads that pumped the queue
        self.display_init_thread: str | None = None
        self._plugged: list[FakePad] = []  # in device-index order
        self._hotplugs: deque[tuple[str, FakePad]] = deque()
        self._queue: deque[Event] = deque()
        self._open: dict[int, _Joystick] = {}  # id(pad) -> the open Joystick object
        self._next_instance_id = 0
        self.module = self._make_module()

    # ------------------------------------------------------------------ what the test does

    def plug_pad(self, name: str = XBOX_NAME, guid: str = XBOX_GUID, axes: int = 6, buttons: int = 11,
                 hats: int = 1, trigger_axes: tuple[int, ...] = (2, 5), triggers_unread: bool = False,
                 now: bool = True) -> FakePad:
        """A pad plugged in (an Xbox 360 pad by default: 6 axes, 11 buttons, 1 hat). `now`: present
        from the start (as if plugged before the program ran); False: at the next pump."""
        pad = FakePad(self, name, guid, axes, buttons, hats, trigger_axes, triggers_unread)
        if now:
            with self._lock:
                self._add(pad, post=self.joystick_inited)
        else:
            self._hotplug("add", pad)
        return pad

    def post(self, event: Event) -> None:
        """Queue an unrelated event (a window event, say)."""
        with self._lock:
            self._queue.append(event)

    @property
    def plugged(self) -> list[FakePad]:
        with self._lock:
            return list(self._plugged)

    # ------------------------------------------------------------------ SDL's side

    def _hotplug(self, kind: str, pad: FakePad) -> None:
        with self._lock:
            self._hotplugs.append((kind, pad))

    def _add(self, pad: FakePad, post: bool) -> None:
        pad.plugged = True
        pad.instance_id = self._next_instance_id
        self._next_instance_id += 1
        pad._pending.clear()  # plugged in at rest
        pad.axes = list(pad.rest_axes)
        pad.buttons = [0] * len(pad.buttons)
        pad.hats = [(0, 0)] * len(pad.hats)
        self._plugged.append(pad)
        if post:
            self._queue.append(Event(JOYDEVICEADDED, device_index=len(self._plugged) - 1))

    def _remove(self, pad: FakePad) -> None:
        if pad not in self._plugged:
            return
        self._plugged.remove(pad)
        pad.plugged = False
        joy = self._open.pop(id(pad), None)
        if joy is not None:
            joy._freeze()
        self._queue.append(Event(JOYDEVICEREMOVED, instance_id=pad.instance_id))

    def _forget(self, joy: _Joystick) -> None:
        with self._lock:
            if self._open.get(id(joy._pad)) is joy:
                del self._open[id(joy._pad)]

    def _pump(self) -> None:
        if not self.display_inited:
            raise PygameError("video system not initialized")
        with self._lock:
            self.pumps += 1
            self.pump_threads.add(threading.current_thread().name)
            for pad in list(self._plugged):
                if pad.on_pump is not None:
                    pad.on_pump(pad)
            for pad in self._plugged:
                self._queue.extend(pad._apply(opened=id(pad) in self._open))
            while self._hotplugs:
                kind, pad = self._hotplugs.popleft()
                if kind == "remove":
                    self._remove(pad)
                elif not pad.plugged:
                    self._add(pad, post=self.joystick_inited)

    def _make_module(self) -> types.ModuleType:
        fake = self
        pygame = types.ModuleType("pygame")
        pygame.error = PygameError  # type: ignore[attr-defined]
        for name, value in {
            "JOYAXISMOTION": JOYAXISMOTION, "JOYBALLMOTION": JOYBALLMOTION, "JOYHATMOTION": JOYHATMOTION,
            "JOYBUTTONDOWN": JOYBUTTONDOWN, "JOYBUTTONUP": JOYBUTTONUP, "JOYDEVICEADDED": JOYDEVICEADDED,
            "JOYDEVICEREMOVED": JOYDEVICEREMOVED, "WINDOWEVENT": WINDOWEVENT,
        }.items():
            setattr(pygame, name, value)

        display = types.ModuleType("pygame.display")

        def display_init() -> None:
            fake.display_inited = True
            fake.video_driver_at_init = os.environ.get("SDL_VIDEODRIVER")
            fake.display_init_thread = threading.current_thread().name

        def display_quit() -> None:
            fake.display_inited = False

        display.init = display_init  # type: ignore[attr-defined]
        display.quit = display_quit  # type: ignore[attr-defined]
        display.get_init = lambda: fake.display_inited  # type: ignore[attr-defined]

        joystick = types.ModuleType("pygame.joystick")

        def joystick_init() -> None:
            with fake._lock:
                if not fake.joystick_inited:
                    fake.joystick_inited = True
                    fake.background_events_at_init = os.environ.get("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS")
                    for i in range(len(fake._plugged)):  # SDL announces the pads it finds at init
                        fake._queue.append(Event(JOYDEVICEADDED, device_index=i))

        def joystick_quit() -> None:
            with fake._lock:
                fake.joystick_inited = False
                for joy in list(fake._open.values()):
                    joy._open = False
                fake._open.clear()

        def get_count() -> int:
            if not fake.joystick_inited:
                raise PygameError("joystick system not initialized")
            with fake._lock:
                return len(fake._plugged)

        def Joystick(i: int) -> _Joystick:  # noqa: N802 - pygame's name
            if not fake.joystick_inited:
                raise PygameError("joystick system not initialized")
            with fake._lock:
                if not 0 <= i < len(fake._plugged):
                    raise PygameError("Invalid joystick device number")
                pad = fake._plugged[i]
                joy = fake._open.get(id(pad))
                if joy is None:  # opened now; pygame 2 hands back the open object otherwise
                    joy = fake._open[id(pad)] = _Joystick(fake, pad)
                return joy

        joystick.init = joystick_init  # type: ignore[attr-defined]
        joystick.quit = joystick_quit  # type: ignore[attr-defined]
        joystick.get_init = lambda: fake.joystick_inited  # type: ignore[attr-defined]
        joystick.get_count = get_count  # type: ignore[attr-defined]
        joystick.Joystick = Joystick  # type: ignore[attr-defined]
        joystick.JoystickType = _Joystick  # type: ignore[attr-defined]

        event = types.ModuleType("pygame.event")

        def pump() -> None:
            fake._pump()

        def get(eventtype: Any = None, pump: bool = True, exclude: Any = None) -> list[Event]:
            if not fake.display_inited:
                raise PygameError("video system not initialized")
            if pump:
                fake._pump()
            with fake._lock:
                out = list(fake._queue)
                fake._queue.clear()
            return out

        event.pump = pump  # type: ignore[attr-defined]
        event.get = get  # type: ignore[attr-defined]
        event.Event = Event  # type: ignore[attr-defined]

        pygame.display = display  # type: ignore[attr-defined]
        pygame.joystick = joystick  # type: ignore[attr-defined]
        pygame.event = event  # type: ignore[attr-defined]
        return pygame
