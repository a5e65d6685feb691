"""Handshake: a mismatch is refused with the field named; the actor reports it and stops sending."""

from __future__ import annotations

import dataclasses

import pytest
from link_support import RawActor, make_chunk, make_hello, wait_until

from hilrl.transport.codec import PROTOCOL_VERSION
from hilrl.transport.learner_messages import ObservationSpec, Refused, Welcome
from hilrl.transport.link import handshake_mismatch

pytestmark = pytest.mark.timeout(30)

EXPECTED = make_hello(cameras={"wrist": [128, 128, 3]})

MISMATCHES = {
    "protocol_version": dict(protocol_version=PROTOCOL_VERSION + 1),
    "observation.state_dim": dict(observation=ObservationSpec(state_dim=7, cameras={"wrist": [128, 128, 3]})),
    "observation.cameras": dict(observation=ObservationSpec(state_dim=20, cameras={"front": [128, 128, 3]})),
    "action_dim": dict(action_dim=7),
    "contract": dict(config_hash="another-contract",
                     contract={**EXPECTED.contract, "env.action.translation_scale_m": 0.03, "task": "pick_cube"}),
}


@pytest.mark.parametrize("field", list(MISMATCHES))
def test_mismatch_is_refused_naming_the_field(learners, actors, field):
    learner = learners(expected=EXPECTED)
    hello = dataclasses.replace(EXPECTED, actor_session="a", **MISMATCHES[field])
    actor = actors(learner.endpoint, hello=hello)
    assert wait_until(lambda: actor.refused is not None, 5)
    assert actor.refused.field == field
    assert not actor.learner_alive and learner.actors_alive() == []
    if field == "contract":  # every differing key, with both values
        message = actor.refused.message
        assert "env.action.translation_scale_m: learner 0.02, actor 0.03" in message, message
        assert 'task: learner "reach", actor "pick_cube"' in message, message
        assert "env.action.gripper" not in message  # equal keys are not listed


def test_camera_shape_mismatch_and_order_of_checks():
    hello = dataclasses.replace(EXPECTED, observation=ObservationSpec(20, {"wrist": [64, 64, 3]}))
    refused = handshake_mismatch(hello, EXPECTED)
    assert refused.field == "observation.cameras" and "64" in refused.message and "128" in refused.message
    # Several mismatches: the first in the documented order is named.
    hello = dataclasses.replace(EXPECTED, action_dim=9, config_hash="x", observation=ObservationSpec(3, {}))
    assert handshake_mismatch(hello, EXPECTED).field == "observation.state_dim"
    assert handshake_mismatch(dataclasses.replace(EXPECTED, actor_session="whatever"), EXPECTED) is None


def test_refused_actor_keeps_its_chunks_and_sends_nothing(learners, actors):
    learner = learners(expected=EXPECTED)
    hello = dataclasses.replace(EXPECTED, actor_session="a", config_hash="other")
    actor = actors(learner.endpoint, hello=hello)
    actor.send_chunk(make_chunk(cameras={"wrist": (128, 128, 3)}))
    assert wait_until(lambda: actor.refused is not None, 5)
    assert learner.stored_chunks == 0 and actor.unacked == 1


def test_hello_with_a_session_other_than_its_sender_is_refused(learners):
    learner = learners(expected=EXPECTED)
    with RawActor(learner.endpoint, session="me") as raw:
        raw.send(dataclasses.replace(EXPECTED, actor_session="someone-else"))
        refused = raw.recv_kind(Refused)
        assert refused is not None and refused.field == "actor_session"
        raw.send(dataclasses.replace(EXPECTED, actor_session="me"))
        welcome = raw.recv_kind(Welcome)
        assert welcome is not None and welcome.learner_session == "learner-0"
