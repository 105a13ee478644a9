"""The light-curve features of the MANTRA study, computed for many objects at once.

MANTRA (Neira et al. 2020) classified CRTS light curves with a random forest on
20 statistics plus polynomial-fit coefficients. Their definitions follow FATS
(Nun et al. 2015) and Richards et al. (2011); where those sources disagree,
the choice is stated below. All features are computed on magnitudes (here the
nightly asinh magnitudes), with errors where the definition uses them.

Light curves are held as padded arrays, one row per object, time ascending,
valid points first and NaN after them; every feature is then a handful of
array operations over all objects, with no Python loop over points or objects.

Definitions (``m`` magnitudes, ``e`` their errors, ``n`` points, ``t`` MJD):

moments
    ``std``            sample standard deviation (ddof=1).
    ``skew``           biased skewness g1 (scipy.stats.skew), as FATS.
    ``kurtosis``       biased excess kurtosis g2 (scipy.stats.kurtosis).
    ``small_kurtosis`` small-sample excess kurtosis G2 (with the ddof=1 deviation;
                       equals pandas ``kurt``); needs n >= 4.
    ``beyond1std``     fraction of points more than one standard deviation from
                       the error-weighted mean (deviation taken about that mean,
                       ddof=1), as FATS.
    ``stetson_j``      Stetson (1996) J for one band over consecutive pairs:
                       delta_i = sqrt(n/(n-1)) (m_i - weighted mean) / e_i,
                       J = sum_k sign(P_k) sqrt|P_k| / (n-1), P_k = delta_k delta_k+1.
    ``stetson_k``      K = sum|delta_i| / sqrt(n sum delta_i^2), as FATS.
magnitudes
    ``amplitude``      half the difference between the medians of the faintest
                       and brightest ceil(5% n) points, as FATS.
    ``max_slope``      largest |dm/dt| between consecutive points (mag/day).
    ``median_absolute_deviation``  median |m - median(m)|.
    ``median_buffer_range_percentage``  fraction of points with
                       |m - median(m)| < (max - min) / 10, as FATS.
    ``pair_slope_trend``  fraction of consecutive pairs whose magnitude rises
                       (MANTRA's wording; the divisor is the number of pairs).
    ``pair_slope_trend_last_30``  the same over the last 30 pairs.
percentiles (FATS: sorted magnitudes s, F_q = s[ceil(q n)], index clamped to n-1)
    ``percent_amplitude``  max |m - median| / median.
    ``percent_difference_flux_percentile``  (F_95 - F_5) / median.
    ``flux_percentile_ratio_midX``  (F_(50+X/2) - F_(50-X/2)) / (F_95 - F_5),
                       X = 20, 35, 50, 65, 80.
polynomials
    ``polyD_tK``       coefficient of x^K in the least-squares polynomial of
                       degree D = 1..4 through (x, m), x = 2 (t - t_mid)/(t_max - t_min)
                       in [-1, 1] (time normalised to the object's baseline, so
                       coefficients are magnitudes across it); unweighted, as MANTRA.

A feature that is undefined for a light curve (too few points, zero spread)
is NaN; classifiers impute it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["FEATURE_NAMES", "FEATURES_VERSION", "feature_matrix", "extract_features", "pad_lightcurves"]

#: bump when a definition changes, so cached features are recomputed
FEATURES_VERSION = 1

_POLY_DEGREES = (1, 2, 3, 4)
#: FATS's quantile pairs per mid-range width, as literals so ceil(q * n) matches it bit for bit
_MID_QUANTILES = {20: (0.40, 0.60), 35: (0.325, 0.675), 50: (0.25, 0.75), 65: (0.175, 0.825), 80: (0.10, 0.90)}
_MID_WIDTHS = tuple(_MID_QUANTILES)

FEATURE_NAMES: tuple[str, ...] = (
    "beyond1std",
    "kurtosis",
    "skew",
    "small_kurtosis",
    "std",
    "stetson_j",
    "stetson_k",
    "amplitude",
    "max_slope",
    "median_absolute_deviation",
    "median_buffer_range_percentage",
    "pair_slope_trend",
    "pair_slope_trend_last_30",
    "percent_amplitude",
    "percent_difference_flux_percentile",
    *(f"flux_percentile_ratio_mid{w}" for w in _MID_WIDTHS),
    *(f"poly{d}_t{k}" for d in _POLY_DEGREES for k in range(1, d + 1)),
)


def pad_lightcurves(
    curves: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack ``(t, m, e)`` light curves into NaN-padded arrays (n_objects, longest).

    Points with a non-finite time, magnitude or error, or an error <= 0, are
    dropped; the rest are sorted by time.
    """
    rows = []
    for t, m, e in curves:
        t, m, e = (np.asarray(a, dtype=np.float64).ravel() for a in (t, m, e))
        if not (t.shape == m.shape == e.shape):
            raise ValueError(f"a light curve has arrays of unequal length: {t.shape}, {m.shape}, {e.shape}")
        ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(e) & (e > 0)
        order = np.argsort(t[ok], kind="stable")
        rows.append((t[ok][order], m[ok][order], e[ok][order]))
    width = max((len(r[0]) for r in rows), default=0)
    out = [np.full((len(rows), max(width, 1)), np.nan) for _ in range(3)]
    for i, row in enumerate(rows):
        for arr, values in zip(out, row, strict=True):
            arr[i, : len(values)] = values
    return out[0], out[1], out[2]


def extract_features(curves: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Features of each ``(t, m, e)`` light curve, one row each, columns :data:`FEATURE_NAMES`."""
    t, m, e = pad_lightcurves(curves)
    return pd.DataFrame(feature_matrix(t, m, e), columns=list(FEATURE_NAMES))


def feature_matrix(t: np.ndarray, m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """All features for padded light curves, shape (n_objects, len(FEATURE_NAMES)).

    ``t``, ``m``, ``e`` are (n_objects, length) arrays as made by
    :func:`pad_lightcurves`: each row's valid points first, time ascending,
    NaN after them.
    """
    t, m, e = (np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (t, m, e))
    if not (t.shape == m.shape == e.shape):
        raise ValueError(f"t, m, e must have one shape, got {t.shape}, {m.shape}, {e.shape}")
    valid = np.isfinite(t) & np.isfinite(m) & np.isfinite(e) & (e > 0)
    n = valid.sum(axis=1)
    if np.any(valid[:, 1:] & ~valid[:, :-1]):
        raise ValueError("each light curve's valid points must come first (use pad_lightcurves)")
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as intended
        columns = _features(t, m, e, valid, n)
    out = np.column_stack([columns[name] for name in FEATURE_NAMES])
    out[~np.isfinite(out)] = np.nan
    return out


def _features(t: np.ndarray, m: np.ndarray, e: np.ndarray, valid: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    nf = n.astype(np.float64)
    m0 = np.where(valid, m, 0.0)
    f: dict[str, np.ndarray] = {}

    # ---- moments
    mean = m0.sum(axis=1) / nf
    d = np.where(valid, m - mean[:, None], 0.0)
    s2 = (d**2).sum(axis=1)
    var1 = np.where(n >= 2, s2 / (nf - 1), np.nan)
    f["std"] = np.sqrt(var1)
    mu2 = s2 / nf
    mu3 = (d**3).sum(axis=1) / nf
    mu4 = (d**4).sum(axis=1) / nf
    spread = np.where((n >= 2) & (mu2 > 0), mu2, np.nan)
    f["skew"] = mu3 / spread**1.5
    f["kurtosis"] = mu4 / spread**2 - 3.0
    z4 = (d**4).sum(axis=1) / var1**2
    f["small_kurtosis"] = np.where(
        (n >= 4) & (mu2 > 0),
        nf * (nf + 1) / ((nf - 1) * (nf - 2) * (nf - 3)) * z4 - 3 * (nf - 1) ** 2 / ((nf - 2) * (nf - 3)),
        np.nan,
    )

    w = np.where(valid, 1.0 / np.where(valid, e, 1.0) ** 2, 0.0)
    wmean = (w * m0).sum(axis=1) / w.sum(axis=1)
    dw = np.where(valid, m - wmean[:, None], np.nan)
    std_w = np.sqrt(np.nansum(dw**2, axis=1) / (nf - 1))
    beyond = (np.abs(dw) > std_w[:, None]) & valid
    f["beyond1std"] = np.where(n >= 2, beyond.sum(axis=1) / nf, np.nan)

    delta = np.sqrt(nf / (nf - 1))[:, None] * dw / np.where(valid, e, np.nan)
    pair = valid[:, 1:] & valid[:, :-1]
    n_pairs = pair.sum(axis=1)
    prod = np.where(pair, delta[:, 1:] * delta[:, :-1], 0.0)
    f["stetson_j"] = np.where(n >= 2, (np.sign(prod) * np.sqrt(np.abs(prod))).sum(axis=1) / (nf - 1), np.nan)
    abs_delta = np.where(valid, np.abs(delta), 0.0)
    f["stetson_k"] = np.where(n >= 2, abs_delta.sum(axis=1) / np.sqrt(nf * (abs_delta**2).sum(axis=1)), np.nan)

    # ---- magnitudes
    s = np.sort(np.where(valid, m, np.inf), axis=1)  # ascending, padding last
    s = np.where(np.isinf(s), np.nan, s)
    pos = np.arange(m.shape[1])[None, :]
    median = np.nanmedian(np.where(valid, m, np.nan), axis=1)
    k = np.ceil(0.05 * nf)
    bright = np.where(pos < k[:, None], s, np.nan)
    faint = np.where((pos >= (nf - k)[:, None]) & (pos < nf[:, None]), s, np.nan)
    f["amplitude"] = np.where(n >= 1, (np.nanmedian(faint, axis=1) - np.nanmedian(bright, axis=1)) / 2.0, np.nan)

    dt = np.where(pair, t[:, 1:] - t[:, :-1], np.nan)
    dm = np.where(pair, m[:, 1:] - m[:, :-1], np.nan)
    slope = np.abs(dm) / np.where(dt > 0, dt, np.nan)
    # with every light curve one night long there are no pairs at all (early classification cuts to one night)
    f["max_slope"] = np.nanmax(slope, axis=1) if slope.shape[1] else np.full(len(m), np.nan)

    absdev = np.where(valid, np.abs(m - median[:, None]), np.nan)
    f["median_absolute_deviation"] = np.nanmedian(absdev, axis=1)
    m_max = np.nanmax(np.where(valid, m, -np.inf), axis=1)
    m_min = np.nanmin(np.where(valid, m, np.inf), axis=1)
    buffer = (m_max - m_min) / 10.0
    f["median_buffer_range_percentage"] = np.where(
        n >= 1, ((absdev < buffer[:, None]) & valid).sum(axis=1) / nf, np.nan
    )

    rising = (dm > 0) & pair
    f["pair_slope_trend"] = np.where(n_pairs >= 1, rising.sum(axis=1) / n_pairs, np.nan)
    pair_pos = np.arange(m.shape[1] - 1)[None, :]
    last = pair & (pair_pos >= (n_pairs - 30)[:, None])
    n_last = last.sum(axis=1)
    f["pair_slope_trend_last_30"] = np.where(n_last >= 1, (rising & last).sum(axis=1) / n_last, np.nan)

    # ---- percentiles
    def fats_percentile(q: float) -> np.ndarray:
        idx = np.clip(np.ceil(q * nf), 0, np.maximum(nf - 1, 0)).astype(np.int64)
        return np.take_along_axis(s, idx[:, None], axis=1)[:, 0]

    f["percent_amplitude"] = np.nanmax(absdev, axis=1) / median
    f5_95 = fats_percentile(0.95) - fats_percentile(0.05)
    f["percent_difference_flux_percentile"] = f5_95 / median
    denominator = np.where(f5_95 != 0, f5_95, np.nan)
    for width in _MID_WIDTHS:
        lo, hi = _MID_QUANTILES[width]
        f[f"flux_percentile_ratio_mid{width}"] = (fats_percentile(hi) - fats_percentile(lo)) / denominator

    # ---- polynomial fits in normalised time
    t_min = np.nanmin(np.where(valid, t, np.inf), axis=1)
    t_max = np.nanmax(np.where(valid, t, -np.inf), axis=1)
    half = (t_max - t_min) / 2.0
    x = np.where(valid, (t - (t_min + half)[:, None]) / np.where(half > 0, half, np.nan)[:, None], 0.0)
    y = np.where(valid, m - mean[:, None], 0.0)  # centred: the intercept is not a feature
    vmask = valid.astype(np.float64)
    for degree in _POLY_DEGREES:
        powers = x[:, :, None] ** np.arange(degree + 1)[None, None, :] * vmask[:, :, None]  # (N, L, D+1)
        gram = np.einsum("nlj,nlk->njk", powers, powers)
        rhs = np.einsum("nlj,nl->nj", powers, y)
        ok = (n >= degree + 1) & (half > 0)
        coef = np.full((len(n), degree + 1), np.nan)
        if ok.any():
            # pinv, not solve: a degenerate row (e.g. points at only two distinct
            # times) gets the least-norm fit instead of failing the whole batch.
            coef[ok] = (np.linalg.pinv(gram[ok], hermitian=True) @ rhs[ok][:, :, None])[:, :, 0]
        for power in range(1, degree + 1):
            f[f"poly{degree}_t{power}"] = coef[:, power]
    return f
