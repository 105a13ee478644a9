"""The prepared cache: every object's images as uint16 on disk, streamed, never loaded whole.

Layout of ``CACHE/``::

    manifest.json       written last: its presence is what makes a cache whole
    objects.parquet     one row per object
    images.parquet      one row per image; each object's rows contiguous, MJD order
    bad_files.csv       files skipped and why (path, reason)
    warnings.csv        images and rows left out of files kept, and cards found wrong (path, hdu, row, reason)
    parts/part-NNNNN-KEY.u16      pixels of one part, raw uint16 (n, 64, 64)
    parts/part-NNNNN-KEY.json     a part's commit marker, written after its data

Files are prepared in parts of a fixed number of files, each part by one worker
process, so both cores work and memory stays at one part's tables plus one
file's pixels. A part's key hashes its files' paths, sizes and modification
times: a part whose marker exists with the same key is reused, so a prepare
killed at any moment resumes where it stopped, and a changed file redoes only
its part. The manifest is replaced atomically after everything else is in
place, so no interrupted run leaves something that opens as a whole cache.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeptao import __version__
from deeptao.data._arrow import LARGE_STRING, from_numpy, to_numpy
from deeptao.io import IMAGE_SHAPE, ReadFault, TaoFormatError, count_nights, iter_fits_files, read_object

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PrepareError", "CacheError", "PrepareResult", "PreparedCache", "prepare", "open_cache", "FILES_PER_PART"]

#: 2: objects hold crts_id (None for NON) and parent_id, n_faults, parent_missing; warnings.csv
#: 3: of the cutouts of one exposure, the first that is not blank is kept (not always the first)
FORMAT_VERSION = 3
FILES_PER_PART = 64
_PIXEL_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * 2


class PrepareError(RuntimeError):
    """Preparing stopped (``--strict`` met a bad file or a fault in one, or there was nothing to prepare); one line."""


class CacheError(RuntimeError):
    """A folder that is not a complete prepared cache; one line naming the folder."""


@dataclass
class PrepareResult:
    """What a prepare did: counts, the files it skipped and why, what it left out of the files it kept, and the reuse of earlier work.

    ``warnings`` holds ``(path, hdu, row, reason)`` per :class:`deeptao.io.ReadFault`
    (as in ``warnings.csv``); ``n_non_without_parent`` counts the NON objects
    whose parent ``CRTS_ID`` names no transient among the objects prepared.
    """

    cache: Path
    n_objects: int
    n_images: int
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, int | None, int | None, str]] = field(default_factory=list)
    n_non_without_parent: int = 0
    parts_reused: int = 0
    parts_built: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- building


def _part_key(files: list[tuple[Path, str | None]]) -> str:
    digest = hashlib.sha1(f"deeptao-cache-{FORMAT_VERSION}".encode())
    for path, label in files:
        st = path.stat()
        digest.update(f"{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _build_part(
    files: list[tuple[Path, str | None]], stem: Path, strict: bool
) -> tuple[int, int, list[tuple[str, str]]]:
    """Read one part's files, write its pixels and tables, then its marker (last).

    Runs in a worker process. Returns (files done, images, bad files); with
    ``strict``, the first bad file or the first fault inside a file is the one
    bad file returned, and nothing is written.
    """
    objects: list[tuple[Any, ...]] = []
    image_columns: dict[str, list[np.ndarray]] = {name: [] for name in _IMAGE_COLUMNS}
    bad: list[tuple[str, str]] = []
    warnings: list[tuple[str, int | None, int | None, str]] = []
    n_images = 0
    pixels_tmp = stem.with_suffix(".u16.tmp")
    with open(pixels_tmp, "wb") as out:
        for path, label in files:
            try:
                obj = read_object(path)
            except TaoFormatError as exc:
                if strict:
                    out.close()
                    pixels_tmp.unlink()
                    return len(files), 0, [(str(path), exc.fault)]
                bad.append((str(path), exc.fault))
                continue
            if obj.faults and strict:
                out.close()
                pixels_tmp.unlink()
                return len(files), 0, [(str(path), str(obj.faults[0]))]
            warnings.extend((str(path), f.hdu, f.row, f.reason) for f in obj.faults)
            out.write(obj.images.data)
            n = len(obj)
            cols = obj.columns
            objects.append(
                (
                    obj.object_id, label, obj.group, obj.crts_id, obj.parent_id, obj.variant, n,
                    int(obj.blank.sum()), int(cols["duplicate"].sum()), len(obj.faults), float(obj.mjd[0]),
                    float(obj.mjd[-1]), obj.ra, obj.dec, _as_float(obj.header.get("MAG")), str(path), n_images,
                )
            )  # fmt: skip
            image_columns["part_object"].append(np.full(n, len(objects) - 1, dtype=np.int64))
            for name in _IMAGE_COLUMNS[1:]:
                image_columns[name].append(cols[name])
            n_images += n
    # No fsync: a killed process loses nothing the kernel already holds, and the
    # marker written last is what proves the part whole. (A power cut is
    # covered by the part keys: a rerun rebuilds any part whose marker is gone.)
    # Tables are written with pyarrow alone: prepare never imports pandas, whose
    # import costs each worker about as much as reading a part's files.
    obj_table = pa.Table.from_arrays(
        [from_numpy([row[k] for row in objects], type) for k, type in enumerate(_PART_OBJECT_SCHEMA.types)],
        schema=_PART_OBJECT_SCHEMA,
    )
    img_table = pa.Table.from_arrays(
        [_column(image_columns[name], type) for name, type in zip(_IMAGE_COLUMNS, _PART_IMAGE_SCHEMA.types, strict=True)],
        schema=_PART_IMAGE_SCHEMA,
    )
    _write_parquet_atomic(obj_table, stem.with_suffix(".objects.parquet"))
    _write_parquet_atomic(img_table, stem.with_suffix(".images.parquet"))
    os.replace(pixels_tmp, stem.with_suffix(".u16"))
    marker = {"files": len(files), "n_objects": len(objects), "n_images": n_images, "bad_files": bad, "warnings": warnings}
    _write_text_atomic(stem.with_suffix(".json"), json.dumps(marker))
    return len(files), n_images, bad


_STR = LARGE_STRING
# A part's tables, then the cache's: the objects gain their part and first image
# row, the images their object's row in objects.parquet.
_PART_OBJECT_SCHEMA = pa.schema(
    [
        ("object_id", _STR), ("label", _STR), ("group", _STR), ("crts_id", _STR), ("parent_id", _STR),
        ("variant", _STR), ("n_images", pa.int64()), ("n_blank", pa.int64()), ("n_duplicate", pa.int64()),
        ("n_faults", pa.int64()), ("mjd_first", pa.float64()), ("mjd_last", pa.float64()), ("ra", pa.float64()), ("dec", pa.float64()),
        ("mag", pa.float64()), ("path", _STR), ("part_offset", pa.int64()),
    ]
)  # fmt: skip
_OBJECT_SCHEMA = _PART_OBJECT_SCHEMA.append(pa.field("part", pa.int64())).append(pa.field("image_start", pa.int64()))
_IMAGE_COLUMNS = ["part_object", "mjd", "hdu_ext", "blank", "duplicate", "date", "cutout"]
_IMAGE_TYPES = [pa.int64(), pa.float64(), pa.int64(), pa.bool_(), pa.bool_(), _STR, _STR]
_PART_IMAGE_SCHEMA = pa.schema(list(zip(_IMAGE_COLUMNS, _IMAGE_TYPES, strict=True)))
_IMAGE_SCHEMA = pa.schema([("object", pa.int64()), *zip(_IMAGE_COLUMNS[1:], _IMAGE_TYPES[1:], strict=True)])


def _column(chunks: list[np.ndarray], type: pa.DataType) -> pa.Array:
    """One table column from a part's per-file arrays (text columns hold the ``str`` of any value)."""
    return from_numpy(np.concatenate(chunks) if chunks else np.zeros(0), type)


def _read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """A part's table in ``schema`` (cast only when it differs: a cast imports pyarrow.compute)."""
    table = pq.ParquetFile(path).read()
    return table if table.schema.equals(schema) else table.cast(schema)


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([from_numpy(np.zeros(0), type) for type in schema.types], schema=schema)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class _NoBar:
    """The progress bar off a terminal: nothing drawn, and tqdm never imported (a tenth of a second)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _default_progress(total: int, desc: str) -> Any:
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="file", dynamic_ncols=True)


def prepare(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    strict: bool = False,
    progress: Callable[[int, str], Any] | None = None,
    files_per_part: int = FILES_PER_PART,
) -> PrepareResult:
    """Build (or complete) the cache of every release file under ``root``.

    Parameters
    ----------
    root : path
        Folder holding ``TAO_transients`` and/or ``TAO_non-transients`` (or one of them).
    out : path
        Cache folder; created if missing, completed if a previous run stopped.
    workers : int, default=number of CPUs
        Processes reading files in parallel.
    strict : bool, default=False
        Stop at the first bad file or faulty image instead of skipping it,
        including those an earlier lenient run skipped into parts now reused
        (the cache is then left as it was).
    progress : callable, optional
        ``progress(total, desc)`` returning a tqdm-like object; default: a bar on a terminal only.

    Raises
    ------
    PrepareError
        With ``strict`` at the first bad file, or when ``root`` has no ``.fits`` files.
    """
    start = time.perf_counter()
    root, out = Path(root), Path(out)
    files = iter_fits_files(root)
    if not files:
        raise PrepareError(f"{root}: no .fits files under TAO_transients/data/<CLASS> or TAO_non-transients/data/NON")
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    plan = []
    for index in range(0, len(files), files_per_part):
        chunk = files[index : index + files_per_part]
        stem = parts_dir / f"part-{index // files_per_part:05d}-{_part_key(chunk)}"
        plan.append((stem, chunk))
    todo = [(stem, chunk) for stem, chunk in plan if not _part_done(stem)]
    if strict:
        _refuse_faults_of_reused_parts(stem for stem, chunk in plan if (stem, chunk) not in todo)
    if todo and manifest.exists():
        manifest.unlink()  # the cache is about to change: it is not whole until rewritten

    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    with ExitStack() as stack:
        pending: set = set()
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=_mp_context()))
            # Submitting starts the workers, before the progress bar starts its monitor
            # thread: a parent with no threads can fork them in milliseconds.
            pending = {pool.submit(_build_part, chunk, stem, strict) for stem, chunk in todo}
        bar = stack.enter_context(closing((progress or _default_progress)(len(files), "prepare")))
        bar.update(sum(len(chunk) for stem, chunk in plan if (stem, chunk) not in todo))
        if workers == 1:
            for stem, chunk in todo:
                _collect(_build_part(chunk, stem, strict), strict, bar)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    _collect(fut.result(), strict, bar)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise

    result = _finalise(out, plan)
    result.parts_reused = len(plan) - len(todo)
    result.parts_built = len(todo)
    result.seconds = time.perf_counter() - start
    return result


def _mp_context() -> Any:
    """Fork when it is safe (no threads yet, no torch): workers start in milliseconds.

    Otherwise forkserver, which never copies a threaded parent.
    """
    if threading.active_count() == 1 and "torch" not in sys.modules and sys.platform == "linux":
        return get_context("fork")
    return get_context("forkserver")


def _refuse_faults_of_reused_parts(stems: Iterable[Path]) -> None:
    """With ``strict``, a part built before without it may hold a skipped file or a dropped image: stop at the first."""
    for stem in stems:
        marker = json.loads(stem.with_suffix(".json").read_text())
        if marker["bad_files"]:
            path, fault = marker["bad_files"][0]
            raise PrepareError(f"{path}: {fault}")
        if marker["warnings"]:
            path, hdu, row, reason = marker["warnings"][0]
            raise PrepareError(f"{path}: {ReadFault(hdu, row, reason)}")


def _part_done(stem: Path) -> bool:
    return stem.with_suffix(".json").exists() and stem.with_suffix(".u16").exists()


def _collect(result: tuple[int, int, list[tuple[str, str]]], strict: bool, bar: Any) -> None:
    n_files, _, bad = result
    if strict and bad:
        path, fault = bad[0]
        raise PrepareError(f"{path}: {fault}")
    bar.update(n_files)


def _finalise(out: Path, plan: list[tuple[Path, list[tuple[Path, str | None]]]]) -> PrepareResult:
    """Join the parts' tables into the cache's tables and write the manifest last.

    The per-image table is streamed part by part into one parquet file, so
    memory stays flat however many images the release holds.
    """
    keep = {stem.name for stem, _ in plan}
    for stale in (out / "parts").iterdir():
        if stale.name.split(".")[0] not in keep:
            stale.unlink()
    objects, bad, warnings, parts = [], [], [], []
    image_start = n_objects = 0
    images_tmp = out / "images.parquet.tmp"
    with pq.ParquetWriter(images_tmp, _IMAGE_SCHEMA) as writer:
        for part_index, (stem, _) in enumerate(plan):
            marker = json.loads(stem.with_suffix(".json").read_text())
            obj = _read_table(stem.with_suffix(".objects.parquet"), _PART_OBJECT_SCHEMA)
            offsets = to_numpy(obj.column("part_offset"))
            obj = obj.append_column("part", from_numpy(np.full(len(obj), part_index), pa.int64()))
            obj = obj.append_column("image_start", from_numpy(image_start + offsets, pa.int64()))
            if marker["n_images"]:
                img = _read_table(stem.with_suffix(".images.parquet"), _PART_IMAGE_SCHEMA)
                owner = to_numpy(img.column("part_object")) + n_objects
                img = img.drop_columns(["part_object"]).add_column(0, "object", from_numpy(owner, pa.int64()))
                writer.write_table(img)
            objects.append(obj)
            n_objects += len(obj)
            image_start += marker["n_images"]
            bad.extend(tuple(b) for b in marker["bad_files"])
            warnings.extend(tuple(w) for w in marker["warnings"])
            parts.append({"file": stem.with_suffix(".u16").name, "n_images": marker["n_images"]})
    obj_table = _unique_ids(pa.concat_tables(objects) if objects else _empty(_OBJECT_SCHEMA))
    parent_missing = _parent_missing(obj_table)
    obj_table = obj_table.append_column("parent_missing", from_numpy(parent_missing, pa.bool_()))
    n_images_total = int(to_numpy(obj_table.column("n_images")).sum())
    _write_parquet_atomic(obj_table, out / "objects.parquet")
    os.replace(images_tmp, out / "images.parquet")
    with open(out / "bad_files.csv.tmp", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        writer.writerows(bad)
    os.replace(out / "bad_files.csv.tmp", out / "bad_files.csv")
    with open(out / "warnings.csv.tmp", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "hdu", "row", "reason"])
        writer.writerows(warnings)
    os.replace(out / "warnings.csv.tmp", out / "warnings.csv")
    n_orphans = int(parent_missing.sum())
    manifest = {
        "format_version": FORMAT_VERSION,
        "deeptao_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_objects": len(obj_table),
        "n_images": n_images_total,
        "n_bad_files": len(bad),
        "n_warnings": len(warnings),
        "n_files_with_warnings": len({w[0] for w in warnings}),
        "n_non_without_parent": n_orphans,
        "image_shape": list(IMAGE_SHAPE),
        "dtype": "uint16",
        "parts": parts,
    }
    _write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    return PrepareResult(out, len(obj_table), n_images_total, bad, warnings, n_orphans)


def _parent_missing(objects: pa.Table) -> np.ndarray:
    """True for each NON object whose parent CRTS_ID names no transient in ``objects``.

    Such an object keeps its parent's ID as its group, so NON objects cut
    beside one absent transient (the same field, the same exposures) still
    share a split, and none joins another transient's group.
    """
    variant = objects.column("variant").to_pylist()
    crts = objects.column("crts_id").to_pylist()
    parents = objects.column("parent_id").to_pylist()
    non = np.array([v == "non-transient" for v in variant], dtype=bool)
    transients = {c for c, is_non in zip(crts, non, strict=True) if not is_non and c is not None}
    return non & ~np.array([p in transients for p in parents], dtype=bool)


def _unique_ids(objects: pa.Table) -> pa.Table:
    """The same file name in two class folders: keep both, the later told apart by its label."""
    ids = objects.column("object_id").to_pylist()
    if len(set(ids)) == len(ids):
        return objects
    labels = objects.column("label").to_pylist()
    seen: set[str] = set()
    unique = []
    for object_id, label in zip(ids, labels, strict=True):
        unique.append(object_id if object_id not in seen else f"{object_id}@{label}")
        seen.add(object_id)
    return objects.set_column(0, "object_id", from_numpy(unique, _STR))


# --------------------------------------------------------------------------- reading


def _close_descriptors(files: dict[int, int]) -> None:
    """Close and forget the file descriptors in ``files`` (part -> descriptor)."""
    while files:
        _, fd = files.popitem()
        try:
            os.close(fd)
        except OSError:  # already closed, e.g. by a forked parent's finalizer
            pass


class PreparedCache:
    """A prepared cache opened for reading; pixels are read from disk on demand.

    Pixels are read with positioned reads (``os.pread``) into fresh arrays, not
    memory-mapped: a mapped page counts towards the process's resident memory
    for as long as the map lives, so a training run that visits a release-size
    cache (about 10 GB of pixels) would show most of it as its own RSS. Reads
    still go through the page cache, so a second epoch reads from memory when
    the machine has it to spare, and the kernel can give it back when it does
    not. Runs of neighbouring images are read in one call.

    Safe to pickle into DataLoader workers: the files are reopened lazily in
    each process. They are closed when the cache is garbage-collected, or by
    :meth:`close` (also on leaving a ``with`` block).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.exists():
            raise CacheError(f"{self.root}: not a complete deeptao cache (no manifest.json); run 'deeptao prepare' again")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise CacheError(
                f"{self.root}: cache format {self.manifest.get('format_version')} (deeptao "
                f"{self.manifest.get('deeptao_version', '?')}) is not format {FORMAT_VERSION}; run 'deeptao prepare' again"
            )
        import pandas as pd  # not at the top: prepare runs without pandas

        self.objects: pd.DataFrame = pd.read_parquet(self.root / "objects.parquet")
        self.images: pd.DataFrame = pd.read_parquet(self.root / "images.parquet")
        self._open_files_lazily()
        self._object_part = self.objects["part"].to_numpy(dtype=np.int64)
        self._object_offset = self.objects["part_offset"].to_numpy(dtype=np.int64)
        self._object_count = self.objects["n_images"].to_numpy(dtype=np.int64)
        self._image_object = self.images["object"].to_numpy(dtype=np.int64)
        self._image_start = self.objects["image_start"].to_numpy(dtype=np.int64)
        self._image_mjd = self.images["mjd"].to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.objects)

    def __repr__(self) -> str:
        return f"PreparedCache({str(self.root)!r}, objects={len(self)}, images={len(self.images)})"

    @property
    def content_id(self) -> str:
        """A digest of what the cache holds, the same wherever it lies.

        Each part is named by a digest of the files it was built from (path,
        size, modification time, label) and of the cache format, so the list
        of parts identifies the content: a cache prepared again from changed
        files gets another id, a copied or moved one keeps it. Trainings and
        run stages record it so that they never resume on other data.
        """
        parts = json.dumps([self.manifest["format_version"], self.manifest["parts"]], sort_keys=True)
        return hashlib.sha1(parts.encode()).hexdigest()[:16]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_files"], state["_closer"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open_files_lazily()

    def _open_files_lazily(self) -> None:
        """Start with no pixel file open (each opens on its first read) and close them when the cache goes."""
        self._files: dict[int, int] = {}  # part -> file descriptor
        self._closer = weakref.finalize(self, _close_descriptors, self._files)

    def close(self) -> None:
        """Close the pixel files; a later read opens them again."""
        _close_descriptors(self._files)

    def __enter__(self) -> PreparedCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _descriptor(self, part: int) -> int:
        fd = self._files.get(part)
        if fd is None:
            try:
                opened = os.open(self._part_path(part), os.O_RDONLY)
            except OSError as err:
                raise CacheError(f"{self._part_path(part)}: cannot be read ({err.strerror}); run 'deeptao prepare' again") from None
            fd = self._files.setdefault(part, opened)  # two threads may race here: keep one descriptor
            if fd != opened:
                os.close(opened)
        return fd

    def _part_path(self, part: int) -> Path:
        return self.root / "parts" / self.manifest["parts"][part]["file"]

    def _read_into(self, part: int, first: int, out: np.ndarray) -> None:
        """Fill ``out`` (C-contiguous, whole images) with the images of ``part`` from row ``first`` on."""
        want = out.nbytes
        if want == 0:
            return
        offset = first * _PIXEL_BYTES
        data = os.pread(self._descriptor(part), want, offset)
        while len(data) < want:  # a regular file gives everything at once; a short read is retried, an empty one is truncation
            more = os.pread(self._descriptor(part), want - len(data), offset + len(data))
            if not more:
                raise CacheError(f"{self._part_path(part)}: ends after {(offset + len(data)) // _PIXEL_BYTES} images; run 'deeptao prepare' again")
            data += more
        out.reshape(-1)[:] = np.frombuffer(data, dtype=np.uint16)

    def object_images(self, i: int) -> np.ndarray:
        """Images of object ``i`` in MJD order, as a fresh ``(n, 64, 64)`` uint16 array (one read)."""
        out = np.empty((int(self._object_count[i]), *IMAGE_SHAPE), dtype=np.uint16)
        self._read_into(int(self._object_part[i]), int(self._object_offset[i]), out)
        return out

    def image(self, j: int) -> np.ndarray:
        """Image ``j`` (a row of :attr:`images`)."""
        return self.image_stack(np.asarray([j]))[0]

    def image_stack(self, rows: np.ndarray) -> np.ndarray:
        """Images at ``rows`` of :attr:`images`, as one ``(len(rows), 64, 64)`` uint16 array.

        Rows are sorted by their place on disk and each run of neighbours is
        read in one call, so an object's images cost one read however they
        are asked for.
        """
        rows = np.asarray(rows, dtype=np.int64)
        owner = self._image_object[rows]
        part = self._object_part[owner]
        local = self._object_offset[owner] + rows - self._image_start[owner]
        order = np.lexsort((local, part))
        part, local = part[order], local[order]
        sorted_images = np.empty((len(rows), *IMAGE_SHAPE), dtype=np.uint16)
        breaks = np.flatnonzero((np.diff(part) != 0) | (np.diff(local) != 1)) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            if hi > lo:
                self._read_into(int(part[lo]), int(local[lo]), sorted_images[lo:hi])
        out = np.empty_like(sorted_images)
        out[order] = sorted_images
        return out

    def labels_array(self) -> np.ndarray:
        return self.objects["label"].to_numpy(dtype=object)

    def object_mjd(self, i: int) -> np.ndarray:
        start = self._image_start[i]
        return self._image_mjd[start : start + self._object_count[i]]

    def night_counts(self, rows: np.ndarray) -> np.ndarray:
        """Nights of each object at ``rows`` (:func:`deeptao.io.count_nights`: the reader's flags, the one night rule).

        What the objects' predictions saw, so what their calibration depends on.
        """
        rows = np.asarray(rows, dtype=np.int64)
        blank = self.images["blank"].to_numpy(dtype=bool)
        duplicate = self.images["duplicate"].to_numpy(dtype=bool)
        out = np.empty(len(rows), dtype=np.int64)
        for k, i in enumerate(rows):
            part = slice(self._image_start[i], self._image_start[i] + self._object_count[i])
            out[k] = count_nights(self._image_mjd[part], blank[part], duplicate[part])
        return out


def open_cache(path: str | os.PathLike[str]) -> PreparedCache:
    """Open a prepared cache; raises :class:`CacheError` if it is not whole."""
    return PreparedCache(path)
