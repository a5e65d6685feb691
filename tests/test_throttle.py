"""The lockstep throttle's rules (actor/throttle.py), against a learner whose progress the test
drives. The learner's side of the ratio (its update budget over all robots) is covered by
tests/test_fleet.py, and both together between real processes by tests/test_run.py and
tests/test_fleet.py's two-actor run."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from hilrl.actor.config import ActorConfig
from hilrl.actor.throttle import LockstepThrottle
from hilrl.transport.config import parse_document, section
from hilrl.transport.schema import SchemaError

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
    learner_env_steps_ahead: int = 0
    refused: object | None = None


def throttle(slack: int = 5, wait_s: float = 5.0) -> LockstepThrottle:
    config = ActorConfig(throttle_slack_steps=slack, chunk_steps=10, learner_wait_s=wait_s)
    return LockstepThrottle(config, "tcp://127.0.0.1:1", poll_s=0.001)


def later(delay_s: float, change) -> threading.Thread:
    def run() -> None:
        time.sleep(delay_s)
        change()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def timed_wait(t: LockstepThrottle, learner: Learner, stop: threading.Event | None = None) -> float:
    started = time.monotonic()
    t.wait(learner, stop or threading.Event())
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
def test_never_waits_on_a_learner_that_is_gone_or_refused_us():
    t = throttle()
    assert timed_wait(t, Learner(learner_alive=False, learner_env_steps_ahead=10_000)) < NO_WAIT_S
    assert timed_wait(t, Learner(refused="contract", learner_env_steps_ahead=10_000)) < NO_WAIT_S
    # Gone in the middle of a wait: the wait ends.
    learner = Learner(learner_updates_done=1, learner_env_steps_ahead=500)
    later(0.2, lambda: setattr(learner, "learner_alive", False))
    assert 0.15 < timed_wait(t, learner) < 2.0


@pytest.mark.timeout(30)
def test_steps_on_within_the_slack_and_waits_beyond_it_until_the_learner_catches_up():
    t = throttle(slack=5)
    for ahead in range(6):
        assert timed_wait(t, Learner(learner_env_steps_ahead=ahead)) < NO_WAIT_S, ahead
    learner = Learner(learner_updates_done=10, learner_env_steps_ahead=12)

    def learn() -> None:  # the learner works off its backlog, one env step's updates at a time
        while learner.learner_env_steps_ahead > 0:
            time.sleep(0.02)
            learner.learner_updates_done += 1
            learner.learner_env_steps_ahead -= 1

    later(0.0, learn)
    waited = timed_wait(t, learner)
    assert waited >= 0.1  # 7 steps of backlog at 20 ms each before it is within the slack
    assert learner.learner_env_steps_ahead <= 5


@pytest.mark.timeout(30)
def test_a_stuck_learner_releases_the_actor_until_it_makes_progress(caplog):
    t, learner = throttle(slack=0, wait_s=0.3), Learner(learner_updates_done=1, learner_env_steps_ahead=50)
    waited = timed_wait(t, learner)
    assert 0.3 <= waited < 2.0
    assert "did no update in 0.3 s" in caplog.text
    assert timed_wait(t, learner) < 0.2  # still stuck: no second wait
    learner.learner_updates_done = 2  # progress again: the throttle holds again
    later(0.2, lambda: setattr(learner, "learner_env_steps_ahead", 0))
    assert timed_wait(t, learner) >= 0.15


@pytest.mark.timeout(30)
def test_stop_ends_a_wait():
    t, learner, stop = throttle(slack=0), Learner(learner_updates_done=1, learner_env_steps_ahead=100), threading.Event()
    later(0.2, stop.set)
    assert 0.15 < timed_wait(t, learner, stop) < 2.0


def test_learner_wait_s_is_validated_by_name():
    with pytest.raises(ValueError, match="learner_wait_s"):
        ActorConfig(learner_wait_s=-1)


def test_the_old_throttle_key_names_its_new_place():
    with pytest.raises(SchemaError) as info:
        section(parse_document({"actor": {"throttle_updates_per_step": 2.0}}), "actor", ActorConfig)
    assert "actor.throttle_updates_per_step" in str(info.value)
    assert "learner.updates_per_env_step" in str(info.value)
