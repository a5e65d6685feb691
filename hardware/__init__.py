"""Drivers for the devices of a real cell: RealSense cameras (realsense), the Robotiq gripper over
Modbus (robotiq), the SpaceMouse (spacemouse), the terminal keyboard (keyboard) and the gamepad
(gamepad) readers, and their errors (errors, no dependencies). A driver reads and commands its
device and nothing else: what an operator's input means as an action is the actor's
(hilrl.actor.operators). Imports only the shared contracts (hilrl.transport)."""
