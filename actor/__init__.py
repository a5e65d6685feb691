"""The actor process (`hilrl actor`): the gymnasium environment around the robot (env, make,
cameras), experts, interventions and operators (a device's input as an action), the fixed-rate
control loop (loop, throttle, recorder), the evaluation core (evaluation), its `actor:` section
(config) and what it shows on the dashboard (dashboard). Imports the agents, the robot server's
client, the drivers and the shared contracts; never the learner or the tools.

Importing this package registers the simulated tasks with gymnasium:
`hilrl/SimReach-v0`, `hilrl/SimPickCube-v0`, `hilrl/SimPegInsert-v0`
(keyword arguments: `images=True` adds the front and wrist cameras; `overrides=[...]`), and
`hilrl/SimPickCubeVision-v0` (configs/sim_pick_cube_vision.yaml: two 64x64 cameras and
proprioception, no object position).
"""

import gymnasium as gym

_SIM_IDS = {"hilrl/SimReach-v0": "reach", "hilrl/SimPickCube-v0": "pick_cube", "hilrl/SimPegInsert-v0": "peg_insert"}

for _env_id, _task in _SIM_IDS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point="hilrl.actor.make:make_sim_env", kwargs={"task": _task})

if "hilrl/SimPickCubeVision-v0" not in gym.registry:
    gym.register(
        id="hilrl/SimPickCubeVision-v0",
        entry_point="hilrl.actor.make:make_sim_env",
        kwargs={"task": "pick_cube", "variant": "vision"},
    )
