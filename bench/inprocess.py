"""One sample-efficiency run in one process, with the agent pluggable: the same config, the same
20 scripted demonstrations (`hilrl run`'s recorder, seeds 0..), the same RLPD trainer
(hilrl.learner.rlpd: buffers, warm-up, updates per env step, the normalisation fit, one fresh
batch per critic step) and the same deterministic evaluation (hilrl.actor.evaluation: seeds
10,000 + i, on an env of its own) as a `hilrl run` of the config, so that a peer's SAC trains on
the same data through the same loop as ours.

    curve, summary, wall_s = train_in_process(config_file, overrides, budget, eval_every,
                                              make_agent=None)   # None: our SACAgent

`make_agent(learner_config, state_dim, action_dim, has_gripper)` returns an object with `action_dim`,
`act(obs, deterministic)`, `update(batches)` (one RLPD batch per critic step, dicts of tensors as
SACAgent.update takes) and `set_obs_normalization(centre, scale)`; it replaces the trainer's
agent. Any env with state observations runs here, gripper dimension included (the agent then
reads batches' gripper_switched): a gymnasium env, or a sim robot task on its in-process robot
(`env.connection=inprocess`, as `hilrl record-demos` uses it: the same physics and safety
clips as the robot server, without the socket).

What differs from `hilrl run`, by construction: no link, so the actor acts on every update at once
(the learner process publishes weights every `learner.weights_every_updates`), and until
`learner.training_starts` transitions the actions are uniform at random (the actor's are until the
first weights arrive, which is then).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import EVAL_EPISODES, FINAL_EVAL_EPISODES

from hilrl.actor.config import ActorConfig
from hilrl.actor.evaluation import DEFAULT_SEED, run_episodes, summarize
from hilrl.actor.make import make_env
from hilrl.learner.rlpd import RLPDTrainer, train_on_env
from hilrl.tools.demos import record_demos
from hilrl.tools.run import DEFAULT_DEMOS
from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.config import load_document, section
from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk
from hilrl.transport.sections.learner import LearnerConfig

AgentFactory = Callable[[LearnerConfig, int, int, bool], Any]


def train_in_process(config: Path, overrides: list[str], budget: int, eval_every: int,
                     make_agent: AgentFactory | None = None) -> tuple[list[tuple[int, float]], dict[str, Any], float]:
    """Train one run; returns (curve [(env steps, success rate)], summary, wall time s), the
    curve as bench/harness.train reads it from a `hilrl run` (the final 20-episode evaluation
    last, replacing a periodic one at the same step)."""
    started = time.monotonic()
    # No robot server in this process: a robot task runs on its in-process robot (a gymnasium env
    # ignores env.connection).
    doc = load_document(config, [*overrides, "env.connection=inprocess"])
    env, eval_env = make_env(doc), make_env(doc)
    if set(env.observation_space.spaces) != {"state"}:
        env.close()
        eval_env.close()
        raise SystemExit(f"{config}: the in-process harness runs state observations only, not "
                         f"{sorted(set(env.observation_space.spaces) - {'state'})} (image tasks train through hilrl run)")
    learner = section(doc, "learner", LearnerConfig)
    actor = section(doc, "actor", ActorConfig)
    state_dim, action_dim = env.observation_space["state"].shape[0], env.action_space.shape[0]
    trainer = RLPDTrainer(learner, state_dim, action_dim, has_gripper=env.has_gripper, device=learner.device)
    if make_agent is not None:
        trainer.agent = make_agent(learner, state_dim, action_dim, env.has_gripper)
    with tempfile.TemporaryDirectory(prefix="hilrl-inprocess-demos-") as tmp:
        record_demos(doc, DEFAULT_DEMOS, Path(tmp))
        for _, message in ChunkDirectory(Path(tmp)).iter_messages(LEARNER_MESSAGES):
            if isinstance(message, TransitionChunk):
                trainer.add_demo_chunk(message)

    def success_rate(episodes: int) -> float:
        results = run_episodes(eval_env, lambda obs: trainer.agent.act(obs, deterministic=True), episodes,
                               DEFAULT_SEED, control_period_s=0.0)
        return summarize(results).success_rate

    curve: list[tuple[int, float]] = []

    def evaluate_now(steps: int) -> None:
        if eval_every and steps % eval_every == 0 and steps < budget and trainer.updates > 0:
            curve.append((steps, success_rate(EVAL_EPISODES)))
            print(f"env step {steps}/{budget}: success {curve[-1][1]:.2f} ({trainer.updates} updates, "
                  f"{time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    try:
        result = train_on_env(env, trainer, budget, random_steps=max(actor.random_steps, learner.training_starts),
                              seed=actor.seed, on_step=evaluate_now)
        curve.append((budget, success_rate(FINAL_EVAL_EPISODES)))
    finally:
        env.close()
        eval_env.close()
    summary = {"updates": result["updates"], "updates_per_env_step_held": result["updates_per_env_step_held"],
               "demo_transitions": len(trainer.demo), "env_steps": budget}
    return curve, summary, time.monotonic() - started
