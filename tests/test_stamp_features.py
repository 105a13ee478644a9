"""The stamp features measure what they name, whatever the orientation, and are NaN where undefined."""

from __future__ import annotations

import numpy as np
import pytest

from deeptao.data.representation import ObjectNights, _reference
from deeptao.data.stamp_features import STAMP_FEATURE_NAMES, stamp_feature_matrix, stamp_features
from tests._nights import turned

CROP = 12
INDEX = {name: k for k, name in enumerate(STAMP_FEATURE_NAMES)}


def _source(y: float, x: float, flux: float, sigma: float = 1.0) -> np.ndarray:
    """A Gaussian of total ``flux`` centred ``(y, x)`` pixels from the stamp's centre."""
    c = (CROP - 1) / 2
    yy, xx = np.mgrid[:CROP, :CROP] - c
    g = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return flux * g / g.sum()


def _object(positions, rng, *, flux=400.0, sigma=1.0, years=6.0, extra=None) -> ObjectNights:
    """Unit-noise nightly co-adds of one source at the given (y, x) per night, nights evenly over ``years``."""
    n = len(positions)
    coadd = np.stack([_source(y, x, flux, sigma) for y, x in positions]) + rng.normal(0.0, 1.0, (n, CROP, CROP))
    if extra is not None:
        coadd += extra
    coadd = coadd.astype(np.float32)
    mjd = 53500.0 + np.linspace(0.0, years * 365.25, n)
    return ObjectNights(coadd, _reference(coadd), mjd, np.ones(n, np.float32), np.full(n, 4), 10.0)


def test_every_feature_is_the_same_under_the_eight_flips_and_rotations():
    rng = np.random.default_rng(1)
    positions = [(0.8 - 0.1 * k, -0.5 + 0.12 * k) for k in range(24)]
    extra = np.zeros((24, CROP, CROP))
    extra[10] = _source(1.5, 2.0, 300.0)  # a change off the centre on one night
    obj = _object(positions, rng, extra=extra)
    plain = stamp_features(obj)
    assert np.isfinite(plain).all()
    for code in range(1, 8):
        np.testing.assert_allclose(stamp_features(turned(obj, code)), plain, rtol=1e-6, atol=1e-9, err_msg=f"code {code}")


def test_a_moving_star_shows_its_motion_and_a_steady_star_none():
    rng = np.random.default_rng(2)
    n, years, rate = 30, 6.0, 0.4  # pixels a year
    t = np.linspace(-years / 2, years / 2, n)
    moving = stamp_features(_object([(rate * tk * 0.6, rate * tk * 0.8) for tk in t], rng, years=years))
    steady = stamp_features(_object([(0.0, 0.0)] * n, rng, years=years))
    assert moving[INDEX["motion_significance"]] > 10 * steady[INDEX["motion_significance"]]
    assert moving[INDEX["motion_significance"]] > 10
    # the aperture centroid of a star drifting inside it is pulled towards the centre, so the rate reads low
    assert 0.5 * rate < moving[INDEX["motion_rate"]] < 1.1 * rate
    assert moving[INDEX["dipole_amplitude"]] > steady[INDEX["dipole_amplitude"]] + 2


def test_an_extended_source_is_larger_and_less_concentrated_than_a_point():
    rng = np.random.default_rng(3)
    point = stamp_features(_object([(0.0, 0.0)] * 20, rng, sigma=0.8, flux=2000.0))
    extended = stamp_features(_object([(0.0, 0.0)] * 20, rng, sigma=2.5, flux=2000.0))
    assert extended[INDEX["ref_size"]] > 1.5 * point[INDEX["ref_size"]]
    assert extended[INDEX["ref_concentration"]] < 0.7 * point[INDEX["ref_concentration"]]
    assert point[INDEX["ref_snr"]] > 3 and extended[INDEX["ref_snr"]] > 3


def test_a_change_off_the_host_centre_is_located():
    rng = np.random.default_rng(4)
    extra = np.zeros((20, CROP, CROP))
    extra[12] = _source(0.0, 2.0, 400.0)  # a supernova two pixels east of the nucleus
    f = stamp_features(_object([(0.0, 0.0)] * 20, rng, sigma=1.5, flux=800.0, extra=extra))
    assert f[INDEX["change_offset"]] == pytest.approx(2.0, abs=0.4)
    assert f[INDEX["change_host_offset"]] == pytest.approx(2.0, abs=0.4)


def test_undefined_features_are_nan():
    rng = np.random.default_rng(5)
    few = stamp_features(_object([(0.0, 0.0)] * 4, rng))  # no motion fit, no early/late thirds
    motion = [INDEX[k] for k in ("motion_rate", "motion_significance", "dipole_amplitude", "dipole_separation")]
    assert np.isnan(few[motion]).all() and np.isfinite(few[INDEX["ref_snr"]])
    quiet = stamp_features(_object([(0.0, 0.0)] * 20, rng))  # no night changes by 3 sigma
    assert np.isnan(quiet[[INDEX["change_offset"], INDEX["change_compactness"]]]).all()
    empty = ObjectNights(np.zeros((0, CROP, CROP), np.float32), np.zeros((CROP, CROP), np.float32), np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 1.0)
    assert np.isnan(stamp_features(empty)).all()
    matrix = stamp_feature_matrix([empty, _object([(0.0, 0.0)] * 8, rng)])
    assert matrix.shape == (2, len(STAMP_FEATURE_NAMES)) and np.isnan(matrix[0]).all()
    assert stamp_feature_matrix([]).shape == (0, len(STAMP_FEATURE_NAMES))
