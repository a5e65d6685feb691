"""Replay buffers that store every observation once; the next observation is found by index.

A buffer is a ring of N observation *slots*. Slot i holds one observation (state float32 (S,),
one uint8 (H, W, 3) image per camera) and, when it is a stored transition, the transition that
leaves it (action, reward, flags). `valid[i]` says that transition's next observation is in slot
i + 1 (mod N); only valid slots are sampled, so the pair (slot i, slot i + 1) is always an
(obs, next_obs) pair of the same episode, also at terminations (the final observation is a slot of
its own), truncations (bootstrapped from that final observation), intervention boundaries and
across wrap-around.

Records arrive in `TransitionChunk`s (or, for training in one process on a gymnasium env, as
plain steps through `add_step`, which turns them into the same records) (transport.learner_messages; any object with the same
attributes works): records in the order the actor saw them, a record's next observation is the
next record of the same episode, possibly in the next chunk. Chunks of several actors may
interleave: continuity is tracked per `actor_session` (episode ids are only unique per session),
and a transition whose next observation arrives after another session's writes is stored once more
next to it (one duplicated observation per such interleaving).

Memory: the images of a slot are stored once (no next_obs copy), so a transition costs one
observation plus about 40 bytes of per-step fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np
import torch


class ChunkLike(Protocol):
    """What add_chunk reads (transport.learner_messages.TransitionChunk fits; `actor_session`,
    a str, is optional: without it all chunks count as one session). K records:
    obs_state (K, S) float32, obs_images {camera: (K, H, W, 3) uint8}, action (K, A) float32,
    reward (K,) float32, terminated / truncated / intervened / gripper_switched / has_action (K,)
    bool, episode_id (K,) int64, step_index (K,) int32."""

    obs_state: np.ndarray
    obs_images: Mapping[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    intervened: np.ndarray
    gripper_switched: np.ndarray
    has_action: np.ndarray
    episode_id: np.ndarray
    step_index: np.ndarray


# Per-slot fields copied from the chunk's records (same names as there), besides obs and action.
_SLOT_FIELDS = ("reward", "terminated", "truncated", "intervened", "gripper_switched", "episode_id", "step_index")


@dataclass
class _Pending:
    """A stored transition of one actor session still waiting for its next observation.

    write: number of the write that stored it (its slot is write % capacity; the data is intact
        while fewer than `capacity` later writes happened). episode, step: to check continuity.
    """

    write: int
    episode: int
    step: int


@dataclass
class _Waiting:
    """add_step: the last step of a stream, stored, whose next observation is not stored yet."""

    episode: int
    step: int
    next_obs: tuple[np.ndarray, dict[str, np.ndarray]]


Observation = Mapping[str, np.ndarray] | np.ndarray


def _same_observation(a: tuple[np.ndarray, dict], b: tuple[np.ndarray, dict]) -> bool:
    return np.array_equal(a[0], b[0]) and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


class ReplayBuffer:
    """Ring buffer of observation slots with next-observation-by-index transitions.

    Args:
        capacity: N, number of observation slots (>= 2). A transition needs its own slot and its
            next observation's slot, which is usually the next transition's slot, so N slots hold
            about N transitions (fewer when many episodes are short).
        state_dim: S. action_dim: A (env format, including the gripper dim).
        cameras: camera name -> (H, W, 3) of its uint8 image.

    Per slot: obs_state (N, S) float32, obs_images[cam] (N, H, W, 3) uint8, action (N, A) float32,
    reward (N,) float32, terminated / truncated / intervened / gripper_switched (N,) bool,
    has_action (N,) bool (the slot holds a transition selected into this buffer), episode_id (N,)
    int64, step_index (N,) int32, valid (N,) bool (the transition's next observation is the next
    slot).
    """

    def __init__(
        self,
        capacity: int,
        state_dim: int,
        action_dim: int,
        cameras: Mapping[str, tuple[int, int, int]] | None = None,
    ):
        if capacity < 2:
            raise ValueError("capacity must be >= 2 (a transition needs two observation slots)")
        self.capacity = capacity
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.cameras = {name: tuple(shape) for name, shape in (cameras or {}).items()}
        for name, shape in self.cameras.items():
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"camera {name!r}: shape must be (H, W, 3), got {shape}")
        n = capacity
        self.obs_state = np.zeros((n, state_dim), np.float32)
        self.obs_images = {name: np.zeros((n, *shape), np.uint8) for name, shape in self.cameras.items()}
        self.action = np.zeros((n, action_dim), np.float32)
        self.reward = np.zeros(n, np.float32)
        self.terminated = np.zeros(n, np.bool_)
        self.truncated = np.zeros(n, np.bool_)
        self.intervened = np.zeros(n, np.bool_)
        self.gripper_switched = np.zeros(n, np.bool_)
        self.episode_id = np.zeros(n, np.int64)
        self.step_index = np.zeros(n, np.int32)
        self.has_action = np.zeros(n, np.bool_)
        self.valid = np.zeros(n, np.bool_)
        # restored_at[i]: where slot i's transition was stored again, next to its next observation,
        # after another session wrote in between (-1: nowhere). The n-step walk (sample) goes on
        # there. Always a later write than i, so it is overwritten only after i is, which clears it.
        self.restored_at = np.full(n, -1, np.int32 if n < 2**31 else np.int64)
        self.write_index = 0  # next slot to write
        self.slots_written = 0  # writes so far (slots in use = min(slots_written, N))
        # Per actor session: its last record was a stored transition still waiting for its next
        # observation, which may arrive in that session's next chunk. Keyed by session so that
        # chunks of several actors may interleave (episode ids are only unique per session).
        self._pending: dict[str, _Pending] = {}
        self._valid_slots: np.ndarray | None = None  # cache of flatnonzero(valid)
        # add_step: per stream, the step still waiting for its next observation, and episode ids.
        self._streams: dict[str, _Waiting] = {}
        self._episodes: dict[str, int] = {}

    def _slot_arrays(self) -> list[np.ndarray]:
        """Every per-slot array (first axis N)."""
        return [
            self.obs_state, *self.obs_images.values(), self.action, self.has_action, self.valid, self.restored_at,
            *(getattr(self, name) for name in _SLOT_FIELDS),
        ]

    # ---------------------------------------------------------------- writing

    def add_chunk(self, chunk: ChunkLike, select: np.ndarray | None = None) -> int:
        """Store a chunk's records; returns the number of slots written.

        A record is written when it is a selected transition (select & has_action), or when it is
        the next observation of the previous record of its session, itself a selected transition
        (same episode, step + 1; the previous record may be the last of that session's previous
        chunk). The previous slot becomes valid then. Anything else (e.g. a new episode after a
        transition whose final observation never came) leaves the waiting transition invalid
        forever.

        select: (K,) bool, which transitions belong to this buffer (None: all), e.g.
            chunk.intervened for the intervention buffer.
        """
        k = len(chunk.obs_state)
        self._check_chunk(chunk, k)
        if k == 0:
            return 0
        session = str(getattr(chunk, "actor_session", ""))
        episode = np.asarray(chunk.episode_id, np.int64)
        step = np.asarray(chunk.step_index, np.int64)
        selected = np.asarray(chunk.has_action, np.bool_).copy()
        if select is not None:
            selected &= np.asarray(select, np.bool_)

        # is_next[i]: record i is the next observation of record i - 1, a selected transition.
        is_next = np.zeros(k, np.bool_)
        is_next[1:] = selected[:-1] & (episode[1:] == episode[:-1]) & (step[1:] == step[:-1] + 1)
        copied = 0
        pending = self._pending.pop(session, None)
        if (
            pending is not None
            and episode[0] == pending.episode
            and step[0] == pending.step + 1
            and self.slots_written - pending.write <= self.capacity  # its slot not overwritten
        ):
            if pending.write != self.slots_written - 1:
                # Another session wrote since: store the waiting transition again right before its
                # next observation (one duplicated observation per interleaving).
                self._copy_slot(pending.write % self.capacity)
                copied = 1
            is_next[0] = True
        if selected[-1]:
            last_write = self.slots_written + int((selected | is_next).sum()) - 1
            self._pending[session] = _Pending(last_write, int(episode[-1]), int(step[-1]))
        rows = np.flatnonzero(selected | is_next)
        if len(rows) == 0:
            return copied

        # Write in blocks of at most N - 1 records, so that within one block the slot before a
        # written slot is never itself overwritten by the same block (it holds the transition the
        # block's next-observation marks make valid).
        block = self.capacity - 1
        for start in range(0, len(rows), block):
            r = rows[start : start + block]
            slots = (self.write_index + np.arange(len(r))) % self.capacity
            # Overwriting a slot destroys its old transition (its old next observation was the
            # following slot, about to be overwritten or already unrelated) ...
            self.valid[slots] = False
            self.restored_at[slots] = -1
            self.obs_state[slots] = chunk.obs_state[r]
            for name, images in self.obs_images.items():
                images[slots] = chunk.obs_images[name][r]
            self.action[slots] = np.where(selected[r, None], chunk.action[r], 0.0)
            for name in _SLOT_FIELDS:
                getattr(self, name)[slots] = np.asarray(getattr(chunk, name))[r]
            self.has_action[slots] = selected[r]
            # ... and the slot before a continuing record (the previous write, possibly from the
            # previous block or chunk) now has its next observation.
            self.valid[(slots[is_next[r]] - 1) % self.capacity] = True
            self.write_index = int((slots[-1] + 1) % self.capacity)
            self.slots_written += len(r)
        self._valid_slots = None
        return len(rows) + copied

    def add_to_waiting_reward(self, session: str, episode: int, step: int, delta: float) -> bool:
        """Add `delta` to the reward of `session`'s stored transition that still waits for its
        next observation, if it is step `step` of episode `episode` and its slot is intact: a
        reward that depends on the next record (RLIF's takeover penalty, hilrl.learner.rlif) can
        land on a transition that came in the previous chunk. Returns whether it did."""
        pending = self._pending.get(session)
        if pending is None or (pending.episode, pending.step) != (episode, step):
            return False
        if self.slots_written - pending.write > self.capacity:
            return False
        self.reward[pending.write % self.capacity] += np.float32(delta)
        return True

    def _copy_slot(self, source: int) -> None:
        """Write slot `source`'s contents again at the write pointer (not valid yet)."""
        target = self.write_index
        for array in self._slot_arrays():
            array[target] = array[source]
        self.valid[target] = False
        self.restored_at[target], self.restored_at[source] = -1, target
        self.write_index = (target + 1) % self.capacity
        self.slots_written += 1
        self._valid_slots = None

    def _check_chunk(self, chunk: ChunkLike, k: int) -> None:
        if chunk.obs_state.ndim != 2 or chunk.obs_state.shape[1] != self.state_dim:
            raise ValueError(f"chunk obs_state has shape {chunk.obs_state.shape}, expected (K, {self.state_dim})")
        if chunk.action.shape != (k, self.action_dim):
            raise ValueError(f"chunk action has shape {chunk.action.shape}, expected ({k}, {self.action_dim})")
        if set(chunk.obs_images) != set(self.cameras):
            raise ValueError(f"chunk cameras {sorted(chunk.obs_images)} differ from the buffer's {sorted(self.cameras)}")
        for name, shape in self.cameras.items():
            if chunk.obs_images[name].shape != (k, *shape):
                raise ValueError(f"chunk camera {name!r} has shape {chunk.obs_images[name].shape}, expected ({k}, {shape})")

    def add_step(
        self,
        obs: Observation,
        action: np.ndarray,
        reward: float,
        next_obs: Observation,
        terminated: bool,
        truncated: bool,
        *,
        intervened: bool = False,
        gripper_switched: bool = False,
        stream: str = "",
    ) -> None:
        """Store one plain gymnasium step (obs, action, reward, next_obs, terminated, truncated).

        An observation is a dict {"state": (S,) float32, camera: (H, W, 3) uint8, ...} or, without
        cameras, the state (S,) alone. Consecutive steps of one `stream` (an env; give each env
        of a vector its own) share observations, as the actor's chunks do: a step whose obs is
        the previous step's next_obs continues its episode. The final transition of an episode is
        sampleable as soon as its step says terminated or truncated (its next_obs is stored as
        the episode's final observation); a step whose obs is not the previous next_obs (a reset
        the caller did not flag) closes the previous episode with that next_obs first, so no
        episode's last transition is ever dropped. `flush()` stores the next_obs a stream still
        waits on (before sampling mid-episode, or at the end).
        """
        state, images = self._split(obs)
        next_state, next_images = self._split(next_obs)
        waiting = self._streams.get(stream)
        if waiting is not None and not _same_observation(waiting.next_obs, (state, images)):
            self.flush(stream)
            waiting = None
        episode = waiting.episode if waiting is not None else self._next_episode(stream)
        step = waiting.step + 1 if waiting is not None else 0
        self._add_records(stream, [(state, images, np.asarray(action, np.float32), float(reward), bool(terminated),
                                    bool(truncated), bool(intervened), bool(gripper_switched), True)], episode, step)
        if terminated or truncated:
            self._streams.pop(stream, None)
            self._add_records(stream, [(next_state, next_images, None, 0.0, False, False, False, False, False)],
                              episode, step + 1)
        else:
            self._streams[stream] = _Waiting(episode, step, (next_state, next_images))

    def flush(self, stream: str | None = None) -> None:
        """Store the next observation that `stream` (None: every stream) waits on, so its last
        step is sampleable; the stream's next step starts a new episode."""
        for name in [stream] if stream is not None else list(self._streams):
            waiting = self._streams.pop(name, None)
            if waiting is not None:
                state, images = waiting.next_obs
                self._add_records(name, [(state, images, None, 0.0, False, False, False, False, False)],
                                  waiting.episode, waiting.step + 1)

    def _split(self, obs: Observation) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if isinstance(obs, Mapping):
            if "state" not in obs:
                raise ValueError("an observation dict needs a 'state' entry (S,) float32")
            state, images = obs["state"], {name: np.asarray(obs[name], np.uint8) for name in self.cameras}
        else:
            state, images = obs, {}
            if self.cameras:
                raise ValueError(f"this buffer stores cameras {sorted(self.cameras)}: give observation dicts")
        state = np.asarray(state, np.float32)
        if state.shape != (self.state_dim,):
            raise ValueError(f"observation state has shape {state.shape}, expected ({self.state_dim},)")
        return state, images

    def _next_episode(self, stream: str) -> int:
        episode = self._episodes.get(stream, -1) + 1
        self._episodes[stream] = episode
        return episode

    def _add_records(self, stream: str, records: list[tuple], episode: int, step: int) -> None:
        """Records (state, images, action or None, reward, terminated, truncated, intervened,
        gripper_switched, has_action) of one episode from `step` on, as a chunk of the session
        "step:<stream>" (its own continuity, apart from any actor's chunks)."""
        k = len(records)
        chunk = SimpleNamespace(
            actor_session=f"step:{stream}",
            obs_state=np.stack([r[0] for r in records]),
            obs_images={name: np.stack([r[1][name] for r in records]) for name in self.cameras},
            action=np.stack([r[2] if r[2] is not None else np.zeros(self.action_dim, np.float32) for r in records]),
            reward=np.array([r[3] for r in records], np.float32),
            terminated=np.array([r[4] for r in records]), truncated=np.array([r[5] for r in records]),
            intervened=np.array([r[6] for r in records]), gripper_switched=np.array([r[7] for r in records]),
            has_action=np.array([r[8] for r in records]),
            episode_id=np.full(k, episode, np.int64), step_index=np.arange(step, step + k, dtype=np.int32),
        )
        self.add_chunk(chunk)

    # ---------------------------------------------------------------- reading

    def __len__(self) -> int:
        """Number of valid (sampleable) transitions."""
        return len(self._valid())

    def _valid(self) -> np.ndarray:
        if self._valid_slots is None:
            self._valid_slots = np.flatnonzero(self.valid)
        return self._valid_slots

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays."""
        return sum(a.nbytes for a in self._slot_arrays())

    def states(self, max_rows: int, rng: np.random.Generator) -> np.ndarray:
        """The observed states of the valid transitions, (n, S) float32: all of them when there
        are at most `max_rows`, else `max_rows` drawn without replacement (for fitting the input
        normalisation: a min/max fit must see every row a small buffer has)."""
        valid = self._valid()
        if len(valid) > max_rows:
            valid = np.sort(rng.choice(valid, max_rows, replace=False))
        return self.obs_state[valid]

    def sample(self, n: int, rng: np.random.Generator, n_step: int = 1, discount: float = 1.0) -> dict[str, Any]:
        """n transitions uniformly (with replacement) over the valid slots.

        Returns: obs_state, next_obs_state (n, S) float32; obs_images, next_obs_images
        {camera: (n, H, W, 3) uint8}; action (n, A) float32; reward (n,) float32; terminated,
        truncated, intervened, gripper_switched (n,) bool.

        n_step > 1: each transition runs on through the following stored transitions of its
        episode, up to n_step in all (m, its `bootstrap_steps` (n,) int32, 1..n_step), stopping
        after a terminated one and where the next slot holds no stored transition (an episode's
        final observation, or where this buffer's selection of steps ends); reward is then
        sum_{k<m} discount^k r_{t+k}, next_obs the observation after the m-th transition, and
        terminated / truncated are the m-th's. action, intervened and gripper_switched stay the
        first transition's. The walk follows `valid`, which only links a slot to the next write
        of the same episode, and `restored_at` where an interleaving actor made this buffer store
        the next transition again further on; so it never crosses into another episode, another
        actor's records or slots overwritten since.
        """
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        valid = self._valid()
        if len(valid) == 0:
            raise ValueError("cannot sample from a buffer without valid transitions")
        slots = valid[rng.integers(0, len(valid), n)]
        last, reward = slots, self.reward[slots]
        if n_step > 1:
            last, reward, steps = self._run_on(slots, n_step, discount)
        next_slots = (last + 1) % self.capacity
        out: dict[str, Any] = {
            "obs_state": self.obs_state[slots],
            "next_obs_state": self.obs_state[next_slots],
            "obs_images": {name: images[slots] for name, images in self.obs_images.items()},
            "next_obs_images": {name: images[next_slots] for name, images in self.obs_images.items()},
            "action": self.action[slots],
            "reward": reward,
            "terminated": self.terminated[last],
            "truncated": self.truncated[last],
            "intervened": self.intervened[slots],
            "gripper_switched": self.gripper_switched[slots],
        }
        if n_step > 1:
            out["bootstrap_steps"] = steps
        return out

    def _run_on(self, slots: np.ndarray, n_step: int, discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sample()'s n-step walk from valid `slots` (n,): (the last slot walked (n,), the
        discounted reward sum (n,) float32, the transitions summed (n,) int32)."""
        last = slots.copy()
        reward = self.reward[slots].astype(np.float64)
        steps = np.ones(len(slots), np.int32)
        going = ~self.terminated[slots]
        for k in range(1, n_step):
            following = (last + 1) % self.capacity
            elsewhere = self.restored_at[following]  # that transition was stored again further on
            following = np.where(self.valid[following] | (elsewhere < 0), following, elsewhere)
            going &= self.valid[following]  # the next observation starts a stored transition
            if not going.any():
                break
            last = np.where(going, following, last)
            reward += np.where(going, discount**k * self.reward[following], 0.0)
            steps += going
            going &= ~self.terminated[following]
        return last, reward.astype(np.float32), steps


def concat_batches(batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate sample() dicts along the batch axis (image dicts camera by camera)."""
    out: dict[str, Any] = {}
    for key, value in batches[0].items():
        if isinstance(value, Mapping):
            out[key] = {cam: np.concatenate([b[key][cam] for b in batches]) for cam in value}
        else:
            out[key] = np.concatenate([b[key] for b in batches])
    return out


class MixedSampler:
    """RLPD batches: a fixed share from the online buffer, the rest from the other buffers (demo,
    intervention) together.

    Args:
        online: the online buffer.
        others: demo / intervention buffers; the non-empty ones share the rest of each batch in
            proportion to their sizes (i.e. uniformly over their union).
        online_fraction: share of the batch from `online`, round(batch_size * online_fraction).
        batch_size: transitions per batch.
        n_step, discount: every buffer's sample() walk (ReplayBuffer.sample; 1: one-step rows).
    When every other buffer is empty the whole batch comes from `online`.
    """

    def __init__(self, online: ReplayBuffer, others: Sequence[ReplayBuffer], online_fraction: float, batch_size: int,
                 n_step: int = 1, discount: float = 1.0):
        if not 0 < online_fraction <= 1:
            raise ValueError("online_fraction must be in (0, 1]")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.online = online
        self.others = list(others)
        self.online_fraction = online_fraction
        self.batch_size = batch_size
        self.n_step, self.discount = n_step, discount

    def counts(self, rng: np.random.Generator) -> list[int]:
        """Transitions to draw from [online, *others] for one batch."""
        sizes = np.array([len(b) for b in self.others], np.float64)
        if sizes.sum() == 0:
            return [self.batch_size] + [0] * len(self.others)
        n_online = int(round(self.batch_size * self.online_fraction))
        rest = rng.multinomial(self.batch_size - n_online, sizes / sizes.sum())
        return [n_online, *(int(c) for c in rest)]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One batch of batch_size transitions (the keys of ReplayBuffer.sample), online first,
        plus expert (B,) bool: the rows whose action a demonstrator or an operator chose (drawn
        from a demo or intervention buffer, or intervened)."""
        buffers = [self.online, *self.others]
        counts = self.counts(rng)
        parts = [(b.sample(n, rng, self.n_step, self.discount), i > 0)
                 for i, (b, n) in enumerate(zip(buffers, counts, strict=True)) if n > 0]
        batch = concat_batches([part for part, _ in parts])
        from_others = np.concatenate([np.full(len(part["reward"]), other) for part, other in parts])
        batch["expert"] = from_others | batch["intervened"]
        return batch


def to_torch(batch: Mapping[str, Any], device: str | torch.device) -> dict[str, Any]:
    """A sample() batch -> tensors on `device` in SACAgent.update's names:

    obs, next_obs (B, S) float32 (from obs_state, next_obs_state); obs_images, next_obs_images
    {camera: (B, H, W, 3) uint8, unchanged}; action (B, A) float32; reward (B,) float32;
    terminated (B,) float32 (multiplies the bootstrap); truncated, intervened, gripper_switched,
    expert (B,) bool (expert: as MixedSampler.sample marks it; a plain buffer's batch: intervened);
    bootstrap_steps (B,) float32 when the batch has it (n-step rows).
    """
    device = torch.device(device)
    non_blocking = device.type == "cuda"

    def move(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device, dtype, non_blocking=non_blocking)

    out: dict[str, Any] = {
        "obs": move(batch["obs_state"], torch.float32),
        "next_obs": move(batch["next_obs_state"], torch.float32),
        "action": move(batch["action"], torch.float32),
        "reward": move(batch["reward"], torch.float32),
        "terminated": move(batch["terminated"], torch.float32),
        "truncated": move(batch["truncated"], torch.bool),
        "intervened": move(batch["intervened"], torch.bool),
        "gripper_switched": move(batch["gripper_switched"], torch.bool),
        "expert": move(batch.get("expert", batch["intervened"]), torch.bool),
    }
    if "bootstrap_steps" in batch:  # n-step rows: the agent bootstraps with discount ** steps
        out["bootstrap_steps"] = move(batch["bootstrap_steps"], torch.float32)
    for key in ("obs_images", "next_obs_images"):
        out[key] = {cam: move(images, torch.uint8) for cam, images in batch.get(key, {}).items()}
    return out
