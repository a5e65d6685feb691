"""Look at collected data and runs: `hilrl browse DIR [--list] [--json] [--frames EPISODE --out FOLDER]`.

What DIR is, is read from its contents:
    labels  a `labels.json` manifest (from `hilrl record-labels`): the manifest's contents, and any
            transition chunks and image files next to it;
    demos   a `demos.json` manifest (from `hilrl record-demos`): its transition chunks;
    run     a saved config (config.yaml / config.json) with learner/ or actor/ (from `hilrl run`
            or a learner's --run-dir): learner progress and checkpoints, episodes
            (learner/episodes.jsonl), the transitions the learner stored (learner/link/chunks), its
            demos, and evaluation results (actor/eval.json, actor/eval_curve.jsonl,
            eval/eval-*.json from `hilrl eval`); and one row per robot (see `robot_rows`);
    chunks  any other folder of transition chunk files (an actor's spool, learner/link/chunks).

For transition chunks: episodes, their lengths (mean/min/max, env steps), success rate (an
episode succeeded when a step terminated it with a positive reward: the task's success or the
operator's success label), intervention fraction (operator-driven steps / steps), transitions,
cameras with image sizes, and disk size. `--list` adds one line per episode with the index that
`--frames` takes.

`--frames EPISODE` writes that episode's camera frames (one PNG per camera and record, the final
observation included) to `--out`, or with `--sheet` one contact sheet per camera. PNGs are written
with Pillow when it is installed, else by a small numpy + zlib encoder (no new dependency).

For a run as it trains (camera images, actions, losses over time), use the rerun dashboard
(`hilrl run --dashboard spawn|serve`, or `rerun RUN_DIR/dashboard/*.rrd` afterwards; see the
README); browse points at the recordings a run has.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.learner.fleet import RECENT_EPISODES
from hilrl.transport.chunkfile import ChunkFileError, read_header, read_message
from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk
from hilrl.transport.run_dir import RunDir

log = logging.getLogger(__name__)

LABELS_MANIFEST = "labels.json"
DEMOS_MANIFEST = "demos.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".npy", ".npz")


class BrowseError(Exception):
    """DIR cannot be browsed (missing, unknown kind, no such episode); exit code 2."""


# ---------------------------------------------------------------------------------- chunks


@dataclass
class EpisodeInfo:
    """One episode found in a chunk folder.

    Attributes:
        index: position in the folder (first record's order): what `--frames` takes.
        session: the recording actor session; episode_id: its number within the session.
        length: transitions (env steps). records: observations stored (length + the final one).
        success: a step terminated the episode with a positive reward.
        intervention_steps: steps the operator drove.
        complete: the episode's final observation record is present.
        files: chunk file indices holding its records, in order.
    """

    index: int
    session: str
    episode_id: int
    length: int = 0
    records: int = 0
    success: bool = False
    intervention_steps: int = 0
    complete: bool = False
    files: list[int] = field(default_factory=list)


def chunk_files(path: Path) -> dict[int, Path]:
    """The numbered chunk files (000000042.chunk) in folder `path`, by index, ascending. Listed
    here rather than through `ChunkDirectory`, which as a writer's tool creates its lock file and
    tidies temp files: browsing changes nothing and works on a read-only copy."""
    found = {}
    for p in path.iterdir():
        if p.suffix == ".chunk" and p.stem.isdigit():
            found[int(p.stem)] = p
    return dict(sorted(found.items()))


def scan_chunks(path: Path) -> tuple[list[EpisodeInfo], dict[str, Any]]:
    """Every transition chunk in folder `path` -> (episodes in order, folder totals). Files that
    do not read back are counted as `unreadable_files`, never fatal; other messages are skipped."""
    episodes: dict[tuple[str, int], EpisodeInfo] = {}
    cameras: dict[str, list[int]] = {}
    chunks = unreadable = records = 0
    for index, file in chunk_files(path).items():
        try:
            _, msg = read_message(file, LEARNER_MESSAGES)
        except ChunkFileError as exc:
            log.info("skipping %s", exc)
            unreadable += 1
            continue
        if not isinstance(msg, TransitionChunk):
            continue  # e.g. episode stats next to the chunks
        chunks += 1
        records += len(msg)
        for cam, images in msg.obs_images.items():
            cameras.setdefault(cam, list(images.shape[1:]))
        success = msg.terminated & (msg.reward > 0) & msg.has_action
        for episode_id in dict.fromkeys(msg.episode_id.tolist()):  # in order of appearance
            key = (msg.actor_session, int(episode_id))
            ep = episodes.get(key)
            if ep is None:
                ep = episodes[key] = EpisodeInfo(len(episodes), msg.actor_session, int(episode_id))
            mask = msg.episode_id == episode_id
            ep.records += int(mask.sum())
            ep.length += int((mask & msg.has_action).sum())
            ep.success |= bool((mask & success).any())
            ep.intervention_steps += int((mask & msg.intervened & msg.has_action).sum())
            ep.complete |= bool((mask & ~msg.has_action).any())
            ep.files.append(index)
    listed = list(episodes.values())
    totals = {
        "chunk_files": chunks,
        "unreadable_files": unreadable,
        "records": records,
        "cameras": cameras,
        "sessions": len({e.session for e in listed}),
        **episode_totals([(e.length, e.success, e.intervention_steps) for e in listed]),
    }
    return listed, totals


def episode_totals(episodes: Sequence[tuple[int, bool, int]]) -> dict[str, Any]:
    """(length, success, intervention steps) per episode -> episodes, transitions, lengths
    (mean/min/max, env steps), successes, success rate, intervention steps and fraction."""
    lengths = [n for n, _, _ in episodes]
    steps = sum(lengths)
    operator = sum(i for _, _, i in episodes)
    successes = sum(bool(s) for _, s, _ in episodes)
    return {
        "episodes": len(episodes),
        "transitions": steps,
        "length_steps": {
            "mean": float(np.mean(lengths)) if lengths else None,
            "min": min(lengths) if lengths else None,
            "max": max(lengths) if lengths else None,
        },
        "successes": successes,
        "success_rate": successes / len(episodes) if episodes else None,
        "intervention_steps": operator,
        "intervention_fraction": operator / steps if steps else None,
    }


# ---------------------------------------------------------------------------------- folders


def disk_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _read_json(path: Path) -> Any:
    """A JSON file's content; None when it is missing or unreadable (a browse tool must not stop
    at one bad file)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _has_chunks(path: Path) -> bool:
    return bool(chunk_files(path))


def detect_kind(path: Path) -> str:
    """"labels", "demos", "run" or "chunks" (see the module docstring). Raises BrowseError."""
    if not path.is_dir():
        raise BrowseError(f"{path}: no such folder")
    if (path / LABELS_MANIFEST).is_file():
        return "labels"
    if (path / DEMOS_MANIFEST).is_file():
        return "demos"
    run = RunDir(path)
    if run.saved_config() is not None and (run.learner.is_dir() or run.actor.is_dir()):
        return "run"
    if _has_chunks(path):
        return "chunks"
    raise BrowseError(
        f"{path} is not a demo, label or run folder (no {DEMOS_MANIFEST}, {LABELS_MANIFEST}, saved run "
        "config or transition chunk files)"
    )


def summarize(path: Path, list_episodes: bool = False) -> dict[str, Any]:
    """What `hilrl browse` reports for folder `path`, as a JSON-able dict with "kind"."""
    kind = detect_kind(path)
    out: dict[str, Any] = {"kind": kind, "path": str(path)}
    if kind == "run":
        out.update(_summarize_run(path, list_episodes))
    elif kind == "labels":
        out.update(_summarize_labels(path, list_episodes))
    else:
        episodes, totals = scan_chunks(path)
        out.update(totals)
        if kind == "demos":
            out["manifest"] = _read_json(path / DEMOS_MANIFEST)
        if list_episodes:
            out["episode_list"] = [_episode_row(e) for e in episodes]
    out["disk_bytes"] = disk_bytes(path)
    return out


def _episode_row(e: EpisodeInfo) -> dict[str, Any]:
    row = asdict(e)
    row.pop("files")
    return row


def _summarize_labels(path: Path, list_episodes: bool) -> dict[str, Any]:
    """A label folder: its manifest (whatever shape it has), plus chunks and images beside it."""
    manifest = _read_json(path / LABELS_MANIFEST)
    out: dict[str, Any] = {"manifest": manifest if manifest is not None else "unreadable"}
    label_counts: dict[str, int] = {}
    if isinstance(manifest, dict):
        entries = [v for v in manifest.values() if isinstance(v, list)]
    elif isinstance(manifest, list):
        entries = [manifest]
    else:
        entries = []
    for rows in entries:
        for row in rows:
            if isinstance(row, dict):
                for key in ("label", "success", "human_label"):
                    if key in row and isinstance(row[key], (str, bool, int)):
                        label_counts[f"{key}={row[key]}"] = label_counts.get(f"{key}={row[key]}", 0) + 1
    if label_counts:
        out["label_counts"] = label_counts
    images: dict[str, int] = {}
    for p in path.rglob("*"):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            images[p.suffix.lower()] = images.get(p.suffix.lower(), 0) + 1
    if images:
        out["image_files"] = images
    # Message files by kind, from their headers alone: label sets store their own message kinds
    # (actor/labels.py), which the transition reader does not know.
    kinds: dict[str, int] = {}
    for file in chunk_files(path).values():
        try:
            kind = str(read_header(file).get("kind", "?"))
        except ChunkFileError:
            kind = "unreadable"
        kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        out["message_files"] = kinds
    if kinds.get("transition_chunk"):
        episodes, totals = scan_chunks(path)
        out["chunks"] = totals
        if list_episodes:
            out["episode_list"] = [_episode_row(e) for e in episodes]
    return out


def _summarize_run(path: Path, list_episodes: bool) -> dict[str, Any]:
    from hilrl.transport.config import load_document  # yaml: only for runs

    out: dict[str, Any] = {}
    config_path = RunDir(path).saved_config()
    try:
        doc = load_document(config_path)
    except Exception as exc:  # a browse tool reports a bad config, it does not stop at it
        doc = {}
        out["config_error"] = str(exc)
    out["task"] = doc.get("task", "")
    out["config"] = str(config_path)
    paths = RunDir(path)
    out["run_summary"] = _read_json(paths.summary)

    learner: dict[str, Any] = {"progress": _read_json(paths.progress)}
    ckpt = paths.checkpoint
    if ckpt.is_file():
        try:
            body = read_header(ckpt).get("body", {})
            learner["checkpoint"] = {
                "updates": body.get("updates"), "weights_version": body.get("weights_version"),
                "bytes": ckpt.stat().st_size,
            }
        except ChunkFileError as exc:
            learner["checkpoint"] = {"error": str(exc)}
    numbered = paths.numbered_checkpoints()
    if numbered:
        learner["numbered_checkpoints"] = list(numbered)
    out["learner"] = learner

    # Episodes as the actor reported them (exact, cheap: no chunk has to be read).
    stats = _read_jsonl(paths.episodes)
    out["episode_stats"] = {
        **episode_totals([(int(s.get("length", 0)), bool(s.get("success")), int(s.get("intervention_steps", 0)))
                          for s in stats]),
        "interventions": sum(int(s.get("interventions", 0)) for s in stats),
    }
    progress = learner["progress"]
    out["robots"] = robot_rows(stats, progress.get("robots") if isinstance(progress, dict) else None, paths)
    chunk_dir = paths.learner_chunks
    if chunk_dir.is_dir() and _has_chunks(chunk_dir):
        episodes, totals = scan_chunks(chunk_dir)
        out["stored_transitions"] = totals
        if list_episodes:
            out["episode_list"] = [_episode_row(e) for e in episodes]
    demos = [Path(d) for d in ((doc.get("learner") or {}).get("demos") or []) if isinstance(d, str)]
    out["demos"] = {}
    for folder in demos:
        if folder.is_dir():
            _, totals = scan_chunks(folder)
            out["demos"][str(folder)] = {k: totals[k] for k in ("episodes", "transitions", "success_rate")}
        else:
            out["demos"][str(folder)] = "missing"

    evaluations: dict[str, Any] = {"final": _read_json(paths.actor_eval)}
    curve = _read_jsonl(paths.eval_curve)
    if curve:
        evaluations["curve"] = [
            {"env_steps": c.get("env_steps"), "success_rate": c.get("eval_success_rate")} for c in curve
        ]
    runs = []
    for p in sorted(paths.eval_dir.glob("eval-*.json")):
        r = _read_json(p)
        if isinstance(r, dict):
            runs.append({k: r.get(k) for k in ("checkpoint_updates", "episodes", "success_rate",
                                                "mean_time_to_success_s", "mean_episode_length", "interventions")}
                        | {"file": p.name})
    if runs:
        evaluations["hilrl_eval"] = runs
    out["evaluations"] = evaluations
    # The rerun dashboard's recordings (hilrl.transport.dashboard): the view of the run as it trained.
    out["dashboard_recordings"] = len(list(paths.dashboard.glob("*.rrd")))
    return out


def robot_of_stats(stats: dict[str, Any]) -> str:
    """The robot an episodes.jsonl line came from: its "robot_name", else (an old run, or an actor
    that gave none) its actor session, as the learner names it (hilrl.learner.fleet.robot_of)."""
    return str(stats.get("robot_name") or stats.get("actor_session") or "?")


def _eval_of(path: Path) -> dict[str, Any] | None:
    result = _read_json(path)
    if not isinstance(result, dict):
        return None
    return {"success_rate": result.get("eval_success_rate"), "episodes": result.get("eval_episodes"),
            "policy_version": result.get("policy_version"), "env_steps": result.get("env_steps"),
            "file": str(path)}


def robot_rows(stats: Sequence[dict[str, Any]], reports: Any, paths: RunDir) -> dict[str, dict[str, Any]]:
    """One row per robot, by name (sorted): its episodes in learner/episodes.jsonl (`stats`, in the
    order written), the learner's report on it (progress.json "robots": `reports`, None in old runs)
    and its actor's final evaluation (RUN_DIR/robots/<name>/actor/eval.json; in a run of one robot
    without robots/, RUN_DIR/actor/eval.json).

    Each row: episodes; episode_steps (env steps of its finished episodes); env_steps (the
    learner's count when it reports one, which includes an episode under way, else episode_steps);
    successes, success_rate (all its episodes); recent_episodes, recent_success_rate (its last
    RECENT_EPISODES); intervention_steps, intervention_fraction (operator steps / steps, all its
    episodes); interventions (takeovers); policy_version (the weights version of its last
    episode); sessions (actor sessions it ran); link, last_heard_s (from the learner's report, else
    None); learner (that report as written); eval (success_rate, episodes, policy_version,
    env_steps, file; or None)."""
    mine: dict[str, list[dict[str, Any]]] = {}
    for s in stats:
        mine.setdefault(robot_of_stats(s), []).append(s)
    reports = {str(k): v for k, v in reports.items() if isinstance(v, dict)} if isinstance(reports, dict) else {}
    robot_dirs = paths.robots()
    evals = {name: _eval_of(d.actor_eval) for name, d in robot_dirs.items()}
    evals = {name: e for name, e in evals.items() if e is not None}
    names = sorted(set(mine) | set(reports) | set(evals))
    if len(names) == 1 and not robot_dirs and names[0] not in evals:
        single = _eval_of(paths.actor_eval)  # a run of one robot: its actor's part is RUN_DIR/actor
        if single is not None:
            evals[names[0]] = single
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        episodes = mine.get(name, [])
        totals = episode_totals([(int(s.get("length", 0)), bool(s.get("success")), int(s.get("intervention_steps", 0)))
                                 for s in episodes])
        recent = episodes[-RECENT_EPISODES:]
        report = reports.get(name)
        learner_steps = report.get("env_steps") if report else None
        last_version = episodes[-1].get("policy_version") if episodes else None
        rows[name] = {
            "episodes": totals["episodes"],
            "episode_steps": totals["transitions"],
            "env_steps": learner_steps if isinstance(learner_steps, int) else totals["transitions"],
            "successes": totals["successes"],
            "success_rate": totals["success_rate"],
            "recent_episodes": len(recent),
            "recent_success_rate": sum(bool(s.get("success")) for s in recent) / len(recent) if recent else None,
            "intervention_steps": totals["intervention_steps"],
            "intervention_fraction": totals["intervention_fraction"],
            "interventions": sum(int(s.get("interventions", 0)) for s in episodes),
            "policy_version": int(last_version) if isinstance(last_version, (int, float)) else None,
            "sessions": sorted({str(s.get("actor_session", "")) for s in episodes}),
            "link": report.get("link") if report else None,
            "last_heard_s": report.get("last_heard_s") if report else None,
            "learner": report,
            "eval": evals.get(name),
        }
    return rows


# ---------------------------------------------------------------------------------- printing


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _manifest_value(value: Any) -> str:
    """One manifest entry on one line: lists by length, small flat mappings inline."""
    if isinstance(value, list):
        return f"{len(value)} entries"
    if isinstance(value, dict):
        flat = all(not isinstance(v, (dict, list)) or (isinstance(v, list) and len(v) <= 4) for v in value.values())
        if flat and len(value) <= 8:
            return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items())
        return f"{len(value)} keys"
    return value if isinstance(value, str) else json.dumps(value)


def _chunk_lines(t: dict[str, Any], indent: str = "") -> list[str]:
    lengths = t["length_steps"]
    lines = [
        f"{indent}episodes        {t['episodes']} ({t['successes']} succeeded: {_pct(t['success_rate'])})",
        f"{indent}lengths         "
        + ("-" if lengths["mean"] is None else f"mean {lengths['mean']:.1f}, min {lengths['min']}, max {lengths['max']} steps"),
        f"{indent}transitions     {t['transitions']}"
        + (f" in {t['chunk_files']} chunk files" if "chunk_files" in t else "")
        + (f" ({t['unreadable_files']} unreadable)" if t.get("unreadable_files") else ""),
        f"{indent}interventions   {_pct(t['intervention_fraction'])} of steps ({t['intervention_steps']} steps)",
    ]
    if "cameras" in t:
        cams = ", ".join(f"{n} {s[0]}x{s[1]}" for n, s in t["cameras"].items()) or "none (state only)"
        lines.append(f"{indent}cameras         {cams}")
    return lines


def _robot_lines(robots: dict[str, dict[str, Any]]) -> list[str]:
    """The per-robot table of a run (`robot_rows`), one row per robot, columns aligned."""
    if not robots:
        return ["robots          none reported yet"]
    header = ["robot", "episodes", "env steps", "success", f"last {RECENT_EPISODES}", "operator", "weights",
              "link", "eval"]
    table = [header]
    for name, r in robots.items():
        link = r.get("link") or "-"
        if r.get("link") and isinstance(r.get("last_heard_s"), (int, float)):
            link += f" ({r['last_heard_s']:.1f} s ago)"
        ev = r.get("eval")
        table.append([
            name, str(r["episodes"]), str(r["env_steps"]), _pct(r["success_rate"]), _pct(r["recent_success_rate"]),
            _pct(r["intervention_fraction"]), "-" if r["policy_version"] is None else f"v{r['policy_version']}",
            link, "-" if not ev else f"{_pct(ev.get('success_rate'))} of {ev.get('episodes')}",
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"robots          {len(robots)} (success over all episodes and the last {RECENT_EPISODES}; operator: "
             "share of steps; weights: the last episode's)"]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:7], widths[1:7], strict=True)]
        cells += [c.ljust(w) for c, w in zip(row[7:], widths[7:], strict=True)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable report of `summarize`'s result."""
    lines = [f"{s['path']}: {s['kind']} folder, {_size(s['disk_bytes'])} on disk"]
    if s["kind"] in ("demos", "chunks"):
        m = s.get("manifest")
        if isinstance(m, dict):
            lines.append(f"task            {m.get('task', '?')} (recorded by {m.get('device', 'expert')}, "
                         f"{m.get('attempts', '?')} attempts{', interrupted' if m.get('interrupted') else ''})")
        lines += _chunk_lines(s)
    elif s["kind"] == "labels":
        m = s["manifest"]
        if isinstance(m, dict):
            for key, value in m.items():
                lines.append(f"{key:<15} {_manifest_value(value)}" if len(key) < 16 else f"{key} {_manifest_value(value)}")
        elif isinstance(m, list):
            lines.append(f"manifest        {len(m)} entries")
        else:
            lines.append(f"manifest        {m}")
        for label, n in s.get("label_counts", {}).items():
            lines.append(f"  {label}: {n}")
        if s.get("message_files"):
            lines.append("message files   " + ", ".join(f"{n} {kind}" for kind, n in s["message_files"].items()))
        if s.get("image_files"):
            lines.append("image files     " + ", ".join(f"{n} {ext}" for ext, n in s["image_files"].items()))
        if "chunks" in s:
            lines += _chunk_lines(s["chunks"])
    else:
        lines.append(f"task            {s['task']} ({s['config']})")
        prog = s["learner"].get("progress") or {}
        ckpt = s["learner"].get("checkpoint") or {}
        if prog:
            lines.append(
                f"learner         {prog.get('updates', 0)} updates, weights v{prog.get('weights_version', -1)}, "
                f"{prog.get('env_steps', 0)} env steps; buffers: online {prog.get('online_transitions', 0)}, "
                f"demo {prog.get('demo_transitions', 0)}, intervention {prog.get('intervention_transitions', 0)}"
            )
        else:
            lines.append("learner         no progress yet")
        if ckpt:
            lines.append(f"checkpoint      {ckpt.get('updates')} updates, weights v{ckpt.get('weights_version')}"
                         + (f", numbered: {s['learner']['numbered_checkpoints']}" if "numbered_checkpoints" in s["learner"] else ""))
        e = s["episode_stats"]
        lines.append("episodes (as the actor reported them):")
        lines += _chunk_lines(e, "  ")
        lines.append(f"  takeovers       {e['interventions']}")
        lines += _robot_lines(s.get("robots") or {})
        if "stored_transitions" in s:
            lines.append("stored by the learner (learner/link/chunks):")
            lines += _chunk_lines(s["stored_transitions"], "  ")
        for folder, d in s["demos"].items():
            lines.append(f"demos           {folder}: " + (d if isinstance(d, str) else
                         f"{d['episodes']} episodes, {d['transitions']} transitions"))
        ev = s["evaluations"]
        final = ev.get("final")
        if isinstance(final, dict):
            lines.append(
                f"final eval      {_pct(final.get('eval_success_rate'))} of {final.get('eval_episodes')} episodes "
                f"(weights v{final.get('policy_version')}, {final.get('env_steps')} env steps)"
            )
        if ev.get("curve"):
            lines.append("eval curve      " + ", ".join(f"{c['env_steps']}: {_pct(c['success_rate'])}" for c in ev["curve"]))
        for r in ev.get("hilrl_eval", []):
            t = r["mean_time_to_success_s"]
            lines.append(
                f"hilrl eval      {r['file']}: {_pct(r['success_rate'])} of {r['episodes']} at {r['checkpoint_updates']} "
                f"updates, time to success {'-' if t is None else f'{t:.1f} s'}, {r['interventions']} takeovers"
            )
        recordings = s.get("dashboard_recordings", 0)
        lines.append(
            f"dashboard       rerun {s['path']}/dashboard/*.rrd ({recordings} recordings)" if recordings else
            "dashboard       none recorded; to watch a run as it trains: hilrl run --dashboard spawn|serve (rerun)"
        )
    for row in s.get("episode_list", []):
        lines.append(
            f"  episode {row['index']:4d}: {row['length']:4d} steps, {'success' if row['success'] else 'failure'}, "
            f"operator {row['intervention_steps']} steps{'' if row['complete'] else ', cut short'} "
            f"({row['session']} #{row['episode_id']})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- frames


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG file of a uint8 (H, W, 3) or (H, W) image: numpy and zlib only (filter 0 per row)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        color_type, channels = 0, 1
    elif image.ndim == 3 and image.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    h, w = image.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * channels)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b"")


def write_png(path: Path, image: np.ndarray, use_pil: bool | None = None) -> None:
    """Write `image` as PNG: with Pillow when installed (or `use_pil`), else `png_bytes`."""
    if use_pil is not False:
        try:
            from PIL import Image
        except ImportError:
            if use_pil:
                raise
        else:
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path)
            return
    path.write_bytes(png_bytes(image))


def contact_sheet(frames: np.ndarray, gap: int = 2) -> np.ndarray:
    """(N, H, W, 3) frames -> one image, ceil(sqrt(N)) columns, `gap` black pixels between."""
    n, h, w, c = frames.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap, c), np.uint8)
    for i, frame in enumerate(frames):
        r, q = divmod(i, cols)
        sheet[r * (h + gap): r * (h + gap) + h, q * (w + gap): q * (w + gap) + w] = frame
    return sheet


def frames_folder(path: Path) -> Path:
    """The chunk folder whose episodes `--frames` indexes: DIR itself, or a run's stored chunks."""
    kind = detect_kind(path)
    if kind == "run":
        return RunDir(path).learner_chunks
    if kind == "labels":
        raise BrowseError(f"{path} is a label folder: --frames reads transition chunks (demo, run and chunk folders)")
    return path


def export_frames(path: Path, episode: int, out: Path, sheet: bool = False, use_pil: bool | None = None) -> list[Path]:
    """Write episode `episode` (its index in `--list`) of folder `path` as PNGs in `out`:
    <camera>-<step>.png for every record, or with `sheet` one <camera>-sheet.png per camera.
    Returns the files written. Raises BrowseError (no such episode, no cameras)."""
    folder = frames_folder(path)
    if not folder.is_dir():
        raise BrowseError(f"{folder}: no stored transitions to take frames from")
    episodes, totals = scan_chunks(folder)
    if not 0 <= episode < len(episodes):
        raise BrowseError(f"no episode {episode} in {folder}: it has {len(episodes)} (0..{len(episodes) - 1}; see --list)")
    if not totals["cameras"]:
        raise BrowseError(f"{folder} has no camera images (a state-only observation)")
    ep = episodes[episode]
    files = chunk_files(folder)
    frames: dict[str, list[np.ndarray]] = {cam: [] for cam in totals["cameras"]}
    steps: list[int] = []
    for index in ep.files:
        _, msg = read_message(files[index], LEARNER_MESSAGES)
        mask = msg.episode_id == ep.episode_id  # the files are this episode's session's
        steps += msg.step_index[mask].tolist()
        for cam, images in msg.obs_images.items():
            frames[cam] += list(images[mask])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for cam, images in frames.items():
        if sheet:
            target = out / f"{cam}-sheet.png"
            write_png(target, contact_sheet(np.stack(images)), use_pil)
            written.append(target)
            continue
        for step, image in zip(steps, images, strict=True):
            target = out / f"{cam}-{step:04d}.png"
            write_png(target, image, use_pil)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Summarise a demo, label or run folder (kind detected from its contents); "
        "export an episode's camera frames. For a run as it trains, use the rerun dashboard.",
    )
    parser.add_argument("dir", type=Path, help="folder from record-demos, record-labels, hilrl run, or any chunk folder")
    parser.add_argument("--list", action="store_true", help="one line per episode (with the index --frames takes)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--frames", type=int, metavar="EPISODE", help="write this episode's camera frames as PNG files")
    parser.add_argument("--out", type=Path, help="folder for --frames (default DIRNAME-episode-N-frames here)")
    parser.add_argument("--sheet", action="store_true", help="with --frames: one contact sheet per camera instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.frames is not None:
            out = args.out or Path(f"{args.dir.resolve().name}-episode-{args.frames}-frames")
            written = export_frames(args.dir, args.frames, out, sheet=args.sheet)
            print(f"wrote {len(written)} {'contact sheets' if args.sheet else 'frames'} of episode {args.frames} to {out}")
            return 0
        summary = summarize(args.dir, list_episodes=args.list)
    except BrowseError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
