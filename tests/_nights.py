"""Objects in the networks' representation built by hand, for the tests of the features measured on them."""

from __future__ import annotations

import numpy as np

from deeptao.data.datasets import dihedral
from deeptao.data.representation import ObjectNights, _reference

CROP = 12
#: an observing pattern like the survey's: seasons of ~6 months, a night every ~10 days, for 8 years
SEASONS = [53500.0 + 365.25 * year + np.arange(0.0, 180.0, 10.0) for year in range(8)]
MJD = np.concatenate(SEASONS)


def point_source() -> np.ndarray:
    """A point source of unit total flux at the centre, almost all inside the 3-pixel aperture."""
    c = (CROP - 1) / 2
    yy, xx = np.mgrid[:CROP, :CROP] - c
    g = np.exp(-(yy**2 + xx**2) / (2 * 0.8**2))
    return g / g.sum()


def central_source(flux: np.ndarray, rng: np.random.Generator, mjd: np.ndarray = MJD, noise: float = 1.0) -> ObjectNights:
    """Nightly co-adds of a central source with the given flux per night, pixel noise ``noise``."""
    n = len(mjd)
    coadd = (flux[:, None, None] * point_source() + rng.normal(0.0, noise, (n, CROP, CROP))).astype(np.float32)
    return ObjectNights(coadd, _reference(coadd), mjd, np.full(n, noise, np.float32), np.full(n, 4), 10.0)


def turned(obj: ObjectNights, code: int) -> ObjectNights:
    """``obj`` under one of the eight flips and rotations (:func:`deeptao.data.datasets.dihedral`)."""
    return ObjectNights(dihedral(obj.coadd, code), dihedral(obj.reference, code), obj.mjd, obj.night_noise, obj.exposures, obj.noise)


def rescaled(obj: ObjectNights, factor: float) -> ObjectNights:
    """``obj`` with every pixel and noise multiplied by ``factor``: the same object in another noise unit."""
    return ObjectNights(obj.coadd * factor, obj.reference * factor, obj.mjd, obj.night_noise * factor, obj.exposures, obj.noise)
