"""What changes within a night: the representation's per-night scatter and trend, and the features built on them."""

from __future__ import annotations

import numpy as np
import pytest

from deeptao.data.intra_night_features import (
    INTRA_NIGHT_FEATURE_NAMES,
    intra_night_feature_matrix,
    intra_night_features,
)
from deeptao.data.representation import ObjectNights, SequenceSettings, SequenceStore, object_nights
from deeptao.io import order_exposures
from tests._fake_cache import blob, to_uint16

NIGHTS = 12
FLARE_NIGHT = 7
INDEX = {name: k for k, name in enumerate(INTRA_NIGHT_FEATURE_NAMES)}


def _sequence(rng, peaks_per_exposure):
    """A centred star whose peak counts are given per exposure, four a night ten minutes apart; the sky changes nightly."""
    images, mjd = [], []
    for night, peaks in enumerate(peaks_per_exposure):
        sky = rng.uniform(1500.0, 3000.0)
        for k, peak in enumerate(peaks):
            images.append(rng.normal(sky, np.sqrt(sky / 2.0), (64, 64)) + blob(peak))
            mjd.append(53500.0 + 5.0 * night + k * 10.0 / 1440.0)
    return order_exposures(to_uint16(np.array(images)), np.array(mjd))


def _steady_and_flaring(rng):
    steady = np.full((NIGHTS, 4), 150.0)
    flaring = steady.copy()
    flaring[FLARE_NIGHT] = [1500.0, 900.0, 550.0, 330.0]  # fades through the visit, as a flare star does
    return object_nights(*_sequence(rng, steady)), object_nights(*_sequence(rng, flaring))


def test_a_steady_star_scatters_as_its_noise_within_each_night_and_a_fading_flare_does_not():
    steady, flaring = _steady_and_flaring(np.random.default_rng(0))
    assert steady.intra_chi2.shape == (NIGHTS,) and steady.intra_slope.dtype == np.float32
    assert 0.4 < np.median(steady.intra_chi2) < 2.0  # the noise the exposures carry is the scatter they show
    assert np.max(np.abs(steady.intra_slope)) < 4.5
    assert flaring.intra_chi2[FLARE_NIGHT] > 30 and flaring.intra_slope[FLARE_NIGHT] < -5
    quiet = np.delete(np.arange(NIGHTS), FLARE_NIGHT)
    np.testing.assert_array_equal(flaring.intra_chi2[quiet] < 5, True)

    f_steady, f_flare = intra_night_features(steady), intra_night_features(flaring)
    assert f_flare[INDEX["intra_chi2_event"]] > np.log(30) and f_flare[INDEX["intra_slope_event"]] < -5
    assert f_flare[INDEX["intra_trend_event"]] > 0.8
    assert f_flare[INDEX["intra_active"]] == pytest.approx(1 / NIGHTS)
    assert f_steady[INDEX["intra_chi2_event"]] < np.log(10) and abs(f_steady[INDEX["intra_chi2_median"]]) < 1.0



def test_an_exposure_with_its_aperture_off_the_chip_is_left_out_of_the_night():
    rng = np.random.default_rng(1)
    images, mjd, blank, duplicate = _sequence(rng, np.full((3, 4), 150.0))
    clipped = images.copy()
    clipped[1:4, 30:34, 30:34] = 0  # three of the first night's four exposures lose the centre
    obj = object_nights(clipped, mjd, blank, duplicate)
    assert np.isnan(obj.intra_chi2[0]) and np.isnan(obj.intra_slope[0])  # one usable exposure: nothing to compare
    assert np.isfinite(obj.intra_chi2[1:]).all()
    assert list(obj.intra_used) == [1, 4, 4] and list(obj.exposures) == [4, 4, 4]


def test_the_trend_share_counts_only_the_exposures_the_night_could_use():
    rng = np.random.default_rng(3)
    peaks = np.full((NIGHTS, 4), 150.0)
    peaks[FLARE_NIGHT] = [1500.0, 900.0, 550.0, 330.0]
    images, mjd, blank, duplicate = _sequence(rng, peaks)
    clipped = images.copy()
    clipped[4 * FLARE_NIGHT + 3, 30:34, 30:34] = 0  # the flare night's last exposure loses the centre
    obj = object_nights(clipped, mjd, blank, duplicate)
    assert obj.intra_used[FLARE_NIGHT] == 3 and obj.exposures[FLARE_NIGHT] == 4
    share = intra_night_features(obj)[INDEX["intra_trend_event"]]
    # the line's share of the chi-square about the mean of the three exposures used, not of four
    expected = float(obj.intra_slope[FLARE_NIGHT]) ** 2 / (float(obj.intra_chi2[FLARE_NIGHT]) * 2)
    assert share == pytest.approx(min(expected, 1.0), rel=1e-5)
    store = SequenceStore.from_objects([obj], SequenceSettings())
    np.testing.assert_array_equal(store.object(0).intra_used, obj.intra_used)
    np.testing.assert_array_equal(obj.first_nights(FLARE_NIGHT + 1).intra_used, obj.intra_used[: FLARE_NIGHT + 1])


def test_first_nights_and_the_store_carry_the_intra_night_numbers():
    steady, flaring = _steady_and_flaring(np.random.default_rng(2))
    early = flaring.first_nights(FLARE_NIGHT + 1)
    np.testing.assert_array_equal(early.intra_chi2, flaring.intra_chi2[: FLARE_NIGHT + 1])
    np.testing.assert_array_equal(early.intra_slope, flaring.intra_slope[: FLARE_NIGHT + 1])
    store = SequenceStore.from_objects([steady, flaring], SequenceSettings())
    np.testing.assert_array_equal(store.object(1).intra_chi2, flaring.intra_chi2)
    np.testing.assert_array_equal(store.object(0).intra_slope, steady.intra_slope)


def test_objects_without_exposure_level_numbers_give_nan_features():
    crop = 12
    by_hand = ObjectNights(np.zeros((5, crop, crop), np.float32), np.zeros((crop, crop), np.float32),
                           np.arange(5.0), np.ones(5, np.float32), np.full(5, 4), 1.0)  # fmt: skip
    assert np.isnan(by_hand.intra_chi2).all() and len(by_hand.intra_slope) == 5
    empty = ObjectNights(np.zeros((0, crop, crop), np.float32), np.zeros((crop, crop), np.float32),
                         np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 1.0)  # fmt: skip
    matrix = intra_night_feature_matrix([by_hand, empty])
    assert matrix.shape == (2, len(INTRA_NIGHT_FEATURE_NAMES)) and np.isnan(matrix).all()
    assert intra_night_feature_matrix([]).shape == (0, len(INTRA_NIGHT_FEATURE_NAMES))
