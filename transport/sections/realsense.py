"""`env.realsense.<name>`: one RealSense camera's settings (the driver is hilrl.hardware.realsense;
the dataclass is here because the env section, which the learner validates too, holds it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RealSenseConfig:
    """One RealSense camera.

    Attributes:
        serial: the device's serial number (`rs-enumerate-devices -s`, or `list_serials()`).
        width_px, height_px: colour stream resolution, pixels; must be a mode the camera offers
            (e.g. 640x480, 848x480, 1280x720 on the D400 series).
        fps: colour (and depth) stream frame rate, frames per second (6, 15, 30, 60, ...).
        exposure_us: manual colour exposure, microseconds; None leaves auto exposure on.
        exposure_unit_us: microseconds per unit of the colour sensor's `exposure` option: 100 for
            the RGB sensor of the D415/D435/D455 (its option counts 100 us steps), 1 where the
            colour image comes from the depth module (D405).
        depth: also stream depth, aligned to the colour image (uint16, same height and width).
        depth_width_px, depth_height_px: depth stream resolution before alignment; None: the
            colour resolution.
        max_frame_age_s: the stream counts as stalled when no new frame has arrived for this long
            (or arriving frames are already this old), and the pipeline is restarted. Several
            frame periods: 0.5 s is 15 frames at 30 fps.
        restart_backoff_s: wait before the first restart after a stall, s; doubles with each
            consecutive failed restart up to `restart_backoff_max_s`.
        restart_backoff_max_s: cap of the restart wait, s.
        hardware_reset_after: consecutive stalls or failed starts of the connected camera (no
            healthy stream in between) after which it gets a USB hardware reset, as if its cable
            were replugged; 0 never resets.
        warmup_frames: frames dropped after every (re)start while auto exposure settles.
    """

    serial: str
    width_px: int = 640
    height_px: int = 480
    fps: int = 30
    exposure_us: float | None = None
    exposure_unit_us: float = 100.0
    depth: bool = False
    depth_width_px: int | None = None
    depth_height_px: int | None = None
    max_frame_age_s: float = 0.5
    restart_backoff_s: float = 0.5
    restart_backoff_max_s: float = 8.0
    hardware_reset_after: int = 3
    warmup_frames: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.serial, str) or not self.serial.strip():
            raise ValueError(f"serial must be a non-empty string, got {self.serial!r}")
        for name in ("width_px", "height_px", "fps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
            setattr(self, name, int(getattr(self, name)))
        for name in ("depth_width_px", "depth_height_px"):
            value = getattr(self, name)
            if value is not None:
                if int(value) < 1:
                    raise ValueError(f"{name} must be >= 1 or None, got {value}")
                setattr(self, name, int(value))
        if self.exposure_us is not None and not self.exposure_us > 0:
            raise ValueError(f"exposure_us must be > 0 microseconds or None (auto), got {self.exposure_us}")
        if not self.exposure_unit_us > 0:
            raise ValueError(f"exposure_unit_us must be > 0, got {self.exposure_unit_us}")
        if not self.max_frame_age_s > 0:
            raise ValueError(f"max_frame_age_s must be > 0 seconds, got {self.max_frame_age_s}")
        if not self.restart_backoff_s > 0:
            raise ValueError(f"restart_backoff_s must be > 0 seconds, got {self.restart_backoff_s}")
        if not self.restart_backoff_max_s >= self.restart_backoff_s:
            raise ValueError(
                f"restart_backoff_max_s must be >= restart_backoff_s ({self.restart_backoff_s}), "
                f"got {self.restart_backoff_max_s}"
            )
        if int(self.hardware_reset_after) < 0:
            raise ValueError(f"hardware_reset_after must be >= 0 (0: never), got {self.hardware_reset_after}")
        self.hardware_reset_after = int(self.hardware_reset_after)
        if int(self.warmup_frames) < 0:
            raise ValueError(f"warmup_frames must be >= 0, got {self.warmup_frames}")
        self.warmup_frames = int(self.warmup_frames)

    @property
    def depth_size_px(self) -> tuple[int, int]:
        """(width, height) of the depth stream before alignment, pixels."""
        return (self.depth_width_px or self.width_px, self.depth_height_px or self.height_px)
