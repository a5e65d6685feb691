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

A robot server that stops answering (every retry of a request failed, RobotUnreachableError)
ends the episode there: what was recorded goes to the link as an episode cut short, and the actor
either stops (exit 3, one error line naming `robot_server.address`) or, with `actor.robot_wait_s`,
waits that long for the server to answer again and carries on from a fresh reset. A learner gone
for longer than `actor.learner_grace_s` (0: never given up on) ends the episode, holds the arm and
exits 4; the experience waits in RUN_DIR/actor/spool for the next run with the same run directory.
Whatever the ending (done, error, signal), the link's counters are written to RUN_DIR/actor/link.json.

Exit codes of `hilrl actor` (`EXIT_CODES`): 0 done or stopped by SIGINT/SIGTERM; 1 an error
(refused by the learner, an operator stop, a device missing, a robot error); 2 a bad config or
command line; 3 the robot server did not answer, or stopped answering; 4 the learner was gone longer than
`actor.learner_grace_s`.
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
from hilrl.hardware.errors import RobotError
from hilrl.policies.residual import acting_policy
from hilrl.robot_server.interface import RobotUnreachableError
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
from hilrl.transport.sections.algorithm import IMITATION
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
    learner: LearnerConfig  # how to act follows learner.algorithm (and learner.residual)
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
        learner=learner,
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


EXIT_CODES = {
    0: "done, or stopped by SIGINT / SIGTERM",
    1: "an error: refused by the learner, an operator stop, a missing device, a robot error",
    2: "a bad config or command line",
    3: "the robot server did not answer, or stopped answering (robot_server.address; see actor.robot_wait_s)",
    4: "the learner was gone longer than actor.learner_grace_s (the experience is kept in RUN_DIR/actor/spool)",
}


class LearnerRefused(RuntimeError):
    """The learner refused this actor's handshake; the message is the learner's reason."""

    exit_code = 1


class RobotServerGone(RuntimeError):
    """The robot server stopped answering (and did not come back within `actor.robot_wait_s`);
    the message says what it means and what to do."""

    exit_code = 3


class LearnerGone(RuntimeError):
    """The learner was gone longer than `actor.learner_grace_s`; the arm is held."""

    exit_code = 4


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
        self.has_gripper = s.env.has_gripper
        self.seed = robot_seed(s.actor.seed, s.robot_name)
        device = make_intervention_device(s.actor.intervention, s.task, self.env, seed=self.seed)
        self.train_env = InterventionWrapper(self.env, device) if device is not None else self.env
        self.obs_spec = check_env_observation(s.env, self.env.observation_space)
        self.action_dim = int(self.env.action_space.shape[0])
        # A Policy, or for residual_sac the residual composed with its frozen base policy.
        self.policy = acting_policy(self.obs_spec.state_dim, self.action_dim, self.has_gripper, s.learner,
                                    [c.name for c in s.env.observation.policy_cameras], s.actor.device, self.seed)
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
        self.messages_sent = 0  # chunks and episode stats handed to the link by this process
        self._learner_silent_since: float | None = None  # learner_alive false since (monotonic)
        self._link_closed = False
        self.env_steps = 0
        self.episodes = 0
        self._recent: list[tuple[bool, float]] = []  # (success, intervention fraction), last 20 episodes
        self.reporter = ProgressReporter(f"[actor {s.robot_name}]", s.actor.progress_every_s)
        self._max_env_steps: int | None = None
        self.throttle = LockstepThrottle(s.actor, s.link.address) if self.lockstep else None
        self.dashboard = ActorDashboard(s.dashboard, run_dir, s.task, self.env.action_names)

    # ------------------------------------------------------------------ main loop

    def run(self, max_env_steps: int | None = None, eval_episodes: int = 0) -> dict[str, Any] | None:
        """Train until `max_env_steps` or `stop`, then evaluate; the link is closed (flushed) at the end.

        Raises:
            OperatorStopped: the operator stopped the arm (after that episode was sent).
            LearnerRefused: the learner refused this actor.
            RobotServerGone: the robot server stopped answering (and did not come back within
                `actor.robot_wait_s`).
            LearnerGone: the learner was gone longer than `actor.learner_grace_s`.
        """
        self._max_env_steps = max_env_steps
        flush_s = 5.0
        grace = self.settings.actor.learner_grace_s
        self._learner_silent_since = time.monotonic()  # not welcomed yet: the grace runs from the start
        try:
            self.link.start()
            if self.throttle is not None:
                self.throttle.wait_for_learner(self.link, self.stop, give_up_s=grace if grace > 0 else None)
            self._check_refused()
            if self._learner_gone():
                self._stop_for_learner(ended_episode=False)
            every = self.settings.actor.eval_every_steps
            next_eval = every
            while not self.stop.is_set() and (max_env_steps is None or self.env_steps < max_env_steps):
                try:
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
                except RobotUnreachableError:
                    self._wait_for_robot()  # back: the next episode starts from a fresh reset
            if eval_episodes > 0 and not self.stop.is_set():
                try:
                    result = self.evaluate(eval_episodes)
                except RobotUnreachableError:
                    raise RobotServerGone(self._robot_gone_message(waited_s=0.0, during="the evaluation")) from None
                self.dashboard.evaluation(self.env_steps, result)
                return result
            return None
        except LearnerGone:
            flush_s = 0.0  # nobody to acknowledge: everything unacked goes to the spool at once
            raise
        finally:
            self.print_progress()
            self._close_link(flush_s)

    def _episode(self, max_env_steps: int | None) -> None:
        """One episode, recorded and handed to the link with its stats. A robot server that stops
        answering ends it where it is (RobotUnreachableError, re-raised): what was recorded goes
        out as an episode cut short, with its stats. A learner gone past `learner_grace_s` ends it
        the same way, then LearnerGone."""
        episode_id = self.episodes
        obs, _ = self.train_env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.episodes += 1
        self.recorder.start_episode(episode_id, obs)
        periods = PeriodStats()
        ret, length, interventions, intervention_steps = 0.0, 0, 0, 0
        was_intervening, info, done, learner_gone = False, {}, False, False
        while not done:
            self._take_new_weights()
            action = self._policy_action(obs)
            try:
                obs, reward, terminated, truncated, info = self.train_env.step(action)
            except RobotUnreachableError:
                for chunk in self.recorder.end_episode():  # the steps so far: an episode cut short
                    self._send_chunk(chunk)
                if length:
                    self._send_episode_stats(episode_id, ret, length, interventions, intervention_steps,
                                             False, periods)
                raise
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
                self._send_chunk(chunk)
            done = terminated or truncated
            self._check_refused()
            learner_gone = self._learner_gone()
            if (cut or learner_gone) and not done:
                for chunk in self.recorder.end_episode():
                    self._send_chunk(chunk)
                done = True
            if self.throttle is not None:
                self.throttle.wait(self.link, self.stop)
            if self.reporter.due():
                self.print_progress()
        self._send_episode_stats(episode_id, ret, length, interventions, intervention_steps,
                                 bool(info.get("succeeded", False)), periods)
        if learner_gone:
            self._stop_for_learner(ended_episode=True)

    def _send_episode_stats(self, episode_id: int, ret: float, length: int, interventions: int,
                            intervention_steps: int, success: bool, periods: PeriodStats) -> None:
        p50, p99, worst = periods.percentiles()
        stats = EpisodeStats(
            actor_session=self.session,
            seq=0,
            episode_id=episode_id,
            episode_return=float(ret),
            success=success,
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
        self.messages_sent += 1
        self.dashboard.episode(self.env_steps, stats)
        self._recent = (self._recent + [(stats.success, stats.intervention_fraction)])[-20:]

    def _send_chunk(self, chunk: Any) -> None:
        self.link.send_chunk(chunk)
        self.messages_sent += 1

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

    def _learner_gone(self) -> bool:
        """Whether the learner has been gone longer than `actor.learner_grace_s` (never with 0):
        `learner_alive` false without a break for that long, counted from the start until a
        first welcome. Checked every step."""
        grace = self.settings.actor.learner_grace_s
        if grace <= 0:
            return False
        now = time.monotonic()
        if self.link.learner_alive or self.link.refused is not None:
            self._learner_silent_since = None
            return False
        if self._learner_silent_since is None:
            self._learner_silent_since = now
        return now - self._learner_silent_since > grace

    def _stop_for_learner(self, ended_episode: bool) -> None:
        """The learner is gone past its grace: hold the arm and stop (LearnerGone)."""
        try:
            self.env.hold()
        except Exception as exc:  # the robot may be gone too: the learner is the news
            log.warning("could not hold the arm: %s (a robot server's watchdog holds it once commands stop)", exc)
        s = self.settings
        silent = time.monotonic() - (self._learner_silent_since or time.monotonic())
        if self.link.learner_session is None:
            what = (f"no learner answered at {s.link.address} (link.address) within {silent:.0f} s of the start "
                    f"(actor.learner_grace_s={s.actor.learner_grace_s:g})")
        else:
            what = (f"the learner at {s.link.address} (link.address) has not been heard for "
                    f"{silent + s.link.peer_timeout_s:.0f} s (link.peer_timeout_s={s.link.peer_timeout_s:g} + "
                    f"actor.learner_grace_s={s.actor.learner_grace_s:g})")
        raise LearnerGone(
            f"{what}; {'the episode was ended and ' if ended_episode else ''}the arm is held. The experience is safe in {self.paths.spool} "
            f"({self.link.unacked} message(s) not acknowledged) and the next actor run with the same --run-dir "
            f"({self.paths.root}) resends it: start (or `hilrl learner --resume`) the learner, then this actor again"
        )

    def _robot_address(self) -> str:
        return str(getattr(self.env.robot, "address", "") or "the configured address")

    def _robot_gone_message(self, waited_s: float, during: str = "") -> str:
        robot = self.env.robot
        tries = (f" (no reply after {robot.retries} tries of {robot.timeout_s:g} s each"
                 f"{' during ' + during if during else ''})"
                 if hasattr(robot, "retries") and hasattr(robot, "timeout_s") else "")
        if waited_s > 0:
            what = f"stopped answering and did not answer again within actor.robot_wait_s={waited_s:g} s"
            hint = ""
        else:
            what = f"stopped answering{tries}"
            hint = "; or set actor.robot_wait_s=SECONDS to have the actor wait for it instead of exiting"
        return (
            f"the robot server at {self._robot_address()} (robot_server.address) {what}. The actor stopped "
            f"stepping and kept everything it recorded (an episode in progress went to the learner link cut "
            f"short; what the learner has not acknowledged stays in {self.paths.spool}). If that server is still "
            f"running, its own watchdog holds the arm; if it died, check it (its log, the robot PC, the network) "
            f"and restart `hilrl robot-server` on that address, then restart this actor with the same "
            f"--run-dir{hint}"
        )

    def _wait_for_robot(self) -> None:
        """After RobotUnreachableError: wait up to `actor.robot_wait_s` for the robot server to
        answer again (returns: the caller starts a fresh episode), else raise RobotServerGone."""
        wait_s = self.settings.actor.robot_wait_s
        if wait_s <= 0 or self.stop.is_set():
            raise RobotServerGone(self._robot_gone_message(waited_s=0.0))
        robot = self.env.robot
        address = self._robot_address()
        log.warning("the robot server at %s (robot_server.address) stopped answering (an episode in progress was "
                    "sent cut short): waiting up to %g s for it to answer again (actor.robot_wait_s)", address, wait_s)
        started = time.monotonic()
        deadline = started + wait_s
        # One try per probe (the client would otherwise retry, and log, each one), and its per-try
        # lines silenced: the line above says what is going on.
        client_log = logging.getLogger(type(robot).__module__)
        level, retries = client_log.level, getattr(robot, "retries", None)
        client_log.setLevel(max(logging.WARNING, client_log.getEffectiveLevel()))
        if retries is not None:
            robot.retries = 1
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    robot.state()
                except RobotUnreachableError:
                    continue
                except RobotError:  # it answered (with an error): it is back; the reset deals with it
                    pass
                log.warning("the robot server at %s answers again after %.1f s: starting a fresh episode",
                            address, time.monotonic() - started)
                return
        finally:
            client_log.setLevel(level)
            if retries is not None:
                robot.retries = retries
        raise RobotServerGone(self._robot_gone_message(waited_s=wait_s))

    def _close_link(self, flush_timeout_s: float) -> None:
        """Close (flush) the link once, then write its counters to RUN_DIR/actor/link.json."""
        if self._link_closed:
            return
        self._link_closed = True
        try:
            self.link.close(flush_timeout_s=flush_timeout_s)
        finally:
            self.write_link_stats()

    def write_link_stats(self) -> None:
        """RUN_DIR/actor/link.json: robot_name, messages_sent (chunks and episode stats this process
        handed to the link), resent_messages, unacked_at_exit. Atomic; a failure is logged only."""
        path = self.paths.actor_link_stats
        stats = {
            "robot_name": self.settings.robot_name,
            "messages_sent": self.messages_sent,
            "resent_messages": self.link.resent_messages,
            "unacked_at_exit": self.link.unacked,
        }
        try:
            write_json_atomic(path, stats)
        except Exception as exc:  # e.g. a full disk: the counters are not worth a failed exit
            log.error("could not write the link counters to %s: %s", path, exc)

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
        # A cloned policy has nothing to explore: it drives as it will be evaluated, from its first
        # weights on (HG-DAgger's operator corrects what it really does).
        imitation = self.settings.learner.algorithm in IMITATION
        if self.policy_version < 0 or (self.env_steps < self.settings.actor.random_steps and not imitation):
            return self.env.action_space.sample().astype(np.float32)
        return self.policy.act(obs, deterministic=imitation).astype(np.float32)

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
        self._close_link(5.0)  # when run() never ran (or failed before its own close)
        self.dashboard.close()
        self.train_env.close()


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the actor: the policy on the robot, streaming to the learner.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_CODES.items()),
    )
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
    except RobotUnreachableError as exc:  # the robot server is not there at all
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return RobotServerGone.exit_code
    except (OSError, RuntimeError, ValueError, RobotError) as exc:
        # A missing device (SpaceMouse, terminal, robot) is a message with its fix, not a traceback.
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    try:
        result = actor.run(args.max_env_steps, args.eval_episodes)
        if result is not None:
            print(json.dumps(result), flush=True)
    except (RuntimeError, RobotError) as exc:
        # An operator stop too (OperatorStopped: the message says how to resume); RobotServerGone
        # exits 3, LearnerGone 4 (EXIT_CODES).
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    finally:
        actor.close()
    return 0
