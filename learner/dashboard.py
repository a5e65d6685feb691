"""What the learner shows on the dashboard (hilrl.transport.dashboard holds the recording itself).

Timelines: `update` (gradient updates), `step` (env steps received from actors, so the learner's
plots line up with the actor's) and `wall_time`.

Every `dashboard.log_every_updates` updates: /learner/loss/critic, /learner/loss/actor,
/learner/loss/grasp (with a gripper), /learner/q_mean, /learner/td_error_abs,
/learner/temperature, /learner/entropy (whatever `SACAgent.update` returns: `*_loss` metrics go
under /learner/loss/).
Once a second (with RUN_DIR/learner/progress.json): /learner/updates_per_s,
/learner/buffer/{online,demo,intervention} (transitions), /learner/weights_version,
/learner/version_lag (newest published weights version minus the newest version that chose an
action in the chunks received: how stale the acting policy is), /learner/episodes/success_rate
and /learner/episodes/intervention_fraction (over the last 20 episodes), and for each robot
/robots/<name>/{env_steps, env_steps_per_s, episodes, success_rate, intervention_fraction,
weights_lag, connected} (hilrl.learner.fleet.RobotReport; connected is 1 or 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hilrl.learner.fleet import RobotReport
from hilrl.transport.dashboard import Dashboard, DashboardConfig


def entity_name(robot_name: str) -> str:
    """A robot name as one rerun entity path part: "/" and spaces would split or break it."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in robot_name) or "_"


class LearnerDashboard:
    """The learner's hooks; each is a no-op when the dashboard is inactive, and never raises."""

    def __init__(self, config: DashboardConfig, run_dir: Path, task: str = ""):
        self.config = config
        self.recording = Dashboard(config, run_dir, "learner", task)

    def training(self, updates: int, env_steps: int, metrics: Mapping[str, float]) -> None:
        """After an update: logs `metrics` when `updates` is a multiple of log_every_updates."""
        r = self.recording
        if not r.active or updates % self.config.log_every_updates:
            return
        with r.guard():
            r.set_time(update=updates, step=env_steps)
            for name, value in metrics.items():
                path = f"learner/loss/{name.removesuffix('_loss')}" if name.endswith("_loss") else f"learner/{name}"
                r.scalar(path, value)

    def status(
        self,
        updates: int,
        env_steps: int,
        updates_per_s: float,
        buffers: Mapping[str, int],
        weights_version: int,
        version_lag: int | None,
        recent_success_rate: float,
        recent_intervention_fraction: float,
    ) -> None:
        """Throughput, buffer sizes (name -> transitions), weights; `version_lag` None until a
        chunk acted on by a policy has arrived."""
        r = self.recording
        if not r.active:
            return
        with r.guard():
            r.set_time(update=updates, step=env_steps)
            r.scalar("learner/updates_per_s", updates_per_s)
            for name, size in buffers.items():
                r.scalar(f"learner/buffer/{name}", size)
            r.scalar("learner/weights_version", weights_version)
            if version_lag is not None:
                r.scalar("learner/version_lag", version_lag)
            r.scalar("learner/episodes/success_rate", recent_success_rate)
            r.scalar("learner/episodes/intervention_fraction", recent_intervention_fraction)

    def robots(self, updates: int, env_steps: int, reports: Mapping[str, RobotReport]) -> None:
        """Each robot under its own entity path, /robots/<name>/... (see the module docstring)."""
        r = self.recording
        if not r.active or not reports:
            return
        with r.guard():
            r.set_time(update=updates, step=env_steps)
            for name, rep in reports.items():
                base = f"robots/{entity_name(name)}"
                r.scalar(f"{base}/env_steps", rep.env_steps)
                r.scalar(f"{base}/env_steps_per_s", rep.env_steps_per_s)
                r.scalar(f"{base}/episodes", rep.episodes)
                r.scalar(f"{base}/success_rate", rep.recent_success_rate)
                r.scalar(f"{base}/intervention_fraction", rep.recent_intervention_fraction)
                r.scalar(f"{base}/connected", 1.0 if rep.link == "connected" else 0.0)
                if rep.weights_lag is not None:
                    r.scalar(f"{base}/weights_lag", rep.weights_lag)

    def close(self) -> None:
        self.recording.close()
