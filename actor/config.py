"""The `env:` section of a task config: how the gymnasium environment is assembled."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from hardware.keyboard import KeyboardConfig
from hardware.realsense import RealSenseConfig
from hardware.spacemouse import SpaceMouseConfig

STATE_KEYS = ("tcp_pose", "tcp_twist", "tcp_wrench", "gripper", "object")
# Width of each state block in the flat `state` vector, in the order of STATE_KEYS.
STATE_WIDTHS = {"tcp_pose": 6, "tcp_twist": 6, "tcp_wrench": 6, "gripper": 1, "object": 3}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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

    @property
    def dim(self) -> int:
        """Action length: xyz, then rotation if enabled, then the gripper if enabled."""
        return 3 + (3 if self.rotation_scale_rad > 0 else 0) + (1 if self.gripper else 0)


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
        connection: "inprocess" runs the simulated arm inside the env's process (no server);
            "server" talks to a `hilrl robot-server` at `robot_server.address`.
        max_episode_steps: time limit; reaching it truncates the episode (never terminates it).
        reset_position_noise_m / reset_rotation_noise_rad: start-pose randomisation half-widths.
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
        if self.reset_position_noise_m < 0 or self.reset_rotation_noise_rad < 0:
            raise ValueError("reset noise must be >= 0")
        if (self.workspace_min_m is None) != (self.workspace_max_m is None):
            raise ValueError("give both workspace_min_m and workspace_max_m, or neither")

    @property
    def state_dim(self) -> int:
        """Length of the observation's `state` vector."""
        return sum(STATE_WIDTHS[k] for k in self.observation.state)

    @property
    def action_dim(self) -> int:
        return self.action.dim


@dataclass
class InterventionConfig:
    """Who may take over from the policy.

    Attributes:
        device: "none"; "scripted" (sim: the task's scripted expert takes over by `rule`);
            "spacemouse" (a 3Dconnexion SpaceMouse, settings under `spacemouse`); "keyboard" (keys
            in the actor's terminal, settings under `keyboard`). The SpaceMouse and keyboard can
            also label an episode as succeeded or failed, which ends it.
        rule: scripted operator only. "drift": take over when the policy's commanded TCP motion
            points away from the expert's by more than `drift_angle_deg` for `patience_steps`
            steps in a row; "random": take over with probability `probability` per step.
        drift_angle_deg, patience_steps: the drift rule's thresholds.
        probability: the random rule's per-step takeover probability.
        takeover_steps: how long the operator drives once it takes over, in steps.
        max_per_episode: at most this many takeovers per episode.
        spacemouse: the SpaceMouse's device, axes, deadzone, hold time and button gestures
            (hardware/spacemouse.py `SpaceMouseConfig`); read only when device is "spacemouse".
        keyboard: the keyboard's keys, speed and hold time (hardware/keyboard.py
            `KeyboardConfig`); read only when device is "keyboard".
    """

    device: Literal["none", "scripted", "spacemouse", "keyboard"] = "none"
    rule: Literal["drift", "random"] = "drift"
    drift_angle_deg: float = 75.0
    patience_steps: int = 3
    probability: float = 0.05
    takeover_steps: int = 8
    max_per_episode: int = 3
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be in [0, 1]")
        if self.takeover_steps < 1 or self.patience_steps < 1 or self.max_per_episode < 0:
            raise ValueError("takeover_steps and patience_steps must be >= 1, max_per_episode >= 0")


@dataclass
class ActorConfig:
    """The `actor:` section: the control loop that runs the policy and streams experience.

    Attributes:
        chunk_steps: records per transition chunk (about one second at 10 Hz).
        random_steps: act uniformly at random for this many env steps, or until weights arrive.
        throttle_updates_per_step: lockstep clock only: wait while the learner has done fewer
            than this many updates per env step (after its warm-up), so the learning curve does not
            depend on how fast the machine is. 0 disables. Never waits on a learner that is gone.
        throttle_slack_steps: env steps the actor may run ahead of the throttle.
        learner_wait_s: throttled lockstep runs only: the longest the actor waits for the learner,
            either for its first welcome at start or for its next update, before stepping on
            without it (logged; the throttle resumes once the learner makes progress).
        device: policy inference device (the actor runs its policy on the CPU by default).
        seed: seeds episodes and exploration.
        eval_every_steps: every this many env steps, evaluate the deterministic policy for
            `eval_episodes` episodes (no interventions, not sent to the learner) and append the
            result to RUN_DIR/actor/eval_curve.jsonl. 0 disables.
        eval_episodes: episodes per periodic evaluation.
        intervention: who may take over.
    """

    chunk_steps: int = 10
    random_steps: int = 0
    throttle_updates_per_step: float = 0.0
    throttle_slack_steps: int = 20
    learner_wait_s: float = 60.0
    device: str = "cpu"
    seed: int = 0
    eval_every_steps: int = 0
    eval_episodes: int = 10
    intervention: InterventionConfig = field(default_factory=InterventionConfig)

    def __post_init__(self) -> None:
        if self.chunk_steps < 1:
            raise ValueError("chunk_steps must be >= 1")
        if self.throttle_updates_per_step < 0 or self.throttle_slack_steps < 0 or not self.learner_wait_s >= 0:
            raise ValueError("throttle settings (throttle_updates_per_step, throttle_slack_steps, learner_wait_s) must be >= 0")
        if self.eval_every_steps < 0 or self.eval_episodes < 1:
            raise ValueError("eval_every_steps must be >= 0 and eval_episodes >= 1")
