"""Configuration of the robot server: the `robot_server:` section of a task YAML file.

Every safety limit here is enforced by the server itself, whatever a client sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transport.link_config import CurveConfig
from transport.robot_messages import ImpedanceParams


@dataclass
class SafetyConfig:
    """Server-side limits on TCP targets.

    Attributes:
        workspace_min_m, workspace_max_m: box (base frame) every TCP target position is clipped to.
        orientation_limit_rad: per-axis half-width of the allowed target orientation, as a rotation
            vector relative to the home orientation (home frame); targets outside are clipped.
        max_step_m: a target may lie at most this far (per axis) from the measured TCP position;
            a larger jump is clipped (bounds how far one command can move the arm).
        max_step_rad: the same limit for orientation (rotation-vector components).
        watchdog_timeout_s: realtime clock only: with no motion command for this long, the server
            sets the target to the measured pose (the arm holds still) until the next command.
        max_force_n: an external force above this latches a "force_limit" controller error (the
            arm holds; motion commands are refused until `ClearErrors`).
    """

    workspace_min_m: tuple[float, float, float] = (0.25, -0.35, 0.0)
    workspace_max_m: tuple[float, float, float] = (0.75, 0.35, 0.45)
    orientation_limit_rad: tuple[float, float, float] = (0.5, 0.5, 1.0)
    max_step_m: float = 0.05
    max_step_rad: float = 0.3
    watchdog_timeout_s: float = 0.2
    max_force_n: float = 100.0

    def __post_init__(self) -> None:
        for i, (lo, hi) in enumerate(zip(self.workspace_min_m, self.workspace_max_m, strict=True)):
            if lo >= hi:
                raise ValueError(f"workspace_min_m[{i}]={lo} must be below workspace_max_m[{i}]={hi}")
        for name in ("max_step_m", "max_step_rad", "watchdog_timeout_s", "max_force_n"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if any(v < 0 for v in self.orientation_limit_rad):
            raise ValueError("orientation_limit_rad must be >= 0")


@dataclass
class SimConfig:
    """Simulated arm settings.

    Attributes:
        timestep_s: physics step; the impedance controller runs at every step.
        image_height, image_width: camera render size in pixels.
    """

    timestep_s: float = 0.002
    image_height: int = 128
    image_width: int = 128

    def __post_init__(self) -> None:
        if not 0.0005 <= self.timestep_s <= 0.005:
            raise ValueError(f"timestep_s must be in [0.0005, 0.005], got {self.timestep_s}")
        if self.image_height < 8 or self.image_width < 8:
            raise ValueError("image_height and image_width must be >= 8")


@dataclass
class ServerConfig:
    """The `robot_server:` section.

    Attributes:
        backend: "sim" (MuJoCo) or "franka" (later issue).
        clock: "lockstep": physics advances only on `Advance` requests (deterministic, for training
            in CI); "realtime": physics follows the wall clock, like a real arm.
        control_rate_hz: control rate of the actor; one lockstep `Advance` is one period.
        address: ZeroMQ endpoint the server binds (and clients connect to). Loopback by default;
            any other address needs `curve`.
        request_timeout_s: how long clients wait for a reply before retrying.
        curve: CurveZMQ keys (`hilrl keys --server-name robot_server --section robot_server`);
            null on loopback.
    """

    backend: Literal["sim", "franka"] = "sim"
    clock: Literal["lockstep", "realtime"] = "lockstep"
    control_rate_hz: float = 10.0
    address: str = "tcp://127.0.0.1:5555"
    request_timeout_s: float = 1.0
    impedance: ImpedanceParams = field(default_factory=ImpedanceParams)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    curve: CurveConfig | None = None

    def __post_init__(self) -> None:
        if not 1.0 <= self.control_rate_hz <= 1000.0:
            raise ValueError(f"control_rate_hz must be in [1, 1000], got {self.control_rate_hz}")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be > 0")

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz
