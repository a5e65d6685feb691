"""Task configs shipped with the package (YAML data only; see transport/config.py for the layout)."""

from importlib.resources import files
from pathlib import Path


def config_path(name: str) -> Path:
    """Path of a shipped config, e.g. config_path("sim_pick_cube")."""
    path = Path(str(files(__package__).joinpath(f"{name}.yaml")))
    if not path.is_file():
        shipped = sorted(p.name.removesuffix(".yaml") for p in Path(str(files(__package__))).glob("*.yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; shipped: {', '.join(shipped)}")
    return path
