"""A lean reader for the FITS structures the Deep-TAO release uses.

Why by hand: a release file holds one table and some 77 small images, each its
own HDU. General readers pay a fixed cost per HDU (about 40 µs with fitsio),
which dominates reading 1.25 M images. Here the file is read in one call,
headers are located with ``bytes.find`` and parsed only for the cards that
define the data, and every image is pulled out in one vectorised copy. The
benchmark in ``benchmarks/bench_prepare.py`` measures the gain; the tests
check every result against astropy and fitsio.

Only what the release needs is supported (primary, BINTABLE with fixed-width
columns, IMAGE); anything else is refused with a clear message rather than
misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitsStructureError", "HDU", "parse_header", "scan_hdus", "read_bintable", "image_fault", "read_image_stack"]

BLOCK = 2880
CARD = 80
_END_CARD = b"END" + b" " * 77

# FITS binary-table formats with a fixed width: code -> (numpy type, bytes per element)
_TFORM = {
    "L": ("S1", 1),
    "B": ("u1", 1),
    "I": (">i2", 2),
    "J": (">i4", 4),
    "K": (">i8", 8),
    "E": (">f4", 4),
    "D": (">f8", 8),
    "A": ("S", 1),
}
# Formats with a known width that are not decoded (bits, complex, heap descriptors): code -> bytes for repeat r
_OPAQUE = {"X": lambda r: -(-r // 8), "C": lambda r: 8 * r, "M": lambda r: 16 * r, "P": lambda r: 8, "Q": lambda r: 16}
_TFORM_SHAPE = re.compile(r"^(\d*)([A-Z])")
_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class FitsStructureError(ValueError):
    """The bytes are not the FITS structure expected; the message says which fault."""


@dataclass
class HDU:
    """Where one HDU lies in the file, and the cards that shape its data."""

    header_start: int
    data_start: int
    data_size: int
    cards: dict[str, Any] = field(default_factory=dict)

    @property
    def xtension(self) -> str:
        return str(self.cards.get("XTENSION", "PRIMARY")).strip().upper()


def _parse_value(text: str) -> Any:
    """Value field of a card: a quoted string, a logical, an integer or a float."""
    text = text.strip()
    if text.startswith("'"):
        out = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        return "".join(out).rstrip()
    value = text.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E").replace("d", "e"))
    except ValueError:
        return value


def parse_header(raw: bytes) -> dict[str, Any]:
    """Every keyword card of a header block, HIERARCH and CONTINUE included.

    Commentary cards (COMMENT, HISTORY, blank) are dropped: they carry no
    values the pipeline uses. Keywords are upper-cased, so that a writer that
    broke the standard's upper case (``n_images``, ``hierarch ra_(j2000)``)
    is read alike: FITS keywords do not depend on case.
    """
    cards: dict[str, Any] = {}
    last_key: str | None = None
    text = raw.decode("ascii", errors="replace")
    for i in range(0, len(text), CARD):
        card = text[i : i + CARD]
        key = card[:8].rstrip().upper()
        if key == "END":
            break
        if key == "CONTINUE" and last_key is not None and isinstance(cards.get(last_key), str):
            previous = cards[last_key]
            if previous.endswith("&"):
                cards[last_key] = previous[:-1] + str(_parse_value(card[8:]))
            continue
        if key == "HIERARCH":
            body = card[8:]
            if "=" not in body:
                continue
            name, value = body.split("=", 1)
            key = name.strip().upper()
            cards[key] = _parse_value(value)
            last_key = key
            continue
        if key in ("", "COMMENT", "HISTORY") or card[8:10] != "= ":
            continue
        cards[key] = _parse_value(card[10:])
        last_key = key
    return cards


def _find_header_end(buf: bytes | memoryview, start: int) -> int:
    """Offset just past the END card of the header starting at ``start``."""
    pos = start
    while True:
        idx = buf.find(_END_CARD, pos)  # type: ignore[union-attr]
        if idx < 0:
            raise FitsStructureError(f"header at byte {start} has no END card (truncated?)")
        if (idx - start) % CARD == 0:
            return idx + CARD
        pos = idx + 1


def _data_size(cards: dict[str, Any]) -> int:
    bitpix = cards.get("BITPIX")
    naxis = cards.get("NAXIS")
    if not isinstance(bitpix, int) or not isinstance(naxis, int):
        raise FitsStructureError("header lacks an integer BITPIX or NAXIS")
    if naxis == 0:
        return 0
    size = 1
    for axis in range(1, naxis + 1):
        n = cards.get(f"NAXIS{axis}")
        if not isinstance(n, int) or n < 0:
            raise FitsStructureError(f"header has a bad NAXIS{axis}")
        size *= n
    pcount = cards.get("PCOUNT", 0) or 0
    gcount = cards.get("GCOUNT", 1) or 1
    return abs(bitpix) // 8 * gcount * (pcount + size)


def scan_hdus(buf: bytes) -> list[HDU]:
    """Locate every HDU of a FITS file held in memory.

    Headers that repeat byte for byte (the release repeats its metadata in
    every image header) are parsed once.
    """
    if len(buf) == 0:
        raise FitsStructureError("file is empty")
    if not buf.startswith(b"SIMPLE  =") or buf[29:30] != b"T":
        raise FitsStructureError("not a FITS file (no SIMPLE = T card)")
    hdus: list[HDU] = []
    parsed: dict[bytes, tuple[dict[str, Any], int]] = {}
    pos = 0
    size = len(buf)
    while pos < size:
        end = _find_header_end(buf, pos)
        raw = buf[pos:end]
        hit = parsed.get(raw)
        if hit is None:
            cards = parse_header(raw)
            hit = (cards, _data_size(cards))
            parsed[raw] = hit
        cards, nbytes = hit
        data_start = pos + -(-(end - pos) // BLOCK) * BLOCK
        if data_start + nbytes > size:
            raise FitsStructureError(
                f"truncated: HDU {len(hdus)} needs {data_start + nbytes} bytes, file has {size}"
            )
        hdus.append(HDU(pos, data_start, nbytes, cards))
        pos = data_start + -(-nbytes // BLOCK) * BLOCK
        # Trailing zero padding or garbage is not an HDU; a header cut short is a truncated file.
        if buf[pos : pos + 8] != b"XTENSION":
            break
        if size - pos < BLOCK:
            raise FitsStructureError(f"truncated: HDU {len(hdus)} starts at byte {pos}, file ends at {size}")
    return hdus


def read_bintable(buf: bytes, hdu: HDU) -> dict[str, np.ndarray | None]:
    """Columns of a fixed-width binary table: strings decoded and stripped, numbers scaled.

    A column this reader does not decode (bits ``X``, complex ``C``/``M``,
    variable-length ``P``/``Q``) is None: its width is skipped, so a table
    may carry such columns beside the ones the caller uses.

    A numeric column with ``TSCALn``/``TZEROn`` comes out as its true values
    (``raw * TSCAL + TZERO``): astropy writes an unsigned 16-bit column as
    ``I`` with ``TZERO = 32768``, and reading it raw would misplace every row.
    Integer results stay integers (int64, or uint64 for ``K`` with
    ``TZERO = 2**63``); a column with ``TNULLn`` whose raw value marks a null
    comes out as float64 with NaN there, so the caller can drop those rows.
    """
    cards = hdu.cards
    if hdu.xtension != "BINTABLE":
        raise FitsStructureError(f"HDU is {hdu.xtension}, not a binary table")
    nfields = cards.get("TFIELDS", 0)
    row_bytes, nrows = cards.get("NAXIS1"), cards.get("NAXIS2")
    names, formats, scaling = [], [], []
    width = 0
    for i in range(1, nfields + 1):
        name = str(cards.get(f"TTYPE{i}", f"col{i}")).strip()
        tform = str(cards.get(f"TFORM{i}", "")).strip().upper()
        shape = _TFORM_SHAPE.match(tform)  # rT(...): repeat, type code, then anything (a heap's max length)
        if shape is None:
            raise FitsStructureError(f"table column {name!r} has unreadable format {tform!r}")
        repeat = int(shape.group(1)) if shape.group(1) else 1
        code = shape.group(2)
        if code in _OPAQUE:
            nbytes, repeat = _OPAQUE[code](repeat), 1
            formats.append(f"V{nbytes}")
            names.append(name)
            scaling.append((code, 1, 0, None))
            width += nbytes
            continue
        if code not in _TFORM:
            raise FitsStructureError(f"table column {name!r} has unsupported format {tform!r}")
        dtype, nbytes = _TFORM[code]
        if code == "A":
            formats.append(f"S{repeat}")
        elif repeat == 1:
            formats.append(dtype)
        else:
            formats.append((dtype, (repeat,)))
        names.append(name)
        scaling.append((code, cards.get(f"TSCAL{i}", 1), cards.get(f"TZERO{i}", 0), cards.get(f"TNULL{i}")))
        width += nbytes * repeat
    if width != row_bytes:
        raise FitsStructureError(f"table row is {row_bytes} bytes but its columns add up to {width}")
    if len(set(names)) != len(names):
        raise FitsStructureError(f"table has two columns of one name ({', '.join(names)})")
    rec = np.frombuffer(buf, dtype=np.dtype({"names": names, "formats": formats}), count=nrows, offset=hdu.data_start)
    columns: dict[str, np.ndarray] = {}
    for name, (code, tscal, tzero, tnull) in zip(names, scaling, strict=True):
        col = rec[name]
        if code in _OPAQUE:
            columns[name] = None
        elif col.dtype.kind == "S":
            # A list comprehension, not np.char: these columns are a few dozen short
            # strings, and np.char's first use imports numpy.ma in every worker.
            columns[name] = np.array([v.decode("ascii", errors="replace").strip() for v in col.tolist()], dtype=object)
        elif code == "L":
            columns[name] = col
        else:
            columns[name] = _scaled(name, col.astype(col.dtype.newbyteorder("=")), code, tscal, tzero, tnull)
    return columns


def _scaled(name: str, raw: np.ndarray, code: str, tscal: Any, tzero: Any, tnull: Any) -> np.ndarray:
    """True values of a numeric column (FITS 4.0, section 7.3.2): ``raw * TSCAL + TZERO``, nulls as NaN."""
    for card, value in (("TSCAL", tscal), ("TZERO", tzero), ("TNULL", tnull)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise FitsStructureError(f"table column {name!r} has a non-numeric {card} ({value!r})")
    integer = raw.dtype.kind in "iu"
    null = None
    if tnull is not None and integer:
        null = raw == tnull
    if tscal == 1 and tzero == 0:
        out = raw
    elif integer and tscal == 1 and code == "K" and tzero == 2**63:
        out = raw.view(np.uint64) ^ np.uint64(2**63)
    elif integer and isinstance(tscal, int) and isinstance(tzero, int):
        out = raw.astype(np.int64) * tscal + tzero
    else:
        out = raw.astype(np.float64) * tscal + tzero
    if null is not None and null.any():
        out = out.astype(np.float64)
        out[null] = np.nan
    return out


def image_fault(hdu: HDU) -> str | None:
    """Why ``hdu`` cannot be read as a 2-D image by :func:`read_image_stack`, or None if it can."""
    c = hdu.cards
    if hdu.xtension != "IMAGE" or c.get("NAXIS") != 2:
        return f"HDU is not a 2-D image ({hdu.xtension}, NAXIS {c.get('NAXIS')})"
    if c.get("BITPIX") not in _BITPIX:
        return f"image has unsupported BITPIX {c.get('BITPIX')}"
    for card in ("BZERO", "BSCALE", "BLANK"):
        value = c.get(card)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"image has a non-numeric {card} ({value!r})"
    return None


def read_image_stack(buf: bytes, hdus: list[HDU], index: np.ndarray) -> np.ndarray:
    """Pixels of the image HDUs ``hdus[index]`` as ``(n, ny, nx)``, in the order of ``index``.

    The release's layout (BITPIX 16, BZERO 32768, BSCALE 1, no BLANK) becomes
    uint16 by flipping the sign bit, done for all images in one strided gather
    when the HDUs are evenly spaced (they are when headers repeat), else one by
    one. Other layouts are scaled to float64 for the caller to check; integer
    pixels equal to ``BLANK`` (undefined) become NaN. Every HDU must pass
    :func:`image_fault` and all must share one shape.
    """
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        return np.zeros((0, 64, 64), dtype=np.uint16)
    chosen = [hdus[i] for i in index]
    layouts = set()
    # Repeated headers share one cards dict (scan_hdus parses them once): check each dict once.
    for h in {id(h.cards): h for h in chosen}.values():
        fault = image_fault(h)
        if fault is not None:
            raise FitsStructureError(f"HDU at byte {h.header_start}: {fault}")
        c = h.cards
        blank = c.get("BLANK") if c.get("BITPIX", 0) > 0 else None
        layouts.add((c.get("NAXIS2"), c.get("NAXIS1"), c.get("BITPIX"), c.get("BZERO", 0), c.get("BSCALE", 1), blank))
    if len({layout[:2] for layout in layouts}) > 1:
        raise FitsStructureError("images of different shapes in one stack")
    if len(layouts) == 1:
        ny, nx, bitpix, bzero, bscale, blank = layouts.pop()
        dtype = np.dtype(_BITPIX[bitpix])
        lo, hi = int(index.min()), int(index.max())
        starts = np.fromiter((hdus[i].data_start for i in range(lo, hi + 1)), dtype=np.int64, count=hi - lo + 1)
        steps = np.diff(starts)
        if blank is None and (hi == lo or (steps[0] > 0 and (steps == steps[0]).all())):
            uint16_layout = bitpix == 16 and bzero == 32768 and bscale == 1
            stride = int(steps[0]) if hi > lo else ny * nx * dtype.itemsize
            view = np.ndarray(
                (hi - lo + 1, ny, nx),
                dtype=">u2" if uint16_layout else dtype,
                buffer=buf,
                offset=int(starts[0]),
                strides=(stride, nx * dtype.itemsize, dtype.itemsize),
            )
            picked = view[index - lo]
            if uint16_layout:
                out = picked.astype(np.uint16)
                out ^= 0x8000
                return out
            return picked.astype(np.float64) * bscale + bzero
    # Mixed layouts or undefined pixels: one at a time, as float64.
    stack = []
    for h in chosen:
        c = h.cards
        raw = np.frombuffer(
            buf, dtype=_BITPIX[c["BITPIX"]], count=c["NAXIS1"] * c["NAXIS2"], offset=h.data_start
        ).reshape(c["NAXIS2"], c["NAXIS1"])
        arr = raw.astype(np.float64) * c.get("BSCALE", 1) + c.get("BZERO", 0)
        if c["BITPIX"] > 0 and c.get("BLANK") is not None:
            arr[raw == c["BLANK"]] = np.nan
        stack.append(arr)
    return np.stack(stack)
