"""Gripper drivers for the franka backend: the small `GripperDriver` protocol and `FrankaHand`.

The backend drives any gripper through `GripperDriver`, so a different hand (e.g. the Robotiq
driver in `hardware/robotiq.py`, through a small adapter) plugs in without touching the arm code.
Every call of the protocol returns at once: the server's request loop and the realtime watchdog
must never wait for fingers to move.

`FrankaHand` drives the Franka Hand through libfranka's `Gripper` (as bound by panda-py, module
`panda_py.libfranka`). libfranka's gripper commands block until the fingers stop, so each command
runs on a worker thread; a newer command pre-empts a running one (`Gripper.stop()`), and the
measured width is read on a second thread and cached, so `opening()` never waits for the network.
libfranka's Gripper takes commands over TCP and streams its state over UDP, so `read_once()` and
`stop()` may be called while a move blocks (franka_ros' gripper node relies on the same).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

_JOIN_TIMEOUT_S = 2.0


class GripperDriver(Protocol):
    """A gripper as the franka backend sees it. Every method returns without waiting for motion.

    Opening is normalised: 0.0 closed .. 1.0 fully open (the convention of
    `RobotInterface.set_gripper` and `RobotState.gripper_opening`).
    """

    def set_opening(self, opening: float) -> None:
        """Start moving the fingers to `opening` (position control, no grasp force)."""
        ...

    def grasp(self) -> None:
        """Start closing the fingers with the configured force, so they keep holding an object."""
        ...

    def opening(self) -> float:
        """The last measured opening, 0.0 .. 1.0."""
        ...

    def close(self) -> None:
        """Release the driver (threads, connection). Does not move the fingers."""
        ...


@dataclass(frozen=True)
class _Command:
    """One gripper command: a position move to `width_m`, or a grasp (`grasp` True)."""

    grasp: bool
    width_m: float = 0.0


class FrankaHand:
    """The Franka Hand through libfranka's Gripper, non-blocking.

    Args:
        libfranka: the `panda_py.libfranka` module (passed in so this module imports without it).
        hostname: address of the robot's control box.
        force_n: grasp force, N.
        speed_m_per_s: finger speed for moves and grasps, m/s.
        grasp_epsilon_m: a grasp succeeds (and keeps its force) for a final finger distance up to
            this much wider than the commanded 0 m, i.e. for any object up to this wide.
        homing: home the fingers first (blocks a few seconds; calibrates `max_width`).
        poll_period_s: how often the measured width is refreshed, s.
    Raises:
        whatever libfranka raises when the gripper cannot be reached (the caller names the config).
    """

    def __init__(
        self,
        libfranka: Any,
        hostname: str,
        force_n: float,
        speed_m_per_s: float,
        grasp_epsilon_m: float,
        homing: bool = True,
        poll_period_s: float = 0.05,
    ):
        self.force_n = float(force_n)
        self.speed_m_per_s = float(speed_m_per_s)
        self.grasp_epsilon_m = float(grasp_epsilon_m)
        self._poll_period_s = float(poll_period_s)
        self._gripper = libfranka.Gripper(hostname)
        if homing:
            log.info("homing the Franka Hand at %s", hostname)
            self._gripper.homing()
        first = self._gripper.read_once()
        self.max_width_m = float(first.max_width)
        if not self.max_width_m > 0:
            raise RuntimeError(
                f"the Franka Hand at {hostname} reports max_width {self.max_width_m} m; home it "
                "(robot_server.franka.gripper_homing: true)"
            )
        self._width_m = float(first.width)
        # Guards the pending command and wakes the worker.
        self._wake = threading.Condition()
        self._pending: _Command | None = None
        # Held while the worker switches to its next command and while a pre-emption stops one,
        # so a stop can only ever hit the command it was meant for.
        self._motion_lock = threading.Lock()
        self._active: tuple[int, _Command] | None = None
        self._next_id = 0
        self._closing = threading.Event()
        self._worker = threading.Thread(target=self._run_commands, name="franka-hand-commands", daemon=True)
        self._poller = threading.Thread(target=self._poll_width, name="franka-hand-state", daemon=True)
        self._worker.start()
        self._poller.start()

    # ------------------------------------------------------------------ GripperDriver

    def set_opening(self, opening: float) -> None:
        width = min(max(float(opening), 0.0), 1.0) * self.max_width_m
        self._submit(_Command(grasp=False, width_m=width))

    def grasp(self) -> None:
        self._submit(_Command(grasp=True))

    def opening(self) -> float:
        return min(max(self._width_m / self.max_width_m, 0.0), 1.0)

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        with self._wake:
            self._pending = None
            self._wake.notify_all()
        active = self._active
        if active is not None:
            self._stop_if_active(active[0])
        for thread in (self._worker, self._poller):
            thread.join(_JOIN_TIMEOUT_S)

    # ------------------------------------------------------------------ internals

    def _submit(self, command: _Command) -> None:
        if self._closing.is_set():
            raise RuntimeError("the Franka Hand driver is closed")
        active = self._active
        with self._wake:
            if command == self._pending or (self._pending is None and active is not None and active[1] == command):
                return  # already on its way: re-issuing would restart the motion
            self._pending = command
            self._wake.notify()
        if active is not None and active[1] != command:
            # The worker is blocked inside libfranka until the running motion ends; stopping it
            # is a network round trip, done off the caller's thread.
            threading.Thread(
                target=self._stop_if_active, args=(active[0],), name="franka-hand-preempt", daemon=True
            ).start()

    def _stop_if_active(self, command_id: int) -> None:
        try:
            with self._motion_lock:
                if self._active is not None and self._active[0] == command_id:
                    self._gripper.stop()
        except Exception:
            log.warning("could not stop the Franka Hand's running motion", exc_info=True)

    def _run_commands(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closing.is_set():
                    self._wake.wait()
                if self._closing.is_set():
                    return
                command, self._pending = self._pending, None
            with self._motion_lock:
                self._next_id += 1
                self._active = (self._next_id, command)
            try:
                if command.grasp:
                    ok = self._gripper.grasp(
                        0.0, self.speed_m_per_s, self.force_n, self.grasp_epsilon_m, self.grasp_epsilon_m
                    )
                else:
                    ok = self._gripper.move(command.width_m, self.speed_m_per_s)
                if not ok:
                    log.info("Franka Hand %s ended early (pre-empted or blocked)", "grasp" if command.grasp else "move")
            except Exception:
                # A failed finger motion is not an arm fault: report it and keep serving commands.
                log.warning("Franka Hand command %s failed", command, exc_info=True)
            finally:
                with self._motion_lock:
                    self._active = None

    def _poll_width(self) -> None:
        failing = False
        while not self._closing.wait(self._poll_period_s):
            try:
                self._width_m = float(self._gripper.read_once().width)
                failing = False
            except Exception:
                if not failing:  # once per failure streak: this runs every poll period
                    log.warning("cannot read the Franka Hand's state", exc_info=True)
                failing = True


class RobotiqHand:
    """A Robotiq 2F-85 / Hand-E (hardware/robotiq.py) behind `GripperDriver`.

    One I/O thread owns the Modbus link (pymodbus clients are not thread-safe): it sends the
    newest pending command, and otherwise polls the status every `config.poll_period_s`, caching
    the opening. `set_opening` / `grasp` only store the command, so they never wait for Modbus;
    repeats of the command in flight are dropped. A link or fault error is logged once per kind
    and kept in `last_error`; the thread keeps trying (the server reports the gripper's state,
    the arm is not affected).

    Args:
        config: the gripper's RobotiqConfig. `activate` (True): activate at start, which sweeps
            the fingers once, as the Franka Hand's homing does.
        gripper: an already-built RobotiqGripper (tests); default: one made from `config`.
    """

    def __init__(self, config: Any, activate: bool = True, gripper: Any = None):
        from hilrl.hardware.robotiq import RobotiqGripper

        self._gripper = gripper if gripper is not None else RobotiqGripper(config)
        self._poll_s = float(getattr(config, "poll_period_s", 0.02))
        self._gripper.connect()
        if activate:
            self._gripper.activate()
        status = self._gripper.status()
        self._opening = float(status.opening)
        self.last_error: str | None = None
        self._pending: float | None = None
        self._sent: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="robotiq-io", daemon=True)
        self._thread.start()

    def set_opening(self, opening: float) -> None:
        with self._lock:
            self._pending = float(opening)
        self._wake.set()

    def grasp(self) -> None:
        # A Robotiq closes to position 255 with the configured force and keeps squeezing whatever
        # stops it (reported as "contact while closing"): that is its grasp.
        self.set_opening(0.0)

    def opening(self) -> float:
        with self._lock:
            return self._opening

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(_JOIN_TIMEOUT_S)
        self._gripper.close()

    def _run(self) -> None:
        reported: set[str] = set()
        while not self._stop.is_set():
            with self._lock:
                command, self._pending = self._pending, None
            try:
                if command is not None and command != self._sent:
                    status = self._gripper.set_opening(command)
                    self._sent = command
                else:
                    status = self._gripper.status()
                with self._lock:
                    self._opening = float(status.opening)
                self.last_error = None
                reported.clear()
            except Exception as exc:  # the I/O thread must survive a flaky link
                self.last_error = f"{type(exc).__name__}: {exc}"
                if command is not None:
                    with self._lock:
                        self._pending = self._pending if self._pending is not None else command
                if type(exc).__name__ not in reported:
                    reported.add(type(exc).__name__)
                    log.warning("robotiq gripper: %s (retrying)", self.last_error)
            self._wake.wait(self._poll_s)
            self._wake.clear()
