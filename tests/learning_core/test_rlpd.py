"""The RLPD training core exists once (hilrl.learner.rlpd): fed the same data as the learner
process's chunks or as plain gymnasium steps, it makes the same updates; its budget holds the
configured updates per env step; and it trains in one process on a gymnasium env we did not write."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from hilrl.learner.main import Learner
from hilrl.learner.rlpd import RLPDTrainer, train_on_env
from hilrl.transport.config import config_path, load_document
from hilrl.transport.learner_messages import TransitionChunk
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig

S, A = 5, 3


def _config(**changes) -> LearnerConfig:
    values = dict(batch_size=16, training_starts=20, replay_capacity=1000, updates_per_env_step=1.5, seed=3,
                  sac=SACConfig(hidden_dims=[16, 16]))
    values.update(changes)
    return LearnerConfig(**values)


def _episodes(n: int, seed: int = 0) -> list[list[tuple]]:
    """n episodes of (obs, action, reward, next_obs, terminated, truncated, intervened) steps."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        steps, obs = [], rng.standard_normal(S).astype(np.float32)
        length = int(rng.integers(3, 9))
        for i in range(length):
            nxt = rng.standard_normal(S).astype(np.float32)
            last = i == length - 1
            steps.append((obs, rng.uniform(-1, 1, A).astype(np.float32), float(last), nxt,
                          last and e % 2 == 0, last and e % 2 == 1, bool(rng.random() < 0.3)))
            obs = nxt
        out.append(steps)
    return out


def _chunk(episode_id: int, steps: list[tuple]) -> TransitionChunk:
    """The episode as the actor sends it: one record per step, then the final observation."""
    k = len(steps) + 1
    pad = np.zeros(A, np.float32)
    return TransitionChunk(
        actor_session="actor-1", seq=episode_id + 1,
        obs_state=np.stack([s[0] for s in steps] + [steps[-1][3]]),
        action=np.stack([s[1] for s in steps] + [pad]),
        reward=np.array([s[2] for s in steps] + [0.0], np.float32),
        terminated=np.array([s[4] for s in steps] + [False]), truncated=np.array([s[5] for s in steps] + [False]),
        intervened=np.array([s[6] for s in steps] + [False]), gripper_switched=np.zeros(k, bool),
        has_action=np.array([True] * len(steps) + [False]),
        episode_id=np.full(k, episode_id, np.int64), step_index=np.arange(k, dtype=np.int32),
        policy_version=np.full(k, -1, np.int64),
    )


def _train(feed) -> tuple[list[dict], RLPDTrainer]:
    torch.manual_seed(0)
    trainer = RLPDTrainer(_config(), S, A, has_gripper=False, device="cpu")
    metrics = []
    for e, steps in enumerate(_episodes(12)):
        feed(trainer, e, steps)
        while trainer.may_update():
            metrics.append(trainer.update())
    return metrics, trainer


def test_chunks_and_plain_steps_give_the_same_updates():
    def as_chunks(trainer, e, steps):
        trainer.add_chunk(_chunk(e, steps))

    def as_steps(trainer, e, steps):
        for obs, action, reward, nxt, term, trunc, intervened in steps:
            trainer.add_step(obs, action, reward, nxt, term, trunc, intervened=intervened)

    chunked, a = _train(as_chunks)
    stepped, b = _train(as_steps)
    assert len(chunked) == len(stepped) > 20
    assert chunked == stepped  # every loss, Q and temperature of every update
    for name, tensor in a.agent.state_arrays().items():
        np.testing.assert_array_equal(tensor, b.agent.state_arrays()[name], err_msg=name)
    assert len(a.intervention) == len(b.intervention) > 0


def test_the_budget_holds_the_ratio_and_the_learner_process_uses_this_trainer(tmp_path):
    metrics, trainer = _train(lambda t, e, steps: t.add_chunk(_chunk(e, steps)))
    warm = trainer.budget.start_env_steps  # env steps when training started: the warm-up's are free
    assert trainer.updates == math.ceil(1.5 * (trainer.env_steps - warm))
    assert not trainer.may_update() and trainer.env_steps_ahead() == 0
    doc = load_document(config_path("sim_reach"), ["dashboard.enabled=false", "link.address=tcp://127.0.0.1:0"])
    learner = Learner(doc, tmp_path, resume=False)
    try:
        assert isinstance(learner.trainer, RLPDTrainer) and learner.agent is learner.trainer.agent
    finally:
        learner.link.close()


def test_trains_in_one_process_on_a_gymnasium_env_we_did_not_write():
    env = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -1.0, 1.0)  # our actions are in [-1, 1]
    trainer = RLPDTrainer(_config(training_starts=100, updates_per_env_step=1.0), 3, 1, has_gripper=False, device="cpu")
    episodes, seen = [], []  # seen: (env steps, updates) after each step, as an evaluation hook sees them
    result = train_on_env(env, trainer, 300, random_steps=100, on_episode=episodes.append,
                          on_step=lambda steps: seen.append((steps, trainer.updates)))
    assert [steps for steps, _ in seen] == list(range(1, 301))
    first_update_at = next(steps for steps, updates in seen if updates > 0)
    assert 100 < first_update_at <= 102  # warm at 100 sampleable transitions: the newest waits on its successor
    assert seen[-1][1] == result["updates"]  # the hook runs after the step's updates
    assert result["env_steps"] == 300 and result["episodes"] == 1  # Pendulum truncates at 200 steps
    assert episodes[0]["length"] == 200
    assert 195 <= result["updates"] <= 200 and result["updates_per_env_step_held"] == 1.0
    assert len(trainer.online) == 300  # the truncated episode's last transition included


def test_the_normalisation_scheme_is_fitted_as_configured():
    """mean_std: (s - mean) / std; min_max: the observed range onto [-1, 1]; none: identity and
    no warning (it was asked for)."""
    import warnings

    from hilrl.policies.sac import UnfittedNormalizationWarning

    fitted = {}
    for scheme in ("mean_std", "min_max", "none"):
        trainer = RLPDTrainer(_config(sac=SACConfig(hidden_dims=[16, 16], normalization=scheme, state_encoder_dim=None)), S, A,
                              has_gripper=False, device="cpu")
        for steps in _episodes(12):
            for obs, action, reward, nxt, term, trunc, _ in steps:
                trainer.add_step(obs, action, reward, nxt, term, trunc)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnfittedNormalizationWarning)
            trainer.update()
        states = trainer.online.states(10_000, np.random.default_rng(0))  # every stored state
        with torch.no_grad():
            fitted[scheme] = trainer.agent.obs_norm(torch.as_tensor(states)).numpy()
        if scheme == "none":
            assert trainer.agent.obs_norm.is_identity()
    assert np.all(fitted["min_max"] >= -1 - 1e-5) and np.all(fitted["min_max"] <= 1 + 1e-5)
    assert np.allclose(fitted["min_max"].min(axis=0), -1, atol=1e-5) and np.allclose(fitted["min_max"].max(axis=0), 1, atol=1e-5)
    assert np.allclose(fitted["mean_std"].mean(axis=0), 0, atol=0.2) and np.allclose(fitted["mean_std"].std(axis=0), 1, atol=0.2)


class _SwitchingEnv(gym.Env):
    """A 2-dim state, a 2-dim action (the last the gripper), 10-step episodes; the gripper command
    'changes' on steps 3 and 7 of each episode, as RobotEnv's info reports it."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, self.t / 10, np.float32)
        return obs, 0.0, False, self.t == 10, {"gripper_switched": self.t in (3, 7)}


def test_plain_env_steps_keep_the_envs_gripper_switches():
    """train_on_env stores info['gripper_switched'] with each step (the grasp critic's switch
    penalty reads it), not False for every step."""
    trainer = RLPDTrainer(_config(training_starts=1000), 2, 2, has_gripper=True, device="cpu")
    train_on_env(_SwitchingEnv(), trainer, 30, random_steps=30)
    online = trainer.online
    assert len(online) == 30
    switched_steps = sorted(set(online.step_index[:30][online.gripper_switched[:30]].tolist()))
    assert switched_steps == [2, 6]  # the 3rd and 7th steps of each of the 3 episodes
    assert int(online.gripper_switched[:30].sum()) == 6
