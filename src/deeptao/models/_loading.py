"""One way to load any saved or exported deeptao model, whatever library fitted it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_model", "resolve_model_file", "MODEL_FILE_NAMES"]

#: names ``replicate`` gives saved models inside a stage folder, then those ``deeptao export`` gives by default
MODEL_FILE_NAMES = ("model.pt", "model.joblib", "model.onnx", "model.skops")


def resolve_model_file(path: str | Path) -> Path:
    """The model file at ``path``, or the first of :data:`MODEL_FILE_NAMES` in the folder ``path``.

    Raises
    ------
    ValueError
        If the folder holds none of them, or the file does not exist; the message names the path.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in MODEL_FILE_NAMES if (path / name).exists()]
        if not found:
            raise ValueError(f"{path}: no model in this folder (looked for {', '.join(MODEL_FILE_NAMES)})")
        path = found[0]
    if not path.exists():
        raise ValueError(f"{path}: no such model file")
    return path


def load_model(path: str | Path) -> Any:
    """A fitted classifier from a file written by its ``save`` or by ``deeptao export`` (or a folder holding one).

    Networks are torch files; the light-curve forest is a joblib file (a
    pickle: load only files you trust). Exported models (``.onnx``, run by
    onnxruntime without torch; ``.skops``, the forest without pickle) are
    told by their suffix.

    Raises
    ------
    ValueError
        If the path holds no deeptao model; the message names the path.
    """
    path = resolve_model_file(path)
    if path.suffix == ".onnx":
        from deeptao.models.onnx_model import OnnxClassifier

        return OnnxClassifier.load(path)
    if path.suffix == ".skops":
        from deeptao.models.lc_rf import LightCurveForest

        return LightCurveForest.load_skops(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):  # torch.save writes a zip archive
        from deeptao.models._torch import load_model as load_torch

        return load_torch(path)
    from deeptao.models.fusion import FORMAT as FUSED_FORMAT
    from deeptao.models.lc_rf import LightCurveForest

    payload = LightCurveForest.read_payload(path)
    if isinstance(payload, dict) and payload.get("format") == FUSED_FORMAT:
        return payload["model"]
    return LightCurveForest.from_payload(payload, path)
