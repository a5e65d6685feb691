"""Record demonstrations: `hilrl record-demos --config FILE --episodes N --out DIR`.

In the sim the task's scripted expert drives (a real robot's operator devices come with the
hardware issue). Only successful episodes are kept. Each kept episode is written as transition
chunks in the same on-disk format the learner stores (transport/chunkfile.py), one atomic file per
chunk, plus `demos.json` describing the set; the learner loads such a folder through
`learner.demos`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actor.experts import make_expert
from actor.make import make_env
from actor.recorder import ChunkRecorder
from transport.chunkfile import ChunkDirectory, write_json_atomic
from transport.config import document_hash, load_document
from transport.learner_messages import LEARNER_MESSAGES
from transport.schema import SchemaError

log = logging.getLogger(__name__)


def record_demos(doc: dict[str, Any], episodes: int, out_dir: Path, seed: int = 0, max_attempts: int | None = None) -> dict:
    """Record `episodes` successful expert episodes into `out_dir`; returns the summary.

    Raises:
        RuntimeError: fewer successes than asked within `max_attempts` (default 3 x episodes).
    """
    task = doc.get("task", "")
    env = make_env(doc)
    expert = make_expert(task, env.config.action)
    cameras = tuple(c for c in env.observation_space.spaces if c != "state")
    recorder = ChunkRecorder(env.action_space.shape[0], chunk_steps=10, cameras=cameras)
    store = ChunkDirectory(out_dir)
    session = f"demos-{uuid.uuid4().hex[:12]}"
    seq, kept, attempts, transitions = 0, 0, 0, 0
    max_attempts = max_attempts or 3 * episodes
    started = time.monotonic()
    try:
        while kept < episodes and attempts < max_attempts:
            obs, _ = env.reset(seed=seed + attempts)
            expert.reset()
            recorder.start_episode(kept, obs)
            chunks, done, info = [], False, {}
            while not done:
                action = expert.act(env.robot_state)
                obs, reward, terminated, truncated, info = env.step(action)
                chunks += recorder.add_step(
                    action, reward, terminated, truncated, False, bool(info["gripper_switched"]), -1, obs
                )
                done = terminated or truncated
            attempts += 1
            if not info["succeeded"]:
                log.warning("attempt %d failed; not kept", attempts)
                continue
            for chunk in chunks:
                seq += 1
                chunk.actor_session, chunk.seq = session, seq
                store.append(chunk, LEARNER_MESSAGES)
                transitions += int(chunk.has_action.sum())
            kept += 1
            print(f"demo {kept}/{episodes} recorded ({transitions} transitions so far)", flush=True)
    finally:
        env.close()
        store.close()
    if kept < episodes:
        raise RuntimeError(f"only {kept} of {episodes} demonstrations succeeded in {attempts} attempts")
    summary = {
        "task": task,
        "episodes": kept,
        "attempts": attempts,
        "transitions": transitions,
        "cameras": list(cameras),
        "config_hash": document_hash(doc),
        "wall_time_s": round(time.monotonic() - started, 3),
    }
    write_json_atomic(out_dir / "demos.json", summary, fsync=True)
    return summary


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Record successful demonstrations with the scripted expert (sim).")
    parser.add_argument("--config", required=True, help="task YAML file")
    parser.add_argument("--episodes", type=int, default=20, help="successful episodes to keep (default 20)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="dotted overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        doc = load_document(args.config, args.overrides)
        summary = record_demos(doc, args.episodes, args.out, args.seed)
    except (SchemaError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
