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

The evaluation core (`run_episodes`, `summarize`) is hilrl.actor.evaluation, shared with the
actor's own evaluation.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hilrl.actor.evaluation import DEFAULT_SEED, print_progress, run_episodes, summarize
from hilrl.actor.interventions import InterventionWrapper, make_intervention_device
from hilrl.actor.loop import load_settings
from hilrl.actor.make import make_env
from hilrl.policies.residual import acting_policy
from hilrl.robot_server.config import ServerConfig
from hilrl.transport.checkpoint import Checkpoint, acting_tensors, read_checkpoint
from hilrl.transport.chunkfile import ChunkFileError, write_json_atomic
from hilrl.transport.config import document_hash, load_document, parse_document, section
from hilrl.transport.observation import check_env_observation
from hilrl.transport.run_dir import SAVED_CONFIGS, RunDir
from hilrl.transport.schema import SchemaError

log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------- a run's files


class EvalSetupError(Exception):
    """The run, its config or the checkpoint cannot be used; the message says why (exit code 2)."""


def saved_config(run_dir: Path) -> Path:
    """The config a run saved (config.yaml, else config.json). Raises EvalSetupError."""
    if not run_dir.is_dir():
        raise EvalSetupError(f"{run_dir}: no such run directory")
    found = RunDir(run_dir).saved_config()
    if found is None:
        raise EvalSetupError(
            f"{run_dir} has no saved config ({' or '.join(SAVED_CONFIGS)}): is it a run directory? "
            "Give the config with --config"
        )
    return found


def available_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Numbered checkpoints of a run (learner.keep_checkpoints), by gradient updates."""
    return RunDir(run_dir).numbered_checkpoints()


def resolve_checkpoint(run_dir: Path, spec: str | None) -> Path:
    """The checkpoint file `spec` names: None or "latest" -> RUN_DIR/learner/checkpoint.bin; a
    number N -> the numbered checkpoint written at N updates; else a path. Raises EvalSetupError
    naming what exists instead."""
    paths = RunDir(run_dir)
    if spec is None or spec == "latest":
        path = paths.checkpoint
        if not path.is_file():
            raise EvalSetupError(f"{path}: no checkpoint (has the learner of this run started?)")
        return path
    if spec.isdigit() and not Path(spec).is_file():
        path = paths.numbered_checkpoint(int(spec))
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


def load_checkpoint(path: Path) -> Checkpoint:
    """The learner's checkpoint in `path`. Raises EvalSetupError for a file that is not a complete
    checkpoint."""
    try:
        return read_checkpoint(path)
    except ChunkFileError as exc:
        raise EvalSetupError(f"not a usable checkpoint: {exc}") from None


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
        spec = check_env_observation(settings.env, env.observation_space)
        policy = acting_policy(spec.state_dim, int(env.action_space.shape[0]), settings.env.has_gripper,
                               settings.learner, list(spec.cameras), settings.actor.device, settings.actor.seed)
        try:
            policy.load_tensors(acting_tensors(ckpt.tensors))
        except ValueError as exc:
            raise EvalSetupError(f"{ckpt_path} does not fit the config {config_path}: {exc}") from None
        device_name = settings.actor.intervention.device
        # Only a human's device: the sim's scripted operator would make the result the expert's.
        if operator and device_name in ("spacemouse", "keyboard", "gamepad"):
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
    out_dir = RunDir(run_dir).eval_dir
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
