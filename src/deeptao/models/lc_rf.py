"""``lc-rf``: a random forest on light-curve features, the comparator of TAO-Net and MANTRA.

The images are reduced to a nightly light curve by forced photometry at the
cutout centre, the light curve to the MANTRA features
(:mod:`deeptao.lightcurves.features`), and a class-balanced random forest
learns from those. Features are computed once per prepared cache and stored
beside it, so fitting and predicting on a cache costs only the forest.
Undefined features (too few nights) are imputed by the training median, with
an indicator column so that "undefined" can itself be learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from deeptao.lightcurves import FEATURE_NAMES, PhotometrySettings, compute_features, features_from_arrays
from deeptao.models._registry import register_model
from deeptao.models.base import ObjectClassifier

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["LightCurveForest", "lc_rf"]

_FORMAT = "deeptao-lc-rf-1"


class LightCurveForest(ObjectClassifier):
    """Random forest on nightly light-curve features.

    Parameters
    ----------
    n_estimators : int, default=500
    max_features : str, int or float, default="sqrt"
    min_samples_leaf : int, default=1
    class_weight : str, default="balanced_subsample"
        Each tree reweights its bootstrap sample so that every class weighs the
        same: NON outnumbers BZ 52 to 1 in the release.
    n_jobs : int, default=-1
        Cores used by the forest.
    workers : int, default=1
        Processes used to measure light curves when a cache has none stored yet.
    photometry : PhotometrySettings, optional
        Light-curve extraction settings; default :class:`PhotometrySettings()`.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 500,
        max_features: str | int | float = "sqrt",
        min_samples_leaf: int = 1,
        class_weight: str = "balanced_subsample",
        n_jobs: int = -1,
        workers: int = 1,
        photometry: PhotometrySettings | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.workers = workers
        self.photometry = photometry

    # ------------------------------------------------------------------ features
    def _settings(self) -> PhotometrySettings:
        return self.photometry if self.photometry is not None else PhotometrySettings()

    def cache_features(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Feature matrix of the objects at ``rows`` (computed for the whole cache once, then read)."""
        table = compute_features(cache, settings=self._settings(), workers=self.workers)
        rows = np.asarray(rows, dtype=np.int64)
        return table[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)[rows]

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        cache: PreparedCache,
        rows: np.ndarray,
        y: np.ndarray,
        *,
        classes: Sequence[str],
        val_rows: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        seed: int = 0,
        workdir: Path | None = None,
    ) -> LightCurveForest:
        """Fit on the objects at ``rows`` with class indices ``y`` into ``classes``.

        A forest needs no validation data and no checkpoints (it fits in
        seconds): ``val_rows`` and ``workdir`` are accepted, for the common
        estimator signature, and unused. Save the fitted model with :meth:`save`.
        """
        X = self.cache_features(cache, rows)
        self._fit_arrays(X, y, classes=classes, seed=seed)
        return self

    def _fit_arrays(self, X: np.ndarray, y: np.ndarray, *, classes: Sequence[str], seed: int) -> None:
        classes = list(classes)
        y = np.asarray(y)
        if len(classes) < 2:
            raise ValueError(f"need at least two classes, got {classes!r}")
        if y.dtype.kind in "UO":  # labels given by name
            unknown = sorted(set(y.tolist()) - set(classes))
            if unknown:
                raise ValueError(f"labels {unknown} are not among classes {classes}")
            y = np.array([classes.index(label) for label in y.tolist()], dtype=np.int64)
        if y.shape != (len(X),):
            raise ValueError(f"y has shape {y.shape}, expected ({len(X)},) to match rows")
        if y.dtype.kind not in "iu" or y.min(initial=0) < 0 or y.max(initial=0) >= len(classes):
            raise ValueError(f"y must hold class indices in [0, {len(classes)}), got {y.dtype} values")
        if len(np.unique(y)) < 2:
            raise ValueError("training rows hold a single class; a classifier needs at least two")
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators!r}")
        forest = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            class_weight=self.class_weight,
            n_jobs=self.n_jobs,
            random_state=seed,
        )
        # keep_empty_features: a feature that is NaN for every training object
        # stays a (constant) column, so the column count never depends on the data.
        imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
        self.pipeline_ = Pipeline([("impute", imputer), ("forest", forest)]).fit(X, y)
        self.classes_ = classes
        self.feature_names_ = list(FEATURE_NAMES)
        self.seed_ = seed

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self._proba(self.cache_features(cache, rows))

    def predict_proba_arrays(self, sequences: Iterable[tuple[np.ndarray, ...]]) -> np.ndarray:
        """Probabilities for image sequences outside any cache: ``(images, mjd[, blank[, duplicate]])`` each."""
        self._check_fitted()
        table = features_from_arrays(sequences, settings=self._settings())
        return self._proba(table[self.feature_names_].to_numpy(dtype=np.float64))

    def _proba(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), len(self.classes_)))
        if len(X):
            # The forest knows only the classes present in training: place its
            # columns under their indices, absent classes keep probability 0.
            seen = self.pipeline_.classes_.astype(np.int64)
            out[:, seen] = self.pipeline_.predict_proba(X)
        return out

    @property
    def feature_importances_(self) -> dict[str, float]:
        """Mean decrease in impurity per feature (missing-value indicators folded in)."""
        self._check_fitted()
        forest = self.pipeline_.named_steps["forest"]
        imputer = self.pipeline_.named_steps["impute"]
        values = forest.feature_importances_
        out = dict(zip(self.feature_names_, values[: len(self.feature_names_)], strict=True))
        indicator = imputer.indicator_
        if indicator is not None:
            for column, value in zip(indicator.features_, values[len(self.feature_names_) :], strict=True):
                out[self.feature_names_[column]] += float(value)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted model with joblib (atomically); returns the path."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump({"format": _FORMAT, "model": self}, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LightCurveForest:
        """Read a model written by :meth:`save` (a pickle: load only files you trust).

        Raises
        ------
        ValueError
            If the file is missing or was not written by :meth:`save`.
        """
        try:
            payload: Any = joblib.load(path)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such model file") from None
        except Exception as exc:  # unpickling raises many types for foreign or damaged files
            raise ValueError(f"{path}: not an lc-rf model file ({type(exc).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path}: not an lc-rf model file")
        return payload["model"]


@register_model("lc-rf")
def lc_rf(**kwargs: Any) -> LightCurveForest:
    """Random forest on MANTRA light-curve features (class-balanced, seeded by ``fit``)."""
    return LightCurveForest(**kwargs)
