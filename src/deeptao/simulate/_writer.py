"""Write one object as a release-style FITS file, atomically.

fitsio (CFITSIO) writes the same cards the release's own builder wrote: long
or odd keywords such as ``RA_(J2000)`` become HIERARCH cards, uint16 images
become BITPIX 16 with BZERO 32768, and a table written first gets an empty
primary HDU before it. It is also some eight times faster than
astropy.io.fits for files of a hundred small HDUs.

A file is written under a temporary name in its final folder and renamed into
place, so a killed run leaves no half-written ``*.fits``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fitsio
import numpy as np

__all__ = ["write_object", "TRANSIENT_TABLE_DTYPE", "NON_TRANSIENT_TABLE_DTYPE"]

TRANSIENT_TABLE_DTYPE = np.dtype([
    ("HDU_Ext", ">i8"), ("Set_Number", "S2"), ("Date", "S7"), ("MJD", ">f8"),
    ("Field_ID", "S6"), ("Obs_In_Seq", "S4"), ("Cutout", "S4"),
])
# The non-transient builder stored the extension number and MJD as text and
# called the date column DATE.
NON_TRANSIENT_TABLE_DTYPE = np.dtype([
    ("HDU_Ext", "S4"), ("MJD", "S11"), ("DATE", "S7"), ("Field_ID", "S6"), ("Cutout", "S4"),
])


def write_object(path: Path, table: np.ndarray, images: np.ndarray,
                 header: Mapping[str, Any], *, repeat_header: bool) -> None:
    """Write HDU 0 (empty), HDU 1 (``table`` with ``header``), then one HDU per image.

    ``repeat_header`` copies the metadata into every image header, as the
    transient release does; the non-transient release leaves them bare.
    """
    if images.dtype != np.uint16 or images.ndim != 3:
        raise TypeError(
            f"{path}: images must be (n, h, w) uint16, got {images.dtype} {images.shape}"
        )
    if len(table) != images.shape[0]:
        raise ValueError(f"{path}: {len(table)} table rows for {images.shape[0]} images")
    path = Path(path)
    tmp = path.with_name(f".{zlib.crc32(path.name.encode()):08x}-{os.getpid()}.part")
    hdr = dict(header)
    try:
        with fitsio.FITS(str(tmp), "rw", clobber=True) as fits:
            fits.write(table, header=hdr)
            for image in images:
                fits.write(image, header=hdr if repeat_header else None)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
