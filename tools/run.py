"""`hilrl run`: the main job. Trains a policy on the simulated robot with three processes on
loopback, exactly as they would run in a lab:

    robot server (sim backend)  <-- requests -->  actor  -- chunks -->  learner
                                                         <-- weights --

Steps: validate the config; record demonstrations with the scripted expert if the config names
none; start the robot server, the learner and the actor; print progress (env steps, success rate,
intervention rate, updates/s) every few seconds; when the actor has run `--max-env-steps`, it
evaluates the deterministic policy; then everything stops cleanly (the learner writes a final
checkpoint) and RUN_DIR/summary.json is written. Ctrl-C stops all three the same way.

The resolved config (with the addresses chosen at launch) is written once to RUN_DIR/config.yaml
and given to both actor and learner, so their handshake compares the same config hash.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hilrl.actor.loop import load_settings
from hilrl.actor.make import SIM_TASKS
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.process import start_server_process
from hilrl.tools.demos import record_demos
from hilrl.transport.chunkfile import write_json_atomic
from hilrl.transport.config import load_document, parse_document, section
from hilrl.transport.dashboard import (
    DashboardConfig,
    add_dashboard_argument,
    dashboard_overrides,
    describe,
)
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.learner import LearnerConfig

log = logging.getLogger(__name__)

DEFAULT_DEMOS = 20


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "hilrl.tools.cli", *args], env=_child_env(), stdout=log_file, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen | None, timeout_s: float = 30.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _progress_line(progress: dict[str, Any] | None, started: float) -> str:
    if not progress:
        return f"[{time.monotonic() - started:6.0f}s] waiting for the learner"
    return (
        f"[{time.monotonic() - started:6.0f}s] env steps {progress['env_steps']:6d} | episodes {progress['episodes']:4d} | "
        f"success (last 20) {progress['recent_success_rate']:4.0%} | intervention {progress['recent_intervention_fraction']:4.0%} | "
        f"updates {progress['updates']:6d} ({progress['updates_per_s']:.0f}/s) | weights v{progress['weights_version']}"
    )


def run(
    config: Path,
    run_dir: Path,
    max_env_steps: int,
    eval_episodes: int,
    overrides: Sequence[str] = (),
    report_every_s: float = 5.0,
) -> dict[str, Any]:
    """Train end to end; returns the summary (also written to RUN_DIR/summary.json)."""
    started = time.monotonic()
    doc = load_document(config, overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = RunDir(run_dir)
    task = doc.get("task", "")
    print(f"dashboard: {describe(section(doc, 'dashboard', DashboardConfig), run_dir)}", flush=True)
    learner_section = doc.setdefault("learner", {})
    if not learner_section.get("demos"):
        demo_dir = paths.demos
        print(f"recording {DEFAULT_DEMOS} demonstrations with the scripted expert into {demo_dir}", flush=True)
        record_demos(parse_document(doc, ["env.connection=inprocess"]), DEFAULT_DEMOS, demo_dir)
        learner_section["demos"] = [str(demo_dir)]

    robot_port, link_port = free_loopback_port(), free_loopback_port()
    resolved = parse_document(
        doc,
        [
            "env.connection=server",
            f"robot_server.address=tcp://127.0.0.1:{robot_port}",
            f"link.address=tcp://127.0.0.1:{link_port}",
        ],
    )
    config_path = paths.config_yaml
    config_path.write_text(yaml.safe_dump(resolved, sort_keys=False))

    server = learner = actor = None
    try:
        server = start_server_process(task, config=config_path, port=robot_port, log_path=paths.log("robot_server"))
        learner = _spawn(["learner", "--config", str(config_path), "--run-dir", str(run_dir)], paths.log("learner"))
        actor = _spawn(
            ["actor", "--config", str(config_path), "--run-dir", str(run_dir), "--max-env-steps", str(max_env_steps),
             "--eval-episodes", str(eval_episodes)],
            paths.log("actor"),
        )
        last_report = 0.0
        while actor.poll() is None:
            if learner.poll() is not None:
                raise RuntimeError(f"the learner exited with {learner.returncode}; see {paths.log('learner')}")
            if time.monotonic() - last_report >= report_every_s:
                progress = _read_json(paths.progress)
                line = _progress_line(progress, started)
                if eval_episodes > 0 and progress and progress["env_steps"] >= max_env_steps:
                    line += f" | evaluating the final policy ({eval_episodes} episodes)"
                print(line, flush=True)
                last_report = time.monotonic()
            time.sleep(0.2)
        if actor.returncode != 0:
            raise RuntimeError(f"the actor exited with {actor.returncode}; see {paths.log('actor')}")
    finally:
        # Actor first (it flushes its chunks), then the learner (final checkpoint), then the arm.
        _stop(actor)
        _stop(learner)
        if server is not None:
            server.stop()

    progress = _read_json(paths.progress) or {}
    evaluation = _read_json(paths.actor_eval) or {}
    summary = {
        "task": task,
        "env_steps": evaluation.get("env_steps", progress.get("env_steps", 0)),
        "eval_episodes": evaluation.get("eval_episodes", 0),
        "eval_success_rate": evaluation.get("eval_success_rate"),
        "eval_mean_time_to_success_s": evaluation.get("eval_mean_time_to_success_s"),
        "updates": progress.get("updates", 0),
        "weights_version": evaluation.get("policy_version"),
        "train_episodes": progress.get("episodes", 0),
        "demo_transitions": progress.get("demo_transitions", 0),
        "intervention_transitions": progress.get("intervention_transitions", 0),
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    write_json_atomic(paths.summary, summary, fsync=True)
    return summary


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train a policy on the simulated robot: robot server, learner and actor on loopback."
    )
    parser.add_argument("--config", type=Path, required=True, help="task YAML, e.g. configs/sim_pick_cube.yaml")
    parser.add_argument("--run-dir", type=Path, help="output directory (default runs/<task>-<time>)")
    parser.add_argument("--max-env-steps", type=int, default=10_000, help="env steps of training (default 10000)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="deterministic evaluation episodes (default 20)")
    add_dashboard_argument(parser)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.batch_size=128")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = [*args.overrides, *dashboard_overrides(args.dashboard)]
    ignored = [o for o in args.overrides if o.split("=", 1)[0] in ("link.address", "robot_server.address")]
    if ignored:
        print(f"{parser.prog}: error: {', '.join(ignored)}: `hilrl run` picks free loopback ports for the robot "
              "server and the learner it starts, so an address override would be ignored. To choose addresses, "
              "start `hilrl robot-server`, `hilrl learner` and `hilrl actor` yourself (README, 'Training')",
              file=sys.stderr)
        return 2
    if args.run_dir is not None and args.run_dir.exists() and not args.run_dir.is_dir():
        print(f"{parser.prog}: error: {args.run_dir} is a file, not a run directory", file=sys.stderr)
        return 2
    try:
        doc = load_document(args.config, overrides)
        # Every section is checked here, before a second is spent recording demos or starting
        # processes. (Config dataclasses only: this imports no other process's machinery.)
        task = doc.get("task", "")
        if task not in SIM_TASKS:
            raise SchemaError("task", f"{task!r} is not a simulated task; `hilrl run` trains one of "
                                      f"{', '.join(SIM_TASKS)} (a real cell runs `hilrl robot-server`, "
                                      "`hilrl learner` and `hilrl actor` on its machines)")
        load_settings(doc)
        section(doc, "robot_server", ServerConfig)
        encoder = section(doc, "learner", LearnerConfig).sac.encoder
        if encoder.weights_path is not None:
            from hilrl.policies.encoders import (
                check_weights_file,  # torch: only when there is a file
            )

            check_weights_file(encoder)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path("runs") / f"{doc.get('task', 'task')}-{time.strftime('%Y%m%d-%H%M%S')}"
    interrupted = False

    def on_sigint(*_: Any) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = run(args.config, run_dir, args.max_env_steps, args.eval_episodes, overrides)
    except KeyboardInterrupt:
        print(f"interrupted: actor, learner (final checkpoint) and robot server stopped; run in {run_dir}", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    print(f"summary written to {run_dir / 'summary.json'}")
    return 0
