"""Open the robot a task config names: the simulated arm in this process, or a robot server.

The in-process twin runs the very same `RobotService` (safety layer included) that the server
process runs; a real arm is always reached through its server.
"""

from __future__ import annotations

from typing import Any, Literal

from hilrl.robot_server.client import RobotClient
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.inprocess import InProcessRobot
from hilrl.robot_server.interface import RobotInterface
from hilrl.transport.config import section


def open_robot(doc: dict[str, Any], connection: Literal["inprocess", "server"]) -> RobotInterface:
    """Robot for a validated config document.

    Args:
        doc: the task config document (transport.config.load_document).
        connection: "inprocess" builds the sim backend here; "server" connects a `RobotClient` to
            `robot_server.address`.
    """
    server = section(doc, "robot_server", ServerConfig)
    if connection == "inprocess":
        if server.backend != "sim":
            raise ValueError(
                f"env.connection: 'inprocess' needs robot_server.backend 'sim', got {server.backend!r}; "
                "a real arm is always reached through `hilrl robot-server`"
            )
        return InProcessRobot.from_config(server, doc.get("task", ""))
    return RobotClient(server.address, timeout_s=server.request_timeout_s, curve=server.curve)
