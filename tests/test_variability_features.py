"""The variability features measure what they name: significance, flare duty cycle and timescale."""

from __future__ import annotations

import math

import numpy as np

from deeptao.data.representation import ObjectNights
from deeptao.data.variability_features import (
    VARIABILITY_FEATURE_NAMES,
    variability_feature_matrix,
    variability_features,
)
from tests._nights import CROP, MJD, SEASONS, central_source, rescaled, turned

INDEX = {name: k for k, name in enumerate(VARIABILITY_FEATURE_NAMES)}


def test_a_steady_source_is_consistent_with_its_noise():
    rng = np.random.default_rng(0)
    f = variability_features(central_source(np.full(len(MJD), 300.0), rng))
    # the mean squared deviation in units of the noise is ~1 (a little less around the median)
    assert abs(f[INDEX["var_chi2"]]) < 0.3
    assert f[INDEX["var_flare_duty"]] < 0.02
    # no variability beyond the noise at any lag: the noise-subtracted structure function is ~0
    for name in ("var_sf_short", "var_sf_mid", "var_sf_long"):
        assert abs(f[INDEX[name]]) < 0.25, name


def test_a_slow_wander_and_fast_flicker_differ_in_their_timescale():
    rng = np.random.default_rng(1)
    years = (MJD - MJD[0]) / 365.25
    slow = variability_features(central_source(300.0 + 150.0 * np.sin(2 * math.pi * years / 8.0), rng))
    fast = variability_features(central_source(300.0 + rng.normal(0.0, 106.0, len(MJD)), rng))
    # both vary far beyond the noise
    assert slow[INDEX["var_chi2"]] > 5 and fast[INDEX["var_chi2"]] > 5
    # flicker has all its variance at the shortest lags; a slow wander builds it up over years
    assert fast[INDEX["var_sf_short"]] > 0.8
    assert slow[INDEX["var_sf_short"]] < 0.1
    assert slow[INDEX["var_sf_long"]] > 5 * slow[INDEX["var_sf_short"]]


def test_the_flare_duty_cycle_counts_the_nights_of_a_flare():
    rng = np.random.default_rng(2)
    flux = np.full(len(MJD), 300.0)
    flux[[20, 21, 22, 90]] += 200.0  # four nights well above 3 sigma of the aperture noise
    f = variability_features(central_source(flux, rng))
    assert f[INDEX["var_flare_duty"]] == 4 / len(MJD)


def test_the_features_do_not_depend_on_orientation_or_on_the_scale_of_the_noise():
    rng = np.random.default_rng(3)
    flux = 300.0 + 100.0 * np.sin(MJD / 40.0)
    obj = central_source(flux, rng)
    plain = variability_features(obj)
    for code in range(1, 8):
        np.testing.assert_allclose(variability_features(turned(obj, code)), plain, rtol=1e-9, atol=1e-12, err_msg=f"code {code}")
    # the same object with every pixel and noise doubled (another noise unit) gives the same numbers
    np.testing.assert_allclose(variability_features(rescaled(obj, 2)), plain, rtol=1e-6)


def test_undefined_features_are_nan():
    rng = np.random.default_rng(4)
    one = variability_features(central_source(np.array([300.0]), rng, mjd=MJD[:1]))
    assert np.isnan(one).all()
    # one season only: no pairs of nights 300 days apart
    season = variability_features(central_source(np.full(18, 300.0), rng, mjd=SEASONS[0]))
    assert np.isnan(season[INDEX["var_sf_long"]]) and np.isfinite(season[INDEX["var_sf_short"]])
    empty = ObjectNights(np.zeros((0, CROP, CROP), np.float32), np.zeros((CROP, CROP), np.float32), np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 1.0)
    matrix = variability_feature_matrix([empty, central_source(np.full(len(MJD), 300.0), rng)])
    assert matrix.shape == (2, len(VARIABILITY_FEATURE_NAMES)) and np.isnan(matrix[0]).all() and np.isfinite(matrix[1]).all()
    assert variability_feature_matrix([]).shape == (0, len(VARIABILITY_FEATURE_NAMES))


def test_the_photometry_radius_is_the_representations():
    rng = np.random.default_rng(4)
    flux = 300.0 + 200.0 * np.sin(MJD / 300.0)
    obj = central_source(flux, rng)
    default, wide = variability_features(obj), variability_features(obj, aperture=5.0)
    np.testing.assert_array_equal(variability_feature_matrix([obj], 5.0)[0], wide)
    # a wider aperture gathers more sky noise: the same variation stands out less against the noise
    assert wide[INDEX["var_chi2"]] < default[INDEX["var_chi2"]]
