"""The dataclasses of the config document's sections that more than one process reads.

A task config (hilrl.transport.config) has one section per process; a section that only its own
process reads keeps its dataclass with that process (`robot_server:` in hilrl.robot_server.config,
`actor:` in hilrl.actor.config, `reward_classifier:` in hilrl.policies.classifier_config). The
ones here are read across processes, so they live in the shared layer, below everyone:

    env.py        `env:`: how the actor's env is assembled; the learner derives the observation
                  layout from it (hilrl.transport.observation)
    realsense.py  one RealSense camera (`env.realsense.<name>`)
    learner.py    `learner:`: the learner's loop; the actor reads its `sac` (the acting network's
                  shape) and `training_starts` (the throttle's warm-up)
    sac.py        `learner.sac`: the SAC agent and its image encoder (also the classifier's encoder)

`link:` is hilrl.transport.link_config and `dashboard:` is hilrl.transport.dashboard.
"""
