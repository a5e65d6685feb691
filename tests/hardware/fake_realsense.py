"""A fake `pyrealsense2` module: the parts of its API that hardware/realsense.py uses, no more.

It imitates the real module's behaviour at that boundary (checked against librealsense's Python
bindings, wrappers/python/pyrs_*.cpp):

- `context().query_devices()` lists devices; `device.get_info(camera_info.serial_number)`.
- `config()`: `enable_device(serial)`, `enable_stream(stream, width, height, format, framerate)`.
- `pipeline(ctx)`: `start(config)` -> profile (raises RuntimeError when the device is absent or busy,
  or when started twice), `stop()`, `wait_for_frames(timeout_ms=5000)` -> frameset, which blocks
  until the next frame and raises RuntimeError("Frame didn't arrive within <timeout_ms>") on
  timeout; frames produced while nobody waited are dropped (the latest unread one is returned).
- `profile.get_device().first_color_sensor()` / `.first_depth_sensor()`: options
  (`supports`, `set_option`, `get_option`, `get_option_range` -> min/max/step/default),
  `get_depth_scale()`. Options persist across pipeline restarts, as on a real device.
- frames: truthiness (an empty frame is falsy), `get_data()` (a numpy array over a buffer the
  pipeline *reuses* for the next frame, like librealsense's frame pool, so a driver that does not
  copy sees its old frames change), `get_timestamp()` (ms), `get_frame_timestamp_domain()`,
  `get_frame_number()`; frameset `get_color_frame()` / `get_depth_frame()`.
- `align(stream.color).process(frameset)`: depth resampled onto the colour image grid.
- `device.hardware_reset()`: the device drops off the bus (absent from `query_devices`, its
  running pipeline stalls) and re-enumerates `reenumerate_s` later, no longer wedged.

Pixel content identifies the frame: colour channel 0 = frame number % 256, channel 1 =
(frame number // 256) % 256, channel 2 = the device's `tag`; depth = 1000 + frame number.

Knobs (on `FakeDevice`, reachable as `module.fake.devices[serial]`): frame rate, a stall after N
frames of a pipeline start (blocking until the timeout, or raising at once), how many starts
stall, a wedged device (every start stalls until a hardware reset, as a camera that needs its cable
replugged), failing starts, unplugging, timestamp domain and lag. Built per test by
`make_fake_realsense`; nothing is shared between modules.
"""

from __future__ import annotations

import enum
import math
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


class stream(enum.Enum):  # pyrealsense2 spells its enums in lower case
    color = 2
    depth = 1


class format(enum.Enum):
    z16 = 1
    rgb8 = 5
    bgr8 = 6


class option(enum.Enum):
    exposure = 3
    gain = 4
    enable_auto_exposure = 10


class camera_info(enum.Enum):
    name = 0
    serial_number = 1


class timestamp_domain(enum.Enum):
    hardware_clock = 0
    system_time = 1
    global_time = 2


@dataclass
class OptionRange:
    min: float
    max: float
    step: float
    default: float


class FakeSensor:
    """A sensor's options; `log` records every set_option as (option, value)."""

    def __init__(self, ranges: dict[option, OptionRange], depth_scale: float | None = None):
        self._ranges = ranges
        self.values = {opt: r.default for opt, r in ranges.items()}
        self.log: list[tuple[option, float]] = []
        self._depth_scale = depth_scale

    def supports(self, opt: option) -> bool:
        return opt in self._ranges

    def get_option_range(self, opt: option) -> OptionRange:
        if opt not in self._ranges:
            raise RuntimeError(f"object doesn't support option #{opt.value}")
        return self._ranges[opt]

    def get_option(self, opt: option) -> float:
        self.get_option_range(opt)
        return self.values[opt]

    def set_option(self, opt: option, value: float) -> None:
        r = self.get_option_range(opt)
        if not r.min <= value <= r.max:
            raise RuntimeError(f"out of range value for argument \"value\" ({value} not in [{r.min}, {r.max}])")
        self.values[opt] = float(value)
        self.log.append((opt, float(value)))

    def get_depth_scale(self) -> float:
        if self._depth_scale is None:
            raise RuntimeError("not a depth sensor")
        return self._depth_scale


@dataclass
class FakeDevice:
    """One fake camera and its knobs. Tests may change knobs while a pipeline runs.

    Attributes:
        serial: serial number.
        fps_override: frames per second actually delivered; None: the requested framerate.
        stall_after: frames one pipeline start delivers before its stream stalls; None: never.
        stall_starts: how many pipeline starts (counted from the first) stall; None: all.
        stall_mode: "block": a stalled wait_for_frames blocks its timeout_ms, then raises;
            "error": it raises at once.
        fail_starts: the next this-many pipeline.start calls raise RuntimeError (device busy).
        wedged: every pipeline start delivers no frame at all, until a hardware reset.
        reenumerate_s: how long a hardware reset keeps the device off the bus, s.
        hardware_resets: hardware resets received so far.
        tag: channel 2 of every colour pixel.
        depth_scale: metres per depth unit.
        domain: timestamp domain of the frames.
        timestamp_lag_ms: host-clock domains: how old a frame's timestamp is when delivered.
        exposure_range: (min, max) of the colour sensor's exposure option, in option units.
        starts: pipeline starts so far (successful or not). last_frame: number of the frame
            wait_for_frames returned last. stall_times: monotonic times at which
            a start's stream stalled. start_times: monotonic times of successful starts.
    """

    serial: str
    fps_override: float | None = None
    stall_after: int | None = None
    stall_starts: int | None = None
    stall_mode: Literal["block", "error"] = "block"
    fail_starts: int = 0
    wedged: bool = False
    reenumerate_s: float = 0.2
    hardware_resets: int = 0
    tag: int = 7
    depth_scale: float = 0.001
    domain: timestamp_domain = timestamp_domain.hardware_clock
    timestamp_lag_ms: float = 0.0
    exposure_range: tuple[float, float] = (1.0, 10000.0)
    starts: int = 0
    last_frame: int = 0
    start_times: list[float] = field(default_factory=list)
    stall_times: list[float] = field(default_factory=list)
    color_sensor: FakeSensor = field(init=False)
    depth_sensor: FakeSensor = field(init=False)

    def __post_init__(self) -> None:
        lo, hi = self.exposure_range
        self.color_sensor = FakeSensor(
            {
                option.enable_auto_exposure: OptionRange(0, 1, 1, 1),
                option.exposure: OptionRange(lo, hi, 1, 156),
                option.gain: OptionRange(0, 128, 1, 64),
            }
        )
        self.depth_sensor = FakeSensor(
            {option.enable_auto_exposure: OptionRange(0, 1, 1, 1), option.exposure: OptionRange(1, 165000, 1, 8500)},
            depth_scale=self.depth_scale,
        )


class FakeWorld:
    """The fake's state: known devices and which are plugged in. `active` counts running pipelines."""

    def __init__(self, devices: list[FakeDevice], connected: list[str] | None):
        self.devices = {d.serial: d for d in devices}
        self.connected = [d.serial for d in devices] if connected is None else list(connected)
        self.align_calls = 0
        self.active = 0
        self.lock = threading.Lock()

    def unplug(self, serial: str) -> None:
        self.connected.remove(serial)

    def plug(self, serial: str) -> None:
        self.connected.append(serial)

    def hardware_reset(self, serial: str) -> None:
        dev = self.devices[serial]
        if serial not in self.connected:
            raise RuntimeError("hardware_reset: device is disconnected")
        dev.hardware_resets += 1
        self.unplug(serial)
        dev.wedged = False
        timer = threading.Timer(dev.reenumerate_s, self.plug, args=(serial,))
        timer.daemon = True
        timer.start()


class _Frame:
    def __init__(self, data: np.ndarray, number: int, ts_ms: float, domain: timestamp_domain):
        self._data, self._number, self._ts, self._domain = data, number, ts_ms, domain

    def __bool__(self) -> bool:
        return True

    def get_data(self) -> np.ndarray:
        return self._data

    def get_frame_number(self) -> int:
        return self._number

    def get_timestamp(self) -> float:
        return self._ts

    def get_frame_timestamp_domain(self) -> timestamp_domain:
        return self._domain


class _EmptyFrame:
    def __bool__(self) -> bool:
        return False


class _Frameset:
    def __init__(self, color: _Frame | None, depth: _Frame | None, aligned: bool = False):
        self.color, self.depth, self.aligned = color, depth, aligned

    def get_color_frame(self) -> _Frame | _EmptyFrame:
        return self.color or _EmptyFrame()

    def get_depth_frame(self) -> _Frame | _EmptyFrame:
        return self.depth or _EmptyFrame()


class _DeviceHandle:
    def __init__(self, dev: FakeDevice, world: FakeWorld):
        self._dev, self._world = dev, world

    def hardware_reset(self) -> None:
        self._world.hardware_reset(self._dev.serial)

    def get_info(self, info: camera_info) -> str:
        return self._dev.serial if info == camera_info.serial_number else "Intel RealSense D435 (fake)"

    def first_color_sensor(self) -> FakeSensor:
        return self._dev.color_sensor

    def first_depth_sensor(self) -> FakeSensor:
        return self._dev.depth_sensor


class _Profile:
    def __init__(self, dev: FakeDevice, world: FakeWorld):
        self._dev, self._world = dev, world

    def get_device(self) -> _DeviceHandle:
        return _DeviceHandle(self._dev, self._world)


class _Context:
    def __init__(self, world: FakeWorld):
        self._world = world

    def query_devices(self) -> list[_DeviceHandle]:
        return [_DeviceHandle(self._world.devices[s], self._world) for s in list(self._world.connected)]


class _Config:
    def __init__(self) -> None:
        self.serial: str | None = None
        self.streams: dict[stream, tuple[int, int, format, int]] = {}

    def enable_device(self, serial: str) -> None:
        self.serial = serial

    def enable_stream(self, stream_type: stream, width: int, height: int, fmt: format, framerate: int) -> None:
        self.streams[stream_type] = (int(width), int(height), fmt, int(framerate))


class _Pipeline:
    def __init__(self, world: FakeWorld, ctx: _Context | None = None):
        self._world = world
        self._dev: FakeDevice | None = None

    def start(self, cfg: _Config) -> _Profile:
        if self._dev is not None:
            raise RuntimeError("start() cannot be called before stop()")
        w = self._world
        serial = cfg.serial if cfg.serial is not None else (w.connected[0] if w.connected else None)
        if serial is None or serial not in w.connected:
            raise RuntimeError("No device connected")
        dev = w.devices[serial]
        dev.starts += 1
        if dev.fail_starts > 0:
            dev.fail_starts -= 1
            raise RuntimeError("xioctl(VIDIOC_S_FMT) failed, errno=16 Last Error: Device or resource busy")
        if stream.color not in cfg.streams:
            raise RuntimeError("Couldn't resolve requests")
        cw, ch, cfmt, fps = cfg.streams[stream.color]
        if cfmt not in (format.rgb8, format.bgr8):
            raise RuntimeError("Couldn't resolve requests")
        self._color_buf = np.zeros((ch, cw, 3), np.uint8)  # reused for every frame (frame pool)
        self._depth_buf = None
        if stream.depth in cfg.streams:
            dw, dh, dfmt, _ = cfg.streams[stream.depth]
            if dfmt != format.z16:
                raise RuntimeError("Couldn't resolve requests")
            self._depth_buf = np.zeros((dh, dw), np.uint16)
        self._fps = float(dev.fps_override or fps)
        self._t0 = time.monotonic()
        self._delivered = 0
        stalls = dev.stall_starts is None or len(dev.start_times) < dev.stall_starts
        self._stall_after = 0 if dev.wedged else dev.stall_after if stalls else None
        self._stalled_logged = False
        dev.start_times.append(self._t0)
        self._dev = dev
        with w.lock:
            w.active += 1
        return _Profile(dev, w)

    def stop(self) -> None:
        if self._dev is None:
            raise RuntimeError("stop() cannot be called before start()")
        self._dev = None
        with self._world.lock:
            self._world.active -= 1

    def _stall(self, dev: FakeDevice, timeout_ms: int) -> None:
        if not self._stalled_logged:
            dev.stall_times.append(time.monotonic())
            self._stalled_logged = True
        if dev.stall_mode == "block":
            time.sleep(timeout_ms / 1000)
        raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")

    def wait_for_frames(self, timeout_ms: int = 5000) -> _Frameset:
        dev = self._dev
        if dev is None:
            raise RuntimeError("wait_for_frames cannot be called before start()")
        now = time.monotonic()
        # Frame k (1, 2, ...) exists from t0 + k / fps; return the newest unread one.
        newest = math.floor((now - self._t0) * self._fps)
        k = max(newest, self._delivered + 1)
        if (self._stall_after is not None and k > self._stall_after) or dev.serial not in self._world.connected:
            self._stall(dev, timeout_ms)
        due = self._t0 + k / self._fps
        if due - now > timeout_ms / 1000:
            time.sleep(timeout_ms / 1000)
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
        if due > now:
            time.sleep(due - now)
        self._delivered = dev.last_frame = k
        return self._frameset(dev, k, due)

    def _frameset(self, dev: FakeDevice, k: int, due: float) -> _Frameset:
        if dev.domain == timestamp_domain.hardware_clock:
            ts = due * 1000.0
        else:
            ts = time.time() * 1000.0 - dev.timestamp_lag_ms
        self._color_buf[..., 0] = k % 256
        self._color_buf[..., 1] = (k // 256) % 256
        self._color_buf[..., 2] = dev.tag
        color = _Frame(self._color_buf, k, ts, dev.domain)
        depth = None
        if self._depth_buf is not None:
            self._depth_buf[...] = 1000 + k
            depth = _Frame(self._depth_buf, k, ts, dev.domain)
        return _Frameset(color, depth)


class _Align:
    def __init__(self, world: FakeWorld, align_to: stream):
        if align_to != stream.color:
            raise NotImplementedError("the fake aligns to colour only")
        self._world = world

    def process(self, frames: _Frameset) -> _Frameset:
        self._world.align_calls += 1
        if frames.depth is None or frames.color is None:
            return frames
        ch, cw = frames.color.get_data().shape[:2]
        src = frames.depth.get_data()
        # Nearest-neighbour resample onto the colour grid (a real align reprojects with the
        # calibration; the shape contract is what matters here).
        rows = np.arange(ch) * src.shape[0] // ch
        cols = np.arange(cw) * src.shape[1] // cw
        d = frames.depth
        aligned = _Frame(src[rows][:, cols], d.get_frame_number(), d.get_timestamp(), d.get_frame_timestamp_domain())
        return _Frameset(frames.color, aligned, aligned=True)


def make_fake_realsense(devices: list[FakeDevice], connected: list[str] | None = None) -> types.ModuleType:
    """A module object standing in for `pyrealsense2`, with `module.fake` the `FakeWorld`.

    Args:
        devices: the fake cameras.
        connected: serials plugged in at first (default: all of `devices`).
    """
    world = FakeWorld(devices, connected)
    mod = types.ModuleType("pyrealsense2", "fake pyrealsense2 for tests (tests/hardware/fake_realsense.py)")
    mod.fake = world
    mod.stream, mod.format, mod.option = stream, format, option
    mod.camera_info, mod.timestamp_domain = camera_info, timestamp_domain
    mod.context = lambda: _Context(world)
    mod.config = _Config

    def pipeline(ctx: Any = None) -> _Pipeline:
        return _Pipeline(world, ctx)

    def align(align_to: stream) -> _Align:
        return _Align(world, align_to)

    mod.pipeline, mod.align = pipeline, align
    return mod
