"""The learner process is SIGKILLed mid-stream and restarted on the same address and store: every
chunk ends up stored exactly once, and the actor saw the learner go and come back."""

from __future__ import annotations

import collections
import re
import threading
import time

import pytest
from link_support import fast_config, make_chunk, make_hello, stable_port, wait_until

from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.learner_messages import LEARNER_MESSAGES
from hilrl.transport.link import ActorLink

N_CHUNKS = 150
DROP_ACKS_FROM = 40
PACE_S = 0.01  # one chunk per 10 ms: a steady stream, like an actor at 100 Hz with 1-step chunks


class _AliveWatcher:
    """Samples `actor.learner_alive` in the background, so a short outage cannot be missed."""

    def __init__(self, actor: ActorLink):
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(actor,), daemon=True)
        self._thread.start()

    def _run(self, actor: ActorLink) -> None:
        while not self._stop.wait(0.005):
            self.samples.append((time.monotonic(), actor.learner_alive))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(60)
def test_learner_killed_midway_and_restarted_stores_every_chunk_exactly_once(learner_procs, tmp_path):
    store = tmp_path / "store"
    config = fast_config(max_in_flight_chunks=8, max_chunks_in_memory=16)  # some chunks spill while it is down
    # The first learner stores chunks from seq 40 on but its acks never leave (as if it died between
    # the durable write and the ack): the second one must ack their resends without storing again.
    first = learner_procs(f"tcp://127.0.0.1:{stable_port()}", store, "learner-first", config,
                          extra_args=["--drop-acks-from-seq", str(DROP_ACKS_FROM)])
    address = first.endpoint

    actor = ActorLink(fast_config(address, max_in_flight_chunks=8, max_chunks_in_memory=16),
                      make_hello("actor-restart"), tmp_path / "spool")
    actor.start()
    watcher = _AliveWatcher(actor)
    try:
        assert wait_until(lambda: actor.learner_alive, 10), "never welcomed by the first learner"
        assert actor.learner_session == "learner-first"
        seq = 0

        def send_one() -> None:
            nonlocal seq
            seq += 1
            assert actor.send_chunk(make_chunk(float(seq))) == seq
            time.sleep(PACE_S)

        while seq < N_CHUNKS // 3:
            send_one()
        # The chunks whose acks it drops must have reached its store before it dies (the actor puts
        # each on its own disk before it sends it, which a busy machine can delay a little).
        assert wait_until(lambda: len(ChunkDirectory(store / "chunks").indices()) > DROP_ACKS_FROM, 10), \
            "the first learner never stored the chunks whose acks it drops"
        first.kill()  # SIGKILL mid-stream: whatever it was writing or acking is cut off
        killed_at = time.monotonic()
        # Keep streaming while it is gone: until the actor has noticed, and a while longer.
        noticed_at = None
        while noticed_at is None or time.monotonic() < noticed_at + 0.5:
            send_one()
            if noticed_at is None and not actor.learner_alive:
                noticed_at = time.monotonic()
            assert time.monotonic() < killed_at + 5, "the actor never noticed the learner was gone"
        assert seq < N_CHUNKS
        second = learner_procs(address, store, "learner-second", config)
        restarted_at = time.monotonic()
        while seq < N_CHUNKS:
            send_one()
        assert wait_until(lambda: actor.unacked == 0, 20), f"{actor.unacked} chunks never acknowledged"
        assert actor.learner_alive and actor.learner_session == "learner-second"
    finally:
        watcher.stop()
        actor.close(flush_timeout_s=0)
    second.stop()
    duplicates = int(re.search(r"consumed \d+ chunks, (\d+) duplicates", second.log_path.read_text()).group(1))
    assert duplicates >= 1, "the stored-but-unacked chunks were not resent"

    # Liveness: True before the kill, False while it was gone, True again after the restart.
    before = [alive for t, alive in watcher.samples if t < killed_at]
    gone = [alive for t, alive in watcher.samples if killed_at + config.peer_timeout_s + 0.2 < t < restarted_at]
    after = [alive for t, alive in watcher.samples if t > restarted_at]
    assert before and before[-1], "not alive before the kill"
    assert gone and not any(gone), "still reported alive while the learner was dead"
    assert after and after[-1], "not alive again after the restart"

    # Exactly once: count stored chunks by sequence number, and check each holds its own data.
    counts: collections.Counter = collections.Counter()
    for _, chunk in ChunkDirectory(store / "chunks").iter_messages(LEARNER_MESSAGES):
        assert chunk.actor_session == "actor-restart"
        assert float(chunk.reward[0]) == float(chunk.seq)
        counts[chunk.seq] += 1
    missing = sorted(set(range(1, N_CHUNKS + 1)) - set(counts))
    duplicated = sorted(seq for seq, n in counts.items() if n > 1)
    assert not missing and not duplicated, f"missing {missing}, duplicated {duplicated}"
    assert len(counts) == N_CHUNKS
    assert len(ChunkDirectory(tmp_path / "spool")) == 0
