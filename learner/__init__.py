"""The learner process (`hilrl learner`): replay buffers (replay), the training loop, checkpoints
and weight publishing (main), what it shows on the dashboard (dashboard). Imports the agents
(hilrl.policies) and the shared contracts (hilrl.transport), never the actor or the drivers."""
