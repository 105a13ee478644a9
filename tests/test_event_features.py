"""The event features measure what they name: recurrences, how fast an event rises and fades, its length, the quiet level."""

from __future__ import annotations

import numpy as np
import pytest

from deeptao.data.event_features import EVENT_FEATURE_NAMES, event_feature_matrix, event_features
from deeptao.data.representation import ObjectNights
from tests._nights import CROP, MJD, SEASONS, central_source, rescaled, turned

INDEX = {name: k for k, name in enumerate(EVENT_FEATURE_NAMES)}
QUIET = 300.0  # a source far above the noise out of its events


def _object(flux: np.ndarray, seed: int = 0, mjd: np.ndarray = MJD) -> ObjectNights:
    return central_source(flux, np.random.default_rng(seed), mjd)


def _event(mjd: np.ndarray, start: float, rise_days: float, fade_mag_per_day: float, peak: float) -> np.ndarray:
    """Extra flux of an event starting at ``start``: linear rise to ``peak``, then an exponential fade in magnitudes."""
    tau = mjd - start
    extra = np.where((tau > 0) & (tau < rise_days), peak * tau / rise_days, 0.0)
    after = tau >= rise_days
    extra[after] = peak * 10 ** (-0.4 * fade_mag_per_day * (tau[after] - rise_days))
    return extra


def test_a_steady_source_has_no_event():
    f = event_features(_object(np.full(len(MJD), QUIET)))
    assert f[INDEX["event_episodes"]] <= 1  # at most one chance night above 3 sigma in 144
    assert f[INDEX["event_peak_snr"]] < 4.5
    # its level out of events is its own flux over the aperture noise: far above 0
    assert f[INDEX["event_quiescent_snr"]] > 50


def test_a_supernova_and_a_dwarf_nova_differ_in_their_fading_and_recurrence():
    # a slow event, once: fades 0.05 mag a day from its peak
    sn = event_features(_object(QUIET + _event(MJD, SEASONS[3][3], 15.0, 0.05, 3000.0), seed=1))
    # fast outbursts, three seasons: rise in a day, fade 0.3 mag a day
    outbursts = sum(_event(MJD, SEASONS[k][5] - 2.0, 1.0, 0.3, 3000.0) for k in (1, 4, 6))
    dn = event_features(_object(QUIET + outbursts, seed=2))
    assert sn[INDEX["event_episodes"]] == 1 and dn[INDEX["event_episodes"]] == 3
    # the next night, 10 days on: the supernova has faded by 0.5 mag, the dwarf nova by 3 mag (just above the floor)
    assert sn[INDEX["event_decline"]] == pytest.approx(0.05, abs=0.02)
    assert dn[INDEX["event_decline"]] == pytest.approx(0.3, rel=0.1)
    assert sn[INDEX["event_duration"]] >= 10.0 and dn[INDEX["event_duration"]] == 0.0
    assert sn[INDEX["event_peak_snr"]] > 100 and dn[INDEX["event_peak_snr"]] > 100


def test_the_quiescent_level_leaves_out_the_nights_near_an_event():
    flux = np.zeros(len(MJD))  # nothing there out of the event
    flux += _event(MJD, SEASONS[2][4], 5.0, 0.05, 3000.0)
    f = event_features(_object(flux, seed=3))
    assert abs(f[INDEX["event_quiescent_snr"]]) < 1.0


def test_the_features_do_not_depend_on_orientation_or_on_the_scale_of_the_noise():
    obj = _object(QUIET + _event(MJD, SEASONS[3][3], 15.0, 0.05, 3000.0), seed=4)
    plain = event_features(obj)
    for code in range(1, 8):
        np.testing.assert_allclose(event_features(turned(obj, code)), plain, rtol=1e-9, atol=1e-12, err_msg=f"code {code}")
    np.testing.assert_allclose(event_features(rescaled(obj, 2)), plain, rtol=1e-6)


def test_undefined_features_are_nan():
    # no night 3 sigma above the baseline: the event's shape is undefined, the counts are not
    flat = event_features(_object(np.full(len(MJD), QUIET), seed=5))  # this draw has no night above 3 sigma
    assert flat[INDEX["event_peak_snr"]] < 3 and flat[INDEX["event_episodes"]] == 0
    assert np.isnan(flat[[INDEX["event_decline"], INDEX["event_rise"], INDEX["event_duration"]]]).all()
    assert np.isfinite(flat[INDEX["event_quiescent_snr"]])
    # a peak on the last night: nothing after it to fade to; the night before is 10 days earlier
    flux = np.full(len(MJD), QUIET)
    flux[-1] += 3000.0
    last = event_features(_object(flux, seed=6))
    assert np.isnan(last[INDEX["event_decline"]]) and np.isfinite(last[INDEX["event_rise"]])
    # a peak alone in its season: both neighbours lie more than 60 days away
    mjd = np.array([0.0, 10.0, 20.0, 200.0, 400.0, 410.0, 420.0])
    flux = np.full(len(mjd), QUIET)
    flux[3] += 3000.0
    alone = event_features(_object(flux, seed=7, mjd=mjd))
    assert np.isnan(alone[[INDEX["event_decline"], INDEX["event_rise"]]]).all()
    assert alone[INDEX["event_duration"]] == 0.0 and alone[INDEX["event_episodes"]] == 1
    # fewer than three nights: nothing is defined
    assert np.isnan(event_features(_object(np.full(2, QUIET), mjd=MJD[:2]))).all()
    empty = ObjectNights(np.zeros((0, CROP, CROP), np.float32), np.zeros((CROP, CROP), np.float32), np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 1.0)
    matrix = event_feature_matrix([empty, _object(np.full(len(MJD), QUIET))])
    assert matrix.shape == (2, len(EVENT_FEATURE_NAMES)) and np.isnan(matrix[0]).all()
    assert event_feature_matrix([]).shape == (0, len(EVENT_FEATURE_NAMES))


def test_the_photometry_radius_is_the_representations():
    obj = _object(QUIET + _event(MJD, SEASONS[3][3], 15.0, 0.05, 300.0), seed=8)
    default, wide = event_features(obj), event_features(obj, aperture=5.0)
    np.testing.assert_array_equal(event_feature_matrix([obj], 5.0)[0], wide)
    # a wider aperture gathers more sky noise: the same event stands out less
    assert wide[INDEX["event_peak_snr"]] < default[INDEX["event_peak_snr"]]
