"""Acknowledged delivery: dedupe, credit window, spool spill/reload order, non-blocking sends, weights."""

from __future__ import annotations

import errno
import time

import numpy as np
import pytest
import zmq
from link_support import (
    RawActor,
    fast_config,
    free_port,
    make_chunk,
    make_hello,
    make_stats,
    stable_port,
    stored_seqs,
    wait_until,
)

from hilrl.transport.chunkfile import ChunkDirectory, DirectoryBusyError
from hilrl.transport.codec import decode, encode
from hilrl.transport.learner_messages import (
    LEARNER_MESSAGES,
    ChunkAck,
    Heartbeat,
    Hello,
    StaticWeights,
    TransitionChunk,
    Weights,
    WeightsRequest,
    Welcome,
)
from hilrl.transport.link import LearnerLink, SeqWindow


@pytest.mark.timeout(30)
def test_resending_the_same_session_and_seq_stores_once(learners, tmp_path):
    store = tmp_path / "store"
    learner = learners(store=store)
    with RawActor(learner.endpoint, session="raw") as raw:
        raw.send(make_hello("raw"))
        assert raw.recv_kind(Welcome) is not None
        chunk = make_chunk(1.0, session="raw", seq=1)
        for _ in range(3):
            raw.send(chunk)
            ack = raw.recv_kind(ChunkAck)
            assert ack is not None and (ack.actor_session, ack.seq) == ("raw", 1)
        # Same seq, another (earlier) session: a different message.
        raw.send(make_chunk(2.0, session="raw-earlier-run", seq=1))
        ack = raw.recv_kind(ChunkAck)
        assert (ack.actor_session, ack.seq) == ("raw-earlier-run", 1)
    assert learner.stored_chunks == 2 and learner.duplicates == 2
    assert [float(c.reward[0]) for c in learner.poll_chunks()] == [1.0, 2.0]
    learner.close()

    # A learner restarted on the same store still knows both: acked again, never stored twice.
    again = learners(store=store, session="learner-again")
    assert sorted(c.seq for c in again.load_stored()) == [1, 1]
    with RawActor(again.endpoint, session="raw") as raw:
        raw.send(make_hello("raw"))
        welcome = raw.recv_kind(Welcome)
        assert welcome.learner_session == "learner-again"
        raw.send(make_chunk(1.0, session="raw", seq=1))
        assert raw.recv_kind(ChunkAck) is not None
        raw.send(make_chunk(3.0, session="raw", seq=2))
        assert raw.recv_kind(ChunkAck).seq == 2
    assert again.stored_chunks == 3 and [c.seq for c in again.poll_chunks()] == [2]
    assert stored_seqs(store) == {("raw", 1): 1, ("raw-earlier-run", 1): 1, ("raw", 2): 1}


def test_seq_window_is_compact():
    w = SeqWindow()
    for seq in (1, 2, 4, 5, 3, 7):
        w.add(seq)
    assert w.contiguous == 5 and w.above == {7}
    assert 3 in w and 7 in w and 6 not in w and 0 in w
    w.add(6)
    assert w.contiguous == 7 and not w.above
    bounded = SeqWindow(max_above=10)
    for seq in range(5, 40):  # 1..4 never arrive: given up once the set would grow past 10
        bounded.add(seq)
    assert len(bounded.above) <= 10 and bounded.contiguous == 39


class _RawLearner:
    """A bare ROUTER that welcomes, heartbeats, and acks only when told: to watch the actor's credit."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.chunks: list[tuple[bytes, TransitionChunk]] = []

    def serve(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.socket.poll(int(left * 1000) + 1):
                continue
            identity, *frames = self.socket.recv_multipart()
            envelope, msg = decode(frames, LEARNER_MESSAGES)
            if isinstance(msg, Hello):
                self.reply(identity, Welcome("raw-learner", -1, 0))
            elif isinstance(msg, Heartbeat):
                self.reply(identity, Heartbeat("raw-learner"))
            elif isinstance(msg, TransitionChunk):
                self.chunks.append((identity, msg))

    def reply(self, identity: bytes, msg) -> None:
        self.socket.send_multipart([identity, *encode(msg, LEARNER_MESSAGES, sender="raw-learner")])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


@pytest.mark.timeout(30)
def test_credit_window_limits_unacked_messages_in_flight(actors):
    raw = _RawLearner()
    try:
        actor = actors(raw.endpoint, max_in_flight_chunks=4, max_chunks_in_memory=16, peer_timeout_s=2.0)
        for i in range(10):
            actor.send_chunk(make_chunk(float(i)))
        raw.serve(0.5)  # well under the resend timeout (2 x peer_timeout_s)
        assert [c.seq for _, c in raw.chunks] == [1, 2, 3, 4]
        identity = raw.chunks[0][0]
        for seq in (1, 2):  # two credits back: exactly two more come
            raw.reply(identity, ChunkAck(seq=seq, updates_done=0, weights_version=-1, actor_session=actor.session))
        raw.serve(0.5)
        assert [c.seq for _, c in raw.chunks] == [1, 2, 3, 4, 5, 6]
        assert wait_until(lambda: actor.unacked == 8, 5)
    finally:
        raw.close()


@pytest.mark.timeout(30)
def test_send_chunk_never_blocks_without_a_learner(actors, tmp_path):
    # Nobody listens on this port; a small memory window forces spilling to disk meanwhile.
    address = f"tcp://127.0.0.1:{free_port()}"
    cameras = {"wrist": (32, 32, 3), "front": (32, 32, 3)}
    actor = actors(address, hello=make_hello("a", cameras={k: list(v) for k, v in cameras.items()}),
                   spool=tmp_path / "spool", max_in_flight_chunks=4, max_chunks_in_memory=16)
    chunks = [make_chunk(float(i), cameras=cameras) for i in range(300)]
    worst = 0.0
    for chunk in chunks:
        started = time.perf_counter()
        actor.send_chunk(chunk)
        actor.take_weights()
        _ = actor.learner_alive, actor.unacked
        worst = max(worst, time.perf_counter() - started)
    # A correctness bound (it does not wait for the network), not a speed target.
    assert worst < 0.05, f"a send took {worst * 1000:.1f} ms"
    assert actor.unacked == 300 and not actor.learner_alive
    assert wait_until(lambda: len(ChunkDirectory(tmp_path / "spool")) >= 300 - 16, 10)
    actor.close(flush_timeout_s=0)
    assert len(ChunkDirectory(tmp_path / "spool")) == 300


@pytest.mark.timeout(30)
def test_one_actor_per_spool_and_one_learner_per_store(actors, learners, tmp_path):
    actors("tcp://127.0.0.1:1", spool=tmp_path / "spool", start=False)
    with pytest.raises(DirectoryBusyError, match="spool"):
        actors("tcp://127.0.0.1:1", spool=tmp_path / "spool", start=False)
    learners(store=tmp_path / "store")
    with pytest.raises(DirectoryBusyError, match="store"):
        LearnerLink(fast_config(), make_hello(), tmp_path / "store", "second")


@pytest.mark.timeout(30)
def test_spooled_chunks_are_resent_first_and_in_order(learners, actors, tmp_path):
    spool = tmp_path / "spool"
    address = f"tcp://127.0.0.1:{free_port()}"
    first = actors(address, hello=make_hello("run-1"), spool=spool, max_in_flight_chunks=2, max_chunks_in_memory=4)
    for i in range(20):
        first.send_chunk(make_chunk(100.0 + i))
    first.send_stats(make_stats(7))
    assert wait_until(lambda: len(ChunkDirectory(spool)) >= 21 - 4, 10)  # spilled while running
    first.close(flush_timeout_s=0)  # the rest spilled at close
    assert len(ChunkDirectory(spool)) == 21

    learner = learners(config=fast_config(address))
    second = actors(address, hello=make_hello("run-2"), spool=spool, max_in_flight_chunks=2, max_chunks_in_memory=4)
    assert second.unacked == 21
    for i in range(5):
        second.send_chunk(make_chunk(200.0 + i))
    assert wait_until(lambda: second.unacked == 0, 10)
    got = learner.poll_chunks()
    assert [(c.actor_session, c.seq) for c in got] == [("run-1", s) for s in range(1, 21)] + [
        ("run-2", s) for s in range(1, 6)]
    assert [float(c.reward[0]) for c in got] == [100.0 + i for i in range(20)] + [200.0 + i for i in range(5)]
    stats = learner.poll_stats()
    assert [(s.actor_session, s.seq, s.episode_id) for s in stats] == [("run-1", 21, 7)]
    assert len(ChunkDirectory(spool)) == 0  # acked files are deleted


@pytest.mark.timeout(30)
def test_actor_started_before_the_learner_delivers_everything(learners, actors, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    actor = actors(address)
    for i in range(10):
        actor.send_chunk(make_chunk(float(i)))
    time.sleep(0.3)
    assert not actor.learner_alive and actor.unacked == 10
    learner = learners(config=fast_config(address))
    assert wait_until(lambda: actor.unacked == 0, 10)
    assert actor.learner_alive and actor.learner_session == learner.learner_session
    assert learner.actors_alive() == [actor.session]
    assert sorted(c.seq for c in learner.poll_chunks()) == list(range(1, 11))


@pytest.mark.timeout(30)
def test_weights_reach_actors_including_late_joiners(learners, actors):
    learner = learners()
    early = actors(learner.endpoint)
    assert wait_until(lambda: early.learner_alive, 5)
    assert early.take_weights() is None
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float64)}
    learner.publish_weights(1, tensors)
    tensors["w"][:] = -1  # the learner keeps training: what was published must not change
    got = []
    assert wait_until(lambda: got.append(early.take_weights()) or got[-1] is not None, 5)
    w1 = got[-1]
    assert w1.version == 1 and w1.tensors["b"].dtype == np.float32
    np.testing.assert_array_equal(w1.tensors["w"], np.arange(6).reshape(2, 3))
    assert early.take_weights() is None  # taken once

    learner.publish_weights(2, {"w": np.full((2, 3), 2.0), "b": np.zeros(3)})
    got = []
    assert wait_until(lambda: got.append(early.take_weights()) or got[-1] is not None, 5)
    assert got[-1].version == 2
    assert wait_until(lambda: early.learner_weights_version == 2, 5)

    late = actors(learner.endpoint)  # connects after both publications: gets the latest only
    got = []
    assert wait_until(lambda: got.append(late.take_weights()) or got[-1] is not None, 5)
    assert got[-1].version == 2 and float(got[-1].tensors["w"][0, 0]) == 2.0


@pytest.mark.timeout(30)
def test_progress_reaches_the_actor_and_liveness_follows_the_learner(learners, actors):
    learner = learners()
    actor = actors(learner.endpoint)
    learner.set_progress(1234)
    assert wait_until(lambda: actor.learner_updates_done == 1234, 5)
    assert wait_until(lambda: learner.actors_alive() == [actor.session], 5)
    learner.close()
    assert wait_until(lambda: not actor.learner_alive, 5)


@pytest.mark.timeout(30)
def test_learner_defers_chunks_when_the_trainer_does_not_keep_up(tmp_path, actors):
    learner = LearnerLink(fast_config(), make_hello(), tmp_path / "store", "slow", max_undelivered=5)
    learner.start()
    try:
        actor = actors(learner.endpoint, peer_timeout_s=0.2, heartbeat_s=0.05)
        for i in range(12):
            actor.send_chunk(make_chunk(float(i)))
        assert wait_until(lambda: learner.deferred > 0 and learner.stored_chunks == 5, 5)
        assert wait_until(lambda: actor.unacked == 7, 5)
        taken: list = []
        deadline = time.monotonic() + 10
        while len(taken) < 12 and time.monotonic() < deadline:  # the trainer catches up
            taken += learner.poll_chunks()
            time.sleep(0.01)
        assert sorted(c.seq for c in taken) == list(range(1, 13))
        assert wait_until(lambda: actor.unacked == 0, 5)
    finally:
        learner.close()


@pytest.mark.timeout(30)
def test_a_full_disk_loses_nothing_the_actor_resends_once_space_is_back(learners, actors, tmp_path, caplog):
    store = tmp_path / "store"
    learner = learners(store=store)
    actor = actors(learner.endpoint, peer_timeout_s=0.2, heartbeat_s=0.05)
    actor.send_chunk(make_chunk(0.0))
    assert wait_until(lambda: actor.unacked == 0, 5)

    # The disk fills: every store fails at the filesystem boundary, as write(2) would.
    real_append = learner._chunks.append_frames

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    learner._chunks.append_frames = no_space
    for i in range(1, 6):
        actor.send_chunk(make_chunk(float(i)))
    assert wait_until(lambda: learner.store_failures >= 2, 5)  # refused, and tried again after a resend
    assert actor.unacked == 5 and learner.stored_chunks == 1
    refusals = [r.message for r in caplog.records if "cannot store" in r.message]
    assert refusals and "No space left on device" in refusals[0] and "free there" in refusals[0]
    assert len(refusals) < learner.store_failures  # rate-limited, not one line per batch

    learner._chunks.append_frames = real_append  # space freed
    assert wait_until(lambda: actor.unacked == 0, 10)
    delivered = learner.poll_chunks()
    assert sorted(c.seq for c in delivered) == list(range(1, 7))
    assert stored_seqs(store) == {(actor.session, seq): 1 for seq in range(1, 7)}


@pytest.mark.timeout(30)
def test_a_full_disk_under_the_actor_keeps_its_messages_in_memory_until_space_returns(learners, actors, tmp_path,
                                                                                     caplog):
    """The learner is down and the actor's window is full, so new messages would go to the spool,
    which is on a full disk: they stay in memory instead (past the bound), nothing is lost, and
    everything is delivered once, in order, when space and the learner are back."""
    address = f"tcp://127.0.0.1:{stable_port()}"
    actor = actors(address, peer_timeout_s=0.2, heartbeat_s=0.05, max_in_flight_chunks=4, max_chunks_in_memory=4)
    spool = actor._spool
    real_put, real_put_many = spool.put, spool.put_many

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    spool.put, spool.put_many = no_space, no_space
    for i in range(12):
        actor.send_chunk(make_chunk(float(i)))
    assert wait_until(lambda: any("cannot spill" in r.message for r in caplog.records), 5)
    time.sleep(0.3)
    assert actor.unacked == 12 and len(ChunkDirectory(tmp_path / "spool0")) == 0
    spool.put, spool.put_many = real_put, real_put_many  # space freed
    learner = learners(store=tmp_path / "store", config=fast_config(address))
    assert wait_until(lambda: actor.unacked == 0, 15)
    delivered = []
    assert wait_until(lambda: len(delivered.__iadd__(learner.poll_chunks())) == 12, 5)
    assert [c.seq for c in delivered] == list(range(1, 13))
    assert sorted(c.reward[0] for c in delivered) == [float(i) for i in range(12)]


@pytest.mark.timeout(30)
def test_the_learner_keeps_a_disk_reserve_and_stores_again_above_it(learners, actors, tmp_path, caplog):
    # A reserve larger than any disk: the store is "full" from the start.
    learner = learners(store=tmp_path / "store", min_free_bytes=10**18)
    actor = actors(learner.endpoint, peer_timeout_s=0.2, heartbeat_s=0.05)
    for i in range(3):
        actor.send_chunk(make_chunk(float(i)))
    assert wait_until(lambda: learner.store_failures >= 1, 5)
    time.sleep(0.3)
    assert learner.stored_chunks == 0 and actor.unacked == 3 and learner.poll_chunks() == []
    assert any("below the reserve" in r.message and "learner.min_free_disk_gb" in r.message for r in caplog.records)
    learner.min_free_bytes = 0  # space freed (or the reserve lowered)
    assert wait_until(lambda: actor.unacked == 0, 10)
    assert sorted(c.seq for c in learner.poll_chunks()) == [1, 2, 3]


@pytest.mark.timeout(30)
def test_static_weights_travel_once_per_actor_and_merge_into_the_first_weights(learners, actors):
    learner = learners()
    backbone = {"encoder.backbone.w": np.arange(12, dtype=np.float32).reshape(3, 4)}
    static_id = learner.set_static_weights(backbone)
    backbone["encoder.backbone.w"][:] = -1  # copied when set
    with pytest.raises(RuntimeError, match="already"):
        learner.set_static_weights(backbone)
    learner.publish_weights(1, {"actor.w": np.ones(2, np.float32)})
    actor = actors(learner.endpoint)
    got = []
    assert wait_until(lambda: got.append(actor.take_weights()) or got[-1] is not None, 5)
    first = got[-1]
    assert first.version == 1 and first.static_id == static_id
    assert sorted(first.tensors) == ["actor.w", "encoder.backbone.w"]
    np.testing.assert_array_equal(first.tensors["encoder.backbone.w"], np.arange(12).reshape(3, 4))

    learner.publish_weights(2, {"actor.w": np.full(2, 2.0, np.float32)})
    got = []
    assert wait_until(lambda: got.append(actor.take_weights()) or got[-1] is not None, 5)
    assert got[-1].version == 2 and sorted(got[-1].tensors) == ["actor.w"]  # static part left out


@pytest.mark.timeout(30)
def test_learner_sends_static_weights_only_to_an_actor_that_lacks_them(learners):
    learner = learners()
    static_id = learner.set_static_weights({"backbone": np.zeros(8, np.float32)})
    learner.publish_weights(3, {"head": np.ones(2, np.float32)})
    with RawActor(learner.endpoint, session="raw") as raw:
        raw.send(make_hello("raw"))
        assert raw.recv_kind(Welcome) is not None
        raw.send(WeightsRequest(have_version=-1, have_static_id=""))
        static = raw.recv_kind(StaticWeights)
        assert static is not None and static.static_id == static_id
        weights = raw.recv_kind(Weights)  # after the static part, on the same connection
        assert weights is not None and weights.version == 3 and weights.static_id == static_id
        # Holding the static part: only newer weights come back, and no static part.
        raw.send(WeightsRequest(have_version=-1, have_static_id=static_id))
        replies = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            msg = raw.recv(0.1)
            if isinstance(msg, (StaticWeights, Weights)):
                replies.append(type(msg).__name__)
        assert replies == ["Weights"]

