"""Small learning problems that SAC and the grasp critic must solve (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import torch
from replay_support import chunks

from hilrl.learner.replay import MixedSampler, ReplayBuffer, to_torch
from hilrl.policies.sac import SACAgent
from hilrl.transport.sections.sac import SACConfig


def test_grasp_critic_learns_when_to_close_and_open():
    """One-step bandit: reward 1 iff the gripper closes when obs[0] > 0 and opens otherwise."""
    rng = np.random.default_rng(0)
    n, state_dim = 1024, 3
    obs = rng.uniform(-1, 1, (n, state_dim)).astype(np.float32)
    gripper = rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32)
    action = np.concatenate([rng.uniform(-1, 1, (n, 3)), gripper[:, None]], axis=1).astype(np.float32)
    want_close = obs[:, 0] > 0
    reward = np.where(want_close, gripper == 1.0, gripper == -1.0).astype(np.float32)
    data = {
        "obs": torch.from_numpy(obs),
        "action": torch.from_numpy(action),
        "reward": torch.from_numpy(reward),
        "terminated": torch.ones(n),
        "next_obs": torch.from_numpy(obs),
        "gripper_switched": torch.from_numpy(rng.random(n) < 0.3),
    }
    agent = SACAgent(state_dim, 4, True, SACConfig(hidden_dims=[64, 64], grasp_switch_penalty=0.01, grasp_lr=1e-3), seed=0)
    for _ in range(300):
        idx = torch.from_numpy(rng.integers(0, n, 128))
        agent.update({k: v[idx] for k, v in data.items()})

    test_obs = rng.uniform(-1, 1, (500, state_dim)).astype(np.float32)
    test_obs = test_obs[np.abs(test_obs[:, 0]) > 0.1]  # away from the decision boundary
    chosen = agent.act(test_obs, deterministic=True)[:, -1]
    want = np.where(test_obs[:, 0] > 0, 1.0, -1.0)
    assert (chosen == want).mean() >= 0.95, (chosen == want).mean()


class PointReach:
    """2-D point mass: position in [-1, 1]^2, action moves it by up to 0.25 per axis. Reward
    -|position|; reaching |position| < 0.1 terminates; 15 steps truncate."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.episode = -1

    def reset(self) -> np.ndarray:
        self.episode += 1
        self.step_index = 0
        self.pos = self.rng.uniform(-1, 1, 2).astype(np.float32)
        return self.pos.copy()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        self.pos = np.clip(self.pos + 0.25 * np.clip(action, -1, 1), -1, 1).astype(np.float32)
        self.step_index += 1
        dist = float(np.linalg.norm(self.pos))
        terminated = dist < 0.1
        return self.pos.copy(), -dist, terminated, self.step_index >= 15 and not terminated


def evaluate(agent: SACAgent, episodes: int = 30) -> float:
    """Mean final distance to the goal with the deterministic action."""
    env, finals = PointReach(seed=1000), []
    for _ in range(episodes):
        obs, done = env.reset(), False
        while not done:
            obs, _, terminated, truncated = env.step(agent.act(obs, deterministic=True))
            done = terminated or truncated
        finals.append(np.linalg.norm(obs))
    return float(np.mean(finals))


def test_sac_learns_point_reaching_end_to_end_through_the_replay_buffer():
    """Actor -> TransitionChunks -> ReplayBuffer -> MixedSampler -> to_torch -> SACAgent."""
    env = PointReach(seed=0)
    config = SACConfig(hidden_dims=[64, 64], actor_lr=1e-3, critic_lr=1e-3, temperature_lr=1e-3)
    agent = SACAgent(2, 2, False, config, seed=0)
    buffer = ReplayBuffer(5000, 2, 2)
    sampler = MixedSampler(buffer, [], online_fraction=0.5, batch_size=128)
    rng = np.random.default_rng(0)
    before = evaluate(agent)

    pending: dict[str, list] = {k: [] for k in ("obs_state", "action", "reward", "terminated", "truncated", "has_action", "episode_id", "step_index")}

    def record(obs, action, reward, terminated, truncated, has_action):
        for key, value in zip(pending, (obs, action, reward, terminated, truncated, has_action, env.episode, env.step_index), strict=True):
            pending[key].append(value)

    def flush():
        k = len(pending["obs_state"])
        rec = {key: np.array(v) for key, v in pending.items()}
        rec.update(intervened=np.zeros(k, bool), gripper_switched=np.zeros(k, bool), policy_version=np.zeros(k, np.int64), obs_images={})
        rec["obs_state"] = rec["obs_state"].astype(np.float32)
        rec["action"] = rec["action"].astype(np.float32)
        rec["reward"] = rec["reward"].astype(np.float32)
        for chunk in chunks(rec, 10):
            buffer.add_chunk(chunk)
        for v in pending.values():
            v.clear()

    obs = env.reset()
    for t in range(2500):
        action = rng.uniform(-1, 1, 2).astype(np.float32) if t < 300 else agent.act(obs, deterministic=False)
        next_obs, reward, terminated, truncated = env.step(action)
        record(obs, action, reward, terminated, truncated, True)
        obs = next_obs
        if terminated or truncated:
            record(obs, np.zeros(2, np.float32), 0.0, False, False, False)  # the final observation
            obs = env.reset()
        if t % 10 == 9:
            flush()  # about one chunk per 10 steps, as the actor sends them
        if t >= 300 and len(buffer) >= 128:
            agent.update([to_torch(sampler.sample(rng), "cpu") for _ in range(config.critic_updates_per_actor_update)])
    after = evaluate(agent)
    assert before > 0.3, before
    assert after < 0.12, (before, after)
