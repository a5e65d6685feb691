"""An agent's training state as named arrays, never pickled: what a checkpoint holds for the SAC
and the BC agent alike (hilrl.policies.sac, hilrl.policies.bc).

    "<net>.<param or buffer>"                 every network's state_dict, by the agent's net names
    "optim.<opt>.<param>.{step,exp_avg,exp_avg_sq}"   Adam state (absent before an optimiser's
                                              first step), by the optimiser's parameter names
    "rng.<stream>"                            uint8 torch.Generator states
    plus the agent's own scalars ("updates", SAC's "log_alpha"), checked here by shape

Reading validates everything before changing anything: a missing, unknown or misshapen entry is a
ValueError naming it. A () scalar may come back as (1,) (some array codecs promote 0-d arrays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

ADAM_FIELDS = frozenset({"step", "exp_avg", "exp_avg_sq"})

Networks = Mapping[str, nn.Module]
Optimizers = Mapping[str, tuple[torch.optim.Optimizer, Sequence[tuple[str, nn.Parameter]]]]
Generators = Mapping[str, torch.Generator]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached CPU copy that later training cannot change."""
    return t.detach().to("cpu", copy=True).numpy()


def from_numpy(a: np.ndarray, dtype: np.dtype | None = None) -> torch.Tensor:
    """A tensor owning a copy of `a` (arrays from the wire are read-only buffers)."""
    return torch.from_numpy(np.array(a, dtype=dtype, copy=True))


def export_state(networks: Networks, optimizers: Optimizers, generators: Generators) -> dict[str, np.ndarray]:
    """The networks', optimisers' and random streams' arrays (the module docstring's names)."""
    arrays = {f"{prefix}.{name}": to_numpy(t) for prefix, net in networks.items() for name, t in net.state_dict().items()}
    for opt_name, (opt, params) in optimizers.items():
        for name, p in params:
            for field_name, value in opt.state.get(p, {}).items():
                arrays[f"optim.{opt_name}.{name}.{field_name}"] = to_numpy(value)
    for name, generator in generators.items():
        arrays[f"rng.{name}"] = to_numpy(generator.get_state())
    return arrays


def import_state(arrays: Mapping[str, np.ndarray], networks: Networks, optimizers: Optimizers,
                 generators: Generators, scalars: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Load what export_state wrote (plus the agent's `scalars`, name -> shape) into the networks,
    optimisers and generators; returns the scalars, checked and reshaped, for the agent to set.

    Raises:
        ValueError: the first missing, unknown or misshapen entry; nothing is changed then.
    """
    arrays = {name: np.asarray(value) for name, value in arrays.items()}

    def shaped(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in arrays:
            raise ValueError(f"state arrays lack {name!r}")
        value = arrays[name]
        if value.shape != shape and not (shape == () and value.shape == (1,)):
            raise ValueError(f"state array {name!r} has shape {value.shape}, expected {shape}")
        return value.reshape(shape)

    net_arrays = {f"{p}.{n}": shaped(f"{p}.{n}", tuple(t.shape))
                  for p, net in networks.items() for n, t in net.state_dict().items()}
    own = {name: shaped(name, shape) for name, shape in scalars.items()}
    for name in generators:
        if f"rng.{name}" not in arrays:
            raise ValueError(f"state arrays lack {f'rng.{name}'!r}")
    known = set(net_arrays) | set(own) | {f"rng.{name}" for name in generators}
    optim_states: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for opt_name, (_, params) in optimizers.items():
        optim_states[opt_name] = {}
        for i, (name, p) in enumerate(params):
            prefix = f"optim.{opt_name}.{name}."
            fields = {k[len(prefix):] for k in arrays if k.startswith(prefix)}
            if not fields:
                continue  # this optimiser had not stepped yet
            if fields != ADAM_FIELDS:
                raise ValueError(f"optimizer state {prefix}* has fields {sorted(fields)}")
            # Adam keeps `step` as a () CPU float tensor (non-capturable); load_state_dict moves
            # the moments to the parameter's device.
            optim_states[opt_name][i] = {
                "step": from_numpy(shaped(prefix + "step", ())),
                "exp_avg": from_numpy(shaped(prefix + "exp_avg", tuple(p.shape))),
                "exp_avg_sq": from_numpy(shaped(prefix + "exp_avg_sq", tuple(p.shape))),
            }
            known |= {prefix + f for f in fields}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise ValueError(f"unknown state arrays: {unknown[:5]}")

    with torch.no_grad():
        for prefix, net in networks.items():
            for name, t in net.state_dict().items():
                t.copy_(from_numpy(net_arrays[f"{prefix}.{name}"]))
    for opt_name, (opt, _) in optimizers.items():
        state_dict = opt.state_dict()
        state_dict["state"] = optim_states[opt_name]
        opt.load_state_dict(state_dict)
    for name, generator in generators.items():
        generator.set_state(from_numpy(arrays[f"rng.{name}"], np.uint8))
    return own
