"""Light curves and features of a whole prepared cache, computed once and kept beside it.

``CACHE/lightcurves.parquet`` holds the photometry of every exposure and
``CACHE/lc_features.parquet`` one row of features per object. Both carry a key
(in their Parquet metadata) that hashes the feature definitions, the
photometry settings and the cache's identity, so a later call reuses them
only when nothing that shaped them has changed. Objects are measured in small
chunks and written as they come, so memory does not grow with the data set,
and each file appears under its name only when it is complete (it is written
under a temporary name and renamed; the features file last).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deeptao.io import order_exposures
from deeptao.lightcurves.features import FEATURE_NAMES, FEATURES_VERSION, feature_matrix, pad_lightcurves
from deeptao.lightcurves.photometry import PhotometrySettings, bin_nights, measure, nightly_bin, photometry

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = [
    "LIGHTCURVES_FILE",
    "FEATURES_FILE",
    "object_lightcurve",
    "features_from_arrays",
    "compute_features",
    "load_lightcurves",
    "ordered_sequence",
]

LIGHTCURVES_FILE = "lightcurves.parquet"
FEATURES_FILE = "lc_features.parquet"
_META_KEY = b"deeptao.lightcurves"
#: objects measured per work unit: small enough to bound memory, large enough to amortise overheads
_CHUNK_OBJECTS = 64
#: columns of lc_features.parquet besides the features: counts, for diagnostics, not for models
INFO_COLUMNS = ("n_exposures", "n_good", "n_nights")


def object_lightcurve(
    images: np.ndarray,
    mjd: np.ndarray,
    blank: np.ndarray | None = None,
    duplicate: np.ndarray | None = None,
    settings: PhotometrySettings | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-exposure photometry and the nightly light curve of one object."""
    cfg = settings if settings is not None else PhotometrySettings()
    epochs = photometry(images, mjd, blank, duplicate=duplicate, settings=cfg)
    nights = nightly_bin(epochs, settings=cfg)
    return epochs, nights


def _features_of_nights(nights: Sequence[pd.DataFrame]) -> np.ndarray:
    t, m, e = pad_lightcurves((n["mjd"].to_numpy(), n["amag"].to_numpy(), n["amag_err"].to_numpy()) for n in nights)
    return feature_matrix(t, m, e)


def features_from_arrays(
    sequences: Iterable[tuple[np.ndarray, ...]], settings: PhotometrySettings | None = None
) -> pd.DataFrame:
    """Features of image sequences given as ``(images, mjd[, blank[, duplicate]])`` tuples.

    For files outside any cache (``deeptao predict FILE.fits``); one row per
    sequence, columns :data:`FEATURE_NAMES`.
    """
    nights = [object_lightcurve(*ordered_sequence(seq), settings=settings)[1] for seq in sequences]
    return pd.DataFrame(_features_of_nights(nights), columns=list(FEATURE_NAMES))


def ordered_sequence(seq: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(images, mjd, blank, duplicate)`` of one ``(images, mjd[, blank[, duplicate]])`` tuple, in MJD order.

    Four items keep their flags (the reader's own) and are put in MJD order.
    With two or three, the exposures are ordered and flagged by the reader's
    rules (:func:`deeptao.io.order_exposures`), a given ``blank`` kept, so that
    a file scores alike whether it comes through the cache or on its own.
    """
    if len(seq) not in (2, 3, 4):
        raise ValueError(f"each sequence must be (images, mjd[, blank[, duplicate]]), got {len(seq)} items")
    images, mjd = np.asarray(seq[0]), np.asarray(seq[1], dtype=np.float64)
    if len(seq) == 4:
        order = np.argsort(mjd, kind="stable")
        return images[order], mjd[order], np.asarray(seq[2], dtype=bool)[order], np.asarray(seq[3], dtype=bool)[order]
    given_blank = np.asarray(seq[2], dtype=bool)[np.argsort(mjd, kind="stable")] if len(seq) == 3 else None
    images, mjd, blank, duplicate = order_exposures(images, mjd)
    return images, mjd, (blank if given_blank is None else given_blank), duplicate


# --------------------------------------------------------------------------- the cache


def _cache_key(cache: PreparedCache, cfg: PhotometrySettings) -> str:
    ids = cache.objects["object_id"].astype(str).to_numpy()
    identity = {
        "features_version": FEATURES_VERSION,
        "features": list(FEATURE_NAMES),
        "settings": dataclasses.asdict(cfg),
        "n_objects": len(cache),
        "n_images": len(cache.images),
        "cache": cache.content_id,  # a re-prepare of unchanged files keeps it, a changed file changes it
        "object_ids": hashlib.sha1("\0".join(ids).encode()).hexdigest(),
    }
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _stored_key(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = meta.get(_META_KEY)
    return json.loads(raw)["key"] if raw else None


class _Measurer:
    """Measures chunks of objects of one cache; built once per process."""

    def __init__(self, cache: PreparedCache, cfg: PhotometrySettings) -> None:
        self.cache, self.cfg = cache, cfg
        images, objects = cache.images, cache.objects
        self.mjd = images["mjd"].to_numpy(dtype=np.float64)
        self.blank = images["blank"].to_numpy(dtype=bool)
        self.duplicate = images["duplicate"].to_numpy(dtype=bool)
        self.starts = objects["image_start"].to_numpy(dtype=np.int64)
        self.counts = objects["n_images"].to_numpy(dtype=np.int64)
        self.ids = objects["object_id"].astype(str).to_numpy()

    def __call__(self, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """The objects' exposures (one table) and their features followed by counts."""
        cfg = self.cfg
        parts: dict[str, list[np.ndarray]] = {}
        curves, info = [], []
        for i in rows:
            sl = slice(self.starts[i], self.starts[i] + self.counts[i])
            images = self.cache.object_images(int(i))
            columns = measure(images, self.mjd[sl], self.blank[sl], self.duplicate[sl], cfg)
            nights, night_of, _ = bin_nights(
                columns["mjd"], columns["flux"], columns["flux_err"], columns["good"],
                night_gap=cfg.night_gap, zero_point=cfg.zero_point,
            )  # fmt: skip
            n = len(night_of)
            columns = {"object_id": np.full(n, self.ids[i], dtype=object), "object": np.full(n, i, np.int64), **columns}
            columns["night"] = night_of
            for name, values in columns.items():
                parts.setdefault(name, []).append(values)
            curves.append((nights["mjd"], nights["amag"], nights["amag_err"]))
            info.append((n, int(columns["good"].sum()), len(nights["mjd"])))
        t, m, e = pad_lightcurves(curves)
        values = np.column_stack([feature_matrix(t, m, e), np.asarray(info, dtype=np.float64)])
        epochs = pd.DataFrame({name: np.concatenate(chunks) for name, chunks in parts.items()})
        return epochs, values


_WORKER_MEASURERS: dict[str, _Measurer] = {}


def _worker_chunk(root: str, cfg: PhotometrySettings, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    # A worker reopens the cache from its folder once, rather than receiving its
    # tables (a million image rows) pickled with every chunk.
    measurer = _WORKER_MEASURERS.get(root)
    if measurer is None or measurer.cfg != cfg:
        from deeptao.data.cache import open_cache

        measurer = _WORKER_MEASURERS[root] = _Measurer(open_cache(root), cfg)
    return measurer(rows)


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(start, min(n, start + size)) for start in range(0, n, size)]


def _run(
    cache: PreparedCache, cfg: PhotometrySettings, workers: int
) -> Iterator[tuple[int, tuple[pd.DataFrame, np.ndarray]]]:
    chunks = _chunks(len(cache), _CHUNK_OBJECTS)
    if workers <= 1 or len(chunks) <= 1:
        measurer = _Measurer(cache, cfg)
        for rows in chunks:
            yield len(rows), measurer(rows)
        return
    root = str(Path(cache.root).resolve())
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=get_context("spawn")) as pool:
        results = pool.map(_worker_chunk, [root] * len(chunks), [cfg] * len(chunks), chunks)
        for rows, result in zip(chunks, results, strict=True):
            yield len(rows), result


def _default_progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="object", disable=not sys.stderr.isatty(), dynamic_ncols=True)


def compute_features(
    cache: PreparedCache,
    *,
    settings: PhotometrySettings | None = None,
    workers: int = 1,
    progress: Callable[[int, str], Any] | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Light-curve features of every object of ``cache``, computed once and reused.

    Parameters
    ----------
    cache : PreparedCache
    settings : PhotometrySettings, optional
        Photometry and binning settings; changing them recomputes.
    workers : int, default=1
        Processes measuring chunks of objects in parallel.
    progress : callable, optional
        ``progress(total, desc)`` returning a tqdm-like object; default: a bar on a terminal only.
    force : bool, default=False
        Recompute even when valid files exist.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``object_id`` in the cache's object order; columns
        :data:`FEATURE_NAMES` then ``n_exposures``, ``n_good``, ``n_nights``.
        Undefined features are NaN.
    """
    cfg = settings if settings is not None else PhotometrySettings()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    root = Path(cache.root)
    lc_path, feat_path = root / LIGHTCURVES_FILE, root / FEATURES_FILE
    key = _cache_key(cache, cfg)
    if not force and _stored_key(feat_path) == key and _stored_key(lc_path) == key:
        table = pd.read_parquet(feat_path)
        if table.index.astype(str).tolist() == cache.objects["object_id"].astype(str).tolist():
            return table

    stamp = {"key": key, "settings": dataclasses.asdict(cfg), "features_version": FEATURES_VERSION}
    meta = {_META_KEY: json.dumps(stamp).encode()}
    tmp_lc = lc_path.with_name(f".{lc_path.name}.{os.getpid()}.tmp")
    tmp_feat = feat_path.with_name(f".{feat_path.name}.{os.getpid()}.tmp")
    rows: list[np.ndarray] = []
    writer: pq.ParquetWriter | None = None
    bar = (progress or _default_progress)(len(cache), "light curves")
    try:
        for n_done, (epochs, values) in _run(cache, cfg, workers):
            table = pa.Table.from_pandas(epochs, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp_lc, table.schema.with_metadata(meta))
            writer.write_table(table.cast(writer.schema))
            rows.append(values)
            bar.update(n_done)
        if writer is None:  # an empty cache still gets (empty) files
            empty = pa.Table.from_pandas(_empty_epochs(), preserve_index=False)
            writer = pq.ParquetWriter(tmp_lc, empty.schema.with_metadata(meta))
        writer.close()
        writer = None
        columns = [*FEATURE_NAMES, *INFO_COLUMNS]
        values = np.vstack(rows) if rows else np.zeros((0, len(columns)))
        index = pd.Index(cache.objects["object_id"].astype(str), name="object_id")
        frame = pd.DataFrame(values, columns=columns, index=index)
        for name in INFO_COLUMNS:
            frame[name] = frame[name].astype(np.int64)
        table = pa.Table.from_pandas(frame, preserve_index=True)
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp_feat)
        os.replace(tmp_lc, lc_path)
        os.replace(tmp_feat, feat_path)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        for tmp in (tmp_lc, tmp_feat):
            tmp.unlink(missing_ok=True)
    return frame


def _empty_epochs() -> pd.DataFrame:
    frame = photometry(np.zeros((0, 64, 64), np.uint16), np.zeros(0))
    frame.insert(0, "object_id", pd.Series([], dtype=str))
    frame.insert(1, "object", pd.Series([], dtype=np.int64))
    frame["night"] = pd.Series([], dtype=np.int64)
    return frame


def load_lightcurves(
    cache: PreparedCache, *, settings: PhotometrySettings | None = None, workers: int = 1
) -> pd.DataFrame:
    """Per-exposure photometry of every object (computing it first if needed).

    Columns: ``object_id``, ``object`` (row of ``cache.objects``), :data:`EPOCH_COLUMNS`,
    and ``night`` (index of the exposure's night within its object, -1 if unused).
    """
    compute_features(cache, settings=settings, workers=workers)
    return pd.read_parquet(Path(cache.root) / LIGHTCURVES_FILE)
