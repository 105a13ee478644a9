"""A network exported by ``deeptao export``, run by onnxruntime: no torch, no Lightning.

:class:`OnnxClassifier` reads the model card stored in the ONNX file's
metadata (the same card ``deeptao export`` writes beside it), builds the
inputs the card names from image sequences with deeptao's numpy code
(:mod:`deeptao.data.representation`, :mod:`deeptao.data.inputs`), and answers
``predict_proba_arrays`` like the torch estimator it came from, so
``deeptao predict FILE.onnx FILE.fits ...`` prints the same table.

An ONNX file without a deeptao card is refused: its inputs could mean
anything, and feeding it deeptao's arrays would give numbers, not answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxClassifier", "OnnxModelError", "CARD_FORMAT", "CARD_VERSION", "CARD_METADATA_KEY"]

CARD_FORMAT = "deeptao-model-card"
CARD_VERSION = 1
#: metadata key under which an exported ONNX file holds its card (JSON)
CARD_METADATA_KEY = "deeptao.model_card"
_MODELS = ("taonet", "taonet-lc", "seed-cnn")


class OnnxModelError(ValueError):
    """An ONNX file that cannot be run as a deeptao model; the message names the file."""


class OnnxClassifier:
    """An exported network; build with :meth:`load`.

    Attributes
    ----------
    name : str
        The model it was exported from (``taonet``, ``taonet-lc``, ``seed-cnn``).
    classes_ : tuple of str
    card : dict
        The model card (see ``docs/export.md``).
    batch_size : int
        Objects (sequence networks) or images (seed-cnn) per run of the graph.
    """

    exported = True
    file_suffix = ".onnx"

    def __init__(self, path: Path, card: dict[str, Any], session: Any, *, batch_size: int = 32) -> None:
        self.path = path
        self.card = card
        self.name = str(card["model"])
        self.classes_ = tuple(card["classes"])
        self.batch_size = batch_size
        self._session = session

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> OnnxClassifier:
        """Open an ONNX file written by ``deeptao export``.

        Parameters
        ----------
        threads : int, optional
            onnxruntime's intra-op threads (default: its own choice, all cores).

        Raises
        ------
        OnnxModelError
            If onnxruntime is missing, the file is not ONNX, or it holds no deeptao model card.
        """
        path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxModelError(f"{path}: running an ONNX model needs onnxruntime (pip install 'deeptao[onnx]')") from None
        if not path.is_file():
            raise OnnxModelError(f"{path}: no such model file")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: its warnings are about the host, not the model
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for foreign or damaged files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise OnnxModelError(f"{path}: not a readable ONNX model ({first[:200]})") from None
        raw = session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY)
        if raw is None:
            raise OnnxModelError(f"{path}: an ONNX model, but not one deeptao exported (no deeptao model card in its metadata)")
        try:
            card = json.loads(raw)
        except ValueError:
            raise OnnxModelError(f"{path}: its deeptao model card is not valid JSON") from None
        if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
            raise OnnxModelError(f"{path}: its metadata under {CARD_METADATA_KEY!r} is not a deeptao model card")
        if card.get("version") != CARD_VERSION:
            raise OnnxModelError(f"{path}: model card version {card.get('version')!r} is not supported by this deeptao")
        if card.get("model") not in _MODELS:
            raise OnnxModelError(f"{path}: model {card.get('model')!r} cannot run from ONNX (known: {', '.join(_MODELS)})")
        wanted = [spec["name"] for spec in card["inputs"]]
        given = [i.name for i in session.get_inputs()]
        if wanted != given:
            raise OnnxModelError(f"{path}: the graph's inputs {given} are not those its card names {wanted}")
        return cls(path, card, session)

    # ------------------------------------------------------------------ prediction

    def predict_proba_arrays(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Class probabilities for objects given as ``(images uint16 (n, 64, 64), mjd (n,))`` pairs.

        Raises
        ------
        ValueError
            If an object's images are not ``(n, H, W)`` or its MJDs do not match them.
        """
        from deeptao.io import order_objects

        sources = list(order_objects(items))
        if not sources:
            return np.zeros((0, len(self.classes_)))
        if self.name == "seed-cnn":
            return self._predict_images(sources)
        return self._predict_nights(sources)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float64)

    def _predict_nights(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        from deeptao.data.inputs import night_arrays, pad_nights
        from deeptao.data.representation import SequenceSettings, object_nights

        representation = self.card["representation"]
        settings = SequenceSettings(**representation["settings"])
        features = self._features(sources) if "features" in representation else None
        out = []
        for lo in range(0, len(sources), self.batch_size):
            items = []
            for k in range(lo, min(lo + self.batch_size, len(sources))):
                item = night_arrays(object_nights(*sources[k], settings), aperture=settings.aperture)
                if features is not None:
                    item["features"] = features[k]
                items.append(item)
            out.append(self._run(pad_nights(items)))
        proba = np.concatenate(out)
        return proba / proba.sum(axis=1, keepdims=True)

    def _features(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """The card's features of each object, in its order: light-curve features, then the blocks measured on the nights."""
        from deeptao.data.night_features import NIGHT_FEATURE_BLOCKS
        from deeptao.data.representation import SequenceSettings, object_nights
        from deeptao.lightcurves import FEATURE_NAMES, PhotometrySettings, features_from_arrays

        representation = self.card["representation"]
        names = list(representation["features"])
        known = set(FEATURE_NAMES).union(*(block.names for block in NIGHT_FEATURE_BLOCKS))
        unknown = sorted(set(names) - known)
        if unknown:
            raise OnnxModelError(f"{self.path}: the model reads features this deeptao does not compute: {', '.join(unknown)}")
        columns: dict[str, np.ndarray] = {}
        if set(names) & set(FEATURE_NAMES):
            photometry = dict(representation.get("feature_photometry", {}))
            if photometry.get("centre") is not None:
                photometry["centre"] = tuple(photometry["centre"])
            table = features_from_arrays(sources, settings=PhotometrySettings(**photometry))
            columns.update((name, table[name].to_numpy(np.float64)) for name in FEATURE_NAMES)
        own = [block for block in NIGHT_FEATURE_BLOCKS if set(names) & set(block.names)]
        if own:
            settings = SequenceSettings(**representation["settings"])
            nights = [object_nights(*src, settings) for src in sources]
            for block in own:
                columns.update(zip(block.names, block.matrix(nights, settings.aperture).T, strict=True))
        return np.column_stack([columns[name] for name in names]).astype(np.float32)

    def _predict_images(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        from deeptao.data.inputs import normalize_images, usable_positions
        from deeptao.models.pooling import pool

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            images, owners, size = [], [], 0
            for k, (stack, _mjd, blank, _duplicate) in enumerate(sources):
                if len(stack) == 0:
                    continue
                chosen = stack[usable_positions(blank)]
                images.append(chosen)
                owners.append(np.full(len(chosen), k, np.int64))
                size += len(chosen)
                if size >= self.batch_size:
                    yield np.concatenate(images), np.concatenate(owners)
                    images, owners, size = [], [], 0
            if size:
                yield np.concatenate(images), np.concatenate(owners)

        log_proba, owner = [], []
        for images, owners in batches():
            log_proba.append(self._run({"x": normalize_images(images)[:, None]}))
            owner.append(owners)
        n = len(sources)
        if not owner:
            return np.full((n, len(self.classes_)), 1.0 / len(self.classes_))
        proba = pool(np.concatenate(log_proba), np.concatenate(owner), n, self.card["prediction"]["pooling"])
        from deeptao.io import count_nights
        from deeptao.models.calibration import calibrate_proba

        prediction = self.card["prediction"]  # the pooled probabilities, calibrated as the torch estimator calibrates them
        prior = prediction.get("class_prior")
        nights = np.array([count_nights(mjd, blank, duplicate) for _, mjd, blank, duplicate in sources], dtype=np.int64)
        return calibrate_proba(
            proba, temperature=float(prediction.get("temperature", 1.0)),
            temperature_slope=float(prediction.get("temperature_slope", 0.0)), nights=nights,
            prior=None if prior is None else np.asarray(prior), prior_power=float(prediction.get("prior_power", 0.0)),
        )  # fmt: skip
