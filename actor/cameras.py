"""Cameras on the actor's machine, joined to the robot behind one `RobotInterface`.

On a real cell the robot server has no cameras: RealSense cameras plug into the actor's machine
(USB), and the `RealSenseRig` keeps each one's newest frame. `RobotWithCameras` is a decorator
around any robot (the same pattern as a gymnasium wrapper: one responsibility): every call goes to
the robot unchanged, except that `info()` also lists the rig's cameras and `render()` answers for
them from the rig, so the env above reads cameras the same way on the sim and on a lab robot.

Clocks. The env measures an image's age against the robot's clock (`RobotState.robot_time_s`),
while the rig stamps frames with this machine's `time.monotonic()`. The decorator remembers the
robot time of the last state it passed on and the monotonic time it arrived, and maps a frame's
capture time onto the robot clock by that offset (good to the request latency, well under a
millisecond on a lab network, next to camera latencies of tens of milliseconds).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hilrl.hardware.realsense import RealSenseRig
from hilrl.robot_server.interface import RobotInterface
from hilrl.transport.robot_messages import Images, ImpedanceParams, RobotState, ServerInfo


@dataclass
class CameraFrames:
    """Frames of several cameras that may differ in size (unlike `Images`, whose frames share one
    array).

    Attributes:
        cameras: names, in the order of `pixels`.
        pixels: one uint8 (H_i, W_i, 3) array per camera.
        capture_times_s: each frame's capture time on the robot clock, seconds.
        capture_time_s: the oldest of them (what a single-time reader should assume).
    """

    cameras: list[str]
    pixels: list[np.ndarray]
    capture_times_s: list[float]
    capture_time_s: float


class RobotWithCameras:
    """A robot whose `render` also serves the cameras of a `RealSenseRig` (see the module docstring).

    Args:
        robot: the robot (a `RobotClient` to the robot server, usually).
        rig: started cameras, by name; names must not clash with the robot's own cameras.
        max_frame_age_s: a frame older than this is an error naming the camera, never silently used.
        clock: monotonic clock of the rig's timestamps (injectable for tests).
    """

    def __init__(
        self,
        robot: RobotInterface,
        rig: RealSenseRig,
        max_frame_age_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.robot = robot
        self.rig = rig
        self.max_frame_age_s = max_frame_age_s
        self._clock = clock
        self._robot_info = robot.info()
        clash = sorted(set(rig.cameras) & set(self._robot_info.cameras))
        if clash:
            raise ValueError(f"cameras {clash} exist both on the robot and in the RealSense rig")
        # Robot time minus local monotonic time, from the newest state seen.
        self._offset_s: float | None = None

    def _seen(self, state: RobotState) -> RobotState:
        self._offset_s = state.robot_time_s - self._clock()
        return state

    def _robot_time(self, local_s: float) -> float:
        if self._offset_s is None:
            self._seen(self.robot.state())
        assert self._offset_s is not None
        return local_s + self._offset_s

    # --- RobotInterface

    def info(self) -> ServerInfo:
        return dataclasses.replace(self._robot_info, cameras=[*self._robot_info.cameras, *self.rig.cameras])

    def state(self) -> RobotState:
        return self._seen(self.robot.state())

    def set_pose_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> RobotState:
        return self._seen(self.robot.set_pose_target(position_m, quaternion_wxyz))

    def set_gripper(self, opening: float) -> None:
        self.robot.set_gripper(opening)

    def go_home(self, position_noise_m: float = 0.0, rotation_noise_rad: float = 0.0, seed: int | None = None) -> RobotState:
        return self._seen(self.robot.go_home(position_noise_m, rotation_noise_rad, seed))

    def set_impedance(self, params: ImpedanceParams) -> None:
        self.robot.set_impedance(params)

    def clear_errors(self) -> RobotState:
        return self._seen(self.robot.clear_errors())

    def stop(self, reason: str = "") -> RobotState:
        return self._seen(self.robot.stop(reason))

    def advance(self, periods: int = 1) -> RobotState:
        return self._seen(self.robot.advance(periods))

    def render(self, cameras: Sequence[str]) -> CameraFrames | Images:
        """Frames of `cameras` (rig and robot cameras may be mixed), in the order asked."""
        rig_names = [c for c in cameras if c in self.rig.cameras]
        if not rig_names:
            return self.robot.render(cameras)
        unknown = [c for c in cameras if c not in self.rig.cameras and c not in self._robot_info.cameras]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; available: {self.info().cameras}")
        frames = self.rig.images(self.max_frame_age_s)
        robot_names = [c for c in cameras if c not in self.rig.cameras]
        rendered = self.robot.render(robot_names) if robot_names else None
        pixels, times = [], []
        for name in cameras:
            if name in frames:
                image, local_s = frames[name]
                pixels.append(image)
                times.append(self._robot_time(local_s))
            else:
                assert rendered is not None
                pixels.append(rendered.pixels[rendered.cameras.index(name)])
                times.append(float(rendered.capture_time_s))
        return CameraFrames(list(cameras), pixels, times, min(times))

    def close(self) -> None:
        try:
            self.rig.stop()
        finally:
            self.robot.close()
