"""The interface every arm backend implements ("sim" now, "franka" later).

A backend owns one arm and its gripper and knows nothing about sockets or clients. It trusts its
caller: the `RobotService` in `service.py` applies the safety layer (workspace box, per-command
motion limit, watchdog, error latch) before anything reaches a backend, so both backends share one
safety implementation.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hilrl.transport.robot_messages import ImpedanceParams, RobotState


class ArmBackend(Protocol):
    """One arm + gripper.

    Attributes:
        name: "sim" or "franka".
        task: sim task name ("reach", "pick_cube", "peg_insert"), "" for a real arm.
        control_period_s: duration of one control period (what one lockstep `advance` simulates).
        cameras: camera names `render` accepts (empty for a real arm: real cameras live on the actor).
        home_position_m, home_quaternion_wxyz: TCP home pose in the base frame.
        realtime_only: True when the arm runs on its own clock (a real arm): `advance` then does
            nothing and the lockstep clock is not available.
    """

    name: str
    task: str
    control_period_s: float
    cameras: tuple[str, ...]
    home_position_m: np.ndarray
    home_quaternion_wxyz: np.ndarray
    realtime_only: bool

    def state(self) -> RobotState:
        """Measured state. `status` and `errors` report the backend's own error latch."""
        ...

    def set_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> None:
        """Set the impedance target (already made safe by the caller)."""
        ...

    def hold(self) -> None:
        """Set the target to the measured pose, so the arm comes to rest where it is."""
        ...

    def set_gripper(self, opening: float) -> None:
        """Command the gripper: 0.0 closed .. 1.0 open."""
        ...

    def go_home(self, position_noise_m: float, rotation_noise_rad: float, seed: int | None) -> None:
        """Move to home (random offset within the noise), reset task objects; returns when there."""
        ...

    def set_impedance(self, params: ImpedanceParams) -> None:
        """Replace the controller parameters."""
        ...

    def clear_errors(self) -> None:
        """Clear the error latch (only ever on an explicit client request)."""
        ...

    def advance(self, duration_s: float) -> None:
        """Advance physics by `duration_s` of robot time (sim); no-op on a real arm."""
        ...

    def render(self, cameras: list[str]) -> tuple[np.ndarray, float]:
        """Frames (n, H, W, 3) uint8 and the robot time they show. Raises ValueError for unknown names."""
        ...

    def close(self) -> None:
        """Release resources (renderers, connections)."""
        ...
