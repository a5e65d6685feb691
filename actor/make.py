"""Build a `RobotEnv` from a task config (file, shipped name, or parsed document)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hilrl.actor.cameras import RobotWithCameras
from hilrl.actor.env import RobotEnv
from hilrl.actor.gym_env import GymnasiumEnv
from hilrl.configs import config_path
from hilrl.hardware.realsense import RealSenseRig
from hilrl.robot_server.connect import open_robot
from hilrl.robot_server.interface import RobotInterface
from hilrl.transport.config import load_document, parse_document, section
from hilrl.transport.gym_spaces import SpaceMappingError
from hilrl.transport.sections.env import EnvConfig

SIM_TASKS = ("reach", "pick_cube", "peg_insert")
SIM_CAMERAS = ("front", "wrist")


def make_env(
    config: str | Path | dict[str, Any], overrides: Iterable[str] = (), render_mode: str | None = None
) -> RobotEnv | GymnasiumEnv:
    """Environment for a config file path or an already-loaded document, with dotted overrides:
    a `RobotEnv` for `env.kind: robot`, a `GymnasiumEnv` for `env.kind: gymnasium`.

    Raises:
        SchemaError: a gymnasium env that cannot be built or mapped (naming the `env.gymnasium`
            key or the part).
    """
    if isinstance(config, dict):
        doc = parse_document(config, overrides)
    else:
        doc = load_document(config, overrides)
    env_config = section(doc, "env", EnvConfig)
    if env_config.kind == "gymnasium":
        try:
            return GymnasiumEnv(env_config, render_mode=render_mode)
        except SpaceMappingError as exc:
            raise exc.as_schema_error() from None
    robot = open_robot(doc, env_config.connection)
    if env_config.realsense:
        robot = _with_realsense(robot, env_config)
    try:
        return RobotEnv(env_config, robot, render_mode=render_mode)
    except Exception:
        robot.close()
        raise


def _with_realsense(robot: RobotInterface, config: EnvConfig) -> RobotInterface:
    """The robot with the config's RealSense cameras joined to it (started here; a missing serial
    is an error listing the connected ones)."""
    rig = RealSenseRig(config.realsense)
    try:
        rig.start()
        return RobotWithCameras(robot, rig, max_frame_age_s=config.max_frame_age_s)
    except BaseException:
        rig.stop()
        robot.close()
        raise


def make_sim_env(
    task: str,
    images: bool = False,
    overrides: Iterable[str] = (),
    render_mode: str | None = None,
    variant: str = "",
) -> RobotEnv:
    """The shipped sim config for `task` ("reach", "pick_cube", "peg_insert").

    Args:
        images: add the front and wrist cameras (full frame, 128x128) to the observation, replacing
            the config's camera list.
        overrides: dotted overrides, e.g. ["env.max_episode_steps=20"].
        variant: a shipped variant of the task's config, configs/sim_<task>_<variant>.yaml
            (e.g. "vision" for pick_cube); "" is configs/sim_<task>.yaml.
    """
    if task not in SIM_TASKS:
        raise ValueError(f"unknown sim task {task!r}; expected one of {', '.join(SIM_TASKS)}")
    extra = [f"env.observation.cameras=[{', '.join(SIM_CAMERAS)}]"] if images else []
    name = f"sim_{task}_{variant}" if variant else f"sim_{task}"
    return make_env(config_path(name), [*extra, *overrides], render_mode=render_mode)
