"""Synthetic transition records for the replay tests.

Every observation encodes where it came from, so a test can check each sampled (obs, next_obs)
pair: obs_state[0] = episode id, obs_state[1] = step index, obs_state[2] = a tag (buffer or actor
session), and every
image pixel = (7 * episode + step) % 256 (camera "b" adds 1). The action encodes the step as well:
action[0] = step / 1000, action[1] = episode / 1000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hilrl.transport.learner_messages import TransitionChunk

STATE_DIM = 5
ACTION_DIM = 4


@dataclass
class Episode:
    """One episode's records: `steps` transitions, then (unless end == "cut") the final obs.

    end: "terminated", "truncated" or "cut" (the actor vanished: no final observation record).
    intervened: (steps,) bool per transition (default: none).
    """

    episode_id: int
    steps: int
    end: str = "truncated"
    intervened: np.ndarray | None = None


def pixel(episode: int, step: int, camera_offset: int = 0) -> int:
    return (7 * episode + step + camera_offset) % 256


def records(episodes: list[Episode], cameras: dict[str, tuple[int, int, int]] | None = None, tag: float = 0.0) -> dict:
    """Flat record arrays (the TransitionChunk fields) for the episodes, in order."""
    cameras = cameras or {}
    cols: dict[str, list] = {k: [] for k in ("episode_id", "step_index", "has_action", "terminated", "truncated", "intervened")}
    for ep in episodes:
        intervened = np.zeros(ep.steps, bool) if ep.intervened is None else np.asarray(ep.intervened, bool)
        n_records = ep.steps + (0 if ep.end == "cut" else 1)
        for step in range(n_records):
            has_action = step < ep.steps
            last = step == ep.steps - 1
            cols["episode_id"].append(ep.episode_id)
            cols["step_index"].append(step)
            cols["has_action"].append(has_action)
            cols["terminated"].append(last and ep.end == "terminated")
            cols["truncated"].append(last and ep.end == "truncated")
            cols["intervened"].append(bool(intervened[step]) if has_action else False)
    episode_id = np.array(cols["episode_id"], np.int64)
    step_index = np.array(cols["step_index"], np.int32)
    has_action = np.array(cols["has_action"], bool)
    k = len(episode_id)
    obs_state = np.zeros((k, STATE_DIM), np.float32)
    obs_state[:, 0] = episode_id
    obs_state[:, 1] = step_index
    obs_state[:, 2] = tag
    action = np.zeros((k, ACTION_DIM), np.float32)
    action[:, 0] = step_index / 1000.0
    action[:, 1] = episode_id / 1000.0
    action[~has_action] = 0.0
    images = {}
    for i, (name, shape) in enumerate(sorted(cameras.items())):
        values = np.array([pixel(e, s, i) for e, s in zip(episode_id, step_index, strict=True)], np.uint8)
        images[name] = np.broadcast_to(values[:, None, None, None], (k, *shape)).copy()
    return {
        "obs_state": obs_state,
        "obs_images": images,
        "action": action,
        "reward": (step_index.astype(np.float32) / 100.0) * has_action,
        "terminated": np.array(cols["terminated"], bool),
        "truncated": np.array(cols["truncated"], bool),
        "intervened": np.array(cols["intervened"], bool),
        "gripper_switched": (step_index % 3 == 0) & has_action,
        "has_action": has_action,
        "episode_id": episode_id,
        "step_index": step_index,
        "policy_version": np.full(k, -1, np.int64),
    }


def chunks(rec: dict, sizes: int | list[int], session: str = "actor-test") -> list[TransitionChunk]:
    """Split records into TransitionChunks of `sizes` records (an int: all the same size; a list:
    cycled)."""
    k = len(rec["obs_state"])
    size_list = [sizes] if isinstance(sizes, int) else list(sizes)
    out, start, i = [], 0, 0
    while start < k:
        end = min(k, start + size_list[i % len(size_list)])
        out.append(
            TransitionChunk(
                actor_session=session,
                seq=len(out),
                obs_images={name: images[start:end] for name, images in rec["obs_images"].items()},
                **{name: value[start:end] for name, value in rec.items() if name != "obs_images"},
            )
        )
        start, i = end, i + 1
    return out


def check_pairs(batch: dict, cameras: dict[str, tuple[int, int, int]] | None = None) -> None:
    """Every sampled transition pairs an obs with the next step of the same episode, and its
    action, reward and images are that obs's."""
    ep, step = batch["obs_state"][:, 0], batch["obs_state"][:, 1]
    np.testing.assert_array_equal(batch["next_obs_state"][:, 0], ep)
    np.testing.assert_array_equal(batch["next_obs_state"][:, 1], step + 1)
    np.testing.assert_array_equal(batch["next_obs_state"][:, 2], batch["obs_state"][:, 2])  # same source
    np.testing.assert_allclose(batch["action"][:, 0], step / 1000.0, atol=1e-6)
    np.testing.assert_allclose(batch["action"][:, 1], ep / 1000.0, atol=1e-6)
    np.testing.assert_allclose(batch["reward"], step / 100.0, atol=1e-6)
    np.testing.assert_array_equal(batch["gripper_switched"], step % 3 == 0)
    for i, name in enumerate(sorted(cameras or {})):
        e, s = ep.astype(int), step.astype(int)
        want = np.array([pixel(a, b, i) for a, b in zip(e, s, strict=True)], np.uint8)
        want_next = np.array([pixel(a, b + 1, i) for a, b in zip(e, s, strict=True)], np.uint8)
        np.testing.assert_array_equal(batch["obs_images"][name][:, 0, 0, 0], want)
        np.testing.assert_array_equal(batch["next_obs_images"][name][:, -1, -1, 2], want_next)
