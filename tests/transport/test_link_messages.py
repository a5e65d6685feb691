"""Learner messages through the codec, and a LearnerLink facing malformed input on a raw socket."""

from __future__ import annotations

import json

import numpy as np
import pytest
from link_support import RawActor, make_chunk, make_hello, make_stats, wait_until

from hilrl.transport.codec import PROTOCOL_VERSION, Limits, ProtocolError, decode, encode
from hilrl.transport.learner_messages import (
    LEARNER_MESSAGES,
    ChunkAck,
    EpisodeStats,
    Heartbeat,
    HelloRequired,
    Refused,
    StaticWeights,
    TransitionChunk,
    Weights,
    WeightsRequest,
    Welcome,
)
from hilrl.transport.link import LEARNER_RECV_LIMITS


def _every_kind() -> list:
    return [
        make_hello("a", cameras={"wrist": [128, 128, 3]}, weights_version=4),
        Welcome(learner_session="L", weights_version=3, updates_done=100),
        Refused(field="config_hash", message="mismatch"),
        HelloRequired(actor_session="a"),
        make_chunk(2.0, cameras={"wrist": (128, 128, 3), "front": (64, 64, 3)}, session="a", seq=5),
        ChunkAck(seq=5, updates_done=7, weights_version=2, actor_session="a"),
        make_stats(3),
        WeightsRequest(have_version=-1, have_static_id="ab" * 32),
        Weights(version=9, tensors={"layer0.weight": np.ones((256, 20), np.float32), "b": np.zeros(4, np.float32)},
                static_id="cd" * 32),
        StaticWeights(static_id="cd" * 32, tensors={"encoder.conv.weight": np.ones((64, 3, 7, 7), np.float32)}),
        Heartbeat(session="L", updates_done=5, weights_version=1, env_steps=3),
    ]


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b) and a.dtype == b.dtype
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


@pytest.mark.timeout(10)
@pytest.mark.parametrize("msg", _every_kind(), ids=lambda m: type(m).__name__)
def test_codec_round_trip_of_every_learner_message(msg):
    frames = [bytes(f) for f in encode(msg, LEARNER_MESSAGES, sender="x", seq=3)]
    envelope, back = decode(frames, LEARNER_MESSAGES, Limits(max_frame_bytes=64 << 20))
    assert envelope.kind == LEARNER_MESSAGES.kind_of(msg) and envelope.seq == 3
    assert _equal(msg, back)


def test_every_registered_kind_is_covered():
    covered = {LEARNER_MESSAGES.kind_of(m) for m in _every_kind()}
    assert covered == set(LEARNER_MESSAGES._by_kind)


def test_receive_limits_fit_a_three_camera_chunk_but_refuse_oversized_frames():
    big = make_chunk(cameras={c: (128, 128, 3) for c in ("a", "b", "c")}, session="s", seq=1)
    decode([bytes(f) for f in encode(big, LEARNER_MESSAGES)], LEARNER_MESSAGES, LEARNER_RECV_LIMITS)
    header = json.dumps({"v": PROTOCOL_VERSION, "kind": "heartbeat", "sender": "", "seq": 0, "time_s": 0.0,
                         "body": {"session": "s"}, "arrays": [["x", "|u1", [LEARNER_RECV_LIMITS.max_frame_bytes + 1]]]})
    with pytest.raises(ProtocolError) as info:
        decode([header.encode(), bytes(LEARNER_RECV_LIMITS.max_frame_bytes + 1)], LEARNER_MESSAGES, LEARNER_RECV_LIMITS)
    assert info.value.code == "too_large"


# ---------------------------------------------------------------------------------- bad input


def _header(kind: str, body: dict, arrays: list, v: int = PROTOCOL_VERSION, sender: str = "raw") -> bytes:
    return json.dumps({"v": v, "kind": kind, "sender": sender, "seq": 1, "time_s": 0.0,
                       "body": body, "arrays": arrays}).encode()


def _chunk_frames(sender: str, **changes) -> list[bytes]:
    chunk = make_chunk(1.0, session=sender, seq=1)
    for name, value in changes.items():
        setattr(chunk, name, value)
    return [bytes(f) for f in encode(chunk, LEARNER_MESSAGES, sender=sender)]


def _malformed(sender: str) -> dict[str, list[bytes]]:
    good = _chunk_frames(sender)
    return {
        "garbage": [b"\x00\xff\xfe garbage \x81"],
        "empty_frame": [b""],
        "not_an_object": [b"[1, 2, 3]"],
        "deep_nesting": [b"[" * 50_000],
        "truncated_array": [good[0], good[1][:-7], *good[2:]],
        "missing_frames": good[:3],
        "unknown_kind": [_header("launch_missiles", {}, [])],
        "wrong_shape": _chunk_frames(sender, obs_state=np.zeros((10,), np.float32)),
        "wrong_dtype": _chunk_frames(sender, reward=np.zeros(10, np.float64)),
        "nan": _chunk_frames(sender, reward=np.full(10, np.nan, np.float32)),
        "oversized": [_header("heartbeat", {"session": "x"}, [["x", "|u1", [LEARNER_RECV_LIMITS.max_frame_bytes + 1]]]),
                      bytes(LEARNER_RECV_LIMITS.max_frame_bytes + 1)],
        "too_many_frames": [_header("heartbeat", {"session": "x"}, [])] + [b"x"] * 100,
        "wrong_direction_welcome": [bytes(f) for f in encode(Welcome("L", 1, 1), LEARNER_MESSAGES, sender=sender)],
        "wrong_direction_ack": [bytes(f) for f in encode(ChunkAck(1, 1, 1), LEARNER_MESSAGES, sender=sender)],
    }


@pytest.mark.timeout(30)
def test_malformed_messages_are_dropped_and_the_link_keeps_serving(learners, actors):
    learner = learners()
    with RawActor(learner.endpoint, session="raw-bad") as raw:
        # A welcomed session, so shape-valid garbage is judged on content, not on "who are you".
        raw.send(make_hello("raw-bad"))
        assert isinstance(raw.recv_kind(Welcome), Welcome)
        for name, frames in _malformed("raw-bad").items():
            before = learner.dropped_messages
            raw.send_frames(frames)
            assert wait_until(lambda b=before: learner.dropped_messages == b + 1, 5), f"{name} was not dropped"

        # Wrong version: dropped with a Refused naming protocol_version (best effort for an old peer).
        raw.send_frames([_header("heartbeat", {"session": "raw-bad"}, [], v=PROTOCOL_VERSION + 7, sender="raw-bad")])
        refused = raw.recv_kind(Refused)
        assert refused is not None and refused.field == "protocol_version" and str(PROTOCOL_VERSION + 7) in refused.message

        # Content that contradicts the handshake: refused with the field named.
        bad = make_chunk(1.0, state_dim=7, session="raw-bad", seq=2)
        raw.send(bad)
        refused = raw.recv_kind(Refused)
        assert refused is not None and refused.field == "observation.state_dim"
        assert "7" in refused.message and "20" in refused.message

        # A message from a session that never said Hello: asked to say Hello.
        raw.send(Heartbeat(session="stranger"), sender="stranger")
        required = raw.recv_kind(HelloRequired)
        assert required is not None and required.actor_session == "stranger"
    assert learner.stored_chunks == 0

    # A good actor is served as if nothing happened.
    actor = actors(learner.endpoint)
    for i in range(5):
        actor.send_chunk(make_chunk(float(i)))
    actor.send_stats(make_stats(1))
    assert wait_until(lambda: actor.unacked == 0, 10)
    chunks = learner.poll_chunks()
    assert [float(c.reward[0]) for c in chunks] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(isinstance(c, TransitionChunk) for c in chunks)
    stats = learner.poll_stats()
    assert [s.episode_id for s in stats] == [1] and isinstance(stats[0], EpisodeStats)


@pytest.mark.timeout(30)
def test_actor_rejects_bad_chunks_in_the_caller(learners, actors):
    actor = actors("tcp://127.0.0.1:1", hello=make_hello("a", cameras={"wrist": [16, 16, 3]}))
    with pytest.raises(ValueError, match="observation.state_dim"):
        actor.send_chunk(make_chunk(state_dim=3, cameras={"wrist": (16, 16, 3)}))
    with pytest.raises(ValueError, match="action_dim"):
        actor.send_chunk(make_chunk(action_dim=2, cameras={"wrist": (16, 16, 3)}))
    with pytest.raises(ValueError, match="observation.cameras"):
        actor.send_chunk(make_chunk())
    with pytest.raises(ValueError, match="observation.cameras.wrist"):
        actor.send_chunk(make_chunk(cameras={"wrist": (8, 8, 3)}))
    chunk = make_chunk(cameras={"wrist": (16, 16, 3)})
    chunk.reward = chunk.reward.copy()
    chunk.reward[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        actor.send_chunk(chunk)
    stats = make_stats()
    stats.episode_return = float("inf")
    with pytest.raises(ValueError, match="episode_return"):
        actor.send_stats(stats)
    assert actor.unacked == 0
