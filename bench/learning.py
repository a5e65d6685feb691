"""Learning modes side by side: each `learner.algorithm` (and SAC warm-started from BC) on the same
sim cell, with the same 20 scripted demos and the same scripted operator, good or suboptimal,
through the real `hilrl run` (robot server, learner and actor processes on loopback).

    python bench/learning.py run --task pick_cube --algorithm sac bc hg_dagger rlif residual_sac sac_from_bc \\
        --operator good --seeds 0 1 2 [--budget 10000]
    python bench/learning.py report          # ONE JSON object over every kept result
    python bench/learning.py list            # tasks, algorithms, operators

Modes (each seed's demos are recorded once per run by `hilrl run` with the sim's scripted expert):
    sac            RLPD-style SAC with the operator taking over (the shipped recipe)
    bc             behaviour cloning on the demos alone (no operator); trained before the robot
                   moves, so its curve is flat: it runs --bc-budget env steps, not --budget
    hg_dagger      BC, retrained on every takeover as it comes (starts from learner.bc.updates)
    rlif           SAC whose only reward is the takeover penalty (learner.rlif.task_reward false)
    residual_sac   SAC on a residual over that seed's bc run (learner.residual.base_run)
    sac_from_bc    SAC warm-started from that seed's bc run (learner.init_from), demos kept
Operators: good (actor.intervention.operator_quality 1.0: the expert, taking over by the drift
rule), poor (quality 0.3: noisy, late, imprecise and impatient; actor/interventions.py), none.

Per run, kept as bench/results/learning/<task>__<algorithm>__<operator>__seed<k>.json: the
success curve (10 deterministic episodes every --eval-every env steps, then 20), env steps to 90 %,
success at fixed budgets, the area under the curve, takeovers per episode in each 1,000 env steps
(HG-DAgger's measure of progress) and wall time. A bc run a residual or warm start needs is kept
in --work (default /tmp/hilrl-bench-learning) and made when missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from harness import REPO, auc, quartiles, steps_to, success_at, train

RESULTS = REPO / "bench" / "results" / "learning"
TASK_CONFIGS = {
    "reach": "sim_reach",
    "pick_cube": "sim_pick_cube",
    "peg_insert": "sim_peg_insert",
    "pick_cube_vision": "sim_pick_cube_vision",  # two 64x64 cameras + proprioception
}
OPERATORS = {
    "good": ("actor.intervention.device=scripted", "actor.intervention.operator_quality=1.0"),
    "poor": ("actor.intervention.device=scripted", "actor.intervention.operator_quality=0.3"),
    "none": ("actor.intervention.device=none",),
}
ALGORITHMS = ("sac", "bc", "hg_dagger", "rlif", "residual_sac", "sac_from_bc")


def _bc_run(task: str, seed: int, work: Path, bc_budget: int, eval_every: int) -> Path:
    """The seed's bc run directory, the base of residual_sac and sac_from_bc (run when missing)."""
    run_dir = work / f"{task}__bc__none__seed{seed}"
    if not (run_dir / "learner" / "checkpoint.bin").is_file():
        run_once(task, "bc", "none", seed, bc_budget, bc_budget, eval_every, work)
    return run_dir


def _overrides(task: str, algorithm: str, operator: str, seed: int, work: Path, bc_budget: int,
               eval_every: int) -> list[str]:
    mode = {
        "sac": [],
        "bc": ["learner.algorithm=bc"],
        "hg_dagger": ["learner.algorithm=hg_dagger"],
        "rlif": ["learner.algorithm=rlif", "learner.rlif.task_reward=false"],
        "residual_sac": ["learner.algorithm=residual_sac",
                         f"learner.residual.base_run={_bc_run(task, seed, work, bc_budget, eval_every)}"] if algorithm == "residual_sac" else [],
        "sac_from_bc": [f"learner.init_from={_bc_run(task, seed, work, bc_budget, eval_every)}"] if algorithm == "sac_from_bc" else [],
    }[algorithm]
    return [*mode, *OPERATORS[operator], f"actor.seed={seed}", f"learner.seed={seed}"]


def takeovers_per_1000(run_dir: Path) -> list[float | None]:
    """Mean takeovers per episode of the episodes ending in each 1,000 env steps (None: none)."""
    path = run_dir / "learner" / "episodes.jsonl"
    episodes = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    buckets: dict[int, list[int]] = {}
    for e in episodes:
        buckets.setdefault((e["env_steps"] - 1) // 1000, []).append(e["interventions"])
    last = max(buckets, default=-1)
    return [round(statistics.mean(buckets[b]), 3) if b in buckets else None for b in range(last + 1)]


def run_once(task: str, algorithm: str, operator: str, seed: int, budget: int, bc_budget: int, eval_every: int,
             work: Path) -> dict[str, Any]:
    steps = bc_budget if algorithm == "bc" else budget
    operator = "none" if algorithm == "bc" else operator  # bc learns from the demos alone
    overrides = _overrides(task, algorithm, operator, seed, work, bc_budget, eval_every)
    run_dir = work / f"{task}__{algorithm}__{operator}__seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    curve, summary, wall = train(REPO / "configs" / f"{TASK_CONFIGS[task]}.yaml", run_dir, steps, eval_every, overrides)
    if algorithm == "bc" and curve:
        # Its training is over before the robot moves: the policy it evaluates is the one it had
        # at env step 0 (its success there, not the convention's 0).
        curve = [(0, curve[0][1]), *curve]
    result = {
        "task": task, "algorithm": algorithm, "operator": operator, "seed": seed,
        "budget": steps, "overrides": overrides, "curve": curve, "steps_to_90": steps_to(curve, 0.9),
        "success_at": success_at(curve, steps), "auc": auc(curve, steps), "final_success": summary["eval_success_rate"],
        "takeovers_per_episode_per_1000_steps": takeovers_per_1000(run_dir), "updates": summary["updates"],
        "wall_time_s": round(wall, 1), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if algorithm != "bc":
        shutil.rmtree(run_dir, ignore_errors=True)  # a bc run may serve as a base; the rest is not needed
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{task}__{algorithm}__{operator}__seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def report() -> dict[str, Any]:
    """Every kept result, by task, then "<algorithm>/<operator>"."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        groups.setdefault(r["task"], {}).setdefault(f"{r['algorithm']}/{r['operator']}", []).append(r)
    out: dict[str, Any] = {"results_dir": str(RESULTS.relative_to(REPO)), "tasks": {}}
    for task, rows in groups.items():
        out["tasks"][task] = {}
        for key, runs in sorted(rows.items()):
            reached = [r["steps_to_90"] for r in runs if r["steps_to_90"] is not None]
            points = sorted({p for r in runs for p in r["success_at"]}, key=int)
            takeovers = [r["takeovers_per_episode_per_1000_steps"] for r in runs]
            out["tasks"][task][key] = {
                "seeds": sorted(r["seed"] for r in runs),
                "steps_to_90": {"median": statistics.median(reached) if len(reached) * 2 > len(runs) else None,
                                "per_seed": {r["seed"]: r["steps_to_90"] for r in runs},
                                "not_reached": len(runs) - len(reached)},
                "success_at": {p: quartiles([r["success_at"][p] for r in runs if r["success_at"].get(p) is not None])["median"]
                               for p in points},
                "final_success": quartiles([r["final_success"] for r in runs])["median"],
                "auc": quartiles([r["auc"] for r in runs])["median"],
                "takeovers_per_episode_first_last_1000": [
                    statistics.mean(t[0] for t in takeovers if t and t[0] is not None) if any(t and t[0] is not None for t in takeovers) else None,
                    statistics.mean(t[-1] for t in takeovers if t and t[-1] is not None) if any(t and t[-1] is not None for t in takeovers) else None],
                "wall_time_s_median": statistics.median(r["wall_time_s"] for r in runs),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train (task, algorithm, operator, seed) runs and keep their results")
    run.add_argument("--task", choices=sorted(TASK_CONFIGS), default="pick_cube")
    run.add_argument("--algorithm", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    run.add_argument("--operator", choices=sorted(OPERATORS), default="good")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--budget", type=int, default=10_000, help="env steps per run (bc: --bc-budget)")
    run.add_argument("--bc-budget", type=int, default=1_000, help="env steps a bc run drives its trained policy")
    run.add_argument("--eval-every", type=int, default=1_000)
    run.add_argument("--work", type=Path, default=Path("/tmp/hilrl-bench-learning"), help="run directories")
    sub.add_parser("report", help="print one JSON object over every kept result")
    sub.add_parser("list", help="tasks, algorithms and operators")
    args = parser.parse_args()
    if args.command == "list":
        print(json.dumps({"tasks": sorted(TASK_CONFIGS), "algorithms": list(ALGORITHMS),
                          "operators": {k: list(v) for k, v in OPERATORS.items()}}))
        return
    if args.command == "report":
        print(json.dumps(report()))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for algorithm in args.algorithm:
            r = run_once(args.task, algorithm, args.operator, seed, args.budget, args.bc_budget, args.eval_every,
                         args.work)
            print(json.dumps({k: r[k] for k in ("task", "algorithm", "operator", "seed", "steps_to_90", "final_success",
                                                 "auc", "wall_time_s")}), flush=True)


if __name__ == "__main__":
    main()
