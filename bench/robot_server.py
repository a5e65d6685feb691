"""Round-trip latency of the robot server: SetPoseTarget (which replies with the full state).

Starts `hilrl robot-server` (sim backend, lockstep clock, task reach) on a free loopback port,
warms up, then times N round trips through `RobotClient` and prints one JSON object:
{"rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms", "n", ...}. Target: rtt_p99_ms <= 2.

Usage: python bench/robot_server.py [--n 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hilrl.robot_server.client import RobotClient  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int, timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "hilrl.tools.cli", "robot-server", "--backend", "sim", "--task", "reach",
           "--clock", "lockstep", "--port", str(port), "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=timeout_s)
    except queue.Empty:
        proc.kill()
        raise RuntimeError("robot server did not start") from None
    return proc, line.split()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="timed round trips")
    parser.add_argument("--warmup", type=int, default=200, help="untimed round trips first")
    args = parser.parse_args(argv)

    proc, endpoint = _start_server(_free_port())
    try:
        with RobotClient(endpoint, timeout_s=2.0) as client:
            home = client.go_home()
            rng = np.random.default_rng(0)
            # Small targets around home, so the arm stays still-ish and replies stay typical.
            offsets = rng.uniform(-0.01, 0.01, (args.warmup + args.n, 3))
            rtt_s = np.empty(args.n)
            for i, offset in enumerate(offsets):
                t0 = time.perf_counter()
                client.set_pose_target(home.tcp_position_m + offset, home.tcp_quaternion_wxyz)
                if i >= args.warmup:
                    rtt_s[i - args.warmup] = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(10)
    rtt_ms = 1000 * rtt_s
    print(json.dumps({
        "bench": "robot_server_set_pose_target_rtt",
        "n": args.n,
        "rtt_p50_ms": round(float(np.percentile(rtt_ms, 50)), 4),
        "rtt_p99_ms": round(float(np.percentile(rtt_ms, 99)), 4),
        "rtt_max_ms": round(float(rtt_ms.max()), 4),
        "target_p99_ms": 2.0,
        "clock": "lockstep",
        "transport": "tcp loopback",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
