"""Soft actor-critic in the RLPD style, with a DQN grasp critic for the gripper. One file, top to
bottom: action layout, acting, the three losses, target updates, serialisation, the actor's Policy.

Action layout (env format, Box(-1, 1)): xyz (+3 rotation) (+1 gripper, last).
    Continuous part  a[:, :A] (A = action_dim - 1 with a gripper, else action_dim): tanh-Gaussian
                     actor and an ensemble of E critics Q_e(s, a_cont).
    Gripper          a[:, -1]: the env closes at >= 0.5, opens at <= -0.5 and keeps its command in
                     between. The grasp critic is a DQN over three discrete actions
                     {open = 0, stay = 1, close = 2}; a stored env value g maps to an index by the
                     same thresholds and an index maps back to -1.0 / 0.0 / +1.0.

Losses (per critic step; `critic_updates_per_actor_update` critic steps, then one actor step):
    critic   y = r + discount * (1 - terminated) * (min_{e in subset} Q'_e(s', a') - alpha * log pi(a'|s')),
             a' ~ pi(s'), the entropy term only with `backup_entropy` (the default; RLPD leaves it
             out);  L = mean_e,b (Q_e(s, a) - y)^2.
             Only `terminated` masks the bootstrap: a time limit (truncation) still bootstraps from
             the stored final observation. With `n_step` n > 1 a row is up to n steps of one
             episode (m of them, `bootstrap_steps`): r is their discounted reward sum, s' the
             observation after them, and discount becomes discount^m (ReplayBuffer.sample).
    grasp    double DQN: y = r - penalty * switched + discount * (1 - terminated) *
             Q'_g(s', argmax_k Q_g(s', k));  L = mean_b (Q_g(s, k_taken) - y)^2
             (n-step rows as above; the penalty is the first step's).
    actor    L = mean_b (alpha * log pi(a|s) - min_e Q_e(s, a)),  a ~ pi(s) (reparameterised);
             mean_e instead of min_e with `actor_q: mean` (RLPD's).
             With `bc_weight` w > 0, plus
                 w * mean_b |Q| * sum_{b expert, kept} |mu(s) - a_b|^2 / (A * n_expert),
             a behaviour-cloning pull of the deterministic action mu(s) = tanh(mean) towards the
             demonstrated or operator's action, on the expert rows the Q-filter keeps
             (Q(s, a_b) >= Q(s, a), `bc_q_filter`).
    alpha    L = mean_b (-alpha * (log pi(a|s) + target_entropy)),  learned as log_alpha;
             target_entropy = -n/2, n every action dim, the gripper's included (or the continuous
             ones only, `target_entropy_dims: continuous`).
With `max_grad_norm` (40 by default) each network's gradient (critics with the encoders, grasp
critic, actor) is clipped to that global L2 norm before its step.
Target networks (critic ensemble and grasp critic) follow by Polyak averaging with rate tau after
every critic step.

State features. Every network reads obs_norm(state): the normalised state, then (with
`state_encoder_dim`, 256 by default) ONE shared Linear -> LayerNorm -> tanh state encoder, trained by
the critic loss only (and the grasp loss too with `grasp_trains_state_encoder`, LeRobot's), read by
the other networks with the gradient stopped and by the critic target without gradient (LeRobot's
layout, the same as the image encoder's below).

Images (an agent built with cameras). Every network reads s = [obs_norm(state), encoder(images)],
with ONE MultiCameraEncoder shared by actor, critics and grasp critic (DrQ-v2's layout):
    - the critic loss trains the encoder's trainable part (the critic optimiser owns it); the
      actor and the grasp critic read its features with the gradient stopped;
    - s' comes from the same (online) encoder without gradient; the target critics are heads only,
      there is no target encoder;
    - in training, obs and next-obs images get independent DrQ random shifts (per sample, on the
      learner's device); acting never augments;
    - a frozen backbone runs once per batch (obs and next obs) and every network reads its
      feature maps through the trainable heads.

Serialisation never pickles: networks, optimiser state and RNG state travel as dict[str, ndarray].
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hilrl.policies.encoders import MultiCameraEncoder, random_shift
from hilrl.policies.networks import (
    GRASP_ACTIONS,
    GRASP_CLOSE,
    GRASP_OPEN,
    GRASP_STAY,
    EnsembleCritic,
    GraspCritic,
    ObsNormalizer,
    TanhGaussianActor,
    orthogonal_init,
)
from hilrl.policies.speed import adam, compile_forward, retain_freed_memory
from hilrl.policies.state_arrays import export_state, from_numpy, import_state, to_numpy
from hilrl.transport.action import GRIPPER_THRESHOLD
from hilrl.transport.checkpoint import ACTING_NETWORKS
from hilrl.transport.sections.sac import SACConfig

Batch = Mapping[str, torch.Tensor]


class UnfittedNormalizationWarning(UserWarning):
    """SACAgent.update ran before set_obs_normalization: the inputs are not normalised."""


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda when present, else cpu; anything else as torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def gripper_to_index(g: torch.Tensor) -> torch.Tensor:
    """Env gripper values (B,) float -> grasp critic indices (B,) long (open 0, stay 1, close 2)."""
    # torch.where, not boolean-mask assignment: no host sync on a GPU.
    stay_or_open = torch.where(g <= -GRIPPER_THRESHOLD, GRASP_OPEN, GRASP_STAY)
    return torch.where(g >= GRIPPER_THRESHOLD, GRASP_CLOSE, stay_or_open).long()


def index_to_gripper(index: torch.Tensor) -> torch.Tensor:
    """Grasp critic indices (B,) long -> env gripper values (B,) float32: -1.0, 0.0 or +1.0."""
    return index.to(torch.float32) - 1.0


Observation = np.ndarray | Mapping[str, np.ndarray]


def _as_batch(
    obs: Observation, cameras: Sequence[str], device: torch.device
) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """An env observation, single or batched -> (state (B, S) float32, {camera: (B, H, W, 3)
    uint8}, whether the input was a single observation), on `device`.

    obs: the env's dict {"state": (S,), camera: (H, W, 3) uint8, ...} (or the same with a leading
    batch axis), or for a state-only agent the state array alone. Cameras not in `cameras` are
    ignored; a missing one is a KeyError naming it.
    """
    state = obs["state"] if isinstance(obs, Mapping) else obs
    array = np.array(state, dtype=np.float32)  # a copy: wire buffers are read-only
    single = array.ndim == 1
    images: dict[str, torch.Tensor] = {}
    for name in cameras:
        if not isinstance(obs, Mapping) or name not in obs:
            raise KeyError(f"the observation has no image for camera {name!r}")
        image = np.asarray(obs[name])
        if image.dtype != np.uint8:
            raise TypeError(f"camera {name!r}: images must be uint8, got {image.dtype}")
        image = image[None] if single else image
        images[name] = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    state_t = torch.from_numpy(array.reshape(1, -1) if single else array).to(device)
    return state_t, images, single


def _features(
    obs_norm: ObsNormalizer, encoder: MultiCameraEncoder | None, state: torch.Tensor, images: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """What the MLPs read: normalised state (B, S), then the cameras' features when there is an
    encoder -> (B, S + n_cams * feature_dim)."""
    if encoder is None:
        return obs_norm(state)
    return torch.cat([obs_norm(state), encoder(images)], dim=-1)


def _act(
    actor: TanhGaussianActor,
    grasp_critic: GraspCritic | None,
    obs: torch.Tensor,
    deterministic: bool,
    generator: torch.Generator,
    grasp_epsilon: float,
) -> torch.Tensor:
    """obs (B, S) -> env actions (B, action_dim). Shared by SACAgent.act and Policy.act.

    Deterministic: tanh(mean) and the grasp critic's argmax. Otherwise: a tanh-Gaussian sample and
    epsilon-greedy on the grasp critic.
    """
    if deterministic:
        action = actor.deterministic(obs)
    else:
        action, _ = actor.sample(obs, generator)
    if grasp_critic is None:
        return action
    index = grasp_critic(obs).argmax(dim=-1)
    if not deterministic and grasp_epsilon > 0:
        b = obs.shape[0]
        explore = torch.rand(b, generator=generator, device=obs.device) < grasp_epsilon
        random_index = torch.randint(GRASP_ACTIONS, (b,), generator=generator, device=obs.device)
        index = torch.where(explore, random_index, index)
    return torch.cat([action, index_to_gripper(index).unsqueeze(-1)], dim=-1)


def _acting_networks(
    obs_norm: ObsNormalizer, encoder: MultiCameraEncoder | None, actor: TanhGaussianActor, grasp_critic: GraspCritic | None
) -> dict[str, nn.Module]:
    """The modules an actor runs, by tensor-name prefix (the same for SACAgent and Policy), named
    from the checkpoint format's ACTING_NETWORKS, so what a checkpoint's reader takes for the
    acting policy (hilrl.transport.checkpoint.acting_tensors) is what is defined here."""
    obs_norm_name, encoder_name, actor_name, grasp_name = ACTING_NETWORKS
    nets: dict[str, nn.Module] = {obs_norm_name: obs_norm}
    if encoder is not None:
        nets[encoder_name] = encoder
    nets[actor_name] = actor
    if grasp_critic is not None:
        nets[grasp_name] = grasp_critic
    return nets


def _is_static(prefix: str, name: str, nets: Mapping[str, nn.Module]) -> bool:
    """Whether tensor `prefix.name` is part of a frozen backbone (never changes in training)."""
    encoder = nets.get("encoder")
    return prefix == "encoder" and isinstance(encoder, MultiCameraEncoder) and encoder.frozen and ".backbone." in f".{name}"


def _actor_tensors(nets: Mapping[str, nn.Module], static: bool) -> dict[str, np.ndarray]:
    """float32 copies of the acting networks' tensors by "prefix.name": the frozen backbone's
    (static=True) or all the others (static=False)."""
    return {
        f"{prefix}.{name}": to_numpy(t).astype(np.float32, copy=False)
        for prefix, net in nets.items()
        for name, t in net.state_dict().items()
        if _is_static(prefix, name, nets) == static
    }


class Networks(NamedTuple):
    """An agent's networks as `build_networks` makes them (encoder None without cameras,
    grasp_critic None without a gripper)."""

    obs_norm: ObsNormalizer
    encoder: MultiCameraEncoder | None
    actor: TanhGaussianActor
    critic: EnsembleCritic
    grasp_critic: GraspCritic | None


def build_networks(state_dim: int, continuous_dim: int, has_gripper: bool, config: SACConfig,
                   cameras: Sequence[str], seed: int) -> Networks:
    """The networks of an agent, on the CPU under a private seed, always in this order: the same
    seed gives the same weights on every device and to every agent that builds them (a BC agent
    drops the critic, and its acting networks start as SAC's), and the global torch RNG is left
    alone. `config.init == "orthogonal"` re-initialises actor, critic and grasp critic (then the actor's
    heads as `config.actor_std` asks)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hidden = list(config.hidden_dims)
        obs_norm = ObsNormalizer(state_dim, config.state_encoder_dim)
        encoder = MultiCameraEncoder(cameras, config.encoder) if cameras else None
        feature_dim = obs_norm.out_dim + (encoder.out_dim if encoder is not None else 0)
        actor = TanhGaussianActor(feature_dim, continuous_dim, hidden, config.actor_std, config.activation)
        critic = EnsembleCritic(feature_dim, continuous_dim, hidden, config.ensemble_size, config.activation)
        grasp_critic = GraspCritic(feature_dim, hidden, config.activation) if has_gripper else None
        if config.init == "orthogonal":
            for net in (actor, critic, grasp_critic):
                if net is not None:
                    orthogonal_init(net)
            actor.init_heads()
    return Networks(obs_norm, encoder, actor, critic, grasp_critic)


class SACAgent:
    """The learner's agent: networks, optimisers, update and (exploratory or greedy) acting.

    Args:
        state_dim: S, width of the float32 state observation.
        action_dim: width of the env action (including the gripper dim when has_gripper).
        has_gripper: the last action dim is the gripper, owned by the grasp critic.
        config: SACConfig.
        device: "cpu", "cuda[:N]" or "auto".
        seed: seeds network initialisation (device-independent: built on the CPU) and the update
            and acting random streams.
        cameras: policy camera names, in the order their features are concatenated (empty: a
            state-only agent). With cameras the agent builds `config.encoder` (see "Images" in the
            module docstring) and reads its backbone weights file when one is configured.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        has_gripper: bool,
        config: SACConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        cameras: Sequence[str] = (),
    ):
        retain_freed_memory()
        self.state_dim = state_dim
        self.cameras = tuple(cameras)
        self.action_dim = action_dim
        self.has_gripper = has_gripper
        self.config = config
        self.device = resolve_device(device)
        self.continuous_dim = action_dim - 1 if has_gripper else action_dim
        if self.continuous_dim < 1:
            raise ValueError(f"action_dim {action_dim} leaves no continuous dimension")
        entropy_dims = self.continuous_dim + (1 if has_gripper and config.target_entropy_dims == "all" else 0)
        self.target_entropy = config.target_entropy if config.target_entropy is not None else -entropy_dims / 2
        self.subsample = config.ensemble_subsample or config.ensemble_size
        self.updates = 0  # calls of update() so far

        nets = build_networks(state_dim, self.continuous_dim, has_gripper, config, self.cameras, seed)
        self.obs_norm, self.encoder, self.actor, self.critic, self.grasp_critic = nets
        self.critic_target = copy.deepcopy(self.critic)
        self.grasp_critic_target = copy.deepcopy(self.grasp_critic)
        if config.compile_critics:
            compile_forward(self.critic, self.device)
            compile_forward(self.critic_target, self.device)
        for net in (self.obs_norm, self.encoder, self.actor, self.critic, self.critic_target,
                    self.grasp_critic, self.grasp_critic_target):
            if net is not None:
                net.to(self.device)
        for target in (self.critic_target, self.grasp_critic_target):
            if target is not None:
                target.requires_grad_(False)
        self.log_alpha = nn.Parameter(
            torch.tensor(math.log(config.init_temperature), dtype=torch.float32, device=self.device)
        )

        self.actor_optimizer = adam(self.actor.parameters(), config.actor_lr)
        # The critic loss trains the encoder (its trainable part): the critic optimiser owns it.
        self.critic_optimizer = adam([p for _, p in self._critic_parameters()], config.critic_lr)
        self.temperature_optimizer = adam([self.log_alpha], config.temperature_lr)
        self.grasp_optimizer = (
            adam([p for _, p in self._grasp_parameters()], config.grasp_lr) if has_gripper else None
        )

        # Two random streams, so that acting (on the learner, e.g. for evaluation) never changes
        # the sequence of updates.
        self.update_generator = torch.Generator(device=self.device).manual_seed(seed)
        self.act_generator = torch.Generator(device=self.device).manual_seed(seed + 1)

    def _critic_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The critic optimiser's parameters with names, in its order: the critic's, then the
        state encoder's as "obs_norm.<name>" (with `state_encoder_dim`) and the image encoder's
        trainable ones as "encoder.<name>"."""
        params = list(self.critic.named_parameters())
        params += [(f"obs_norm.{n}", p) for n, p in self.obs_norm.named_parameters()]
        if self.encoder is not None:
            params += [(f"encoder.{n}", p) for n, p in self.encoder.named_parameters() if p.requires_grad]
        return params

    def _grasp_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The grasp optimiser's parameters with names, in its order: the grasp critic's, then
        (with `grasp_trains_state_encoder`) the state encoder's as "obs_norm.<name>", which the
        critic optimiser also holds (each with its own Adam state, as LeRobot's optimisers)."""
        params = list(self.grasp_critic.named_parameters())
        if self.config.grasp_trains_state_encoder:
            params += [(f"obs_norm.{n}", p) for n, p in self.obs_norm.named_parameters()]
        return params

    @property
    def alpha(self) -> torch.Tensor:
        """Entropy temperature, () tensor."""
        return self.log_alpha.exp()

    def set_obs_normalization(self, mean: np.ndarray, std: np.ndarray, min_std: float = 1e-2) -> None:
        """Fix the input normalisation: mean (S,), std (S,) of the observations (std floored at
        `min_std`, so a constant feature is not blown up). Set once, before training."""
        if np.shape(mean) != (self.state_dim,) or np.shape(std) != (self.state_dim,):
            raise ValueError(f"normalisation statistics must have shape ({self.state_dim},)")
        with torch.no_grad():
            self.obs_norm.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.obs_norm.std.copy_(torch.as_tensor(np.maximum(std, min_std), dtype=torch.float32))

    # ---------------------------------------------------------------- acting

    @torch.no_grad()
    def act(self, obs: Observation, deterministic: bool) -> np.ndarray:
        """obs: the env's observation dict (or, state-only, the state (S,)), single or batched ->
        env action (action_dim,) or (B, action_dim) float32.

        deterministic=True is for evaluation and deployment (tanh(mean), grasp argmax). Images
        are never augmented here.
        """
        state, images, single = _as_batch(obs, self.cameras, self.device)
        features = _features(self.obs_norm, self.encoder, state, images)
        action = _act(self.actor, self.grasp_critic, features, deterministic, self.act_generator,
                      self.config.grasp_exploration)
        out = action.cpu().numpy().astype(np.float32)
        return out[0] if single else out

    # ---------------------------------------------------------------- learning

    def update(self, batch: Batch | Sequence[Batch]) -> dict[str, float]:
        """One update: `critic_updates_per_actor_update` critic (and grasp critic) steps, then one
        actor and temperature step.

        batch: a dict of tensors on self.device,
            obs (B, S) float32, action (B, action_dim) float32 (env format), reward (B,) float32,
            terminated (B,) float32 or bool, next_obs (B, S) float32, gripper_switched (B,) bool
            (only read when has_gripper); with cameras also obs_images, next_obs_images
            {camera: (B, H, W, 3) uint8}; with `bc_weight` > 0 also expert (B,) bool; n-step rows
            also bootstrap_steps (B,) float32 (their steps m: the bootstrap is discounted by
            discount ** m); other keys are ignored (e.g. truncated).
            Or a sequence of such dicts, one per critic step (fresh data per step as in HIL-SERL);
            the actor step uses the last. A single dict is reused for every critic step (with
            fresh augmentation each time).
        Returns metrics (floats): critic_loss, q_mean, td_error_abs, grasp_loss (averaged over the
            critic steps), actor_loss, temperature, entropy; with `bc_weight` > 0 also bc_loss
            and bc_rows (the share of the actor's batch the BC term counted).
        Warns (UnfittedNormalizationWarning, once) when the input normalisation was never set.
        """
        if self.updates == 0 and self.obs_norm.is_identity() and self.config.normalization != "none":
            warnings.warn(
                "SACAgent.update: the input normalisation was never fitted, so states go in unscaled: call "
                "set_obs_normalization(mean, std) with statistics of the observations (demos and early data) "
                "before the first update, as the learner process does",
                UnfittedNormalizationWarning, stacklevel=2,
            )
        k = self.config.critic_updates_per_actor_update
        batches = [batch] * k if isinstance(batch, Mapping) else list(batch)
        if len(batches) != k:
            raise ValueError(f"got {len(batches)} batches, expected critic_updates_per_actor_update = {k}")

        critic_metrics = []
        for b in batches:
            features, next_features = self.batch_features(b)
            step = self._critic_step(b, features, next_features)
            if self.has_gripper:
                step["grasp_loss"] = self._grasp_step(b, self._grasp_features(b, features), next_features)
            self._update_targets()
            critic_metrics.append(step)
        metrics = {name: torch.stack([m[name] for m in critic_metrics]).mean() for name in critic_metrics[0]}
        # The last batch's features, from the encoder as it was before that critic step (as in
        # DrQ-v2): recomputing them would cost a second encoder pass for no measurable gain.
        metrics.update(self._actor_temperature_step(features.detach(), batches[-1]))
        self.updates += 1
        # One device sync for all metrics.
        names = list(metrics)
        values = torch.stack([metrics[n].detach().float() for n in names]).tolist()
        return dict(zip(names, values, strict=True))

    def augment(self, images: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """DrQ random shift of every camera's batch (B, H, W, 3) uint8, per sample, on the images'
        device; identity when encoder.random_shift_pad_px is 0. Training only: acting never
        augments."""
        pad = self.config.encoder.random_shift_pad_px
        if pad == 0:
            return dict(images)
        return {name: random_shift(images[name], pad, self.update_generator, channels_last=True) for name in self.cameras}

    def batch_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """What the MLPs read for obs and next_obs: (B, S [+ n_cams * feature_dim]) each.

        State-only: the normalised (with `state_encoder_dim`, encoded) states. With cameras: that,
        then the encoder's
        features of independently augmented images. `features` carries the graph into the
        encoders' trainable parts (the critic loss trains them); `next_features` has no graph (they
        feed targets only). A frozen backbone runs once per batch for obs and once for next_obs;
        its feature maps are shared by every network through the trainable heads.
        """
        state = self.obs_norm(batch["obs"])
        with torch.no_grad():
            next_state = self.obs_norm(batch["next_obs"])
        if self.encoder is None:
            return state, next_state
        images, next_images = self.augment(batch["obs_images"]), self.augment(batch["next_obs_images"])
        if self.encoder.frozen:
            encoded = self.encoder.embed(self.encoder.encode_frozen(images))
            with torch.no_grad():
                next_encoded = self.encoder.embed(self.encoder.encode_frozen(next_images))
        else:
            encoded = self.encoder(images)
            with torch.no_grad():
                next_encoded = self.encoder(next_images)
        return torch.cat([state, encoded], dim=-1), torch.cat([next_state, next_encoded], dim=-1)

    def _grasp_features(self, batch: Batch, features: torch.Tensor) -> torch.Tensor:
        """What the grasp critic's loss reads of obs: the critic step's features with the gradient
        stopped (only the critic loss shapes the encoders), or with `grasp_trains_state_encoder`
        the state part encoded again, with its graph, by the state encoder as the critic step
        left it (LeRobot's discrete critic runs the shared encoder after the critic's step too);
        image features stay detached."""
        if not self.config.grasp_trains_state_encoder:
            return features.detach()
        state = self.obs_norm(batch["obs"])
        return torch.cat([state, features[:, state.shape[-1]:].detach()], dim=-1)

    def _continuous(self, action: torch.Tensor) -> torch.Tensor:
        """Env actions (B, action_dim) -> the critic's continuous part (B, A)."""
        return action[:, : self.continuous_dim]

    def sample_members(self) -> torch.Tensor | None:
        """Target critics for the min: `ensemble_subsample` distinct members drawn at random,
        (k,) long; None (all members) without subsampling."""
        if self.subsample >= self.config.ensemble_size:
            return None
        perm = torch.randperm(
            self.config.ensemble_size, generator=self.update_generator, device=self.device
        )
        return perm[: self.subsample]

    def executed(self, action: torch.Tensor, base_action: torch.Tensor | None) -> torch.Tensor:
        """The continuous action (B, A) the env runs for the actor's `action`: the action itself;
        a residual agent (hilrl.policies.residual) adds it to `base_action`, the frozen base
        policy's, and clips. The critics always score executed actions."""
        return action

    @torch.no_grad()
    def next_value(self, next_features: torch.Tensor, next_base_action: torch.Tensor | None = None) -> torch.Tensor:
        """Soft value of the next observation for the critic target, (B,):
        min over (subsampled) target critics of Q'(s', a'), a' ~ pi(s') [- alpha log pi]
        (a' executed: see `executed`)."""
        next_action, next_log_prob = self.actor.sample(next_features, self.update_generator)
        next_action = self.executed(next_action, next_base_action)
        q = self.critic_target(next_features, next_action, self.sample_members()).min(dim=0).values
        if self.config.backup_entropy:
            q = q - self.alpha * next_log_prob
        return q

    def _next_features(self, batch: Batch, next_features: torch.Tensor | None) -> torch.Tensor:
        if next_features is not None:
            return next_features
        if self.encoder is not None:
            raise ValueError("an image agent needs next_features (from batch_features)")
        return self.obs_norm(batch["next_obs"])

    @torch.no_grad()
    def compute_critic_target(self, batch: Batch, next_features: torch.Tensor | None = None) -> torch.Tensor:
        """y = r + discount * (1 - terminated) * next_value(s'), (B,). Truncation is not read:
        a truncated transition bootstraps like any other. next_features: from batch_features
        (None: the normalised next_obs of a state-only agent)."""
        not_done = 1.0 - batch["terminated"].float()
        next_v = self.next_value(self._next_features(batch, next_features), batch.get("next_base_action"))
        return batch["reward"] + self._bootstrap_discount(batch) * not_done * next_v

    def _bootstrap_discount(self, batch: Batch) -> float | torch.Tensor:
        """The factor on the bootstrapped value: discount, or discount ** m (B,) for n-step rows
        (their `bootstrap_steps` m, from ReplayBuffer.sample; their reward is already the
        discounted sum of m rewards)."""
        steps = batch.get("bootstrap_steps")
        return self.config.discount if steps is None else self.config.discount ** steps

    def _critic_step(self, batch: Batch, features: torch.Tensor, next_features: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self.compute_critic_target(batch, next_features)  # (B,)
        q = self.critic(features, self._continuous(batch["action"]))  # (E, B)
        td = q - target
        loss = td.pow(2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(self.critic_optimizer)
        self.critic_optimizer.step()
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean(), "td_error_abs": td.detach().abs().mean()}

    @torch.no_grad()
    def compute_grasp_target(self, batch: Batch, next_features: torch.Tensor | None = None) -> torch.Tensor:
        """Double DQN target (B,): the online grasp critic picks the next action, the target one
        values it; each gripper switch costs grasp_switch_penalty. next_features as for
        compute_critic_target."""
        next_features = self._next_features(batch, next_features)
        best_next = self.grasp_critic(next_features).argmax(dim=-1, keepdim=True)
        next_q = self.grasp_critic_target(next_features).gather(-1, best_next).squeeze(-1)
        reward = batch["reward"] - self.config.grasp_switch_penalty * batch["gripper_switched"].float()
        not_done = 1.0 - batch["terminated"].float()
        return reward + self._bootstrap_discount(batch) * not_done * next_q

    def _grasp_step(self, batch: Batch, features: torch.Tensor, next_features: torch.Tensor) -> torch.Tensor:
        target = self.compute_grasp_target(batch, next_features)
        taken = gripper_to_index(batch["action"][:, -1])
        q = self.grasp_critic(features).gather(-1, taken.unsqueeze(-1)).squeeze(-1)
        loss = F.mse_loss(q, target)
        self.grasp_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(self.grasp_optimizer)
        self.grasp_optimizer.step()
        return loss.detach()

    def _actor_temperature_step(self, features: torch.Tensor, batch: Batch | None = None) -> dict[str, torch.Tensor]:
        """features: (B, feature_dim) without graph (the actor's gradient stops at the encoder);
        batch: the batch they came from (its base_action for a residual agent; its action and
        expert rows for the behaviour-cloning term); None: neither."""
        batch = batch if batch is not None else {}
        action, log_prob = self.actor.sample(features, self.update_generator)
        action = self.executed(action, batch.get("base_action"))
        # The actor's loss must not leave gradients on the critic (its optimiser zeroes them
        # anyway, but skipping them saves the work).
        self.critic.requires_grad_(False)
        qs = self.critic(features, action)  # (E, B)
        # SAC (and LeRobot): the min over the ensemble; `actor_q: mean` as in RLPD.
        q = self._ensemble_value(qs)
        alpha = self.alpha.detach()
        actor_loss = (alpha * log_prob - q).mean()
        metrics: dict[str, torch.Tensor] = {}
        if self.config.bc_weight > 0:
            if "expert" not in batch:
                raise ValueError("learner.sac.bc_weight > 0 needs the batch's expert rows: an 'expert' (B,) bool "
                                 "tensor (hilrl.learner.replay.MixedSampler.sample and to_torch give it)")
            bc, metrics["bc_rows"] = self._bc_loss(features, batch, q.detach())
            actor_loss = actor_loss + self.config.bc_weight * q.detach().abs().mean() * bc
            metrics["bc_loss"] = bc.detach()
        self.critic.requires_grad_(True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self._clip(self.actor_optimizer)
        self.actor_optimizer.step()

        temperature_loss = (-self.alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.temperature_optimizer.zero_grad(set_to_none=True)
        temperature_loss.backward()
        self.temperature_optimizer.step()
        return {
            "actor_loss": actor_loss.detach(),
            "temperature": self.alpha.detach(),
            "entropy": -log_prob.detach().mean(),
            **metrics,
        }

    def _ensemble_value(self, qs: torch.Tensor) -> torch.Tensor:
        """The actor's reading of the ensemble's Q values (E, B) -> (B,): mean or min (`actor_q`)."""
        return qs.mean(dim=0) if self.config.actor_q == "mean" else qs.min(dim=0).values

    def _bc_loss(self, features: torch.Tensor, batch: Batch, policy_q: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The behaviour-cloning term of the actor loss (`bc_weight`) and the share of the batch it
        counted, both scalars.

        BC = sum over counted rows of mean_i (a_det,i - a_expert,i)^2 / number of expert rows:
        a_det the actor's deterministic (executed) action, a_expert the batch's continuous action;
        counted rows are the expert ones, Q-filtered with `bc_q_filter` (the critics' value of
        the expert's action >= policy_q, their value of the actor's sampled action). A batch
        without expert rows gives 0.
        """
        expert = batch["expert"]
        n_expert = expert.sum()
        deterministic = self.executed(self.actor.deterministic(features), batch.get("base_action"))
        expert_action = self._continuous(batch["action"])
        error = (deterministic - expert_action).pow(2).mean(dim=-1)  # (B,)
        counted = expert.float()
        if self.config.bc_q_filter:
            with torch.no_grad():
                expert_q = self._ensemble_value(self.critic(features, expert_action))
            counted = counted * (expert_q >= policy_q).float()
        bc = (error * counted).sum() / n_expert.clamp(min=1)
        return bc, counted.mean()

    def _clip(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the gradient of `optimizer`'s parameters to `max_grad_norm` (no-op when null)."""
        if self.config.max_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm, foreach=True)

    @torch.no_grad()
    def _update_targets(self) -> None:
        """Polyak: target <- target + tau * (online - target), every pair in one foreach call
        (the same arithmetic as one lerp_ per tensor, without a dispatch per tensor)."""
        pairs = [(self.critic, self.critic_target)]
        if self.has_gripper:
            pairs.append((self.grasp_critic, self.grasp_critic_target))
        online = [p for net, _ in pairs for p in net.parameters()]
        target = [p for _, net in pairs for p in net.parameters()]
        torch._foreach_lerp_(target, online, self.config.tau)

    # ---------------------------------------------------------------- serialisation

    def _networks(self) -> dict[str, nn.Module]:
        nets = {"obs_norm": self.obs_norm, "actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}
        if self.encoder is not None:
            nets["encoder"] = self.encoder
        if self.has_gripper:
            nets["grasp_critic"] = self.grasp_critic
            nets["grasp_critic_target"] = self.grasp_critic_target
        return nets

    def _optimizers(self) -> dict[str, tuple[torch.optim.Optimizer, list[tuple[str, nn.Parameter]]]]:
        """name -> (optimizer, its parameters with names, in the optimizer's order)."""
        opts = {
            "actor": (self.actor_optimizer, list(self.actor.named_parameters())),
            "critic": (self.critic_optimizer, self._critic_parameters()),
            "temperature": (self.temperature_optimizer, [("log_alpha", self.log_alpha)]),
        }
        if self.has_gripper:
            opts["grasp_critic"] = (self.grasp_optimizer, self._grasp_parameters())
        return opts

    def actor_tensors(self) -> dict[str, np.ndarray]:
        """What an actor needs to act and what changes with training, float32 by name:
        "obs_norm.*", "actor.*", (with a gripper) "grasp_critic.*" and (with cameras) the
        encoder's "encoder.*" except a frozen backbone, which is in static_actor_tensors.
        Load with Policy.load_tensors."""
        return _actor_tensors(_acting_networks(self.obs_norm, self.encoder, self.actor, self.grasp_critic), static=False)

    def static_actor_tensors(self) -> dict[str, np.ndarray]:
        """The frozen backbone's tensors ("encoder.*backbone*"), which never change: an actor needs
        them once, not with every update (empty without a frozen encoder)."""
        return _actor_tensors(_acting_networks(self.obs_norm, self.encoder, self.actor, self.grasp_critic), static=True)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to resume bit-identically, as arrays by dotted name
        (hilrl.policies.state_arrays): "<net>.<param>" for actor, critic, critic_target (and
        grasp_critic, grasp_critic_target), "log_alpha" (), "optim.<opt>.<param>.{step,exp_avg,
        exp_avg_sq}" (Adam state; absent before an optimizer's first step), "rng.update" /
        "rng.act" (uint8 generator states) and "updates" () int64."""
        arrays = export_state(self._networks(), self._optimizers(), self._generators())
        arrays["log_alpha"] = to_numpy(self.log_alpha)
        arrays["updates"] = np.array(self.updates, dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore what state_arrays() returned. Raises ValueError naming the first missing,
        unknown or misshapen entry (nothing is changed then)."""
        own = import_state(arrays, self._networks(), self._optimizers(), self._generators(),
                           {"log_alpha": (), "updates": ()})
        with torch.no_grad():
            self.log_alpha.copy_(from_numpy(own["log_alpha"]))
        self.updates = int(own["updates"])

    def _generators(self) -> dict[str, torch.Generator]:
        return {"update": self.update_generator, "act": self.act_generator}


class Policy:
    """Inference-only policy for the actor process: the tanh-Gaussian actor, (with a gripper) the
    grasp critic and (with cameras) the image encoder, loaded from SACAgent.actor_tensors() and,
    once, SACAgent.static_actor_tensors().

    Args:
        state_dim, action_dim, has_gripper, config, cameras: as for SACAgent. The encoder's
            weights file is never read here: every tensor comes from the learner.
        device: inference device ("cpu" by default: the actor's machine may have no GPU).
        seed: seeds exploration (action noise and the gripper's epsilon-greedy draw).
        grasp_epsilon: gripper exploration rate of act(deterministic=False); None: the config's
            `grasp_exploration`.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        has_gripper: bool,
        config: SACConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
        grasp_epsilon: float | None = None,
        cameras: Sequence[str] = (),
    ):
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.has_gripper = has_gripper
        self.cameras = tuple(cameras)
        self.device = resolve_device(device)
        self.grasp_epsilon = config.grasp_exploration if grasp_epsilon is None else grasp_epsilon
        continuous_dim = action_dim - 1 if has_gripper else action_dim
        if continuous_dim < 1:
            raise ValueError(f"action_dim {action_dim} leaves no continuous dimension")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hidden = list(config.hidden_dims)
            self.obs_norm = ObsNormalizer(state_dim, config.state_encoder_dim).to(self.device)
            self.encoder = (
                MultiCameraEncoder(self.cameras, config.encoder, read_weights=False).to(self.device).eval()
                if self.cameras else None
            )
            feature_dim = self.obs_norm.out_dim + (self.encoder.out_dim if self.encoder is not None else 0)
            self.actor = TanhGaussianActor(feature_dim, continuous_dim, hidden, config.actor_std,
                                           config.activation).to(self.device).eval()
            self.grasp_critic = (
                GraspCritic(feature_dim, hidden, config.activation).to(self.device).eval() if has_gripper else None
            )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._nets = _acting_networks(self.obs_norm, self.encoder, self.actor, self.grasp_critic)
        self._static_names = {
            f"{p}.{n}" for p, net in self._nets.items() for n in net.state_dict() if _is_static(p, n, self._nets)
        }
        # Whether the frozen backbone's tensors have arrived (always True without one).
        self.static_loaded = not self._static_names

    def load_tensors(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Load SACAgent.actor_tensors(), plus static_actor_tensors() the first time (later they
        may be left out; when given, they are loaded again). Raises ValueError on a missing,
        unknown or misshapen tensor (before changing anything)."""
        expected = {f"{p}.{n}": t for p, net in self._nets.items() for n, t in net.state_dict().items()}
        optional = self._static_names if self.static_loaded else set()
        missing = sorted(set(expected) - set(tensors) - optional)
        unknown = sorted(set(tensors) - set(expected))
        if missing or unknown:
            raise ValueError(f"policy tensors: missing {missing[:5]}, unknown {unknown[:5]}")
        for name, value in tensors.items():
            if tuple(np.shape(value)) != tuple(expected[name].shape):
                raise ValueError(f"policy tensor {name!r} has shape {np.shape(value)}, expected {tuple(expected[name].shape)}")
        with torch.no_grad():
            for name, value in tensors.items():
                expected[name].copy_(from_numpy(value, np.float32))
        self.static_loaded = True

    @torch.inference_mode()
    def act(self, obs: Observation, deterministic: bool) -> np.ndarray:
        """obs: the env's observation dict (or, state-only, the state (S,)), single or batched ->
        env action (action_dim,) or (B, action_dim) float32. Images are never augmented."""
        state, images, single = _as_batch(obs, self.cameras, self.device)
        out = self.action_tensor(state, images, deterministic).cpu().numpy().astype(np.float32)
        return out[0] if single else out

    @torch.no_grad()
    def action_tensor(self, state: torch.Tensor, images: Mapping[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """Batched tensors on this policy's device, state (B, S) float32 and images {camera: (B,
        H, W, 3) uint8} -> env actions (B, action_dim): `act` without the numpy round trip (a
        residual agent's learner runs its base policy on whole batches this way)."""
        if not self.static_loaded:
            raise RuntimeError("the frozen encoder's weights have not arrived: load static_actor_tensors first")
        features = _features(self.obs_norm, self.encoder, state, images)
        return _act(self.actor, self.grasp_critic, features, deterministic, self.generator, self.grasp_epsilon)
