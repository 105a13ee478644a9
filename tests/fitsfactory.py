"""Writes files in the Deep-TAO release layout with astropy, independently of deeptao.

The reader is tested against these, so they follow DATASET.md, not deeptao's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def date_string(mjd: float) -> str:
    from astropy.time import Time

    dt = Time(mjd, format="mjd").to_datetime()
    return f"{dt.year % 100:02d}{MONTHS[dt.month - 1]}{dt.day:02d}"


def make_images(n: int, rng: np.random.Generator, sky: float = 2000.0) -> np.ndarray:
    images = rng.poisson(sky, size=(n, 64, 64)).astype(np.uint16)
    images[:, 30:34, 30:34] += np.arange(n, dtype=np.uint16)[:, None, None] * 10
    return images


def write_release_file(
    root: Path,
    *,
    label: str = "SN",
    name: str | None = None,
    n: int = 12,
    seed: int = 0,
    images: np.ndarray | None = None,
    mjd: np.ndarray | None = None,
    parent: str = "CSS071204:100029+071116",
    duplicate_last: bool = False,
    blank: tuple[int, ...] = (),
    n_images_card: int | None = None,
    drop_hdus: int = 0,
    image_shape: tuple[int, int] = (64, 64),
    float_images: bool = False,
    replace: dict[int, np.ndarray] | None = None,
) -> Path:
    """One file, transient or non-transient variant by ``label``; returns its path.

    Rows are stored in alphabetical date order, as in the release; ``images[k]``
    belongs to ``mjd[k]`` so tests know the expected time order. ``replace[k]``
    is written instead of image ``k`` (any shape or type: a faulty image).
    """
    rng = np.random.default_rng(seed)
    if mjd is None:
        nights = np.sort(rng.choice(np.arange(53400, 56000), size=(n + 3) // 4, replace=False))
        mjd = np.concatenate([night + 0.3 + np.arange(4) * 0.007 for night in nights])[:n]
    mjd = np.asarray(mjd, dtype=float)
    n = len(mjd)
    if images is None:
        images = make_images(n, rng)
    if duplicate_last:
        mjd = np.append(mjd, mjd[-1])
        images = np.concatenate([images, images[-1:]])
        n += 1
    for k in blank:
        images[k] = 0
    dates = [date_string(m) for m in mjd]
    # Alphabetical order of the date string, then MJD: the release's row order.
    stored = sorted(range(n), key=lambda k: (dates[k], mjd[k]))
    hdu_ext = np.empty(n, dtype=np.int64)
    for pos, _k in enumerate(stored):
        hdu_ext[pos] = pos + 2  # image _k lives in HDU pos + 2
    transient = label != "NON"
    if transient:
        name = name or "CSS071204:100029+071116"
        hdr = fits.Header()
        hdr["CRTS_ID"] = name
        hdr["HIERARCH RA_(J2000)"] = "10:00:29.52"
        hdr["HIERARCH DEC_(J2000)"] = "+07:11:16.3"
        hdr["N_IMAGES"] = n if n_images_card is None else n_images_card
        hdr["UT_DATE"] = "20071204"
        hdr["MAG"] = 18.6
        hdr["HIERARCH CSS_IMAGES"] = "712041060114110026"
        hdr["SDSS"] = "yes"
        hdr["CLASS"] = "SN? SDSS 21.2 mag Galaxy"
        cols = [
            fits.Column("HDU_Ext", "K", array=hdu_ext),
            fits.Column("Set_Number", "2A", array=["1"] * n),
            fits.Column("Date", "7A", array=[dates[k] for k in stored]),
            fits.Column("MJD", "D", array=mjd[stored]),
            fits.Column("Field_ID", "6A", array=["N12345"] * n),
            fits.Column("Obs_In_Seq", "4A", array=[str(1 + k % 4) for k in stored]),
            fits.Column("Cutout", "4A", array=[str(k % 2) for k in stored]),
        ]
    else:
        name = name or "nonCSS:150.12+7.1899"
        hdr = fits.Header()
        hdr["CRTS_ID"] = parent
        hdr["HIERARCH RA_(J2000)"] = "150.12"
        hdr["HIERARCH DEC_(J2000)"] = "7.1899"
        hdr["N_IMAGES"] = str(n if n_images_card is None else n_images_card)
        hdr["IMG_REF"] = "ref"
        cols = [
            fits.Column("HDU_Ext", "4A", array=[str(e) for e in hdu_ext]),
            fits.Column("DATE", "7A", array=[dates[k] for k in stored]),
            fits.Column("MJD", "20A", array=[repr(float(mjd[k])) for k in stored]),
            fits.Column("Field_ID", "6A", array=["N12345"] * n),
            fits.Column("Cutout", "4A", array=["0"] * n),
        ]
    hdus = [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, header=hdr)]
    for k in stored[: n - drop_hdus]:
        img = images[k]
        if image_shape != (64, 64):
            img = np.resize(img, image_shape)
        data = img.astype(np.float32) if float_images else img.astype(np.uint16)
        if replace and k in replace:
            data = replace[k]
        hdus.append(fits.ImageHDU(data, header=hdr.copy()))
    repo = "TAO_transients" if transient else "TAO_non-transients"
    folder = root / repo / "data" / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.fits"
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path
