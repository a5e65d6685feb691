"""Warm start (`learner.init_from: RUN_DIR`): this run's networks start from another run's
checkpoint wherever they fit, e.g. SAC from a `bc` run's actor (WSRL: an offline initialisation,
then online RL, with or without the offline data, `learner.init_drop_demos`).

What is loaded, network by network (a network loads whole or not at all):
    obs_norm, encoder, actor, critic, grasp_critic   from the source when it has every one of this
                                                     network's tensors with the same shapes and no
                                                     others
    critic_target, grasp_critic_target               from the source's, else a copy of the network
                                                     just loaded (a target equals its online
                                                     network at the start, as in a fresh agent)
With a state encoder (`learner.sac.state_encoder_dim`, learned tensors "obs_norm.encoder.*"), every
network that reads the state's features (actor, critics, grasp critic and their targets) loads only
when obs_norm did: their input widths could match while the features they were trained on do not.
Never loaded: optimiser state, temperature, random streams and counters (the run starts at update
0 with its own seed). What was skipped is named with the reason; a source where nothing fits is
an error naming `learner.init_from`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.transport.checkpoint import read_checkpoint
from hilrl.transport.chunkfile import ChunkFileError
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError

log = logging.getLogger(__name__)

KEY = "learner.init_from"
# The image encoder reads images, not obs_norm's output; every other network reads both.
READS_IMAGES_ONLY = ("encoder",)
NETWORKS = ("obs_norm", "encoder", "actor", "critic", "critic_target", "grasp_critic", "grasp_critic_target")
TARGETS = {"critic_target": "critic", "grasp_critic_target": "grasp_critic"}


@dataclass
class WarmStart:
    """What a warm start did. loaded: network -> where it came from ("source", or the online
    network a target was copied from); skipped: network -> why; tensors: how many were loaded."""

    source: Path
    loaded: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    tensors: int = 0


def checkpoint_of(run_dir: str | Path) -> Path:
    """RUN_DIR/learner/checkpoint.bin, checked to exist (SchemaError naming learner.init_from)."""
    path = RunDir(Path(run_dir)).checkpoint
    if not path.is_file():
        raise SchemaError(KEY, f"{path}: no checkpoint to warm-start from (give the run directory of a run whose "
                               "learner has written one)")
    return path


def _tensors_of(names: list[str], net: str) -> list[str]:
    return sorted(n for n in names if n.startswith(f"{net}."))


def warm_start(agent: Any, run_dir: str | Path) -> WarmStart:
    """Load the networks of `run_dir`'s checkpoint that fit `agent` (a SACAgent or BCAgent: its
    state_arrays / load_state_arrays) by the module docstring's rules."""
    path = checkpoint_of(run_dir)
    try:
        source = read_checkpoint(path).tensors
    except ChunkFileError as exc:
        raise SchemaError(KEY, f"{path} is not a usable checkpoint: {exc}") from None
    arrays = dict(agent.state_arrays())
    report = WarmStart(path)
    state_encoder = any(n.startswith("obs_norm.encoder.") for n in arrays)
    for net in NETWORKS:
        mine = _tensors_of(list(arrays), net)
        if not mine:
            continue  # this agent has no such network
        if state_encoder and net != "obs_norm" and net not in READS_IMAGES_ONLY and "obs_norm" not in report.loaded:
            report.skipped[net] = "it reads the state encoder (obs_norm.encoder), which did not load"
            continue
        theirs = _tensors_of(list(source), net)
        if not theirs and net in TARGETS and TARGETS[net] in report.loaded:
            online = TARGETS[net]
            for name in mine:
                arrays[name] = arrays[online + name[len(net):]]
            report.loaded[net] = f"copied from {online}"
            report.tensors += len(mine)
            continue
        if not theirs:
            report.skipped[net] = "not in the source"
            continue
        misfit = next((n for n in mine if n not in source or np.shape(source[n]) != np.shape(arrays[n])), None)
        extra = sorted(set(theirs) - set(mine))
        if misfit is not None:
            found = f"shape {np.shape(source[misfit])}" if misfit in source else "absent"
            report.skipped[net] = f"{misfit}: here {np.shape(arrays[misfit])}, in the source {found}"
            continue
        if extra:
            report.skipped[net] = f"the source has tensors this run's {net} lacks ({extra[0]})"
            continue
        for name in mine:
            arrays[name] = np.asarray(source[name])
        report.loaded[net] = "source"
        report.tensors += len(mine)
    if not report.loaded:
        raise SchemaError(KEY, f"nothing in {path} fits this run's networks: "
                               + "; ".join(f"{net}: {why}" for net, why in report.skipped.items()))
    agent.load_state_arrays(arrays)
    log.info("warm start from %s: loaded %s (%d tensors)%s", path, ", ".join(report.loaded), report.tensors,
             "; skipped " + "; ".join(f"{net} ({why})" for net, why in report.skipped.items()) if report.skipped else "")
    return report
