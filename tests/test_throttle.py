"""The lockstep throttle's rules (actor/throttle.py), against a learner whose progress the test
drives. The same throttle between real processes is covered by tests/test_run.py (the update ratio
it holds) and tests/vision/test_image_run.py (a learner slower to start than the actor)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from hilrl.actor.config import ActorConfig
from hilrl.actor.throttle import LockstepThrottle

TRAINING_STARTS = 100
# A call that must not wait returns at once; one that wrongly waited would block until the
# stuck-learner release (`learner_wait_s`, 5 s here) or longer. The margin keeps a descheduled
# process on a busy CI machine from failing the test.
NO_WAIT_S = 1.0


@dataclass
class Learner:
    """The things the throttle reads from the actor's link."""

    learner_alive: bool = True
    learner_session: str | None = "learner-a"
    learner_updates_done: int = 0
    refused: object | None = None


def throttle(ratio: float = 1.0, slack: int = 5, wait_s: float = 5.0) -> LockstepThrottle:
    config = ActorConfig(throttle_updates_per_step=ratio, throttle_slack_steps=slack, chunk_steps=10,
                         learner_wait_s=wait_s)
    return LockstepThrottle(config, TRAINING_STARTS, "tcp://127.0.0.1:1", poll_s=0.001)


def later(delay_s: float, change) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        change()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def timed_wait(t: LockstepThrottle, env_steps: int, learner: Learner, stop: threading.Event | None = None) -> float:
    started = time.monotonic()
    t.wait(env_steps, learner, stop or threading.Event())
    return time.monotonic() - started


@pytest.mark.timeout(30)
def test_waits_for_the_learners_welcome_but_not_forever():
    learner, stop = Learner(learner_alive=False), threading.Event()
    t = throttle(wait_s=0.3)
    started = time.monotonic()
    assert t.wait_for_learner(learner, stop) is False
    assert 0.3 <= time.monotonic() - started < 2.0
    # A learner that comes up while the actor waits ends the wait at once.
    later(0.2, lambda: setattr(learner, "learner_alive", True))
    started = time.monotonic()
    assert throttle(wait_s=10).wait_for_learner(learner, stop) is True
    assert time.monotonic() - started < 2.0


@pytest.mark.timeout(30)
def test_never_waits_on_a_learner_that_is_gone():
    t, learner = throttle(), Learner(learner_alive=False)
    assert timed_wait(t, 10_000, learner) < NO_WAIT_S
    # Gone in the middle of a wait: the wait ends.
    learner = Learner(learner_updates_done=1)
    t.wait(1, learner, threading.Event())  # first update seen at step 1
    later(0.2, lambda: setattr(learner, "learner_alive", False))
    assert 0.15 < timed_wait(t, 500, learner) < 2.0


@pytest.mark.timeout(30)
def test_steps_freely_through_the_warm_up_then_waits_for_the_first_update():
    t, learner = throttle(slack=5), Learner()
    warmup = TRAINING_STARTS + 10 + 5
    for step in range(1, warmup + 1):
        assert timed_wait(t, step, learner) < NO_WAIT_S, step
    # The learner has had our data; its first update is slow: the actor waits for it.
    later(0.3, lambda: setattr(learner, "learner_updates_done", 1))
    assert timed_wait(t, warmup + 1, learner) >= 0.25


@pytest.mark.timeout(30)
def test_holds_the_update_ratio_from_the_first_update():
    t, learner = throttle(ratio=2.0, slack=5), Learner(learner_updates_done=3)
    assert timed_wait(t, 50, learner) < NO_WAIT_S  # first update seen: the count starts here (step 50, update 3)
    assert timed_wait(t, 55, learner) < NO_WAIT_S  # within the slack
    # 10 steps past the slack at 2 updates per step: 20 updates owed beyond update 3.
    def learn() -> None:
        while learner.learner_updates_done < 3 + 20:
            time.sleep(0.01)
            learner.learner_updates_done += 1

    later(0.0, learn)
    assert timed_wait(t, 65, learner) >= 0.15
    assert learner.learner_updates_done >= 23


@pytest.mark.timeout(30)
def test_a_stuck_learner_releases_the_actor_until_it_makes_progress(caplog):
    t, learner = throttle(ratio=1.0, slack=0, wait_s=0.3), Learner(learner_updates_done=1)
    t.wait(1, learner, threading.Event())
    waited = timed_wait(t, 100, learner)
    assert 0.3 <= waited < 2.0
    assert "did no update in 0.3 s" in caplog.text
    assert timed_wait(t, 101, learner) < 0.2  # still stuck: no second wait
    learner.learner_updates_done = 2  # progress again: the throttle holds again
    later(0.2, lambda: setattr(learner, "learner_updates_done", 200))
    assert timed_wait(t, 102, learner) >= 0.15


@pytest.mark.timeout(30)
def test_a_restarted_learner_starts_a_new_count():
    t, learner = throttle(ratio=1.0, slack=0), Learner(learner_updates_done=500)
    t.wait(100, learner, threading.Event())  # counting from (step 100, update 500)
    # A fresh learner with an empty buffer: it needs our data before it can update, so the actor
    # must not wait for it to catch up with the old learner's count.
    learner.learner_session, learner.learner_updates_done = "learner-b", 0
    for step in range(101, 101 + TRAINING_STARTS + 10):
        assert timed_wait(t, step, learner) < NO_WAIT_S, step


@pytest.mark.timeout(30)
def test_stop_ends_a_wait():
    t, learner, stop = throttle(ratio=1.0, slack=0), Learner(learner_updates_done=1), threading.Event()
    t.wait(1, learner, stop)
    later(0.2, stop.set)
    assert 0.15 < timed_wait(t, 1000, learner, stop) < 2.0


def test_learner_wait_s_is_validated_by_name():
    with pytest.raises(ValueError, match="learner_wait_s"):
        ActorConfig(learner_wait_s=-1)
