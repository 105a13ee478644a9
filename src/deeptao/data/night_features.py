"""The per-object feature blocks measured on the networks' representation: one list, read by every user.

A sequence network takes each block its parameter of the same name switches
on, in this order, after any features of its own (taonet-lc's light-curve
features). The model card names the function that computes each block, and
an exported model rebuilds the blocks its card lists. Adding a block here is
all those places need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from deeptao.data.drw_features import DRW_FEATURE_NAMES, drw_feature_matrix
from deeptao.data.event_features import EVENT_FEATURE_NAMES, event_feature_matrix
from deeptao.data.intra_night_features import INTRA_NIGHT_FEATURE_NAMES, intra_night_feature_matrix
from deeptao.data.representation import ObjectNights
from deeptao.data.stamp_features import STAMP_FEATURE_NAMES, stamp_feature_matrix
from deeptao.data.variability_features import VARIABILITY_FEATURE_NAMES, variability_feature_matrix

__all__ = ["NightFeatureBlock", "NIGHT_FEATURE_BLOCKS", "night_feature_matrix"]


@dataclass(frozen=True)
class NightFeatureBlock:
    """One block: the network parameter that takes it, its column names, and how to compute it."""

    option: str
    label: str
    names: tuple[str, ...]
    #: ``matrix(objects, aperture)``: the block of each object, with the representation's photometry radius
    matrix: Callable[[Iterable[ObjectNights], float], np.ndarray]
    #: the per-object function, as the model card quotes it
    function: str

    def build_step(self) -> str:
        """The model card's line on how to compute this block outside deeptao's models."""
        return f"{self.label}: {self.function} of the object's nights (with the representation's aperture), raw (NaN allowed)"


NIGHT_FEATURE_BLOCKS = (
    NightFeatureBlock("stamp_features", "stamp features", STAMP_FEATURE_NAMES, stamp_feature_matrix,
                      "deeptao.data.stamp_features.stamp_features"),
    NightFeatureBlock("variability_features", "variability features", VARIABILITY_FEATURE_NAMES,
                      variability_feature_matrix, "deeptao.data.variability_features.variability_features"),
    NightFeatureBlock("intra_night_features", "intra-night features", INTRA_NIGHT_FEATURE_NAMES,
                      intra_night_feature_matrix, "deeptao.data.intra_night_features.intra_night_features"),
    NightFeatureBlock("event_features", "event features", EVENT_FEATURE_NAMES, event_feature_matrix,
                      "deeptao.data.event_features.event_features"),
    NightFeatureBlock("drw_features", "damped-random-walk features", DRW_FEATURE_NAMES, drw_feature_matrix,
                      "deeptao.data.drw_features.drw_features"),
)  # fmt: skip


def night_feature_matrix(objects: Iterable[ObjectNights], blocks: Iterable[NightFeatureBlock], aperture: float) -> np.ndarray:
    """The ``blocks`` of each object side by side, one row per object: what a model that takes them reads."""
    objects = list(objects)
    return np.column_stack([block.matrix(objects, aperture) for block in blocks])
