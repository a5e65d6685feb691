"""Task configs shipped with the package (YAML data only; hilrl.transport.config reads them and
documents the layout). `--config NAME` finds them by name from anywhere; `hilrl configs` lists
them."""

from importlib.resources import files
from pathlib import Path


def shipped_configs() -> list[str]:
    """Names of the shipped configs (file names without .yaml), sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in Path(str(files(__package__))).glob("*.yaml"))


def config_path(name: str) -> Path:
    """Path of a shipped config, e.g. config_path("sim_pick_cube")."""
    path = Path(str(files(__package__).joinpath(f"{name}.yaml")))
    if not path.is_file():
        raise FileNotFoundError(f"no shipped config {name!r}; shipped: {', '.join(shipped_configs())}")
    return path
