"""The observation layout, derived from the config alone: what the learner trains on and what the
actor must deliver, from one function, so both sides agree without a robot.

    state   float32 (state_dim,): the `env.observation.state` blocks in order (widths in
            hilrl.transport.sections.env.STATE_WIDTHS)
    <cam>   uint8 (height, width, 3) per policy camera of `env.observation.cameras`, in config
            order (the encoder's order); the env crops and resizes every frame to its camera's
            `size`, whatever the robot renders; classifier-only cameras are not in it

The learner builds its buffers and networks from `observation_spec`; the actor checks its live env
against it (`check_env_observation`) and sends it in its handshake.
"""

from __future__ import annotations

from typing import Any

from hilrl.transport.gym_spaces import EnvLayout, SpaceMappingError, inspect_env
from hilrl.transport.learner_messages import ObservationSpec
from hilrl.transport.sections.env import EnvConfig


def policy_camera_sizes(env: EnvConfig) -> list[tuple[str, tuple[int, int]]]:
    """(name, (height, width)) of each policy camera, in config order."""
    return [(c.name, tuple(c.size)) for c in env.observation.policy_cameras]  # type: ignore[misc]


def gymnasium_layout(env: EnvConfig) -> EnvLayout:
    """The mapping of an `env.kind: gymnasium` env's spaces (the env is built to read them).

    Raises:
        SchemaError: the env cannot be built or mapped (naming the `env.*` key or the part).
    """
    assert env.gymnasium is not None, "EnvConfig refuses kind gymnasium without env.gymnasium"
    try:
        return inspect_env(env.gymnasium, env.max_episode_steps, policy_camera_sizes(env))
    except SpaceMappingError as exc:
        raise exc.as_schema_error() from None


def observation_spec(env: EnvConfig) -> ObservationSpec:
    """The observation layout the `env:` section defines. With `env.kind: gymnasium` the state
    width comes from the env's observation space, so the env is built (and closed) to read it
    (hilrl.transport.gym_spaces.inspect_env); the cameras' sizes still come from the config."""
    if env.kind == "gymnasium":
        return gymnasium_layout(env).spec
    cameras = {c.name: [*c.size, 3] for c in env.observation.policy_cameras}
    return ObservationSpec(state_dim=env.state_dim, cameras=cameras)


def live_observation_spec(observation_space: Any) -> ObservationSpec:
    """The layout of a live env's gymnasium Dict observation space ("state" plus one Box per
    camera)."""
    spaces = observation_space.spaces
    return ObservationSpec(
        state_dim=int(spaces["state"].shape[0]),
        cameras={name: list(space.shape) for name, space in spaces.items() if name != "state"},
    )


def check_env_observation(env: EnvConfig, observation_space: Any) -> ObservationSpec:
    """The spec of the config, after checking that a live env's observation space matches it.
    Raises ValueError naming what differs (an env that does not deliver what the learner trains
    on must not start)."""
    got = live_observation_spec(observation_space)
    if env.kind == "gymnasium":
        return got  # the live env's spaces are where a gymnasium env's layout comes from
    want = observation_spec(env)
    if want.state_dim != got.state_dim:
        raise ValueError(f"the env's state has {got.state_dim} dims, env.observation.state defines {want.state_dim}")
    if want.cameras != got.cameras:
        raise ValueError(f"the env's cameras are {got.cameras}, env.observation.cameras defines {want.cameras}")
    return want
