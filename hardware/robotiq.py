"""Robotiq 2F-85 and Hand-E grippers over Modbus RTU (RS-485) or Modbus TCP.

Pattern: a thin synchronous Modbus master with **bounded retries**. Every Modbus transaction gets
`timeout_s` per try and at most `retries` further tries; a timeout, a broken connection or a Modbus
exception reply is retried after closing the link (so a late reply to an abandoned request can
never be read as the answer to the next one), and the last failure is raised as a `GripperError`
naming the operation, the unit id, the register address and the last error. Waits (activation,
motion) poll the status registers against a deadline. Nothing blocks for longer than its bound.

Register map (Robotiq 2F-85/2F-140 and Hand-E instruction manuals, "Control" chapter; both
grippers share it). Registers are 16 bits, big-endian: the first byte of each pair is the high
byte. Each area is 16 bytes (8 registers); the first 6 bytes are used.

    Robot output / command, written with FC16 (write multiple registers) at 0x03E8 (1000):
        byte 0  ACTION REQUEST: bit0 rACT (activate; 0 resets the gripper and clears faults),
                bit3 rGTO (go to the requested position), bit4 rATR (automatic release)
        byte 1, 2  reserved
        byte 3  rPR position request, 0x00 fully open .. 0xFF fully closed
        byte 4  rSP speed, 0x00 slowest .. 0xFF fastest
        byte 5  rFR force, 0x00 lowest .. 0xFF highest

    Robot input / status, read with FC04 (read input registers) at 0x07D0 (2000); older manuals
    read the same bytes with FC03 (read holding registers), see `RobotiqConfig.status_registers`:
        byte 0  GRIPPER STATUS: bit0 gACT (echo of rACT), bit3 gGTO (echo of rGTO),
                bits4-5 gSTA (0 reset / automatic release, 1 activation in progress,
                3 activation complete), bits6-7 gOBJ (0 fingers moving towards the request,
                1 stopped by a contact while opening, 2 stopped by a contact while closing,
                3 at the requested position, no object). gOBJ is meaningful only when gGTO = 1.
        byte 1  reserved
        byte 2  FAULT STATUS: low nibble gFLT (0 = no fault; see `FAULT_MESSAGES`), high nibble
                kFLT (controller-specific fault of the Modbus/TCP gateway, 0 = none)
        byte 3  gPR echo of the position request (the status is valid for the last command
                once gPR equals the rPR that was sent)
        byte 4  gPO actual position, 0x00 open .. 0xFF closed
        byte 5  gCU finger current, about 10 mA per count

Serial settings from the manuals: 115200 baud, 8 data bits, no parity, 1 stop bit, unit (slave)
id 9. Over TCP the same frames go through a Modbus TCP gateway (or a robot's tool-port
forwarding), usually on port 502.

Normalised opening: 1.0 is fully open (rPR 0x00), 0.0 fully closed (rPR 0xFF), the same
convention as `RobotInterface.set_gripper`. `RobotiqConfig.stroke_m` converts it to metres
(2F-85: 0.085 m, Hand-E: 0.050 m between the fingers when fully open).

pymodbus (>= 3.7, API of 3.16) is needed only to talk to a gripper; the config and the
encode/decode helpers import without it.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hilrl.hardware.errors import GripperError

if TYPE_CHECKING:
    from pymodbus.client import ModbusSerialClient, ModbusTcpClient

log = logging.getLogger(__name__)

COMMAND_ADDRESS = 0x03E8
"""First command (robot output) register."""
STATUS_ADDRESS = 0x07D0
"""First status (robot input) register."""
REGISTER_COUNT = 3
"""Registers holding the 6 used bytes of each area."""

# ACTION REQUEST bits (command byte 0).
RACT = 0x01
RGTO = 0x08
RATR = 0x10

# gSTA values.
GSTA_RESET = 0
GSTA_ACTIVATING = 1
GSTA_ACTIVATED = 3

# gOBJ values.
GOBJ_MOVING = 0
GOBJ_CONTACT_OPENING = 1
GOBJ_CONTACT_CLOSING = 2
GOBJ_AT_POSITION = 3

STROKE_M: dict[str, float] = {"2f85": 0.085, "hande": 0.050}
"""Distance between the fingers when fully open, per model, metres."""

FAULT_MESSAGES: dict[int, str] = {
    0x00: "no fault",
    0x05: "action delayed: the activation (re-activation) must complete before the action",
    0x07: "the activation bit must be set before an action",
    0x08: "maximum operating temperature exceeded: wait for the gripper to cool down",
    0x09: "no communication for at least 1 second",
    0x0A: "under minimum operating voltage",
    0x0B: "automatic release in progress",
    0x0C: "internal fault: contact Robotiq support",
    0x0D: "activation fault: check that nothing blocks the fingers and activate again",
    0x0E: "overcurrent triggered",
    0x0F: "automatic release completed",
}
"""gFLT codes of the 2F-85 / Hand-E manuals. 0x05-0x07 are minor ("priority") faults; 0x08 and
above are major faults that need a reset (rACT 0 then 1, i.e. `activate()`)."""

# Faults at or above this code stop an activation at once; below it, the activation may still
# complete and the code is only reported if it does not.
_MAJOR_FAULT = 0x08

MODBUS_EXCEPTIONS: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "slave device failure",
    0x05: "acknowledge",
    0x06: "slave device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

# Pause between two tries of one transaction: lets an RS-485 bus go idle (>= 3.5 characters) and a
# busy gateway recover, while keeping the total bounded.
_RETRY_PAUSE_S = 0.02


def fault_message(code: int) -> str:
    """Human-readable text of a gFLT code."""
    return FAULT_MESSAGES.get(code, f"unknown fault 0x{code:02X}")


def _check_fraction(name: str, value: Any) -> float:
    """`value` as a float in [0, 1], or ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


def _fraction_to_byte(fraction: float) -> int:
    return int(round(fraction * 255))


def opening_to_position(opening: float) -> int:
    """rPR byte for a normalised opening (1.0 open -> 0, 0.0 closed -> 255)."""
    return int(round((1.0 - _check_fraction("opening", opening)) * 255))


def position_to_opening(position: int) -> float:
    """Normalised opening (1.0 open .. 0.0 closed) of a gPO / gPR byte."""
    return (255 - position) / 255.0


@dataclass
class RobotiqConfig:
    """How to reach and drive one Robotiq gripper.

    Attributes:
        model: "2f85" (2F-85) or "hande" (Hand-E); sets the default stroke.
        transport: "rtu" (RS-485 through a USB adapter) or "tcp" (Modbus TCP gateway).
        port: serial device for rtu, e.g. "/dev/ttyUSB0" (any pyserial URL works).
        baudrate: serial speed for rtu, bits/s (the grippers ship at 115200, 8N1).
        host: gateway address for tcp.
        port_number: gateway TCP port for tcp.
        unit_id: Modbus unit (slave) id of the gripper, 9 out of the box.
        timeout_s: wait for one reply, seconds.
        retries: further tries of a failed transaction (timeout, lost link, exception reply).
        speed: default finger speed, fraction of the maximum (0..1).
        force: default grip force, fraction of the maximum (0..1).
        activation_timeout_s: an activation must complete within this, seconds.
        move_timeout_s: a blocking move must stop within this, seconds.
        poll_period_s: pause between two status reads while waiting, seconds.
        status_registers: read the status with FC04 ("input", current manuals) or FC03
            ("holding", older firmware and some gateways).
        stroke_m: distance between the fingers fully open, metres; null for the model's
            (2F-85: 0.085, Hand-E: 0.050).
    """

    model: Literal["2f85", "hande"] = "2f85"
    transport: Literal["rtu", "tcp"] = "rtu"
    port: str = "/dev/ttyUSB0"
    baudrate: int = 115200
    host: str = "127.0.0.1"
    port_number: int = 502
    unit_id: int = 9
    timeout_s: float = 0.2
    retries: int = 3
    speed: float = 1.0
    force: float = 0.5
    activation_timeout_s: float = 5.0
    move_timeout_s: float = 5.0
    poll_period_s: float = 0.02
    status_registers: Literal["input", "holding"] = "input"
    stroke_m: float | None = None

    def __post_init__(self) -> None:
        if self.model not in STROKE_M:
            raise ValueError(f"model must be one of {sorted(STROKE_M)}, got {self.model!r}")
        if self.transport not in ("rtu", "tcp"):
            raise ValueError(f"transport must be 'rtu' or 'tcp', got {self.transport!r}")
        if self.transport == "rtu" and not self.port:
            raise ValueError("port must name the serial device for transport 'rtu'")
        if self.transport == "tcp" and not self.host:
            raise ValueError("host must be set for transport 'tcp'")
        if (
            isinstance(self.baudrate, bool)
            or not isinstance(self.baudrate, int)
            or self.baudrate <= 0
        ):
            raise ValueError(f"baudrate must be a positive integer, got {self.baudrate!r}")
        if not isinstance(self.port_number, int) or not 1 <= self.port_number <= 65535:
            raise ValueError(f"port_number must be in 1..65535, got {self.port_number!r}")
        # 0 is the broadcast address (no reply) and 248..255 are reserved by Modbus.
        if not isinstance(self.unit_id, int) or not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id must be in 1..247, got {self.unit_id!r}")
        if (
            isinstance(self.retries, bool)
            or not isinstance(self.retries, int)
            or not 0 <= self.retries <= 10
        ):
            raise ValueError(f"retries must be an integer in 0..10, got {self.retries!r}")
        for name, upper in (
            ("timeout_s", 10.0),
            ("activation_timeout_s", 60.0),
            ("move_timeout_s", 60.0),
            ("poll_period_s", 1.0),
        ):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 < value <= upper:
                raise ValueError(f"{name} must be in (0, {upper:g}] seconds, got {value!r}")
        _check_fraction("speed", self.speed)
        _check_fraction("force", self.force)
        if self.status_registers not in ("input", "holding"):
            raise ValueError(
                f"status_registers must be 'input' or 'holding', got {self.status_registers!r}"
            )
        if self.stroke_m is None:
            self.stroke_m = STROKE_M[self.model]
        elif not _is_real(self.stroke_m) or not 0.0 < self.stroke_m <= 0.5:
            raise ValueError(f"stroke_m must be in (0, 0.5] metres, got {self.stroke_m!r}")

    @property
    def endpoint(self) -> str:
        """Where the gripper is, for messages: "tcp://host:port" or "rtu:/dev/ttyUSB0"."""
        if self.transport == "tcp":
            return f"tcp://{self.host}:{self.port_number}"
        return f"rtu:{self.port}"

    @property
    def max_transaction_s(self) -> float:
        """Upper bound on one Modbus transaction with all its retries, seconds.

        Each try may spend `timeout_s` connecting and up to twice `timeout_s` receiving (pymodbus
        restarts its wait once when a reply arrives in pieces).
        """
        attempts = self.retries + 1
        return attempts * 3.0 * self.timeout_s + self.retries * _RETRY_PAUSE_S


def _is_real(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class RobotiqStatus:
    """Decoded status registers.

    Attributes:
        activated: activation complete (gSTA = 3).
        activation_state: gSTA (0 reset, 1 activating, 3 activated).
        go_to: gGTO, a go-to request is active.
        moving: fingers moving towards the requested position.
        object_detected: fingers stopped on a contact (while closing or opening).
        object_state: gOBJ (0 moving, 1 contact opening, 2 contact closing, 3 at position).
        fault_code: gFLT (0 = no fault).
        fault_message: text of `fault_code`, plus the gateway's kFLT if set.
        controller_fault: kFLT, the high nibble of the fault byte.
        requested_opening: echo of the last position request, normalised (1 open .. 0 closed).
        opening: actual opening, normalised (1 open .. 0 closed).
        opening_m: actual distance between the fingers, metres.
        current_a: finger motor current, amperes (about 10 mA per count).
        position_request: raw gPR byte.
        position: raw gPO byte.
    """

    activated: bool
    activation_state: int
    go_to: bool
    moving: bool
    object_detected: bool
    object_state: int
    fault_code: int
    fault_message: str
    controller_fault: int
    requested_opening: float
    opening: float
    opening_m: float
    current_a: float
    position_request: int
    position: int

    @property
    def faulted(self) -> bool:
        return self.fault_code != 0


def encode_command(action: int, position: int, speed: int, force: int) -> list[int]:
    """The 3 command registers (bytes 0..5, big-endian pairs) for FC16 at `COMMAND_ADDRESS`."""
    for name, value in (
        ("action", action),
        ("position", position),
        ("speed", speed),
        ("force", force),
    ):
        if not 0 <= value <= 255:
            raise ValueError(f"{name} must be a byte (0..255), got {value!r}")
    return [action << 8, position, (speed << 8) | force]


def decode_status(registers: Sequence[int], stroke_m: float) -> RobotiqStatus:
    """Decode the first 3 status registers (from `STATUS_ADDRESS`)."""
    if len(registers) < REGISTER_COUNT:
        raise ValueError(f"need {REGISTER_COUNT} status registers, got {len(registers)}")
    gripper_status = (registers[0] >> 8) & 0xFF
    fault_byte = (registers[1] >> 8) & 0xFF
    position_request = registers[1] & 0xFF
    position = (registers[2] >> 8) & 0xFF
    current = registers[2] & 0xFF
    g_act = bool(gripper_status & 0x01)
    g_gto = bool(gripper_status & 0x08)
    g_sta = (gripper_status >> 4) & 0x03
    g_obj = (gripper_status >> 6) & 0x03
    g_flt = fault_byte & 0x0F
    k_flt = fault_byte >> 4
    message = fault_message(g_flt)
    if k_flt:
        message += f" (controller fault kFLT 0x{k_flt:X})"
    opening = position_to_opening(position)
    return RobotiqStatus(
        activated=g_act and g_sta == GSTA_ACTIVATED,
        activation_state=g_sta,
        go_to=g_gto,
        # gOBJ is only defined while a go-to request is active.
        moving=g_gto and g_obj == GOBJ_MOVING,
        object_detected=g_gto and g_obj in (GOBJ_CONTACT_OPENING, GOBJ_CONTACT_CLOSING),
        object_state=g_obj,
        fault_code=g_flt,
        fault_message=message,
        controller_fault=k_flt,
        requested_opening=position_to_opening(position_request),
        opening=opening,
        opening_m=opening * stroke_m,
        current_a=current * 0.010,
        position_request=position_request,
        position=position,
    )


class GripperFaultError(GripperError):
    """The gripper reports a fault (gFLT != 0).

    Attributes:
        fault_code: gFLT.
        status: the status that carried the fault.
    """

    def __init__(self, status: RobotiqStatus, operation: str, unit_id: int):
        self.fault_code = status.fault_code
        self.status = status
        super().__init__(
            f"{operation}: gripper (unit {unit_id}) reports fault 0x{status.fault_code:02X}: "
            f"{status.fault_message}",
            operation=operation,
            unit_id=unit_id,
            address=STATUS_ADDRESS,
            last_error=status.fault_message,
        )


def _import_pymodbus() -> Any:
    try:
        import pymodbus.client
        import pymodbus.exceptions
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "the Robotiq driver needs pymodbus>=3.7: pip install 'hilrl[real]'"
        ) from exc
    return pymodbus


def build_client(config: RobotiqConfig) -> ModbusSerialClient | ModbusTcpClient:
    """The pymodbus synchronous client for `config`, not yet connected.

    pymodbus' own retries are off (retries=0): `RobotiqGripper` retries, so it can bound the
    total time and reconnect between tries.
    """
    pymodbus = _import_pymodbus()
    from pymodbus import FramerType

    if config.transport == "tcp":
        return pymodbus.client.ModbusTcpClient(
            config.host,
            port=config.port_number,
            framer=FramerType.SOCKET,
            timeout=config.timeout_s,
            retries=0,
        )
    return pymodbus.client.ModbusSerialClient(
        config.port,
        framer=FramerType.RTU,
        baudrate=config.baudrate,
        bytesize=8,
        parity="N",
        stopbits=1,
        timeout=config.timeout_s,
        retries=0,
    )


class RobotiqGripper:
    """One Robotiq 2F-85 / Hand-E gripper.

    Typical use::

        with RobotiqGripper(RobotiqConfig(transport="rtu", port="/dev/ttyUSB0")) as gripper:
            gripper.activate()
            status = gripper.close_fingers()   # blocks until the fingers stop
            if status.object_detected: ...
            gripper.set_opening(1.0)           # returns at once

    `close()` releases the connection; the finger motions are `open_fingers()` /
    `close_fingers()` / `move()`. Methods are safe to call from several threads (one Modbus
    transaction at a time).

    Args:
        config: connection and motion defaults.
        client: a pymodbus synchronous client to use instead of `build_client(config)` (tests).
    """

    def __init__(self, config: RobotiqConfig, client: Any | None = None):
        self.config = config
        self._client = client
        self._unit: dict[str, int] = {}  # the unit id as the client's keyword argument
        self._lock = threading.Lock()
        self._last_position_request: int | None = None
        # Whether the last status read showed the gripper activated. A motion command carries
        # rACT = 1, which on a gripper in reset would start an activation (the fingers sweep
        # their stroke): motion is refused until a status read shows gSTA = 3.
        self._activated = False

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the serial port / TCP connection (retried; GripperError when it cannot)."""
        self._ensure_client()

        def attempt(client: Any) -> None:
            if not client.connect():
                raise ConnectionError(f"cannot open {self.config.endpoint}")

        self._transaction("connect", None, attempt)

    def close(self) -> None:
        """Release the connection (idempotent). The gripper keeps its last command."""
        with self._lock:
            if self._client is not None:
                self._client.close()

    def __enter__(self) -> RobotiqGripper:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Modbus with bounded retries ----------------------------------------------------------

    def _ensure_client(self) -> dict[str, int]:
        """Build the client on first use; the unit id keyword argument for its requests."""
        if self._client is None:
            self._client = build_client(self.config)
        if not self._unit:
            self._unit = {_unit_keyword(self._client): self.config.unit_id}
        return self._unit

    def _transaction(
        self, operation: str, address: int | None, request: Callable[[Any], Any]
    ) -> Any:
        """Run `request(client)` with bounded retries; its result, or GripperError.

        `request` returns a pymodbus response (or anything, for connect). A response with
        `isError()` (an exception reply) or a raised ModbusException / OSError / ConnectionError
        counts as a failed try. After a failure that may leave bytes in flight the link is
        closed, so the next try starts clean.
        """
        pymodbus = _import_pymodbus()
        self._ensure_client()
        attempts = self.config.retries + 1
        last_error = ""
        with self._lock:
            for attempt in range(attempts):
                if attempt:
                    time.sleep(_RETRY_PAUSE_S)
                try:
                    response = request(self._client)
                except (pymodbus.exceptions.ModbusException, OSError, ConnectionError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                    self._client.close()
                else:
                    error = _response_error(response)
                    if error is None:
                        return response
                    last_error = error
                log.debug(
                    "gripper %s (unit %d, address %s) try %d/%d failed: %s",
                    operation,
                    self.config.unit_id,
                    _hex(address),
                    attempt + 1,
                    attempts,
                    last_error,
                )
        raise GripperError(
            f"{operation} failed after {attempts} tries: unit {self.config.unit_id} at "
            f"{self.config.endpoint}, address {_hex(address)}: {last_error}",
            operation=operation,
            unit_id=self.config.unit_id,
            address=address,
            last_error=last_error,
        )

    def _read_status_registers(self) -> list[int]:
        unit = self._ensure_client()
        holding = self.config.status_registers == "holding"

        def read(client: Any) -> Any:
            if holding:
                return client.read_holding_registers(STATUS_ADDRESS, count=REGISTER_COUNT, **unit)
            return client.read_input_registers(STATUS_ADDRESS, count=REGISTER_COUNT, **unit)

        return list(self._transaction("read status", STATUS_ADDRESS, read).registers)

    def _write_command(self, action: int, position: int, speed: int, force: int) -> None:
        registers = encode_command(action, position, speed, force)
        unit = self._ensure_client()
        self._transaction(
            "write command",
            COMMAND_ADDRESS,
            lambda client: client.write_registers(COMMAND_ADDRESS, registers, **unit),
        )

    # -- status -------------------------------------------------------------------------------

    def status(self) -> RobotiqStatus:
        """Read and decode the status registers."""
        assert self.config.stroke_m is not None  # set by RobotiqConfig.__post_init__
        status = decode_status(self._read_status_registers(), self.config.stroke_m)
        self._activated = status.activated
        return status

    def _raise_if_faulted(self, status: RobotiqStatus, operation: str) -> None:
        if status.fault_code:
            raise GripperFaultError(status, operation, self.config.unit_id)

    # -- activation ---------------------------------------------------------------------------

    def activate(self, timeout_s: float | None = None) -> RobotiqStatus:
        """Reset (rACT = 0, which also clears faults), then activate (rACT = 1) and wait.

        The fingers move during activation (the gripper finds its stroke).

        Args:
            timeout_s: wait for gSTA = 3 at most this long; default `activation_timeout_s`.
        Returns:
            the status once activated.
        Raises:
            GripperFaultError: a major fault (gFLT >= 0x08) appears while activating.
            GripperError: not activated in time (the message carries the last status), or the
                link failed.
        """
        limit_s = self.config.activation_timeout_s if timeout_s is None else timeout_s
        if not _is_real(limit_s) or limit_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self._activated = False
        self._write_command(0, 0, 0, 0)
        self._write_command(RACT, 0, 0, 0)
        self._last_position_request = None
        deadline = time.monotonic() + limit_s
        while True:
            status = self.status()
            if status.fault_code >= _MAJOR_FAULT:
                raise GripperFaultError(status, "activate", self.config.unit_id)
            if status.activated:
                return status
            if time.monotonic() >= deadline:
                raise GripperError(
                    f"activate: gripper (unit {self.config.unit_id} at {self.config.endpoint}) "
                    f"not activated within {limit_s:g} s: gSTA={status.activation_state}, "
                    f"fault 0x{status.fault_code:02X} ({status.fault_message})",
                    operation="activate",
                    unit_id=self.config.unit_id,
                    address=STATUS_ADDRESS,
                    last_error=f"gSTA={status.activation_state}",
                )
            time.sleep(self.config.poll_period_s)

    # -- motion -------------------------------------------------------------------------------

    def set_opening(
        self, opening: float, speed: float | None = None, force: float | None = None
    ) -> RobotiqStatus:
        """Command a normalised opening (1.0 open .. 0.0 closed) and return without waiting.

        Reads the status once after writing, so a faulted gripper is reported at once; before
        the first command (and after any status that showed the gripper not activated) it also
        reads it before writing, and refuses to command a gripper that is not activated.

        Args:
            opening: target opening, 0..1.
            speed: finger speed as a fraction of the maximum; default `config.speed`.
            force: grip force as a fraction of the maximum; default `config.force`.
        Returns:
            the status read just after the command (the motion has usually not started yet).
        Raises:
            ValueError: an argument is NaN or outside [0, 1] (nothing is sent).
            GripperFaultError: the gripper reports a fault.
            GripperError: the gripper is not activated (call `activate()`), or the link failed.
        """
        position = opening_to_position(opening)
        speed_byte = _fraction_to_byte(
            _check_fraction("speed", self.config.speed if speed is None else speed)
        )
        force_byte = _fraction_to_byte(
            _check_fraction("force", self.config.force if force is None else force)
        )
        if not self._activated:
            before = self.status()
            self._raise_if_faulted(before, "set_opening")
            if not before.activated:
                raise GripperError(
                    f"set_opening: gripper (unit {self.config.unit_id} at {self.config.endpoint}) "
                    f"is not activated (gSTA={before.activation_state}): call activate() first",
                    operation="set_opening",
                    unit_id=self.config.unit_id,
                    address=STATUS_ADDRESS,
                    last_error=f"gSTA={before.activation_state}",
                )
        self._write_command(RACT | RGTO, position, speed_byte, force_byte)
        self._last_position_request = position
        status = self.status()
        self._raise_if_faulted(status, "set_opening")
        return status

    def set_gripper(self, opening: float) -> None:
        """`RobotInterface.set_gripper`: 0.0 closed .. 1.0 open; default speed and force; no wait."""
        self.set_opening(opening)

    def wait_until_stopped(self, timeout_s: float | None = None) -> RobotiqStatus:
        """Poll until the fingers stopped on the last request (arrived or on an object).

        Args:
            timeout_s: at most this long; default `move_timeout_s`.
        Returns:
            the status once stopped; `object_detected` tells a grasp from an arrival.
        Raises:
            GripperFaultError: the gripper reports a fault.
            GripperError: still moving at the deadline, or the link failed.
        """
        limit_s = self.config.move_timeout_s if timeout_s is None else timeout_s
        if not _is_real(limit_s) or limit_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        deadline = time.monotonic() + limit_s
        while True:
            status = self.status()
            self._raise_if_faulted(status, "wait_until_stopped")
            # Until gPR echoes the request the status still describes the previous command.
            echoed = (
                self._last_position_request is None
                or status.position_request == self._last_position_request
            )
            if echoed and not status.moving:
                return status
            if time.monotonic() >= deadline:
                raise GripperError(
                    f"wait_until_stopped: gripper (unit {self.config.unit_id} at "
                    f"{self.config.endpoint}) still moving after {limit_s:g} s: opening "
                    f"{status.opening:.3f}, requested {status.requested_opening:.3f}",
                    operation="wait_until_stopped",
                    unit_id=self.config.unit_id,
                    address=STATUS_ADDRESS,
                    last_error="timeout",
                )
            time.sleep(self.config.poll_period_s)

    def move(
        self,
        opening: float,
        speed: float | None = None,
        force: float | None = None,
        timeout_s: float | None = None,
    ) -> RobotiqStatus:
        """Move to a normalised opening (1.0 open .. 0.0 closed) and wait until the fingers stop.

        Args:
            opening: target opening, 0..1.
            speed: fraction of the maximum speed; default `config.speed`.
            force: fraction of the maximum force; default `config.force`.
            timeout_s: wait at most this long; default `move_timeout_s`.
        Returns:
            the final status: `object_detected` is true when the fingers stopped on an object.
        """
        self.set_opening(opening, speed, force)
        return self.wait_until_stopped(timeout_s)

    def move_m(
        self,
        opening_m: float,
        speed: float | None = None,
        force: float | None = None,
        timeout_s: float | None = None,
    ) -> RobotiqStatus:
        """`move` to a distance between the fingers, metres (0 .. `config.stroke_m`)."""
        stroke_m = self.config.stroke_m
        assert stroke_m is not None
        if not _is_real(opening_m) or not 0.0 <= opening_m <= stroke_m:
            raise ValueError(f"opening_m must be in [0, {stroke_m:g}] metres, got {opening_m!r}")
        return self.move(min(1.0, opening_m / stroke_m), speed, force, timeout_s)

    def open_fingers(self, speed: float | None = None, force: float | None = None) -> RobotiqStatus:
        """Open fully and wait."""
        return self.move(1.0, speed, force)

    def close_fingers(
        self, speed: float | None = None, force: float | None = None
    ) -> RobotiqStatus:
        """Close fully (or until an object stops the fingers) and wait."""
        return self.move(0.0, speed, force)


def _unit_keyword(client: Any) -> str:
    """The unit-id keyword of the client's request methods: pymodbus renamed `slave=` to
    `device_id=` in 3.10; the driver speaks both so the `real` extra's older floor still works."""
    parameters = inspect.signature(client.read_input_registers).parameters
    return "device_id" if "device_id" in parameters else "slave"


def _hex(address: int | None) -> str:
    return "-" if address is None else f"{address} (0x{address:04X})"


def _response_error(response: Any) -> str | None:
    """Why a pymodbus response is not a usable reply, or None when it is."""
    if response is None or response is True:
        return None
    is_error = getattr(response, "isError", None)
    if is_error is not None and is_error():
        code = getattr(response, "exception_code", None)
        if code is not None:
            name = MODBUS_EXCEPTIONS.get(int(code), "unknown exception")
            return f"Modbus exception 0x{int(code):02X} ({name})"
        return f"error response: {response}"
    registers = getattr(response, "registers", None)
    if registers is not None and getattr(response, "function_code", 0) in (3, 4):
        if len(registers) < REGISTER_COUNT:
            return f"short reply: {len(registers)} registers, expected {REGISTER_COUNT}"
    return None
