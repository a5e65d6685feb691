"""What the actor shows on the live dashboard (`ActorDashboard`): per env step the policy's or the
operator's action, takeovers, reward, loop period, classifier probability, image age and
subsampled camera images; episode and evaluation summaries. The recording itself (sinks, viewer,
error guards) and the `dashboard:` section are shared with the learner: hilrl.transport.dashboard.
"""


from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.transport.dashboard import Dashboard, DashboardConfig

log = logging.getLogger(__name__)

class ActorDashboard:
    """What the actor shows, on the `step` timeline (env steps) and `wall_time`.

    Every step: /actor/action/policy (what the policy chose), /actor/action/operator (what ran,
    on intervened steps only), /actor/intervened (0/1), /actor/reward, /actor/loop_period_ms,
    /actor/classifier_probability (when the env reports one), /actor/image_age_ms (the oldest
    frame's age). Every `log_images_every_steps`: /actor/camera/<name> for each camera (policy
    and classifier-only). Each episode: /actor/episode/{success,return,length,
    intervention_fraction,period_p99_ms}, /actor/policy_version and a line in /actor/episodes.
    Each evaluation: /actor/eval/{success_rate,mean_length}.
    """

    def __init__(self, config: DashboardConfig, run_dir: Path, task: str = "", action_names: Sequence[str] = ()):
        self.config = config
        self.recording = Dashboard(config, run_dir, "actor", task)
        if self.recording.active and action_names:
            with self.recording.guard():
                for path in ("actor/action/policy", "actor/action/operator"):
                    self.recording.series_names(path, action_names)

    def step(
        self,
        step: int,
        obs: Mapping[str, np.ndarray],
        policy_action: np.ndarray,
        info: Mapping[str, Any],
        reward: float,
        period_ms: float | None,
    ) -> None:
        """One env step. `policy_action`: what the policy proposed (the operator's, if any, is
        `info["action_taken"]`); `period_ms`: time since the previous step (None on an episode's
        first step)."""
        r = self.recording
        if not r.active:
            return
        with r.guard():
            r.set_time(step=step)
            r.scalar("actor/action/policy", policy_action)
            intervened = bool(info.get("intervened", False))
            if intervened:
                r.scalar("actor/action/operator", info["action_taken"])
            r.scalar("actor/intervened", float(intervened))
            r.scalar("actor/reward", float(reward))
            if period_ms is not None:
                r.scalar("actor/loop_period_ms", period_ms)
            probability = info.get("classifier_probability")
            if probability is not None:
                r.scalar("actor/classifier_probability", float(probability))
            ages = info.get("image_age_s")
            if ages:
                r.scalar("actor/image_age_ms", 1e3 * float(ages["oldest"]))
            every = self.config.log_images_every_steps
            if every and step % every == 0:
                for name, image in obs.items():
                    if name != "state":
                        r.image(f"actor/camera/{name}", image)
                for name, image in (info.get("classifier_images") or {}).items():
                    r.image(f"actor/camera/{name}", image)

    def episode(self, step: int, stats: Any) -> None:
        """An episode's summary (`transport.learner_messages.EpisodeStats`), at its last step."""
        r = self.recording
        if not r.active:
            return
        with r.guard():
            r.set_time(step=step)
            r.scalar("actor/episode/success", float(stats.success))
            r.scalar("actor/episode/return", stats.episode_return)
            r.scalar("actor/episode/length", stats.length)
            r.scalar("actor/episode/intervention_fraction", stats.intervention_fraction)
            r.scalar("actor/episode/period_p99_ms", stats.period_p99_ms)
            r.scalar("actor/policy_version", stats.policy_version)
            r.text(
                "actor/episodes",
                f"episode {stats.episode_id}: {'success' if stats.success else 'failure'}, return "
                f"{stats.episode_return:g}, {stats.length} steps, {stats.interventions} interventions "
                f"({stats.intervention_fraction:.0%} of steps), weights v{stats.policy_version}",
            )

    def evaluation(self, step: int, result: Mapping[str, Any]) -> None:
        """A deterministic evaluation's result (`Actor.evaluate`)."""
        r = self.recording
        if not r.active:
            return
        with r.guard():
            r.set_time(step=step)
            r.scalar("actor/eval/success_rate", result["eval_success_rate"])
            r.scalar("actor/eval/mean_length", result["eval_mean_length"])
            r.text(
                "actor/episodes",
                f"evaluation: {result['eval_success_rate']:.0%} success over {result['eval_episodes']} episodes "
                f"(weights v{result['policy_version']})",
            )

    def close(self) -> None:
        self.recording.close()
