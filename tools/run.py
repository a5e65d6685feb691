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

`--robots N` (N > 1, at most 16) starts N simulated robot servers, each on its own free loopback
port, N actors and one learner. Robot i is named `sim-<i>`; its actor runs in the run directory
RUN_DIR/robots/sim-<i>/ (its actor/ part, actor.log and robot_server.log there) and gets
`actor.robot_name=sim-<i>` and its server's `robot_server.address` as command-line overrides on
top of the shared RUN_DIR/config.yaml (which holds sim-0's address): the learner's handshake
compares only the learning contract (hilrl.transport.contract), so those may differ, and each
actor's seeds are mixed with its robot name. `--max-env-steps` is the total over all robots: each
actor runs ceil(total / N). Progress lines then show each robot's env steps and link state, and
summary.json's evaluation figures are over all robots (the success rate weighted by each robot's
evaluation episodes; env_steps is the total). N == 1 is the layout above (RUN_DIR/actor/,
RUN_DIR/actor.log). Stopping, at the end or on Ctrl-C: every actor first (they flush), then the
learner, then every robot server.

A config with `env.kind: gymnasium` (any gymnasium env, hilrl.transport.sections.gymnasium) runs
the same way without robot servers: each actor steps its own copy of the env in its process. Its
demonstrations come from `env.gymnasium.expert` when the config names no demo folder (an error
otherwise says so), and its `task` may be any name.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hilrl.actor.loop import load_settings
from hilrl.actor.make import SIM_TASKS
from hilrl.learner.warm_start import checkpoint_of
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.process import ServerProcess, launcher_env, start_server_process
from hilrl.tools.demos import record_demos
from hilrl.transport.chunkfile import write_json_atomic
from hilrl.transport.config import load_document, parse_document, section
from hilrl.transport.dashboard import (
    DashboardConfig,
    add_dashboard_argument,
    dashboard_overrides,
    describe,
)
from hilrl.transport.observation import gymnasium_layout
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.sections.learner import LearnerConfig

log = logging.getLogger(__name__)

DEFAULT_DEMOS = 20


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    # launcher_env: the children stop when this process dies, however it dies (no orphans).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **launcher_env()}
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
    return _stop_all([proc], timeout_s)[0]


def _stop_all(procs: Sequence[subprocess.Popen], timeout_s: float = 30.0) -> list[int | None]:
    """SIGINT to every process still running, then wait for all of them (one shared deadline;
    SIGKILL for any still running after it); returns their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _robots_line(robots: dict[str, Any]) -> str:
    """Each robot's env steps and link state, as "sim-0 1200 steps connected, sim-1 ..."."""
    return ", ".join(
        f"{name} {report.get('env_steps', 0)} steps {report.get('link', '?')}" for name, report in sorted(robots.items())
    )


def _progress_line(progress: dict[str, Any] | None, started: float, per_robot: bool = False) -> str:
    """One progress line from the learner's progress.json (`per_robot`: also each robot's env
    steps and link state)."""
    if not progress:
        return f"[{time.monotonic() - started:6.0f}s] waiting for the learner"
    held = progress.get("updates_per_env_step_held")
    line = (
        f"[{time.monotonic() - started:6.0f}s] env steps {progress['env_steps']:6d} | episodes {progress['episodes']:4d} | "
        f"success (last 20) {progress['recent_success_rate']:4.0%} | intervention {progress['recent_intervention_fraction']:4.0%} | "
        f"updates {progress['updates']:6d} ({progress['updates_per_s']:.0f}/s"
        + (f", {held:.2f} per env step" if held is not None else "")
        + f") | weights v{progress['weights_version']}"
    )
    if per_robot:
        robots = progress.get("robots") or {}
        line += f" | robots: {_robots_line(robots) if robots else 'none heard yet'}"
    return line


MAX_ROBOTS = 16
"""`--robots`' upper bound."""


def robot_names(robots: int) -> list[str]:
    """The simulated robots' names with `--robots N` (N > 1): sim-0 ... sim-<N-1>."""
    return [f"sim-{i}" for i in range(robots)]


@dataclass
class _Robot:
    """One simulated robot of the run: its server, its actor and where they write."""

    name: str  # sim-<i>; "" with one robot (the actor's own robot_name, as configured)
    paths: RunDir  # the actor's run directory (the run's own with one robot)
    port: int
    server: ServerProcess | None = None
    actor: subprocess.Popen | None = None

    @property
    def label(self) -> str:
        return f"the actor of robot {self.name}" if self.name else "the actor"

    @property
    def overrides(self) -> list[str]:
        """Its actor's command-line overrides on top of the shared config.yaml."""
        if not self.name:
            return []
        return [f"actor.robot_name={self.name}", f"robot_server.address=tcp://127.0.0.1:{self.port}"]


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_loopback_port()
        if port not in ports:
            ports.append(port)
    return ports


def _weighted(values: list[tuple[float | None, float]]) -> float | None:
    """The mean of the values weighted by their weights, over those with a value and a weight."""
    known = [(v, w) for v, w in values if v is not None and w > 0]
    total = sum(w for _, w in known)
    return sum(v * w for v, w in known) / total if total > 0 else None


def _summary(task: str, paths: RunDir, fleet: list[_Robot], started: float) -> dict[str, Any]:
    progress = _read_json(paths.progress) or {}
    reported = progress.get("robots") or {}
    evaluations = {r.name: _read_json(r.paths.actor_eval) or {} for r in fleet}
    robots: dict[str, Any] = {}
    for r in fleet:
        evaluation = evaluations[r.name]
        # With one robot, its name as the learner reported it (the configured actor.robot_name,
        # else the host name).
        name = r.name or (next(iter(reported)) if len(reported) == 1 else "actor")
        robots[name] = {
            "env_steps": evaluation.get("env_steps", (reported.get(name) or {}).get("env_steps", 0)),
            "eval_success_rate": evaluation.get("eval_success_rate"),
            "eval_episodes": evaluation.get("eval_episodes", 0),
            "link": _read_json(r.paths.actor_link_stats) if r.paths.actor_link_stats.is_file() else None,
        }
    if len(fleet) == 1:
        evaluation = evaluations[fleet[0].name]
        env_steps = evaluation.get("env_steps", progress.get("env_steps", 0))
        eval_episodes = evaluation.get("eval_episodes", 0)
        success_rate = evaluation.get("eval_success_rate")
        time_to_success = evaluation.get("eval_mean_time_to_success_s")
        weights_version = evaluation.get("policy_version")
    else:
        evaluated = [e for e in evaluations.values() if e]
        env_steps = sum(rep["env_steps"] for rep in robots.values()) if evaluated else progress.get("env_steps", 0)
        eval_episodes = sum(e.get("eval_episodes", 0) for e in evaluated)
        success_rate = _weighted([(e.get("eval_success_rate"), e.get("eval_episodes", 0)) for e in evaluated])
        # the mean time to success is over successful episodes: weighted by each robot's successes
        time_to_success = _weighted([
            (e.get("eval_mean_time_to_success_s"), (e.get("eval_success_rate") or 0.0) * e.get("eval_episodes", 0))
            for e in evaluated
        ])
        versions = [e["policy_version"] for e in evaluated if e.get("policy_version") is not None]
        weights_version = min(versions) if versions else None  # the oldest weights any robot evaluated
    return {
        "task": task,
        "algorithm": progress.get("algorithm", "sac"),
        "env_steps": env_steps,
        "eval_episodes": eval_episodes,
        "eval_success_rate": success_rate,
        "eval_mean_time_to_success_s": time_to_success,
        "updates": progress.get("updates", 0),
        "weights_version": weights_version,
        "train_episodes": progress.get("episodes", 0),
        "demo_transitions": progress.get("demo_transitions", 0),
        "intervention_transitions": progress.get("intervention_transitions", 0),
        "recent_takeovers_per_episode": progress.get("recent_takeovers_per_episode"),
        "updates_per_env_step_held": progress.get("updates_per_env_step_held"),
        "robots": robots,
        "wall_time_s": round(time.monotonic() - started, 1),
    }


def run(
    config: Path,
    run_dir: Path,
    max_env_steps: int,
    eval_episodes: int,
    overrides: Sequence[str] = (),
    report_every_s: float = 5.0,
    robots: int = 1,
) -> dict[str, Any]:
    """Train end to end; returns the summary (also written to RUN_DIR/summary.json).

    `robots` simulated robots (each with its server and actor, see the module docstring) feed one
    learner; `max_env_steps` is their total: each actor runs ceil(max_env_steps / robots)."""
    if not 1 <= robots <= MAX_ROBOTS:
        raise ValueError(f"robots must be in 1..{MAX_ROBOTS}, got {robots}")
    started = time.monotonic()
    doc = load_document(config, overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = RunDir(run_dir)
    task = doc.get("task", "")
    print(f"dashboard: {describe(section(doc, 'dashboard', DashboardConfig), run_dir)}", flush=True)
    gymnasium = section(doc, "env", EnvConfig).gymnasium  # None for a robot task
    foreign = gymnasium is not None
    learner_section = doc.setdefault("learner", {})
    if not learner_section.get("demos") and not learner_section.get("init_drop_demos"):
        demo_dir = paths.demos
        who = f"the scripted policy {gymnasium.expert}" if gymnasium is not None else "the scripted expert"
        print(f"recording {DEFAULT_DEMOS} demonstrations with {who} into {demo_dir}", flush=True)
        record_demos(parse_document(doc, ["env.connection=inprocess"]), DEFAULT_DEMOS, demo_dir)
        learner_section["demos"] = [str(demo_dir)]

    link_port, *robot_ports = _distinct_free_ports(1 + robots)
    if robots == 1:
        fleet = [_Robot("", paths, robot_ports[0])]
    else:
        fleet = [_Robot(name, paths.robot(name), port) for name, port in zip(robot_names(robots), robot_ports, strict=True)]
        for r in fleet:
            r.paths.root.mkdir(parents=True, exist_ok=True)
    steps_per_actor = math.ceil(max_env_steps / robots)
    addresses = [f"link.address=tcp://127.0.0.1:{link_port}"]
    if not foreign:  # a gymnasium env runs inside each actor: no robot server to point at
        addresses += ["env.connection=server", f"robot_server.address=tcp://127.0.0.1:{fleet[0].port}"]
    resolved = parse_document(doc, addresses)
    config_path = paths.config_yaml
    config_path.write_text(yaml.safe_dump(resolved, sort_keys=False))

    learner = None
    try:
        for r in fleet if not foreign else ():
            r.server = start_server_process(task, config=config_path, port=r.port, log_path=r.paths.log("robot_server"),
                                            stop_with_this_process=True)
        learner = _spawn(["learner", "--config", str(config_path), "--run-dir", str(run_dir)], paths.log("learner"))
        for r in fleet:
            r.actor = _spawn(
                ["actor", "--config", str(config_path), "--run-dir", str(r.paths.root), "--max-env-steps",
                 str(steps_per_actor), "--eval-episodes", str(eval_episodes), *r.overrides],
                r.paths.log("actor"),
            )
        if robots > 1:
            print(f"{robots} robots ({', '.join(r.name for r in fleet)}), {steps_per_actor} env steps each; "
                  f"their actors in {paths.root / 'robots'}", flush=True)

        def check_actors() -> None:
            for r in fleet:
                assert r.actor is not None
                code = r.actor.poll()
                if code is not None and code != 0:
                    raise RuntimeError(f"{r.label} exited with {code}; see {r.paths.log('actor')}")

        last_report = 0.0
        while any(r.actor is not None and r.actor.poll() is None for r in fleet):
            if learner.poll() is not None:
                raise RuntimeError(f"the learner exited with {learner.returncode}; see {paths.log('learner')}")
            check_actors()
            if time.monotonic() - last_report >= report_every_s:
                progress = _read_json(paths.progress)
                line = _progress_line(progress, started, per_robot=robots > 1)
                if eval_episodes > 0 and progress and progress["env_steps"] >= steps_per_actor * robots:
                    line += f" | evaluating the final policy ({eval_episodes} episodes{' per robot' if robots > 1 else ''})"
                print(line, flush=True)
                last_report = time.monotonic()
            time.sleep(0.2)
        check_actors()
        # The last line shows where the run ended, however short it was next to report_every_s.
        print(_progress_line(_read_json(paths.progress), started, per_robot=robots > 1), flush=True)
    finally:
        # Actors first (they flush their chunks), then the learner (final checkpoint), then the arms.
        _stop_all([r.actor for r in fleet if r.actor is not None])
        _stop(learner)
        for r in fleet:
            if r.server is not None:
                r.server.stop()

    summary = _summary(task, paths, fleet, started)
    write_json_atomic(paths.summary, summary, fsync=True)
    return summary


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train a policy on the simulated robot: robot server(s), learner and actor(s) on loopback."
    )
    parser.add_argument("--config", type=Path, required=True, help="task YAML, e.g. configs/sim_pick_cube.yaml")
    parser.add_argument("--run-dir", type=Path, help="output directory (default runs/<task>-<time>)")
    parser.add_argument("--max-env-steps", type=int, default=10_000,
                        help="env steps of training, the total over all robots: each actor runs "
                             "ceil(total / robots) (default 10000)")
    parser.add_argument("--eval-episodes", type=int, default=20,
                        help="deterministic evaluation episodes, per robot (default 20)")
    parser.add_argument("--robots", default="1", metavar="N",
                        help=f"simulated robots, 1..{MAX_ROBOTS}: N robot servers and N actors (robot i named "
                             "sim-<i>, its actor in RUN_DIR/robots/sim-<i>/) feeding one learner (default 1)")
    add_dashboard_argument(parser)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.batch_size=128")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        robots = int(args.robots)
    except ValueError:
        robots = 0
    if not 1 <= robots <= MAX_ROBOTS:
        print(f"{parser.prog}: error: --robots: must be an integer from 1 to {MAX_ROBOTS}, got {args.robots!r}",
              file=sys.stderr)
        return 2
    overrides = [*args.overrides, *dashboard_overrides(args.dashboard)]
    named = [o for o in args.overrides if o.split("=", 1)[0] == "actor.robot_name"]
    if robots > 1 and named:
        print(f"{parser.prog}: error: {', '.join(named)}: with --robots {robots}, `hilrl run` names the robots "
              f"sim-0 ... sim-{robots - 1}, so a robot name override would be ignored", file=sys.stderr)
        return 2
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
        env = section(doc, "env", EnvConfig)
        if task not in SIM_TASKS and env.kind != "gymnasium":
            raise SchemaError("task", f"{task!r} is not a simulated task; `hilrl run` trains one of "
                                      f"{', '.join(SIM_TASKS)}, or any gymnasium env with env.kind: gymnasium (a "
                                      "real cell runs `hilrl robot-server`, `hilrl learner` and `hilrl actor` on "
                                      "its machines)")
        load_settings(doc)
        section(doc, "robot_server", ServerConfig)
        if env.kind == "gymnasium":  # built once here: an env that cannot be mapped stops the run now
            gymnasium_layout(env)
            if not doc.get("learner", {}).get("demos") and not env.gymnasium.expert:
                raise SchemaError("env.gymnasium.expert", "`hilrl run` records its demonstrations with a scripted "
                                  "policy: name one as 'module:callable', or give recorded ones in learner.demos")
        learner = section(doc, "learner", LearnerConfig)
        if learner.algorithm == "residual_sac":
            learner.residual.base_files()  # the base run exists (the learner checks that it fits)
        if learner.init_from:
            checkpoint_of(learner.init_from)
        encoder = learner.sac.encoder
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
        summary = run(args.config, run_dir, args.max_env_steps, args.eval_episodes, overrides, robots=robots)
    except KeyboardInterrupt:
        stopped = ("actors, learner (final checkpoint) and robot servers" if robots > 1
                   else "actor, learner (final checkpoint) and robot server")
        print(f"interrupted: {stopped} stopped; run in {run_dir}", file=sys.stderr)
        return 130
    except (RuntimeError, SchemaError) as exc:  # SchemaError: a gymnasium env's info lacks the success key
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    print(f"summary written to {run_dir / 'summary.json'}")
    return 0
