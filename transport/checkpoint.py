"""The learner's checkpoint format, defined once: what it holds, how it is written and read, and
which of its tensors the acting policy needs.

A checkpoint is one `Checkpoint` message in a chunk-store file (hilrl.transport.chunkfile: JSON
header plus raw array frames, written to a temporary file, fsynced and renamed; reading it runs no
code). It holds networks, optimisers, counters and random states, never the replay buffers: those
are rebuilt at `--resume` from the stored chunks, so a checkpoint takes milliseconds whatever the
buffer size. Where it lives: hilrl.transport.run_dir (RUN_DIR/learner/checkpoint.bin, and the kept
numbered ones).

Tensor names are "<network>.<parameter>" (the agent's `state_arrays()`), plus optimiser state
("optim.*"), "log_alpha" and "torch_rng_state". The acting policy (the actor's `Policy`, `hilrl
eval`) needs only the networks in `ACTING_NETWORKS`; the SAC agent names its acting networks from
the same tuple (hilrl.policies.sac), so a renamed network cannot silently drop out of evaluation.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.transport.chunkfile import read_message, write_message
from hilrl.transport.codec import Registry

ACTING_NETWORKS = ("obs_norm", "encoder", "actor", "grasp_critic")
"""The networks an actor runs, by tensor-name prefix: input normalisation, (with cameras) the image
encoder, the tanh-Gaussian actor, (with a gripper) the grasp critic. The critics, targets,
optimisers and random state are for training only."""


@dataclass
class Checkpoint:
    """What `--resume` needs besides the stored chunks.

    Attributes:
        updates: gradient updates done. weights_version: last published version.
        config_hash: hash of the config the run was started with.
        sampler_rng: numpy bit-generator state of the batch sampler (JSON-able).
        tensors: agent.state_arrays() plus "torch_rng_state".
    """

    updates: int
    weights_version: int
    config_hash: str
    sampler_rng: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


CHECKPOINT_MESSAGES = Registry({"learner_checkpoint": Checkpoint})


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (a crash leaves the previous file whole)."""
    write_message(path, checkpoint, CHECKPOINT_MESSAGES)


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint in `path`. Raises ChunkFileError for a file that is not a whole checkpoint."""
    _, checkpoint = read_message(path, CHECKPOINT_MESSAGES)
    return checkpoint


def keep_numbered(latest: Path, target: Path, keep: int) -> None:
    """Keep the checkpoint just written (`latest`) as `target` too, then prune `target`'s folder to
    the newest `keep` numbered checkpoints. A hard link costs no write: the latest checkpoint is
    replaced by rename, never rewritten in place, so the linked file stays as it was."""
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(latest, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(latest, tmp)
    os.replace(tmp, target)  # the final checkpoint may repeat the last periodic one's number
    for old in sorted(target.parent.glob("checkpoint-*.bin"))[:-keep]:
        old.unlink(missing_ok=True)


def acting_tensors(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The acting networks' tensors of a checkpoint's `tensors`, by the names the actor's Policy
    loads (see ACTING_NETWORKS)."""
    prefixes = tuple(f"{net}." for net in ACTING_NETWORKS)
    return {name: value for name, value in tensors.items() if name.startswith(prefixes)}
