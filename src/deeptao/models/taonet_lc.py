"""taonet-lc: taonet's image-sequence encoder fused with the light-curve forest's features.

The MANTRA features that the light-curve forest learns from
(:mod:`deeptao.lightcurves.features`, computed once per cache) enter the
network before its head, beside the pooled nights and the reference: what
the forest knows is a floor, and the images add what photometry at the
centre cannot see (a host, an offset, a moving star's dipole). The per-night
photometry is already among taonet's inputs.

The features are standardised inside the network by their training median and
interquartile range (buffers saved with the weights, so prediction needs
nothing else); an undefined feature (too few nights) is 0 beside an indicator.
The stamp features (``stamp_features=True``, as in taonet) follow the
light-curve features in the same branch; together they raised validation
macro F1 on 8 of 10 splits (mean +0.015) and lowered validation log-loss on
9 of 10. The variability features (``variability_features=True``, as in
taonet) come last; on ten splits they raised validation macro F1 by 0.023
(8 of 10 splits) and lowered validation log-loss by 0.015 (7 of 10), and
test macro F1 from 0.686 to 0.702 (``docs/benchmarks.md``). The forest's
features describe the spread and shape of the magnitudes; these say at what
lag the flux changes, which separates a quasar's slow wander from a
blazar's flares. The event features (:mod:`deeptao.data.event_features`),
taonet's default, are off here (``event_features=False``): on the same ten
splits they lifted taonet's validation scores, but left taonet-lc's
validation macro F1 0.005 lower and its log-loss 0.009 higher (test 0.709
either way); the forest's features already describe much of the event's
shape.
No feature reveals the label: the discovery magnitude, the CLASS text, the
file variant, the name and the number of images are not among them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deeptao.models._registry import register_model
from deeptao.models.taonet import TaoNetClassifier

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["TaoNetLCClassifier", "taonet_lc"]


def _feature_names() -> tuple[str, ...]:
    from deeptao.lightcurves import FEATURE_NAMES

    return tuple(FEATURE_NAMES)


class TaoNetLCClassifier(TaoNetClassifier):
    """taonet with the light-curve features fused before the head.

    Parameters
    ----------
    event_features : bool, default=False
        Unlike taonet (see the module docstring).
    **kwargs
        Those of :class:`deeptao.models.taonet.TaoNetClassifier`.
    """

    name = "taonet-lc"
    uses_features = True

    def __init__(self, *, event_features: bool = False, **kwargs: Any) -> None:
        super().__init__(event_features=event_features, **kwargs)

    def feature_names(self) -> tuple[str, ...]:
        return _feature_names() + super().feature_names()

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        from deeptao.lightcurves import compute_features

        super().prepare_inputs(cache, workers=workers)
        compute_features(cache, workers=workers)

    def _cache_features(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        from deeptao.lightcurves import compute_features

        table = compute_features(cache)
        lc = table[list(_feature_names())].to_numpy(np.float64)[np.asarray(rows, dtype=np.int64)]
        own = super()._cache_features(cache, rows)  # the blocks measured on the nights, if any
        return lc if own is None else np.column_stack([lc, own])

    def _array_features(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        from deeptao.lightcurves import features_from_arrays

        table = features_from_arrays(sources)
        lc = table[list(_feature_names())].to_numpy(np.float64)
        own = super()._array_features(sources)
        return lc if own is None else np.column_stack([lc, own])


@register_model("taonet-lc")
def taonet_lc(**kwargs: Any) -> TaoNetLCClassifier:
    """taonet's image-sequence encoder fused with the light-curve features before the head."""
    return TaoNetLCClassifier(**kwargs)
