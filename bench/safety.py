"""The robot server's safety envelope under adversarial requests: one JSON object.

Random request sequences (tests/robot/safety_harness.py: every request kind, extreme, NaN and inf
values, wrong shapes, go-home with any noise, impedance changes, stops, clear-errors, idle gaps)
against the service with the sim backend (realtime clock on a fake clock) and with the Franka
backend on the dynamic fake panda-py (wall clock), checking the invariants after every request.

    <backend>.sequences, .requests          tried
    <backend>.max_box_excursion_m           largest distance of the TCP outside the box
    <backend>.max_tcp_speed_m_per_s         largest TCP speed seen (cap: max_tcp_speed_m_per_s)
    <backend>.max_reference_lead_m          largest distance of panda-py's reference from the TCP
                                            (the Franka; the sim clips inside its controller)
    <backend>.max_hold_latency_ms           longest time from the last command to "holding"
    <backend>.violations                    invariant violations (must be 0)

Usage: python bench/safety.py [--sim-sequences 300] [--franka-sequences 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROBOT_TESTS = Path(__file__).resolve().parents[1] / "tests" / "robot"
sys.path.insert(0, str(ROBOT_TESTS))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from safety_harness import FrankaCell, SimCell, Tracker, sequences  # noqa: E402


def run(cell_factory, n_sequences: int, random_seed: int) -> dict:
    cell = cell_factory()
    totals = {"sequences": 0, "requests": 0, "max_box_excursion_m": 0.0, "max_tcp_speed_m_per_s": 0.0,
              "max_reference_lead_m": 0.0, "max_hold_latency_ms": 0.0, "violations": 0}
    examples: list[str] = []
    started = time.monotonic()

    @seed(random_seed)
    @settings(max_examples=n_sequences, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(sequence=sequences)
    def one(sequence):
        cell.reset()
        tracker = Tracker(cell)
        tracker.run(sequence)
        totals["sequences"] += 1
        totals["requests"] += tracker.requests
        for key, value in tracker.figures().items():
            totals[key] = max(totals[key], value)
        totals["violations"] += len(tracker.violations)
        examples.extend(tracker.violations[:1])

    try:
        one()
    finally:
        cell.close()
    totals["wall_s"] = round(time.monotonic() - started, 1)
    if examples:
        totals["first_violations"] = examples[:3]
    totals["caps"] = {"max_tcp_speed_m_per_s": cell.config.safety.max_tcp_speed_m_per_s,
                      "watchdog_timeout_s": cell.config.safety.watchdog_timeout_s}
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-sequences", type=int, default=300)
    parser.add_argument("--franka-sequences", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = {"sim": run(SimCell, args.sim_sequences, args.seed)}
    sys.path.insert(0, str(ROBOT_TESTS / "fake_panda_py"))
    out["franka_fake"] = run(FrankaCell, args.franka_sequences, args.seed)
    out["violations"] = out["sim"]["violations"] + out["franka_fake"]["violations"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
