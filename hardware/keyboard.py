"""Keyboard intervention device: keys in the actor's terminal nudge the arm, work the gripper and
label episodes as succeeded or failed. Nothing to install: the terminal is read with the standard
library (termios, select), so it works over ssh and needs no display. This driver reads keys; the
mapping from keys to an env action is the actor's (`hilrl.actor.operators.KeyboardOperator`).

Pattern: *the terminal buffers keystrokes; the operator drains them once per step*. No thread is
needed: the kernel keeps every key typed between two steps, so none is lost, and the step that
reads them is when they take effect. A motion key moves its axis for `motion_s` after the key's
latest press (holding a key autorepeats, so the arm keeps moving while it is held); any key is an
intervention lasting `hold_s` after the last one.

Default keys (lower and upper case alike; all configurable):
    w / s: +x / -x      a / d: +y / -y      r / f: +z / -z      (the env's TCP-frame action axes)
    c: close the gripper      o: open it
    y: success (ends the episode)      n: failure (ends the episode)
    h: toggles "the scene shows success" for `hilrl record-labels` (a terminal reports no key
       releases, so this key toggles where a SpaceMouse button is held)
    space: operator stop: the robot server holds the arm and latches "operator_stop" until
       `hilrl clear-errors`; the episode ends and the actor exits (see `KeyboardConfig.stop`)

The key source is injectable (`KeySource`): `TerminalKeySource` reads stdin in cbreak mode (keys
arrive without Enter and are not echoed; Ctrl-C still interrupts) and restores the terminal on
close; `QueuedKeySource` is fed by code (tests, scripts).
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol

from hilrl.hardware.errors import InputDeviceError

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Config field -> (action axis, direction) for the motion keys.
MOTION_KEYS = {
    "x_plus": (0, 1.0), "x_minus": (0, -1.0),
    "y_plus": (1, 1.0), "y_minus": (1, -1.0),
    "z_plus": (2, 1.0), "z_minus": (2, -1.0),
}
KEY_FIELDS = (*MOTION_KEYS, "close_gripper", "open_gripper", "success", "failure", "success_toggle", "stop")
# How a config may spell the space bar (a bare " " in YAML is easy to lose).
SPACE_NAMES = ("space", "spacebar")


def key_name(key: str) -> str:
    """A key as a person reads it: "space" for " ", else the character."""
    return "space" if key == " " else key


@dataclass
class KeyboardConfig:
    """The `actor.intervention.keyboard:` section.

    Attributes:
        speed: action magnitude of a moving axis, fraction of full scale (the env scales 1.0 to
            `translation_scale_m` per step).
        motion_s: a motion key moves its axis for this long after its latest press, s. Longer than
            the terminal's autorepeat delay (usually 0.25-0.66 s), so a held key moves smoothly.
        hold_s: the intervention lasts this long after the last key press, s (the arm is held still
            once no axis is moving); at least `motion_s`.
        x_plus ... z_minus: keys moving the TCP along +-x, +-y, +-z of the env's action.
        close_gripper / open_gripper: keys closing / opening the gripper (+1 / -1 for one step).
        success / failure: keys ending the episode with a human label.
        success_toggle: `hilrl record-labels` only: toggles whether the recorded frames show
            success (`hilrl.actor.operators.KeyboardOperator.success_held`); off at each episode start.
        stop: operator stop (`hilrl.actor.interventions.InterventionWrapper`): the robot server
            holds the arm and latches "operator_stop" (motion is refused until `hilrl clear-errors
            --config FILE`), the episode ends and the actor exits with an error. Default: the space
            bar, the largest key, found without looking while the left hand sits on w/a/s/d/r/f
            (the thumb rests by it), and used by no other binding; it is hard to press by accident
            from the motion keys, and a stray press fails safe (the arm holds; clear errors and
            restart). Write it as "space" (or " ") in YAML. A key pressed during a reset still
            counts. It is no emergency stop: keep the robot's own stop button within reach.
        Keys are single printable characters (or "space"), matched case-insensitively, all different.
    """

    speed: float = 0.5
    motion_s: float = 0.7
    hold_s: float = 1.0
    x_plus: str = "w"
    x_minus: str = "s"
    y_plus: str = "a"
    y_minus: str = "d"
    z_plus: str = "r"
    z_minus: str = "f"
    close_gripper: str = "c"
    open_gripper: str = "o"
    success: str = "y"
    failure: str = "n"
    success_toggle: str = "h"
    stop: str = " "

    def __post_init__(self) -> None:
        if not 0 < self.speed <= 1:
            raise ValueError(f"speed must be in (0, 1] (fraction of full scale), got {self.speed}")
        if not 0 < self.motion_s <= 10:
            raise ValueError(f"motion_s must be in (0, 10] s, got {self.motion_s}")
        if not self.motion_s <= self.hold_s <= 60:
            raise ValueError(f"hold_s must be in [motion_s, 60] s = [{self.motion_s}, 60], got {self.hold_s}")
        seen: dict[str, str] = {}
        for name in KEY_FIELDS:
            key = getattr(self, name)
            if isinstance(key, str) and key.strip().lower() in SPACE_NAMES:
                key = " "
            if not isinstance(key, str) or len(key) != 1 or not key.isprintable():
                raise ValueError(f"{name} must be one printable character or 'space', got {key!r}")
            low = key.lower()
            if low in seen:
                raise ValueError(
                    f"{name} uses key {key_name(key)!r}, already used by {seen[low]} (keys are case-insensitive)"
                )
            seen[low] = name
            setattr(self, name, low)

    @property
    def bindings(self) -> dict[str, str]:
        """Key (lower case) -> what it does (the field name)."""
        return {getattr(self, f.name): f.name for f in fields(self) if f.name in KEY_FIELDS}


# ---------------------------------------------------------------------------- key sources


class KeySource(Protocol):
    """Where key presses come from."""

    def read_keys(self) -> str:
        """Every character typed since the last call (possibly none); never blocks."""
        ...

    def close(self) -> None: ...


class QueuedKeySource:
    """A key source fed by code: `feed("ww")` as if those keys had been typed (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []

    def feed(self, keys: str) -> None:
        with self._lock:
            self._pending.append(keys)

    def read_keys(self) -> str:
        with self._lock:
            keys, self._pending = "".join(self._pending), []
        return keys

    def close(self) -> None:
        pass


class TerminalKeySource:
    """Keys typed in the controlling terminal, read without blocking.

    Puts the terminal in cbreak mode (no line buffering, no echo; Ctrl-C still sends SIGINT) and
    restores it on `close()` (also registered with atexit, so a crash does not leave it that way).

    Args:
        fd: file descriptor of the terminal; None: standard input.
    Raises:
        InputDeviceError: not a terminal (a pipe, a file, a service), or a terminal this process
            does not own (running in the background, where changing it would stop the process).
    """

    def __init__(self, fd: int | None = None):
        import termios  # POSIX only; imported here so the module loads everywhere

        self._termios = termios
        try:
            self._fd = sys.stdin.fileno() if fd is None else fd
        except (ValueError, OSError, AttributeError) as exc:  # stdin closed or replaced
            raise InputDeviceError(self._not_a_tty("standard input is closed or has no file descriptor")) from exc
        if not os.isatty(self._fd):
            raise InputDeviceError(self._not_a_tty(f"file descriptor {self._fd} is not a TTY (a pipe, a file or /dev/null)"))
        try:
            foreground = os.tcgetpgrp(self._fd) == os.getpgrp()
        except OSError:
            foreground = True  # no job control (e.g. a pty in a test): nothing can stop us
        if not foreground:
            raise InputDeviceError(
                "keyboard intervention: this process runs in the background of its terminal, so it "
                "cannot read keys; bring it to the foreground (fg) or start it without '&'"
            )
        self._saved: list[Any] | None = termios.tcgetattr(self._fd)
        attrs = termios.tcgetattr(self._fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: keys arrive at once, unechoed; ISIG kept
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        atexit.register(self.close)

    @staticmethod
    def _not_a_tty(why: str) -> str:
        return (
            f"keyboard intervention needs an interactive terminal, but {why}. Run the actor in a "
            "terminal (e.g. `hilrl actor ...` in a shell, or inside tmux/screen over ssh), not "
            "under nohup, a pipe or a service; or use actor.intervention.device: spacemouse"
        )

    def read_keys(self) -> str:
        chunks: list[bytes] = []
        while self._saved is not None and select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 1024)
            if not data:  # end of file: the terminal went away
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="ignore")

    def close(self) -> None:
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        try:
            self._termios.tcsetattr(self._fd, self._termios.TCSADRAIN, saved)
        except (OSError, self._termios.error) as exc:  # the terminal is already gone
            log.debug("restoring the terminal failed: %r", exc)
        atexit.unregister(self.close)


# ---------------------------------------------------------------------------- operator


def plain_keys(text: str) -> list[str]:
    """The plain key presses in terminal input, without escape sequences: arrow and function keys
    (ESC [ ... final, ESC O x) and Alt+key (ESC x) would otherwise read as letters ("A" for up)."""
    keys: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "\x1b":
            keys.append(char)
            i += 1
        elif i + 1 < n and text[i + 1] == "[":  # CSI: parameters, then a final byte @ .. ~
            i += 2
            while i < n and not "@" <= text[i] <= "~":
                i += 1
            i += 1
        else:  # SS3 (ESC O x) is two characters after ESC; Alt+key is one
            i += 3 if i + 1 < n and text[i + 1] == "O" else 2
    return keys


