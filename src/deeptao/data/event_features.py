"""Six numbers on the shape of an object's brightest event: how often it recurs, how fast it rises and fades.

A supernova brightens once, over one to three weeks, and fades by a few
hundredths of a magnitude a day; a dwarf nova erupts within a day, fades by
tenths of a magnitude a day, and does it again months later; a quasar has
no event at all. The light-curve forest's MANTRA features describe the
distribution of the magnitudes, and the variability features
(:mod:`deeptao.data.variability_features`) the timescale of the changes over
the whole history; neither says what the one event looked like. On a
simulated survey the forest on light-curve, stamp and variability features
called 40 of 213 plainly drawn supernovae cataclysmic variables (27 with
these features as well).

Computed from the same forced photometry as the variability features
(:meth:`deeptao.data.representation.ObjectNights.aperture_photometry`, the
nightly co-adds at the centre, in units of the object's noise scale), with
the median night as the baseline and the brightest night as the peak:

- ``event_episodes``: how many separate brightenings: runs of nights more
  than 3 sigma above the baseline, a new one after a gap of over 60 days
  (0 for a steady source);
- ``event_peak_snr``: the peak night's excess over the baseline, in sigma;
- ``event_decline``, ``event_rise``: magnitudes a day by which the excess
  fades from the peak to the next night, and (read backwards) to the night
  before, if that night lies within 60 days; an excess below 5 % of the
  peak's counts as 5 % (3.25 mag), so a night after the event has ended
  gives a lower bound;
- ``event_duration``: days spanned by the run of nights around the peak
  (gaps under 60 days) whose excess stays above half the peak's;
- ``event_quiescent_snr``: the median signal-to-noise of the nights more
  than 60 days from every night above 3 sigma: the source out of its event
  (a host galaxy, a quiescent counterpart, or nothing).

NaN where undefined: the rates, the duration and the peak's shape when no
night lies 3 sigma above the baseline; a rate when no neighbouring night
lies within 60 days; the quiescent level with fewer than 3 quiet nights.
Every number is measured on the nights the network is given, before the
flips and rotations of training and prediction. None reveals the label.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from deeptao.data.representation import ObjectNights, SequenceSettings

__all__ = ["EVENT_FEATURE_NAMES", "event_features", "event_feature_matrix"]

EVENT_FEATURE_NAMES = (
    "event_episodes",
    "event_peak_snr",
    "event_decline",
    "event_rise",
    "event_duration",
    "event_quiescent_snr",
)

_SIGMA = 3.0  # a night this far above the baseline is part of an event
_GAP_DAYS = 60.0  # nights further apart belong to separate episodes (a season's gap is longer)
_FLOOR = 0.05  # an excess below this share of the peak's reads as this share in the rates
_MIN_QUIET = 3


def event_features(nights: ObjectNights, aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:data:`EVENT_FEATURE_NAMES` of one object, float64 (6,); NaN where undefined.

    ``aperture`` is the photometry radius the representation was built with
    (:class:`SequenceSettings`). The nights are in time order, as the
    representation keeps them.
    """
    out = np.full(len(EVENT_FEATURE_NAMES), np.nan)
    mjd, flux, noise = nights.light_curve(aperture)
    if len(flux) < 3:
        return out
    excess = flux - np.median(flux)
    z = excess / noise
    bright = np.flatnonzero(z > _SIGMA)
    out[0] = 0.0 if len(bright) == 0 else 1.0 + float(np.sum(np.diff(mjd[bright]) > _GAP_DAYS))
    peak = int(np.argmax(z))
    out[1] = z[peak]
    quiet = np.ones(len(flux), dtype=bool)
    for night in bright:
        quiet &= np.abs(mjd - mjd[night]) > _GAP_DAYS
    if quiet.sum() >= _MIN_QUIET:
        out[5] = float(np.median(flux[quiet] / noise[quiet]))
    if z[peak] <= _SIGMA:
        return out
    top = excess[peak]

    def fading(neighbour: int) -> float:
        """Magnitudes a day between the peak and a neighbouring night (NaN beyond the gap)."""
        days = abs(mjd[neighbour] - mjd[peak])
        if not 0.0 < days <= _GAP_DAYS:
            return np.nan
        return float(-2.5 * np.log10(max(excess[neighbour], _FLOOR * top) / top) / days)

    out[2] = fading(peak + 1) if peak + 1 < len(flux) else np.nan
    out[3] = fading(peak - 1) if peak >= 1 else np.nan
    first = last = peak
    half = 0.5 * top
    while first > 0 and mjd[first] - mjd[first - 1] < _GAP_DAYS and excess[first - 1] > half:
        first -= 1
    while last < len(flux) - 1 and mjd[last + 1] - mjd[last] < _GAP_DAYS and excess[last + 1] > half:
        last += 1
    out[4] = mjd[last] - mjd[first]
    return out


def event_feature_matrix(objects: Iterable[ObjectNights], aperture: float = SequenceSettings.aperture) -> np.ndarray:
    """:func:`event_features` of each object of an iterable, float64 (n, 6)."""
    rows = [event_features(obj, aperture) for obj in objects]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(EVENT_FEATURE_NAMES))
