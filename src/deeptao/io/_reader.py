"""One Deep-TAO file in, one object out: images in time order with their metadata.

The release has two variants (DATASET.md): transient files with numeric
``HDU_Ext``/``MJD`` and a ``Date`` column, and non-transient files that store
``HDU_Ext``/``MJD`` as strings and call the date column ``DATE``. Both come
out of :func:`read_object` in the same shape, so nothing downstream needs to
know which it read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeptao import CLASSES
from deeptao.io._exposures import blank_images, duplicate_exposures
from deeptao.io._fits import FitsStructureError, read_bintable, read_image_stack, scan_hdus

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TaoObject", "TaoFormatError", "read_object", "iter_fits_files", "IMAGE_SHAPE"]

IMAGE_SHAPE = (64, 64)

# Cards of the table header that describe its structure, not the object.
_STRUCTURAL = re.compile(r"^(XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|T(TYPE|FORM|UNIT|DIM|NULL|SCAL|ZERO|DISP)\d+|EXTNAME)$")

# Normalised column name -> names seen in the release's two variants (matched case-insensitively).
_COLUMNS = {
    "hdu_ext": ("hdu_ext",),
    "mjd": ("mjd",),
    "date": ("date",),
    "field_id": ("field_id",),
    "cutout": ("cutout",),
    "set_number": ("set_number",),
    "obs_in_seq": ("obs_in_seq",),
}


class TaoFormatError(ValueError):
    """A file that cannot be read as a Deep-TAO object; ``str()`` is ``"PATH: fault"`` on one line."""

    def __init__(self, path: str | os.PathLike[str], fault: str) -> None:
        self.path = Path(path)
        self.fault = " ".join(str(fault).split())
        super().__init__(f"{self.path}: {self.fault}")


@dataclass(eq=False)
class TaoObject:
    """An object's image sequence in MJD order, with its per-image table and metadata.

    ``images[k]`` was taken at ``mjd[k]`` and is described by ``table.iloc[k]``.
    ``blank[k]`` marks constant images, kept so that nothing is silently lost.
    """

    path: Path
    object_id: str
    crts_id: str
    label: str | None
    group: str
    variant: str
    mjd: np.ndarray
    images: np.ndarray
    blank: np.ndarray
    columns: dict[str, np.ndarray] = field(repr=False)
    header: dict[str, Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.mjd)

    @property
    def table(self) -> pd.DataFrame:
        """Per-image rows in MJD order: hdu_ext, mjd, date, field_id, cutout, set_number, obs_in_seq, blank, duplicate.

        Built on demand from :attr:`columns` (plain arrays), since a DataFrame
        per file costs more than reading the file's pixels; pandas is imported
        here, not by the reader, which ``deeptao prepare`` runs without it.
        """
        import pandas as pd

        return pd.DataFrame(self.columns)

    @property
    def is_transient(self) -> bool:
        return self.variant == "transient"

    @property
    def ra(self) -> float:
        return parse_angle(self.header.get("RA_(J2000)"), hours=True)

    @property
    def dec(self) -> float:
        return parse_angle(self.header.get("DEC_(J2000)"), hours=False)


def parse_angle(value: Any, *, hours: bool) -> float:
    """Degrees from a sexagesimal string (``10:00:29.5``) or a number in degrees; NaN if neither."""
    if value is None:
        return float("nan")
    text = str(value).strip()
    try:
        if ":" in text:
            sign = -1.0 if text.startswith("-") else 1.0
            parts = [abs(float(p)) for p in text.lstrip("+-").split(":")]
            parts += [0.0] * (3 - len(parts))
            degrees = sign * (parts[0] + parts[1] / 60 + parts[2] / 3600)
            return degrees * 15.0 if hours else degrees
        return float(text)
    except ValueError:
        return float("nan")


def label_from_path(path: Path) -> str | None:
    """The class is the folder a file sits in; anything else is unlabelled."""
    parent = path.parent.name
    return parent if parent in CLASSES else None


def _normalise_columns(path: Path, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    lower = {name.lower(): name for name in raw}
    out: dict[str, np.ndarray] = {}
    for norm, aliases in _COLUMNS.items():
        for alias in aliases:
            if alias in lower:
                out[norm] = raw[lower[alias]]
                break
    for required in ("hdu_ext", "mjd"):
        if required not in out:
            raise TaoFormatError(path, f"table has no {required.upper()} column (columns: {', '.join(raw)})")
    return out


def _as_number(path: Path, values: np.ndarray, name: str, kind: type) -> np.ndarray:
    """Numeric column from numbers or from the strings the non-transient files hold."""
    if values.dtype != object:
        return values.astype(kind)
    try:
        return np.array([kind(float(v)) if kind is int else float(v) for v in values], dtype=kind)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise TaoFormatError(path, f"{name} value {bad!r} is not a number") from None


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def read_object(path: str | os.PathLike[str]) -> TaoObject:
    """Read one Deep-TAO FITS file.

    Images are matched to table rows by ``HDU_Ext`` and sorted by MJD (rows are
    stored in alphabetical date order). The label comes from the folder, never
    from the free-text ``CLASS`` card.

    Raises
    ------
    TaoFormatError
        For any malformed file: empty, truncated, not FITS, no table, image not
        64x64, fewer images than rows or than ``N_IMAGES``, non-finite pixels,
        unreadable. The message names the file and the fault on one line.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise TaoFormatError(path, f"unreadable: {exc.strerror or exc}") from None
    try:
        return _decode(path, buf)
    except FitsStructureError as exc:
        raise TaoFormatError(path, str(exc)) from None


def _decode(path: Path, buf: bytes) -> TaoObject:
    hdus = scan_hdus(buf)
    if len(hdus) < 2 or hdus[1].xtension != "BINTABLE":
        raise TaoFormatError(path, "no binary table in HDU 1")
    table_hdu = hdus[1]
    header = {k: v for k, v in table_hdu.cards.items() if not _STRUCTURAL.match(k)}
    cols = _normalise_columns(path, read_bintable(buf, table_hdu))
    n_rows = len(cols["mjd"])
    n_hdu_images = len(hdus) - 2

    hdu_ext = _as_number(path, cols["hdu_ext"], "HDU_Ext", int)
    mjd = _as_number(path, cols["mjd"], "MJD", float)
    n_declared = header.get("N_IMAGES")
    n_declared = int(float(n_declared)) if _is_number(n_declared) else None
    if n_hdu_images < n_rows:
        raise TaoFormatError(path, f"fewer images ({n_hdu_images}) than table rows ({n_rows})")
    if n_declared is not None and n_hdu_images < n_declared:
        raise TaoFormatError(path, f"fewer images ({n_hdu_images}) than N_IMAGES ({n_declared})")
    if n_rows == 0:
        raise TaoFormatError(path, "table has no rows")
    if not np.isfinite(mjd).all():
        raise TaoFormatError(path, "table has a non-finite MJD")
    if hdu_ext.min() < 2 or hdu_ext.max() >= len(hdus):
        raise TaoFormatError(path, f"HDU_Ext outside the file's image HDUs 2..{len(hdus) - 1}")
    ext_sorted = np.sort(hdu_ext)  # not np.unique, whose first call imports numpy.ma in every worker
    if (ext_sorted[1:] == ext_sorted[:-1]).any():
        raise TaoFormatError(path, "two table rows point at the same HDU_Ext")

    order = np.lexsort((hdu_ext, mjd))
    images = read_image_stack(buf, hdus, hdu_ext[order])
    if images.shape[1:] != IMAGE_SHAPE:
        raise TaoFormatError(path, f"image is {images.shape[1]}x{images.shape[2]}, not 64x64")
    if images.dtype != np.uint16:
        if not np.isfinite(images).all():
            raise TaoFormatError(path, "image has non-finite pixels")
        if images.min() < 0 or images.max() > 65535:
            raise TaoFormatError(path, "image has pixel values outside 0..65535")
        images = np.rint(images).astype(np.uint16)

    blank = blank_images(images)
    mjd_sorted = mjd[order]
    duplicate = duplicate_exposures(mjd_sorted)

    columns: dict[str, Any] = {"hdu_ext": hdu_ext[order], "mjd": mjd_sorted}
    for name in ("date", "field_id", "cutout", "set_number", "obs_in_seq"):
        values = cols.get(name)
        columns[name] = values[order] if values is not None else np.full(n_rows, "", dtype=object)
    columns["blank"] = blank
    columns["duplicate"] = duplicate

    object_id = path.name[: -len(".fits")] if path.name.endswith(".fits") else path.stem
    label = label_from_path(path)
    non_variant = (
        label == "NON"
        or "DATE" in table_hdu.cards.values()
        or cols["hdu_ext"].dtype == object
        or object_id.startswith("non")
    )
    header_id = str(header.get("CRTS_ID", "")).strip()
    if non_variant:
        crts_id, group = object_id, header_id or object_id
    else:
        crts_id = header_id or object_id
        group = crts_id
    return TaoObject(
        path=path,
        object_id=object_id,
        crts_id=crts_id,
        label=label,
        group=group,
        variant="non-transient" if non_variant else "transient",
        mjd=mjd_sorted,
        images=images,
        blank=blank,
        columns=columns,
        header=header,
    )


def iter_fits_files(root: str | os.PathLike[str]) -> list[tuple[Path, str | None]]:
    """Every ``.fits`` file of a release tree with its label, in a stable order.

    ``root`` may hold ``TAO_transients`` and/or ``TAO_non-transients``, be one
    of those repositories, or be a folder of class folders. Other files are
    ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    candidates = [root / "TAO_transients" / "data", root / "TAO_non-transients" / "data", root / "data", root]
    class_dirs: list[Path] = []
    for base in candidates:
        for label in CLASSES:
            d = base / label
            if d.is_dir() and d not in class_dirs:
                class_dirs.append(d)
    files: list[tuple[Path, str | None]] = []
    for d in sorted(class_dirs, key=lambda p: (CLASSES.index(p.name), str(p))):
        with os.scandir(d) as it:
            names = sorted(e.name for e in it if e.name.endswith(".fits") and e.is_file())
        files.extend((d / name, d.name) for name in names)
    return files
