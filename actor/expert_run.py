"""`hilrl run` (for now): drive the simulated arm with the scripted expert through a real robot
server process, report the success rate, and write RUN_DIR/summary.json.

This is the main job until the learner lands: it exercises the whole robot path (server process,
ZeroMQ, server-side safety, gymnasium env) on the task a user picks. Training replaces the expert
in the actor/learner issue.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from actor.config import EnvConfig
from actor.experts import make_expert
from actor.make import make_env
from robot_server.config import ServerConfig
from robot_server.process import start_server_process
from transport.config import load_document, section
from transport.schema import SchemaError

log = logging.getLogger(__name__)


def run_expert(
    config_path: str | Path, episodes: int, run_dir: Path, overrides: Sequence[str] = (), seed: int = 0
) -> dict:
    """Run `episodes` expert episodes against a robot server child process; returns the summary."""
    doc = load_document(config_path, overrides)
    task = doc.get("task", "")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with start_server_process(task, config=config_path, log_path=run_dir / "robot_server.log") as server:
        env = make_env(doc, ["env.connection=server", f"robot_server.address={server.endpoint}"])
        expert = make_expert(task, env.config.action)
        successes, lengths = 0, []
        try:
            for episode in range(episodes):
                env.reset(seed=seed + episode)
                expert.reset()
                done, steps, info = False, 0, {}
                while not done:
                    _, _, terminated, truncated, info = env.step(expert.act(env.robot_state))
                    steps += 1
                    done = terminated or truncated
                successes += bool(info["succeeded"])
                lengths.append(steps)
                print(
                    f"episode {episode + 1}/{episodes}: {'success' if info['succeeded'] else 'failure'} "
                    f"in {steps} steps (success rate so far {successes / (episode + 1):.0%})",
                    flush=True,
                )
        finally:
            env.close()
    summary = {
        "task": task,
        "policy": "scripted_expert",
        "env_steps": int(sum(lengths)),
        "eval_episodes": episodes,
        "eval_success_rate": successes / episodes,
        "mean_episode_length": sum(lengths) / episodes,
        "wall_time_s": round(time.monotonic() - started, 3),
    }
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / "summary.json")
    return summary


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the main job on the simulated robot: a robot server process plus the "
        "scripted expert (training replaces the expert in a later release).",
    )
    parser.add_argument("--config", required=True, help="task YAML, e.g. configs/sim_pick_cube.yaml")
    parser.add_argument("--run-dir", type=Path, help="output directory (default: runs/<task>-<time>)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.max_episode_steps=50")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        doc = load_document(args.config, args.overrides)
        # Every section is checked before any process starts, so a typo fails in a second.
        section(doc, "robot_server", ServerConfig)
        section(doc, "env", EnvConfig)
    except (SchemaError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path("runs") / f"{doc.get('task', 'task')}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        summary = run_expert(args.config, args.episodes, run_dir, args.overrides, args.seed)
    except KeyboardInterrupt:
        print("interrupted; robot server stopped", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    print(f"summary written to {run_dir / 'summary.json'}")
    return 0
