"""Two settings that make the agents' updates faster without changing what they compute.

Measured with bench/learner.py on the 2-core CPU machine (figures in issue 13's closing note):

- `adam`: PyTorch's fused Adam kernel (one pass over all of an optimiser's parameters per step,
  CPU and CUDA, float32) instead of the per-parameter loop: the same Adam update rule, with
  the same state keys (step, exp_avg, exp_avg_sq), so checkpoints load either way.
- `retain_freed_memory`: glibc returns every freed block above its mmap threshold (dynamic, at
  most 32 MiB) or at the top of the heap (trim threshold) to the kernel, and the next allocation of
  the same size page-faults it back in, zero-filled. An update allocates and frees the same
  activation and gradient buffers every time (a 10-critic ensemble's hidden layer is
  10 x 256 x 256 float32 = 2.6 MB), so on the peer workload with 10 critics one update cost 4,393
  minor page faults and about 10 ms of kernel time. With both thresholds raised, freed buffers stay
  in the process and are reused: 12 to 32 faults per update. The memory kept is at most what one update
  had in use at once plus `TRIM_THRESHOLD_BYTES`.
"""

from __future__ import annotations

import ctypes
import shutil
import sys
from collections.abc import Iterable

import torch
from torch import nn

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Allocations up to this size come from the heap, and are reused after free.
MMAP_THRESHOLD_BYTES = 64 << 20
# Free memory at the top of the heap kept before it is returned to the kernel.
TRIM_THRESHOLD_BYTES = 256 << 20


def retain_freed_memory() -> bool:
    """Keep freed buffers of up to MMAP_THRESHOLD_BYTES in this process for reuse (glibc only;
    elsewhere nothing changes). Idempotent and cheap (two mallopt calls); returns whether the
    setting is in effect.

    A process-wide allocator setting: it changes no result, only how often memory is
    page-faulted back in. Every agent's constructor calls it, so the learner process, the
    in-process trainer and the benchmarks all get it.
    """
    if not sys.platform.startswith("linux"):
        return False
    # The process's own symbols (libc among them): no library search, which would run ldconfig.
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # a libc without mallopt (musl): keep its defaults
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (float32 parameters on CPU or CUDA, as every agent's are)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def compile_forward(module: nn.Module, device: torch.device) -> None:
    """Replace `module.forward` by its torch.compile'd version, in place: parameter names,
    state_dict and deepcopy stay the module's own (torch.compile(module) would prefix every name
    with "_orig_mod."). Shapes are static (the batch size is fixed in training).

    Raises ValueError naming learner.sac.compile_critics when the CPU backend's C++ compiler is
    missing (inductor would fail only at the first update, deep in training).
    """
    if device.type == "cpu" and shutil.which("g++") is None and shutil.which("c++") is None:
        raise ValueError("learner.sac.compile_critics: true needs a C++ compiler on the CPU (g++ or c++ on PATH): "
                         "install one (e.g. apt install g++) or set learner.sac.compile_critics: false")
    module.forward = torch.compile(module.forward, dynamic=False)
