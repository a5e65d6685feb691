"""What the `hilrl` distribution installs: one import namespace, `hilrl.*`, and nothing else.

pyproject.toml maps each top-level folder of the repository to `hilrl.<folder>` (`transport/` is
`hilrl.transport`, `configs/` is `hilrl.configs`, ...); `hilrl` itself is a namespace package. These
tests check that from the outside:

- from a directory outside the repository (so neither the current directory nor PYTHONPATH puts
  the folders on sys.path) the old top-level names no longer import and the `hilrl.` ones do;
- a wheel built from the sources holds only `hilrl/` and its `.dist-info/`, every source file of
  every package (so a sub-package missing from pyproject's `packages` list is caught), the shipped
  YAML configs, no tests/ or bench/ files, and the `hilrl` console script.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "transport",
    "hardware",
    "robot_server",
    "policies",
    "actor",
    "learner",
    "tools",
    "configs",
)


def _outside(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run `python -c code` in tmp_path with PYTHONPATH removed: it sees only what is installed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("old_name", ["transport", "configs"])
def test_old_top_level_names_are_not_installed(old_name: str, tmp_path: Path) -> None:
    """`import transport` / `import configs` fail outside the repository: only hilrl.* is
    installed, so another project's `configs` or `transport` never collides with ours."""
    proc = _outside(tmp_path, f"import {old_name}")
    assert proc.returncode != 0, (
        f"`import {old_name}` worked from {tmp_path}: a top-level {old_name!r} is installed "
        f"(stdout: {proc.stdout!r})"
    )
    assert f"ModuleNotFoundError: No module named '{old_name}'" in proc.stderr, (
        f"`import {old_name}` failed, but not as a missing module:\n{proc.stderr}"
    )


def test_hilrl_names_import_from_outside(tmp_path: Path) -> None:
    """`hilrl.transport.codec` and `hilrl.configs` import from outside the repository."""
    proc = _outside(tmp_path, "import hilrl.transport.codec, hilrl.configs")
    assert proc.returncode == 0, (
        f"`import hilrl.transport.codec, hilrl.configs` failed from {tmp_path} "
        f"(is hilrl installed, `pip install -e .`?):\n{proc.stderr}"
    )


def _copy_sources(dst: Path) -> Path:
    """A copy of the repository's sources without build outputs or caches, so building the wheel
    neither writes build/ or *.egg-info into the working tree nor picks up stale files there."""
    shutil.copytree(
        REPO,
        dst,
        ignore=shutil.ignore_patterns(
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            ".benchmarks",
            ".venv",
            ".whl",
            "runs",
            "*.rrd",
        ),
    )
    return dst


class Built(NamedTuple):
    """A wheel and the copy of the sources it was built from (what it is compared with, so an edit
    to the working tree during the test does not count)."""

    wheel: zipfile.ZipFile
    src: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The hilrl wheel built from a copy of the sources, offline (no index, no build isolation: the
    installed setuptools builds it)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(base / "src")
    out = base / "out"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(out.glob("hilrl-*.whl"))
    assert len(wheels) == 1, (
        f"expected one hilrl wheel in {out}, found {[w.name for w in out.iterdir()]}"
    )
    with zipfile.ZipFile(wheels[0]) as zf:
        yield Built(zf, src)


@pytest.mark.slow
def test_wheel_ships_only_the_hilrl_namespace(built: Built) -> None:
    """Every entry is under hilrl/ or hilrl-<version>.dist-info/, and no test or bench file is."""
    names = built.wheel.namelist()
    outside = [n for n in names if not re.match(r"(hilrl/|hilrl-[^/]+\.dist-info/)", n)]
    assert not outside, f"wheel entries outside hilrl/ and its .dist-info/: {outside}"
    test_like = [
        n
        for n in names
        if {"tests", "bench"} & set(n.split("/")[:-1])
        or re.fullmatch(r"(test_.*|conftest)\.py", n.rsplit("/", 1)[-1])
    ]
    assert not test_like, f"test or bench files in the wheel: {test_like}"


@pytest.mark.slow
def test_wheel_ships_every_package_source(built: Built) -> None:
    """hilrl/tools/cli.py, hilrl/transport/codec.py and every other .py of every package folder
    (sub-packages included) are in the wheel under hilrl/<folder>/."""
    names = set(built.wheel.namelist())
    for required in ("hilrl/tools/cli.py", "hilrl/transport/codec.py"):
        assert required in names, f"{required} is missing from the wheel"
    expected = {
        f"hilrl/{path.relative_to(built.src).as_posix()}"
        for package in PACKAGES
        for path in (built.src / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(expected - names)
    assert not missing, (
        f"package sources missing from the wheel (a sub-package not listed in pyproject.toml's "
        f"[tool.setuptools] packages?): {missing}"
    )


@pytest.mark.slow
def test_wheel_ships_the_yaml_configs(built: Built) -> None:
    """The wheel's hilrl/configs/*.yaml are exactly the repository's configs/*.yaml, byte for byte."""
    repo_yaml = {p.name: p.read_bytes() for p in (built.src / "configs").glob("*.yaml")}
    assert repo_yaml, f"no YAML configs in {REPO / 'configs'}"
    shipped = {
        n.removeprefix("hilrl/configs/"): built.wheel.read(n)
        for n in built.wheel.namelist()
        if re.fullmatch(r"hilrl/configs/[^/]+\.yaml", n)
    }
    assert sorted(shipped) == sorted(repo_yaml), (
        f"YAML configs in the wheel {sorted(shipped)} differ from the repository's {sorted(repo_yaml)}"
    )
    changed = [name for name, data in repo_yaml.items() if shipped[name] != data]
    assert not changed, f"YAML configs whose shipped content differs from the repository: {changed}"


@pytest.mark.slow
def test_wheel_entry_point_is_the_cli(built: Built) -> None:
    """entry_points.txt installs the `hilrl` console script as hilrl.tools.cli:main."""
    found = [
        n
        for n in built.wheel.namelist()
        if re.fullmatch(r"hilrl-[^/]+\.dist-info/entry_points\.txt", n)
    ]
    assert len(found) == 1, f"expected one entry_points.txt in the wheel, found {found}"
    parser = configparser.ConfigParser()
    parser.read_string(built.wheel.read(found[0]).decode("utf-8"))
    scripts = dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}
    assert scripts.get("hilrl") == "hilrl.tools.cli:main", (
        f"console_scripts in {found[0]}: {scripts} (expected hilrl = hilrl.tools.cli:main)"
    )
