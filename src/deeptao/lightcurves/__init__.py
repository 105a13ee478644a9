"""Light curves from the cutouts: photometry, nightly binning, features and their cache.

The plotting functions are imported on first use (PEP 562), so that models which
use the features (lc-rf, taonet-lc) predict without importing matplotlib.
"""

from typing import Any

from deeptao.lightcurves.features import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    extract_features,
    feature_matrix,
    pad_lightcurves,
)
from deeptao.lightcurves.photometry import (
    EPOCH_COLUMNS,
    NIGHT_COLUMNS,
    PhotometrySettings,
    asinh_magnitude,
    assign_nights,
    nightly_bin,
    photometry,
    pogson_magnitude,
)
from deeptao.lightcurves.store import (
    FEATURES_FILE,
    LIGHTCURVES_FILE,
    compute_features,
    features_from_arrays,
    load_lightcurves,
    object_lightcurve,
    ordered_sequence,
)

__all__ = [
    "EPOCH_COLUMNS",
    "FEATURES_FILE",
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "LIGHTCURVES_FILE",
    "NIGHT_COLUMNS",
    "PhotometrySettings",
    "asinh_magnitude",
    "assign_nights",
    "compute_features",
    "extract_features",
    "feature_matrix",
    "features_from_arrays",
    "lightcurve_figure",
    "load_lightcurves",
    "nightly_bin",
    "object_lightcurve",
    "ordered_sequence",
    "pad_lightcurves",
    "photometry",
    "plot_lightcurve",
    "pogson_magnitude",
]


def __getattr__(name: str) -> Any:
    if name in ("lightcurve_figure", "plot_lightcurve"):
        import importlib

        return getattr(importlib.import_module("deeptao.lightcurves.plot"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
