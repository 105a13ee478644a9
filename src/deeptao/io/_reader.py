"""One Deep-TAO file in, one object out: images in time order with their metadata.

The release has two variants (DATASET.md): transient files with numeric
``HDU_Ext``/``MJD`` and a ``Date`` column, and non-transient files that store
``HDU_Ext``/``MJD`` as strings and call the date column ``DATE``. Both come
out of :func:`read_object` in the same shape, so nothing downstream needs to
know which it read. Columns are found by name in any case and order, scaled
by their TZERO/TSCAL/TNULL cards, and may hold numbers or padded strings.

A fault that concerns one image or one row costs that image or row only
(listed in :attr:`TaoObject.faults`); only a file that yields no usable image
is refused, with :class:`TaoFormatError`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from deeptao import CLASSES
from deeptao.io._exposures import blank_images, duplicate_exposures
from deeptao.io._fits import FitsStructureError, image_fault, read_bintable, read_image_stack, scan_hdus

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TaoObject", "ReadFault", "TaoFormatError", "read_object", "iter_fits_files", "IMAGE_SHAPE"]

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
_ALIASES = {alias for aliases in _COLUMNS.values() for alias in aliases}


class TaoFormatError(ValueError):
    """A file that cannot be read as a Deep-TAO object; ``str()`` is ``"PATH: fault"`` on one line."""

    def __init__(self, path: str | os.PathLike[str], fault: str) -> None:
        self.path = Path(path)
        self.fault = " ".join(str(fault).split())
        super().__init__(f"{self.path}: {self.fault}")


class ReadFault(NamedTuple):
    """One image or row the reader left out of an object, or a card it found wrong; the object is still read.

    ``hdu`` is the extension number (as ``HDU_Ext`` counts them), ``row`` the
    table row (0-based, as astropy and fitsio index it); either is None where
    it does not apply, both for a fault of the file as a whole (an
    ``N_IMAGES`` that disagrees with the file).
    """

    hdu: int | None
    row: int | None
    reason: str

    @property
    def drops(self) -> bool:
        """True when an image or row was left out (every fault but a file-level cross-check)."""
        return self.hdu is not None or self.row is not None

    def __str__(self) -> str:
        where = ", ".join(f"{name} {value}" for name, value in (("HDU", self.hdu), ("row", self.row)) if value is not None)
        return f"{where}: {self.reason}" if where else self.reason


@dataclass(eq=False)
class TaoObject:
    """An object's image sequence in MJD order, with its per-image table and metadata.

    ``images[k]`` was taken at ``mjd[k]`` and is described by ``table.iloc[k]``.
    ``blank[k]`` marks constant images, kept so that nothing is silently lost.

    Identity: ``object_id`` is the file name without ``.fits`` (unique in the
    release). ``crts_id`` is the transient's own CRTS ID (its ``CRTS_ID`` card,
    else its file name) and None for a non-transient, which has none;
    ``parent_id`` is the ``CRTS_ID`` card of a non-transient, naming the
    transient it was cut out beside, and None for a transient. ``group`` is
    what splits keep together: ``crts_id``, or ``parent_id`` (the object's own
    ``object_id`` when the card is missing).

    ``faults`` lists the images and rows left out, and cards found wrong
    (:class:`ReadFault`), in table order.
    """

    path: Path
    object_id: str
    crts_id: str | None
    parent_id: str | None
    label: str | None
    group: str
    variant: str
    mjd: np.ndarray
    images: np.ndarray
    blank: np.ndarray
    columns: dict[str, np.ndarray] = field(repr=False)
    header: dict[str, Any] = field(repr=False)
    faults: tuple[ReadFault, ...] = ()

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


def _normalise_columns(path: Path, raw: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """The columns the reader uses, found by name whatever their case and order; others are ignored."""
    lower: dict[str, str] = {}
    for name in raw:
        if name.lower() in lower and name.lower() in _ALIASES:
            raise TaoFormatError(path, f"table has two {name.upper()} columns ({lower[name.lower()]!r} and {name!r})")
        lower[name.lower()] = name
    out: dict[str, np.ndarray] = {}
    for norm, aliases in _COLUMNS.items():
        for alias in aliases:
            if alias in lower:
                values = raw[lower[alias]]
                if values is None:
                    raise TaoFormatError(path, f"table column {lower[alias]!r} has a format the reader does not decode")
                out[norm] = values
                break
    for required in ("hdu_ext", "mjd"):
        if required not in out:
            raise TaoFormatError(path, f"table has no {required.upper()} column (columns: {', '.join(raw)})")
        if out[required].ndim != 1:
            raise TaoFormatError(path, f"table column {required.upper()} holds {out[required].shape[1]} values a row, not one")
    return out


def _numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values of a column of numbers or of the strings the non-transient files hold, and a mask of the good ones.

    Strings are read one by one only when the whole column does not parse at
    once, so a bad cell costs its row, not the file.
    """
    if values.dtype.kind in "iuf":
        out = values.astype(np.float64)
        return out, np.isfinite(out)
    try:
        out = values.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        out = np.array([_to_float(v) for v in values], dtype=np.float64)
    return out, np.isfinite(out)


def _shown(value: Any) -> str:
    """A cell as a message shows it: strings quoted, numbers plain."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return repr(value) if isinstance(value, str) else str(value)


def _to_float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_object(path: str | os.PathLike[str]) -> TaoObject:
    """Read one Deep-TAO FITS file.

    Images are matched to table rows by ``HDU_Ext`` and sorted by MJD (rows are
    stored in alphabetical date order). The label comes from the folder, never
    from the free-text ``CLASS`` card.

    A fault of one image or row (an image not 64x64 or not readable, pixels
    that are not finite or outside 0..65535, a row whose ``HDU_Ext`` or MJD is
    not a number, points past the file's HDUs or repeats another row's) drops
    that image or row and is listed in :attr:`TaoObject.faults`, as are image
    HDUs that no row names and an ``N_IMAGES`` card that disagrees with the
    file (a cross-check only): the object keeps its other images.

    Raises
    ------
    TaoFormatError
        For a file that yields no object: unreadable, empty, not FITS,
        truncated inside an HDU, no table (or one without ``HDU_Ext``/``MJD``
        columns or rows), or no usable image left. The message names the file
        and the fault on one line.
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
    except TaoFormatError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # a header value of the wrong kind or size
        raise TaoFormatError(path, f"malformed header or table: {exc}") from None


def _decode(path: Path, buf: bytes) -> TaoObject:
    hdus = scan_hdus(buf)
    if len(hdus) < 2 or hdus[1].xtension != "BINTABLE":
        raise TaoFormatError(path, "no binary table in HDU 1")
    table_hdu = hdus[1]
    header = {k: v for k, v in table_hdu.cards.items() if not _STRUCTURAL.match(k)}
    cols = _normalise_columns(path, read_bintable(buf, table_hdu))
    n_rows = len(cols["mjd"])
    if n_rows == 0:
        raise TaoFormatError(path, "table has no rows")
    rows, hdu_ext, mjd, faults = _usable_rows(hdus, header, cols)

    order = np.lexsort((hdu_ext, mjd))
    rows, hdu_ext, mjd = rows[order], hdu_ext[order], mjd[order]
    images = read_image_stack(buf, hdus, hdu_ext)
    if images.dtype != np.uint16:
        flat = images.reshape(len(images), -1)
        finite = np.isfinite(flat).all(axis=1)
        in_range = finite & (np.nanmin(flat, axis=1, initial=np.inf) >= 0) & (np.nanmax(flat, axis=1, initial=-np.inf) <= 65535)
        for k in np.flatnonzero(~in_range):
            reason = "image has non-finite or undefined pixels" if not finite[k] else "image has pixel values outside 0..65535"
            faults.append(ReadFault(int(hdu_ext[k]), int(rows[k]), reason))
        rows, hdu_ext, mjd = rows[in_range], hdu_ext[in_range], mjd[in_range]
        images = np.rint(images[in_range]).astype(np.uint16)
    if len(rows) == 0:
        dropped = [f for f in faults if f.hdu is not None or f.row is not None]
        more = f"; and {len(dropped) - 1} more" if len(dropped) > 1 else ""
        raise TaoFormatError(path, f"no usable image: {dropped[0]}{more}")
    faults.sort(key=lambda f: (f.row is not None or f.hdu is not None, f.row if f.row is not None else -1, f.hdu or 0))

    blank = blank_images(images)
    duplicate = duplicate_exposures(mjd, blank)
    columns: dict[str, Any] = {"hdu_ext": hdu_ext, "mjd": mjd}
    for name in ("date", "field_id", "cutout", "set_number", "obs_in_seq"):
        values = cols.get(name)
        columns[name] = values[rows].astype(object) if values is not None else np.full(len(rows), "", dtype=object)
    columns["blank"] = blank
    columns["duplicate"] = duplicate

    object_id = path.name[: -len(".fits")] if path.name.endswith(".fits") else path.stem
    label = label_from_path(path)
    if label is not None:
        non_variant = label == "NON"
    else:  # a loose file: the layout tells the variant
        non_variant = (
            "DATE" in hdus[1].cards.values() or cols["hdu_ext"].dtype == object or object_id.startswith("non")
        )
    header_id = str(header.get("CRTS_ID", "")).strip() or None
    if non_variant:
        crts_id, parent_id, group = None, header_id, header_id or object_id
    else:
        crts_id = header_id or object_id
        parent_id, group = None, crts_id
    return TaoObject(
        path=path,
        object_id=object_id,
        crts_id=crts_id,
        parent_id=parent_id,
        label=label,
        group=group,
        variant="non-transient" if non_variant else "transient",
        mjd=mjd,
        images=images,
        blank=blank,
        columns=columns,
        header=header,
        faults=tuple(faults),
    )


def _usable_rows(
    hdus: list[Any], header: dict[str, Any], cols: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[ReadFault]]:
    """Table rows that point at a readable 64x64 image, with their HDU and MJD, and a fault for every other row and HDU.

    Returns ``(rows, hdu_ext, mjd, faults)``, rows in table order.
    """
    faults: list[ReadFault] = []
    last = len(hdus) - 1
    ext_value, ext_ok = _numbers(cols["hdu_ext"])
    ext_ok &= (ext_value == np.round(ext_value)) & (np.abs(ext_value) < 2**31)
    mjd, mjd_ok = _numbers(cols["mjd"])
    hdu_ext = np.where(ext_ok, ext_value, -1).astype(np.int64)
    in_file = ext_ok & (hdu_ext >= 2) & (hdu_ext <= last)
    good = in_file & mjd_ok
    rows = np.flatnonzero(good)
    named = np.zeros(len(hdus), dtype=bool)
    named[hdu_ext[rows]] = True
    repeated = np.zeros(len(good), dtype=bool)
    if np.count_nonzero(named) < len(rows):
        # A second row naming an HDU already taken keeps nothing: the first row (table order) owns it.
        _, first = np.unique(hdu_ext[rows], return_index=True)
        owner = rows[np.sort(first)]
        repeated[rows] = True
        repeated[owner] = False
        rows = owner
    for k in np.flatnonzero(~good | repeated):
        ext = int(hdu_ext[k]) if ext_ok[k] else None
        if not ext_ok[k]:
            raw = cols["hdu_ext"][k]
            undefined = isinstance(raw, float) and np.isnan(raw)  # TNULL, scaled to NaN by read_bintable
            reason = "HDU_Ext is undefined (TNULL)" if undefined else f"HDU_Ext {_shown(raw)} is not an extension number"
        elif not in_file[k]:
            reason = f"no such HDU (the file's image HDUs are 2..{last})"
        elif not mjd_ok[k]:
            reason = f"MJD {_shown(cols['mjd'][k])} is not a number"
            named[ext] = True
        else:
            reason = f"HDU_Ext {ext} repeats row {int(rows[hdu_ext[rows] == ext][0])}"
        faults.append(ReadFault(ext, int(k), reason))
    # Why each HDU is no usable image (None if it is), judged once per distinct
    # header: scan_hdus gives repeated headers one shared cards dict.
    verdict: dict[int, str | None] = {}
    for hdu in hdus[2:]:
        if id(hdu.cards) not in verdict:
            verdict[id(hdu.cards)] = _image_verdict(hdu)
    keep = np.ones(len(rows), dtype=bool)
    if any(reason is not None for reason in verdict.values()):
        for j, ext in enumerate(hdu_ext[rows].tolist()):
            reason = verdict[id(hdus[ext].cards)]
            if reason is not None:
                keep[j] = False
                faults.append(ReadFault(ext, int(rows[j]), reason))
    if not named[2:].all():
        for ext in np.flatnonzero(~named[2:]) + 2:
            faults.append(ReadFault(int(ext), None, "image HDU that no table row names"))
    n_declared = header.get("N_IMAGES")
    if n_declared is not None:
        declared = _to_float(n_declared)
        if declared != len(hdus) - 2:
            faults.append(ReadFault(None, None, f"N_IMAGES is {n_declared!r} but the file has {len(hdus) - 2} image HDUs"))
    rows = rows[keep]
    return rows, hdu_ext[rows], mjd[rows], faults


def _image_verdict(hdu: Any) -> str | None:
    reason = image_fault(hdu)
    if reason is None and (hdu.cards["NAXIS2"], hdu.cards["NAXIS1"]) != IMAGE_SHAPE:
        reason = f"image is {hdu.cards['NAXIS2']}x{hdu.cards['NAXIS1']}, not {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}"
    return reason


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
