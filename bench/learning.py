"""Learning benchmark: deterministic eval success against env steps, with 20 demos, with and
without scripted interventions, through the real `hilrl run` (three processes on loopback).

    python bench/learning.py --task pick_cube --seeds 3 [--max-env-steps 10000] [--eval-every 1000]

Prints ONE JSON object:
    {"task", "max_env_steps", "eval_every", "modes": {"interventions"|"no_interventions": {
        "steps_to_90": [per seed; null when 90% was not reached], "wall_time_s": [per seed],
        "final_success": [per seed], "curves": [[[env_steps, success_rate], ...] per seed]}},
     "intervention_step_reduction": 1 - median(steps_to_90 with) / median(steps_to_90 without)}
Targets (2-core CPU): pick_cube >= 90% within 10k env steps and 15 min; interventions cut the
steps needed by >= 30%; pick_cube_vision (64x64 images) >= 80% within 30k env steps
(`--max-env-steps 30000`), with its wall time. steps_to_80 / steps_to_90: first evaluation at
or above that success rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK_CONFIGS = {
    "reach": "sim_reach",
    "pick_cube": "sim_pick_cube",
    "peg_insert": "sim_peg_insert",
    "pick_cube_vision": "sim_pick_cube_vision",  # two 64x64 cameras + proprioception
}


def run_once(task: str, seed: int, interventions: bool, max_env_steps: int, eval_every: int, out: Path) -> dict:
    run_dir = out / f"{task}-{'hil' if interventions else 'rl'}-seed{seed}"
    args = [
        sys.executable, "-m", "hilrl.tools.cli", "run", "--config", str(REPO / "configs" / f"{TASK_CONFIGS[task]}.yaml"),
        "--run-dir", str(run_dir), "--max-env-steps", str(max_env_steps), "--eval-episodes", "20",
        f"actor.seed={seed}", f"learner.seed={seed}", f"actor.eval_every_steps={eval_every}", "actor.eval_episodes=10",
        f"actor.intervention.device={'scripted' if interventions else 'none'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    curve = []
    curve_file = run_dir / "actor" / "eval_curve.jsonl"
    if curve_file.exists():
        curve = [(p["env_steps"], p["eval_success_rate"]) for p in map(json.loads, curve_file.read_text().splitlines())]
    summary = json.loads((run_dir / "summary.json").read_text())
    curve.append((summary["env_steps"], summary["eval_success_rate"]))
    steps_to_80 = next((steps for steps, success in curve if success >= 0.8), None)
    steps_to_90 = next((steps for steps, success in curve if success >= 0.9), None)
    return {"steps_to_80": steps_to_80, "steps_to_90": steps_to_90, "wall_time_s": round(wall, 1),
            "final_success": summary["eval_success_rate"], "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="pick_cube", choices=sorted(TASK_CONFIGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-env-steps", type=int, default=10_000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--modes", default="interventions,no_interventions")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_learning_"))
    result: dict = {"task": args.task, "max_env_steps": args.max_env_steps, "eval_every": args.eval_every, "modes": {}}
    for mode in args.modes.split(","):
        runs = [
            run_once(args.task, seed, mode == "interventions", args.max_env_steps, args.eval_every, out)
            for seed in range(args.seeds)
        ]
        result["modes"][mode] = {
            "steps_to_80": [r["steps_to_80"] for r in runs],
            "steps_to_90": [r["steps_to_90"] for r in runs],
            "wall_time_s": [r["wall_time_s"] for r in runs],
            "final_success": [r["final_success"] for r in runs],
            "curves": [r["curve"] for r in runs],
        }

    def median_steps(mode: str) -> float | None:
        # a seed that never reached 90% counts as needing more than the whole budget
        values = [s if s is not None else 2 * args.max_env_steps for s in result["modes"].get(mode, {}).get("steps_to_90", [])]
        return statistics.median(values) if values else None

    with_hil, without = median_steps("interventions"), median_steps("no_interventions")
    result["intervention_step_reduction"] = (
        round(1 - with_hil / without, 3) if with_hil is not None and without else None
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
