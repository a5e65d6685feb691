"""Networks of the SAC/RLPD agent: LayerNorm MLPs, a batched critic ensemble, the tanh-Gaussian
actor and the DQN grasp critic.

Shapes use B for the batch, S for the state width, A for the (continuous) action width and E for the
number of ensemble members. Everything is float32 and device-agnostic.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# Bounds of the actor's log standard deviation (CleanRL's range): exp(-5) ~ 0.007 keeps the
# log-prob finite, exp(2) ~ 7.4 is already uniform after tanh.
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
# `actor_std: clamped` (LeRobot's): std = clamp(exp(head), 1e-5, 10), with the mean and std heads
# initialised uniform in +-0.05, so that every action dimension starts at std ~ 1.
CLAMPED_LOG_STD_MIN = math.log(1e-5)
CLAMPED_LOG_STD_MAX = math.log(10.0)
CLAMPED_HEAD_INIT = 0.05

# `learner.sac.activation`: the hidden layers' nonlinearity (ours ReLU, LeRobot's SiLU).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}
Activation = Literal["relu", "silu"]

# Grasp critic output order (discrete gripper actions).
GRASP_OPEN, GRASP_STAY, GRASP_CLOSE = 0, 1, 2
GRASP_ACTIONS = 3


class ObsNormalizer(nn.Module):
    """What the networks read of the state: the fixed affine input normalisation
    (obs - mean) / std per state dimension, then (with `encoder_dim`) a learned state encoder.

    Robot states mix units and scales (metres of a few centimetres, velocities, newtons); after
    the first layer's LayerNorm, features that are tiny next to the action inputs barely reach the
    critic. The statistics are set once (from demonstrations and early data) and then frozen, so
    the networks never chase a moving input scale. They are buffers: they travel with the weights
    and the checkpoint. Identity until set.

    encoder_dim (`learner.sac.state_encoder_dim`; None: no encoder): Linear(S, D) -> LayerNorm ->
    tanh on the normalised state (LeRobot's state encoder), one shared by every network. Its
    parameters are trained by the critic loss alone (the critic optimiser owns them; the actor and
    grasp critic read its output with the gradient stopped, the critic target reads it without
    gradient: there is no target copy), as the image encoder is; `learner.sac.
    grasp_trains_state_encoder` lets the grasp loss train it too.
    forward: obs (..., S) -> (..., S), or (..., D) with an encoder (`out_dim`).
    """

    def __init__(self, state_dim: int, encoder_dim: int | None = None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))
        self.encoder = (
            nn.Sequential(nn.Linear(state_dim, encoder_dim), nn.LayerNorm(encoder_dim), nn.Tanh())
            if encoder_dim is not None else None
        )
        self.out_dim = state_dim if encoder_dim is None else encoder_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        normalized = (obs - self.mean) / self.std
        return normalized if self.encoder is None else self.encoder(normalized)

    def is_identity(self) -> bool:
        """Whether the statistics were never set (mean 0, std 1 everywhere)."""
        return bool(torch.all(self.mean == 0) and torch.all(self.std == 1))


def _activation_module(activation: Activation) -> nn.Module:
    """A new module for the nonlinearity named `activation` (ValueError naming the choices)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {activation!r}")
    return ACTIVATIONS[activation]()


class MLP(nn.Module):
    """Linear -> LayerNorm -> activation (ReLU or SiLU) for each hidden layer, then an optional
    linear output layer.

    forward: x (..., in_dim) -> (..., out_dim), or (..., hidden_dims[-1]) when out_dim is None.
    """

    def __init__(self, in_dim: int, hidden_dims: list[int], out_dim: int | None = None,
                 activation: Activation = "relu"):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), _activation_module(activation)]
            width = hidden
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EnsembleLinear(nn.Module):
    """E independent linear layers evaluated as one batched matmul.

    Parameters: weight (E, in, out), bias (E, 1, out); initialised per member like nn.Linear
    (uniform in +-1/sqrt(in)).
    forward: x (E, B, in) or (B, in) (shared by all members) -> (E, B, out).
    `members` (k,) long selects a subset of the members: x is then (k, B, in) or (B, in), and the
    output (k, B, out).
    """

    def __init__(self, in_dim: int, out_dim: int, ensemble_size: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if x.dim() == 2:
            # Every member sees the same input: a broadcast view, no copy.
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dim with a separate affine (weight, bias: (E, 1, dim)) per member.

    forward: x (E, B, dim) -> (E, B, dim); `members` as in EnsembleLinear.
    """

    def __init__(self, dim: int, ensemble_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, dim))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), weight)


class EnsembleCritic(nn.Module):
    """E Q-networks Q_e(s, a) as ONE batched network (all parameters have a leading E dim).

    Each member is Linear -> LayerNorm -> activation (ReLU or SiLU) per hidden layer, then
    Linear -> 1, on the input concat(obs, action).
    forward: obs (B, S), action (B, A), members (k,) long or None -> Q (E, B) or (k, B).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: list[int], ensemble_size: int,
                 activation: Activation = "relu"):
        super().__init__()
        self.activation = _activation_module(activation)
        self.ensemble_size = ensemble_size
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        width = obs_dim + action_dim
        for hidden in hidden_dims:
            self.linears.append(EnsembleLinear(width, hidden, ensemble_size))
            self.norms.append(EnsembleLayerNorm(hidden, ensemble_size))
            width = hidden
        self.head = EnsembleLinear(width, 1, ensemble_size)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = self.activation(norm(linear(x, members), members))
        return self.head(x, members).squeeze(-1)


class TanhGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mean(s), std(s))), actions in (-1, 1)^A.

    `std` ("squashed" | "clamped", `learner.sac.actor_std`) sets how the log-std head becomes a
    log standard deviation:
        squashed  tanh into [LOG_STD_MIN, LOG_STD_MAX] (smooth, no dead gradient at a clamp); a
                  head output near 0 gives log_std = -1.5, so the initial std is about 0.22.
        clamped   clamped into [log 1e-5, log 10] (LeRobot's clamp(exp(head), 1e-5, 10)), with both
                  heads initialised uniform in +-CLAMPED_HEAD_INIT: the initial std is about 1.
    forward: obs (B, S) -> mean (B, A), log_std (B, A) (pre-tanh Gaussian).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: list[int],
                 std: Literal["squashed", "clamped"] = "squashed", activation: Activation = "relu"):
        super().__init__()
        if std not in ("squashed", "clamped"):
            raise ValueError(f"std must be 'squashed' or 'clamped', got {std!r}")
        self.std_mode = std
        self.trunk = MLP(obs_dim, hidden_dims, activation=activation)
        self.mean = nn.Linear(self.trunk.out_dim, action_dim)
        self.log_std = nn.Linear(self.trunk.out_dim, action_dim)
        self.init_heads()

    def init_heads(self) -> None:
        """Re-initialise the mean and log-std heads as `std` asks (a no-op for "squashed"); called
        again after a whole-network initialisation such as orthogonal_init."""
        if self.std_mode == "clamped":
            with torch.no_grad():
                for head in (self.mean, self.log_std):
                    head.weight.uniform_(-CLAMPED_HEAD_INIT, CLAMPED_HEAD_INIT)
                    head.bias.uniform_(-CLAMPED_HEAD_INIT, CLAMPED_HEAD_INIT)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        raw = self.log_std(h)
        if self.std_mode == "clamped":
            log_std = raw.clamp(CLAMPED_LOG_STD_MIN, CLAMPED_LOG_STD_MAX)
        else:
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
        return self.mean(h), log_std

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: obs (B, S) -> action (B, A) in (-1, 1), log_prob (B,) (nats).

        log pi(a|s) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2), u the pre-tanh sample;
        the correction uses the stable identity log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).
        """
        mean, log_std = self(obs)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + std * noise
        gaussian_log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), gaussian_log_prob - log_det

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, S) -> tanh(mean) (B, A): the action used for evaluation and deployment."""
        mean, _ = self(obs)
        return torch.tanh(mean)


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights (gain 1) and zero biases for every linear layer of `module`, each
    ensemble member on its own (LeRobot's SAC initialisation; `learner.sac.init: orthogonal`)."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, EnsembleLinear):
                for member in layer.weight:  # (in, out) each
                    nn.init.orthogonal_(member)
                layer.bias.zero_()


class GraspCritic(nn.Module):
    """DQN over the discrete gripper actions {open, stay, close} = indices 0, 1, 2.

    forward: obs (B, S) -> Q (B, 3).
    """

    def __init__(self, obs_dim: int, hidden_dims: list[int], activation: Activation = "relu"):
        super().__init__()
        self.net = MLP(obs_dim, hidden_dims, GRASP_ACTIONS, activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
