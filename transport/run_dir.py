"""The run directory's layout: every path a process or tool reads or writes in a run, defined once.

    RUN_DIR/
      config.yaml             the config `hilrl run` ran with (the document, overrides applied)
      config.json             the config the learner started with (what `--resume` reloads)
      summary.json            `hilrl run`'s final figures
      demos/                  demonstrations `hilrl run` recorded for this run
      robot_server.log, learner.log, actor.log    `hilrl run`'s child processes' output
      learner/
        progress.json         the learner's progress, about once a second
        episodes.jsonl        one line of stats per episode the actors finished
        checkpoint.bin        the latest checkpoint (hilrl.transport.checkpoint)
        checkpoints/checkpoint-<updates, 9 digits>.bin    kept ones (learner.keep_checkpoints)
        link/chunks/          every chunk the learner stored (and acknowledged)
      actor/
        spool/                chunks not yet acknowledged by the learner
        eval.json             the actor's end-of-run evaluation
        eval_curve.jsonl      its periodic evaluations (actor.eval_every_steps)
        link.json             its link counters at exit (sent, resent, unacknowledged)
      eval/eval-<updates>-<time>.json    `hilrl eval` results
      dashboard/<process>.rrd             the rerun recordings (hilrl.transport.dashboard)
      robots/<name>/          `hilrl run --robots N` (N > 1): each robot's actor's part (actor/,
                              actor.log, dashboard/), a run directory of its own

Processes on different machines each hold their own part (the learner's workstation the learner/
folder, each robot's machine its actor/ folder); none of them assumes another's part is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAVED_CONFIGS = ("config.yaml", "config.json")
"""The saved configs, in the order they are looked for (hilrl run writes the first, the learner the
second)."""


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory (nothing is created or checked here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------------ the run

    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def config_json(self) -> Path:
        return self.root / "config.json"

    def saved_configs(self) -> list[Path]:
        """Every saved config path, in the order they are looked for (see SAVED_CONFIGS)."""
        return [self.root / name for name in SAVED_CONFIGS]

    def saved_config(self) -> Path | None:
        """The first saved config that exists, or None."""
        return next((p for p in self.saved_configs() if p.is_file()), None)

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def demos(self) -> Path:
        return self.root / "demos"

    def log(self, process: str) -> Path:
        """`hilrl run`'s log of a child process ("robot_server", "learner", "actor")."""
        return self.root / f"{process}.log"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def dashboard(self) -> Path:
        return self.root / "dashboard"

    # ------------------------------------------------------------------ the learner's part

    @property
    def learner(self) -> Path:
        return self.root / "learner"

    @property
    def progress(self) -> Path:
        return self.learner / "progress.json"

    @property
    def episodes(self) -> Path:
        return self.learner / "episodes.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.learner / "checkpoint.bin"

    @property
    def checkpoints(self) -> Path:
        """Folder of the numbered checkpoints."""
        return self.learner / "checkpoints"

    def numbered_checkpoint(self, updates: int) -> Path:
        """The kept checkpoint written at `updates` gradient updates (zero-padded: names sort by
        updates)."""
        return self.checkpoints / f"checkpoint-{updates:09d}.bin"

    def numbered_checkpoints(self) -> dict[int, Path]:
        """The kept checkpoints that exist, by gradient updates, in order."""
        found = {}
        for path in self.checkpoints.glob("checkpoint-*.bin"):
            number = path.stem.removeprefix("checkpoint-")
            if number.isdigit():
                found[int(number)] = path
        return dict(sorted(found.items()))

    @property
    def learner_link(self) -> Path:
        """The learner link's store (`LearnerLink(store_dir=...)`)."""
        return self.learner / "link"

    @property
    def learner_chunks(self) -> Path:
        """The chunks the learner stored, inside its link's store."""
        return self.learner_link / "chunks"

    # ------------------------------------------------------------------ the actor's part

    @property
    def actor(self) -> Path:
        return self.root / "actor"

    @property
    def spool(self) -> Path:
        return self.actor / "spool"

    @property
    def actor_eval(self) -> Path:
        return self.actor / "eval.json"

    @property
    def eval_curve(self) -> Path:
        return self.actor / "eval_curve.jsonl"

    @property
    def actor_link_stats(self) -> Path:
        """The actor's link counters at exit (messages sent, resent, still unacknowledged)."""
        return self.actor / "link.json"

    # ------------------------------------------------------------------ several robots, one run

    def robot(self, name: str) -> RunDir:
        """The run directory of robot `name`'s actor when one `hilrl run --robots N` starts several
        (RUN_DIR/robots/<name>/, holding that actor's actor/ part and its log)."""
        return RunDir(self.root / "robots" / name)

    def robots(self) -> dict[str, RunDir]:
        """The robots' run directories that exist, by name."""
        folder = self.root / "robots"
        return {p.name: RunDir(p) for p in sorted(folder.iterdir()) if p.is_dir()} if folder.is_dir() else {}
