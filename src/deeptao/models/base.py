"""The one shape every deeptao classifier has, whatever it learns from.

A classifier sees objects, not files: it is given the prepared cache and the
rows of the objects it may use, and it answers with class probabilities per
object. Networks, forests and anything new plug into splits, evaluation and the
report through this interface alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["ObjectClassifier", "NotFittedError"]


class NotFittedError(RuntimeError):
    """Raised when a classifier is asked to predict before it was fitted."""


class ObjectClassifier:
    """Base class in scikit-learn's spirit.

    ``__init__`` stores keyword parameters only; ``fit`` checks them, learns
    state whose names end in ``_`` (at least ``classes_``), and returns
    ``self``.
    """

    #: whether ``predict_image_proba`` gives one prediction per image
    image_level: bool = False
    #: suffix of the file ``save`` writes (``deeptao.models.load_model`` reads either kind)
    file_suffix: str = ".joblib"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters: every attribute that is not learned state."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

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
    ) -> ObjectClassifier:
        """Learn from the objects at ``rows`` of ``cache`` with class indices ``y``.

        ``val_rows``/``y_val`` are the only data allowed to steer training
        (early stopping, schedules); the test set is never passed here.
        ``workdir`` receives checkpoints and logs so interrupted work resumes.
        """
        raise NotImplementedError

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        """Compute into ``cache``, once, what ``fit`` and ``predict_proba`` read beyond the images.

        Light-curve features, nightly co-adds: built with ``workers``
        processes here, where a caller can time them and run them once before
        a distributed training, instead of inside the first fit. Nothing for a
        model that reads the images only.
        """

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(len(rows), len(classes_))``."""
        raise NotImplementedError

    def predict(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(cache, rows).argmax(axis=1)]

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first")
