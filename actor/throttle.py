"""The lockstep throttle: keeps a simulated actor from outrunning the learner.

On the lockstep clock the simulator is as fast as the CPU allows, so without a brake the learning
curve (success against env steps) would depend on how fast the machine is. The throttle holds the
actor at `throttle_updates_per_step` learner updates per env step, counted from the learner's first
update, with `throttle_slack_steps` of slack. It is credit-based flow control in the ZeroMQ guide's
sense, with the learner's reported update count as the credit.

What it must never do is hang: it does not wait on a learner that is gone (not heard within the
link's `peer_timeout_s`), nor longer than `learner_wait_s` for any one update, nor for the first
welcome. A real robot (realtime clock) is never throttled; the robot sets the pace.

Three windows would otherwise let the actor run ahead unthrottled, and a short run finish before
training had begun:
- before the learner's welcome (a learner that starts slower than the actor): `wait_for_learner`;
- while the learner warms up: the actor steps freely until the learner has had `training_starts`
  of its transitions (plus a chunk and the slack) and then waits for the first update;
- after a learner restart: the count starts again with the new learner session.
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
    def refused(self) -> Any: ...


class LockstepThrottle:
    """Waits between lockstep env steps for the learner (see the module docstring).

    Args:
        config: the actor section (throttle_updates_per_step > 0, throttle_slack_steps,
            chunk_steps, learner_wait_s).
        training_starts: online transitions the learner stores before its first update.
        learner_address: for log messages.
        poll_s: how often a waiting actor looks at the learner's progress, seconds.
    """

    def __init__(self, config: ActorConfig, training_starts: int, learner_address: str, poll_s: float = 0.002) -> None:
        if config.throttle_updates_per_step <= 0:
            raise ValueError("LockstepThrottle needs throttle_updates_per_step > 0")
        self.config = config
        self.warmup_steps = training_starts + config.chunk_steps + config.throttle_slack_steps
        self.learner_address = learner_address
        self.poll_s = poll_s
        self._session: str | None = None
        self._welcome_steps = 0  # our env steps when this learner session was first seen
        self._base: tuple[int, int] | None = None  # (our env steps, its updates) at its first update seen
        self._last_updates = -1
        self._released_at: int | None = None  # gave up waiting on a stuck learner at this update count

    def wait_for_learner(self, link: LearnerProgress, stop: threading.Event) -> bool:
        """Before the first step: wait up to `learner_wait_s` for the learner's welcome. Returns
        whether a learner is there."""
        wait_s = self.config.learner_wait_s
        if not link.learner_alive and wait_s > 0:
            log.info("waiting up to %g s for the learner at %s", wait_s, self.learner_address)
        deadline = time.monotonic() + wait_s
        while not link.learner_alive and link.refused is None and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not link.learner_alive and link.refused is None and not stop.is_set():
            log.warning("no learner at %s after %g s: stepping on unthrottled (experience is spooled)",
                        self.learner_address, wait_s)
        return link.learner_alive

    def wait(self, env_steps: int, link: LearnerProgress, stop: threading.Event) -> None:
        """After env step `env_steps` (counted from 1): return once the learner has caught up, is
        gone, is warming up on our data, or has done no update for `learner_wait_s`."""
        c = self.config
        waited_since: float | None = None
        while not stop.is_set() and link.learner_alive:
            session, updates = link.learner_session, link.learner_updates_done
            if session != self._session:
                self._session, self._welcome_steps, self._base, self._released_at = session, env_steps, None, None
            if self._released_at is not None:
                if updates == self._released_at:
                    return
                self._released_at = None  # it made progress again: throttle again
            if self._base is None:
                if updates > 0:
                    self._base = (env_steps, updates)
                elif env_steps - self._welcome_steps < self.warmup_steps:
                    return  # warming up: its data must come from us
            if self._base is not None:
                owed = c.throttle_updates_per_step * (env_steps - self._base[0] - c.throttle_slack_steps)
                if updates - self._base[1] >= owed:
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
