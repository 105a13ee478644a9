"""Reading the probability files that ``bench_networks.py --save-proba DIR`` writes, for the offline checks.

One ``MODEL-seedS-fitF.npz`` per fit, holding the validation and test rows,
labels and probabilities. ``class_offsets.py``, ``late_fusion.py`` and
``stamp_feature_forest.py`` read them through here, so that a damaged or
foreign file is refused alike: in one line naming it.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

KEYS = ("val_rows", "y_val", "val_proba", "test_rows", "y_test", "test_proba")
_NAME = re.compile(r"(.+)-seed(\d+)(?:-fit\d+)?\.npz")


def read_saved_proba(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one saved fit; SystemExit naming ``path`` if it is not such a file."""
    try:
        with np.load(path) as archive:
            return {key: archive[key] for key in KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise SystemExit(f"{path}: not a probability file from bench_networks.py --save-proba ({type(exc).__name__})") from None


def saved_fits(folder: Path) -> dict[str, dict[int, list[dict[str, np.ndarray]]]]:
    """Every saved fit in ``folder``: model -> split seed -> fits, in file-name order."""
    fits: dict[str, dict[int, list[dict[str, np.ndarray]]]] = {}
    for path in sorted(Path(folder).glob("*.npz")):
        match = _NAME.fullmatch(path.name)
        if match:
            fits.setdefault(match[1], {}).setdefault(int(match[2]), []).append(read_saved_proba(path))
    return fits
