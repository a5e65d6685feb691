"""A Robotiq 2F-85 / Hand-E emulator: a real pymodbus server on loopback with the gripper registers.

The server is pymodbus' own `ModbusTcpServer` (Modbus TCP framing, or RTU framing over TCP for the
RTU client) running its asyncio loop in a background thread, bound to 127.0.0.1 on a port the OS
picks. The registers are a pymodbus `SimDevice` (the 3.16 datastore; `ModbusDeviceContext` is
deprecated there) whose `action` hook runs on every request: it advances a small time-based model
of the gripper, applies a command written to 0x03E8, refreshes the status registers at 0x07D0
before a read, and applies injected failures.

Model: activation completes `activation_s` after rACT goes 0 -> 1; with rGTO set the fingers move
towards rPR at a rate scaled by rSP (full stroke in `full_stroke_s` at full speed); gOBJ is 0 while
moving, 3 on arrival, 2 when an obstacle stops a close. Commands before activation raise gFLT 0x07
(0x05 while activating), like the real gripper.

Injected failures (each thread-safe, effective from the next request):
    drop_requests(n)       the next n requests (None: all) get no reply at all
    delay_replies(s, n)    the next n replies are sent s seconds late
    reply_exception(c, n)  the next n requests (None: all) get Modbus exception code c
    set_fault(code)        gFLT reads `code` until a reset (rACT = 0), or always if sticky
    set_obstacle(opening)  a close stops at this normalised opening with gOBJ = 2
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

COMMAND_ADDRESS = 0x03E8
STATUS_ADDRESS = 0x07D0
AREA_REGISTERS = 8  # 16 bytes per area, like the real gripper

RACT, RGTO, RATR = 0x01, 0x08, 0x10


@dataclass
class Request:
    """One request the emulator received (before any injected failure)."""

    function_code: int
    address: int
    count: int
    values: list[int] | None


@dataclass
class GripperModel:
    """State of the emulated gripper. Positions are gPO units: 0 open .. 255 closed (float)."""

    full_stroke_s: float
    activation_s: float
    min_speed_fraction: float = 0.15
    command: list[int] = field(default_factory=lambda: [0, 0, 0])
    sta: int = 0
    obj: int = 0
    fault: int = 0
    activation_done_at: float = 0.0
    position: float = 0.0
    target: float = 0.0
    obstacle: float | None = None
    last_update: float = field(default_factory=time.monotonic)

    @property
    def action(self) -> int:
        return (self.command[0] >> 8) & 0xFF

    @property
    def speed(self) -> int:
        return (self.command[2] >> 8) & 0xFF

    @property
    def force(self) -> int:
        return self.command[2] & 0xFF

    def advance(self, now: float) -> None:
        dt = max(0.0, now - self.last_update)
        self.last_update = now
        if self.sta == 1 and now >= self.activation_done_at:
            self.sta = 3
        if self.sta != 3 or not self.action & RGTO or self.obj != 0:
            return
        rate = 255.0 / self.full_stroke_s
        rate *= self.min_speed_fraction + (1.0 - self.min_speed_fraction) * self.speed / 255.0
        step = rate * dt
        if self.target > self.position:  # closing
            new = min(self.target, self.position + step)
            if (
                self.obstacle is not None
                and self.position <= self.obstacle < self.target
                and new >= self.obstacle
            ):
                self.position = self.obstacle
                self.obj = 2
                return
        else:
            new = max(self.target, self.position - step)
        self.position = new
        if new == self.target:
            self.obj = 3

    def write(self, registers: list[int], now: float) -> None:
        self.advance(now)
        previous = self.action
        self.command = list(registers[:3])
        action = self.action
        if not action & RACT:
            # Reset: gSTA 0, faults cleared, motion stopped.
            self.sta = 0
            self.obj = 0
            self.fault = 0
            return
        if not previous & RACT:
            self.sta = 1
            self.activation_done_at = now + self.activation_s
            self.fault = 0
        if action & RGTO:
            if self.sta != 3:
                self.fault = 0x05 if self.sta == 1 else 0x07
                return
            target = float(self.command[1] & 0xFF)
            # A new request (or a go after none) restarts the motion; repeating the same request
            # leaves a finished one alone, as the real gripper does.
            if target != self.target or not previous & RGTO:
                self.target = target
                self.obj = 0
                self.advance(now)

    def status_registers(self) -> list[int]:
        action = self.action
        act = action & RACT
        gto = 1 if action & RGTO else 0
        obj = self.obj if gto else 0
        gripper_status = (obj << 6) | (self.sta << 4) | (gto << 3) | act
        if gto and self.sta == 3 and obj == 0:
            current = 0x10
        elif gto and obj == 2:
            current = max(1, self.force // 4)
        else:
            current = 0
        position = int(round(self.position))
        return [
            gripper_status << 8,
            (self.fault << 8) | (self.command[1] & 0xFF),
            (position << 8) | current,
        ]


class RobotiqEmulator:
    """A running emulated gripper. Use `start()` / `stop()` (or as a context manager).

    It answers every unit id, like the only device on a link.

    Args:
        framer: "socket" (Modbus TCP) or "rtu" (RTU frames over the TCP stream, for the RTU
            client through pyserial's socket:// URL).
        full_stroke_s: time for a full stroke at full speed, seconds.
        activation_s: time from rACT 0 -> 1 to gSTA = 3, seconds.
    """

    def __init__(
        self,
        *,
        framer: str = "socket",
        full_stroke_s: float = 0.3,
        activation_s: float = 0.05,
    ):
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self.model = GripperModel(full_stroke_s=full_stroke_s, activation_s=activation_s)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._drop: int | None = 0
        self._delay: tuple[float, int] = (0.0, 0)
        self._exception: tuple[int, int | None] = (0, 0)
        self._injected_fault = 0
        self._fault_sticky = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> RobotiqEmulator:
        self._thread = threading.Thread(target=self._run, name="robotiq-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("robotiq emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"robotiq emulator failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError("robotiq emulator thread did not stop")
            self._thread = None

    def __enter__(self) -> RobotiqEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start() when it happens before ready
            self._error = exc
        finally:
            self._ready.set()
            # Cancel replies still sleeping in delay_replies, then close the loop.
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        device = SimDevice(
            id=0,  # 0 answers any unit id
            simdata=[
                SimData(COMMAND_ADDRESS, values=[0] * AREA_REGISTERS, datatype=DataType.REGISTERS),
                SimData(
                    STATUS_ADDRESS,
                    values=[0] * AREA_REGISTERS,
                    datatype=DataType.REGISTERS,
                    readonly=True,
                ),
            ],
            action=self._action,
        )
        # ignore_missing_devices: a NoSuchIdException from the action drops the request unanswered.
        server = ModbusTcpServer(
            device, framer=self.framer, address=(self.host, 0), ignore_missing_devices=True
        )
        await server.serve_forever(background=True)
        try:
            self.port = server.transport.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await server.shutdown()

    # -- the register hook ------------------------------------------------------------------------

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        with self._lock:
            values = None if set_values is None else [int(v) for v in set_values]
            self.requests.append(Request(function_code, address, count, values))
            drop = self._take_drop()
            delay = self._take_delay()
            exception = self._take_exception()
        if drop:
            raise NoSuchIdException("emulated: request dropped")
        if delay:
            await asyncio.sleep(delay)
        if exception:
            return ExcCodes(exception)
        now = time.monotonic()
        with self._lock:
            model = self.model
            model.advance(now)
            if values is not None and COMMAND_ADDRESS <= address < COMMAND_ADDRESS + AREA_REGISTERS:
                offset = COMMAND_ADDRESS - start_address
                command = list(registers[offset : offset + AREA_REGISTERS])
                first = address - COMMAND_ADDRESS
                command[first : first + len(values)] = values
                model.write(command, now)
                if not model.action & RACT and not self._fault_sticky:
                    self._injected_fault = 0
            if self._injected_fault and model.action & RACT:
                model.fault = self._injected_fault
            offset = STATUS_ADDRESS - start_address
            registers[offset : offset + 3] = model.status_registers()
        return None

    def _take_drop(self) -> bool:
        if self._drop is None:
            return True
        if self._drop > 0:
            self._drop -= 1
            return True
        return False

    def _take_delay(self) -> float:
        delay_s, count = self._delay
        if count > 0:
            self._delay = (delay_s, count - 1)
            return delay_s
        return 0.0

    def _take_exception(self) -> int:
        code, count = self._exception
        if count is None:
            return code
        if count > 0:
            self._exception = (code, count - 1)
            return code
        return 0

    # -- injection and inspection -------------------------------------------------------------

    def drop_requests(self, count: int | None = None) -> None:
        """Answer none of the next `count` requests (None: none at all until `clear_injections`)."""
        with self._lock:
            self._drop = count

    def delay_replies(self, delay_s: float, count: int = 1) -> None:
        """Send the next `count` replies `delay_s` seconds late."""
        with self._lock:
            self._delay = (delay_s, count)

    def reply_exception(self, code: int, count: int | None = None) -> None:
        """Answer the next `count` requests (None: all) with Modbus exception `code`."""
        with self._lock:
            self._exception = (code, count)

    def clear_injections(self) -> None:
        with self._lock:
            self._drop = 0
            self._delay = (0.0, 0)
            self._exception = (0, 0)

    def set_fault(self, code: int, sticky: bool = False) -> None:
        """Report gFLT = `code` from now on, until a reset write (rACT = 0) or `clear_fault`.

        A `sticky` fault survives resets and comes back with every activation (an activation
        fault, a gripper that stays too hot).
        """
        with self._lock:
            self._injected_fault = code
            self._fault_sticky = sticky
            self.model.fault = code

    def clear_fault(self) -> None:
        with self._lock:
            self._injected_fault = 0
            self._fault_sticky = False
            self.model.fault = 0

    def set_obstacle(self, opening: float | None) -> None:
        """An object between the fingers at this normalised opening (None: nothing to grasp)."""
        with self._lock:
            self.model.obstacle = None if opening is None else round((1.0 - opening) * 255)

    def set_position(self, opening: float) -> None:
        """Put the fingers at a normalised opening (test setup)."""
        with self._lock:
            self.model.position = self.model.target = round((1.0 - opening) * 255)

    def snapshot(self) -> GripperModel:
        """A copy of the model, advanced to now."""
        with self._lock:
            self.model.advance(time.monotonic())
            model = self.model
            return GripperModel(
                **{name: getattr(model, name) for name in model.__dataclass_fields__}
            )

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)
