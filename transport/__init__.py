"""The shared contracts: everything two processes must agree on, defined once, at the bottom of
the layers (imports nothing of hilrl but the shipped configs).

    codec, robot_messages, learner_messages   wire format (JSON header + raw array frames) and the
                                              message dataclasses of each link
    link/                                     the actor-learner link (actor side, learner side)
    link_config, security                     link settings; CurveZMQ for non-loopback binds
    chunkfile                                 the on-disk chunk store (atomic, checksummed)
    run_dir, checkpoint                       the run directory's layout; the checkpoint format
    action, observation                       the action layout; the observation spec
    config, schema, sections/                 config documents and the sections several read
    dashboard                                 the dashboard's section and recording setup
    spatial                                   quaternion and pose maths every layer uses
"""
