"""The layering of the `hilrl` packages, checked from the sources so the map below stays true.

Every package imports as `hilrl.<package>` (the folders stay at the top of the repository and
pyproject.toml maps them through `package-dir`). The packages form layers: a package may import
itself and the packages listed for it, and nothing else from `hilrl`. Lowest layer first:

==================  ===========================================================  ====================
package             what it holds                                                may import
==================  ===========================================================  ====================
hilrl.configs       the shipped YAML configs (data)                              nothing from hilrl
hilrl.transport     the shared contracts: wire codec and messages, link,         configs
                    security, chunk store, run-directory layout, checkpoint
                    format, action layout, observation spec, config documents
                    and section dataclasses, dashboard recording setup
hilrl.hardware      drivers: RealSense, Robotiq over Modbus, SpaceMouse,         transport, configs
                    keyboard readers (errors in hardware/errors.py, no deps)
hilrl.robot_server  the robot server process (service = safety layer, server,    hardware, transport,
                    sim and franka backends), its client and in-process twin;    configs
                    never torch
hilrl.policies      networks, encoders, SAC agent, reward classifier (torch)     transport, configs
hilrl.actor         the env and the actor process                                policies,
                                                                                 robot_server,
                                                                                 hardware, transport,
                                                                                 configs
hilrl.learner       the learner process (never actor, hardware, robot_server)    policies, transport,
                                                                                 configs
hilrl.tools         operator tools: the hilrl command line, run launcher, eval,  anything
                    browse, doctor, demos, labels, train-classifier, keys
==================  ===========================================================  ====================

What the test guards, reading the sources with `ast` (nothing is imported, so a broken module or a
missing optional driver cannot hide an import):

(a) every `import` / `from ... import` in a package (module level, inside functions, under
    `if TYPE_CHECKING:`, relative imports resolved; also `importlib.import_module("...")` and
    `__import__("...")` with a literal name) reaches only the packages its layer allows;
(b) nothing, including tests/ and bench/, imports a package by its old top-level name
    (`import transport`, `from actor.env import ...`, `hilrl_cli`): only `hilrl.<package>` is
    installed. Such an import also counts, under its `hilrl.` name, for (a) and (c);
(c) the graph between packages has no cycle (with the table above a cycle always comes with a layer
    violation; it is reported as a cycle as well, so the loop to break is visible).

A second test imports the robot server and the Robotiq driver in fresh interpreters and checks what
they drag in: the robot server never loads torch, and the Robotiq driver loads neither zmq nor the
robot server.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "hilrl"

# Layer table: package (its folder at the repository root) -> the other packages it may import.
LAYERS: dict[str, frozenset[str]] = {
    "configs": frozenset(),
    "transport": frozenset({"configs"}),
    "hardware": frozenset({"transport", "configs"}),
    "robot_server": frozenset({"hardware", "transport", "configs"}),
    "policies": frozenset({"transport", "configs"}),
    "actor": frozenset({"policies", "robot_server", "hardware", "transport", "configs"}),
    "learner": frozenset({"policies", "transport", "configs"}),
    "tools": frozenset(
        {"actor", "learner", "policies", "robot_server", "hardware", "transport", "configs"}
    ),
}
PACKAGES: tuple[str, ...] = tuple(LAYERS)
# Old top-level names -> the hilrl package that replaces them.
OLD_NAMES: dict[str, str] = {**{name: name for name in PACKAGES}, "hilrl_cli": "tools"}
# Folders scanned only for old top-level names (they are not part of the installed package).
OTHER_FOLDERS: tuple[str, ...] = ("tests", "bench")


@dataclass(frozen=True)
class ImportRef:
    """One import found in a source file: the absolute module it names and where."""

    module: str
    line: int


@dataclass(frozen=True)
class Edge:
    """The first place where package `src` imports package `dst` (short folder names)."""

    src: str
    dst: str
    where: str  # "path:line"
    module: str


def _py_files(folder: Path) -> Iterator[Path]:
    """The .py files under `folder`, sorted, skipping caches."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def _module_package(root: Path, path: Path) -> str | None:
    """`__package__` of a package source file (`learner/sub/x.py` -> `hilrl.learner.sub`), or
    None for a file outside the hilrl packages (tests/, bench/)."""
    rel = path.relative_to(root)
    if rel.parts[0] not in PACKAGES:
        return None
    return ".".join((NAMESPACE, *rel.parts[:-1]))


def _resolve_relative(package: str | None, level: int, module: str | None) -> str | None:
    """The absolute name of `from <level dots><module> import ...` in `package`, or None when it
    cannot be resolved (outside the hilrl packages, or above the `hilrl` namespace)."""
    if package is None:
        return None
    parts = package.split(".")
    if level > len(parts):  # would climb above `hilrl`
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _literal_import_call(node: ast.Call) -> str | None:
    """The name of `importlib.import_module("x")` / `import_module("x")` / `__import__("x")` with an
    absolute literal name, else None."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
        return None if arg.value.startswith(".") else arg.value
    return None


def _imports(tree: ast.AST, package: str | None) -> Iterator[ImportRef | str]:
    """Every module the tree imports, anywhere in it, as absolute names; a str instead of an
    ImportRef describes a relative import that cannot be resolved (`line: text`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base: str | None = node.module
            else:
                base = _resolve_relative(package, node.level, node.module)
                if base is None:
                    if package is not None:
                        dots = "." * node.level
                        yield f"{node.lineno}: {dots}{node.module or ''}"
                    continue  # relative imports in tests/ and bench/ stay among their own files
            assert base is not None
            if base == NAMESPACE:  # `from hilrl import actor` names the package hilrl.actor
                for alias in node.names:
                    yield ImportRef(f"{NAMESPACE}.{alias.name}", node.lineno)
            else:
                yield ImportRef(base, node.lineno)
        elif isinstance(node, ast.Call):
            name = _literal_import_call(node)
            if name is not None:
                yield ImportRef(name, node.lineno)


def _find_cycles(edges: Mapping[tuple[str, str], Edge]) -> list[list[str]]:
    """Every elementary cycle of the package graph, each as [a, b, ..., a] starting at its smallest
    node (in PACKAGES order, then by name), without duplicates."""
    order = {name: i for i, name in enumerate(PACKAGES)}
    nodes = sorted({n for edge in edges for n in edge}, key=lambda n: (order.get(n, len(order)), n))
    rank = {n: i for i, n in enumerate(nodes)}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in sorted(edges, key=lambda e: (rank[e[0]], rank[e[1]])):
        succ[src].append(dst)
    cycles: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for nxt in succ[path[-1]]:
            if nxt == start:
                cycles.append([*path, start])
            elif rank[nxt] > rank[start] and nxt not in path:
                walk(start, [*path, nxt])

    for start in nodes:
        walk(start, [start])
    return cycles


def find_violations(root: Path, allowed: Mapping[str, Collection[str]] | None = None) -> list[str]:
    """Every import under `root` that runs against the layering, one `path:line: <importer package>
    imports <imported module> (<reason>)` line each, in a stable order; [] when the tree is clean.

    `allowed` maps a package (its folder name) to the other packages it may import; it defaults to
    LAYERS. Tests pass a looser table to exercise the cycle check on its own.
    """
    table = LAYERS if allowed is None else allowed
    violations: list[str] = []
    edges: dict[tuple[str, str], Edge] = {}
    folders = [*PACKAGES, *OTHER_FOLDERS]
    for path in (p for folder in folders for p in _py_files(root / folder)):
        rel = path.relative_to(root).as_posix()
        top = path.relative_to(root).parts[0]
        package = _module_package(root, path)
        importer = f"{NAMESPACE}.{top}" if package is not None else top
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except SyntaxError as err:
            violations.append(f"{rel}:{err.lineno or 0}: {importer} cannot be parsed ({err.msg})")
            continue
        for ref in _imports(tree, package):
            if isinstance(ref, str):
                line, _, text = ref.partition(": ")
                violations.append(
                    f"{rel}:{line}: {importer} imports {text} "
                    f"(relative import climbs above the {NAMESPACE} namespace)"
                )
                continue
            head, _, rest = ref.module.partition(".")
            if head in OLD_NAMES:
                target = OLD_NAMES[head]
                new = ".".join(
                    (
                        NAMESPACE,
                        target,
                        *(["cli"] if head == "hilrl_cli" else []),
                        *([rest] if rest else []),
                    )
                )
                violations.append(
                    f"{rel}:{ref.line}: {importer} imports {ref.module} "
                    f"(old top-level name: only {NAMESPACE}.* is installed, import {new})"
                )
            elif head == NAMESPACE and rest:
                target = rest.partition(".")[0]
                if target not in PACKAGES:
                    violations.append(
                        f"{rel}:{ref.line}: {importer} imports {ref.module} "
                        f"(no package {NAMESPACE}.{target}; the packages are "
                        f"{', '.join(f'{NAMESPACE}.{p}' for p in PACKAGES)})"
                    )
                    continue
            else:
                continue  # the standard library or a third-party package
            if package is None or target == top:
                continue  # tests/bench may use any layer; a package may import itself
            may = table.get(top, ())
            if target not in may:
                listed = ", ".join(f"{NAMESPACE}.{p}" for p in PACKAGES if p in may)
                violations.append(
                    f"{rel}:{ref.line}: {importer} imports {ref.module} (layer violation: "
                    f"{importer} may import "
                    f"{listed + ' and itself' if listed else f'nothing from {NAMESPACE} but itself'})"
                )
            edges.setdefault((top, target), Edge(top, target, f"{rel}:{ref.line}", ref.module))
    for cycle in _find_cycles(edges):
        hops = [edges[hop] for hop in pairwise(cycle)]
        loop = " -> ".join(f"{NAMESPACE}.{p}" for p in cycle)
        steps = "; ".join(f"{NAMESPACE}.{e.src} -> {e.module} at {e.where}" for e in hops)
        first = hops[0]
        violations.append(
            f"{first.where}: {NAMESPACE}.{first.src} imports {first.module} "
            f"(import cycle {loop}: {steps})"
        )
    return violations


# --- the real tree ---------------------------------------------------------------------------


def test_package_folders_are_scanned() -> None:
    """Every package folder exists and holds sources, so the layering test cannot pass by scanning
    nothing (a renamed folder must be renamed here too)."""
    missing = [p for p in PACKAGES if not any(_py_files(REPO / p))]
    assert not missing, f"package folders without .py files under {REPO}: {missing}"


def test_repository_respects_the_layering() -> None:
    """No import in the repository runs against the layer table of the module docstring."""
    violations = find_violations(REPO)
    listing = "\n".join(violations)
    assert violations == [], (
        f"{len(violations)} import(s) run against the layering (see tests/test_layering.py):\n"
        f"{listing}"
    )


# --- the checker on fake trees ---------------------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    """Write `files` (path relative to root -> source) under root, with the parents."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _matching(violations: list[str], prefix: str, *needles: str) -> list[str]:
    return [v for v in violations if v.startswith(prefix) and all(n in v for n in needles)]


def test_fake_tree_reports_each_wrong_import(tmp_path: Path) -> None:
    """A layer violation, old top-level names (in a package, in tests/ and in bench/), a relative
    import across packages and imports hidden in functions or TYPE_CHECKING are all reported; the
    allowed imports are not."""
    _write(
        tmp_path,
        {
            "configs/__init__.py": "",
            "transport/__init__.py": "",
            "transport/codec.py": "import json\n",
            "policies/__init__.py": "",
            "actor/__init__.py": "",
            "actor/env.py": "from hilrl.policies import sac\nfrom hilrl.robot_server import client\n",
            "learner/__init__.py": "",
            "learner/x.py": (
                "from __future__ import annotations\n"  # 1
                "from typing import TYPE_CHECKING\n"  # 2
                "import numpy\n"  # 3
                "from hilrl.transport.codec import encode\n"  # 4: allowed
                "from hilrl.actor.env import X\n"  # 5: layer violation
                "import transport\n"  # 6: old name
                "if TYPE_CHECKING:\n"  # 7
                "    from hilrl.hardware.robotiq import Hand\n"  # 8: layer violation
                "def f() -> None:\n"  # 9
                "    import hilrl.robot_server.client\n"  # 10: layer violation
                "    from . import y\n"  # 11: itself
            ),
            "learner/sub/__init__.py": "",
            "learner/sub/y.py": "from ...actor import env\nfrom .. import x\nfrom hilrl import policies\n",
            "tools/__init__.py": "",
            "tools/cli.py": "import hilrl.actor.env\nimport hilrl.learner.x\nimport hilrl_cli\n",
            "tests/test_a.py": "from actor.env import X\nimport hilrl.actor.env\nfrom .helpers import h\n",
            "bench/b.py": "import configs\nimport hilrl.configs\n",
        },
    )
    violations = find_violations(tmp_path)
    listing = "\n".join(violations)
    expected = [
        ("learner/x.py:5:", "hilrl.learner imports hilrl.actor.env", "layer violation"),
        (
            "learner/x.py:6:",
            "hilrl.learner imports transport",
            "old top-level name",
            "hilrl.transport",
        ),
        ("learner/x.py:8:", "hilrl.learner imports hilrl.hardware.robotiq", "layer violation"),
        ("learner/x.py:10:", "hilrl.learner imports hilrl.robot_server.client", "layer violation"),
        ("learner/sub/y.py:1:", "hilrl.learner imports hilrl.actor (", "layer violation"),
        (
            "tools/cli.py:3:",
            "hilrl.tools imports hilrl_cli",
            "old top-level name",
            "hilrl.tools.cli",
        ),
        ("tests/test_a.py:1:", "tests imports actor.env", "old top-level name", "hilrl.actor.env"),
        ("bench/b.py:1:", "bench imports configs", "old top-level name", "hilrl.configs"),
    ]
    for prefix, *needles in expected:
        assert len(_matching(violations, prefix, *needles)) == 1, (
            f"expected exactly one violation `{prefix} ... {' ... '.join(needles)}`, got:\n{listing}"
        )
    assert len(violations) == len(expected), (
        f"expected only the {len(expected)} planted violations (no cycle: the learner -> actor edge "
        f"has no way back), got {len(violations)}:\n{listing}"
    )


def test_fake_tree_reports_a_cycle_between_packages(tmp_path: Path) -> None:
    """With a table that lets actor and learner import each other (no layer violation at all), an
    actor -> learner -> actor loop is still reported, once, naming both imports."""
    loose = {
        **LAYERS,
        "actor": LAYERS["actor"] | {"learner"},
        "learner": LAYERS["learner"] | {"actor"},
    }
    _write(
        tmp_path,
        {
            "actor/__init__.py": "",
            "actor/env.py": "import numpy\nfrom hilrl.learner.main import serve\n",
            "learner/__init__.py": "",
            "learner/main.py": "def serve() -> None:\n    from hilrl.actor import env\n",
            "tools/cli.py": "import hilrl.actor.env\nimport hilrl.learner.main\n",  # no cycle
        },
    )
    violations = find_violations(tmp_path, allowed=loose)
    listing = "\n".join(violations)
    assert len(violations) == 1, f"expected one cycle and nothing else, got:\n{listing}"
    cycle = violations[0]
    assert cycle.startswith(
        "actor/env.py:2: hilrl.actor imports hilrl.learner.main (import cycle "
    ), cycle
    assert "hilrl.actor -> hilrl.learner -> hilrl.actor" in cycle, cycle
    assert "learner/main.py:2" in cycle, f"the way back is not located: {cycle}"

    # The default table reports the same loop both as layer violations and as the cycle.
    strict = find_violations(tmp_path)
    listing = "\n".join(strict)
    assert _matching(strict, "actor/env.py:2:", "layer violation"), listing
    assert _matching(strict, "learner/main.py:2:", "layer violation"), listing
    assert len(_matching(strict, "actor/env.py:2:", "import cycle")) == 1, listing


def test_fake_tree_reports_a_longer_cycle(tmp_path: Path) -> None:
    """A three-package loop (transport -> hardware -> robot_server -> transport) is found as one
    cycle, listed from its lowest layer."""
    loose = {name: frozenset(PACKAGES) for name in PACKAGES}
    _write(
        tmp_path,
        {
            "transport/a.py": "import hilrl.hardware.b\n",
            "hardware/b.py": "import hilrl.robot_server.c\n",
            "robot_server/c.py": "from hilrl.transport import a\n",
        },
    )
    violations = find_violations(tmp_path, allowed=loose)
    listing = "\n".join(violations)
    assert len(violations) == 1, f"expected one cycle, got:\n{listing}"
    assert (
        "hilrl.transport -> hilrl.hardware -> hilrl.robot_server -> hilrl.transport"
        in violations[0]
    ), listing


# --- what a module drags in at import time ---------------------------------------------------

# Run in a fresh interpreter: import `module`, then report which `forbidden` modules got loaded and,
# for each, the hilrl frames of the first import that reached it.
_PROBE = r"""
import importlib, json, sys, traceback

module, forbidden = sys.argv[1], json.loads(sys.argv[2])
chains = {}

class Spy:
    def find_spec(self, name, path=None, target=None):
        for bad in forbidden:
            if (name == bad or name.startswith(bad + ".")) and bad not in chains:
                frames = [
                    f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                    if "importlib" not in f.filename and "<frozen" not in f.filename
                ]
                chains[bad] = frames
        return None

sys.meta_path.insert(0, Spy())
importlib.import_module(module)
loaded = {
    bad: chains.get(bad, [])
    for bad in forbidden
    if any(name == bad or name.startswith(bad + ".") for name in sys.modules)
}
print(json.dumps(loaded))
"""


def _outside_env() -> dict[str, str]:
    """The environment of a child interpreter that sees only the installed hilrl."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("hilrl.robot_server.server", ["torch"]),
        ("hilrl.robot_server.sim.backend", ["torch"]),
        ("hilrl.hardware.robotiq", ["zmq", "hilrl.robot_server"]),
    ],
)
def test_import_does_not_load(module: str, forbidden: list[str], tmp_path: Path) -> None:
    """The robot server runs without torch, and the Robotiq driver without zmq or the robot server
    (checked on a fresh interpreter: whatever the test process already imported does not count)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(forbidden)],
        cwd=tmp_path,
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"`import {module}` failed in a fresh interpreter:\n{proc.stderr}"
    loaded: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    report = "\n".join(
        f"  {bad}, first reached through:\n    " + "\n    ".join(chain or ["(not traced)"])
        for bad, chain in loaded.items()
    )
    assert not loaded, f"`import {module}` loads what its layer must not:\n{report}"
