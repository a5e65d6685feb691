"""LeRobot's own dataset loader for the export tests, or a skip where LeRobot is not installed
(CI installs it: `.ci/run`).

LeRobot 0.4 imports torchvision (for video decoding), and the torchvision wheels on PyPI are built
against CUDA torch: with the CPU build of torch their C extension does not load, and torchvision's
import then fails registering fake kernels for its detection ops (nms, roi_align, ...). Image
datasets use none of them, so while torchvision is imported a registration for an op that does
not exist is skipped (where the ops exist nothing changes); every line of LeRobot's loader runs as
shipped.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest


def _import_torchvision_without_its_ops() -> None:
    import torch

    real = torch.library.register_fake

    def tolerant(op: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            registered = real(op, *args, **kwargs)
        except RuntimeError:  # the op does not exist: its C extension did not load
            return lambda fn: fn
        if args or "func" in kwargs:
            return registered

        def apply(fn: Any) -> Any:
            try:
                return registered(fn)
            except RuntimeError:
                return fn

        return apply

    torch.library.register_fake = tolerant
    try:
        import torchvision  # noqa: F401
    finally:
        torch.library.register_fake = real


def lerobot_dataset_class() -> Any:
    """lerobot.datasets.lerobot_dataset.LeRobotDataset (skips the test without LeRobot)."""
    if importlib.util.find_spec("lerobot") is None:
        pytest.skip("LeRobot is not installed (CI installs it; see .ci/run)")
    _import_torchvision_without_its_ops()  # a plain import where its ops exist
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset
