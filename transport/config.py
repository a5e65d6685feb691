"""Task config documents: one YAML file per task, one section per process.

    task: pick_cube          # which task (the sim builds its scene from it)
    robot_server: {...}      # hilrl.robot_server.config.ServerConfig
    env: {...}               # hilrl.transport.sections.env.EnvConfig
    link: {...}              # hilrl.transport.link_config.LinkConfig
    learner: {...}           # hilrl.transport.sections.learner.LearnerConfig
    actor: {...}             # hilrl.actor.config.ActorConfig
    reward_classifier: {...} # hilrl.policies.classifier_config.RewardClassifierConfig
    dashboard: {...}         # hilrl.transport.dashboard.DashboardConfig

Each process validates the sections it uses with `section()`; this module checks the top level
and applies dotted command-line overrides such as `env.max_episode_steps=50`. The document's
hash (`document_hash`) is what peers compare in their handshake. YAML is loaded with the safe
loader: a config can hold data, never code.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hilrl.configs import config_path, shipped_configs
from hilrl.transport.schema import SchemaError, from_dict

T = TypeVar("T")

SECTIONS = ("task", "robot_server", "env", "link", "learner", "actor", "reward_classifier", "dashboard")


def resolve_config(path: str | Path) -> Path:
    """The YAML file `path` names: a file path, or the name of a config shipped with the package
    (`sim_reach` or `sim_reach.yaml`: `hilrl configs` lists them), so `--config sim_reach` works
    from any directory and from an installed wheel. A path that exists always wins.

    Raises:
        FileNotFoundError: neither a file nor a shipped config; names the shipped ones.
    """
    candidate = Path(path)
    if candidate.exists():
        return candidate
    text = str(path)
    if "/" not in text and "\\" not in text:
        name = text.removesuffix(".yaml")
        if name in shipped_configs():
            return config_path(name)
    raise FileNotFoundError(
        f"no config file {text!r} and no shipped config of that name (shipped: {', '.join(shipped_configs())})"
    )


def load_document(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a task YAML file (a path or a shipped config's name, see `resolve_config`), check its
    top-level keys, apply `key.path=value` overrides.

    Raises:
        FileNotFoundError: no such file or shipped config.
        SchemaError: unknown top-level key, bad YAML, or a malformed override; names the key.
    """
    path = resolve_config(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SchemaError(str(path), f"not valid YAML: {exc}") from None
    return parse_document(doc if doc is not None else {}, overrides, where=str(path))


def parse_document(doc: Any, overrides: Iterable[str] = (), where: str = "config") -> dict[str, Any]:
    """Validate the top level of an already-parsed document and apply overrides (returns a copy)."""
    if not isinstance(doc, dict):
        raise SchemaError(where, "the top level must be a mapping of sections")
    doc = copy.deepcopy(doc)
    for override in overrides:
        apply_override(doc, override)
    for key in doc:
        if key not in SECTIONS:
            near = difflib.get_close_matches(str(key), SECTIONS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid sections: {', '.join(SECTIONS)}"
            raise SchemaError(str(key), f"unknown section{hint}")
    if not isinstance(doc.get("task", ""), str):
        raise SchemaError("task", "must be a task name string")
    return doc


def apply_override(doc: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in `doc` in place; the value is parsed as a YAML scalar or flow list."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise SchemaError(override, "an override must look like section.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SchemaError(key, f"override value {raw!r} is not valid YAML: {exc}") from None
    node = doc
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SchemaError(key, f"'{part}' is not a section")
        node = child
    node[parts[-1]] = value


def section(doc: dict[str, Any], name: str, cls: type[T]) -> T:
    """Validated dataclass for one section (defaults when the section is absent)."""
    return from_dict(cls, doc.get(name) or {}, name)


# Per-machine settings that legitimately differ between peers of one run (each actor has its own
# key files), so they do not take part in the handshake's config hash.
_LOCAL_KEYS = (("link", "curve"), ("robot_server", "curve"))
# Sections that only change what a process shows, never what it learns or sends: an actor started
# with `--dashboard spawn` must still shake hands with a learner started without it.
_LOCAL_SECTIONS = ("dashboard",)


def document_hash(doc: dict[str, Any]) -> str:
    """Stable short hash of a document (sorted-key JSON), for handshakes and run records.

    Key-file paths (`link.curve`, `robot_server.curve`) are left out (they differ per machine),
    and so is the `dashboard` section.
    """
    shared = copy.deepcopy(doc)
    for section_name in _LOCAL_SECTIONS:
        shared.pop(section_name, None)
    for section_name, key in _LOCAL_KEYS:
        if isinstance(shared.get(section_name), dict):
            shared[section_name].pop(key, None)
    blob = json.dumps(shared, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
