"""`env.gymnasium`: any gymnasium environment as the actor's env (with `env.kind: gymnasium`).

The env is built with `gymnasium.make(id, max_episode_steps=env.max_episode_steps, **kwargs)`
after importing `import_modules` (packages that register their envs on import, such as
`gymnasium_robotics` or `metaworld`). Its spaces are mapped onto the project's contracts by
hilrl.transport.gym_spaces: float parts of the observation become the `state` vector, uint8
(H, W, 3) parts can be cameras (named in `env.observation.cameras`, cropped and resized as for a
robot's cameras), and our [-1, 1] action is rescaled onto the env's Box, with an optional gripper
dimension whose convention is declared here (`gripper`) and validated against the space.

Example (gymnasium-robotics' Fetch, whose action's last dim is a continuous finger command):

    task: fetch_push
    env:
      kind: gymnasium
      max_episode_steps: 50
      gymnasium:
        id: FetchPush-v4
        import_modules: [gymnasium_robotics]
        state_parts: [observation, desired_goal]
        success_info_key: is_success
        expert: my_lab.experts:fetch_push     # for `hilrl record-demos` and the scripted operator
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_MODULE = re.compile(r"[A-Za-z_][\w.]*")


@dataclass
class GripperMapping:
    """The env's gripper action dimension and its convention (`env.gymnasium.gripper`).

    Our gripper command is three-way: <= -GRIPPER_THRESHOLD opens, >= GRIPPER_THRESHOLD closes,
    between stays (hilrl.transport.action). Declare which values of the env's action do the same.

    Attributes:
        index: the gripper's position in the env's action vector (negative counts from the end).
        open / close: the env's action values that open and close the gripper.
        stay: the env's value that keeps the gripper as it is; null for an env with no such value
            (binary grippers): then "stay" repeats the env's last gripper command.
    Example, an env taking 0 = close, 1 = stay, 2 = open on its last dim:
    {index: -1, open: 2, stay: 1, close: 0}. An env whose gripper is a continuous effort (Meta-World,
    Fetch) needs no mapping: leave `gripper` null and the dimension is one more continuous one.
    """

    index: int = -1
    open: float = -1.0
    close: float = 1.0
    stay: float | None = None

    def __post_init__(self) -> None:
        if self.open == self.close:
            raise ValueError(f"gripper open and close must differ, both are {self.open}")
        if self.stay is not None and self.stay in (self.open, self.close):
            raise ValueError(f"gripper stay ({self.stay}) must differ from open ({self.open}) and close ({self.close})")


@dataclass
class GymnasiumEnvConfig:
    """`env.gymnasium`: which gymnasium env, and how its results read.

    Attributes:
        id: the registered env id ("FetchPush-v4", "Meta-World/MT1", "Reacher-v5"); gymnasium's
            "module:Id" form works too.
        kwargs: keyword arguments for `gymnasium.make` (e.g. {env_name: pick-place-v3}).
        import_modules: modules imported before `make`, for packages that register their envs on
            import; a module that is not installed is an error naming it.
        state_parts: the float observation parts that make the state, by dotted path in a Dict
            observation ("observation", "goal.position"); they are concatenated in the space's own
            order, whatever the order here. null: every float part.
        gripper: the gripper dimension's convention (GripperMapping); null: no gripper dimension,
            every action dim is continuous (our gripper exploration and grasp critic are then off).
        success_info_key: the info key that says the task succeeded ("is_success", "success");
            "" for an env with none (only an operator's label then counts as success).
        success_at_least: null: the key's value is success when truthy; a number: success when
            the value is >= it (for envs that report a score or a negative distance).
        success_ends_episode: end the episode (terminated) on the first successful step, as our
            own tasks do; off: the env's own termination stands and an episode succeeded when its
            final step did. Only for envs whose reward does not keep paying after success (a
            step penalty, as Fetch's -1, or a one-off bonus): with a positive per-step reward (as
            Meta-World's shaped one) ending at success forfeits the rest of the episode's reward,
            and the agent learns to avoid success.
        expert: a scripted policy as "module:callable", for `hilrl record-demos`, `hilrl run`'s
            demonstrations and the scripted operator. The callable takes the env's raw
            observation and returns the env's action; a class is instantiated with no arguments
            and its `get_action(observation)` used (Meta-World's scripted policies), with its
            `reset()` called at each episode start when it has one.
    """

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    import_modules: list[str] = field(default_factory=list)
    state_parts: list[str] | None = None
    gripper: GripperMapping | None = None
    success_info_key: str = ""
    success_at_least: float | None = None
    success_ends_episode: bool = False
    expert: str = ""

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise ValueError("id must name a registered gymnasium env (e.g. Reacher-v5)")
        for module in self.import_modules:
            if not _MODULE.fullmatch(module):
                raise ValueError(f"import_modules: {module!r} is not a module name")
        if self.expert and not _CALLABLE.fullmatch(self.expert):
            raise ValueError(f"expert must be 'module:callable' (e.g. my_lab.experts:push), got {self.expert!r}")
        if self.state_parts is not None and (not self.state_parts or len(set(self.state_parts)) != len(self.state_parts)):
            raise ValueError("state_parts must name at least one part, each once (null: every float part)")
        if self.success_at_least is not None and not math.isfinite(self.success_at_least):
            raise ValueError(f"success_at_least must be a finite number, got {self.success_at_least}")
        if self.success_at_least is not None and not self.success_info_key:
            raise ValueError("success_at_least needs success_info_key (the info value it compares)")
