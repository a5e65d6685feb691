"""The learner process: RLPD-style SAC fed by online, demo and intervention buffers.

    hilrl learner --config FILE [--run-dir DIR | --resume RUN_DIR] [overrides...]

One thread trains (the training core, buffers to update, is hilrl.learner.rlpd's RLPDTrainer,
the same one that trains in a single process); the `LearnerLink` thread owns the socket, stores every received chunk durably
(RUN_DIR/learner/link/chunks) and acknowledges it only then. The training loop:

    move newly stored chunks into the buffers (online: every transition; intervention: the
        intervened ones; a chunk is never waited for), counting env steps per robot
    once `training_starts` online transitions exist, and while fewer than
        `updates_per_env_step` x (env steps of all robots since then) updates are done:
        one SAC update on a mixed batch (online_fraction online, the rest demo + intervention);
        caught up: wait for data, and tell the actors at once (their lockstep throttle)
    every `weights_every_updates`: publish the actor's weights with a new version
    every `checkpoint_every_updates`, every `checkpoint_every_s` and at shutdown: write a
        checkpoint atomically

The update budget is global: N robots feeding one learner get the configured ratio over their
sum. It starts when training starts (and again at each `--resume`, from the restored update
count), so the warm-up's transitions are free and a restarted learner owes nothing for the
stored ones.

A checkpoint holds networks, optimisers, counters and random states, never the buffers: those are
rebuilt at `--resume` from the stored chunks (which include everything received after the
checkpoint), so a checkpoint takes milliseconds whatever the buffer size, and a crash loses no
transition that was acknowledged. The episode counts are rebuilt from the stored episode stats too
(and RUN_DIR/learner/episodes.jsonl rewritten from them).

A full disk never stops the learner: the link stops storing and acknowledging (the actors keep
their experience); a checkpoint, progress.json or episodes.jsonl that cannot be written is logged
(rate-limited) and retried, and training goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hilrl.learner.dashboard import LearnerDashboard
from hilrl.learner.fleet import Fleet, RobotReport, reports_as_json
from hilrl.learner.imitation import BCTrainer
from hilrl.learner.rlpd import RLPDTrainer
from hilrl.learner.warm_start import checkpoint_of, warm_start
from hilrl.policies.encoders import check_weights_file
from hilrl.policies.residual import load_base_policy
from hilrl.policies.sac import resolve_device
from hilrl.transport.checkpoint import Checkpoint, keep_numbered, read_checkpoint, write_checkpoint
from hilrl.transport.chunkfile import ChunkDirectory, write_json_atomic
from hilrl.transport.codec import PROTOCOL_VERSION
from hilrl.transport.config import document_hash, load_document, parse_document, section
from hilrl.transport.contract import contract_hash, learning_contract
from hilrl.transport.dashboard import DashboardConfig, add_dashboard_argument, dashboard_overrides
from hilrl.transport.learner_messages import (
    LEARNER_MESSAGES,
    EpisodeStats,
    Hello,
    ObservationSpec,
    TransitionChunk,
)
from hilrl.transport.link import AddressInUseError, LearnerLink
from hilrl.transport.link.common import LogLimiter
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.observation import gymnasium_layout, observation_spec
from hilrl.transport.progress import ProgressReporter, duration
from hilrl.transport.run_dir import RunDir
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.algorithm import IMITATION
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.sections.learner import LearnerConfig
from hilrl.transport.sections.sac import previous_defaults_hint

log = logging.getLogger(__name__)

@dataclass
class Progress:
    """Written to RUN_DIR/learner/progress.json about once a second (read by `hilrl run`).

    updates_per_env_step: configured (learner.updates_per_env_step; 0: as fast as it can);
    updates_per_env_step_held: updates per env step actually done since training started (None
    before); env_steps_ahead: env steps not yet trained on at the configured ratio (bc and
    hg_dagger, while their first learner.bc.updates run: the updates left); recent_*: over the last
    20 episodes (takeovers per episode: HG-DAgger's own measure of progress); robots: per
    robot (hilrl.learner.fleet.RobotReport); link: the link's counters since this process started
    (stored_chunks in the store, duplicates dropped, deferred, store_failures, dropped_messages).
    """

    updates: int = 0
    updates_per_s: float = 0.0
    weights_version: int = -1
    online_transitions: int = 0
    demo_transitions: int = 0
    intervention_transitions: int = 0
    episodes: int = 0
    env_steps: int = 0
    recent_success_rate: float = 0.0
    recent_intervention_fraction: float = 0.0
    recent_takeovers_per_episode: float = 0.0
    algorithm: str = "sac"
    updates_per_env_step: float = 0.0
    updates_per_env_step_held: float | None = None
    env_steps_ahead: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    robots: dict[str, RobotReport] = field(default_factory=dict)
    link: dict[str, int] = field(default_factory=dict)


def append_whole(path: Path, text: str) -> None:
    """Append `text` to `path`, all or nothing: a write the disk refuses halfway is cut back off,
    so a retry does not leave half a line before the whole one (unbuffered: nothing is left over
    to be flushed at close)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def learner_spec(doc: dict[str, Any]) -> tuple[ObservationSpec, int, bool]:
    """The observation spec, action size and gripper flag the learner trains on, from the config
    alone (hilrl.transport.observation), so the learner never needs a robot to start; checks that
    the encoder can take the policy cameras' image sizes (SchemaError naming the key)."""
    env = section(doc, "env", EnvConfig)
    if env.kind == "gymnasium":  # its spaces say (the env is built once to read them)
        layout = gymnasium_layout(env)
        spec, action_dim = layout.spec, layout.actions.action_dim
    else:
        spec, action_dim = observation_spec(env), env.action_dim
    if spec.cameras:
        sac = section(doc, "learner", LearnerConfig).sac
        try:
            sac.encoder.check_camera_sizes(spec.cameras)
        except ValueError as exc:
            raise SchemaError("learner.sac.encoder.image_size", str(exc)) from None
    return spec, action_dim, env.has_gripper


def make_trainer(config: LearnerConfig, state_dim: int, action_dim: int, has_gripper: bool,
                 cameras: dict[str, tuple[int, int, int]], device: torch.device) -> RLPDTrainer | BCTrainer:
    """The training core `learner.algorithm` names: BC (hilrl.learner.imitation) for bc and
    hg_dagger, RLPD (hilrl.learner.rlpd) for the SAC modes. Both have the same interface."""
    trainer = BCTrainer if config.algorithm in IMITATION else RLPDTrainer
    return trainer(config, state_dim, action_dim, has_gripper, cameras, device)


class Learner:
    """The training loop (see the module docstring)."""

    @staticmethod
    def validate(doc: dict[str, Any]) -> None:
        """Check every section the learner reads (raises SchemaError naming the key)."""
        config = section(doc, "learner", LearnerConfig)
        if config.algorithm == "bc" and not config.demos:
            raise SchemaError("learner.demos", "learner.algorithm bc learns from demonstrations: give the folders "
                                               "`hilrl record-demos` wrote (or use `hilrl run`, which records them)")
        section(doc, "link", LinkConfig)
        section(doc, "dashboard", DashboardConfig)
        spec, action_dim, has_gripper = learner_spec(doc)
        if spec.cameras:
            check_weights_file(config.sac.encoder)
        if config.init_from:
            checkpoint_of(config.init_from)
        if config.algorithm == "residual_sac":  # the base policy must exist and fit
            load_base_policy(config.residual.base_run or "", spec.state_dim, action_dim, has_gripper, list(spec.cameras))

    def __init__(self, doc: dict[str, Any], run_dir: Path, resume: bool, stop: threading.Event | None = None):
        self.doc = doc
        self.config: LearnerConfig = section(doc, "learner", LearnerConfig)
        self.link_config: LinkConfig = section(doc, "link", LinkConfig)
        self.paths = RunDir(run_dir)
        self.dir = self.paths.learner
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop = stop or threading.Event()
        self.config_hash = document_hash(doc)  # the whole run's config, kept with checkpoints
        self.contract = learning_contract(doc)  # what every actor must agree on (the handshake)
        c = self.config
        if c.torch_threads > 0:
            torch.set_num_threads(c.torch_threads)
        self.device = resolve_device(c.device)
        self.obs_spec, self.action_dim, has_gripper = learner_spec(doc)
        cameras = {k: tuple(v) for k, v in self.obs_spec.cameras.items()}
        # The training core (buffers, warm-up, update budget, normalisation fit, update) for
        # learner.algorithm: the same one that trains in a single process (hilrl.learner.rlpd).
        self.trainer = make_trainer(c, self.obs_spec.state_dim, self.action_dim, has_gripper, cameras, self.device)
        self.agent = self.trainer.agent
        self.online, self.demo, self.intervention = self.trainer.online, self.trainer.demo, self.trainer.intervention
        self.weights_version = -1
        self.progress = Progress(updates_per_env_step=c.updates_per_env_step, algorithm=c.algorithm)
        self._recent: list[tuple[bool, float, int]] = []  # (success, intervention fraction, takeovers)
        self.fleet = Fleet()
        self._episode_lines: list[str] = []  # episodes.jsonl lines not yet written (a full disk)
        self._limiter = LogLimiter(log, every_s=10.0)
        self._checkpointed = (-1, time.monotonic())  # (updates, time) of the last checkpoint tried
        self._last_good_checkpoint = 0  # updates in the newest checkpoint on disk
        self.reporter = ProgressReporter("[learner]", c.progress_every_s)
        if c.init_drop_demos:
            log.info("learner.init_drop_demos: training on online data only (no demos loaded)")
        else:
            self._load_demos()
        if c.init_from and not resume:  # a resumed run has its own checkpoint
            started = warm_start(self.agent, c.init_from)
            self.trainer.normalization_fitted = "obs_norm" in started.loaded

        self.link = LearnerLink(
            self.link_config,
            Hello(
                actor_session="",
                protocol_version=PROTOCOL_VERSION,
                observation=self.obs_spec,
                action_dim=self.action_dim,
                config_hash=contract_hash(self.contract),
                contract=self.contract,
            ),
            store_dir=self.paths.learner_link,
            learner_session=f"learner-{uuid.uuid4().hex[:12]}",
            min_free_bytes=int(c.min_free_disk_gb * 1e9),
        )
        self._log_disk_room()
        if resume:
            self._resume()
        self.dashboard = LearnerDashboard(section(doc, "dashboard", DashboardConfig), run_dir, doc.get("task", ""))

    # ------------------------------------------------------------------ data

    def _load_demos(self) -> None:
        for folder in self.config.demos:
            path = Path(folder)
            if not path.is_dir():
                raise FileNotFoundError(f"learner.demos: {folder} is not a folder of recorded demonstrations")
            for _, msg in ChunkDirectory(path).iter_messages(LEARNER_MESSAGES):
                if isinstance(msg, TransitionChunk):
                    self._check_chunk(msg, f"demo {folder}")
                    self.trainer.add_demo_chunk(msg)
        if self.config.demos:
            log.info("loaded %d demo transitions from %s", len(self.demo), ", ".join(self.config.demos))

    def _check_chunk(self, chunk: TransitionChunk, where: str) -> None:
        if chunk.obs_state.shape[1] != self.obs_spec.state_dim or chunk.action.shape[1] != self.action_dim:
            raise ValueError(
                f"{where}: records have state {chunk.obs_state.shape[1]} / action {chunk.action.shape[1]} dims, "
                f"this config needs {self.obs_spec.state_dim} / {self.action_dim}"
            )

    @property
    def updates(self) -> int:
        """Gradient updates so far (the trainer's count, restored at --resume)."""
        return self.trainer.updates

    def _ingest(self, chunk: TransitionChunk) -> None:
        self.trainer.add_chunk(chunk)
        self.fleet.add_chunk(chunk)
        self.progress.env_steps = self.trainer.env_steps

    def _count_episode(self, stats: EpisodeStats) -> None:
        self._recent = (self._recent + [(stats.success, stats.intervention_fraction, stats.interventions)])[-20:]
        self.progress.episodes += 1
        self.fleet.add_episode(stats)

    def _drain_link(self) -> None:
        for chunk in self.link.poll_chunks():
            self._ingest(chunk)
        for stats in self.link.poll_stats():
            self._count_episode(stats)
            self._episode_lines.append(json.dumps(vars(stats)) + "\n")
        if self._episode_lines:
            self._write_episode_lines()

    def _write_episode_lines(self) -> None:
        """Append the pending episodes.jsonl lines; on a full disk keep them for the next try (the
        stats themselves are in the link's store already, and `--resume` rewrites the file)."""
        try:
            append_whole(self.paths.episodes, "".join(self._episode_lines))
            self._episode_lines.clear()
        except OSError as exc:
            self._disk_problem("episodes", f"cannot append to {self.paths.episodes}", exc)

    def _disk_problem(self, key: str, what: str, exc: OSError) -> None:
        full = " (the disk is full: free some space; training goes on)" if exc.errno == errno.ENOSPC else ""
        self._limiter.error(key, "%s: %s%s; retrying", what, exc, full)

    def _set_link_progress(self) -> None:
        holding = self.trainer.training and self.config.updates_per_env_step > 0
        self.link.set_progress(self.updates, self.trainer.env_steps_ahead(), count_undelivered=holding)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> bool:
        """Write the checkpoint atomically; False (logged) when the disk refused it: the previous
        checkpoint stays intact and the next one is tried as scheduled."""
        tensors, counters = self.trainer.state()
        started = time.monotonic()
        self._checkpointed = (self.updates, started)
        try:
            write_checkpoint(
                self.paths.checkpoint,
                Checkpoint(
                    updates=self.updates,
                    weights_version=self.weights_version,
                    config_hash=self.config_hash,
                    sampler_rng=counters["sampler_rng"],
                    tensors=tensors,
                ),
            )
            if self.config.keep_checkpoints > 0:
                keep_numbered(self.paths.checkpoint, self.paths.numbered_checkpoint(self.updates),
                              self.config.keep_checkpoints)
        except OSError as exc:
            self._disk_problem("checkpoint", f"cannot write the checkpoint at {self.updates} updates to "
                               f"{self.paths.checkpoint} (the previous one is kept)", exc)
            return False
        self._last_good_checkpoint = self.updates
        log.info("checkpoint at %d updates (%.0f ms)", self.updates, (time.monotonic() - started) * 1e3)
        return True

    def _checkpoint_due(self) -> bool:
        c = self.config
        if self.updates == self._checkpointed[0]:
            return False
        if self.updates % c.checkpoint_every_updates == 0:
            return True
        return c.checkpoint_every_s > 0 and time.monotonic() - self._checkpointed[1] >= c.checkpoint_every_s

    def _resume(self) -> None:
        path = self.paths.checkpoint
        if path.exists():
            ckpt = read_checkpoint(path)
            if ckpt.config_hash != self.config_hash:
                log.warning("resuming with a different config (hash %s, run started with %s)", self.config_hash, ckpt.config_hash)
            try:
                self.trainer.load_state(ckpt.tensors, ckpt.updates, ckpt.sampler_rng)
            except ValueError as exc:
                raise ValueError(f"{path} does not fit the networks this config builds ({exc}). "
                                 f"{previous_defaults_hint()}") from None
            self._last_good_checkpoint = ckpt.updates
            self.weights_version = ckpt.weights_version
        else:
            log.warning("no checkpoint in %s: resuming from the stored transitions only", self.dir)
        for chunk in self.link.load_stored():
            self._ingest(chunk)
        self._checkpointed = (self.updates, time.monotonic())
        # Episode counts from the stored stats (the durable record); episodes.jsonl is rewritten
        # from them, so it holds every episode exactly once even if the last run died mid-append.
        lines = []
        for stats in self.link.load_stored_stats():
            self._count_episode(stats)
            lines.append(json.dumps(vars(stats)) + "\n")
        try:
            tmp = self.paths.episodes.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(lines))
            tmp.replace(self.paths.episodes)
        except OSError as exc:
            self._disk_problem("episodes", f"cannot rewrite {self.paths.episodes}", exc)
        # Actors may hold weights newer than the checkpoint (published after it); number on from
        # the newest version they used, so the next publish is newer than anything they have.
        self.weights_version = max(self.weights_version, self.fleet.acting_version)
        log.info("resumed at %d updates, weights v%d, %d online transitions, %d episodes from %d robot(s)",
                 self.updates, self.weights_version, len(self.online), self.progress.episodes, len(self.fleet.names))

    def _log_disk_room(self) -> None:
        """How much experience fits on the store's disk: image runs fill disks (two 128x128 cameras
        are about 100 kB per env step, 3.5 GB per 10 Hz hour), and an operator should know before."""
        spec = self.obs_spec
        record_bytes = 4 * (spec.state_dim + self.action_dim) + 16 + sum(
            int(np.prod(shape)) for shape in spec.cameras.values())
        room = shutil.disk_usage(self.dir).free - self.config.min_free_disk_gb * 1e9
        log.info("store %s: %.1f GB free above the %.1f GB reserve (learner.min_free_disk_gb): about %d env "
                 "steps at %.1f kB each", self.paths.learner_link, max(room, 0) / 1e9, self.config.min_free_disk_gb,
                 max(room, 0) // record_bytes, record_bytes / 1e3)
        if room < 1000 * record_bytes:
            log.warning("the disk of %s is nearly full: experience will not be stored (the actors keep it) "
                        "until space is freed", self.dir)

    # ------------------------------------------------------------------ loop

    def publish(self) -> None:
        self.weights_version += 1
        self.link.publish_weights(self.weights_version, self.agent.actor_tensors())

    def run(self) -> None:
        c = self.config
        static = self.agent.static_actor_tensors()
        if static:
            # A frozen backbone: each actor gets it once, not with every publish.
            static_id = self.link.set_static_weights(static)
            log.info("frozen encoder: %d tensors (%.1f MB) sent once per actor (static id %s)", len(static),
                     sum(t.nbytes for t in static.values()) / 1e6, static_id[:12])
        self.link.start()
        self.publish()  # actors act on the (initial) policy at once, not on random actions
        last_report, updates_at_report = time.monotonic(), self.updates
        try:
            waiting = False
            while not self.stop.is_set():
                self._drain_link()
                if not self.trainer.may_update():
                    if not waiting and self.trainer.training:
                        # Caught up: tell the (lockstep) actors now, not at the next heartbeat.
                        self._set_link_progress()
                        self.link.push_progress()
                    waiting = True
                    self.link.wait_for_data(0.05)  # woken by the next stored chunk; reports still run
                else:
                    waiting = False
                    self.progress.metrics = self.trainer.update()
                    self.dashboard.training(self.updates, self.progress.env_steps, self.progress.metrics)
                    if self.updates % c.weights_every_updates == 0 or self.trainer.must_publish():
                        self.publish()
                    if self._checkpoint_due():
                        self.checkpoint()
                self._set_link_progress()
                now = time.monotonic()
                if now - last_report >= 1.0:
                    self._report((self.updates - updates_at_report) / (now - last_report))
                    last_report, updates_at_report = now, self.updates
        finally:
            if not self.checkpoint():
                log.error("the final checkpoint could not be written: a --resume continues from the last one "
                          "written (%d updates); no experience is lost (it is in %s)",
                          self._last_good_checkpoint, self.paths.learner_link)
            self._report(0.0)
            self.print_progress()
            self.link.close()
            self.dashboard.close()

    def print_progress(self) -> None:
        """One line: updates and their rate, updates per env step held, env steps and their rate,
        buffers, weights, and each robot (its env steps, episodes, success rate, link state)."""
        p, r = self.progress, self.reporter
        ratio = "as fast as it can" if self.config.updates_per_env_step == 0 else f"{self.config.updates_per_env_step:g}"
        held = f"{p.updates_per_env_step_held:.2f}" if p.updates_per_env_step_held is not None else "-"
        robots = "; ".join(
            f"{name}: {rep.env_steps} steps ({rep.env_steps_per_s:.1f}/s), {rep.episodes} episodes, "
            f"success {rep.recent_success_rate:.0%}, {rep.link}"
            + (f" {duration(rep.last_heard_s)} ago" if rep.link == "silent" and rep.last_heard_s is not None else "")
            for name, rep in p.robots.items()
        ) or "none yet"
        r.emit(f"updates {p.updates} ({p.updates_per_s:.1f}/s, {held} per env step, configured {ratio}) | env steps "
               f"{p.env_steps} ({r.rate(p.env_steps):.1f}/s) | buffers online {p.online_transitions}, demo "
               f"{p.demo_transitions}, intervention {p.intervention_transitions} | weights v{p.weights_version} | "
               f"robots: {robots}")

    def _report(self, updates_per_s: float) -> None:
        p = self.progress
        p.updates, p.updates_per_s, p.weights_version = self.updates, round(updates_per_s, 2), self.weights_version
        p.online_transitions, p.demo_transitions = len(self.online), len(self.demo)
        p.intervention_transitions = len(self.intervention)
        p.updates_per_env_step_held, p.env_steps_ahead = self.trainer.held_ratio(), self.trainer.env_steps_ahead()
        if self._recent:
            p.recent_success_rate = float(np.mean([s for s, _, _ in self._recent]))
            p.recent_intervention_fraction = float(np.mean([f for _, f, _ in self._recent]))
            p.recent_takeovers_per_episode = float(np.mean([n for _, _, n in self._recent]))
        p.link = {"stored_chunks": self.link.stored_chunks, "duplicates": self.link.duplicates,
                  "deferred": self.link.deferred, "store_failures": self.link.store_failures,
                  "dropped_messages": self.link.dropped_messages}
        p.robots = self.fleet.reports(self.weights_version, self.link.robots_last_heard(),
                                      self.link_config.peer_timeout_s)
        try:
            write_json_atomic(self.paths.progress, {**vars(p), "robots": reports_as_json(p.robots)})
        except OSError as exc:
            self._disk_problem("progress", f"cannot write {self.paths.progress}", exc)
        if self.reporter.due():
            self.print_progress()
        self.dashboard.status(
            p.updates, p.env_steps, p.updates_per_s,
            {"online": p.online_transitions, "demo": p.demo_transitions, "intervention": p.intervention_transitions},
            p.weights_version,
            p.weights_version - self.fleet.acting_version if self.fleet.acting_version >= 0 else None,
            p.recent_success_rate, p.recent_intervention_fraction,
        )
        self.dashboard.robots(p.updates, p.env_steps, p.robots)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Run the learner: SAC/RLPD training fed by actors.")
    parser.add_argument("--config", help="task YAML file (with --resume: defaults to the run's saved config)")
    parser.add_argument("--run-dir", type=Path, help="new run directory")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_dashboard_argument(parser)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.batch_size=128")
    args = parser.parse_args(argv)
    overrides = [*args.overrides, *dashboard_overrides(args.dashboard)]
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.run_dir is None) == (args.resume is None):
        parser.error("give exactly one of --run-dir (new run) or --resume RUN_DIR")
    run_dir = args.resume or args.run_dir
    paths = RunDir(run_dir)
    saved = paths.config_json
    if run_dir.exists() and not run_dir.is_dir():
        print(f"{parser.prog}: error: {run_dir} is a file, not a run directory: give a new folder with --run-dir, "
              "or an existing run's folder with --resume", file=sys.stderr)
        return 2
    if args.resume and not run_dir.is_dir():
        print(f"{parser.prog}: error: {run_dir}: no such run directory to resume; start a new run with "
              f"--config FILE --run-dir {run_dir}", file=sys.stderr)
        return 2
    try:
        if args.config:
            doc = load_document(args.config, overrides)
        elif args.resume and saved.exists():
            doc = parse_document(json.loads(saved.read_text()), overrides, where=str(saved))
        elif args.resume:
            parser.error(f"{run_dir} has no saved config ({saved.name}): is it a learner's run directory? "
                         "Give the config with --config")
        else:
            parser.error("--config is required for a new run")
        Learner.validate(doc)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    if not saved.exists():
        saved.write_text(json.dumps(doc, indent=2) + "\n")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        Learner(doc, run_dir, resume=args.resume is not None, stop=stop).run()
    except (FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except AddressInUseError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0
