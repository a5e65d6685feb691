"""The robot server: the one process that owns the arm, and the last line of safety.

    service     the safety layer and request handling (every backend goes through it)
    server      the ZeroMQ server process (`hilrl robot-server`) and backend construction
    backend     the backend protocol; sim/ (MuJoCo twin) and franka/ (panda-py) implement it
    config      the `robot_server:` section
    interface   `RobotInterface`, what the actor needs from an arm, and its errors
    client      `RobotClient`: the interface over ZeroMQ (lazy pirate)
    inprocess   `InProcessRobot`: the same service and safety layer in the caller's process
    connect     `open_robot`: the one a config names
    process     starting and stopping a server process (tests, `hilrl run`)

Imports drivers (hilrl.hardware) and the shared contracts; never torch.
"""
