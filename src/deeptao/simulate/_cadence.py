"""When a field was observed, and under which sky: the CRTS cadence.

CSS visits a field about four times in a night, some ten minutes apart, on
irregular nights; a field is observable for some seven months a year, never
near full moon and not in the Arizona monsoon. Each exposure also carries its
conditions (seeing, sky, transparency, pointing), shared by every cutout taken
from it, which is why a non-transient and its parent transient see the same
sky.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from ._config import SurveyConfig

__all__ = [
    "Exposures",
    "TILE_PX",
    "field_exposures",
    "date_code",
    "ut_date_float",
    "ymd",
    "tile_of",
    "zero_point",
]

_MJD0 = _dt.date(1858, 11, 17)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SYNODIC = 29.530589
_NEW_MOON_MJD = 51550.26  # 2000 January 6, 18:14 UT

#: side of one cutout tile of the 4k CCD in pixels (about 5 arcmin): 32 x 32 tiles
TILE_PX = 128
_N_TILES = 32


def ymd(mjd: float) -> tuple[int, int, int]:
    """UT calendar date of an MJD."""
    day = _MJD0 + _dt.timedelta(days=int(np.floor(mjd)))
    return day.year, day.month, day.day


def date_code(mjd: float) -> str:
    """'05APR06': the survey's YYMMMDD date of an exposure (UT)."""
    y, m, d = ymd(mjd)
    return f"{y % 100:02d}{_MONTHS[m - 1]}{d:02d}"


def ut_date_float(mjd: float) -> float:
    """20070320.37: the catalogue's UT date with the fraction of the day."""
    y, m, d = ymd(mjd)
    return round(y * 10000 + m * 100 + d + (mjd - np.floor(mjd)), 2)


def tile_of(ccd_xy: np.ndarray) -> np.ndarray:
    """(row, col) of the 1-based tile that holds each CCD position."""
    idx = np.floor(np.asarray(ccd_xy) / TILE_PX).astype(np.int64) + 1
    return np.clip(idx[..., ::-1], 1, _N_TILES)


@dataclass
class Exposures:
    """One row per exposure of a field, in time order, with its conditions."""

    mjd: np.ndarray  # float64, rounded to 1e-5 day like the release
    night: np.ndarray  # int64 UT night (floor of MJD)
    obs_in_seq: np.ndarray  # int, 1..exposures_per_night
    set_number: np.ndarray  # int, 1 for the main field, 2 for an overlapping one
    field_id: np.ndarray  # str
    ccd_xy: np.ndarray  # (n, 2) float: where the field's target fell on the CCD (x, y)
    fwhm: np.ndarray  # PSF FWHM in pixels
    sky: np.ndarray  # sky level per pixel (ADU)
    zp: np.ndarray  # magnitude giving 1 ADU in total (includes cloud)
    shift: np.ndarray  # (n, 2) astrometric offset of the cutout (pixels)
    bad: np.ndarray  # bool: exposure lost (its cutouts are constant)

    def __len__(self) -> int:
        return int(self.mjd.size)

    def take(self, idx: np.ndarray) -> Exposures:
        return Exposures(**{k: v[idx] for k, v in vars(self).items()})


def zero_point(cfg: SurveyConfig) -> float:
    """Zero point that puts the 5-sigma single-exposure limit at ``cfg.limiting_mag``.

    The limit is for a point source measured with a PSF-matched aperture at
    median seeing and sky: noise**2 = n_eff * (sky / gain + read_noise**2).
    """
    sigma = cfg.seeing_fwhm_px / 2.3548
    n_eff = 4.0 * np.pi * sigma**2
    noise = np.sqrt(n_eff * (cfg.sky_adu / cfg.gain + cfg.read_noise_adu**2))
    return float(cfg.limiting_mag + 2.5 * np.log10(5.0 * noise))


def _observable(nights: np.ndarray, ra: float, cfg: SurveyConfig) -> np.ndarray:
    # The Sun's right ascension advances ~0.9856 deg/day from 280.46 deg at J2000.
    sun_ra = (280.46 + 0.9856474 * (nights - 51544.5)) % 360.0
    sep = np.abs((ra - sun_ra + 180.0) % 360.0 - 180.0)
    ok = sep > cfg.season_gap_deg
    if cfg.moon_gap_days > 0:
        phase = ((nights + 0.3 - _NEW_MOON_MJD) / _SYNODIC) % 1.0
        ok &= np.abs(phase - 0.5) * _SYNODIC > cfg.moon_gap_days
    if cfg.monsoon:
        # Day of the year to within a day; 51544 is 2000 January 1.
        doy = (nights - 51544.0) % 365.2425 + 1.0
        ok &= ~((doy >= 186.0) & (doy <= 248.0))
    return ok


def _moon_light(nights: np.ndarray) -> np.ndarray:
    phase = ((nights + 0.3 - _NEW_MOON_MJD) / _SYNODIC) % 1.0
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))


def _field_name(ra: float, dec: float) -> str:
    band = min(99, int(abs(dec)) // 3 + 1)
    index = int(ra / 360.0 * 999.0) + 1
    return f"{'N' if dec >= 0 else 'S'}{band:02d}{index:03d}"


def field_exposures(rng: np.random.Generator, ra: float, dec: float, cfg: SurveyConfig,
                    *, t_centre: float, zp0: float) -> Exposures:
    """Every exposure of the field around (ra, dec), before and after ``t_centre``.

    The run of observations spans some months to years on both sides of the
    discovery epoch; nights are drawn from the observable ones with a
    season-to-season rate that varies, so coverage is irregular.
    """
    # Aim the main field at a log-normal number of exposures, leaving room for
    # duplicated cutouts and the occasional second set, so that the mean number
    # of images per object comes out near cfg.mean_images.
    mean_main = max(1.0, (cfg.mean_images - 4.5 * cfg.second_set_fraction)
                    / (1.0 + cfg.duplicate_rate) - 1.0)
    mu = np.log(mean_main) - 0.5 * cfg.images_log_sigma**2
    n_target = int(np.clip(np.exp(rng.normal(mu, cfg.images_log_sigma)),
                           cfg.min_images, cfg.max_images))

    before = rng.uniform(200.0, 1600.0)
    after = rng.uniform(120.0, 1400.0)
    start = max(cfg.survey_start_mjd, t_centre - before)
    end = min(cfg.survey_end_mjd, t_centre + after)
    if end - start < 400.0:  # near an end of the survey: widen on the other side
        if start <= cfg.survey_start_mjd:
            end = min(cfg.survey_end_mjd, start + 400.0)
        else:
            start = max(cfg.survey_start_mjd, end - 400.0)
    nights = np.arange(np.floor(start), np.floor(end) + 1.0)
    candidates = nights[_observable(nights, ra, cfg)]
    if candidates.size == 0:  # only with extreme settings (season_gap_deg near 180)
        candidates = nights
    # Each season (year of the field) gets its own observing rate: irregular
    # coverage. Nights are taken in a weighted random order (keys u**(1/w))
    # until the field has its exposures.
    season = np.floor((candidates - candidates[0]) / 365.25).astype(np.int64)
    rate = rng.gamma(2.0, 0.5, size=int(season[-1]) + 1) + 1e-3
    keys = rng.random(candidates.size) ** (1.0 / rate[season])
    ranked = candidates[np.argsort(-keys, kind="stable")]

    k = cfg.exposures_per_night
    spacing = cfg.exposure_spacing_min / 1440.0
    visits: list[tuple[float, np.ndarray]] = []
    count = 0
    for night in ranked:
        if count >= n_target:
            break
        slots = np.arange(k)
        if k > 1 and rng.random() < cfg.partial_visit_fraction:
            slots = np.sort(rng.choice(slots, size=int(rng.integers(1, k)), replace=False))
        visits.append((float(night), slots))
        count += slots.size
    visits.sort(key=lambda v: v[0])
    rows_mjd, rows_night, rows_seq = [], [], []
    for night, slots in visits:
        first = night + rng.uniform(0.10, 0.45)
        step = spacing * rng.uniform(0.8, 1.2)
        times = first + slots * step + rng.normal(0.0, 0.3 / 1440.0, slots.size)
        rows_mjd.append(times)
        rows_night.append(np.full(slots.size, night))
        rows_seq.append(slots + 1)
    mjd = np.concatenate(rows_mjd)
    night = np.concatenate(rows_night).astype(np.int64)
    seq = np.concatenate(rows_seq).astype(np.int64)
    setn = np.ones(mjd.size, dtype=np.int64)
    field = np.full(mjd.size, _field_name(ra, dec), dtype=object)

    # The field's target lands near one place on the CCD; pointing wanders a little.
    home = rng.uniform(300.0, 3800.0, size=2)
    uniq, inverse = np.unique(night, return_inverse=True)
    pointing = rng.normal(0.0, 40.0, size=(uniq.size, 2))[inverse]
    ccd = home + pointing + rng.normal(0.0, 1.5, size=(mjd.size, 2))

    if rng.random() < cfg.second_set_fraction:  # a few images from an overlapping field
        m = int(rng.integers(1, 9))
        extra_nights = rng.choice(candidates, size=m)
        extra = extra_nights + rng.uniform(0.10, 0.45, m)
        n_fields = int(rng.integers(1, 3))
        names = np.array([f"FC{rng.integers(1000, 3000):04d}" for _ in range(n_fields)],
                         dtype=object)
        mjd = np.concatenate([mjd, extra])
        night = np.concatenate([night, np.floor(extra).astype(np.int64)])
        seq = np.concatenate([seq, rng.integers(1, k + 1, m)])
        setn = np.concatenate([setn, np.full(m, 2)])
        field = np.concatenate([field, names[rng.integers(0, names.size, m)]])
        ccd = np.concatenate([ccd, rng.uniform(200.0, 3900.0, size=(m, 2))])

    order = np.argsort(mjd, kind="stable")
    mjd, night, seq, setn, field, ccd = (a[order] for a in (mjd, night, seq, setn, field, ccd))
    n = mjd.size

    # Conditions: seeing and sky per night (with a little drift), cloud some nights.
    uniq, inverse = np.unique(night, return_inverse=True)
    fwhm_night = cfg.seeing_fwhm_px * np.exp(rng.normal(0.0, cfg.seeing_log_sigma, uniq.size))
    fwhm = np.clip(fwhm_night[inverse] * np.exp(rng.normal(0.0, 0.05, n)), 1.0, 8.0)
    moon = _moon_light(uniq.astype(float))
    sky_night = (cfg.sky_adu * np.exp(rng.normal(0.0, cfg.sky_log_sigma, uniq.size))
                 * (0.85 + 0.6 * moon))
    sky = sky_night[inverse] * np.exp(rng.normal(0.0, 0.02, n))
    # Cloud: most cloudy nights lose a few tenths of a magnitude (an exponential
    # tail; thicker cloud stops the survey), patchy from exposure to exposure.
    cloudy = rng.random(uniq.size) < cfg.cloudy_fraction
    depth = np.minimum(rng.exponential(cfg.cloud_extinction_mag, uniq.size), 2.0)
    extinction = np.where(cloudy, depth, 0.0)[inverse]
    extinction = extinction * np.where(extinction > 0, rng.uniform(0.6, 1.4, n), 1.0)
    zp = zp0 - extinction + rng.normal(0.0, 0.02, n)
    shift = rng.normal(0.0, cfg.astrometric_jitter_px, size=(n, 2))
    # Now and then the cutout centre is off by more (a poor astrometric solution).
    big = rng.random(n) < cfg.centring_failure_fraction
    shift[big] += rng.normal(0.0, 1.5, size=(int(big.sum()), 2))
    bad = rng.random(n) < cfg.blank_fraction

    return Exposures(
        mjd=np.round(mjd, 5), night=night, obs_in_seq=seq, set_number=setn, field_id=field,
        ccd_xy=ccd, fwhm=fwhm, sky=sky, zp=zp, shift=shift, bad=bad,
    )
