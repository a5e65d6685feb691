"""What the learning benchmarks share: one training run through the real `hilrl run` (learner and
actor processes on loopback, a robot server for our sim tasks) with periodic deterministic
evaluation, and the figures read off its success curve.

    curve, summary, wall_s = train(config, run_dir, budget, eval_every, overrides)
    steps_to(curve, 0.9), success_at(curve, budget), auc(curve, budget), quartiles(values)

and, for the throughput benches (learner.py, peer_lerobot.py), `calls_per_s(fn, seconds, warmup)`.

A curve is [(env steps, deterministic success rate)]: an evaluation of 10 episodes every
`eval_every` env steps (`actor.eval_every_steps`), then the final one (20 episodes), which
replaces a periodic one at the same step.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUDGET_POINTS = (2_000, 4_000, 6_000, 10_000, 20_000, 30_000)
EVAL_EPISODES, FINAL_EVAL_EPISODES = 10, 20  # each periodic evaluation, and the final one


def train(config: Path, run_dir: Path, budget: int, eval_every: int, overrides: list[str]
          ) -> tuple[list[tuple[int, float]], dict[str, Any], float]:
    """Run `hilrl run` once; returns (curve, summary.json, wall time s). Raises RuntimeError
    with the end of its stderr when it fails."""
    args = [sys.executable, "-m", "hilrl.tools.cli", "run", "--config", str(config), "--run-dir", str(run_dir),
            "--max-env-steps", str(budget), "--eval-episodes", str(FINAL_EVAL_EPISODES), *overrides,
            f"actor.eval_every_steps={eval_every}", f"actor.eval_episodes={EVAL_EPISODES}", "dashboard.enabled=false"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"hilrl run {run_dir.name} exited {done.returncode}: {done.stderr[-2000:]}")
    curve_file = run_dir / "actor" / "eval_curve.jsonl"
    curve = [(p["env_steps"], p["eval_success_rate"]) for p in map(json.loads, curve_file.read_text().splitlines())] \
        if curve_file.exists() else []
    summary = json.loads((run_dir / "summary.json").read_text())
    if curve and curve[-1][0] == summary["env_steps"]:
        curve.pop()  # a periodic evaluation at the very end: the final one (20 episodes) stands
    curve.append((summary["env_steps"], summary["eval_success_rate"]))
    return curve, summary, wall


def steps_to(curve: list[tuple[int, float]], level: float) -> int | None:
    """Env steps of the first evaluation at or above `level` (None: never)."""
    return next((steps for steps, success in curve if success >= level), None)


def success_at(curve: list[tuple[int, float]], budget: int) -> dict[str, float | None]:
    """Success of the last evaluation at or before each budget point within `budget`."""
    out: dict[str, float | None] = {}
    for point in (p for p in BUDGET_POINTS if p <= budget):
        before = [success for steps, success in curve if steps <= point]
        out[str(point)] = before[-1] if before else None
    return out


def auc(curve: list[tuple[int, float]], budget: int) -> float:
    """Trapezoid area under success(env steps) over [0, budget], from (0, 0), divided by budget."""
    points = [(0, 0.0), *[(s, v) for s, v in curve if s <= budget]]
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in itertools.pairwise(points))
    last_steps, last_value = points[-1]
    area += (budget - last_steps) * last_value
    return round(area / budget, 4)


def quartiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "q1": None, "q3": None}
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def calls_per_s(fn: Any, seconds: float, warmup: int) -> float:
    """Calls of `fn` per second of wall time, after `warmup` untimed calls (each call must sync
    the device itself, e.g. by returning floats)."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed
