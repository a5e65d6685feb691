"""Evaluate a trained policy: `hilrl eval --run-dir DIR [--checkpoint latest|N|PATH] --episodes N`.

Loads the run's saved config (RUN_DIR/config.yaml from `hilrl run`, or the learner's
RUN_DIR/config.json) and a learner checkpoint (default the latest, RUN_DIR/learner/checkpoint.bin;
a number selects RUN_DIR/learner/checkpoints/checkpoint-<updates>.bin, kept when the run had
`learner.keep_checkpoints` > 0; anything else is a checkpoint file's path). No learner process is
needed: the acting networks are built from the config and filled from the checkpoint's arrays (the
codec's raw frames: nothing is unpickled).

The deterministic policy (tanh of the mean, the grasp critic's argmax) then runs for N episodes
with the seeds the actor's own end-of-run evaluation uses, so results compare like with like.
The sim runs in this process (the run's robot server is gone by now); a real arm is reached through
its robot server as the config says. With a SpaceMouse or keyboard configured, the operator can
still end an episode with the success/failure gesture, and can take over (counted, never hidden);
the sim's scripted operator never takes part in an evaluation.

Results are printed as one JSON line and written atomically to
RUN_DIR/eval/eval-<checkpoint updates>-<time>.json.

`run_episodes` and `summarize` are the evaluation core that the actor's `Actor.evaluate` uses too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from threading import Event
from typing import Any

import numpy as np

from transport.chunkfile import ChunkFileError, read_message, write_json_atomic
from transport.schema import SchemaError

log = logging.getLogger(__name__)

DEFAULT_SEED = 10_000  # the actor's evaluation seeds: seed + episode index
SAVED_CONFIGS = ("config.yaml", "config.json")  # hilrl run writes the first, the learner the second

Observation = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------- core


@dataclass
class EpisodeResult:
    """One evaluation episode.

    Attributes:
        seed: the episode's reset seed.
        success: the episode ended in success (the task's check, or the operator's label).
        length: env steps.
        time_s: length x the control period, s (the robot's time, not the wall clock).
        interventions: separate operator takeovers; intervention_steps: steps the operator drove.
        label: the operator's "success"/"failure" label that ended it, or None.
    """

    seed: int
    success: bool
    length: int
    time_s: float
    interventions: int = 0
    intervention_steps: int = 0
    label: str | None = None


@dataclass
class EvalSummary:
    """Totals over evaluation episodes.

    Attributes:
        episodes / successes: counts. success_rate: successes / episodes.
        mean_length: mean episode length, env steps.
        mean_time_to_success_s: mean `time_s` of the successful episodes, s (None: no success).
        interventions / intervention_steps: summed over the episodes (0 without an operator).
        labelled: episodes the operator ended with a label.
    """

    episodes: int
    successes: int
    success_rate: float
    mean_length: float
    mean_time_to_success_s: float | None
    interventions: int
    intervention_steps: int
    labelled: int


def run_episodes(
    env: Any,
    act: Callable[[Observation], np.ndarray],
    episodes: int,
    seed: int = DEFAULT_SEED,
    control_period_s: float | None = None,
    stop: Event | None = None,
    progress: Callable[[int, EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run `episodes` episodes with `act` choosing every action; episode i resets with seed + i.

    Args:
        env: a RobotEnv, or one wrapped in an InterventionWrapper (whose info reports takeovers
            and labels; the bare env reports neither).
        act: observation -> action (the deterministic policy, for an evaluation).
        control_period_s: for `time_s`; default the env's own control period.
        stop: when set, no further episode starts (the current one finishes).
        progress: called after each episode with its index and result (terminal progress).
    """
    period = control_period_s if control_period_s is not None else env.unwrapped.control_period_s
    results = []
    for i in range(episodes):
        if stop is not None and stop.is_set():
            break
        obs, _ = env.reset(seed=seed + i)
        done, steps, info = False, 0, {}
        takeovers, operator_steps, was_intervening = 0, 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            steps += 1
            intervened = bool(info.get("intervened", False))
            operator_steps += intervened
            takeovers += intervened and not was_intervening
            was_intervening = intervened
            done = terminated or truncated
        results.append(
            EpisodeResult(
                seed=seed + i,
                success=bool(info.get("succeeded")),
                length=steps,
                time_s=steps * period,
                interventions=int(takeovers),
                intervention_steps=int(operator_steps),
                label=info.get("human_label"),
            )
        )
        if progress is not None:
            progress(i, results[-1])
    return results


def print_progress(episodes: int) -> Callable[[int, EpisodeResult], None]:
    """A `progress` callback printing one line per evaluation episode to stderr (stdout carries
    the JSON result), with the running success count."""
    successes = 0

    def report(i: int, result: EpisodeResult) -> None:
        nonlocal successes
        successes += result.success
        print(f"evaluation {i + 1}/{episodes}: {'success' if result.success else 'failure'} in "
              f"{result.length} steps | success so far {successes}/{i + 1}", file=sys.stderr, flush=True)

    return report


def summarize(results: Sequence[EpisodeResult]) -> EvalSummary:
    """Totals of `results` (at least one episode)."""
    if not results:
        raise ValueError("no evaluation episodes to summarise")
    times = [r.time_s for r in results if r.success]
    successes = sum(r.success for r in results)
    return EvalSummary(
        episodes=len(results),
        successes=successes,
        success_rate=successes / len(results),
        mean_length=float(np.mean([r.length for r in results])),
        mean_time_to_success_s=float(np.mean(times)) if times else None,
        interventions=sum(r.interventions for r in results),
        intervention_steps=sum(r.intervention_steps for r in results),
        labelled=sum(r.label is not None for r in results),
    )


# ---------------------------------------------------------------------------------- a run's files


class EvalSetupError(Exception):
    """The run, its config or the checkpoint cannot be used; the message says why (exit code 2)."""


def saved_config(run_dir: Path) -> Path:
    """The config a run saved (config.yaml, else config.json). Raises EvalSetupError."""
    if not run_dir.is_dir():
        raise EvalSetupError(f"{run_dir}: no such run directory")
    for name in SAVED_CONFIGS:
        if (run_dir / name).is_file():
            return run_dir / name
    raise EvalSetupError(
        f"{run_dir} has no saved config ({' or '.join(SAVED_CONFIGS)}): is it a run directory? "
        "Give the config with --config"
    )


def available_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Numbered checkpoints of a run (learner.keep_checkpoints), by gradient updates."""
    from learner.main import CHECKPOINT_DIR

    found = {}
    for path in (run_dir / "learner" / CHECKPOINT_DIR).glob("checkpoint-*.bin"):
        number = path.stem.removeprefix("checkpoint-")
        if number.isdigit():
            found[int(number)] = path
    return dict(sorted(found.items()))


def resolve_checkpoint(run_dir: Path, spec: str | None) -> Path:
    """The checkpoint file `spec` names: None or "latest" -> RUN_DIR/learner/checkpoint.bin; a
    number N -> the numbered checkpoint written at N updates; else a path. Raises EvalSetupError
    naming what exists instead."""
    from learner.main import CHECKPOINT_FILE, numbered_checkpoint

    learner_dir = run_dir / "learner"
    if spec is None or spec == "latest":
        path = learner_dir / CHECKPOINT_FILE
        if not path.is_file():
            raise EvalSetupError(f"{path}: no checkpoint (has the learner of this run started?)")
        return path
    if spec.isdigit() and not Path(spec).is_file():
        path = numbered_checkpoint(learner_dir, int(spec))
        if path.is_file():
            return path
        kept = available_checkpoints(run_dir)
        if kept:
            raise EvalSetupError(
                f"no checkpoint at {int(spec)} updates in {path.parent}; kept: {', '.join(map(str, kept))} (or 'latest')"
            )
        raise EvalSetupError(
            f"{run_dir} keeps no numbered checkpoints (the learner kept only the latest: set "
            "learner.keep_checkpoints to keep some); use --checkpoint latest or a checkpoint file's path"
        )
    path = Path(spec)
    if not path.is_file():
        raise EvalSetupError(f"{path}: no such checkpoint file")
    return path


def load_checkpoint(path: Path) -> Any:
    """The learner's `Checkpoint` message in `path`. Raises EvalSetupError for a file that is not
    a complete checkpoint."""
    from learner.main import CHECKPOINT_MESSAGES

    try:
        _, ckpt = read_message(path, CHECKPOINT_MESSAGES)
    except ChunkFileError as exc:
        raise EvalSetupError(f"not a usable checkpoint: {exc}") from None
    return ckpt


# The acting networks' tensors in SACAgent.state_arrays() (what Policy.load_tensors takes); the
# critics, targets, optimiser and RNG state are for training only.
ACTING_PREFIXES = ("obs_norm.", "encoder.", "actor.", "grasp_critic.")


def policy_tensors(checkpoint_tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The acting networks' tensors of a checkpoint, by the names the actor's Policy uses."""
    return {name: value for name, value in checkpoint_tensors.items() if name.startswith(ACTING_PREFIXES)}


# ---------------------------------------------------------------------------------- evaluation


def evaluate_run(
    run_dir: Path,
    episodes: int,
    checkpoint: str | None = None,
    config: Path | None = None,
    overrides: Sequence[str] = (),
    seed: int = DEFAULT_SEED,
    connection: str = "auto",
    operator: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a run's checkpoint (see the module docstring); returns the results, also written
    to RUN_DIR/eval/ with `write`.

    Args:
        connection: "auto" (sim backend: the sim in this process; else the config's connection),
            "inprocess" or "server".
        operator: let a configured SpaceMouse/keyboard label episodes and take over.
    Raises:
        EvalSetupError: missing run, config or checkpoint, or a checkpoint that does not fit.
        SchemaError: an invalid config or override.
        RuntimeError / OSError: the robot, cameras or operator device failed.
    """
    # Imported here: actor.loop imports this module for the evaluation core above.
    from actor.interventions import InterventionWrapper, make_intervention_device
    from actor.loop import load_settings, observation_spec
    from actor.make import make_env
    from policies.sac import Policy
    from robot_server.config import ServerConfig
    from transport.config import document_hash, load_document, parse_document, section

    started = time.monotonic()
    if not run_dir.is_dir():
        raise EvalSetupError(f"{run_dir}: no such run directory")
    config_path = config if config is not None else saved_config(run_dir)
    try:
        saved = load_document(config_path)
    except FileNotFoundError:
        raise EvalSetupError(f"{config_path}: no such config file") from None
    ckpt_path = resolve_checkpoint(run_dir, checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.config_hash != document_hash(saved):
        log.warning("%s was trained with another config (hash %s) than %s", ckpt_path, ckpt.config_hash, config_path)

    backend = section(saved, "robot_server", ServerConfig).backend
    if connection == "auto":
        # A run's saved config points at the robot server it started, which stopped with it.
        connection = "inprocess" if backend == "sim" else (saved.get("env") or {}).get("connection", "inprocess")
    doc = parse_document(saved, [*overrides, f"env.connection={connection}"], where=str(config_path))
    settings = load_settings(doc)

    env = make_env(doc)
    runner: Any = env  # what gets closed: the env, or the wrapper that closes the device and env
    device = None
    try:
        spec = observation_spec(env)
        policy = Policy(
            spec.state_dim, int(env.action_space.shape[0]), settings.env.action.gripper, settings.sac,
            device=settings.actor.device, seed=settings.actor.seed, cameras=list(spec.cameras),
        )
        try:
            policy.load_tensors(policy_tensors(ckpt.tensors))
        except ValueError as exc:
            raise EvalSetupError(f"{ckpt_path} does not fit the config {config_path}: {exc}") from None
        device_name = settings.actor.intervention.device
        # Only a human's device: the sim's scripted operator would make the result the expert's.
        if operator and device_name in ("spacemouse", "keyboard"):
            device = make_intervention_device(settings.actor.intervention, settings.task, env, seed=settings.actor.seed)
        if device is not None:
            runner = InterventionWrapper(env, device)
            print(f"operator device: {device_name} (label success/failure to end an episode; taking over is counted)",
                  file=sys.stderr, flush=True)
        results = run_episodes(
            runner, lambda obs: policy.act(obs, deterministic=True), episodes, seed, env.control_period_s,
            progress=print_progress(episodes),
        )
    finally:
        runner.close()
    total = summarize(results)
    result = {
        "task": settings.task,
        "run_dir": str(run_dir),
        "config": str(config_path),
        "checkpoint": str(ckpt_path),
        "checkpoint_updates": int(ckpt.updates),
        "weights_version": int(ckpt.weights_version),
        "episodes": total.episodes,
        "seed": seed,
        "successes": total.successes,
        "success_rate": total.success_rate,
        "mean_time_to_success_s": total.mean_time_to_success_s,
        "mean_episode_length": total.mean_length,
        "interventions": total.interventions,
        "intervention_steps": total.intervention_steps,
        "labelled_episodes": total.labelled,
        "operator": device_name if device is not None else "none",
        "connection": connection,
        "control_period_s": env.control_period_s,
        "per_episode": [asdict(r) for r in results],
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.monotonic() - started, 3),
    }
    if write:
        result["written_to"] = str(write_result(run_dir, result))
    return result


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write `result` atomically to RUN_DIR/eval/eval-<updates>-<time>.json (a counter is added
    when that name exists: two evaluations in one second both stay)."""
    out_dir = run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    stem = f"eval-{result['checkpoint_updates']:09d}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = out_dir / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = out_dir / f"{stem}-{n}.json"
    write_json_atomic(path, result, fsync=True)
    return path


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a run's checkpoint with the deterministic policy; writes RUN_DIR/eval/eval-*.json.",
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="the run (from hilrl run, or a learner's --run-dir)")
    parser.add_argument(
        "--checkpoint", default="latest",
        help="'latest' (RUN_DIR/learner/checkpoint.bin, the default), N: the numbered checkpoint at N "
        "updates (kept with learner.keep_checkpoints), or a checkpoint file's path",
    )
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"episode i resets with SEED + i (default {DEFAULT_SEED}, as the actor's evaluation)")
    parser.add_argument("--config", type=Path, help="config to evaluate with instead of the run's saved one")
    parser.add_argument(
        "--connection", choices=["auto", "inprocess", "server"], default="auto",
        help="auto (default): the sim in this process for a sim run, else the config's robot server",
    )
    parser.add_argument("--no-operator", action="store_true", help="ignore a configured SpaceMouse/keyboard")
    parser.add_argument("--no-write", action="store_true", help="print only; write nothing to RUN_DIR/eval")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. env.max_episode_steps=200")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        result = evaluate_run(
            args.run_dir, args.episodes, args.checkpoint, args.config, args.overrides, args.seed,
            args.connection, operator=not args.no_operator, write=not args.no_write,
        )
    except (EvalSetupError, SchemaError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        # An unreachable robot server, a missing camera or input device: a message with its fix.
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; nothing written", file=sys.stderr)
        return 130
    print(json.dumps(result), flush=True)
    if "written_to" in result:
        print(f"written to {result['written_to']}", file=sys.stderr)
    return 0
