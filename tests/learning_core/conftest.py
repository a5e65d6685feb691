"""Learning-core tests (replay, SAC, grasp critic): CPU only, seeded, fast."""

from __future__ import annotations

import sys
from pathlib import Path

# Import the repo's packages (and this folder's helper module) whether or not hilrl is installed.
_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
