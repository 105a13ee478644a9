"""One way to load any saved deeptao model, whatever library fitted it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_model", "MODEL_FILE_NAMES"]

#: names ``replicate`` gives saved models inside a stage folder
MODEL_FILE_NAMES = ("model.pt", "model.joblib")


def load_model(path: str | Path) -> Any:
    """A fitted classifier from a file written by its ``save`` (or a folder holding one).

    Networks are torch files; the light-curve forest is a joblib file (a
    pickle: load only files you trust).

    Raises
    ------
    ValueError
        If the path holds no deeptao model; the message names the path.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in MODEL_FILE_NAMES if (path / name).exists()]
        if not found:
            raise ValueError(f"{path}: no {' or '.join(MODEL_FILE_NAMES)} in this folder")
        path = found[0]
    if not path.exists():
        raise ValueError(f"{path}: no such model file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):  # torch.save writes a zip archive
        from deeptao.models._torch import load_model as load_torch

        return load_torch(path)
    from deeptao.models.lc_rf import LightCurveForest

    return LightCurveForest.load(path)
