"""The lockstep throttle: keeps a simulated actor from outrunning the learner.

On the lockstep clock the simulator is as fast as the CPU allows, so without a brake the learning
curve (success against env steps) would depend on how fast the machine is. The learner owns the
update-to-data ratio (`learner.updates_per_env_step`, over the env steps of all robots together):
it never runs ahead of it, and it reports to every actor how many env steps it has not yet trained
on (`env_steps_ahead`, in acks and heartbeats, and pushed at once when it catches up). The throttle
makes a lockstep actor wait while that exceeds `actor.throttle_slack_steps`. It is credit-based flow
control in the ZeroMQ guide's sense, with the learner's backlog as the (negative) credit; because
the backlog is global, N actors together get the configured ratio, not 1/N of it.

What it must never do is hang: it does not wait on a learner that is gone (not heard within the
link's `peer_timeout_s`), nor longer than `learner_wait_s` on a learner that does no update, nor for
the first welcome. A real robot (realtime clock) is never throttled; the robot sets the pace, and
the learner holds the ratio from its side alone. While the learner warms up (fewer than
`training_starts` online transitions) it owes nothing, so actors step freely.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from hilrl.actor.config import ActorConfig

log = logging.getLogger(__name__)


class LearnerProgress(Protocol):
    """What the throttle reads from the actor's learner link (transport.link.ActorLink)."""

    @property
    def learner_alive(self) -> bool: ...

    @property
    def learner_session(self) -> str | None: ...

    @property
    def learner_updates_done(self) -> int: ...

    @property
    def learner_env_steps_ahead(self) -> int: ...

    @property
    def refused(self) -> Any: ...


class LockstepThrottle:
    """Waits between lockstep env steps for the learner (see the module docstring).

    Args:
        config: the actor section (throttle_slack_steps, learner_wait_s).
        learner_address: for log messages.
        poll_s: how often a waiting actor looks at the learner's progress, seconds.
    """

    def __init__(self, config: ActorConfig, learner_address: str, poll_s: float = 0.002) -> None:
        self.config = config
        self.learner_address = learner_address
        self.poll_s = poll_s
        self._last_updates = -1
        self._released_at: int | None = None  # gave up waiting on a stuck learner at this update count

    def wait_for_learner(self, link: LearnerProgress, stop: threading.Event, give_up_s: float | None = None) -> bool:
        """Before the first step: wait up to `learner_wait_s` for the learner's welcome. Returns
        whether a learner is there. With `give_up_s` shorter than that (the actor's
        `learner_grace_s`), waits only that long and leaves the news to the caller, which stops."""
        wait_s = self.config.learner_wait_s
        gives_up = give_up_s is not None and give_up_s < wait_s
        if gives_up:
            wait_s = give_up_s
        if not link.learner_alive and wait_s > 0:
            log.info("waiting up to %g s for the learner at %s", wait_s, self.learner_address)
        deadline = time.monotonic() + wait_s
        while not link.learner_alive and link.refused is None and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not link.learner_alive and link.refused is None and not stop.is_set() and not gives_up:
            log.warning("no learner at %s after %g s: stepping on unthrottled (experience is spooled)",
                        self.learner_address, wait_s)
        return link.learner_alive

    def wait(self, link: LearnerProgress, stop: threading.Event) -> None:
        """After an env step: return once the learner's backlog is within the slack, the learner is
        gone, or it has done no update for `learner_wait_s`."""
        c = self.config
        waited_since: float | None = None
        while not stop.is_set() and link.learner_alive and link.refused is None:
            updates = link.learner_updates_done
            if self._released_at is not None:
                if updates == self._released_at:
                    return
                self._released_at = None  # it made progress again: throttle again
            if link.learner_env_steps_ahead <= c.throttle_slack_steps:
                return
            now = time.monotonic()
            if waited_since is None or updates != self._last_updates:
                waited_since, self._last_updates = now, updates
            elif now - waited_since > c.learner_wait_s:
                log.warning("the learner did no update in %g s (stuck at %d): stepping on unthrottled until it does",
                            c.learner_wait_s, updates)
                self._released_at = updates
                return
            time.sleep(self.poll_s)
