"""The actor process: runs the policy on the robot at a fixed rate and streams what happens.

    hilrl actor --config FILE [--run-dir DIR] [--max-env-steps N] [overrides...]

One loop, one thread of control:
    read weights if new (swapped in between steps, never mid-step)
    act: random until the first weights arrive, else the policy (stochastic while training)
    the intervention wrapper may replace the action with the operator's
    step the env (the env keeps the fixed rate on the realtime clock; lockstep advances one period)
    record the transition; hand finished chunks and episode stats to the link (never blocks)
    lockstep only: throttle so the learner keeps up (never waits on a learner that is gone)

The learner link runs in its own thread; the loop only ever calls non-blocking methods on it, so a
dead or slow learner cannot stall the robot. When training ends, a deterministic evaluation runs
on the latest weights (no exploration, no interventions) and `RUN_DIR/actor/eval.json` is written.

An operator stop (the SpaceMouse's or keyboard's stop gesture, actor/interventions.py) ends the
episode, which is recorded and sent as usual; then the actor stops without evaluating (an
evaluation would reset, and so move, the arm the operator stopped): `hilrl actor` prints how to
resume (`hilrl clear-errors`, then a restart) and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hilrl.actor.config import ActorConfig
from hilrl.actor.dashboard import ActorDashboard
from hilrl.actor.evaluation import run_episodes, summarize
from hilrl.actor.interventions import InterventionWrapper, OperatorStopped, make_intervention_device
from hilrl.actor.make import make_env
from hilrl.actor.recorder import ChunkRecorder
from hilrl.actor.throttle import LockstepThrottle
from hilrl.policies.sac import Policy
from hilrl.transport.action import action_names
from hilrl.transport.chunkfile import write_json_atomic
from hilrl.transport.codec import PROTOCOL_VERSION
from hilrl.transport.config import load_document, section
from hilrl.transport.contract import contract_hash, learning_contract
from hilrl.transport.dashboard import DashboardConfig, add_dashboard_argument, dashboard_overrides
from hilrl.transport.learner_messages import EpisodeStats, Hello
from hilrl.transport.link import ActorLink
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.observation import check_env_observation
from hilrl.transport.progress import ProgressReporter
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import SACConfig

log = logging.getLogger(__name__)


@dataclass
class ActorSettings:
    """Every section the actor reads, validated."""

    task: str
    env: EnvConfig
    actor: ActorConfig
    link: LinkConfig
    sac: SACConfig
    dashboard: DashboardConfig
    config_hash: str
    contract: dict[str, Any]
    robot_name: str


def robot_seed(seed: int, robot_name: str) -> int:
    """The actor's seed mixed with its robot's name, so two robots with the same `actor.seed` never
    share reset sequences or exploration (a stable hash: the same robot gets the same seeds)."""
    digest = hashlib.sha256(f"{seed}:{robot_name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def load_settings(doc: dict[str, Any]) -> ActorSettings:
    """Validate the sections the actor uses (the learner's `sac` subsection shapes the policy)."""
    learner = section(doc, "learner", LearnerConfig)
    settings = ActorSettings(
        task=doc.get("task", ""),
        env=section(doc, "env", EnvConfig),
        actor=section(doc, "actor", ActorConfig),
        link=section(doc, "link", LinkConfig),
        sac=learner.sac,
        dashboard=section(doc, "dashboard", DashboardConfig),
        config_hash="",
        contract=learning_contract(doc),
        robot_name="",
    )
    settings.config_hash = contract_hash(settings.contract)
    settings.robot_name = settings.actor.robot_name or socket.gethostname()
    cameras = {c.name: c.size for c in settings.env.observation.policy_cameras}
    if cameras:
        try:
            settings.sac.encoder.check_camera_sizes(cameras)
        except ValueError as exc:
            raise SchemaError("learner.sac.encoder.image_size", str(exc)) from None
    return settings


class LearnerRefused(RuntimeError):
    """The learner refused this actor's handshake; the message is the learner's reason."""


class PeriodStats:
    """Control-loop period percentiles over one episode, in milliseconds."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.periods_ms: list[float] = []

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self.periods_ms.append((now - self._last) * 1e3)
        self._last = now

    def reset(self) -> None:
        self._last = None
        self.periods_ms = []

    @property
    def last_ms(self) -> float | None:
        """The latest period, ms (None before the second tick)."""
        return self.periods_ms[-1] if self.periods_ms else None

    def percentiles(self) -> tuple[float, float, float]:
        """(p50, p99, max) in milliseconds."""
        if not self.periods_ms:
            return 0.0, 0.0, 0.0
        p50, p99 = np.percentile(self.periods_ms, [50, 99])
        return float(p50), float(p99), float(max(self.periods_ms))


class Actor:
    """The actor loop (see the module docstring).

    Args:
        doc: the task config document.
        run_dir: where the actor keeps its spool and evaluation results.
        stop: set it to stop after the current step.
    """

    def __init__(self, doc: dict[str, Any], run_dir: Path, stop: threading.Event | None = None):
        self.settings = s = load_settings(doc)
        # Inference of one observation gains little from more threads (two 128x128 cameras through
        # the small encoder take about 1 ms), and spare ones would spin against the learner and
        # the simulated robot on the same cores.
        torch.set_num_threads(1)
        self.paths = RunDir(run_dir)
        self.run_dir = self.paths.actor
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stop = stop or threading.Event()
        self.session = f"actor-{uuid.uuid4().hex[:12]}"
        self.env = make_env(doc)
        self.lockstep = self.env.lockstep
        self.has_gripper = s.env.action.gripper
        self.seed = robot_seed(s.actor.seed, s.robot_name)
        device = make_intervention_device(s.actor.intervention, s.task, self.env, seed=self.seed)
        self.train_env = InterventionWrapper(self.env, device) if device is not None else self.env
        self.obs_spec = check_env_observation(s.env, self.env.observation_space)
        self.action_dim = int(self.env.action_space.shape[0])
        self.policy = Policy(
            self.obs_spec.state_dim, self.action_dim, self.has_gripper, s.sac, device=s.actor.device,
            seed=self.seed, cameras=[c.name for c in s.env.observation.policy_cameras],
        )
        self.policy_version = -1
        self._weights_session: str | None = None
        self.link = ActorLink(
            s.link,
            Hello(
                actor_session=self.session,
                protocol_version=PROTOCOL_VERSION,
                observation=self.obs_spec,
                action_dim=self.action_dim,
                config_hash=s.config_hash,
                weights_version=-1,
                contract=s.contract,
                robot_name=s.robot_name,
            ),
            spool_dir=self.paths.spool,
        )
        self.recorder = ChunkRecorder(self.action_dim, s.actor.chunk_steps, tuple(self.obs_spec.cameras))
        self.rng = np.random.default_rng(self.seed)
        self.env_steps = 0
        self.episodes = 0
        self._recent: list[tuple[bool, float]] = []  # (success, intervention fraction), last 20 episodes
        self.reporter = ProgressReporter(f"[actor {s.robot_name}]", s.actor.progress_every_s)
        self._max_env_steps: int | None = None
        self.throttle = LockstepThrottle(s.actor, s.link.address) if self.lockstep else None
        self.dashboard = ActorDashboard(s.dashboard, run_dir, s.task, action_names(s.env.action))

    # ------------------------------------------------------------------ main loop

    def run(self, max_env_steps: int | None = None, eval_episodes: int = 0) -> dict[str, Any] | None:
        """Train until `max_env_steps` or `stop`, then evaluate; the link is closed (flushed) at the end.

        Raises:
            OperatorStopped: the operator stopped the arm (after that episode was sent).
            RuntimeError: the learner refused this actor.
        """
        self._max_env_steps = max_env_steps
        self.link.start()
        if self.throttle is not None:
            self.throttle.wait_for_learner(self.link, self.stop)
        self._check_refused()
        every = self.settings.actor.eval_every_steps
        next_eval = every
        try:
            while not self.stop.is_set() and (max_env_steps is None or self.env_steps < max_env_steps):
                self._episode(max_env_steps)
                stopped = getattr(self.train_env, "stopped", None)
                if stopped is not None:  # the operator stopped the arm: nothing more may move it
                    raise OperatorStopped(stopped)
                if every and self.env_steps >= next_eval and self.policy_version >= 0:
                    point = self.evaluate(self.settings.actor.eval_episodes, write=False)
                    with open(self.paths.eval_curve, "a") as f:
                        f.write(json.dumps(point) + "\n")
                    self.dashboard.evaluation(self.env_steps, point)
                    next_eval = self.env_steps + every
            if eval_episodes > 0 and not self.stop.is_set():
                result = self.evaluate(eval_episodes)
                self.dashboard.evaluation(self.env_steps, result)
                return result
            return None
        finally:
            self.print_progress()
            self.link.close()

    def _episode(self, max_env_steps: int | None) -> None:
        episode_id = self.episodes
        self.episodes += 1
        obs, _ = self.train_env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.recorder.start_episode(episode_id, obs)
        periods = PeriodStats()
        ret, length, interventions, intervention_steps = 0.0, 0, 0, 0
        was_intervening, info, done = False, {}, False
        while not done:
            self._take_new_weights()
            action = self._policy_action(obs)
            obs, reward, terminated, truncated, info = self.train_env.step(action)
            periods.tick()
            intervened = bool(info.get("intervened", False))
            taken = info.get("action_taken", action)
            self.env_steps += 1
            self.dashboard.step(self.env_steps, obs, action, info, reward, periods.last_ms)
            length += 1
            ret += reward
            intervention_steps += intervened
            interventions += intervened and not was_intervening
            was_intervening = intervened
            cut = self.stop.is_set() or (max_env_steps is not None and self.env_steps >= max_env_steps)
            for chunk in self.recorder.add_step(
                taken, reward, terminated, truncated, intervened, bool(info.get("gripper_switched", False)),
                self.policy_version if not intervened else -1, obs,
            ):
                self.link.send_chunk(chunk)
            done = terminated or truncated
            self._check_refused()
            if cut and not done:
                for chunk in self.recorder.end_episode():
                    self.link.send_chunk(chunk)
                done = True
            if self.throttle is not None:
                self.throttle.wait(self.link, self.stop)
            if self.reporter.due():
                self.print_progress()
        p50, p99, worst = periods.percentiles()
        stats = EpisodeStats(
            actor_session=self.session,
            seq=0,
            episode_id=episode_id,
            episode_return=float(ret),
            success=bool(info.get("succeeded", False)),
            length=length,
            interventions=int(interventions),
            intervention_steps=int(intervention_steps),
            intervention_fraction=intervention_steps / max(length, 1),
            period_p50_ms=p50,
            period_p99_ms=p99,
            period_max_ms=worst,
            policy_version=self.policy_version,
            env_steps=self.env_steps,
        )
        self.link.send_stats(stats)
        self.dashboard.episode(self.env_steps, stats)
        self._recent = (self._recent + [(stats.success, stats.intervention_fraction)])[-20:]

    def print_progress(self) -> None:
        """One line: env steps (of the total, with an ETA), episodes, success and intervention
        rates over the last 20 episodes, the learner link's state, the weights version."""
        r, link = self.reporter, self.link
        total = f"/{self._max_env_steps}" if self._max_env_steps else ""
        recent = (f"success (last {len(self._recent)}) {np.mean([s for s, _ in self._recent]):.0%} | intervention "
                  f"{np.mean([f for _, f in self._recent]):.0%}" if self._recent else "no episode finished yet")
        if link.refused is not None:
            state = f"refused ({link.refused.field})"
        elif link.learner_alive:
            state = f"learner connected, {link.unacked} unacked"
        else:
            state = f"learner absent, {link.unacked} kept on disk for it"
        r.emit(f"env steps {self.env_steps}{total} ({r.rate(self.env_steps):.1f}/s){r.eta(self.env_steps, self._max_env_steps)}"
               f" | episodes {self.episodes} | {recent} | {state} | weights v{self.policy_version}")

    def _check_refused(self) -> None:
        """A learner that refused this actor (its learning contract differs): hold the arm at once
        and stop with the learner's reason. Checked every step, so the arm never keeps moving on
        a policy that will never train."""
        refused = self.link.refused
        if refused is None:
            return
        try:
            self.env.hold()
        except Exception as exc:  # the robot may be the problem too: the refusal is the news
            log.error("could not hold the arm after the refusal: %s", exc)
        raise LearnerRefused(f"the learner refused this actor ({refused.field}): {refused.message}; the arm is "
                             "held. Run the learner and this actor with the same learning contract (the same "
                             "task config; only per-robot settings may differ)")

    def _take_new_weights(self) -> None:
        weights = self.link.take_weights()
        if weights is None:
            return
        # A restarted learner may number from an older checkpoint: its weights are still the newest.
        new_learner = self.link.learner_session != self._weights_session
        if weights.version > self.policy_version or new_learner:
            self.policy.load_tensors(weights.tensors)
            self.policy_version = weights.version
            self._weights_session = self.link.learner_session

    def _policy_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.policy_version < 0 or self.env_steps < self.settings.actor.random_steps:
            return self.env.action_space.sample().astype(np.float32)
        return self.policy.act(obs, deterministic=False).astype(np.float32)

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self, episodes: int, seed: int = 10_000, write: bool = True, weights_wait_s: float = 15.0
    ) -> dict[str, Any]:
        """Deterministic policy on the newest weights, no interventions; returns the results and
        (with `write`) writes them to RUN_DIR/actor/eval.json. The same seeds every time, so
        successive evaluations compare like with like. With no weights yet (a short lockstep run
        can finish before the first ones arrive), waits up to `weights_wait_s` for them."""
        deadline = time.monotonic() + weights_wait_s
        self._take_new_weights()
        while self.policy_version < 0 and time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(0.05)
            self._take_new_weights()
        if self.policy_version < 0:
            raise RuntimeError(f"no weights arrived from the learner within {weights_wait_s:g} s: nothing to evaluate")
        # The bare env: the evaluation core shared with `hilrl eval` (hilrl.actor.evaluation).
        total = summarize(run_episodes(
            self.env, lambda obs: self.policy.act(obs, deterministic=True), episodes, seed,
            progress=lambda i, r: log.info("evaluation %d/%d: %s in %d steps", i + 1, episodes,
                                           "success" if r.success else "failure", r.length),
        ))
        result = {
            "eval_episodes": episodes,
            "eval_success_rate": total.success_rate,
            "eval_mean_length": total.mean_length,
            "eval_mean_time_to_success_s": total.mean_time_to_success_s,
            "policy_version": self.policy_version,
            "env_steps": self.env_steps,
        }
        if write:
            write_json_atomic(self.paths.actor_eval, result)
        return result

    def close(self) -> None:
        self.dashboard.close()
        self.train_env.close()


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Run the actor: the policy on the robot, streaming to the learner.")
    parser.add_argument("--config", required=True, help="task YAML file")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/actor"), help="run directory (default runs/actor)")
    parser.add_argument("--max-env-steps", type=int, help="stop training after this many env steps")
    parser.add_argument("--eval-episodes", type=int, default=0, help="deterministic evaluation episodes at the end")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_dashboard_argument(parser)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. actor.chunk_steps=5")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.run_dir.exists() and not args.run_dir.is_dir():
        print(f"{parser.prog}: error: {args.run_dir} is a file, not a run directory: give a folder with --run-dir "
              "(the actor keeps its spool and evaluations in RUN_DIR/actor)", file=sys.stderr)
        return 2
    try:
        doc = load_document(args.config, [*args.overrides, *dashboard_overrides(args.dashboard)])
        load_settings(doc)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        actor = Actor(doc, args.run_dir, stop)
    except (OSError, RuntimeError, ValueError) as exc:
        # A missing device (SpaceMouse, terminal, robot) is a message with its fix, not a traceback.
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    try:
        result = actor.run(args.max_env_steps, args.eval_episodes)
        if result is not None:
            print(json.dumps(result), flush=True)
    except RuntimeError as exc:  # an operator stop too (OperatorStopped: the message says how to resume)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        actor.close()
    return 0
