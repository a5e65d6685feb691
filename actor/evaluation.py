"""The evaluation core: run the deterministic policy for N episodes and sum up what happened.

Shared by the actor's periodic and end-of-run evaluation (`Actor.evaluate`, hilrl.actor.loop) and
by `hilrl eval` (hilrl.tools.evaluate), so their figures compare like with like: the same seeds
(`DEFAULT_SEED` + episode index), the same success definition (the task's check or the operator's
label), the same counts of operator takeovers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Event
from typing import Any

import numpy as np

DEFAULT_SEED = 10_000  # the actor's evaluation seeds: seed + episode index


Observation = dict[str, np.ndarray]


@dataclass
class EpisodeResult:
    """One evaluation episode.

    Attributes:
        seed: the episode's reset seed.
        success: the episode ended in success (the task's check, or the operator's label).
        length: env steps.
        time_s: length x the control period, s (the robot's time, not the wall clock); None for an
            env without a control period (a gymnasium env).
        interventions: separate operator takeovers; intervention_steps: steps the operator drove.
        label: the operator's "success"/"failure" label that ended it, or None.
    """

    seed: int
    success: bool
    length: int
    time_s: float | None
    interventions: int = 0
    intervention_steps: int = 0
    label: str | None = None


@dataclass
class EvalSummary:
    """Totals over evaluation episodes.

    Attributes:
        episodes / successes: counts. success_rate: successes / episodes.
        mean_length: mean episode length, env steps.
        mean_time_to_success_s: mean `time_s` of the successful episodes, s (None: no success, or
            no control period).
        interventions / intervention_steps: summed over the episodes (0 without an operator).
        labelled: episodes the operator ended with a label.
    """

    episodes: int
    successes: int
    success_rate: float
    mean_length: float
    mean_time_to_success_s: float | None
    interventions: int
    intervention_steps: int
    labelled: int


def run_episodes(
    env: Any,
    act: Callable[[Observation], np.ndarray],
    episodes: int,
    seed: int = DEFAULT_SEED,
    control_period_s: float | None = None,
    stop: Event | None = None,
    progress: Callable[[int, EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run `episodes` episodes with `act` choosing every action; episode i resets with seed + i.

    Args:
        env: a RobotEnv, or one wrapped in an InterventionWrapper (whose info reports takeovers
            and labels; the bare env reports neither).
        act: observation -> action (the deterministic policy, for an evaluation).
        control_period_s: for `time_s`; default the env's own control period.
        stop: when set, no further episode starts (the current one finishes).
        progress: called after each episode with its index and result (terminal progress).
    """
    period = control_period_s if control_period_s is not None else env.unwrapped.control_period_s
    results = []
    for i in range(episodes):
        if stop is not None and stop.is_set():
            break
        obs, _ = env.reset(seed=seed + i)
        done, steps, info = False, 0, {}
        takeovers, operator_steps, was_intervening = 0, 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            steps += 1
            intervened = bool(info.get("intervened", False))
            operator_steps += intervened
            takeovers += intervened and not was_intervening
            was_intervening = intervened
            done = terminated or truncated
        results.append(
            EpisodeResult(
                seed=seed + i,
                success=bool(info.get("succeeded")),
                length=steps,
                time_s=steps * period if period > 0 else None,  # a gymnasium env has no clock rate
                interventions=int(takeovers),
                intervention_steps=int(operator_steps),
                label=info.get("human_label"),
            )
        )
        if progress is not None:
            progress(i, results[-1])
    return results


def print_progress(episodes: int) -> Callable[[int, EpisodeResult], None]:
    """A `progress` callback printing one line per evaluation episode to stderr (stdout carries
    the JSON result), with the running success count."""
    successes = 0

    def report(i: int, result: EpisodeResult) -> None:
        nonlocal successes
        successes += result.success
        print(f"evaluation {i + 1}/{episodes}: {'success' if result.success else 'failure'} in "
              f"{result.length} steps | success so far {successes}/{i + 1}", file=sys.stderr, flush=True)

    return report


def summarize(results: Sequence[EpisodeResult]) -> EvalSummary:
    """Totals of `results` (at least one episode)."""
    if not results:
        raise ValueError("no evaluation episodes to summarise")
    times = [r.time_s for r in results if r.success and r.time_s is not None]
    successes = sum(r.success for r in results)
    return EvalSummary(
        episodes=len(results),
        successes=successes,
        success_rate=successes / len(results),
        mean_length=float(np.mean([r.length for r in results])),
        mean_time_to_success_s=float(np.mean(times)) if times else None,
        interventions=sum(r.interventions for r in results),
        intervention_steps=sum(r.intervention_steps for r in results),
        labelled=sum(r.label is not None for r in results),
    )
