"""Several simulated robots into one learner: throughput, the update ratio held, weights lag, and
nothing lost. Each case is one `hilrl run --robots N` (N robot servers, N actors, one learner, all
separate processes on loopback, lockstep clock), sampled from the learner's progress.json.

Prints one JSON object: {"machine": ..., "cases": [ {...}, ... ]}, one case per (robots,
observation):
    robots, observation         1 / 2 / 4; "state" (sim_reach) or "images" (sim_pick_cube_vision:
                                two 64x64 cameras and proprioception, training from 100
                                transitions)
    env_steps_per_s             all robots together, over the steady part of the run (from a
                                quarter to nine tenths of its env steps)
    updates_per_s               the learner's, over the same window
    updates_per_env_step        configured (learner.updates_per_env_step)
    updates_per_env_step_held   done since training started, over all robots (final progress.json;
                                short runs end with the actors up to throttle_slack_steps ahead)
    updates_per_env_step_steady the same over the steady window
    weights_lag_mean / _max     per robot, sampled each second: published weights version minus
                                the newest version that chose an action in its chunks
    messages_sent, resent, duplicates_dropped, stored, lost
                                chunks + episode stats the actors submitted (their link.json), resent
                                after a timeout or reconnect, duplicates the learner dropped, messages
                                in the learner's store, and sent - stored (must be 0)
    wall_s                      the whole `hilrl run`, start-up and final evaluation included

Demonstrations are recorded once per task (20 scripted episodes) and shared by its cases.

Usage: python bench/fleet.py [--robots 1 2 4] [--state-steps 1200] [--image-steps 500] [--only state|images]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hilrl.transport.chunkfile import ChunkDirectory  # noqa: E402
from hilrl.transport.config import config_path, load_document  # noqa: E402
from hilrl.transport.run_dir import RunDir  # noqa: E402

CASES = {
    # observation: (config, overrides)
    "state": ("sim_reach", []),
    # Training from 100 transitions, so a short case trains on images for most of its steps.
    "images": ("sim_pick_cube_vision", ["learner.training_starts=100"]),
}
COMMON = ["dashboard.enabled=false", "learner.progress_every_s=0", "actor.progress_every_s=0"]


def _record_demos(config: str, out: Path) -> Path:
    from hilrl.tools.demos import record_demos

    doc = load_document(config_path(config), ["env.connection=inprocess", "dashboard.enabled=false"])
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines: stdout carries the one JSON object
        record_demos(doc, 20, out, wait_for_input=False)
    return out


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _count(folder: Path) -> int:
    return len(ChunkDirectory(folder)) if folder.is_dir() else 0


def run_case(robots: int, observation: str, env_steps: int, demos: Path, work: Path) -> dict:
    config, overrides = CASES[observation]
    run_dir = work / f"{observation}-{robots}"
    paths = RunDir(run_dir)
    cmd = [sys.executable, "-m", "hilrl.tools.cli", "run", "--config", config, "--run-dir", str(run_dir),
           "--robots", str(robots), "--max-env-steps", str(env_steps), "--eval-episodes", "0",
           f"learner.demos=[{demos}]", *COMMON, *overrides]
    started = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    lags: list[int] = []
    with open(work / f"{observation}-{robots}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        while proc.poll() is None:
            time.sleep(1.0)
            progress = _read(paths.progress)
            if progress:
                samples.append((time.monotonic(), progress["env_steps"], progress["updates"]))
                lags.extend(r["weights_lag"] for r in progress.get("robots", {}).values()
                            if r.get("weights_lag") is not None)
    wall_s = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"hilrl run --robots {robots} ({observation}) exited {proc.returncode}; "
                           f"see {work / f'{observation}-{robots}.log'}")
    window = [s for s in samples if 0.25 * env_steps <= s[1] <= 0.9 * env_steps]
    if len(window) >= 2:
        (t0, e0, u0), (t1, e1, u1) = window[0], window[-1]
        steps_per_s, updates_per_s = (e1 - e0) / (t1 - t0), (u1 - u0) / (t1 - t0)
        steady_ratio = (u1 - u0) / (e1 - e0) if e1 > e0 else None
    else:
        steps_per_s = updates_per_s = steady_ratio = None
    final = _read(paths.progress) or {}
    summary = _read(paths.summary) or {}
    links = [r.get("link") or {} for r in summary.get("robots", {}).values()]
    sent = sum(link.get("messages_sent", 0) for link in links)
    stored = _count(paths.learner_link / "chunks") + _count(paths.learner_link / "stats")
    return {
        "robots": robots,
        "observation": observation,
        "env_steps": final.get("env_steps"),
        "env_steps_per_s": round(steps_per_s, 1) if steps_per_s is not None else None,
        "updates_per_s": round(updates_per_s, 1) if updates_per_s is not None else None,
        "updates_per_env_step": final.get("updates_per_env_step"),
        "updates_per_env_step_held": final.get("updates_per_env_step_held"),
        "updates_per_env_step_steady": round(steady_ratio, 3) if steady_ratio is not None else None,
        "weights_lag_mean": round(sum(lags) / len(lags), 2) if lags else None,
        "weights_lag_max": max(lags) if lags else None,
        "messages_sent": sent,
        "resent": sum(link.get("resent_messages", 0) for link in links),
        "duplicates_dropped": (final.get("link") or {}).get("duplicates"),
        "stored": stored,
        "lost": sent - stored,
        "wall_s": round(wall_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--state-steps", type=int, default=1200, help="total env steps per state case")
    parser.add_argument("--image-steps", type=int, default=500, help="total env steps per image case")
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args()
    observations = [args.only] if args.only else list(CASES)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cases = []
        for observation in observations:
            demos = _record_demos(CASES[observation][0], work / f"demos-{observation}")
            steps = args.state_steps if observation == "state" else args.image_steps
            for robots in args.robots:
                cases.append(run_case(robots, observation, steps, demos, work))
                print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "cases": cases}))


if __name__ == "__main__":
    main()
