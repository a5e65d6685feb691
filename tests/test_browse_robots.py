"""`hilrl browse RUN_DIR` per robot, on synthetic run directories (no processes, no chunks): the
episodes the learner wrote to learner/episodes.jsonl grouped by robot, the learner's per-robot
report (progress.json "robots"), each robot's evaluation (robots/<name>/actor/eval.json), and old
runs whose episode lines carry no robot name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hilrl.tools import browse


def episode(robot: str | None, session: str, n: int, success: bool, version: int, length: int = 10,
            operator: int = 0) -> dict:
    """One episodes.jsonl line as the learner writes it (vars(EpisodeStats)); robot None: an old
    line, from before the learner wrote "robot_name"."""
    line = {
        "actor_session": session, "seq": n, "episode_id": n, "episode_return": float(success), "success": success,
        "length": length, "interventions": 1 if operator else 0, "intervention_steps": operator,
        "intervention_fraction": operator / length, "period_p50_ms": 100.0, "period_p99_ms": 110.0,
        "policy_version": version, "env_steps": (n + 1) * length, "period_max_ms": 120.0,
    }
    if robot is not None:
        line["robot_name"] = robot
    return line


def make_run(root: Path, lines: list[dict], progress: dict | None = None) -> Path:
    (root / "learner").mkdir(parents=True)
    (root / "config.yaml").write_text("task: reach\n")
    (root / "learner" / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if progress is not None:
        (root / "learner" / "progress.json").write_text(json.dumps(progress))
    return root


def report(env_steps: int, episodes: int, link: str, last_heard_s: float | None) -> dict:
    return {"env_steps": env_steps, "episodes": episodes, "recent_success_rate": 0.5,
            "recent_intervention_fraction": 0.1, "env_steps_per_s": 9.5, "weights_lag": 1, "link": link,
            "last_heard_s": last_heard_s}


def write_eval(robot_dir: Path, rate: float, episodes: int) -> None:
    (robot_dir / "actor").mkdir(parents=True)
    (robot_dir / "actor" / "eval.json").write_text(json.dumps(
        {"eval_success_rate": rate, "eval_episodes": episodes, "policy_version": 7, "env_steps": 300}))


def row_of(out: str, name: str) -> list[str]:
    """The table row of robot `name` in browse's printed report, split into its cells."""
    (line,) = [x for x in out.splitlines() if x.startswith(f"  {name} ")]
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
def two_robots(tmp_path) -> Path:
    """arm-a: 25 episodes (the first 5 succeed, the last 20 one in four), 10 steps each, 2 operator
    steps in each of its first 10; arm-b: 4 episodes, 3 successes, 5 steps each. Interleaved as the
    learner would have received them; arm-a's last episode ran weights v12, arm-b's v9."""
    a = [episode("arm-a", "sa", i, success=i < 5 or (i >= 5 and i % 4 == 0), version=i // 2,
                 operator=2 if i < 10 else 0) for i in range(25)]
    b = [episode("arm-b", "sb", i, success=i != 1, version=6 + i, length=5) for i in range(4)]
    lines = a[:10] + b[:2] + a[10:] + b[2:]
    progress = {"updates": 40, "weights_version": 13, "env_steps": 280, "episodes": 29,
                "robots": {"arm-a": report(255, 25, "connected", 0.4), "arm-b": report(20, 4, "silent", 12.0)}}
    run = make_run(tmp_path / "run", lines, progress)
    write_eval(run / "robots" / "arm-a", 0.8, 10)  # from `hilrl run --robots 2`
    return run


def test_browse_lists_each_robots_episodes_successes_and_link(two_robots, capsys):
    s = browse.summarize(two_robots)
    assert s["kind"] == "run" and list(s["robots"]) == ["arm-a", "arm-b"]
    a, b = s["robots"]["arm-a"], s["robots"]["arm-b"]
    # arm-a's last 20 episodes are 5..24: successes at 8, 12, 16, 20 and 24
    assert (a["episodes"], a["successes"], a["success_rate"]) == (25, 10, 10 / 25)
    assert (a["recent_episodes"], a["recent_success_rate"]) == (20, 5 / 20)
    assert (a["intervention_steps"], a["intervention_fraction"], a["interventions"]) == (20, 20 / 250, 10)
    assert (a["episode_steps"], a["env_steps"]) == (250, 255)  # the learner's count, with the episode under way
    assert a["policy_version"] == 12 and a["sessions"] == ["sa"]
    assert (a["link"], a["last_heard_s"]) == ("connected", 0.4) and a["learner"]["weights_lag"] == 1
    assert a["eval"]["success_rate"] == 0.8 and a["eval"]["episodes"] == 10
    assert (b["episodes"], b["successes"], b["success_rate"], b["recent_success_rate"]) == (4, 3, 0.75, 0.75)
    assert (b["intervention_fraction"], b["policy_version"], b["link"], b["eval"]) == (0.0, 9, "silent", None)
    # What browse showed before is all still there.
    assert s["episode_stats"]["episodes"] == 29 and s["episode_stats"]["successes"] == 13
    assert s["learner"]["progress"]["updates"] == 40

    assert browse.main([str(two_robots)]) == 0
    out = capsys.readouterr().out
    assert "robots          2 (success" in out and "episodes        29 (13 succeeded: 45%)" in out
    assert row_of(out, "arm-a") == ["arm-a", "25", "255", "40%", "25%", "8%", "v12", "connected (0.4 s ago)",
                                    "80% of 10"]
    assert row_of(out, "arm-b") == ["arm-b", "4", "20", "75%", "75%", "0%", "v9", "silent (12.0 s ago)", "-"]

    assert browse.main([str(two_robots), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["robots"] == json.loads(json.dumps(s["robots"]))


def test_an_old_run_groups_episodes_by_actor_session_and_has_no_link(tmp_path, capsys):
    # Lines without "robot_name" (older learners) and with "" (an actor that gave none), no
    # "robots" in progress.json: robots are named by session, link state unknown.
    lines = [episode(None, "s1", 0, True, 3), episode(None, "s1", 1, False, 4), episode("", "s2", 0, True, 5)]
    run = make_run(tmp_path / "old", lines, {"updates": 5, "weights_version": 5, "env_steps": 30})
    s = browse.summarize(run)
    assert list(s["robots"]) == ["s1", "s2"]
    assert (s["robots"]["s1"]["episodes"], s["robots"]["s1"]["success_rate"], s["robots"]["s1"]["policy_version"]) == (
        2, 0.5, 4)
    assert s["robots"]["s2"]["env_steps"] == 10  # its episodes' steps: the learner reported none
    assert all(r["link"] is None and r["learner"] is None for r in s["robots"].values())
    assert browse.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert row_of(out, "s1") == ["s1", "2", "20", "50%", "50%", "0%", "v4", "-", "-"]


def test_a_single_robot_still_gets_its_row_with_the_runs_own_eval(tmp_path, capsys):
    lines = [episode("solo", "s", i, success=i % 2 == 0, version=i) for i in range(3)]
    run = make_run(tmp_path / "one", lines, {"updates": 9, "robots": {"solo": report(30, 3, "gone", None)}})
    write_eval(run, 0.5, 4)  # RUN_DIR/actor/eval.json: a run of one robot has no robots/ folder
    s = browse.summarize(run)
    assert list(s["robots"]) == ["solo"] and s["robots"]["solo"]["eval"]["success_rate"] == 0.5
    assert browse.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "robots          1 (success" in out and row_of(out, "solo") == ["solo", "3", "30", "67%", "67%", "0%", "v2", "gone", "50% of 4"]


def test_robots_known_only_to_the_learner_or_their_eval_are_rows_too(tmp_path, capsys):
    # A robot that connected but finished no episode yet, a robot folder with only an evaluation,
    # and a corrupt line: all shown, nothing fails.
    run = make_run(tmp_path / "r", [episode("a", "s", 0, True, 1)],
                   {"robots": {"a": report(12, 1, "connected", 0.1), "b": report(7, 0, "connected", 0.3)}})
    with open(run / "learner" / "episodes.jsonl", "a") as f:
        f.write('{"actor_session": "s", "succ')  # cut by a crash mid-write
    write_eval(run / "robots" / "c", 1.0, 2)
    s = browse.summarize(run)
    assert list(s["robots"]) == ["a", "b", "c"]
    b = s["robots"]["b"]
    assert (b["episodes"], b["env_steps"], b["success_rate"], b["recent_success_rate"], b["policy_version"]) == (
        0, 7, None, None, None)
    assert s["robots"]["c"]["eval"]["episodes"] == 2 and s["robots"]["c"]["link"] is None
    assert browse.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert row_of(out, "b") == ["b", "0", "7", "-", "-", "-", "-", "connected (0.3 s ago)", "-"]
    assert row_of(out, "c") == ["c", "0", "0", "-", "-", "-", "-", "-", "100% of 2"]


def test_a_run_with_no_episodes_says_so(tmp_path, capsys):
    run = make_run(tmp_path / "empty", [])
    assert browse.summarize(run)["robots"] == {}
    assert browse.main([str(run)]) == 0
    assert "robots          none reported yet" in capsys.readouterr().out
