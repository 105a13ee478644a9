"""taonet+rf: an image-sequence network and the light-curve forest, fused at their probabilities.

Each member is trained on its own, on the same objects: the network (taonet
by default) on the image sequences, the forest (lc-rf's forest) on the
light-curve features and, since 0.2.4, the blocks of features measured on
the networks' representation (:data:`FOREST_NIGHT_FEATURES`: stamp,
variability, event and damped-random-walk features). Their object-level
probabilities are combined as a weighted product of experts,

    log p(c) = log p_network(c) + w log p_forest(c) + const,

with the weight ``w`` in [0, 2] chosen on the validation objects' log-loss
after a temperature (the test objects choose nothing), and the result calibrated by a
temperature fitted on the same validation objects (one that depends on the
nights a prediction saw, :mod:`deeptao.models.calibration`; the forest is
built with ``calibrate=False``, the temperature acts once, after fusion).
``w = 0`` is the network alone; the forest's opinion enters only as far as it lowers the validation
loss, so where the two disagree the one that has been right on validation
objects weighs more.

Both members learn with class-balanced weights, so each gives roughly
``p(c | x) / prior(c)``; the product of two such balanced views is the
balanced view of the pair (for conditionally independent inputs), with the
prior in it not at all. The members are therefore fused *before* any prior
shift: each is built with ``prior_shift=False``, and the one shift towards
the training frequencies (:mod:`deeptao.models.calibration`) is chosen on
the fused validation probabilities, then the temperature. Letting each
member shift on its own would apply the prior ``a_network + w a_forest``
times, a power no validation set chose.

Fusing late, rather than feeding the features to the network's head
(taonet-lc), lets each learner work where it is strongest: a forest on a
few dozen tabular features from a few thousand objects, a network on the
pixels. With the light-curve features alone the forest is far weaker than
the network and the fusion gained little (0.662 against taonet's 0.657 on
three splits of a 300-per-class simulated survey). A forest that also has
the representation's feature blocks scores about as the networks do (0.70
to 0.71 macro F1 on two such surveys, ten splits each), and the product of
the two, which err on different objects, is what lifts the score
(``docs/benchmarks.md``).

The fitted model is a joblib file (a pickle: load only files you trust)
holding both members; it has no ONNX export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np

from deeptao.io import sequence_nights
from deeptao.models._registry import create_model, register_model
from deeptao.models.base import ObjectClassifier
from deeptao.models.calibration import (
    apply_temperature,
    calibrate_proba,
    choose_prior_power,
    fit_nights_calibration,
    fit_temperature,
    shift_to_prior,
)

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["FusedClassifier", "fuse_probabilities", "choose_weight", "FUSION_WEIGHTS", "FOREST_NIGHT_FEATURES", "FORMAT"]

FORMAT = "deeptao-fused"
#: the forest weights validation chooses among
FUSION_WEIGHTS = tuple(np.round(np.linspace(0.0, 2.0, 21), 2).tolist())
_FLOOR = 1e-9  # a forest's zero probability is a strong veto, never an infinite one
#: the feature blocks of :data:`deeptao.data.night_features.NIGHT_FEATURE_BLOCKS` the fused forest takes by default
FOREST_NIGHT_FEATURES = ("stamp_features", "variability_features", "event_features", "drw_features")


def fuse_probabilities(network: np.ndarray, forest: np.ndarray, weight: float) -> np.ndarray:
    """``p_network * p_forest ** weight``, normalised per object (probabilities floored at 1e-9 first)."""
    log_p = np.log(np.clip(network, _FLOOR, 1.0)) + weight * np.log(np.clip(forest, _FLOOR, 1.0))
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def choose_weight(network: np.ndarray, forest: np.ndarray, y: np.ndarray, weights: Sequence[float] = FUSION_WEIGHTS) -> float:
    """The weight of ``weights`` whose fusion, after its own temperature, has the lowest mean log-loss on ``y``.

    The temperature is fitted for each weight (:func:`deeptao.models.calibration.fit_temperature`),
    as the fused model is calibrated after fusion: judged before it, a product
    of two sure members is punished for a sharpness the temperature then
    removes, and the weight comes out too small. (On two simulated surveys the
    rule without the temperature gave lc-rf weights of 0.1 to 0.4; with the
    forest on the feature blocks, the validation loss after a temperature was
    lowest at weights of 1 to 1.5, ``docs/benchmarks.md``.) The first of ties.
    """
    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(y))
    losses = []
    for w in weights:
        p = fuse_probabilities(network, forest, w)
        p = apply_temperature(p, fit_temperature(p, y))
        losses.append(-np.mean(np.log(np.clip(p[rows, y], _FLOOR, 1.0))))
    return float(weights[int(np.argmin(losses))])


class FusedClassifier(ObjectClassifier):
    """A network and the light-curve forest, trained apart and fused at their probabilities.

    Parameters
    ----------
    network : str, default="taonet"
        Registered image network: taonet, taonet-lc or seed-cnn.
    network_params, forest_params : mapping, optional
        Parameters of the network and of the forest (their own defaults
        otherwise; the forest's ``night_features`` default to
        :data:`FOREST_NIGHT_FEATURES`, ``night_features=()`` gives lc-rf's forest).
    calibrate : bool, default=True
        Fit a temperature to the fused validation probabilities, as a
        function of the nights a prediction saw (the validation objects
        whole and cut to their first nights, :mod:`deeptao.models.calibration`).
    prior_shift : bool, default=True
        Choose one shift towards the training class frequencies on the fused
        validation probabilities (a no-op on a balanced survey). The members'
        own ``prior_shift`` is always off, whatever their parameters say.
    """

    name = "taonet+rf"
    file_suffix = ".joblib"
    weight_: float = 0.0
    temperature_: float = 1.0
    temperature_slope_: float = 0.0
    prior_power_: float = 0.0
    class_prior_: tuple[float, ...] | None = None

    def __init__(
        self,
        *,
        network: str = "taonet",
        network_params: Mapping[str, Any] | None = None,
        forest_params: Mapping[str, Any] | None = None,
        calibrate: bool = True,
        prior_shift: bool = True,
    ) -> None:
        self.network = network
        self.network_params = network_params
        self.forest_params = forest_params
        self.calibrate = calibrate
        self.prior_shift = prior_shift

    def _check_params(self) -> None:
        if self.network not in ("taonet", "taonet-lc", "seed-cnn"):
            raise ValueError(f"network must be taonet, taonet-lc or seed-cnn, got {self.network!r}")
        for name in ("network_params", "forest_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a mapping of parameters, got {value!r}")

    def _members(self) -> tuple[Any, Any]:
        self._check_params()
        # The prior is shifted once, after fusion (module docstring); the forest's probabilities
        # enter the product as they are, the temperature is fitted after it.
        network = create_model(self.network, **{**dict(self.network_params or {}), "prior_shift": False})
        forest = create_model(
            "lc-rf",
            **{"night_features": FOREST_NIGHT_FEATURES, **dict(self.forest_params or {}), "prior_shift": False, "calibrate": False},
        )
        for member in (network, forest):
            check = getattr(member, "_check_params", None)
            if check is not None:
                check()
        return network, forest

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        for member in self._members():
            member.prepare_inputs(cache, workers=workers)

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
    ) -> FusedClassifier:
        """Fit both members on ``rows``; choose the weight, prior shift and temperature on the validation objects.

        Without validation objects the weight is 1 (the plain product), with
        no shift and no temperature. The network's checkpoints go to
        ``workdir/network``.
        """
        network, forest = self._members()
        network.fit(
            cache, rows, y, classes=classes, val_rows=val_rows, y_val=y_val, seed=seed,
            workdir=None if workdir is None else Path(workdir) / "network",
        )  # fmt: skip
        forest.fit(cache, rows, y, classes=classes, val_rows=val_rows, y_val=y_val, seed=seed)
        self.network_, self.forest_ = network, forest
        self.classes_ = tuple(network.classes_)
        self.weight_, self.temperature_, self.temperature_slope_, self.prior_power_ = 1.0, 1.0, 0.0, 0.0
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(self.classes_)).astype(float)
        self.class_prior_ = tuple(((counts + 0.5) / (counts + 0.5).sum()).tolist())  # never 0, as the members'
        if val_rows is not None and len(val_rows):
            y_val = np.asarray(y_val, dtype=np.int64)
            p_net, p_forest = network.predict_proba(cache, val_rows), forest.predict_proba(cache, val_rows)
            self.weight_ = choose_weight(p_net, p_forest, y_val)
            fused = fuse_probabilities(p_net, p_forest, self.weight_)
            prior = np.asarray(self.class_prior_)
            if self.prior_shift:
                self.prior_power_ = choose_prior_power(fused, y_val, prior)
            if self.calibrate:

                def shifted_arrays(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
                    fused_cut = fuse_probabilities(
                        network.predict_proba_arrays(items), forest.predict_proba_arrays(items), self.weight_
                    )
                    return shift_to_prior(fused_cut, prior, self.prior_power_)

                self.temperature_, self.temperature_slope_ = fit_nights_calibration(
                    cache, val_rows, y_val, shift_to_prior(fused, prior, self.prior_power_), shifted_arrays
                )
        self.training_ = {
            "weight": self.weight_,
            "prior_power": self.prior_power_,
            "temperature": self.temperature_,
            "temperature_slope": self.temperature_slope_,
            "network": getattr(network, "training_", None),
        }
        return self

    def _fused(self, p_net: np.ndarray, p_forest: np.ndarray, nights: np.ndarray) -> np.ndarray:
        prior = None if self.class_prior_ is None else np.asarray(self.class_prior_)
        fused = fuse_probabilities(p_net, p_forest, self.weight_)
        return calibrate_proba(
            fused, temperature=self.temperature_, temperature_slope=self.temperature_slope_, nights=nights,
            prior=prior, prior_power=self.prior_power_,
        )  # fmt: skip

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Fused, calibrated probabilities per object, shape ``(len(rows), len(classes_))``."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        return self._fused(
            self.network_.predict_proba(cache, rows), self.forest_.predict_proba(cache, rows), cache.night_counts(rows)
        )

    def predict_proba_arrays(self, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The same for objects given as ``(images, mjd)`` pairs, outside any cache."""
        self._check_fitted()
        items = list(items)
        nights = np.array([sequence_nights(images, mjd) for images, mjd in items], dtype=np.int64)
        return self._fused(self.network_.predict_proba_arrays(items), self.forest_.predict_proba_arrays(items), nights)

    def save(self, path: str | Path) -> Path:
        """Write both members, the weight and the temperature with joblib (atomically)."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump({"format": FORMAT, "model": self}, tmp)
        tmp.replace(path)
        return path


@register_model("taonet+rf")
def taonet_rf(**kwargs: Any) -> FusedClassifier:
    """An image network (taonet) and lc-rf, trained apart, fused at their probabilities with a weight chosen on validation."""
    return FusedClassifier(**kwargs)
