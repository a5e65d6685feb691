"""Intel RealSense cameras for a real cell: one pipeline per serial, newest frame only.

Pattern: a *background newest-frame thread* per camera. The thread pulls framesets from its
pipeline (`wait_for_frames`, in short slices so it can be stopped promptly), copies the colour
image (and, optionally, the depth image aligned to it) out of librealsense's frame pool, and keeps
only the newest one; the actor reads it with `latest()`, which never blocks. An observation wants
the most recent frame, not a queue of old ones, and a control loop must never wait on a camera.

Stalls are handled by *restart with exponential backoff*: when no new frame has arrived for
`max_frame_age_s` (wait_for_frames timing out or raising, the device gone, or frames that are
already too old when they arrive), the thread logs a warning, stops the pipeline, waits
`restart_backoff_s` (doubling up to `restart_backoff_max_s` while restarts keep failing; back to
the initial value once the stream has been healthy for a second) and starts a new pipeline. It
never prompts and never gives up; `stop()` interrupts a backoff wait at once and joins the thread
within a bounded time even while a restart is in progress.

A restart is not always enough: a RealSense can stop delivering frames until its cable is
replugged. After `hardware_reset_after` consecutive stalls or failed starts of a connected camera
(with no healthy stream in between), the thread sends the device a USB hardware reset, the
software equivalent of replugging it; the camera drops off the bus, re-enumerates a few seconds
later, and the ordinary restart-with-backoff picks it up again. While the camera is absent, the
failed restarts do not count towards another reset (a reset cannot reach an absent device).

pyrealsense2 is imported lazily (it is the `real` extra: `pip install -e ".[real]"`), so this
module imports on machines without it; every class also takes the module as `rs_module`, which is
how the tests drive this code against a fake with the same API.

Units: pixels for image sizes, seconds for host times (`time.monotonic()`), milliseconds for
device timestamps (librealsense's unit), microseconds for exposure, metres per unit for depth.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from hilrl.hardware.errors import CameraNotFoundError
from hilrl.transport.sections.realsense import RealSenseConfig

log = logging.getLogger(__name__)

# How long one wait_for_frames call may block (ms). Short, so stop() is noticed promptly; a
# timeout of one slice is not a stall, only max_frame_age_s without a new frame is.
_WAIT_SLICE_MS = 50
# A restarted stream counts as healthy (and the backoff returns to its initial value) after
# delivering frames for this long: a camera that restarts, sends a few frames and stalls again
# must still see its backoff grow.
_HEALTHY_AFTER_S = 1.0
# Window of the measured frame rate.
_FPS_WINDOW_S = 1.0


def import_pyrealsense2() -> ModuleType:
    """Import pyrealsense2, or raise ImportError saying how to install it."""
    try:
        import pyrealsense2  # lazy: an optional dependency, real cells only
    except ImportError as exc:
        raise ImportError(
            "RealSense cameras need pyrealsense2, which is not installed: "
            "pip install pyrealsense2 (or the `real` extra: pip install -e \".[real]\")"
        ) from exc
    return pyrealsense2


def _module(rs_module: ModuleType | None) -> ModuleType:
    return import_pyrealsense2() if rs_module is None else rs_module


def list_serials(rs_module: ModuleType | None = None) -> list[str]:
    """Serial numbers of the RealSense devices connected now, in librealsense's order."""
    rs = _module(rs_module)
    return _serials(rs, rs.context())


def _serials(rs: ModuleType, ctx: Any) -> list[str]:
    return [str(dev.get_info(rs.camera_info.serial_number)) for dev in ctx.query_devices()]


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """One captured frame. The arrays are read-only: every `latest()` caller until the next
    frame shares them (copy before writing in place).

    Attributes:
        image: uint8 (height_px, width_px, 3), RGB.
        depth: uint16 (height_px, width_px), aligned to `image`, in units of the camera's depth
            scale (metres = depth * `RealSenseCamera.depth_scale_m`; 0 = no measurement); None
            without depth.
        capture_time_s: host `time.monotonic()` when the frame reached this process, s.
        device_time_ms: the frame's librealsense timestamp, ms, in the camera's timestamp domain
            (`RealSenseCamera.timestamp_domain`: hardware clock, or host clock for system/global
            time).
        frame_number: the device's frame counter (restarts from a low value after a restart).
    """

    image: np.ndarray
    depth: np.ndarray | None
    capture_time_s: float
    device_time_ms: float
    frame_number: int


class RealSenseCamera:
    """One RealSense camera streaming in a background thread; `latest()` is its newest frame.

    Usage::

        cam = RealSenseCamera(RealSenseConfig(serial="123456789012"))
        cam.start()                      # raises CameraNotFoundError if the serial is absent
        frame = cam.wait_for_frame(2.0)  # or poll latest(), which is None until the first frame
        ...
        cam.stop()

    Attributes:
        config: the camera's config.
        restarts: pipeline restarts since `start()` (diagnostics; successful or not).
        hardware_resets: USB hardware resets sent since `start()`.
        depth_scale_m: metres per depth unit (None until started, or without depth).
        timestamp_domain: the librealsense timestamp domain of `device_time_ms` ("" until the first
            frame).
        last_error: the reason of the most recent stall or failed restart ("" if none).
    """

    def __init__(self, config: RealSenseConfig, rs_module: ModuleType | None = None):
        self.config = config
        self._rs_module = rs_module
        self.restarts = 0
        self.hardware_resets = 0
        self._failures = 0  # consecutive stalls and failed starts of the connected camera
        self.depth_scale_m: float | None = None
        self.timestamp_domain = ""
        self.last_error = ""
        self._lock = threading.Lock()
        self._latest: CameraFrame | None = None
        self._arrivals: collections.deque[float] = collections.deque()
        self._new_frame = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: threading.Thread | None = None  # a thread stop() had to leave behind
        # Owned by the worker thread once it runs (start() hands the first pipeline over).
        self._rs: ModuleType | None = None
        self._pipe: Any = None
        self._align: Any = None
        self._stream_start_s = 0.0
        self._backoff_s = config.restart_backoff_s

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the camera and start the background thread.

        The first pipeline is started here, so a missing camera, an unsupported mode or an
        out-of-range exposure raises now rather than in the thread.

        Raises:
            ImportError: pyrealsense2 is not installed.
            CameraNotFoundError: `config.serial` is not connected.
            ValueError: the exposure is outside the sensor's range.
            RuntimeError: librealsense refused the stream configuration.
        """
        if self._thread is not None:
            raise RuntimeError(f"RealSense {self.config.serial}: already started")
        if self._stuck is not None and self._stuck.is_alive():
            # It shares this object's state and would wake up into the new stream.
            raise RuntimeError(
                f"RealSense {self.config.serial}: the previous capture thread is still stuck in "
                "librealsense; unplug/replug the camera or restart the process"
            )
        self._rs = _module(self._rs_module)
        ctx = self._rs.context()
        connected = _serials(self._rs, ctx)
        if self.config.serial not in connected:
            raise CameraNotFoundError([self.config.serial], connected)
        self._pipe = self._open(ctx)
        self._stop.clear()
        # Daemon: a thread stuck inside librealsense must not keep the process alive; stop()
        # does not wait for it beyond its timeout.
        self._thread = threading.Thread(
            target=self._run, name=f"realsense-{self.config.serial}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop streaming and join the thread, waiting at most about `timeout_s` seconds.

        A backoff wait is interrupted at once; a wait_for_frames call returns within one short
        slice. If librealsense itself hangs (pipeline stop or start on a wedged device), the
        daemon thread is left behind with a warning rather than hanging the caller.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            self._stuck = thread
            log.warning(
                "RealSense %s: capture thread did not stop within %.1f s (stuck in librealsense); "
                "leaving it behind",
                self.config.serial,
                timeout_s,
            )

    def __enter__(self) -> RealSenseCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None and self._thread.is_alive()

    # ---- reading ---------------------------------------------------------------------------

    def latest(self) -> CameraFrame | None:
        """The newest frame, or None before the first one. Never blocks."""
        with self._lock:
            return self._latest

    def age_s(self) -> float:
        """Seconds since the newest frame arrived (`math.inf` before the first frame)."""
        frame = self.latest()
        return math.inf if frame is None else time.monotonic() - frame.capture_time_s

    def wait_for_frame(self, timeout_s: float, newer_than: float = -math.inf) -> CameraFrame:
        """Block until a frame captured after `newer_than` (host monotonic s) exists; return it.

        For start-up and diagnostics, not the control loop (use `latest()` there).

        Raises:
            TimeoutError: none arrived within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        with self._new_frame:
            while self._latest is None or self._latest.capture_time_s <= newer_than:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"RealSense {self.config.serial}: no frame within {timeout_s:.2f} s"
                        + (f" (last error: {self.last_error})" if self.last_error else "")
                    )
                self._new_frame.wait(left)
            return self._latest

    @property
    def fps(self) -> float:
        """Measured frame rate: frames delivered in the last second (over the time streamed, if
        shorter), frames per second; 0 when stalled."""
        now = time.monotonic()
        with self._lock:
            while self._arrivals and self._arrivals[0] <= now - _FPS_WINDOW_S:
                self._arrivals.popleft()
            window = min(_FPS_WINDOW_S, now - self._stream_start_s)
            return len(self._arrivals) / window if window > 0 else 0.0

    # ---- worker ----------------------------------------------------------------------------

    def _open(self, ctx: Any) -> Any:
        """Start a pipeline for this serial on `ctx`, set exposure; returns the pipeline."""
        rs, cfg = self._rs, self.config
        assert rs is not None
        rs_cfg = rs.config()
        rs_cfg.enable_device(cfg.serial)
        rs_cfg.enable_stream(rs.stream.color, cfg.width_px, cfg.height_px, rs.format.rgb8, cfg.fps)
        if cfg.depth:
            dw, dh = cfg.depth_size_px
            rs_cfg.enable_stream(rs.stream.depth, dw, dh, rs.format.z16, cfg.fps)
        pipe = rs.pipeline(ctx)
        profile = pipe.start(rs_cfg)
        try:
            device = profile.get_device()
            self._set_exposure(device)
            if cfg.depth:
                self.depth_scale_m = float(device.first_depth_sensor().get_depth_scale())
                # One align block per pipeline: it caches calibration from the first frameset.
                self._align = rs.align(rs.stream.color)
            else:
                self._align = None
        except BaseException:
            _stop_quietly(pipe, cfg.serial)
            raise
        self._stream_start_s = time.monotonic()
        return pipe

    def _set_exposure(self, device: Any) -> None:
        rs, cfg = self._rs, self.config
        assert rs is not None
        try:
            sensor = device.first_color_sensor()
        except RuntimeError as exc:
            if cfg.exposure_us is None:
                return  # nothing to set; the device default (auto) applies
            raise RuntimeError(f"RealSense {cfg.serial}: no colour sensor to set exposure on ({exc})") from exc
        if cfg.exposure_us is None:
            # Set explicitly: options survive a pipeline restart, so an earlier manual setting
            # (another program, an older config) would otherwise stick.
            sensor.set_option(rs.option.enable_auto_exposure, 1)
            return
        value = cfg.exposure_us / cfg.exposure_unit_us
        if sensor.supports(rs.option.exposure):
            r = sensor.get_option_range(rs.option.exposure)
            if not r.min <= value <= r.max:
                raise ValueError(
                    f"RealSense {cfg.serial}: exposure_us {cfg.exposure_us} is outside the colour "
                    f"sensor's range {r.min * cfg.exposure_unit_us:g}..{r.max * cfg.exposure_unit_us:g} us "
                    f"(exposure_unit_us {cfg.exposure_unit_us:g})"
                )
        # Auto exposure off first: while it is on, the sensor owns the exposure value.
        sensor.set_option(rs.option.enable_auto_exposure, 0)
        sensor.set_option(rs.option.exposure, float(value))

    def _run(self) -> None:
        pipe, self._pipe = self._pipe, None
        try:
            while not self._stop.is_set():
                if pipe is None:
                    pipe = self._restart()
                    if pipe is None:
                        continue  # failed; backoff already waited (or stop was requested)
                reason = self._stream(pipe)
                _stop_quietly(pipe, self.config.serial)
                pipe = None
                if reason is None:
                    break  # stop requested
                self.last_error = reason
                self._failures += 1
                log.warning(
                    "RealSense %s stalled: %s; restarting the pipeline in %.3g s (restart %d)",
                    self.config.serial,
                    reason,
                    self._backoff_s,
                    self.restarts + 1,
                )
                self._backoff_wait()
        finally:
            if pipe is not None:
                _stop_quietly(pipe, self.config.serial)

    def _backoff_wait(self) -> None:
        """Wait the current backoff (interrupted by stop()), then double it for next time."""
        self._stop.wait(self._backoff_s)
        self._backoff_s = min(2 * self._backoff_s, self.config.restart_backoff_max_s)

    def _restart(self) -> Any:
        """One restart attempt: a fresh context (sees a re-enumerated device) and pipeline.
        Returns the pipeline, or None after logging the failure and waiting the backoff."""
        if self._stop.is_set():
            return None
        self.restarts += 1
        assert self._rs is not None
        try:
            ctx = self._rs.context()
            connected = _serials(self._rs, ctx)
            if self.config.serial not in connected:
                raise CameraNotFoundError([self.config.serial], connected)
            if 0 < self.config.hardware_reset_after <= self._failures:
                self._hardware_reset(ctx)
                self._backoff_wait()
                return None
            pipe = self._open(ctx)
        except Exception as exc:  # any failure is retried, never fatal
            self.last_error = f"restart failed: {exc}"
            if not isinstance(exc, CameraNotFoundError):
                self._failures += 1
            log.warning(
                "RealSense %s: restart %d failed (%s); next try in %.3g s",
                self.config.serial,
                self.restarts,
                exc,
                self._backoff_s,
            )
            self._backoff_wait()
            return None
        log.info("RealSense %s: pipeline restarted (restart %d)", self.config.serial, self.restarts)
        return pipe

    def _hardware_reset(self, ctx: Any) -> None:
        """Send the connected device a USB hardware reset; it re-enumerates on its own."""
        assert self._rs is not None
        device = next(d for d in ctx.query_devices()
                      if str(d.get_info(self._rs.camera_info.serial_number)) == self.config.serial)
        log.warning(
            "RealSense %s: %d stalls or failed starts in a row; sending a hardware reset (as if the cable "
            "were replugged); it re-enumerates in a few seconds",
            self.config.serial, self._failures,
        )
        self._failures = 0  # whatever happens next, the next reset waits for as many failures again
        self.hardware_resets += 1
        device.hardware_reset()

    def _stream(self, pipe: Any) -> str | None:
        """Pull frames until a stall (returns the reason) or stop() (returns None)."""
        max_age = self.config.max_frame_age_s
        last_new = time.monotonic()  # the stall clock starts when the pipeline does
        healthy = False
        warmup_left = self.config.warmup_frames
        last_key: tuple[int, float] | None = None
        last_error = ""
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                frames = pipe.wait_for_frames(_WAIT_SLICE_MS)
            except Exception as exc:  # timeouts and device errors alike
                # "Frame didn't arrive within N" after one slice is normal between frames at low
                # rates; an error returned at once must not become a busy loop.
                frames = None
                last_error = str(exc)
                spent = time.monotonic() - t0
                if spent < _WAIT_SLICE_MS / 1000:
                    self._stop.wait(_WAIT_SLICE_MS / 1000 - spent)
            now = time.monotonic()
            if frames is not None:
                try:
                    result = self._take(frames, now, last_key, warmup_left > 0)
                except Exception as exc:  # a bad frameset is a stall, not a crash
                    result = None
                    last_error = f"frame processing failed: {exc!r}"
                if result is not None:
                    last_key, published = result
                    last_new = now
                    if not published:
                        warmup_left -= 1
                    if not healthy and now - self._stream_start_s >= _HEALTHY_AFTER_S:
                        healthy = True
                        self._backoff_s = self.config.restart_backoff_s
                        self._failures = 0
            silent = now - last_new
            if silent > max_age:
                why = f"; last error: {last_error}" if last_error else ""
                return f"no new frame for {silent:.2f} s (max_frame_age_s {max_age:g}){why}"
        return None

    def _take(
        self, frames: Any, now: float, last_key: tuple[int, float] | None, warming_up: bool
    ) -> tuple[tuple[int, float], bool] | None:
        """Handle one frameset. Returns None if it holds no new, fresh colour frame, else
        (its (frame number, timestamp) key, whether it was published; False while warming up)."""
        rs, cfg = self._rs, self.config
        assert rs is not None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        key = (int(color.get_frame_number()), float(color.get_timestamp()))
        if key == last_key:
            return None  # the same frame again: not evidence that the stream is alive
        domain = color.get_frame_timestamp_domain()
        if domain in (rs.timestamp_domain.system_time, rs.timestamp_domain.global_time):
            # Host-clock timestamps (ms since the epoch) tell a frame that is old on arrival,
            # e.g. a backlog after a USB hiccup; it does not count as the stream being alive.
            if time.time() * 1000.0 - key[1] > cfg.max_frame_age_s * 1000.0:
                return None
        if warming_up:
            return key, False
        # Copy: the array views librealsense's frame pool, which reuses the memory.
        image = np.array(np.asanyarray(color.get_data()), dtype=np.uint8, copy=True)
        image.flags.writeable = False
        depth = None
        if self._align is not None:
            depth_frame = frames.get_depth_frame()
            if depth_frame:
                depth = np.array(np.asanyarray(depth_frame.get_data()), dtype=np.uint16, copy=True)
                depth.flags.writeable = False
        frame = CameraFrame(image, depth, now, key[1], key[0])
        with self._new_frame:
            self._latest = frame
            self._arrivals.append(now)
            self._new_frame.notify_all()
        self.timestamp_domain = str(domain)
        return key, True


def _stop_quietly(pipe: Any, serial: str) -> None:
    try:
        pipe.stop()
    except Exception as exc:  # a dead device may refuse; it is dropped anyway
        log.debug("RealSense %s: pipeline stop failed: %s", serial, exc)


class RealSenseRig:
    """Several RealSense cameras by name, e.g. {"front": ..., "wrist": ...}.

    `images()` gives the env what it needs per step: {name: (image, capture_time_s)}, the newest
    frame of each camera (crop and resize are the env's job, actor/frames.py).
    """

    def __init__(self, cameras: Mapping[str, RealSenseConfig], rs_module: ModuleType | None = None):
        if not cameras:
            raise ValueError("RealSenseRig needs at least one camera")
        by_serial: dict[str, str] = {}
        for name, cfg in cameras.items():
            if cfg.serial in by_serial:
                raise ValueError(
                    f"cameras {by_serial[cfg.serial]!r} and {name!r} have the same serial "
                    f"{cfg.serial}; one pipeline per device"
                )
            by_serial[cfg.serial] = name
        self._rs_module = rs_module
        self.cameras = {name: RealSenseCamera(cfg, rs_module) for name, cfg in cameras.items()}

    def start(self, first_frame_timeout_s: float | None = 5.0) -> None:
        """Start every camera; then (unless `first_frame_timeout_s` is None) wait until each has
        delivered a frame. On any failure the cameras already started are stopped again.

        Raises:
            CameraNotFoundError: naming every missing camera, with the connected serials.
            TimeoutError: a camera delivered no frame in time.
        """
        connected = list_serials(self._rs_module)
        missing = [f"{name!r} ({cam.config.serial})" for name, cam in self.cameras.items()
                   if cam.config.serial not in connected]
        if missing:
            raise CameraNotFoundError(missing, connected)
        try:
            for cam in self.cameras.values():
                cam.start()
            if first_frame_timeout_s is not None:
                deadline = time.monotonic() + first_frame_timeout_s
                for cam in self.cameras.values():
                    cam.wait_for_frame(max(deadline - time.monotonic(), 0.0))
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop every camera (each joins within about `timeout_s`)."""
        for cam in self.cameras.values():
            cam.stop(timeout_s)

    def __enter__(self) -> RealSenseRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def latest(self) -> dict[str, CameraFrame | None]:
        """The newest frame of each camera (None before its first). Never blocks."""
        return {name: cam.latest() for name, cam in self.cameras.items()}

    def images(self, max_age_s: float | None = None) -> dict[str, tuple[np.ndarray, float]]:
        """{name: (uint8 (H, W, 3) RGB image, capture_time_s on time.monotonic())}. Never blocks.

        Raises:
            RuntimeError: a camera has no frame yet, or (with `max_age_s`) only one older than
                `max_age_s` seconds; names the cameras.
        """
        out: dict[str, tuple[np.ndarray, float]] = {}
        bad: list[str] = []
        now = time.monotonic()
        for name, cam in self.cameras.items():
            frame = cam.latest()
            if frame is None:
                bad.append(f"{name!r}: no frame yet")
            elif max_age_s is not None and now - frame.capture_time_s > max_age_s:
                bad.append(f"{name!r}: newest frame {now - frame.capture_time_s:.2f} s old")
            else:
                out[name] = (frame.image, frame.capture_time_s)
        if bad:
            raise RuntimeError("RealSense frames unavailable: " + "; ".join(bad))
        return out

    def diagnostics(self) -> dict[str, dict[str, Any]]:
        """Per camera: serial, measured fps, frame age (s), restarts, hardware resets, last error
        (for doctor)."""
        return {
            name: {
                "serial": cam.config.serial,
                "fps": cam.fps,
                "age_s": cam.age_s(),
                "restarts": cam.restarts,
                "hardware_resets": cam.hardware_resets,
                "last_error": cam.last_error,
            }
            for name, cam in self.cameras.items()
        }
