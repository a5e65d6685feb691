"""The real-arm backend: a Franka Emika Panda / FR3 through panda-py (pip: panda-python), no ROS.

Importing this package does not import panda-py; the backend imports it when it connects, and
names the install command when it is missing.
"""

from hilrl.robot_server.franka.backend import FrankaBackend, FrankaSetupError, make_backend
from hilrl.robot_server.franka.gripper import FrankaHand, GripperDriver

__all__ = ["FrankaBackend", "FrankaHand", "FrankaSetupError", "GripperDriver", "make_backend"]
