"""The RLPD training core, once: buffers, warm-up, the update budget, the normalisation fit and
the update itself. The learner process (hilrl.learner.main) feeds it chunks from its link; a
notebook, a sweep or a benchmark feeds it plain gymnasium steps in one process (`add_step`, or
`train_on_env`). The same data in the same order gives the same updates either way.

    trainer = RLPDTrainer(config, state_dim, action_dim, has_gripper)
    trainer.add_demo_step(...) / trainer.add_demo_chunk(chunk)      # demonstrations
    loop:
        trainer.add_step(obs, action, reward, next_obs, terminated, truncated)   # or add_chunk
        while trainer.may_update():
            metrics = trainer.update()

The rules, in order:
- online transitions go to the online buffer, intervened ones also to the intervention buffer;
  demonstrations to the demo buffer;
- no update before `training_starts` online transitions (the warm-up);
- then `updates_per_env_step` updates per env step received after the warm-up (over every source:
  all robots of a learner process), so `may_update` is False when the trainer is ahead; 0: as fast
  as it can, `may_update` is always True once warm;
- the input normalisation is fitted from the demo and online data just before the first update
  (never refitted; restored with the weights);
- each update draws a fresh RLPD batch (online_fraction online, the rest demo + intervention) per
  critic step, as HIL-SERL does, of n-step rows with `learner.sac.n_step` > 1;
- `learner.algorithm: rlif`: chunks' rewards are the intervention signal (hilrl.learner.rlif)
  before they are stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hilrl.learner.replay import ChunkLike, MixedSampler, Observation, ReplayBuffer, to_torch
from hilrl.learner.rlif import InterventionReward
from hilrl.policies.residual import ResidualSACAgent, load_base_policy
from hilrl.policies.sac import SACAgent, resolve_device
from hilrl.transport.sections.learner import LearnerConfig

log = logging.getLogger(__name__)


class UpdateBudget:
    """The updates a trainer may do: from the moment it starts (training starts, or resumes),
    `ratio` updates per env step received since, on top of the updates done then (0: unlimited).
    Both training cores hold their `learner.updates_per_env_step` with one."""

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.allowed: float | None = None  # None until started
        self.start_updates = self.start_env_steps = 0

    @property
    def started(self) -> bool:
        return self.allowed is not None

    def start(self, updates: int, env_steps: int) -> None:
        self.allowed = float(updates)
        self.start_updates, self.start_env_steps = updates, env_steps

    def add_env_steps(self, steps: int) -> None:
        if self.allowed is not None:
            self.allowed += self.ratio * steps

    def allows(self, updates: int) -> bool:
        """Started and not used up (always, once started, with ratio 0)."""
        return self.allowed is not None and (self.ratio == 0 or updates < self.allowed)

    def env_steps_ahead(self, updates: int) -> int:
        """Env steps received but not yet trained on at the ratio (0: caught up, not started, or
        unlimited)."""
        if self.allowed is None or self.ratio == 0:
            return 0
        return max(0, math.ceil((self.allowed - updates) / self.ratio - 1e-9))

    def held(self, updates: int, env_steps: int) -> float | None:
        """Updates per env step done since the start (None before, or with no env step since)."""
        steps = env_steps - self.start_env_steps
        return round((updates - self.start_updates) / steps, 3) if self.allowed is not None and steps > 0 else None


class RLPDTrainer:
    """See the module docstring.

    Args:
        config: the `learner:` section (batch size, online fraction, warm-up, capacity, update
            ratio, seed, `sac`).
        state_dim: S. action_dim: A (env format, gripper last when has_gripper).
        cameras: camera name -> (H, W, 3) of the policy images ({} for state only).
        device: torch device ("auto": cuda when present).
    """

    def __init__(self, config: LearnerConfig, state_dim: int, action_dim: int, has_gripper: bool,
                 cameras: Mapping[str, tuple[int, int, int]] | None = None, device: str | torch.device = "auto"):
        c = self.config = config
        cameras = {name: tuple(shape) for name, shape in (cameras or {}).items()}
        self.device = resolve_device(device)
        if c.algorithm == "residual_sac":  # SAC on a residual over a frozen base policy
            base = load_base_policy(c.residual.base_run or "", state_dim, action_dim, has_gripper, list(cameras),
                                    self.device)
            self.agent = ResidualSACAgent(state_dim, action_dim, has_gripper, c.sac, base, c.residual.scale,
                                          self.device, seed=c.seed, cameras=list(cameras))
        else:
            self.agent = SACAgent(state_dim, action_dim, has_gripper, c.sac, self.device, seed=c.seed,
                                  cameras=list(cameras))
        self.online = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.demo = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.intervention = ReplayBuffer(c.replay_capacity, state_dim, action_dim, cameras)
        self.sampler = MixedSampler(self.online, [self.demo, self.intervention], c.online_fraction, c.batch_size,
                                    n_step=c.sac.n_step, discount=c.sac.discount)
        self.rlif = InterventionReward(c.rlif) if c.algorithm == "rlif" else None
        self.rng = np.random.default_rng(c.seed)
        self.updates = 0
        self.env_steps = 0  # online env steps received (records that carry an action)
        # Fitted before the first update; already true after a --resume or a warm start that
        # loaded obs_norm (the statistics come with the weights).
        self.normalization_fitted = False
        self.budget = UpdateBudget(c.updates_per_env_step)

    # ------------------------------------------------------------------ data

    def add_chunk(self, chunk: ChunkLike) -> int:
        """An online chunk (hilrl.transport.learner_messages.TransitionChunk); returns its env steps."""
        if self.rlif is not None:
            chunk, earlier = self.rlif.online(chunk)
            if earlier is not None:  # the policy step before the takeover came in the previous chunk
                self.online.add_to_waiting_reward(earlier.session, earlier.episode, earlier.step, earlier.delta)
        self.online.add_chunk(chunk)
        self.intervention.add_chunk(chunk, select=chunk.intervened)
        return self._count(int(np.count_nonzero(chunk.has_action)))

    def add_demo_chunk(self, chunk: ChunkLike) -> None:
        self.demo.add_chunk(chunk if self.rlif is None else self.rlif.demo(chunk))

    def add_step(self, obs: Observation, action: np.ndarray, reward: float, next_obs: Observation,
                 terminated: bool, truncated: bool, *, intervened: bool = False, gripper_switched: bool = False,
                 stream: str = "") -> None:
        """One online gymnasium step (ReplayBuffer.add_step: no episode's last transition is lost)."""
        if self.rlif is not None:
            raise ValueError("learner.algorithm rlif computes its takeover penalty on actor chunks: feed add_chunk "
                             "(add_step does not relabel, and would train on the task reward instead)")
        for buffer, wanted in ((self.online, True), (self.intervention, intervened)):
            if wanted:
                buffer.add_step(obs, action, reward, next_obs, terminated, truncated, intervened=intervened,
                                gripper_switched=gripper_switched, stream=stream)
        if not intervened:
            # The operator let go: the last intervened step's next observation is this one, so
            # that transition is complete now (as in a chunk), not when the operator next takes over.
            self.intervention.flush(stream)
        self._count(1)

    def add_demo_step(self, obs: Observation, action: np.ndarray, reward: float, next_obs: Observation,
                      terminated: bool, truncated: bool, *, gripper_switched: bool = False, stream: str = "") -> None:
        if self.rlif is not None and not self.rlif.config.task_reward:
            reward = 0.0  # a demonstration has no takeovers
        self.demo.add_step(obs, action, reward, next_obs, terminated, truncated, gripper_switched=gripper_switched,
                           stream=stream)

    def _count(self, steps: int) -> int:
        self.env_steps += steps
        self.budget.add_env_steps(steps)
        return steps

    # ------------------------------------------------------------------ the budget

    def may_update(self) -> bool:
        """Whether to do an update now: warm (training_starts online transitions) and not ahead of
        `updates_per_env_step` over the env steps received since training started."""
        if len(self.online) < self.config.training_starts:
            return False
        if not self.budget.started:  # training starts (or resumes) now
            self.budget.start(self.updates, self.env_steps)
        return self.budget.allows(self.updates)

    @property
    def training(self) -> bool:
        """Training has started (the budget runs)."""
        return self.budget.started

    def must_publish(self) -> bool:
        """The update just done must reach the actors now, whatever `weights_every_updates`
        says: never for RLPD (its policy improves smoothly)."""
        return False

    def env_steps_ahead(self) -> int:
        """Env steps received but not yet trained on at the configured ratio (0: caught up, or
        uncapped)."""
        return self.budget.env_steps_ahead(self.updates)

    def held_ratio(self) -> float | None:
        """Updates per env step done since training started (None before)."""
        return self.budget.held(self.updates, self.env_steps)

    # ------------------------------------------------------------------ learning

    def fit_normalization(self, samples_per_buffer: int = 5000) -> None:
        """Freeze the agent's input normalisation from the demos and the first online data, by
        `learner.sac.normalization` (fit_normalization)."""
        fit_normalization(self.agent, self.config.sac.normalization, (self.online, self.demo), self.rng,
                          samples_per_buffer)

    def update(self) -> dict[str, float]:
        """One SAC update on fresh RLPD batches (one per critic step); fits the normalisation
        first when it is the first update of the run. Returns the agent's metrics."""
        if not self.normalization_fitted:
            self.fit_normalization()
            self.normalization_fitted = True
        batches = [to_torch(self.sampler.sample(self.rng), self.device)
                   for _ in range(self.config.sac.critic_updates_per_actor_update)]
        metrics = self.agent.update(batches)
        self.updates += 1
        return metrics

    # ------------------------------------------------------------------ state

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(tensors, counters) for a checkpoint: the agent's arrays with torch's random state, and
        the update count with the sampler's random state. The buffers are not in it."""
        return trainer_state(self.agent, self.updates, self.rng)

    def load_state(self, tensors: Mapping[str, np.ndarray], updates: int, sampler_rng: dict) -> None:
        load_trainer_state(self.agent, self.rng, tensors, sampler_rng)
        self.updates = updates
        self.normalization_fitted = updates > 0  # fitted before the first update


def trainer_state(agent: Any, updates: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A trainer's checkpoint part: (agent.state_arrays() + "torch_rng_state", {"updates",
    "sampler_rng"})."""
    tensors = dict(agent.state_arrays())
    tensors["torch_rng_state"] = torch.get_rng_state().numpy()
    return tensors, {"updates": updates, "sampler_rng": rng.bit_generator.state}


def load_trainer_state(agent: Any, rng: np.random.Generator, tensors: Mapping[str, np.ndarray],
                       sampler_rng: dict) -> None:
    """Restore what trainer_state returned into `agent`, torch's RNG and `rng`."""
    tensors = dict(tensors)
    torch.set_rng_state(torch.from_numpy(np.array(tensors.pop("torch_rng_state"), dtype=np.uint8)))
    agent.load_state_arrays(tensors)
    rng.bit_generator.state = sampler_rng


def fit_normalization(agent: Any, scheme: str, buffers: Sequence[ReplayBuffer], rng: np.random.Generator,
                      samples_per_buffer: int = 5000) -> None:
    """Freeze `agent`'s input normalisation (its set_obs_normalization) from the states of the
    non-empty `buffers` (every row of a buffer up to `samples_per_buffer`), by `scheme`: "mean_std",
    "min_max" (onto [-1, 1]) or "none" (left as it is)."""
    if scheme == "none":
        return
    states = [buffer.states(samples_per_buffer, rng) for buffer in buffers if len(buffer) > 0]
    if not states:
        raise ValueError("no data to fit the input normalisation on: every buffer is empty")
    data = np.concatenate(states)
    if scheme == "min_max":  # centre (min + max) / 2, half-range (max - min) / 2 -> [-1, 1]
        low, high = data.min(axis=0), data.max(axis=0)
        agent.set_obs_normalization((low + high) / 2, (high - low) / 2)
    else:
        agent.set_obs_normalization(data.mean(axis=0), data.std(axis=0))
    log.info("input normalisation fitted on %d observations", len(data))


def train_on_env(
    env: Any,
    trainer: RLPDTrainer,
    max_env_steps: int,
    *,
    random_steps: int = 0,
    seed: int = 0,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train `trainer` on a gymnasium env in this process, the learner's loop without a link.

    Args:
        env: a gymnasium env whose observations and actions fit the trainer (an observation dict
            with "state" and the cameras, or the state vector; actions in [-1, 1]).
        max_env_steps: env steps to run.
        random_steps: act uniformly at random for the first N steps (before that, the policy acts).
        seed: seeds the env's resets and the random actions.
        on_episode: called after each episode with {"episode", "return", "length", "success",
            "env_steps", "updates"} (success: info["succeeded"] or info["is_success"]).
        on_step: called after each env step and the updates it allowed, with the env steps so far
            (a periodic evaluation, on an env of its own, hooks in here).
    Each step is stored with info["gripper_switched"] (False where the env does not say), as the
    actor loop stores it, so a grasp critic's switch penalty applies here too.
    Returns {"env_steps", "updates", "episodes", "updates_per_env_step_held"}.
    """
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    episode, ret, length = 0, 0.0, 0
    for step in range(max_env_steps):
        if step < random_steps:
            action = rng.uniform(-1, 1, trainer.agent.action_dim).astype(np.float32)
        else:
            action = trainer.agent.act(obs, deterministic=False)
        next_obs, reward, terminated, truncated, info = env.step(action)
        # The grasp critic's switch penalty needs the env's word on whether the gripper command
        # changed (RobotEnv and GymnasiumEnv say it in info, as the actor loop stores it).
        trainer.add_step(obs, action, float(reward), next_obs, bool(terminated), bool(truncated),
                         gripper_switched=bool(info.get("gripper_switched", False)))
        while trainer.may_update():
            trainer.update()
            if trainer.config.updates_per_env_step == 0:
                break  # as fast as it can: one update per env step in one process
        ret, length = ret + float(reward), length + 1
        obs = next_obs
        if terminated or truncated:
            if on_episode is not None:
                on_episode({"episode": episode, "return": ret, "length": length,
                            "success": bool(info.get("succeeded", info.get("is_success", False))),
                            "env_steps": step + 1, "updates": trainer.updates})
            episode, ret, length = episode + 1, 0.0, 0
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        if on_step is not None:
            on_step(step + 1)
    trainer.online.flush()
    return {"env_steps": max_env_steps, "updates": trainer.updates, "episodes": episode,
            "updates_per_env_step_held": trainer.held_ratio()}
