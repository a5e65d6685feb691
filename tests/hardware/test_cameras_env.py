"""RealSense cameras joined to a robot (hardware/cameras.py) and read by the real env: the simulated
arm's own camera and a (fake-library) RealSense camera of another size in one observation."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fake_realsense import FakeDevice, make_fake_realsense  # noqa: E402

from hilrl.actor.cameras import RobotWithCameras  # noqa: E402
from hilrl.actor.env import RobotEnv  # noqa: E402
from hilrl.actor.make import make_env  # noqa: E402
from hilrl.hardware.realsense import RealSenseRig  # noqa: E402
from hilrl.robot_server.config import ServerConfig  # noqa: E402
from hilrl.robot_server.inprocess import InProcessRobot  # noqa: E402
from hilrl.transport.config import load_document, section  # noqa: E402
from hilrl.transport.sections.env import EnvConfig  # noqa: E402
from hilrl.transport.sections.realsense import RealSenseConfig  # noqa: E402

CONFIG = "configs/sim_pick_cube.yaml"


@pytest.fixture
def cell():
    """(env config, robot with cameras, fake module): the sim arm plus a 40x30 RealSense 'side'."""
    doc = load_document(CONFIG, [
        "env.observation.cameras=[front, {name: side, crop: [5, 0, 30, 30], size: [16, 16]}]",
    ])
    rs = make_fake_realsense([FakeDevice("111", tag=42)])
    rig = RealSenseRig({"side": RealSenseConfig(serial="111", width_px=40, height_px=30, fps=60, warmup_frames=0)},
                       rs_module=rs)
    rig.start(first_frame_timeout_s=3.0)
    robot = RobotWithCameras(InProcessRobot.from_config(section(doc, "robot_server", ServerConfig), "pick_cube"), rig)
    yield section(doc, "env", EnvConfig), robot, rs
    robot.close()


@pytest.mark.timeout(60)
def test_env_observes_sim_and_realsense_cameras_of_different_sizes(cell):
    config, robot, _ = cell
    assert robot.info().cameras[-1] == "side"
    env = RobotEnv(config, robot)
    obs, info = env.reset(seed=0)
    assert obs["front"].shape == (128, 128, 3) and obs["side"].shape == (16, 16, 3)
    assert obs["side"].dtype == np.uint8 and int(np.median(obs["side"][..., 2])) == 42  # the camera's tag
    obs, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    times = info["image_capture_time_s"]
    assert set(times) == {"front", "side"}
    # Both on the robot's clock: the real camera's frame is at most a few frames old.
    assert 0.0 <= info["image_age_s"]["oldest"] < 0.5, info["image_age_s"]


@pytest.mark.timeout(60)
def test_a_stalled_camera_is_an_error_naming_it(cell):
    config, robot, rs = cell
    env = RobotEnv(config, robot)
    env.reset(seed=0)
    robot.max_frame_age_s = 0.2
    rs.fake.unplug("111")
    import time

    time.sleep(0.4)
    with pytest.raises(RuntimeError, match="'side'"):
        env.step(np.zeros(env.action_space.shape, np.float32))


@pytest.mark.timeout(30)
def test_camera_names_may_not_clash_with_the_robots():
    doc = load_document(CONFIG)
    rs = make_fake_realsense([FakeDevice("111")])
    rig = RealSenseRig({"front": RealSenseConfig(serial="111", width_px=8, height_px=6, fps=60, warmup_frames=0)},
                       rs_module=rs)
    robot = InProcessRobot.from_config(section(doc, "robot_server", ServerConfig), "pick_cube")
    try:
        with pytest.raises(ValueError, match="front"):
            RobotWithCameras(robot, rig)
    finally:
        robot.close()


@pytest.mark.timeout(30)
def test_make_env_with_realsense_cameras_needs_pyrealsense2(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pyrealsense2"):
        make_env(CONFIG, ["env.realsense={side: {serial: '123'}}"])
