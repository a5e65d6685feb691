"""Actor-side image encoder latency on the CPU: one observation with two 128x128 cameras.

What the actor pays per control step to turn its camera frames into features: uint8 (1, 128,
128, 3) per camera -> MultiCameraEncoder (one encoder per camera) -> (1, 512), in eval mode under
torch.inference_mode. Random weights (latency does not depend on their values).

Prints one JSON object:
    actor_inference_ms_small            small conv encoder, torch threads = 1 (the actor's setting)
    actor_inference_ms_resnet10         frozen ResNet-10 + spatial embeddings, threads = 1
    actor_inference_ms_small_default_threads / actor_inference_ms_resnet10_default_threads
                                        the same with torch's default thread count
    target_ms, meets_target             the budget (20 ms for two cameras) and whether both
                                        1-thread figures are within it
    params_small_per_camera             backbone + head
    params_resnet10_backbone_per_camera the frozen ResNet-10 (reference: about 4.9M)
    params_resnet10_head_per_camera     spatial embeddings + Linear + LayerNorm (trained)
    random_shift_ms_batch256            DrQ shift (pad 4) of a 256 x 128 x 128 x 3 uint8 batch,
                                        threads = 1 (the learner's augmentation, per camera)
    plus runs, warmup, torch version, default torch threads, CPU count and the 1-minute load
    average at the end (other work on the machine inflates the multi-thread figures most).
Each latency is the median of --runs timed calls after --warmup untimed ones.

Usage: python bench/vision_encoders.py [--runs 50] [--warmup 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from policies.config import EncoderConfig  # noqa: E402
from policies.encoders import MultiCameraEncoder, random_shift  # noqa: E402

CAMERAS = ["wrist", "side"]
IMAGE_SIZE = 128
TARGET_MS = 20.0


def median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of fn() in milliseconds over `runs` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000.0, 3)


def count(params) -> int:
    return sum(p.numel() for p in params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    # Random weights on purpose: silence the "resnet10 without weights" warning.
    logging.getLogger("policies.encoders").setLevel(logging.ERROR)
    default_threads = torch.get_num_threads()
    torch.manual_seed(0)
    encoders = {
        kind: MultiCameraEncoder(CAMERAS, EncoderConfig(kind=kind, image_size=IMAGE_SIZE)).eval()
        for kind in ("small", "resnet10")
    }
    gen = torch.Generator().manual_seed(0)
    obs = {
        c: torch.randint(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8, generator=gen)
        for c in CAMERAS
    }

    result: dict[str, object] = {}
    with torch.inference_mode():
        for threads, suffix in ((1, ""), (default_threads, "_default_threads")):
            torch.set_num_threads(threads)
            for kind, encoder in encoders.items():
                result[f"actor_inference_ms_{kind}{suffix}"] = median_ms(
                    lambda encoder=encoder: encoder(obs), args.runs, args.warmup
                )
        torch.set_num_threads(1)
        batch = torch.randint(0, 256, (256, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8, generator=gen)
        result["random_shift_ms_batch256"] = median_ms(
            lambda: random_shift(batch, 4, gen), max(5, args.runs // 5), 2
        )

    small = encoders["small"].encoders[CAMERAS[0]]
    resnet = encoders["resnet10"].encoders[CAMERAS[0]]
    result.update(
        target_ms=TARGET_MS,
        meets_target=max(result["actor_inference_ms_small"], result["actor_inference_ms_resnet10"]) <= TARGET_MS,
        cameras=len(CAMERAS),
        image_size=IMAGE_SIZE,
        params_small_per_camera=count(small.parameters()),
        params_resnet10_backbone_per_camera=count(resnet.backbone.parameters()),
        params_resnet10_head_per_camera=count(resnet.head.parameters()),
        runs=args.runs,
        warmup=args.warmup,
        torch=torch.__version__,
        torch_threads_default=default_threads,
        cpu_count=os.cpu_count(),
        load_average_1min=round(os.getloadavg()[0], 2),
        machine=platform.machine(),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
