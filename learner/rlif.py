"""Interventions as reward (`learner.algorithm: rlif`; RLIF, Luo et al. 2023): the operator's
decision to take over is the reward signal, so no reward function or classifier is needed.

    r_t = -penalty   if the policy chose a_t and the operator takes over at t + 1 (same episode)
          0          otherwise
    (+ the env's reward when learner.rlif.task_reward is true)

The penalty lands on the policy's step, not on the operator's first one: the critic scores the
executed action, and it is the policy's action the operator judged bad; the operator's own
actions keep reward 0 (or the task reward), so the takeover data teach what to do instead.

A takeover can start in the first record of a chunk, after the policy's step came as the last
record of the previous chunk (already stored, waiting for its next observation): the relabeller
remembers each actor session's last record and returns where that earlier penalty belongs, for
ReplayBuffer.add_to_waiting_reward.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from hilrl.transport.sections.algorithm import RLIFConfig


@dataclass(frozen=True)
class EarlierPenalty:
    """A penalty for the last record of an earlier chunk: (session, episode, step) and the reward
    to add."""

    session: str
    episode: int
    step: int
    delta: float


@dataclass
class _LastRecord:
    episode: int
    step: int
    policy_step: bool  # the policy chose its action (has_action and not intervened)


class InterventionReward:
    """Relabels chunks' rewards by RLIF's rule (the module docstring), per actor session."""

    def __init__(self, config: RLIFConfig):
        self.config = config
        self._last: dict[str, _LastRecord] = {}

    def demo(self, chunk: Any) -> Any:
        """A demonstration: no takeovers, so reward 0 (or the task reward)."""
        return chunk if self.config.task_reward else _with_reward(chunk, np.zeros(len(chunk.reward), np.float32))

    def online(self, chunk: Any) -> tuple[Any, EarlierPenalty | None]:
        """An online chunk with its rewards relabelled, and the penalty owed to the previous
        chunk's last record (None when none is)."""
        k = len(chunk.reward)
        if k == 0:
            return chunk, None
        session = str(getattr(chunk, "actor_session", ""))
        episode = np.asarray(chunk.episode_id, np.int64)
        step = np.asarray(chunk.step_index, np.int64)
        intervened = np.asarray(chunk.intervened, np.bool_)
        policy_step = np.asarray(chunk.has_action, np.bool_) & ~intervened
        reward = np.array(chunk.reward, np.float32) if self.config.task_reward else np.zeros(k, np.float32)
        # Record i is a policy step and record i + 1 the first of a takeover, in the same episode.
        starts = policy_step[:-1] & intervened[1:] & (episode[1:] == episode[:-1]) & (step[1:] == step[:-1] + 1)
        reward[:-1][starts] -= self.config.penalty
        earlier = None
        last = self._last.get(session)
        if (last is not None and last.policy_step and intervened[0]
                and episode[0] == last.episode and step[0] == last.step + 1):
            earlier = EarlierPenalty(session, last.episode, last.step, -self.config.penalty)
        self._last[session] = _LastRecord(int(episode[-1]), int(step[-1]), bool(policy_step[-1]))
        return _with_reward(chunk, reward), earlier


def _with_reward(chunk: Any, reward: np.ndarray) -> Any:
    out = copy.copy(chunk)  # shallow: the other arrays are shared, not copied
    out.reward = reward
    return out
