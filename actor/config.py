"""The `env:` section of a task config: how the gymnasium environment is assembled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

STATE_KEYS = ("tcp_pose", "tcp_twist", "tcp_wrench", "gripper", "object")
# Width of each state block in the flat `state` vector, in the order of STATE_KEYS.
STATE_WIDTHS = {"tcp_pose": 6, "tcp_twist": 6, "tcp_wrench": 6, "gripper": 1, "object": 3}


@dataclass
class ActionConfig:
    """How a normalised action in [-1, 1] becomes a robot command.

    Attributes:
        translation_scale_m: TCP translation for an action of 1.0 on an axis, per step.
        rotation_scale_rad: TCP rotation for an action of 1.0 on an axis, per step; 0 removes the
            three rotation dimensions from the action space (orientation held at the reset pose).
        gripper: include the gripper dimension (last): >= 0.5 closes, <= -0.5 opens, between stays.
    """

    translation_scale_m: float = 0.02
    rotation_scale_rad: float = 0.0
    gripper: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.translation_scale_m <= 0.1:
            raise ValueError(f"translation_scale_m must be in (0, 0.1], got {self.translation_scale_m}")
        if not 0 <= self.rotation_scale_rad <= 0.5:
            raise ValueError(f"rotation_scale_rad must be in [0, 0.5], got {self.rotation_scale_rad}")


@dataclass
class ObservationConfig:
    """What the policy sees.

    Attributes:
        state: blocks of the flat float32 `state` vector, in this order:
            tcp_pose (6: position m and rotation vector rad, relative to the reset pose),
            tcp_twist (6: m/s, rad/s, base frame), tcp_wrench (6: N, N m, base frame),
            gripper (1: opening 0 closed .. 1 open),
            object (3: sim only, the task's object position relative to the reset TCP position, m:
                reach goal, cube centre, or hole top centre).
        cameras: camera names; each adds a uint8 (H, W, 3) image under its name.
    """

    state: list[str] = field(default_factory=lambda: ["tcp_pose", "tcp_twist", "tcp_wrench", "gripper"])
    cameras: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in self.state:
            if key not in STATE_KEYS:
                raise ValueError(f"unknown state block {key!r}; expected some of {', '.join(STATE_KEYS)}")
        if len(set(self.state)) != len(self.state) or len(set(self.cameras)) != len(self.cameras):
            raise ValueError("state blocks and cameras must not repeat")
        if "state" in self.cameras:
            raise ValueError("a camera may not be called 'state'")


@dataclass
class EnvConfig:
    """The `env:` section.

    Attributes:
        connection: "inprocess" runs the simulated arm inside the env's process (no server);
            "server" talks to a `hilrl robot-server` at `robot_server.address`.
        max_episode_steps: time limit; reaching it truncates the episode (never terminates it).
        reset_position_noise_m / reset_rotation_noise_rad: start-pose randomisation half-widths.
        workspace_min_m / workspace_max_m: client-side box TCP targets are clipped to before they
            are sent (the server clips again); null uses the server's box.
        success_reward: reward on the step that reaches success (0 otherwise).
        clear_errors_on_reset: clear latched controller errors at reset (logged, never silent).
            Sensible in the sim; on a real arm leave it off and clear errors deliberately.
    """

    connection: Literal["inprocess", "server"] = "inprocess"
    max_episode_steps: int = 100
    reset_position_noise_m: float = 0.02
    reset_rotation_noise_rad: float = 0.0
    workspace_min_m: tuple[float, float, float] | None = None
    workspace_max_m: tuple[float, float, float] | None = None
    success_reward: float = 1.0
    clear_errors_on_reset: bool = False
    action: ActionConfig = field(default_factory=ActionConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)

    def __post_init__(self) -> None:
        if self.max_episode_steps < 1:
            raise ValueError("max_episode_steps must be >= 1")
        if self.reset_position_noise_m < 0 or self.reset_rotation_noise_rad < 0:
            raise ValueError("reset noise must be >= 0")
        if (self.workspace_min_m is None) != (self.workspace_max_m is None):
            raise ValueError("give both workspace_min_m and workspace_max_m, or neither")
