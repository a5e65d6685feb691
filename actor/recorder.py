"""Turns env steps into transition records and chunks (layout in transport/learner_messages.py).

Each observation becomes one record. The record carries the transition that leaves it (action,
reward, flags) once that step has run; the last observation of an episode becomes a record with
`has_action = False`. Chunks are cut after `chunk_steps` records and at every episode end, so an
episode's final record is never held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hilrl.transport.learner_messages import TransitionChunk


@dataclass
class _Pending:
    obs: dict[str, np.ndarray]
    step_index: int


@dataclass
class ChunkRecorder:
    """Accumulates records of one actor; `add_step`/`end_episode` return finished chunks.

    Attributes:
        action_dim: env action size. chunk_steps: records per chunk.
        cameras: camera names in the observation (images stored as given, uint8).
    """

    action_dim: int
    chunk_steps: int
    cameras: tuple[str, ...] = ()
    _records: list[dict] = field(default_factory=list)
    _pending: _Pending | None = None
    _episode_id: int = -1

    def start_episode(self, episode_id: int, obs: dict[str, np.ndarray]) -> None:
        """The first observation of a new episode (a dangling one is dropped: it has no action)."""
        self._episode_id = episode_id
        self._pending = _Pending(obs, 0)

    def add_step(
        self,
        action: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
        intervened: bool,
        gripper_switched: bool,
        policy_version: int,
        next_obs: dict[str, np.ndarray],
    ) -> list[TransitionChunk]:
        """Record the step that left the pending observation; returns chunks ready to send."""
        if self._pending is None:
            raise RuntimeError("start_episode() must come before add_step()")
        p = self._pending
        self._records.append(
            {
                "obs": p.obs,
                "action": np.asarray(action, dtype=np.float32),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "intervened": bool(intervened),
                "gripper_switched": bool(gripper_switched),
                "has_action": True,
                "step_index": p.step_index,
                "policy_version": int(policy_version),
            }
        )
        self._pending = _Pending(next_obs, p.step_index + 1)
        if terminated or truncated:
            return self.end_episode()
        if len(self._records) >= self.chunk_steps:
            return [self._flush()]
        return []

    def end_episode(self) -> list[TransitionChunk]:
        """Close the episode with its final observation record; returns the last chunk.

        Also right for an episode cut short by the caller: the last transition still gets its next
        observation, and an episode with no step at all leaves nothing behind.
        """
        if self._pending is not None and self._pending.step_index > 0:
            p = self._pending
            self._records.append(
                {
                    "obs": p.obs,
                    "action": np.zeros(self.action_dim, np.float32),
                    "reward": 0.0,
                    "terminated": False,
                    "truncated": False,
                    "intervened": False,
                    "gripper_switched": False,
                    "has_action": False,
                    "step_index": p.step_index,
                    "policy_version": -1,
                }
            )
        self._pending = None
        return [self._flush()] if self._records else []

    def _flush(self) -> TransitionChunk:
        records, self._records = self._records, []
        k = len(records)
        return TransitionChunk(
            actor_session="",  # the link stamps session and seq
            seq=0,
            obs_state=np.stack([r["obs"]["state"] for r in records]).astype(np.float32, copy=False),
            action=np.stack([r["action"] for r in records]),
            reward=np.array([r["reward"] for r in records], np.float32),
            terminated=np.array([r["terminated"] for r in records], bool),
            truncated=np.array([r["truncated"] for r in records], bool),
            intervened=np.array([r["intervened"] for r in records], bool),
            gripper_switched=np.array([r["gripper_switched"] for r in records], bool),
            has_action=np.array([r["has_action"] for r in records], bool),
            episode_id=np.full(k, self._episode_id, np.int64),
            step_index=np.array([r["step_index"] for r in records], np.int32),
            policy_version=np.array([r["policy_version"] for r in records], np.int64),
            obs_images={cam: np.stack([r["obs"][cam] for r in records]) for cam in self.cameras},
        )
