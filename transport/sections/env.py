"""The `env:` section of a task config: how the actor's gymnasium environment is assembled (robot
connection, episode limits, action scales, observation layout, cameras, success definition).

The actor builds its env from it; the learner reads it too, to derive the observation layout it
trains on without a robot (hilrl.transport.observation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from hilrl.transport.action import ActionConfig
from hilrl.transport.schema import check_range
from hilrl.transport.sections.gymnasium import GymnasiumEnvConfig
from hilrl.transport.sections.realsense import RealSenseConfig

STATE_KEYS = ("tcp_pose", "tcp_twist", "tcp_wrench", "gripper", "object")


# Width of each state block in the flat `state` vector, in the order of STATE_KEYS.
STATE_WIDTHS = {"tcp_pose": 6, "tcp_twist": 6, "tcp_wrench": 6, "gripper": 1, "object": 3}


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass
class CameraConfig:
    """One camera in the observation: which source, what part of its frame, at what size.

    Attributes:
        name: camera name. Sim: one the robot renders ("front" or "wrist"); a real cell: the
            camera's identifier (e.g. a RealSense serial, with the hardware issue).
        crop: (x, y, width, height) in source pixels, x/y the top-left corner; null keeps the full
            frame. Whether it lies inside the frame is checked when the env is built, against the
            frame the camera really delivers.
        size: (height, width) of the image after crop and resize, pixels. The image is uint8
            (height, width, 3) under `name` in the observation.
        role: "policy": part of the policy observation; "classifier": only for the reward
            classifier, delivered in `info["classifier_images"]` and never in the observation.
    """

    name: str
    crop: tuple[int, int, int, int] | None = None
    size: tuple[int, int] = (128, 128)
    role: Literal["policy", "classifier"] = "policy"

    def __post_init__(self) -> None:
        if not self.name or self.name == "state":
            raise ValueError(f"camera name must be non-empty and not 'state', got {self.name!r}")
        self.size = tuple(int(v) for v in self.size)  # type: ignore[assignment]
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"camera {self.name!r}: size must be two positive pixel counts (height, width), got {self.size}")
        if self.crop is not None:
            self.crop = tuple(int(v) for v in self.crop)  # type: ignore[assignment]
            if len(self.crop) != 4 or min(self.crop[:2]) < 0 or min(self.crop[2:]) < 1:
                raise ValueError(
                    f"camera {self.name!r}: crop must be (x >= 0, y >= 0, width >= 1, height >= 1), got {self.crop}"
                )


@dataclass
class ObservationConfig:
    """What the policy sees.

    Attributes:
        state: blocks of the flat float32 `state` vector, in this order:
            tcp_pose (6: position m and rotation vector rad, relative to the reset pose),
            tcp_twist (6: m/s, rad/s, base frame), tcp_wrench (6: N, N m, base frame),
            gripper (1: opening 0 closed .. 1 open),
            object (3: sim only, the task's object position relative to the current TCP position,
                base frame, m: reach goal, cube centre, or hole top centre).
        cameras: each a plain name (the full frame at the default 128 x 128, for the policy) or a
            `CameraConfig` mapping; after construction every entry is a `CameraConfig`. A policy
            camera adds a uint8 (H, W, 3) image under its name, in this order.
    """

    state: list[str] = field(default_factory=lambda: ["tcp_pose", "tcp_twist", "tcp_wrench", "gripper"])
    # str is accepted so that `cameras: [front, wrist]` (and the override
    # `env.observation.cameras=[front, wrist]`) keep working; __post_init__ normalises.
    cameras: list[str | CameraConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in self.state:
            if key not in STATE_KEYS:
                raise ValueError(f"unknown state block {key!r}; expected some of {', '.join(STATE_KEYS)}")
        self.cameras = [CameraConfig(c) if isinstance(c, str) else c for c in self.cameras]
        names = self.camera_names
        if len(set(self.state)) != len(self.state) or len(set(names)) != len(names):
            raise ValueError("state blocks and cameras must not repeat")

    @property
    def camera_configs(self) -> list[CameraConfig]:
        """Every camera, as `CameraConfig` (policy and classifier)."""
        return [c for c in self.cameras if isinstance(c, CameraConfig)]

    @property
    def camera_names(self) -> list[str]:
        """Names of every camera (policy and classifier), in config order."""
        return [c.name for c in self.camera_configs]

    @property
    def policy_cameras(self) -> list[CameraConfig]:
        """Cameras in the policy observation, in config order."""
        return [c for c in self.camera_configs if c.role == "policy"]

    @property
    def classifier_cameras(self) -> list[CameraConfig]:
        """Cameras only for the reward classifier (in `info["classifier_images"]`)."""
        return [c for c in self.camera_configs if c.role == "classifier"]


@dataclass
class RewardClassifierRef:
    """`env.reward_classifier`: a trained reward classifier decides success instead of the task.

    Attributes:
        path: the classifier's JSON file written by `hilrl train-classifier` (classifier.json; it
            names its weights file, which sits next to it). Relative paths are relative to the
            working directory.
        sha256: lowercase hex SHA-256 of that JSON file, as train-classifier prints it. The JSON
            holds the weights file's SHA-256 in turn, so the config pins the threshold, the
            cameras and the weights: a changed file is refused when the env is built.
        device: where the classifier runs: "cpu", "cuda", or "auto" (cuda when present).
    """

    path: str
    sha256: str
    device: Literal["auto", "cpu", "cuda"] = "cpu"

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path must name the classifier's JSON file (from hilrl train-classifier)")
        self.sha256 = self.sha256.strip().lower()
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise ValueError("sha256 must be 64 hex digits (hilrl train-classifier prints it; or sha256sum the JSON file)")


@dataclass
class EnvConfig:
    """The `env:` section.

    Attributes:
        kind: "robot": our arm, simulated or real, through the robot interface (everything below
            applies); "gymnasium": any gymnasium env, described by `gymnasium`
            (GymnasiumEnvConfig). A gymnasium env runs inside the actor (no robot server); of the
            keys below it uses `max_episode_steps` (its time limit), `success_reward` (an
            operator's success label) and `observation.cameras` (its image parts by name, with
            crop and size); the state is the env's float parts, not `observation.state`.
        gymnasium: the gymnasium env (required with kind gymnasium, refused otherwise).
        connection: "inprocess" runs the simulated arm inside the env's process (no server);
            "server" talks to a `hilrl robot-server` at `robot_server.address`.
        max_episode_steps: time limit; reaching it truncates the episode (never terminates it).
        reset_position_noise_m / reset_rotation_noise_rad: start-pose randomisation half-widths,
            at most 0.1 m / 0.5 rad (and at most the robot server's
            `safety.max_reset_position_noise_m` / `max_reset_rotation_noise_rad`).
        workspace_min_m / workspace_max_m: client-side box TCP targets are clipped to before they
            are sent (the server clips again); null uses the server's box.
        success_reward: reward on the step that reaches success (0 otherwise).
        clear_errors_on_reset: clear latched controller errors at reset (logged, never silent).
            Sensible in the sim; on a real arm leave it off and clear errors deliberately.
        realsense: RealSense cameras on the actor's machine, camera name -> RealSenseConfig
            (serial, resolution, fps, exposure, ...). These names can then be used in
            `observation.cameras` like the sim's cameras; empty in the sim.
        max_frame_age_s: a RealSense frame older than this when an observation is taken is an
            error naming the camera (the camera's own thread restarts a stalled stream).
        success_position_m: TCP position (base frame, m) that counts as success when reached
            within `success_tolerance_m` (null: only the robot's own success signal, the sim's
            task check; an operator's success/failure button always counts too).
        success_tolerance_m: radius of the success region, m.
        reward_classifier: null: success is the task's own check (above). Set: a trained reward
            classifier (`RewardClassifierRef`: its file and hash) sees each step's classifier
            frames (the `role: classifier` cameras, or the policy cameras when there are none)
            and success is its probability >= the threshold stored with it; the task's own check
            is then only reported (info["task_succeeded"]). An operator's success/failure label
            still overrides both (actor/interventions.py).
    """

    kind: Literal["robot", "gymnasium"] = "robot"
    gymnasium: GymnasiumEnvConfig | None = None
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
    realsense: dict[str, RealSenseConfig] = field(default_factory=dict)
    max_frame_age_s: float = 0.5
    success_position_m: tuple[float, float, float] | None = None
    success_tolerance_m: float = 0.005
    reward_classifier: RewardClassifierRef | None = None

    def __post_init__(self) -> None:
        if self.max_frame_age_s <= 0:
            raise ValueError("max_frame_age_s must be > 0")
        if self.success_tolerance_m <= 0:
            raise ValueError("success_tolerance_m must be > 0")
        if self.max_episode_steps < 1:
            raise ValueError("max_episode_steps must be >= 1")
        # The absolute caps of the robot server's reset randomisation (robot_server.safety); the
        # server refuses noise above its own configured caps too.
        check_range("reset_position_noise_m", self.reset_position_noise_m, 0.0, 0.1, unit="m")
        check_range("reset_rotation_noise_rad", self.reset_rotation_noise_rad, 0.0, 0.5, unit="rad")
        if (self.workspace_min_m is None) != (self.workspace_max_m is None):
            raise ValueError("give both workspace_min_m and workspace_max_m, or neither")
        if self.kind == "gymnasium" and self.gymnasium is None:
            raise ValueError("kind gymnasium needs env.gymnasium (at least its id, e.g. env.gymnasium.id=Reacher-v5)")
        if self.kind == "robot" and self.gymnasium is not None:
            raise ValueError("env.gymnasium is set but kind is robot: set env.kind=gymnasium to use it")
        if self.kind == "gymnasium" and (self.realsense or self.reward_classifier is not None):
            raise ValueError("kind gymnasium takes its images from the env: realsense and reward_classifier "
                             "are for a robot (kind robot)")

    @property
    def has_gripper(self) -> bool:
        """Whether the action's last dim is our three-way gripper command."""
        if self.kind == "gymnasium":
            return self.gymnasium is not None and self.gymnasium.gripper is not None
        return self.action.gripper

    @property
    def state_dim(self) -> int:
        """Length of the observation's `state` vector."""
        return sum(STATE_WIDTHS[k] for k in self.observation.state)

    @property
    def action_dim(self) -> int:
        """Length of the action (kind robot only: a gymnasium env's comes from its action space,
        hilrl.transport.gym_spaces)."""
        if self.kind == "gymnasium":
            raise ValueError("a gymnasium env's action size comes from its space (hilrl.transport.gym_spaces.inspect_env)")
        return self.action.dim
