"""Classify FITS files with a fitted model, a bounded number of files in memory at a time.

``deeptao predict`` on a whole release (16,307 files, about 5 GB of pixels)
must not hold every image at once: the files are read and classified in
chunks of :data:`CHUNK_FILES`, and only each object's row of probabilities is
kept. A model scores each object on its own (no statistic is shared across a
batch), so the probabilities do not depend on the chunk size; a test checks
that.

A file the reader refuses is skipped and reported, never fatal: one bad file
among thousands should not cost the rest their predictions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeptao.io import TaoFormatError, TaoObject, first_nights, read_object, sequence_nights

__all__ = ["classify_files", "ClassifiedFiles", "CHUNK_FILES"]

#: files read and classified together; about 80 MB of pixels at the release's ~77 images per object
CHUNK_FILES = 128


class ClassifiedFiles:
    """What :func:`classify_files` returns: the table, one row per classified file, and the files it skipped."""

    def __init__(self, table: pd.DataFrame, skipped: list[tuple[Path, str]]) -> None:
        self.table = table
        self.skipped = skipped

    def __repr__(self) -> str:
        return f"ClassifiedFiles({len(self.table)} classified, {len(self.skipped)} skipped)"


def _progress_bar(total: int, enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    disable = not sys.stderr.isatty() if enabled is None else not enabled
    return tqdm(total=total, desc="classify", unit="file", disable=disable, dynamic_ncols=True)


def classify_files(
    model: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    max_nights: int | None = None,
    chunk_files: int = CHUNK_FILES,
    progress: bool | None = None,
    on_read: Callable[[TaoObject], None] | None = None,
) -> ClassifiedFiles:
    """Class probabilities of the objects in ``paths``, read ``chunk_files`` at a time.

    Parameters
    ----------
    model
        A fitted model with ``predict_proba_arrays`` and ``classes_`` (see
        :func:`deeptao.models.load_model`).
    paths
        FITS files, one object each.
    max_nights
        Classify from each object's first ``max_nights`` nights only (early
        classification, :func:`deeptao.io.first_nights`); None: every night.
    chunk_files
        Files held in memory at once.
    progress
        Show a progress bar on standard error; None: when it is a terminal.
    on_read
        Called with each object read, before it is classified (to report
        what the reader left out of a file, for instance).

    Returns
    -------
    ClassifiedFiles
        ``table`` has columns ``file``, ``object_id``, ``label`` (the file's
        own CLASS, empty if none; never used to predict), ``nights`` (the
        nights the model saw, which its temperature depends on; the report's
        early calibration says how honest its probabilities are that early), ``predicted``
        and ``prob_<class>``, in the order of ``paths``; ``skipped`` lists
        ``(path, reason)`` for each file the reader refused.
    """
    if max_nights is not None and (not isinstance(max_nights, (int, np.integer)) or max_nights < 1):
        raise ValueError(f"max_nights must be at least 1, got {max_nights!r}")
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be at least 1, got {chunk_files!r}")
    classes = list(model.classes_)
    paths = [Path(p) for p in paths]
    rows: list[pd.DataFrame] = []
    skipped: list[tuple[Path, str]] = []
    with _progress_bar(len(paths), progress) as bar:
        for start in range(0, len(paths), chunk_files):
            objects = list(_read_chunk(paths[start : start + chunk_files], skipped, on_read))
            if objects:
                rows.append(_classify(model, classes, objects, max_nights))
            bar.update(min(chunk_files, len(paths) - start))
    columns = ["file", "object_id", "label", "nights", "predicted", *(f"prob_{c}" for c in classes)]
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return ClassifiedFiles(table[columns], skipped)


def _read_chunk(
    paths: Iterable[Path], skipped: list[tuple[Path, str]], on_read: Callable[[TaoObject], None] | None
) -> Iterable[TaoObject]:
    for path in paths:
        try:
            obj = read_object(path)
        except TaoFormatError as exc:
            skipped.append((path, str(exc)))
            continue
        if on_read is not None:
            on_read(obj)
        yield obj


def _classify(model: Any, classes: list[str], objects: list[TaoObject], max_nights: int | None) -> pd.DataFrame:
    sequences = [(obj.images, obj.mjd) for obj in objects]
    if max_nights is not None:  # what was known after the first K nights
        sequences = [first_nights(images, mjd, max_nights) for images, mjd in sequences]
    proba = model.predict_proba_arrays(sequences)
    table = pd.DataFrame(
        {
            "file": [str(obj.path) for obj in objects],
            "object_id": [obj.object_id for obj in objects],
            "label": [obj.label or "" for obj in objects],
            "nights": [sequence_nights(images, mjd) for images, mjd in sequences],
            "predicted": [classes[k] for k in np.asarray(proba).argmax(axis=1)],
        }
    )
    for j, name in enumerate(classes):
        table[f"prob_{name}"] = proba[:, j]
    return table
