"""``lc-rf``: a random forest on light-curve features, the comparator of TAO-Net and MANTRA.

The images are reduced to a nightly light curve by forced photometry at the
cutout centre, the light curve to the MANTRA features
(:mod:`deeptao.lightcurves.features`), and a class-balanced random forest
learns from those. Features are computed once per prepared cache and stored
beside it, so fitting and predicting on a cache costs only the forest.
Undefined features (too few nights) are imputed by the training median, with
an indicator column so that "undefined" can itself be learned.

With ``night_features`` the forest also takes blocks measured on the
networks' representation (:data:`deeptao.data.night_features.NIGHT_FEATURE_BLOCKS`:
stamp, variability, event, ... features), after the light-curve features. lc-rf,
the comparator, takes none; the forest that taonet+rf fuses with a network
takes them (:mod:`deeptao.models.fusion`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from deeptao.data.night_features import NIGHT_FEATURE_BLOCKS, NightFeatureBlock, night_feature_matrix
from deeptao.data.representation import SequenceSettings, object_nights, open_sequences
from deeptao.io import sequence_nights
from deeptao.lightcurves import (
    FEATURE_NAMES,
    PhotometrySettings,
    compute_features,
    features_from_arrays,
    ordered_sequence,
)
from deeptao.models._registry import register_model
from deeptao.models.base import ObjectClassifier
from deeptao.models.calibration import calibrate_proba, choose_prior_power, fit_nights_calibration, shift_to_prior

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["LightCurveForest", "lc_rf"]

_FORMAT = "deeptao-lc-rf-1"
_SKOPS_FORMAT = "deeptao-lc-rf-skops"
_SKOPS_VERSION = 1
#: fitted state beside the pipeline (a skops file's ``learned``), with what a model fitted before it existed behaves as
_LEARNED_DEFAULTS: dict[str, Any] = {
    "class_prior_": None,
    "prior_power_": 0.0,
    "temperature_": 1.0,
    "temperature_slope_": 0.0,
}
# Types a deeptao skops file holds beyond those skops trusts by default. skops
# leaves sklearn's Tree out because its node arrays are not bounds-checked when
# predicting; load_skops checks them itself (_check_trees) before any use.
_SKOPS_TRUSTED = ("numpy.dtype", "sklearn.tree._tree.Tree")


def _class_indices(y: np.ndarray, classes: list[str]) -> np.ndarray:
    """Labels given by name as indices into ``classes``; indices as they are."""
    if y.dtype.kind not in "UO":
        return y
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among classes {classes}")
    return np.array([classes.index(label) for label in y.tolist()], dtype=np.int64)


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
    prior_shift : bool, default=True
        Move the balanced forest's probabilities toward the training class
        frequencies by a power chosen on the validation objects
        (:func:`deeptao.models.calibration.choose_prior_power`); a no-op on a
        balanced survey.
    calibrate : bool, default=True
        Fit a temperature on the validation objects, whole and cut to their
        first nights, as a function of the nights a prediction saw
        (:mod:`deeptao.models.calibration`, as the networks do). A forest
        that has seen one night is sure of classes it cannot tell apart yet
        (on the demo survey its log-loss after one night was worse than a
        uniform guess's); arg-max and F1 are unchanged.
    photometry : PhotometrySettings, optional
        Light-curve extraction settings; default :class:`PhotometrySettings()`.
    night_features : tuple of str, default=()
        Blocks of :data:`deeptao.data.night_features.NIGHT_FEATURE_BLOCKS`,
        named by their network parameter (``"stamp_features"``, ...), added
        after the light-curve features in the blocks' own order. Empty for
        lc-rf, the light-curve comparator.
    crop : int, default=12
        The stamp of the representation those blocks are measured on
        (taonet's default, so that both read one stored representation).
    """

    #: registry name
    name: ClassVar[str] = "lc-rf"

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
        prior_shift: bool = True,
        calibrate: bool = True,
        night_features: tuple[str, ...] = (),
        crop: int = 12,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.workers = workers
        self.photometry = photometry
        self.prior_shift = prior_shift
        self.calibrate = calibrate
        self.night_features = night_features
        self.crop = crop

    # ------------------------------------------------------------------ features
    def _settings(self) -> PhotometrySettings:
        return self.photometry if self.photometry is not None else PhotometrySettings()

    def _night_blocks(self) -> list[NightFeatureBlock]:
        """The blocks ``night_features`` names, in the order of NIGHT_FEATURE_BLOCKS; ValueError for an unknown name."""
        names = getattr(self, "night_features", ())  # a forest saved before the option existed has none
        if isinstance(names, str):
            raise ValueError(f"night_features must be a sequence of block names, got the string {names!r}")
        options = [block.option for block in NIGHT_FEATURE_BLOCKS]
        unknown = sorted(set(names) - set(options))
        if unknown:
            raise ValueError(f"unknown night_features {unknown}; choose among {options}")
        return [block for block in NIGHT_FEATURE_BLOCKS if block.option in names]

    def _night_settings(self) -> SequenceSettings:
        return SequenceSettings(crop=getattr(self, "crop", 12))

    def _feature_names(self) -> list[str]:
        return [*FEATURE_NAMES, *(name for block in self._night_blocks() for name in block.names)]

    def _night_matrix(self, objects: Iterable[Any]) -> np.ndarray:
        return night_feature_matrix(objects, self._night_blocks(), self._night_settings().aperture)

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        compute_features(cache, settings=self._settings(), workers=workers)
        if self._night_blocks():
            open_sequences(cache, self._night_settings(), workers=workers)

    def cache_features(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Feature matrix of the objects at ``rows`` (light-curve features computed for the whole cache once, then read)."""
        table = compute_features(cache, settings=self._settings(), workers=self.workers)
        rows = np.asarray(rows, dtype=np.int64)
        lc = table[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)[rows]
        if not self._night_blocks():
            return lc
        store = open_sequences(cache, self._night_settings(), workers=self.workers)
        return np.column_stack([lc, self._night_matrix(store.object(int(r)) for r in rows)])

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

        A forest needs no checkpoints (it fits in seconds): ``workdir`` is
        accepted, for the common estimator signature, and unused. The
        validation objects choose the prior shift only (``prior_shift``; as
        the networks do, :mod:`deeptao.models.calibration`) and the
        temperature (``calibrate``). Save the fitted model with :meth:`save`.
        """
        X = self.cache_features(cache, rows)
        self._fit_arrays(X, y, classes=classes, seed=seed)
        if val_rows is not None and len(val_rows) and (self.prior_shift or self.calibrate):
            raw = self._proba(self.cache_features(cache, val_rows))
            y_val = _class_indices(np.asarray(y_val), list(classes))
            if self.prior_shift:
                self.prior_power_ = choose_prior_power(raw, y_val, np.asarray(self.class_prior_))
            if self.calibrate:
                self.temperature_, self.temperature_slope_ = fit_nights_calibration(
                    cache, val_rows, y_val, self._shifted(raw), lambda items: self._shifted(self._array_proba([ordered_sequence(seq) for seq in items]))
                )
        return self

    def _fit_arrays(self, X: np.ndarray, y: np.ndarray, *, classes: Sequence[str], seed: int) -> None:
        classes = list(classes)
        if len(classes) < 2:
            raise ValueError(f"need at least two classes, got {classes!r}")
        y = _class_indices(np.asarray(y), classes)
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
        self.feature_names_ = self._feature_names()
        self.seed_ = seed
        counts = np.bincount(y, minlength=len(classes)).astype(float)
        self.class_prior_ = ((counts + 0.5) / (counts + 0.5).sum()).tolist()  # never 0: see the networks'
        self.prior_power_ = 0.0
        self.temperature_, self.temperature_slope_ = 1.0, 0.0

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        return self._calibrated(self._proba(self.cache_features(cache, rows)), cache.night_counts(rows))

    def predict_proba_arrays(self, sequences: Iterable[tuple[np.ndarray, ...]]) -> np.ndarray:
        """Probabilities for image sequences outside any cache: ``(images, mjd[, blank[, duplicate]])`` each."""
        self._check_fitted()
        ordered = [ordered_sequence(seq) for seq in sequences]  # checks each tuple's length first
        nights = np.array([sequence_nights(images, mjd) for images, mjd, *_ in ordered], dtype=np.int64)
        return self._calibrated(self._array_proba(ordered), nights)

    def _array_proba(self, ordered: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        """Uncalibrated probabilities of sequences already put through :func:`ordered_sequence` (each once)."""
        table = features_from_arrays(ordered, settings=self._settings())
        X = table[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
        if self._night_blocks():
            settings = self._night_settings()
            X = np.column_stack([X, self._night_matrix(object_nights(*seq, settings) for seq in ordered)])
        return self._proba(X)

    def _shifted(self, proba: np.ndarray) -> np.ndarray:
        """The fitted prior shift (none for a model saved before it existed)."""
        prior = getattr(self, "class_prior_", None)
        power = getattr(self, "prior_power_", 0.0)
        return (
            proba if prior is None or power == 0 or not len(proba) else shift_to_prior(proba, np.asarray(prior), power)
        )

    def _calibrated(self, proba: np.ndarray, nights: np.ndarray) -> np.ndarray:
        """The prior shift, then the temperature at each object's ``nights`` (neither for a model saved before it existed)."""
        temperature, slope = getattr(self, "temperature_", 1.0), getattr(self, "temperature_slope_", 0.0)
        return calibrate_proba(self._shifted(proba), temperature=temperature, temperature_slope=slope, nights=nights)

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
        return cls.from_payload(cls.read_payload(path), path)

    @staticmethod
    def read_payload(path: str | Path) -> Any:
        """What a joblib model file holds (a pickle: load only files you trust); ValueError naming the file if unreadable."""
        try:
            return joblib.load(path)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such model file") from None
        except Exception as exc:  # unpickling raises many types for foreign or damaged files
            raise ValueError(f"{path}: not a deeptao model file ({type(exc).__name__})") from None

    @staticmethod
    def from_payload(payload: Any, path: str | Path) -> LightCurveForest:
        """The forest in a payload :meth:`save` wrote; ValueError naming ``path`` for anything else."""
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path}: not an lc-rf model file")
        return payload["model"]

    def save_skops(self, path: str | Path, *, card: dict[str, Any] | None = None) -> Path:
        """Write the fitted pipeline and what prediction needs as a skops file (no pickle), with an optional model card.

        What :meth:`load_skops` reads back predicts exactly as this model does:
        the same scikit-learn objects, no conversion of the trees.
        """
        import json

        import skops.io as sio

        self._check_fitted()
        path = Path(path)
        payload = {
            "format": _SKOPS_FORMAT,
            "version": _SKOPS_VERSION,
            "pipeline": self.pipeline_,
            "classes": list(self.classes_),
            "feature_names": list(self.feature_names_),
            "seed": int(self.seed_),
            "params": json.dumps({k: v for k, v in self.get_params().items() if k != "photometry"}),
            "photometry": json.dumps(dataclasses.asdict(self._settings())),
            "learned": json.dumps({name: getattr(self, name, default) for name, default in _LEARNED_DEFAULTS.items()}),
            "card": json.dumps(card or {}),
        }
        sio.dump(payload, path)
        return path

    @classmethod
    def load_skops(cls, path: str | Path) -> LightCurveForest:
        """Read a file written by :meth:`save_skops`; no code in it runs, and its trees are checked before use.

        Raises
        ------
        ValueError
            If the file is missing, not a skops file, holds other types than a
            deeptao forest does, or its trees are malformed.
        """
        import json

        try:
            import skops.io as sio
        except ImportError:
            raise ValueError(f"{path}: reading a .skops model needs skops (pip install 'deeptao[onnx]')") from None
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such model file")
        try:
            untrusted = set(sio.get_untrusted_types(file=path))
        except Exception as exc:  # skops raises many types for foreign or damaged files
            raise ValueError(f"{path}: not a skops file ({type(exc).__name__})") from None
        foreign = sorted(untrusted - set(_SKOPS_TRUSTED))
        if foreign:
            raise ValueError(f"{path}: holds types a deeptao forest does not: {', '.join(foreign)}")
        try:
            payload: Any = sio.load(path, trusted=sorted(untrusted))
        except Exception as exc:
            raise ValueError(f"{path}: damaged skops file ({type(exc).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != _SKOPS_FORMAT:
            raise ValueError(f"{path}: a skops file, but not an lc-rf model deeptao exported")
        if payload.get("version") != _SKOPS_VERSION:
            raise ValueError(f"{path}: lc-rf skops version {payload.get('version')!r} is not supported")
        pipeline = payload["pipeline"]
        if not isinstance(pipeline, Pipeline) or [name for name, _ in pipeline.steps] != ["impute", "forest"]:
            raise ValueError(f"{path}: its pipeline is not an lc-rf pipeline")
        _check_trees(pipeline.named_steps["forest"], path)
        photometry = json.loads(payload["photometry"])
        if photometry.get("centre") is not None:
            photometry["centre"] = tuple(photometry["centre"])
        model = cls(**json.loads(payload["params"]), photometry=PhotometrySettings(**photometry))
        model.pipeline_ = pipeline
        model.classes_ = list(payload["classes"])
        model.feature_names_ = list(payload["feature_names"])
        model.seed_ = int(payload["seed"])
        model.card_ = json.loads(payload["card"])
        learned = json.loads(payload.get("learned", "{}"))
        for name in _LEARNED_DEFAULTS.keys() & learned.keys():
            setattr(model, name, learned[name])
        return model


def _check_trees(forest: Any, path: str | Path) -> None:
    """Refuse trees whose node arrays would send prediction out of bounds or round in circles.

    scikit-learn builds every tree with children numbered after their parent,
    so a child index above its parent's bounds each descent; a leaf has both
    children -1.
    """
    if not isinstance(forest, RandomForestClassifier) or not hasattr(forest, "estimators_"):
        raise ValueError(f"{path}: its pipeline holds no fitted random forest")
    n_features = int(forest.n_features_in_)
    for k, tree in enumerate(forest.estimators_):
        t = tree.tree_
        n = int(t.node_count)
        left, right, feature = np.asarray(t.children_left), np.asarray(t.children_right), np.asarray(t.feature)
        nodes = np.arange(n)
        leaf = left == -1
        ok = (
            n >= 1
            and left.shape == right.shape == feature.shape == (n,)
            and np.array_equal(leaf, right == -1)
            and bool(np.all(leaf | ((left > nodes) & (left < n) & (right > nodes) & (right < n))))
            and bool(np.all(leaf | ((feature >= 0) & (feature < n_features))))
            and np.asarray(t.value).shape[0] == n
        )
        if not ok:
            raise ValueError(f"{path}: tree {k} of its forest is malformed")


@register_model("lc-rf")
def lc_rf(**kwargs: Any) -> LightCurveForest:
    """Random forest on MANTRA light-curve features (class-balanced, seeded by ``fit``)."""
    return LightCurveForest(**kwargs)
