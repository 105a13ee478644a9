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
No feature reveals the label: the discovery magnitude, the CLASS text, the
file variant, the name and the number of images are not among them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

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
    **kwargs
        Those of :class:`deeptao.models.taonet.TaoNetClassifier`.
    """

    name = "taonet-lc"
    uses_features = True

    def _n_features(self) -> int:
        return len(_feature_names())

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        from deeptao.lightcurves import compute_features

        super().prepare_inputs(cache, workers=workers)
        compute_features(cache, workers=workers)

    def _cache_features(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        from deeptao.lightcurves import compute_features

        table = compute_features(cache)
        return table[list(_feature_names())].to_numpy(np.float64)[np.asarray(rows, dtype=np.int64)]

    def _array_features(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        from deeptao.lightcurves import features_from_arrays

        table = features_from_arrays(sources)
        return table[list(_feature_names())].to_numpy(np.float64)

    def _fit_features(self, features: np.ndarray) -> None:
        with np.errstate(all="ignore"):
            center = np.nanmedian(features, axis=0)
            q75, q25 = np.nanpercentile(features, [75, 25], axis=0)
        scale = (q75 - q25) / 1.349
        center = np.where(np.isfinite(center), center, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self._feature_stats = (center, scale)

    def _init_network(self, network: nn.Module) -> None:
        center, scale = self._feature_stats
        network.feature_center.copy_(torch.as_tensor(center, dtype=torch.float32))
        network.feature_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))


@register_model("taonet-lc")
def taonet_lc(**kwargs: Any) -> TaoNetLCClassifier:
    """taonet's image-sequence encoder fused with the light-curve features before the head."""
    return TaoNetLCClassifier(**kwargs)
