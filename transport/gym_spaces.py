"""Mapping any gymnasium env's spaces onto the project's contracts, so an env this project did not
write can be the actor's env and the learner can train on it.

Observations (`ObservationLayout`):
    float Box parts        -> the flat float32 `state`, concatenated in the order of the env's
                              space, depth first through nested Dicts (a Dict's own key order, which
                              is what gymnasium's flatten uses), each part flattened C-order
    uint8 (H, W, 3) Boxes  -> cameras, named by their dotted path in the Dict ("pixels",
                              "images.front"); a bare image space is camera "image"
    anything else          -> an error naming the part and why (Discrete, Text, Tuple, a uint8 Box
                              that is not an RGB image, an integer Box, ...)

Actions (`ActionLayout`): the env's action space must be one finite Box. Our action is in
[-1, 1] per dimension (hilrl.transport.action): the continuous dims are rescaled linearly onto the
env's bounds; an optional gripper dimension (`GripperMapping`) is our three-way command
(<= -GRIPPER_THRESHOLD open, >= GRIPPER_THRESHOLD close, between: stay) mapped onto the values
the env declares for open, stay and close, and placed at the env's index for it. Ours puts it
last, as everywhere in the project. A declared convention is checked against the space (values
inside its bounds, open != close), so storing another project's 0/1/2 grip values as ours, where
0 would read as "stay", cannot happen silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hilrl.transport.action import GRIPPER_THRESHOLD
from hilrl.transport.learner_messages import ObservationSpec
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.gymnasium import GripperMapping, GymnasiumEnvConfig

__all__ = ["ActionLayout", "GripperMapping", "ObservationLayout", "SpaceMappingError", "EnvLayout",
           "inspect_env", "load_callable", "make_gymnasium_env", "map_action_space", "map_observation_space"]


class SpaceMappingError(ValueError):
    """A gymnasium space part that cannot be mapped; the message names the part and the fix."""

    def as_schema_error(self) -> SchemaError:
        """The same problem as a config error under its key: the `env.*` key the message starts
        with, else `env.gymnasium` (a part of the env's own spaces)."""
        text = str(self)
        key, sep, rest = text.partition(": ")
        if sep and key.startswith("env.") and " " not in key:
            return SchemaError(key, rest)
        return SchemaError("env.gymnasium", text)


# ---------------------------------------------------------------------- observations


@dataclass(frozen=True)
class _Part:
    path: tuple[str, ...]  # keys from the top Dict down ( () for a bare space)
    kind: str  # "state" or "camera"
    shape: tuple[int, ...]


def _dotted(path: tuple[str, ...], default: str) -> str:
    return ".".join(path) if path else default


@dataclass
class ObservationLayout:
    """Where each part of an env's observation goes. Build with `map_observation_space`.

    Attributes:
        parts: in order; state parts fill `state` one after another.
        state_dim: length of the concatenated state.
        cameras: camera name -> (H, W, 3).
    """

    parts: list[_Part]
    state_dim: int
    cameras: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def spec(self) -> ObservationSpec:
        """What the learner trains on and the actor's handshake sends."""
        return ObservationSpec(state_dim=self.state_dim, cameras={k: list(v) for k, v in self.cameras.items()})

    @property
    def state_parts(self) -> list[str]:
        """The state parts' dotted paths, in order, with their widths ("obs.qpos[7]")."""
        return [f"{_dotted(p.path, 'observation')}[{int(np.prod(p.shape))}]" for p in self.parts if p.kind == "state"]

    def convert(self, obs: Any) -> dict[str, np.ndarray]:
        """An env observation -> {"state": (S,) float32, camera: (H, W, 3) uint8}."""
        state = []
        out: dict[str, np.ndarray] = {}
        for part in self.parts:
            value = obs
            for key in part.path:
                value = value[key]
            array = np.asarray(value)
            if array.shape != part.shape:
                raise SpaceMappingError(f"observation {_dotted(part.path, 'observation')} has shape {array.shape}, "
                                        f"its space says {part.shape}")
            if part.kind == "state":
                state.append(array.astype(np.float32, copy=False).reshape(-1))
            else:
                out[_dotted(part.path, "image")] = array.astype(np.uint8, copy=False)
        out["state"] = np.concatenate(state) if state else np.zeros(0, np.float32)
        return out


def map_observation_space(space: Any, state_parts: list[str] | None = None) -> ObservationLayout:
    """The layout of a gymnasium observation space (see the module docstring).

    Args:
        state_parts: keep only these float parts (dotted paths) in the state, in the space's
            order; None keeps every float part. Float parts left out are ignored.
    Raises:
        SpaceMappingError: a part that is neither a float Box nor a uint8 (H, W, 3) Box, a
            `state_parts` name that is no float part, or no state part at all (the policy needs
            at least a proprioceptive vector).
    """
    from gymnasium import spaces  # the env package's own dependency; imported where it is used

    parts: list[_Part] = []

    def visit(sub: Any, path: tuple[str, ...]) -> None:
        where = _dotted(path, "observation")
        if isinstance(sub, spaces.Dict):
            for key, child in sub.spaces.items():
                visit(child, (*path, str(key)))
        elif isinstance(sub, spaces.Box):
            dtype = np.dtype(sub.dtype)
            if dtype == np.uint8:
                if len(sub.shape) == 3 and sub.shape[2] == 3:
                    parts.append(_Part(path, "camera", tuple(sub.shape)))
                else:
                    raise SpaceMappingError(f"observation {where}: a uint8 Box of shape {sub.shape} is not an RGB "
                                            "image (H, W, 3); give float values for a state part")
            elif np.issubdtype(dtype, np.floating):
                parts.append(_Part(path, "state", tuple(sub.shape)))
            else:
                raise SpaceMappingError(f"observation {where}: a {dtype} Box cannot be mapped: state parts are float "
                                        "Boxes, cameras uint8 (H, W, 3) Boxes (wrap the env to cast it)")
        else:
            raise SpaceMappingError(
                f"observation {where}: {type(sub).__name__} spaces cannot be mapped (only Box and Dict): wrap the "
                "env with a gymnasium ObservationWrapper that turns it into a float Box")

    visit(space, ())
    if state_parts is not None:
        floats = [_dotted(p.path, "observation") for p in parts if p.kind == "state"]
        unknown = [name for name in state_parts if name not in floats]
        if unknown:
            raise SpaceMappingError(f"env.gymnasium.state_parts: {', '.join(unknown)} is no float part of the "
                                    f"observation; its float parts are {', '.join(floats) or 'none'}")
        parts = [p for p in parts if p.kind == "camera" or _dotted(p.path, "observation") in state_parts]
    state_dim = sum(int(np.prod(p.shape)) for p in parts if p.kind == "state")
    if state_dim == 0:
        raise SpaceMappingError("the observation has no float part: the policy needs a state vector (give one, "
                                "e.g. the robot's joint positions, next to the images)")
    cameras = {_dotted(p.path, "image"): tuple(p.shape) for p in parts if p.kind == "camera"}
    if "state" in cameras:
        raise SpaceMappingError("observation: a camera may not be called 'state' (rename it with a wrapper)")
    return ObservationLayout(parts, state_dim, cameras)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- actions


@dataclass
class ActionLayout:
    """Our action [-1, 1]^A (gripper last) <-> the env's Box action. Build with `map_action_space`.

    Attributes:
        low / high: the env's bounds of its continuous dims (in env order, without the gripper).
        env_dim: length of the env's action. gripper_index: its gripper dim (None: none).
    """

    low: np.ndarray
    high: np.ndarray
    env_dim: int
    gripper: GripperMapping | None = None
    gripper_index: int | None = None
    _last_gripper: float | None = None

    @property
    def action_dim(self) -> int:
        """Length of our action (continuous dims, then the gripper)."""
        return len(self.low) + (1 if self.gripper is not None else 0)

    def reset(self) -> None:
        """At an episode start: a binary gripper's "stay" has no last command yet (it opens)."""
        self._last_gripper = None

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Our action (action_dim,) in [-1, 1] -> the env's action (env_dim,)."""
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        n = len(self.low)
        continuous = self.low + (action[:n] + 1.0) * 0.5 * (self.high - self.low)
        if self.gripper is None:
            return continuous.astype(np.float32)
        g, command = self.gripper, float(action[n])
        if command >= GRIPPER_THRESHOLD:
            value = g.close
        elif command <= -GRIPPER_THRESHOLD:
            value = g.open
        elif g.stay is not None:
            value = g.stay
        else:
            value = self._last_gripper if self._last_gripper is not None else g.open
        self._last_gripper = value
        out = np.insert(continuous, self.gripper_index, value) if self.gripper_index is not None else continuous
        return out.astype(np.float32)

    def from_env(self, env_action: np.ndarray) -> np.ndarray:
        """The env's action (a scripted expert's, a dataset's) -> ours. Raises SpaceMappingError
        for a gripper value that is none of the declared ones (a wrong convention)."""
        env_action = np.asarray(env_action, np.float64)
        if env_action.shape != (self.env_dim,):
            raise SpaceMappingError(f"env action has shape {env_action.shape}, the env's space is ({self.env_dim},)")
        keep = np.ones(self.env_dim, bool)
        if self.gripper_index is not None:
            keep[self.gripper_index] = False
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        ours = np.clip(2.0 * (env_action[keep] - self.low) / span - 1.0, -1.0, 1.0)
        if self.gripper is None:
            return ours.astype(np.float32)
        g, value = self.gripper, float(env_action[self.gripper_index])
        known = {g.open: -1.0, g.close: 1.0, **({g.stay: 0.0} if g.stay is not None else {})}
        match = [ours_value for env_value, ours_value in known.items() if np.isclose(value, env_value)]
        if not match:
            raise SpaceMappingError(
                f"env gripper value {value:g} is none of the declared ones (open {g.open:g}, close {g.close:g}"
                f"{f', stay {g.stay:g}' if g.stay is not None else ''}): check env.gymnasium.gripper")
        return np.append(ours, match[0]).astype(np.float32)


def map_action_space(space: Any, gripper: GripperMapping | None = None) -> ActionLayout:
    """The layout of a gymnasium action space (see the module docstring).

    Raises:
        SpaceMappingError: not a 1-D Box, unbounded or NaN bounds, no continuous dimension left,
            or a gripper convention the space cannot take (index out of range, a value outside
            that dimension's bounds).
    """
    from gymnasium import spaces

    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise SpaceMappingError(f"the action space must be a 1-D Box (continuous control), got {space}: wrap the env "
                                "with a gymnasium ActionWrapper")
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high >= low)):
        raise SpaceMappingError(f"the action space's bounds must be finite (low {low}, high {high}): our actions are "
                                "rescaled from [-1, 1] onto them; wrap the env with gymnasium's ClipAction or "
                                "RescaleAction")
    n = len(low)
    if gripper is None:
        return ActionLayout(low, high, n)
    index = gripper.index + n if gripper.index < 0 else gripper.index
    if not 0 <= index < n:
        raise SpaceMappingError(f"env.gymnasium.gripper.index: {gripper.index} is outside the env's {n} action dims")
    if n < 2:
        raise SpaceMappingError("the env's only action dim is the gripper: no continuous dimension is left")
    for name in ("open", "close", "stay"):
        value = getattr(gripper, name)
        if value is not None and not low[index] <= value <= high[index]:
            raise SpaceMappingError(
                f"env.gymnasium.gripper.{name}: {value:g} is outside the env's gripper bounds "
                f"[{low[index]:g}, {high[index]:g}]: the declared convention is not this env's")
    keep = np.ones(n, bool)
    keep[index] = False
    return ActionLayout(low[keep], high[keep], n, gripper, index)


def describe(layout: ObservationLayout, actions: ActionLayout) -> Mapping[str, Any]:
    """A summary for logs and errors: state parts, cameras, action sizes."""
    return {"state": layout.state_parts, "cameras": dict(layout.cameras), "action_dim": actions.action_dim,
            "env_action_dim": actions.env_dim, "gripper_index": actions.gripper_index}


# ---------------------------------------------------------------------- building the env


def make_gymnasium_env(config: GymnasiumEnvConfig, max_episode_steps: int, render_mode: str | None = None) -> Any:
    """`gymnasium.make(config.id, max_episode_steps=..., **config.kwargs)`, after importing
    `config.import_modules`.

    Raises:
        SpaceMappingError: a module that is not installed, an id gymnasium does not know (naming
            the near ones), or kwargs the env refuses; each names the `env.gymnasium` key.
    """
    import importlib

    import gymnasium as gym

    for module in config.import_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpaceMappingError(f"env.gymnasium.import_modules: cannot import {module!r} ({exc}); install the "
                                    "package that provides it") from None
    kwargs = dict(config.kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(config.id, max_episode_steps=max_episode_steps, **kwargs)
    except gym.error.Error as exc:  # unknown id, version or namespace: gymnasium's message names near ones
        raise SpaceMappingError(f"env.gymnasium.id: {exc} (register it, or name its package in "
                                "env.gymnasium.import_modules)") from None
    except TypeError as exc:
        raise SpaceMappingError(f"env.gymnasium.kwargs: {config.id} refused them: {exc}") from None


@dataclass
class EnvLayout:
    """Both halves of a gymnasium env's mapping, and the spec the learner trains on.

    Attributes:
        observation: the env's observation parts. actions: its action mapping.
        spec: state width and the policy cameras at their configured sizes.
    """

    observation: ObservationLayout
    actions: ActionLayout
    spec: ObservationSpec


def layout_of(env: Any, config: GymnasiumEnvConfig, cameras: list[tuple[str, tuple[int, int]]]) -> EnvLayout:
    """The mapping of a built env's spaces.

    Args:
        cameras: the policy cameras the config names, as (name, (height, width)) after crop and
            resize; each must be one of the env's image parts.
    Raises:
        SpaceMappingError: as `map_observation_space` / `map_action_space`, or a camera the env
            does not deliver (naming the ones it does).
    """
    observation = map_observation_space(env.observation_space, config.state_parts)
    actions = map_action_space(env.action_space, config.gripper)
    for name, _ in cameras:
        if name not in observation.cameras:
            raise SpaceMappingError(f"env.observation.cameras: {config.id} has no image part {name!r}; its image "
                                    f"parts are {', '.join(observation.cameras) or 'none'}")
    spec = ObservationSpec(state_dim=observation.state_dim, cameras={name: [*size, 3] for name, size in cameras})
    return EnvLayout(observation, actions, spec)


def inspect_env(config: GymnasiumEnvConfig, max_episode_steps: int,
                cameras: list[tuple[str, tuple[int, int]]]) -> EnvLayout:
    """Build the env only to read its spaces (the learner's way to its spec without an actor),
    then close it."""
    env = make_gymnasium_env(config, max_episode_steps)
    try:
        return layout_of(env, config, cameras)
    finally:
        env.close()


def load_callable(target: str, key: str = "env.gymnasium.expert") -> Any:
    """The object "module:attr.path" names (imported; never unpickled).

    Raises:
        SpaceMappingError: the module cannot be imported or has no such attribute (naming `key`).
    """
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpaceMappingError(f"{key}: cannot import {module_name!r} ({exc})") from None
    for name in attr.split("."):
        if not hasattr(value, name):
            raise SpaceMappingError(f"{key}: {module_name!r} has no {attr!r}")
        value = getattr(value, name)
    if not callable(value):
        raise SpaceMappingError(f"{key}: {target} is not callable")
    return value
