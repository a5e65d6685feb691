"""Throughput of the simulated robot: env steps per second and raw physics speed.

Prints one JSON object:
    env_steps_per_s_state   lockstep pick_cube env (in-process), state only, random actions
    env_steps_per_s_images  the same with the front and wrist cameras (128x128) in the observation
    realtime_factor         simulated seconds per wall second of SimBackend.advance (physics with
                            the impedance controller at every step, no env, no rendering)
Wall time includes the resets at episode ends (every 100 steps), as in training.
Targets: env_steps_per_s_state >= 150, env_steps_per_s_images >= 25.

Usage: python bench/sim.py [--steps 1000] [--image-steps 300] [--sim-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mujoco  # noqa: E402

from hilrl.actor.make import make_sim_env  # noqa: E402
from hilrl.robot_server.sim.backend import SimBackend  # noqa: E402

WARMUP_STEPS = 50


def env_steps_per_s(images: bool, steps: int, seed: int = 0) -> tuple[float, dict]:
    """Timed random-action steps of the lockstep pick_cube env (after an untimed warm-up).

    Returns (steps per second, what was measured: clock, control period, image shapes).
    """
    env = make_sim_env("pick_cube", images=images)
    try:
        raw = env.unwrapped
        assert raw.lockstep, "the shipped pick_cube config runs the lockstep clock"
        setup = {
            "control_period_s": raw.control_period_s,
            "images": {
                k: list(v.shape) for k, v in env.observation_space.spaces.items() if k != "state"
            },
        }
        env.action_space.seed(seed)
        env.reset(seed=seed)

        def run(n: int) -> None:
            for _ in range(n):
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    env.reset()

        run(WARMUP_STEPS)
        start = time.perf_counter()
        run(steps)
        return steps / (time.perf_counter() - start), setup
    finally:
        env.close()


def realtime_factor(sim_seconds: float) -> float:
    """Simulated seconds per wall second of raw physics + controller (pick_cube scene)."""
    backend = SimBackend("pick_cube")
    try:
        backend.advance(0.5)  # warm-up
        start = time.perf_counter()
        backend.advance(sim_seconds)
        return sim_seconds / (time.perf_counter() - start)
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="timed state-only env steps")
    parser.add_argument("--image-steps", type=int, default=300, help="timed env steps with cameras")
    parser.add_argument(
        "--sim-seconds", type=float, default=20.0, help="simulated time for realtime_factor"
    )
    args = parser.parse_args(argv)

    state_rate, setup = env_steps_per_s(False, args.steps)
    image_rate, image_setup = env_steps_per_s(True, args.image_steps)
    result = {
        "env_steps_per_s_state": round(state_rate, 1),
        "env_steps_per_s_images": round(image_rate, 1),
        "realtime_factor": round(realtime_factor(args.sim_seconds), 1),
        "task": "pick_cube",
        "clock": "lockstep",
        "control_period_s": setup["control_period_s"],
        "images": image_setup["images"],
        "steps_state": args.steps,
        "steps_images": args.image_steps,
        "sim_seconds": args.sim_seconds,
        "mujoco": mujoco.__version__,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
