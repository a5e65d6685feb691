"""Every `learner.algorithm` through the real processes (`hilrl run`: a robot server, a learner and
an actor on loopback) on the sim reach task, and each one's checkpoint evaluated twice to the
same result. One module-wide set of 20 scripted demos serves every run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilrl.tools.evaluate import evaluate_run


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    from hilrl.tools.demos import record_demos
    from hilrl.transport.config import config_path, load_document

    out = tmp_path_factory.mktemp("reach") / "demos"
    record_demos(load_document(config_path("sim_reach"), ["env.connection=inprocess"]), 20, out)
    return out


def _run(hilrl, run_dir: Path, demos: Path, steps: int, *overrides: str) -> dict:
    done = hilrl("run", "--config", "sim_reach", "--run-dir", str(run_dir), "--max-env-steps", str(steps),
                 "--eval-episodes", "10", f"learner.demos=[{demos}]", "dashboard.enabled=false", *overrides,
                 timeout_s=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def _evaluates_the_same_twice(run_dir: Path) -> dict:
    first = evaluate_run(run_dir, 4, write=False)
    second = evaluate_run(run_dir, 4, write=False)
    assert first["per_episode"] == second["per_episode"]
    return first


def _episodes(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "learner" / "episodes.jsonl").read_text().splitlines()]


@pytest.mark.serial
@pytest.mark.timeout(600)
def test_bc_then_a_residual_on_it_then_sac_warm_started_from_it(tmp_path, hilrl, demos):
    """bc from the demos alone reaches the scripted expert's success (the expert succeeded in all
    20 recorded attempts); residual_sac runs on that bc run as its base; sac warm-starts from it."""
    bc_dir = tmp_path / "bc"
    bc = _run(hilrl, bc_dir, demos, 100, "learner.algorithm=bc", "learner.bc.updates=1500",
              "actor.intervention.device=none")
    assert bc["algorithm"] == "bc" and bc["updates"] == 1500  # all of them, then idle
    assert bc["eval_success_rate"] >= 0.9, bc
    assert bc["intervention_transitions"] == 0
    evaluation = _evaluates_the_same_twice(bc_dir)
    assert evaluation["checkpoint_updates"] == 1500
    progress = json.loads((bc_dir / "learner" / "progress.json").read_text())
    assert "bc_val_loss" in progress["metrics"]  # the held-out demos' loss is reported

    residual_dir = tmp_path / "residual"
    residual = _run(hilrl, residual_dir, demos, 300, "learner.algorithm=residual_sac",
                    f"learner.residual.base_run={bc_dir}", "actor.intervention.device=none")
    assert residual["algorithm"] == "residual_sac" and residual["updates"] > 0
    # A residual that starts at zero on a base that succeeds: the run keeps succeeding.
    assert residual["eval_success_rate"] >= 0.8, residual
    _evaluates_the_same_twice(residual_dir)

    warm_dir = tmp_path / "warm"
    warm = _run(hilrl, warm_dir, demos, 200, f"learner.init_from={bc_dir}", "actor.intervention.device=none")
    assert warm["algorithm"] == "sac"
    log = (warm_dir / "learner.log").read_text()
    assert "warm start from" in log and "loaded obs_norm, actor" in log and "skipped critic (not in the source)" in log
    _evaluates_the_same_twice(warm_dir)


@pytest.mark.serial
@pytest.mark.timeout(300)
def test_hg_dagger_takeovers_fall_as_the_policy_learns_from_them(tmp_path, hilrl, demos):
    """From an untrained policy (learner.bc.updates=0) the scripted operator takes over in most
    early episodes; trained on demos plus every takeover, the policy needs it ever less."""
    run_dir = tmp_path / "hg"
    summary = _run(hilrl, run_dir, demos, 800, "learner.algorithm=hg_dagger", "learner.bc.updates=0")
    assert summary["algorithm"] == "hg_dagger" and summary["intervention_transitions"] > 0
    takeovers = [e["interventions"] for e in _episodes(run_dir)]
    early, late = takeovers[:10], takeovers[-30:]
    assert sum(early) / len(early) >= 0.5, takeovers
    assert sum(late) / len(late) <= 0.5 * sum(early) / len(early), takeovers
    assert summary["eval_success_rate"] >= 0.8, summary
    _evaluates_the_same_twice(run_dir)


@pytest.mark.serial
@pytest.mark.timeout(300)
def test_rlif_trains_with_the_takeovers_as_its_only_reward(tmp_path, hilrl, demos):
    run_dir = tmp_path / "rlif"
    summary = _run(hilrl, run_dir, demos, 300, "learner.algorithm=rlif", "learner.rlif.penalty=1.0")
    assert summary["algorithm"] == "rlif" and summary["updates"] > 0 and summary["intervention_transitions"] > 0
    _evaluates_the_same_twice(run_dir)


@pytest.mark.timeout(120)
def test_a_missing_base_policy_or_warm_start_run_is_refused_before_anything_starts(tmp_path, hilrl):
    run_dir = tmp_path / "r"
    done = hilrl("run", "--config", "sim_reach", "--run-dir", str(run_dir), "learner.algorithm=residual_sac",
                 f"learner.residual.base_run={tmp_path / 'no-such-run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "learner.residual.base_run" in done.stderr and "bc" in done.stderr
    done = hilrl("run", "--config", "sim_reach", "--run-dir", str(run_dir), "learner.algorithm=residual_sac")
    assert done.returncode == 2 and "needs learner.residual.base_run" in done.stderr
    done = hilrl("run", "--config", "sim_reach", "--run-dir", str(run_dir), f"learner.init_from={tmp_path}")
    assert done.returncode == 2 and "learner.init_from" in done.stderr and "no checkpoint" in done.stderr
    assert not run_dir.exists()
    done = hilrl("learner", "--config", "sim_reach", "--run-dir", str(run_dir), f"learner.init_from={tmp_path}")
    assert done.returncode == 2 and "learner.init_from" in done.stderr and "Traceback" not in done.stderr
