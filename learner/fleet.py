"""Per-robot accounting for a learner fed by several actors: what each robot contributed and how
it is doing, for the progress line, RUN_DIR/learner/progress.json and the dashboard.

A robot is named by its actor's `actor.robot_name` (stamped on every chunk and episode stats by the
actor's link; an actor that gave none is named by its session). The tallies are rebuilt at
`--resume` from the learner's own store (chunks and episode stats), so counts carry on across
restarts instead of starting again.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from hilrl.transport.learner_messages import EpisodeStats, TransitionChunk

RECENT_EPISODES = 20  # success and intervention rates are over each robot's last 20 episodes


def robot_of(message: TransitionChunk | EpisodeStats) -> str:
    """The robot a chunk or episode stats came from (its session for an unnamed actor)."""
    return message.robot_name or message.actor_session


@dataclass
class RobotReport:
    """One robot's line in progress.json ("robots": {name: RobotReport}).

    Attributes:
        env_steps: env steps received from it (over the whole run, restarts included).
        episodes: episodes it finished.
        recent_success_rate / recent_intervention_fraction: over its last 20 episodes.
        env_steps_per_s: its env steps per second over the last report period.
        weights_lag: newest published weights version minus the newest version that chose an
            action in its chunks (None until one did): how stale its policy is.
        link: "connected" (heard within link.peer_timeout_s), "silent" (heard before, not since),
            or "gone" (not heard in this learner process: before a restart, or long silent).
        last_heard_s: seconds since it was last heard (None: not in this learner process).
    """

    env_steps: int = 0
    episodes: int = 0
    recent_success_rate: float = 0.0
    recent_intervention_fraction: float = 0.0
    env_steps_per_s: float = 0.0
    weights_lag: int | None = None
    link: str = "gone"
    last_heard_s: float | None = None


@dataclass
class _Tally:
    env_steps: int = 0
    episodes: int = 0
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECENT_EPISODES))
    acting_version: int = -1
    rate_mark: tuple[float, int] | None = None  # (time s, env_steps) at the previous report
    env_steps_per_s: float = 0.0


class Fleet:
    """Tallies by robot name. Not thread-safe: the learner's training thread owns it.

    Args:
        clock: monotonic clock, s (for env steps per second).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._robots: dict[str, _Tally] = {}

    def _tally(self, name: str) -> _Tally:
        tally = self._robots.get(name)
        if tally is None:
            tally = self._robots[name] = _Tally()
        return tally

    def add_chunk(self, chunk: TransitionChunk) -> int:
        """Count a received chunk; returns its env steps (records that carry an action)."""
        steps = int(np.count_nonzero(chunk.has_action))
        tally = self._tally(robot_of(chunk))
        tally.env_steps += steps
        # Intervened and random steps carry -1: only the policy's own actions say how old it was.
        tally.acting_version = max(tally.acting_version, int(chunk.policy_version.max(initial=-1)))
        return steps

    def add_episode(self, stats: EpisodeStats) -> None:
        tally = self._tally(robot_of(stats))
        tally.episodes += 1
        tally.recent.append((bool(stats.success), float(stats.intervention_fraction)))

    @property
    def acting_version(self) -> int:
        """Newest weights version that chose an action in any robot's chunks (-1: none yet)."""
        return max((t.acting_version for t in self._robots.values()), default=-1)

    @property
    def names(self) -> list[str]:
        return sorted(self._robots)

    def reports(self, weights_version: int, last_heard_s: Mapping[str, float], peer_timeout_s: float
                ) -> dict[str, RobotReport]:
        """Every robot's report; `last_heard_s`: seconds since each robot connected to this learner
        process was heard (LearnerLink.robots_last_heard). Updates each robot's env-step rate."""
        now = self._clock()
        out: dict[str, RobotReport] = {}
        for name in sorted(set(self._robots) | set(last_heard_s)):
            tally = self._tally(name)
            if tally.rate_mark is not None and now > tally.rate_mark[0]:
                tally.env_steps_per_s = (tally.env_steps - tally.rate_mark[1]) / (now - tally.rate_mark[0])
            tally.rate_mark = (now, tally.env_steps)
            heard = last_heard_s.get(name)
            recent = list(tally.recent)
            out[name] = RobotReport(
                env_steps=tally.env_steps,
                episodes=tally.episodes,
                recent_success_rate=float(np.mean([s for s, _ in recent])) if recent else 0.0,
                recent_intervention_fraction=float(np.mean([f for _, f in recent])) if recent else 0.0,
                env_steps_per_s=round(tally.env_steps_per_s, 2),
                weights_lag=weights_version - tally.acting_version if tally.acting_version >= 0 else None,
                link="gone" if heard is None else "connected" if heard < peer_timeout_s else "silent",
                last_heard_s=None if heard is None else round(heard, 2),
            )
        return out


def reports_as_json(reports: Mapping[str, RobotReport]) -> dict[str, dict]:
    return {name: asdict(report) for name, report in reports.items()}
