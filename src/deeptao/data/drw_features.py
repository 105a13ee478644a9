"""Four numbers from a damped-random-walk fit to the nightly photometry: on what timescale the source wanders.

The optical flux of a quasar behaves like a damped random walk (an
Ornstein-Uhlenbeck process: Kelly, Bechtold & Siemiginowski 2009; MacLeod et
al. 2010), and its two parameters, the damping timescale and the amplitude,
are the standard way to tell quasars from other variables (Kozłowski et al.
2010; the ALeRCE light-curve classifier's ``GP_DRW_tau`` and
``GP_DRW_sigma``). Quasars damp over hundreds of days; a blazar's jet
wanders over weeks and flares over days. The variability features
(:mod:`deeptao.data.variability_features`) read the timescale off the
structure function in three lag bins; the likelihood uses every night at
its own noise and the order of the nights.

The fit is exact at uneven times: a Kalman filter over the nights (the
process decays by ``exp(-dt / tau)`` between them and each night adds its
own noise), evaluated on a grid of timescales (1 day to 5,000 days) and
amplitudes (0.01 to 5 times the spread of the fluxes), the mean fixed at
the inverse-variance weighted mean. Computed from the same forced
photometry as the variability features
(:meth:`deeptao.data.representation.ObjectNights.light_curve`):

- ``drw_log_tau``: log10 of the best timescale, days;
- ``drw_log_sigma``: log10 of the best amplitude (the walk's standard
  deviation) over the median night's noise;
- ``drw_gain``: the log-likelihood of the best walk less that of a steady
  source with the same mean, per night (about 0 for a steady source);
- ``drw_long_short``: the best log-likelihood with a timescale over 200 days
  less the best under 30 days (positive: a slow walk; negative: fast changes).

NaN with fewer than 5 nights or no spread. None reveals the label.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from deeptao.data.representation import ObjectNights, SequenceSettings

__all__ = ["DRW_FEATURE_NAMES", "drw_features", "drw_feature_matrix"]

DRW_FEATURE_NAMES = ("drw_log_tau", "drw_log_sigma", "drw_gain", "drw_long_short")

_TAUS = np.logspace(0.0, np.log10(5000.0), 30)  # days
_SIGMAS = np.logspace(-2.0, np.log10(5.0), 28)  # times the spread of the fluxes
_MIN_NIGHTS = 5
_LONG, _SHORT = 200.0, 30.0  # days


def drw_log_likelihood(
    mjd: np.ndarray, flux: np.ndarray, noise: np.ndarray, tau: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """Log-likelihood (up to a constant) of the nights under a damped random walk, for each ``(tau, sigma)`` pair.

    ``flux`` is taken about its inverse-variance weighted mean; ``tau`` and
    ``sigma`` are arrays of one shape (the grid), the result has that shape.
    """
    weights = 1.0 / noise**2
    y = flux - np.sum(weights * flux) / np.sum(weights)
    variance = np.asarray(sigma, dtype=np.float64) ** 2
    tau = np.asarray(tau, dtype=np.float64)
    state = np.zeros_like(variance)  # the walk's expected value at the next night
    state_var = variance.copy()  # and its variance
    loglik = np.zeros_like(variance)
    for i in range(len(y)):
        total = state_var + noise[i] ** 2
        residual = y[i] - state
        loglik -= 0.5 * (np.log(total) + residual * residual / total)
        gain = state_var / total
        state = state + gain * residual
        state_var = state_var * (1.0 - gain)
        if i + 1 < len(y):
            decay = np.exp(-(mjd[i + 1] - mjd[i]) / tau)
            state = decay * state
            state_var = variance * (1.0 - decay * decay) + decay * decay * state_var
    return loglik


def drw_features(nights: ObjectNights, aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:data:`DRW_FEATURE_NAMES` of one object, float64 (4,); NaN where undefined.

    ``aperture`` is the photometry radius the representation was built with
    (:class:`SequenceSettings`). The nights must be in time order, as the
    representation keeps them.
    """
    out = np.full(len(DRW_FEATURE_NAMES), np.nan)
    mjd, flux, noise = nights.light_curve(aperture)
    spread = float(np.std(flux)) if len(flux) else 0.0
    if len(flux) < _MIN_NIGHTS or not spread > 0:
        return out
    tau, sigma = np.meshgrid(_TAUS, _SIGMAS * spread, indexing="ij")
    loglik = drw_log_likelihood(mjd, flux, noise, tau, sigma)
    weights = 1.0 / noise**2
    y = flux - np.sum(weights * flux) / np.sum(weights)
    steady = -0.5 * float(np.sum(np.log(noise**2) + y * y / noise**2))
    best = np.unravel_index(int(np.argmax(loglik)), loglik.shape)
    out[0] = np.log10(_TAUS[best[0]])
    out[1] = np.log10(sigma[best] / np.median(noise))
    out[2] = (float(loglik[best]) - steady) / len(flux)
    profile = loglik.max(axis=1)
    out[3] = float(profile[_TAUS > _LONG].max() - profile[_TAUS < _SHORT].max())
    return out


def drw_feature_matrix(objects: Iterable[ObjectNights], aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:func:`drw_features` of each object of an iterable, float64 (n, 4)."""
    rows = [drw_features(obj, aperture) for obj in objects]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(DRW_FEATURE_NAMES))
