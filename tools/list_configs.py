"""`hilrl configs`: the task configs shipped with the package, one line each (name, task, what the
file's first comment line says, path). Any of the names works as `--config NAME` from anywhere."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import yaml

from hilrl.configs import config_path, shipped_configs


def describe(name: str) -> tuple[str, str]:
    """(task, first comment line) of a shipped config."""
    text = config_path(name).read_text()
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
    try:
        task = str((yaml.safe_load(text) or {}).get("task", ""))
    except yaml.YAMLError:
        task = "?"
    return task, title


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="List the task configs shipped with hilrl.")
    parser.add_argument("--paths", action="store_true", help="also print each config's file path")
    args = parser.parse_args(argv)
    names = shipped_configs()
    width = max(map(len, names), default=0)
    for name in names:
        task, title = describe(name)
        line = f"{name:<{width}}  task {task:<11} {title}"
        print(f"{line}\n{'':<{width}}  {config_path(name)}" if args.paths else line.rstrip())
    return 0
