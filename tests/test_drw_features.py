"""The damped-random-walk features: an exact likelihood, and timescales that come out in the right order."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from deeptao.data.drw_features import DRW_FEATURE_NAMES, drw_feature_matrix, drw_features, drw_log_likelihood
from deeptao.data.representation import ObjectNights
from tests._nights import CROP, MJD, central_source, rescaled, turned

INDEX = {name: k for k, name in enumerate(DRW_FEATURE_NAMES)}
LEVEL = 300.0  # a source far above the noise


def _walk(mjd: np.ndarray, tau: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """An Ornstein-Uhlenbeck process with timescale ``tau`` and standard deviation ``sigma``, exact at the given times."""
    out = np.empty(len(mjd))
    out[0] = rng.normal(0.0, sigma)
    for i in range(1, len(mjd)):
        decay = np.exp(-(mjd[i] - mjd[i - 1]) / tau)
        out[i] = decay * out[i - 1] + rng.normal(0.0, sigma * np.sqrt(1.0 - decay**2))
    return out


def test_the_filter_gives_the_gaussian_likelihood_of_the_whole_series():
    # the Kalman filter against the multivariate normal with the exponential covariance, written out
    rng = np.random.default_rng(0)
    mjd = np.sort(rng.uniform(0.0, 1500.0, 40))
    noise = rng.uniform(0.5, 2.0, 40)
    flux = 10.0 + _walk(mjd, 80.0, 3.0, rng) + rng.normal(0.0, noise)
    tau, sigma = np.array([5.0, 80.0, 900.0]), np.array([0.5, 3.0, 6.0])
    weights = 1.0 / noise**2
    y = flux - np.sum(weights * flux) / np.sum(weights)
    lags = np.abs(mjd[:, None] - mjd[None, :])
    for t, s, got in zip(tau, sigma, drw_log_likelihood(mjd, flux, noise, tau, sigma), strict=True):
        cov = s**2 * np.exp(-lags / t) + np.diag(noise**2)
        expected = multivariate_normal(np.zeros(len(y)), cov).logpdf(y) + 0.5 * len(y) * np.log(2 * np.pi)
        assert got == pytest.approx(expected, rel=1e-9)


def test_a_steady_source_gains_nothing_from_a_walk():
    f = drw_features(central_source(np.full(len(MJD), LEVEL), np.random.default_rng(1)))
    assert 0.0 <= f[INDEX["drw_gain"]] < 0.05  # a walk can only fit the noise a little better
    assert f[INDEX["drw_log_sigma"]] < 0.0  # below the noise of one night


def test_a_slow_walk_and_a_fast_one_come_out_in_order():
    rng = np.random.default_rng(2)
    slow = drw_features(central_source(LEVEL + _walk(MJD, 500.0, 60.0, rng), rng))
    fast = drw_features(central_source(LEVEL + _walk(MJD, 10.0, 60.0, rng), rng))
    for f in (slow, fast):
        assert f[INDEX["drw_gain"]] > 1.0  # far from a steady source
        assert 0.5 < f[INDEX["drw_log_sigma"]] < 2.5  # 60 against an aperture noise of a few
    assert slow[INDEX["drw_log_tau"]] > 2.0 > 1.5 > fast[INDEX["drw_log_tau"]]
    assert slow[INDEX["drw_long_short"]] > 0 > fast[INDEX["drw_long_short"]]


def test_the_features_do_not_depend_on_orientation_or_on_the_scale_of_the_noise():
    rng = np.random.default_rng(3)
    obj = central_source(LEVEL + _walk(MJD, 100.0, 40.0, rng), rng)
    plain = drw_features(obj)
    for code in range(1, 8):
        np.testing.assert_allclose(drw_features(turned(obj, code)), plain, rtol=1e-9, atol=1e-12, err_msg=f"code {code}")
    np.testing.assert_allclose(drw_features(rescaled(obj, 2)), plain, rtol=1e-6, atol=1e-9)


def test_undefined_features_are_nan():
    rng = np.random.default_rng(4)
    assert np.isnan(drw_features(central_source(np.full(4, LEVEL), rng, mjd=MJD[:4]))).all()  # under five nights
    flat = ObjectNights(np.zeros((10, CROP, CROP), np.float32), np.zeros((CROP, CROP), np.float32), MJD[:10],
                        np.ones(10, np.float32), np.full(10, 4), 1.0)  # fmt: skip
    assert np.isnan(drw_features(flat)).all()  # every night the same: no spread to fit
    matrix = drw_feature_matrix([flat, central_source(np.full(len(MJD), LEVEL), rng)])
    assert matrix.shape == (2, len(DRW_FEATURE_NAMES)) and np.isnan(matrix[0]).all() and np.isfinite(matrix[1]).all()
    assert drw_feature_matrix([]).shape == (0, len(DRW_FEATURE_NAMES))
