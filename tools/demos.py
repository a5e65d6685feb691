"""Record demonstrations: `hilrl record-demos --config FILE --episodes N --out DIR`.

Who drives (`--driver`, default auto):
    expert    the task's scripted expert (the sim; it reads the sim's privileged object state);
    operator  a person with the SpaceMouse, keyboard or gamepad that `actor.intervention.device`
              names: the device's action is the recorded action (no input: the arm holds still),
              and the device's success/failure gesture (both SpaceMouse buttons clicked / held; y /
              n on the keyboard; A / B on the gamepad) ends the episode with that verdict. The
              task's own success check (the sim's, or `env.success_position_m` on a real cell) also
              ends it as a success;
auto picks operator when the config names a SpaceMouse, keyboard or gamepad, else the expert.

Only successful episodes are kept; each attempt's outcome is printed as it ends. Each kept episode
is written as transition chunks in the same on-disk format the learner stores
(transport/chunkfile.py), one atomic file per chunk, plus `demos.json` describing the set; the
learner loads such a folder through `learner.demos`. Demonstration records carry
`intervened = False` and `policy_version = -1`: there is no policy to take over from. Ctrl-C keeps
the episodes recorded so far (demos.json then says `"interrupted": true`).

Between an operator's episodes the arm goes home and waits while the operator puts the scene back by
hand; the operator's first input (SpaceMouse motion or a button, a motion key, a gamepad stick or
button) starts the next episode from a fresh reset, so the time limit never runs while the
operator's hands are busy (`--no-wait` starts each episode at once).
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
from typing import Any, Literal

import numpy as np

from hilrl.actor.config import ActorConfig
from hilrl.actor.experts import expert_for
from hilrl.actor.interventions import (
    InterventionDevice,
    InterventionWrapper,
    make_intervention_device,
    wait_for_operator,
)
from hilrl.actor.make import make_env
from hilrl.actor.recorder import ChunkRecorder
from hilrl.transport.chunkfile import ChunkDirectory, write_json_atomic
from hilrl.transport.config import document_hash, load_document, section
from hilrl.transport.learner_messages import LEARNER_MESSAGES
from hilrl.transport.schema import SchemaError

log = logging.getLogger(__name__)

Driver = Literal["auto", "expert", "operator"]
OPERATOR_DEVICES = ("spacemouse", "keyboard", "gamepad")


def record_demos(
    doc: dict[str, Any],
    episodes: int,
    out_dir: Path,
    seed: int = 0,
    max_attempts: int | None = None,
    driver: Driver = "auto",
    device: InterventionDevice | None = None,
    wait_for_input: bool = True,
) -> dict:
    """Record `episodes` successful episodes into `out_dir`; returns the summary (also written to
    OUT/demos.json).

    Args:
        driver: "expert", "operator" or "auto" (see the module docstring).
        device: the operator's device (any `InterventionDevice` with `label()`); None builds the
            one `actor.intervention` names. Closed when recording ends.
        max_attempts: stop after this many episodes, kept or not (default: 3 x episodes for the
            expert; unlimited for an operator, who stops with Ctrl-C).
        wait_for_input: operator only: before each episode, wait at home for the operator's first
            input (see the module docstring).
    Raises:
        RuntimeError: fewer successes than asked within `max_attempts`.
        KeyboardInterrupt: after writing demos.json for the episodes kept so far.
        InputDeviceError (a RuntimeError): the SpaceMouse, terminal or gamepad cannot be used.
    """
    task = doc.get("task", "")
    intervention = section(doc, "actor", ActorConfig).intervention
    if driver == "auto":
        driver = "operator" if device is not None or intervention.device in OPERATOR_DEVICES else "expert"
    if driver == "operator" and device is None and intervention.device not in OPERATOR_DEVICES:
        raise ValueError(
            f"an operator drives with actor.intervention.device spacemouse, keyboard or gamepad; this config has "
            f"{intervention.device!r} (set it, e.g. actor.intervention.device=keyboard)"
        )
    # What the summary names: the configured device, or the class of one passed in (a test's, a script's).
    device_name = "expert"
    if driver == "operator":
        device_name = intervention.device if device is None else type(device).__name__
    env = make_env(doc)
    runner: Any = env  # what gets closed: the env, or the wrapper that closes the device too
    try:
        if driver == "operator":
            if device is None:
                device = make_intervention_device(intervention, task, env, seed=seed)
            runner = InterventionWrapper(env, device)
            expert = None
            print(f"drive the arm with the {device_name}; mark each episode a success or a failure with its "
                  "label gesture (only successes are kept; Ctrl-C stops)", flush=True)
        else:
            expert = expert_for(task, env)
    except BaseException:
        runner.close()
        raise
    if max_attempts is None and driver == "expert":
        max_attempts = 3 * episodes
    cameras = tuple(c for c in env.observation_space.spaces if c != "state")
    recorder = ChunkRecorder(env.action_space.shape[0], chunk_steps=10, cameras=cameras)
    idle = np.zeros(env.action_space.shape, np.float32)  # the operator's "policy": hold still
    store = ChunkDirectory(out_dir)
    session = f"demos-{uuid.uuid4().hex[:12]}"
    seq, kept, attempts, transitions = 0, 0, 0, 0
    started = time.monotonic()
    interrupted = False
    try:
        while kept < episodes and (max_attempts is None or attempts < max_attempts):
            obs, _ = runner.reset(seed=seed + attempts)
            if expert is None and wait_for_input:
                print(f"attempt {attempts + 1}: the arm is home; set the scene up, then give any input on the "
                      f"{device_name} (a SpaceMouse motion or button, a key, a gamepad stick or button) to start; "
                      "Ctrl-C stops", flush=True)
                wait_for_operator(device, env.robot_state, idle, env.control_period_s or 0.05)
                # A fresh look at the scene as the operator left it, and the time limit from now.
                obs, _ = runner.reset(seed=seed + attempts)
            if expert is not None:
                expert.reset()
            recorder.start_episode(kept, obs)
            chunks, done, info, steps = [], False, {}, 0
            while not done:
                if expert is not None:
                    action = expert.act(env.robot_state)
                    obs, reward, terminated, truncated, info = runner.step(action)
                else:
                    obs, reward, terminated, truncated, info = runner.step(idle)
                    action = info["action_taken"]  # the device's action, or the idle one
                chunks += recorder.add_step(
                    action, reward, terminated, truncated, False, bool(info["gripper_switched"]), -1, obs
                )
                steps += 1
                done = terminated or truncated
            attempts += 1
            if not info["succeeded"]:
                why = "labelled a failure" if info.get("human_label") == "failure" else (
                    "time limit" if truncated else "ended without success")
                print(f"attempt {attempts}: {why} after {steps} steps; not kept", flush=True)
                continue
            for chunk in chunks:
                seq += 1
                chunk.actor_session, chunk.seq = session, seq
                store.append(chunk, LEARNER_MESSAGES)
                transitions += int(chunk.has_action.sum())
            kept += 1
            how = " (labelled)" if info.get("human_label") == "success" else ""
            print(f"demo {kept}/{episodes} recorded{how}: {steps} steps, attempt {attempts} "
                  f"({transitions} transitions so far)", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        runner.close()
        store.close()
    if kept < episodes and not interrupted:
        raise RuntimeError(f"only {kept} of {episodes} demonstrations succeeded in {attempts} attempts")
    summary = {
        "task": task,
        "episodes": kept,
        "attempts": attempts,
        "transitions": transitions,
        "cameras": list(cameras),
        "driver": driver,
        "device": device_name,
        "config_hash": document_hash(doc),
        "wall_time_s": round(time.monotonic() - started, 3),
    }
    if interrupted:
        summary["interrupted"] = True
        if kept:
            write_json_atomic(out_dir / "demos.json", summary, fsync=True)
        raise KeyboardInterrupt
    write_json_atomic(out_dir / "demos.json", summary, fsync=True)
    return summary


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Record successful demonstrations: the scripted expert in the sim, or an operator "
        "with the SpaceMouse/keyboard/gamepad that actor.intervention.device names.",
    )
    parser.add_argument("--config", required=True, help="task YAML file")
    parser.add_argument("--episodes", type=int, default=20, help="successful episodes to keep (default 20)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="attempt i resets with SEED + i")
    parser.add_argument(
        "--driver", choices=["auto", "expert", "operator"], default="auto",
        help="who drives: auto (default: the operator when the config names a spacemouse, keyboard or gamepad, "
        "else the scripted expert), expert, operator",
    )
    parser.add_argument("--max-attempts", type=int, help="give up after this many episodes (default: 3 x "
                        "--episodes for the expert, unlimited for an operator)")
    parser.add_argument("--no-wait", action="store_true", help="operator: start each episode at once after the "
                        "reset, instead of waiting at home for the operator's first input")
    parser.add_argument("overrides", nargs="*", help="dotted overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        doc = load_document(args.config, args.overrides)
        summary = record_demos(doc, args.episodes, args.out, args.seed, args.max_attempts, args.driver,
                               wait_for_input=not args.no_wait)
    except (SchemaError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the demonstrations kept so far are in {args.out}", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0
