"""Twelve numbers a photometrist reads off an object's stamps: morphology, where a change sits, motion.

Computed from the networks' own representation (:mod:`deeptao.data.representation`:
nightly co-adds and their median reference, in units of the object's noise),
each invariant under the eight flips and rotations, and none of them reveals
the label. They say what a light curve at the centre cannot:

- the reference: aperture signal-to-noise, size (second moment), concentration
  (flux within 1.5 px over flux within 6 px), ellipticity, centroid offset
  (a point-like blazar against an AGN in its host, a bare field);
- the night of the largest central change: where its positive residual sits
  (from the stamp centre and from the reference's centroid) and how
  point-like it is (a supernova off its host's nucleus);
- motion: a straight-line fit of the nightly centroid against time, its rate
  in pixels a year and its significance, and the early-against-late
  difference (median of the last third of the nights minus the first third):
  the smaller of its positive and negative peaks, which a moving star leaves
  both of, and their separation.

Why they exist: a network given the nightly centroids does not find the
straight line through them on a thousand training objects, while the fit
finds most high-proper-motion stars (``docs/benchmarks.md``). taonet and
taonet-lc can take them beside their pooled nights (``stamp_features=True``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from deeptao.data.representation import ObjectNights

__all__ = ["STAMP_FEATURE_NAMES", "stamp_features", "stamp_feature_matrix"]

STAMP_FEATURE_NAMES = (
    "ref_snr", "ref_size", "ref_concentration", "ref_ellipticity", "ref_offset",
    "change_offset", "change_host_offset", "change_compactness",
    "motion_rate", "motion_significance", "dipole_amplitude", "dipole_separation",
)  # fmt: skip

_GAUSS_MEDIAN_NOISE = 1.2533  # noise of a median over that of a mean, Gaussian data


def _offsets(c: int) -> tuple[np.ndarray, np.ndarray]:
    centre = (c - 1) / 2.0
    dy, dx = np.mgrid[0:c, 0:c].astype(np.float64) - centre
    return dy, dx


def _centroid(image: np.ndarray, dy: np.ndarray, dx: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """Centroid of the positive pixels inside ``mask`` and their sum (NaN centroid when nothing is positive)."""
    w = np.clip(image, 0.0, None) * mask
    total = float(w.sum())
    if total <= 0:
        return np.nan, np.nan, 0.0
    return float((w * dy).sum() / total), float((w * dx).sum() / total), total


def stamp_features(nights: ObjectNights) -> np.ndarray:
    """The twelve :data:`STAMP_FEATURE_NAMES` of one object; NaN where undefined (too few nights, no signal)."""
    out = np.full(len(STAMP_FEATURE_NAMES), np.nan)
    n = len(nights)
    if n == 0:
        return out
    coadd = nights.coadd.astype(np.float64)
    ref = nights.reference.astype(np.float64)
    dy, dx = _offsets(ref.shape[-1])
    r2 = dy**2 + dx**2
    core, ap, wide = r2 <= 2.25, r2 <= 9.0, r2 <= 36.0
    pixel_noise = float(np.median(nights.night_noise))
    ref_noise = _GAUSS_MEDIAN_NOISE * pixel_noise / np.sqrt(n)
    out[0] = np.arcsinh(ref[ap].sum() / (ref_noise * np.sqrt(ap.sum())))
    cy, cx, total = _centroid(ref, dy, dx, wide)
    if total > 0:
        w = np.clip(ref, 0.0, None) * wide
        yy, xx = (w * (dy - cy) ** 2).sum() / total, (w * (dx - cx) ** 2).sum() / total
        xy = (w * (dy - cy) * (dx - cx)).sum() / total
        half_trace, det = (yy + xx) / 2, yy * xx - xy**2
        spread = np.sqrt(max(half_trace**2 - det, 0.0))
        major, minor = half_trace + spread, max(half_trace - spread, 1e-9)
        out[1] = np.sqrt(yy + xx)
        out[3] = 1.0 - np.sqrt(minor / max(major, 1e-9))
        out[4] = np.hypot(cy, cx)
    else:
        cy = cx = 0.0
    wide_flux = ref[wide].sum()
    out[2] = ref[core].sum() / wide_flux if wide_flux > 0 else np.nan
    change = coadd - ref
    change_snr = (change * ap).sum(axis=(1, 2)) / (nights.night_noise * np.sqrt(ap.sum()))
    k = int(np.argmax(change_snr))
    if change_snr[k] > 3.0:
        py, px, _ = _centroid(change[k], dy, dx, wide)
        out[5] = np.hypot(py, px)
        out[6] = np.hypot(py - cy, px - cx)
        wide_change = change[k][wide].sum()
        out[7] = change[k][core].sum() / wide_change if wide_change > 0 else np.nan
    years = (nights.mjd - nights.mjd.mean()) / 365.25
    track = [(i, *_centroid(coadd[i], dy, dx, ap)[:2]) for i in range(n)]
    track = np.array([t for t in track if np.isfinite(t[1])])
    if len(track) >= 6 and np.ptp(years[track[:, 0].astype(int)]) > 0.5:
        t = years[track[:, 0].astype(int)]
        design = np.column_stack([t, np.ones_like(t)])
        fit_y = np.linalg.lstsq(design, track[:, 1], rcond=None)[0]
        fit_x = np.linalg.lstsq(design, track[:, 2], rcond=None)[0]
        residual = np.concatenate([track[:, 1] - design @ fit_y, track[:, 2] - design @ fit_x])
        rate = np.hypot(fit_y[0], fit_x[0])
        out[8] = rate
        out[9] = rate / (np.std(residual) / np.sqrt(((t - t.mean()) ** 2).sum()) + 1e-9)
    if n >= 6:
        third = max(n // 3, 2)
        late_minus_early = (np.median(coadd[-third:], axis=0) - np.median(coadd[:third], axis=0)) * wide
        noise = _GAUSS_MEDIAN_NOISE * pixel_noise * np.sqrt(2.0 / third)
        out[10] = np.arcsinh(min(late_minus_early.max(), -late_minus_early.min()) / noise)
        peak = np.unravel_index(late_minus_early.argmax(), late_minus_early.shape)
        trough = np.unravel_index(late_minus_early.argmin(), late_minus_early.shape)
        out[11] = np.hypot(peak[0] - trough[0], peak[1] - trough[1])
    return out


def stamp_feature_matrix(objects: Iterable[ObjectNights], aperture: float | None = None) -> np.ndarray:
    """:func:`stamp_features` of each object of an iterable, float64 (n, 12).

    ``aperture`` is accepted as every feature block's is, and unused: the stamp
    features measure shapes within fixed radii (1.5, 3 and 6 pixels), not photometry.
    """
    rows = [stamp_features(obj) for obj in objects]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(STAMP_FEATURE_NAMES))
