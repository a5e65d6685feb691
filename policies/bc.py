"""Behaviour cloning (`learner.algorithm: bc` and `hg_dagger`): supervised regression of the
recorded actions (demonstrations, and for HG-DAgger the operator's takeovers) from the observation.
One file, top to bottom: the agent, its loss and update, acting, serialisation.

Action layout (env format, Box(-1, 1)) as in policies/sac.py: xyz (+3 rotation) (+1 gripper, last).
    Continuous part  a[:, :A] (A = action_dim - 1 with a gripper, else action_dim), regressed by the
                     tanh-Gaussian actor's mean: a_hat = tanh(mean(s)) in (-1, 1)^A (its log-std
                     head is not trained).
    Gripper          a[:, -1] -> index k in {open = 0, stay = 1, close = 2} by the env's thresholds
                     (gripper_to_index); the grasp head's three logits classify it.

Loss on a batch of B recorded (s, a), s = [normalised state, encoder(images)]:
    L = 1/(B A) sum_b,i (tanh(mean(s_b))_i - a_b,i)^2
        + gripper_weight * 1/B sum_b -log softmax(logits(s_b))_{k_b}      (with a gripper)
The MSE is in action units squared (the env's [-1, 1] scale); the cross-entropy in nats. One Adam
optimiser trains the actor, the grasp head and the encoder's trainable part on the whole loss
(unlike SAC, where only the critic loss shapes the encoder). In training, images get DrQ random
shifts; validation and acting never augment. With `max_grad_norm` the gradient is clipped to that
global L2 norm before each step.

Why the same acting networks as SACAgent (obs_norm, encoder, actor, grasp_critic, the checkpoint
format's ACTING_NETWORKS): the actor process runs hilrl.policies.sac.Policy on
BCAgent.actor_tensors() unchanged, and `hilrl eval`, the dashboard and checkpoints read a BC run
like a SAC run. The grasp "critic" here holds classifier logits rather than Q values, but acting
takes the argmax either way. The same seed gives the same initial acting weights as SACAgent.

Serialisation never pickles: networks, optimiser state and RNG state travel as dict[str, ndarray].
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hilrl.policies.encoders import random_shift
from hilrl.policies.sac import (
    Batch,
    Observation,
    UnfittedNormalizationWarning,
    _act,
    _acting_networks,
    _actor_tensors,
    _as_batch,
    _features,
    build_networks,
    gripper_to_index,
    resolve_device,
)
from hilrl.policies.speed import adam, retain_freed_memory
from hilrl.policies.state_arrays import export_state, import_state
from hilrl.transport.sections.algorithm import BCConfig
from hilrl.transport.sections.sac import SACConfig


class BCAgent:
    """The learner's behaviour-cloning agent: SACAgent's acting networks, one optimiser, the loss.

    Args:
        state_dim: S, width of the float32 state observation.
        action_dim: width of the env action (including the gripper dim when has_gripper).
        has_gripper: the last action dim is the gripper, owned by the grasp head.
        config: SACConfig: the networks' shape (hidden_dims, encoder, init), max_grad_norm,
            normalization and grasp_exploration (for act(deterministic=False) only).
        bc: BCConfig: lr and gripper_weight (the schedule fields are the learner's).
        device: "cpu", "cuda[:N]" or "auto".
        seed: seeds network initialisation (on the CPU, as SACAgent) and the update and acting
            random streams.
        cameras: policy camera names, in feature order (empty: a state-only agent).
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        has_gripper: bool,
        config: SACConfig,
        bc: BCConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        cameras: Sequence[str] = (),
    ):
        retain_freed_memory()
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.has_gripper = has_gripper
        self.cameras = tuple(cameras)
        self.config = config
        self.bc = bc
        self.device = resolve_device(device)
        self.continuous_dim = action_dim - 1 if has_gripper else action_dim
        if self.continuous_dim < 1:
            raise ValueError(f"action_dim {action_dim} leaves no continuous dimension")
        self.updates = 0  # calls of update() so far

        # SACAgent's networks from the same seed (its acting networks start alike), without the
        # critic, which BC does not need.
        nets = build_networks(state_dim, self.continuous_dim, has_gripper, config, self.cameras, seed)
        self.obs_norm, self.encoder, self.actor, self.grasp_critic = nets.obs_norm, nets.encoder, nets.actor, nets.grasp_critic
        for net in self._networks().values():
            net.to(self.device)

        self.optimizer = adam([p for _, p in self._parameters()], bc.lr)
        # Two random streams: acting (e.g. an evaluation on the learner) never changes the updates.
        self.update_generator = torch.Generator(device=self.device).manual_seed(seed)
        self.act_generator = torch.Generator(device=self.device).manual_seed(seed + 1)

    def _parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The optimiser's parameters with names, in its order: "actor.<n>", "grasp_critic.<n>",
        the state encoder's as "obs_norm.<n>" (with `state_encoder_dim`), then the image encoder's
        trainable ones as "encoder.<n>"."""
        params = [(f"actor.{n}", p) for n, p in self.actor.named_parameters()]
        if self.grasp_critic is not None:
            params += [(f"grasp_critic.{n}", p) for n, p in self.grasp_critic.named_parameters()]
        params += [(f"obs_norm.{n}", p) for n, p in self.obs_norm.named_parameters()]
        if self.encoder is not None:
            params += [(f"encoder.{n}", p) for n, p in self.encoder.named_parameters() if p.requires_grad]
        return params

    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray, min_std: float = 1e-2) -> None:
        """Fix the input normalisation: mean (S,), std (S,) of the observations (std floored at
        `min_std`). Set once, before training."""
        if np.shape(mean) != (self.state_dim,) or np.shape(std) != (self.state_dim,):
            raise ValueError(f"normalisation statistics must have shape ({self.state_dim},)")
        with torch.no_grad():
            self.obs_norm.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.obs_norm.std.copy_(torch.as_tensor(np.maximum(std, min_std), dtype=torch.float32))

    # ---------------------------------------------------------------- learning

    def augment(self, images: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """DrQ random shift of every camera's batch (B, H, W, 3) uint8, per sample (identity when
        encoder.random_shift_pad_px is 0). Training only."""
        pad = self.config.encoder.random_shift_pad_px
        if pad == 0:
            return dict(images)
        return {name: random_shift(images[name], pad, self.update_generator, channels_last=True) for name in self.cameras}

    def loss(self, batch: Batch, train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The BC loss of `batch` (see the module docstring) and its parts, () tensors.

        batch: tensors on self.device: obs (B, S) float32, action (B, action_dim) float32 (env
            format); with cameras obs_images {camera: (B, H, W, 3) uint8}; other keys ignored.
        train: augment the images (True for update, False for validation).
        Returns (total, {"bc_loss", "bc_action_mse", and with a gripper "bc_gripper_ce",
            "bc_gripper_accuracy" (share of argmax logits equal to the recorded index)}).
        """
        images = batch["obs_images"] if self.encoder is not None else {}
        if train and self.encoder is not None:
            images = self.augment(images)
        features = _features(self.obs_norm, self.encoder, batch["obs"], images)
        action = batch["action"]
        mse = (self.actor.deterministic(features) - action[:, : self.continuous_dim]).pow(2).mean()
        metrics = {"bc_action_mse": mse.detach()}
        total = mse
        if self.grasp_critic is not None:
            logits = self.grasp_critic(features)  # (B, 3)
            target = gripper_to_index(action[:, -1])
            ce = F.cross_entropy(logits, target)
            total = total + self.bc.gripper_weight * ce
            metrics["bc_gripper_ce"] = ce.detach()
            metrics["bc_gripper_accuracy"] = (logits.argmax(dim=-1) == target).float().mean().detach()
        return total, {"bc_loss": total.detach(), **metrics}

    def update(self, batch: Batch) -> dict[str, float]:
        """One Adam step on loss(batch, train=True) -> its metrics as floats.
        Warns (UnfittedNormalizationWarning, once) when the input normalisation was never set."""
        if self.updates == 0 and self.obs_norm.is_identity() and self.config.normalization != "none":
            warnings.warn(
                "BCAgent.update: the input normalisation was never fitted, so states go in unscaled: call "
                "set_obs_normalization(mean, std) with statistics of the demonstrations before the first "
                "update, as the learner process does",
                UnfittedNormalizationWarning, stacklevel=2,
            )
        loss, metrics = self.loss(batch, train=True)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for _, p in self._parameters()], self.config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return _floats(metrics)

    @torch.no_grad()
    def validation_loss(self, batch: Batch) -> dict[str, float]:
        """loss(batch, train=False) on held-out data, weights untouched: "bc_val_loss",
        "bc_val_action_mse" (and "bc_val_gripper_ce", "bc_val_gripper_accuracy")."""
        _, metrics = self.loss(batch, train=False)
        return _floats({"bc_val_" + name.removeprefix("bc_"): value for name, value in metrics.items()})

    # ---------------------------------------------------------------- acting

    @torch.no_grad()
    def act(self, obs: Observation, deterministic: bool = True) -> np.ndarray:
        """obs: the env's observation dict (or, state-only, the state (S,)), single or batched ->
        env action (action_dim,) or (B, action_dim) float32. deterministic: tanh(mean) and the
        grasp argmax (how a BC policy runs); otherwise a tanh-Gaussian sample and epsilon-greedy
        (config.grasp_exploration) on the grasp head. Images are never augmented."""
        state, images, single = _as_batch(obs, self.cameras, self.device)
        features = _features(self.obs_norm, self.encoder, state, images)
        action = _act(self.actor, self.grasp_critic, features, deterministic, self.act_generator,
                      self.config.grasp_exploration)
        out = action.cpu().numpy().astype(np.float32)
        return out[0] if single else out

    # ---------------------------------------------------------------- serialisation

    def _networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"obs_norm": self.obs_norm, "actor": self.actor}
        if self.encoder is not None:
            nets["encoder"] = self.encoder
        if self.grasp_critic is not None:
            nets["grasp_critic"] = self.grasp_critic
        return nets

    def actor_tensors(self) -> dict[str, np.ndarray]:
        """What an actor's Policy loads with every update (float32 by name), as SACAgent's:
        "obs_norm.*", "actor.*", ("grasp_critic.*"), ("encoder.*" but a frozen backbone)."""
        return _actor_tensors(_acting_networks(self.obs_norm, self.encoder, self.actor, self.grasp_critic), static=False)

    def static_actor_tensors(self) -> dict[str, np.ndarray]:
        """The frozen backbone's tensors, sent once (empty without a frozen encoder)."""
        return _actor_tensors(_acting_networks(self.obs_norm, self.encoder, self.actor, self.grasp_critic), static=True)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to resume bit-identically, as arrays by dotted name
        (hilrl.policies.state_arrays): "<net>.<param>" for obs_norm, actor, (encoder),
        (grasp_critic); "optim.bc.<param>.{step,exp_avg,exp_avg_sq}" (Adam state, absent before
        the first step); "rng.update" / "rng.act" (uint8 generator states) and "updates" () int64."""
        arrays = export_state(self._networks(), self._optimizers(), self._generators())
        arrays["updates"] = np.array(self.updates, dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore what state_arrays() returned. Raises ValueError naming the first missing,
        unknown or misshapen entry (nothing is changed then)."""
        own = import_state(arrays, self._networks(), self._optimizers(), self._generators(), {"updates": ()})
        self.updates = int(own["updates"])

    def _optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[tuple[str, nn.Parameter]]]]:
        return {"bc": (self.optimizer, self._parameters())}

    def _generators(self) -> dict[str, torch.Generator]:
        return {"update": self.update_generator, "act": self.act_generator}


def _floats(metrics: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """() tensors -> floats with one device sync (stack, then tolist)."""
    names = list(metrics)
    values = torch.stack([metrics[n].float() for n in names]).tolist()
    return dict(zip(names, values, strict=True))
