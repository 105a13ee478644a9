"""What is in a cutout and how bright it is at each exposure.

Each class is a physical model, never a painted label: a supernova is a new
point source near a host galaxy that rises and fades; an AGN a galaxy nucleus
that wanders in brightness (damped random walk); a blazar a point source with
large stochastic variability and flares; a cataclysmic variable a faint or
invisible star with recurrent outbursts; OTHER a mix of high-proper-motion
stars, flares, variables, asteroids and unexplained brightenings; a
non-transient a steady source. Every model is normalised so that the object is
at its catalogue discovery magnitude on its discovery night.

Positions are offsets in pixels from the cutout centre (the object's
catalogue position); magnitudes are ``inf`` where a source gives no light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._config import SurveyConfig

__all__ = [
    "PointSource",
    "Galaxy",
    "Scene",
    "transient_scene",
    "non_transient_scene",
    "field_sources",
]

_DAY_PER_YEAR = 365.25


@dataclass
class PointSource:
    x: np.ndarray  # (n,) offset from the cutout centre, pixels
    y: np.ndarray
    mag: np.ndarray  # (n,) inf = no light


@dataclass
class Galaxy:
    x: float
    y: float
    mag: float
    cov: np.ndarray  # (2, 2) intrinsic light distribution (Gaussian), pixels**2


@dataclass
class Scene:
    """The target of one cutout (plus its host), and the truth behind it."""

    points: list[PointSource] = field(default_factory=list)
    galaxies: list[Galaxy] = field(default_factory=list)
    t_disc: float = float("nan")
    m_disc: float = float("nan")
    kind: str = ""
    truth: dict[str, Any] = field(default_factory=dict)


# --- helpers ---------------------------------------------------------------

def _flux(mag: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, -0.4 * np.asarray(mag, dtype=float))


def _mag(flux: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(flux > 0, -2.5 * np.log10(np.maximum(flux, 1e-300)), np.inf)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _night_starts(t: np.ndarray) -> np.ndarray:
    """Time of the first exposure of each night, ascending."""
    nights = np.floor(t)
    _, first = np.unique(nights, return_index=True)
    return np.sort(t[first])


def _middle_night(t: np.ndarray, rng: np.random.Generator) -> float:
    """A discovery night away from the ends of the record (pre- and post-discovery images)."""
    starts = _night_starts(t)
    lo, hi = int(0.15 * starts.size), int(np.ceil(0.85 * starts.size))
    return float(starts[rng.integers(lo, max(hi, lo + 1))])


def _brightest_night(t: np.ndarray, mag: np.ndarray, rng: np.random.Generator) -> float:
    """Discovery on one of the three brightest nights: how a variable gets flagged."""
    starts = _night_starts(t)
    at = np.searchsorted(t, starts)
    order = np.argsort(mag[at], kind="stable")
    return float(starts[order[rng.integers(0, min(3, order.size))]])


def _value_at(t: np.ndarray, values: np.ndarray, when: float) -> float:
    return float(values[int(np.argmin(np.abs(t - when)))])


def _drw(t: np.ndarray, tau: float, sf_inf: float, rng: np.random.Generator) -> np.ndarray:
    """Damped random walk (Ornstein-Uhlenbeck) in magnitude, exact at uneven times."""
    sigma = sf_inf / np.sqrt(2.0)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    out = np.empty(ts.size)
    out[0] = rng.normal(0.0, sigma)
    decay = np.exp(-np.diff(ts) / tau)
    kicks = rng.normal(0.0, 1.0, ts.size - 1) * sigma * np.sqrt(1.0 - decay**2)
    for i in range(1, ts.size):
        out[i] = out[i - 1] * decay[i - 1] + kicks[i - 1]
    result = np.empty_like(out)
    result[order] = out
    return result


def _galaxy_cov(rng: np.random.Generator, size_lo: float, size_hi: float) -> np.ndarray:
    major = _loguniform(rng, size_lo, size_hi)
    minor = major * rng.uniform(0.35, 1.0)
    angle = rng.uniform(0.0, np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rot @ np.diag([major**2, minor**2]) @ rot.T


def _steady(t: np.ndarray, mag: float, x: float = 0.0, y: float = 0.0) -> PointSource:
    n = t.size
    return PointSource(np.full(n, x), np.full(n, y), np.full(n, mag))


# --- transients -----------------------------------------------------------

def _supernova(t: np.ndarray, m_disc: float, rng: np.random.Generator, amb: bool,
               cfg: SurveyConfig) -> Scene:
    if amb:  # slow interacting SNe look like AGN; fast ones like CV outbursts
        kind = str(rng.choice(["IIn", "fast"]))
    else:
        kind = str(rng.choice(["Ia", "II-P", "IIn"], p=[0.65, 0.27, 0.08]))
    # rise to peak (d), decline (mag/d) until a break (d after peak), later decline
    # (mag/d), and the drop off a plateau (mag, over 20 d)
    u = rng.uniform
    rise, slope1, t_break, slope2, drop = {
        "Ia": lambda: (u(14, 20), u(0.04, 0.07), 30.0, u(0.010, 0.016), 0.0),
        "II-P": lambda: (u(5, 12), u(0.0, 0.012), u(70, 110), u(0.008, 0.012), u(1.5, 2.5)),
        "IIn": lambda: (u(20, 50), u(0.004, 0.012), u(150, 300), u(0.01, 0.02), 0.0),
        "fast": lambda: (u(2, 6), u(0.08, 0.16), 20.0, u(0.02, 0.04), 0.0),
    }[kind]()

    def delta(tau: np.ndarray) -> np.ndarray:
        """Magnitudes below peak at time ``tau`` after explosion (inf before)."""
        tau = np.asarray(tau, dtype=float)
        out = np.full(tau.shape, np.inf)
        rising = (tau > 0) & (tau < rise)
        out[rising] = -2.5 * np.log10((tau[rising] / rise) ** 2)
        after = tau >= rise
        s = tau[after] - rise
        d = slope1 * np.minimum(s, t_break) + slope2 * np.maximum(s - t_break, 0.0)
        d += drop * np.clip((s - t_break) / 20.0, 0.0, 1.0)
        out[after] = d
        return out

    t_disc = _middle_night(t, rng)
    phase = rng.uniform(0.45 * rise, rise + 30.0)  # discovered on the rise or after peak
    t_expl = t_disc - phase
    m_peak = m_disc - float(delta(np.array([phase]))[0])
    mag = m_peak + delta(t - t_expl)
    scene = Scene(t_disc=t_disc, m_disc=m_disc, kind=kind)
    scene.points.append(PointSource(np.zeros(t.size), np.zeros(t.size), mag))
    if rng.random() < (0.5 if amb else 0.85):
        cov = _galaxy_cov(rng, 0.8, 3.0)
        r = abs(rng.normal(0.0, 0.9)) * np.sqrt(np.trace(cov) / 2.0)
        a = rng.uniform(0, 2 * np.pi)
        # Hosts are mostly fainter than the discovery (the survey notes 'SDSS mag
        # 20,5' or '>22' beside discoveries near 19): CRTS, comparing catalogues
        # without image subtraction, finds a SN when it outshines its host.
        m_host = float(np.clip(m_disc + rng.normal(1.5, 0.9), 15.5, 22.5))
        scene.galaxies.append(Galaxy(r * np.cos(a), r * np.sin(a), m_host, cov))
        scene.truth["host_mag"] = m_host
    scene.truth.update(t_explosion=t_expl, m_peak=m_peak, rise_days=rise)
    return scene


def _agn(t: np.ndarray, m_disc: float, rng: np.random.Generator, amb: bool,
         cfg: SurveyConfig) -> Scene:
    # Observed-frame damping times of quasars: a few hundred days (rest frame ~200 d).
    tau = float(np.clip(np.exp(rng.normal(np.log(500.0), 0.5)), 20.0, 3000.0))
    sf = cfg.amplitude_scale * float(np.exp(rng.normal(np.log(0.45), 0.3)))
    # Ambiguous nuclei: nearly quiet, blazar-like, or flagged for one slow flare
    # of months (the 'SN/AGN?' nuclear transients).
    mode = str(rng.choice(["quiet", "wild", "flare"])) if amb else "walk"
    if mode != "walk":
        sf *= {"quiet": 0.4, "wild": 2.2, "flare": 0.5}[mode]
    # The survey flags a known nucleus only when it is caught well above its usual
    # level: of the histories this walk could have had, take one that reaches such
    # a high state (or the highest of those tried).
    rise = cfg.amplitude_scale * rng.uniform(0.4, 0.8)
    best, best_rise = None, -np.inf
    for _ in range(30):
        walk = _drw(t, tau, sf, rng)
        excursion = float(np.median(walk) - walk.min())
        if excursion > best_rise:
            best, best_rise = walk, excursion
        if excursion >= rise:
            break
    walk = best
    if mode == "flare":
        t_disc = _middle_night(t, rng)
        width = rng.uniform(30.0, 120.0)
        bump = (10 ** (0.4 * cfg.amplitude_scale * rng.uniform(0.8, 1.5)) - 1.0) * np.exp(
            -0.5 * ((t - t_disc - rng.normal(0.0, 0.3 * width)) / width) ** 2)
        walk = _mag(_flux(walk) + bump)
    else:
        t_disc = _brightest_night(t, walk, rng)
    mag = m_disc - _value_at(t, walk, t_disc) + walk
    scene = Scene(t_disc=t_disc, m_disc=m_disc, kind="Seyfert/QSO")
    scene.points.append(PointSource(np.zeros(t.size), np.zeros(t.size), mag))
    if rng.random() < 0.8:
        # The host is fainter than the flagged nucleus ('AGN SDSS 22,1 mag Galaxy'
        # beside a discovery near 19.5); a bright host would hide the variability.
        m_host = float(np.clip(m_disc + rng.normal(1.5, 0.8), 15.5, 22.5))
        off = rng.normal(0.0, 0.15, 2)
        cov = _galaxy_cov(rng, 0.8, 2.2)
        scene.galaxies.append(Galaxy(float(off[0]), float(off[1]), m_host, cov))
        scene.truth["host_mag"] = m_host
    scene.truth.update(tau_days=tau, sf_inf=sf, mode=mode)
    return scene


def _blazar(t: np.ndarray, m_disc: float, rng: np.random.Generator, amb: bool,
            cfg: SurveyConfig) -> Scene:
    # A faint, restless jet (damped random walk in magnitude) with flares of days
    # to weeks on top; the survey catches one flare, a magnitude or more above the
    # usual level, and most of the record shows the fainter, noisier source.
    tau = float(np.clip(np.exp(rng.normal(np.log(60.0), 0.6)), 5.0, 1500.0))
    sf = cfg.amplitude_scale * float(np.exp(rng.normal(np.log(0.5 if not amb else 0.3), 0.3)))
    flux = _flux(_drw(t, tau, sf, rng))
    span = float(t.max() - t.min())
    t_disc = _middle_night(t, rng)
    lo, hi = (0.4, 1.0) if amb else (0.7, 2.0)
    flares = [(t_disc - rng.uniform(0.0, 8.0), rng.uniform(lo, hi))]
    for _ in range(int(rng.poisson(span / 400.0))):
        flares.append((rng.uniform(t.min(), t.max()), rng.uniform(0.3, hi)))
    for t0, amp_mag in flares:
        amp = 10 ** (0.4 * cfg.amplitude_scale * amp_mag) - 1.0
        up, down = rng.uniform(2.0, 10.0), rng.uniform(5.0, 30.0)
        dt = t - t0
        flux = flux + amp * np.where(dt < 0, np.exp(np.clip(dt, -50 * up, 0.0) / up),
                                     np.exp(-np.maximum(dt, 0) / down))
    rel = _mag(flux)
    mag = m_disc - _value_at(t, rel, t_disc) + rel
    scene = Scene(t_disc=t_disc, m_disc=m_disc, kind="blazar")
    scene.points.append(PointSource(np.zeros(t.size), np.zeros(t.size), mag))
    if rng.random() < (0.5 if amb else 0.15):
        m_host = float(np.clip(m_disc + rng.uniform(0.5, 3.0), 15.5, 22.5))
        scene.galaxies.append(Galaxy(0.0, 0.0, m_host, _galaxy_cov(rng, 0.8, 1.8)))
        scene.truth["host_mag"] = m_host
    scene.truth.update(tau_days=tau, sf_inf=sf, n_flares=len(flares))
    return scene


def _cv(t: np.ndarray, m_disc: float, rng: np.random.Generator, amb: bool,
        cfg: SurveyConfig) -> Scene:
    # Ambiguous: a WZ Sge-like system caught in its one long superoutburst of the
    # decade, weeks of slow decline that look like a supernova.
    amplitude = cfg.amplitude_scale * (rng.uniform(2.5, 5.0) if amb else rng.uniform(2.0, 6.0))
    m_peak = m_disc - rng.uniform(0.0, 0.4)
    m_q = m_peak + amplitude
    # CVs new to CRTS are mostly faint, short-period systems that outburst
    # seldom (months to years), not the frequent outbursters known before.
    recurrence = (rng.uniform(700.0, 3000.0) if amb
                  else float(np.clip(np.exp(rng.normal(np.log(200.0), 0.8)), 10.0, 3000.0)))
    t_disc = _middle_night(t, rng)

    def outburst(t0: float, peak: float) -> np.ndarray:
        rise = rng.uniform(0.5, 1.5)
        superoutburst = amb or rng.random() < 0.35  # long, bright: often what gets caught
        if amb:
            plateau, p_slope = rng.uniform(15.0, 25.0), rng.uniform(0.08, 0.15)
        elif superoutburst:
            plateau, p_slope = rng.uniform(8.0, 14.0), rng.uniform(0.05, 0.12)
        else:
            plateau, p_slope = rng.uniform(0.5, 5.0), rng.uniform(0.0, 0.08)
        decline = rng.uniform(0.4, 1.0)
        peak = peak - (0.5 if superoutburst else 0.0)
        tau = t - t0
        m = np.full(t.size, np.inf)
        a = (tau >= 0) & (tau < rise)
        m[a] = peak + (m_q - peak) * (1.0 - tau[a] / rise)
        b = (tau >= rise) & (tau < rise + plateau)
        m[b] = peak + p_slope * (tau[b] - rise)
        c = tau >= rise + plateau
        m[c] = peak + p_slope * plateau + decline * (tau[c] - rise - plateau)
        return m

    # The discovery outburst: on the rise, plateau or early decline at t_disc.
    mags = [m_q + rng.normal(0.0, 0.1, t.size)]  # quiescence with flickering
    first = outburst(t_disc - rng.uniform(0.7, 3.0), m_peak)
    mags.append(first)
    n_outbursts = 1
    for direction in (-1.0, 1.0):
        when = t_disc + direction * recurrence * np.exp(rng.normal(0.0, 0.25))
        while t.min() - 20.0 <= when <= t.max():
            mags.append(outburst(when, m_peak + rng.normal(0.0, 0.3)))
            n_outbursts += 1
            when += direction * recurrence * np.exp(rng.normal(0.0, 0.25))
    mag = np.min(np.vstack(mags), axis=0)
    # Normalise: the discovery exposure is at the catalogue magnitude.
    offset = m_disc - _value_at(t, mag, t_disc)
    scene = Scene(t_disc=t_disc, m_disc=m_disc, kind="dwarf nova")
    scene.points.append(PointSource(np.zeros(t.size), np.zeros(t.size), mag + offset))
    scene.truth.update(quiescent_mag=m_q + offset, amplitude=amplitude,
                       recurrence_days=recurrence, n_outbursts=n_outbursts)
    return scene


def _other(t: np.ndarray, m_disc: float, rng: np.random.Generator, amb: bool,
           cfg: SurveyConfig, kind: str) -> Scene:
    scene = Scene(m_disc=m_disc, kind=kind)
    n = t.size
    if kind == "hpm":
        pm = _loguniform(rng, 0.08, 0.2) if amb else _loguniform(rng, 0.2, 2.0)  # pixels / year
        angle = rng.uniform(0, 2 * np.pi)
        t_disc = _middle_night(t, rng)
        years = (t - t_disc) / _DAY_PER_YEAR
        mag = m_disc + rng.normal(0.0, 0.02, n)
        dx, dy = pm * np.cos(angle) * years, pm * np.sin(angle) * years
        scene.points.append(PointSource(dx, dy, mag))
        scene.truth.update(pm_px_per_year=pm)
    elif kind == "flare":
        amplitude = rng.uniform(0.5, 1.5) if amb else rng.uniform(1.0, 5.0)
        m_q = m_disc + amplitude
        t_disc = _middle_night(t, rng)
        flux = np.full(n, _flux(m_q))
        peaks = [(t_disc - rng.uniform(0.0, 0.01), _flux(m_disc) - _flux(m_q))]
        for _ in range(int(rng.poisson((t.max() - t.min()) / 150.0))):
            a = _flux(m_q) * (10 ** (0.4 * rng.uniform(0.3, 3.0)) - 1.0)
            peaks.append((rng.uniform(t.min(), t.max()), a))
        for t0, a in peaks:
            decay = _loguniform(rng, 0.005, 0.08)
            dt = t - t0
            flux = flux + a * np.where(dt >= 0, np.exp(-np.maximum(dt, 0) / decay),
                                       np.exp(np.clip(dt, -1.0, 0.0) / 0.0007))
        mag = _mag(flux)
        mag = mag + (m_disc - _value_at(t, mag, t_disc))
        scene.points.append(PointSource(np.zeros(n), np.zeros(n), mag))
        scene.truth.update(quiescent_mag=m_q)
    elif kind == "moving":
        t_disc = _middle_night(t, rng)
        speed = _loguniform(rng, 5.0, 150.0)  # pixels per day
        angle = rng.uniform(0, 2 * np.pi)
        dt = t - t_disc
        start = rng.normal(0.0, 1.0, 2)
        same_night = np.floor(t) == np.floor(t_disc)
        mag = np.where(same_night, m_disc + rng.normal(0.0, 0.05, n), np.inf)
        scene.points.append(PointSource(start[0] + speed * np.cos(angle) * dt,
                                        start[1] + speed * np.sin(angle) * dt, mag))
        scene.truth.update(speed_px_per_day=speed)
    elif kind == "variable":
        sub = str(rng.choice(["mira", "rrlyr", "yso"], p=[0.4, 0.3, 0.3]))
        s = cfg.amplitude_scale
        if sub == "mira":
            period = rng.uniform(150.0, 500.0)
            amp = s * (rng.uniform(0.8, 1.5) if amb else rng.uniform(1.5, 5.0))
            phase = ((t - rng.uniform(0, period)) / period) % 1.0
            rel = 0.5 * amp * np.sin(2 * np.pi * phase) + 0.1 * amp * np.sin(4 * np.pi * phase)
            scene.truth.update(period_days=period)
        elif sub == "rrlyr":
            period = rng.uniform(0.45, 0.7)
            amp = s * rng.uniform(0.5, 1.2)
            phase = ((t - rng.uniform(0, period)) / period) % 1.0
            rel = np.where(phase < 0.15, 0.5 * amp - amp * phase / 0.15,
                           -0.5 * amp + amp * (phase - 0.15) / 0.85)
            scene.truth.update(period_days=period)
        else:
            rel = _drw(t, rng.uniform(5.0, 50.0), s * rng.uniform(0.3, 1.0), rng)
            for _ in range(int(rng.poisson(2.0))):  # dust dips
                t0 = rng.uniform(t.min(), t.max())
                width, depth = rng.uniform(5, 30), rng.uniform(0.5, 2)
                rel = rel + depth * np.exp(-0.5 * ((t - t0) / width) ** 2)
        t_disc = _brightest_night(t, rel, rng)
        mag = m_disc - _value_at(t, rel, t_disc) + rel
        scene.points.append(PointSource(np.zeros(n), np.zeros(n), mag))
        scene.kind = sub
    else:  # "unknown": a brief brightening of a faint or invisible source
        m_base = m_disc + rng.uniform(1.5, 4.0)
        t_disc = _middle_night(t, rng)
        flux = np.full(n, _flux(m_base))
        events = [(t_disc - rng.normal(0.0, 1.0), _loguniform(rng, 0.3, 30.0))]
        if rng.random() < 0.3:
            events.append((rng.uniform(t.min(), t.max()), _loguniform(rng, 0.3, 30.0)))
        for t0, width in events:
            flux = flux + _flux(m_disc) * np.exp(-0.5 * ((t - t0) / width) ** 2)
        mag = _mag(flux)
        mag = mag + (m_disc - _value_at(t, mag, t_disc))
        scene.points.append(PointSource(np.zeros(n), np.zeros(n), mag))
        scene.truth.update(base_mag=m_base)
    scene.t_disc = t_disc
    return scene


def transient_scene(physical: str, kind: str | None, t: np.ndarray, m_disc: float,
                    rng: np.random.Generator, cfg: SurveyConfig, *, ambiguous: bool) -> Scene:
    """The target of a transient's cutout, discovered at ``m_disc`` on an observed night."""
    t = np.asarray(t, dtype=float)
    if physical == "SN":
        scene = _supernova(t, m_disc, rng, ambiguous, cfg)
    elif physical == "AGN":
        scene = _agn(t, m_disc, rng, ambiguous, cfg)
    elif physical == "BZ":
        scene = _blazar(t, m_disc, rng, ambiguous, cfg)
    elif physical == "CV":
        scene = _cv(t, m_disc, rng, ambiguous, cfg)
    elif physical == "OTHER":
        scene = _other(t, m_disc, rng, ambiguous, cfg, kind or "unknown")
    else:
        raise ValueError(f"unknown transient class {physical!r}")
    scene.truth["ambiguous"] = bool(ambiguous)
    return scene


def non_transient_mag(rng: np.random.Generator) -> float:
    """A source picked on a reference image: star counts rise towards faint magnitudes.

    They stop at 19.5, where one exposure still detects a source at S/N ~6: a
    non-transient is a source of the survey's own photometric catalogue.
    """
    lo, hi, slope = 13.0, 19.5, 0.25 * np.log(10.0)
    u = rng.random()
    return float(np.log(np.exp(slope * lo) + u * (np.exp(slope * hi) - np.exp(slope * lo))) / slope)


def non_transient_scene(t: np.ndarray, mag: float, rng: np.random.Generator,
                        cfg: SurveyConfig) -> Scene:
    """A steady source (star, now and then a compact galaxy) at the cutout centre."""
    t = np.asarray(t, dtype=float)
    n = t.size
    scene = Scene(m_disc=mag, kind="star")
    rel = rng.normal(0.0, 0.01, n)
    if rng.random() < cfg.non_variable_fraction:
        tau, sf = rng.uniform(10.0, 300.0), cfg.amplitude_scale * rng.uniform(0.05, 0.2)
        rel = rel + _drw(t, tau, sf, rng)
        scene.kind = "low-amplitude variable"
    if rng.random() < 0.15 and scene.kind == "star":
        scene.galaxies.append(Galaxy(0.0, 0.0, mag, _galaxy_cov(rng, 0.8, 1.8)))
        scene.kind = "galaxy"
    else:
        scene.points.append(PointSource(np.zeros(n), np.zeros(n), mag + rel))
    return scene


def field_sources(rng: np.random.Generator, n: int, cfg: SurveyConfig, *,
                  keep_clear: float = 2.5) -> tuple[list[PointSource], list[Galaxy]]:
    """Stars and galaxies of the surrounding field (fixed on the sky)."""
    half = 40.0  # cutout half-size plus a margin whose light spills in
    lo, hi, slope = 12.0, 21.5, 0.3 * np.log(10.0)
    stars: list[PointSource] = []
    for _ in range(int(rng.poisson(cfg.field_star_density * (2 * half / 64.0) ** 2))):
        x, y = rng.uniform(-half, half, 2)
        if np.hypot(x, y) < keep_clear:
            continue
        u = rng.random()
        m = np.log(np.exp(slope * lo) + u * (np.exp(slope * hi) - np.exp(slope * lo))) / slope
        stars.append(PointSource(np.full(n, x), np.full(n, y), np.full(n, m)))
    galaxies: list[Galaxy] = []
    for _ in range(int(rng.poisson(cfg.galaxy_density * (2 * half / 64.0) ** 2))):
        x, y = rng.uniform(-half, half, 2)
        if np.hypot(x, y) < keep_clear + 2:
            continue
        galaxies.append(Galaxy(float(x), float(y), float(rng.uniform(17.5, 21.5)),
                               _galaxy_cov(rng, 0.8, 2.5)))
    return stars, galaxies
