"""Five numbers on how an object varies night to night: how much, how often it flares, on what timescale.

Computed from the forced photometry at the centre of the networks' own
representation (:meth:`deeptao.data.representation.ObjectNights.aperture_photometry`:
nightly co-add fluxes and their noise, in units of the object's noise scale),
so they need no light curve beyond the images, and none of them reveals the
label. The light-curve forest's MANTRA features describe the *distribution*
of magnitudes (spread, skew, percentile ratios, polynomial trends); they say
little about *when* the changes happen, which is what separates a quasar
(a slow damped random walk, months to years) from a blazar (days-to-weeks
flares on a restless jet) and an outbursting CV from both:

- ``var_chi2``: log of the mean squared deviation of the nightly fluxes from
  their median, in units of each night's noise (about 0 for a steady source);
- ``var_flare_duty``: the fraction of nights more than 3 sigma above the median;
- ``var_sf_short``, ``var_sf_mid``, ``var_sf_long``: the structure function
  at lags under 30 days, 30-200 days and over 300 days (mean squared flux
  difference of the pairs of nights at those lags, less both nights' noise),
  over twice the variance of the nightly fluxes: the share of the object's
  variability that has built up by that lag. NaN with fewer than 3 pairs.

Why they exist: the per-night photometry is among the networks' inputs, but
on about a thousand training objects a recurrent network does not learn
these timescales from it. On ten group splits of a 300-per-class simulated
survey they raised the validation macro F1 of taonet-lc by 0.023 and of
taonet by 0.010 and lowered both validation log-losses, AGN and blazars
gaining most; a forest on the light-curve and stamp features gained 0.014
in validation macro F1 from them (``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from deeptao.data.representation import ObjectNights, SequenceSettings

__all__ = ["VARIABILITY_FEATURE_NAMES", "variability_features", "variability_feature_matrix"]

VARIABILITY_FEATURE_NAMES = ("var_chi2", "var_flare_duty", "var_sf_short", "var_sf_mid", "var_sf_long")

#: lag ranges of the structure functions, days: within a season's run of nights, across months, across years
_SF_LAGS = ((0.0, 30.0), (30.0, 200.0), (300.0, np.inf))
_MIN_PAIRS = 3
_FLARE_SIGMA = 3.0


def variability_features(nights: ObjectNights, aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:data:`VARIABILITY_FEATURE_NAMES` of one object, float64 (5,); NaN where undefined (under 2 nights).

    ``aperture`` is the photometry radius the representation was built with (:class:`SequenceSettings`).
    """
    out = np.full(len(VARIABILITY_FEATURE_NAMES), np.nan)
    mjd, flux, noise = nights.light_curve(aperture)
    if len(flux) < 2:
        return out
    z = (flux - np.median(flux)) / noise
    out[0] = np.log(np.mean(z**2) + 1e-3)  # floored: a perfectly flat series is finite
    out[1] = np.mean(z > _FLARE_SIGMA)
    variance = float(np.var(flux))
    if variance > 0:
        i, j = np.triu_indices(len(flux), 1)
        lag = np.abs(mjd[j] - mjd[i])
        excess = (flux[j] - flux[i]) ** 2 - noise[i] ** 2 - noise[j] ** 2
        for k, (lo, hi) in enumerate(_SF_LAGS):
            pairs = (lag >= lo) & (lag < hi)
            if pairs.sum() >= _MIN_PAIRS:
                out[2 + k] = float(excess[pairs].mean()) / (2.0 * variance)
    return out


def variability_feature_matrix(objects: Iterable[ObjectNights], aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:func:`variability_features` of each object of an iterable, float64 (n, 5)."""
    rows = [variability_features(obj, aperture) for obj in objects]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(VARIABILITY_FEATURE_NAMES))
