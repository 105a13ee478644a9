"""What the networks see: each object as a sequence of nightly co-adds, a reference and per-night scalars.

One representation serves every sequence network, in training and in
``predict``, so a model never sees in production something shaped
differently from what it learnt on. It is built from the raw counts in five
steps, each for a reason:

1. **Exposures that count.** Blank images and duplicate cutouts of one
   exposure are left out (:mod:`deeptao.io`'s rules); a pixel at 0 is off the
   chip and carries no weight.
2. **Sky out, one noise scale per object.** Each image loses its own sky level
   (median of a 2 x 2-subsampled image), because the sky changes from night to
   night, but all images of an object are divided by *one* noise scale, the
   median of their robust sky noises (1.4826 x MAD). Dividing each image by
   its own noise, as per-image standardisation does, makes a steady star's
   scaled flux follow the sky brightness: fake variability of about 0.1 mag,
   as large as an AGN's. Here relative flux between epochs is what it was.
3. **Nightly co-adds.** CRTS takes about four exposures of a field a night;
   their inverse-variance weighted mean (weights from each image's sky noise)
   is one time step. It doubles the signal-to-noise of every night, as the
   light-curve forest's nightly binning does, and keeps *every* night: a
   supernova or outburst is often above 5 sigma on two or three nights only.
4. **A reference and a difference.** The reference is the per-pixel median
   of the nightly co-adds: the steady scene (host, field stars), robust to an
   event present on a minority of nights. ``co-add - reference`` shows what
   changed: a new point source, a brightening nucleus, the dipole a moving
   star leaves. The release holds raw science cutouts, not difference images,
   so the difference must be built from the object's own sequence.
5. **Per-night scalars** (:data:`SCALAR_NAMES`): forced aperture photometry at
   the centre of the co-add and of the difference, in units of one exposure's
   aperture noise; the night's noise relative to the object's; the log time
   gap to the previous night; the number of exposures that night.
6. **What changed within a night.** The co-add averages a visit's exposures,
   some ten minutes apart, and with them what happens in half an hour: a
   stellar flare decaying in minutes, an asteroid crossing the aperture, an
   RR Lyrae star rising. Before averaging, each exposure's forced photometry
   gives two numbers per night (:attr:`ObjectNights.intra_chi2`,
   :attr:`ObjectNights.intra_slope`): the scatter of the exposures about
   their mean and the significance of a straight-line trend through them.

Pixels are kept linear (sky-subtracted counts over the object's noise scale)
in the central ``crop`` x ``crop`` square: the object sits at the centre of
every cutout, and the outer field mostly says which field this is. The
networks compress them with :func:`compress` (asinh), which leaves noise
linear and keeps bright stars in range.

:func:`object_nights` builds one object; :func:`build_sequences` builds the
whole prepared cache once into ``CACHE/sequences/`` (streamed, resumable in
the sense that a complete store with the same key is reused) and
:class:`SequenceStore` reads it back, memory-mapped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeptao.io import NIGHT_GAP_DAYS, assign_nights, counted_exposures

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = [
    "SequenceSettings",
    "ObjectNights",
    "SCALAR_NAMES",
    "SCALAR_MEANINGS",
    "object_nights",
    "compress",
    "build_sequences",
    "open_sequences",
    "SequenceStore",
    "SEQUENCES_DIR",
]

SEQUENCES_DIR = "sequences"
_FORMAT_VERSION = 3  # 2: the intra-night scatter and trend of each night; 3: the exposures they used
_MAD_TO_SIGMA = 1.4826

#: what each per-night scalar holds (an exported model's card quotes these)
SCALAR_MEANINGS = {
    "flux": "asinh(aperture flux of the co-add / one exposure's aperture noise)",
    "diff_flux": "asinh(aperture flux of co-add - reference / that night's aperture noise)",
    "log_noise": "log(the night's co-add noise / one exposure's noise)",
    "log_gap": "log1p(days since the previous night), 0 for the first",
    "exposures": "exposures co-added that night / 4",
}
#: per-night scalars, in this order along the last axis of :attr:`ObjectNights.scalars`
SCALAR_NAMES = tuple(SCALAR_MEANINGS)


@dataclass(frozen=True)
class SequenceSettings:
    """How the representation is built; part of every saved model, so prediction rebuilds it alike.

    Parameters
    ----------
    crop : int, default=32
        Side of the central square kept, in pixels (even, 8..64).
    aperture : float, default=3.0
        Radius of the forced-photometry aperture, pixels (as the forest's).
    night_gap : float, default=0.5
        Exposures closer than this many days make one night.
    """

    crop: int = 32
    aperture: float = 3.0
    night_gap: float = NIGHT_GAP_DAYS

    def __post_init__(self) -> None:
        if not isinstance(self.crop, int) or not 8 <= self.crop <= 64 or self.crop % 2:
            raise ValueError(f"crop must be an even int in [8, 64], got {self.crop!r}")
        if not 0 < self.aperture < self.crop / 2:
            raise ValueError(f"aperture must be in (0, crop/2), got {self.aperture!r}")
        if not self.night_gap > 0:
            raise ValueError(f"night_gap must be > 0 days, got {self.night_gap!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ObjectNights:
    """One object in the networks' representation.

    Attributes
    ----------
    coadd : float32 (n_nights, crop, crop)
        Sky-subtracted nightly co-adds in units of the object's noise scale.
    reference : float32 (crop, crop)
        Per-pixel median of the co-adds (zeros for an object with no usable image).
    mjd : float64 (n_nights,)
        Mean MJD of each night's exposures.
    night_noise : float32 (n_nights,)
        Noise of one co-add pixel in units of the object's noise scale.
    exposures : int64 (n_nights,)
        Exposures co-added each night.
    noise : float
        The object's noise scale in ADU (median sky noise of one exposure).
    intra_chi2 : float32 (n_nights,)
        Reduced chi-square of the night's exposures' aperture fluxes about
        their weighted mean, each in units of its noise (the sky's and the
        source's own photon noise, the gain estimated from the sky); about 1
        when nothing changed within the night and nothing else scatters it;
        NaN for a night with fewer than two exposures whose aperture lies
        wholly on the chip. Clouds, zero-point jitter and pointing still
        scatter a bright steady star well above 1: compare a night with the
        object's other nights.
    intra_slope : float32 (n_nights,)
        Significance (slope over its standard error) of a weighted straight
        line through the same fluxes against time: negative for a fading
        flare; NaN where ``intra_chi2`` is.
    intra_used : int64 (n_nights,)
        Exposures behind ``intra_chi2`` and ``intra_slope``: those of the
        night whose aperture lies wholly on the chip (at most ``exposures``).
        ``intra_chi2`` and ``intra_slope`` default to NaN (no exposure-level
        information) and ``intra_used`` to ``exposures``, for objects built
        by hand.
    """

    coadd: np.ndarray
    reference: np.ndarray
    mjd: np.ndarray
    night_noise: np.ndarray
    exposures: np.ndarray
    noise: float
    intra_chi2: np.ndarray | None = None
    intra_slope: np.ndarray | None = None
    intra_used: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.mjd)
        if self.intra_chi2 is None:
            self.intra_chi2 = np.full(n, np.nan, np.float32)
        if self.intra_slope is None:
            self.intra_slope = np.full(n, np.nan, np.float32)
        if self.intra_used is None:
            self.intra_used = np.asarray(self.exposures, dtype=np.int64).copy()

    def __len__(self) -> int:
        return len(self.mjd)

    def first_nights(self, k: int) -> ObjectNights:
        """The object as known after its first ``k`` nights: the reference is rebuilt from those alone."""
        if k < 1:
            raise ValueError(f"need at least one night, got {k!r}")
        return self if k >= len(self) else self.night_range(0, k)

    def night_range(self, start: int, stop: int) -> ObjectNights:
        """The object as seen over nights ``start`` to ``stop - 1`` only: the reference is rebuilt from those alone."""
        if not 0 <= start < stop <= len(self):
            raise ValueError(f"need 0 <= start < stop <= {len(self)}, got {start}, {stop}")
        sl = slice(start, stop)
        coadd = self.coadd[sl]
        return ObjectNights(
            coadd, _reference(coadd), self.mjd[sl], self.night_noise[sl], self.exposures[sl], self.noise,
            self.intra_chi2[sl], self.intra_slope[sl], self.intra_used[sl],
        )  # fmt: skip

    def aperture_photometry(self, aperture: float = SequenceSettings.aperture) -> tuple[np.ndarray, np.ndarray, float]:
        """Forced photometry at the centre: each night's aperture flux, its noise, and the reference's flux.

        All in units of the object's noise scale, float64; the flux of a steady
        source is the same every night whatever the sky did.
        """
        ap = _aperture(self.coadd.shape[-1], aperture)
        flux = np.einsum("nij,ij->n", self.coadd, ap, dtype=np.float64)
        flux_noise = _aperture_noise(self.coadd.shape[-1], aperture) * self.night_noise.astype(np.float64)
        return flux, flux_noise, float((self.reference * ap).sum())

    def light_curve(self, aperture: float = SequenceSettings.aperture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`aperture_photometry` as a light curve: ``(mjd, flux, noise)`` of the nights with a finite flux and a positive noise, float64."""
        flux, noise, _ = self.aperture_photometry(aperture)
        usable = np.isfinite(flux) & np.isfinite(noise) & (noise > 0)
        return np.asarray(self.mjd, dtype=np.float64)[usable], flux[usable], noise[usable]

    def scalars(self, aperture: float = SequenceSettings.aperture) -> np.ndarray:
        """Per-night scalars (:data:`SCALAR_NAMES`), float32 (n_nights, 5)."""
        flux, flux_noise, reference_flux = self.aperture_photometry(aperture)
        noise = self.night_noise.astype(np.float64)
        gaps = np.diff(self.mjd, prepend=self.mjd[:1]) if len(self.mjd) else self.mjd
        return np.column_stack(
            [
                np.arcsinh(flux / _aperture_noise(self.coadd.shape[-1], aperture)),
                np.arcsinh((flux - reference_flux) / flux_noise),
                np.log(noise),
                np.log1p(np.clip(gaps, 0.0, None)),
                self.exposures / 4.0,
            ]
        ).astype(np.float32).reshape(len(self.mjd), len(SCALAR_NAMES))


def compress(x: np.ndarray) -> np.ndarray:
    """asinh: linear within the noise, logarithmic for bright stars."""
    return np.arcsinh(x)


# --------------------------------------------------------------------------- one object


@functools.lru_cache(maxsize=8)
def _aperture(crop: int, radius: float) -> np.ndarray:
    """Fraction of each pixel inside a circle at the crop's centre (8 x 8 sub-pixels); read-only."""
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    c = (crop - 1) / 2.0
    pos = np.arange(crop)[:, None] + sub[None, :] - c  # (crop, 8)
    inside = pos[:, None, :, None] ** 2 + pos[None, :, None, :] ** 2 <= radius**2
    weights = inside.mean(axis=(2, 3)).astype(np.float64)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=8)
def _aperture_noise(crop: int, radius: float) -> float:
    """Noise of the aperture sum over an image of unit pixel noise."""
    return math.sqrt(float((_aperture(crop, radius) ** 2).sum()))


def _sky(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky level and robust noise of each image, from every second pixel, off-chip zeros ignored."""
    n = len(images)
    sub = images[:, ::2, ::2].reshape(n, -1)
    level = np.empty(n)
    noise = np.empty(n)
    zeros = (sub == 0).any(axis=1)
    clean = np.flatnonzero(~zeros)
    if clean.size:
        s = sub[clean]
        k = s.shape[1] // 2
        med = np.partition(s, k, axis=1)[:, k]
        m = med[:, None]
        dev = np.maximum(s, m) - np.minimum(s, m)  # |x - median| without leaving uint16
        level[clean] = med
        noise[clean] = _MAD_TO_SIGMA * np.partition(dev, k, axis=1)[:, k]
    for i in np.flatnonzero(zeros):
        v = sub[i][sub[i] > 0].astype(np.float64)
        if v.size < 16:
            level[i], noise[i] = 0.0, 0.0
            continue
        med = np.median(v)
        level[i], noise[i] = med, _MAD_TO_SIGMA * np.median(np.abs(v - med))
    return level, noise


def _intra_night(
    flux: np.ndarray, flux_noise: np.ndarray, t: np.ndarray, usable: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each night's reduced chi-square about the weighted mean, trend significance and exposures used (see :class:`ObjectNights`).

    ``flux``, ``flux_noise``, ``t``, ``usable``: one per exposure, nights
    starting at ``starts``. Two passes (means, then deviations from them), so a
    bright star's large fluxes do not cancel away the scatter.
    """
    night = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(flux)]))
    w = np.where(usable, 1.0 / flux_noise**2, 0.0)
    n_used = np.add.reduceat(usable.astype(np.int64), starts)
    sum_w = np.add.reduceat(w, starts)
    enough = n_used >= 2
    safe_w = np.where(sum_w > 0, sum_w, 1.0)
    f_mean = np.add.reduceat(w * np.where(usable, flux, 0.0), starts) / safe_w
    t_mean = np.add.reduceat(w * t, starts) / safe_w
    df = np.where(usable, flux - f_mean[night], 0.0)
    dt = (t - t_mean[night]) * 1440.0  # minutes: keeps the sums of squares well scaled
    chi2 = np.add.reduceat(w * df**2, starts)
    stt = np.add.reduceat(w * dt**2, starts)
    stf = np.add.reduceat(w * dt * df, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        reduced = np.where(enough, chi2 / np.maximum(n_used - 1, 1), np.nan)
        slope_sig = np.where(enough & (stt > 0), stf / np.sqrt(stt), np.nan)  # (stf/stt) / (1/sqrt(stt))
    return reduced.astype(np.float32), slope_sig.astype(np.float32), n_used.astype(np.int64)


def _reference(coadd: np.ndarray) -> np.ndarray:
    if len(coadd) == 0:
        return np.zeros(coadd.shape[1:], np.float32)
    if len(coadd) < 3:
        return coadd.mean(axis=0).astype(np.float32)
    return np.median(coadd, axis=0).astype(np.float32)


def object_nights(
    images: np.ndarray,
    mjd: np.ndarray,
    blank: np.ndarray,
    duplicate: np.ndarray,
    settings: SequenceSettings | None = None,
) -> ObjectNights:
    """Build one object's representation from its images in MJD order.

    Parameters
    ----------
    images : uint16 (n, 64, 64)
        Counts, MJD ascending (as the cache and :func:`deeptao.io.order_exposures` give them).
    mjd : (n,)
    blank, duplicate : bool (n,)
        The reader's flags; flagged images are left out.
    settings : SequenceSettings, optional

    Returns
    -------
    ObjectNights
        With no usable image, zero nights.
    """
    cfg = settings if settings is not None else SequenceSettings()
    images = np.asarray(images)
    mjd = np.asarray(mjd, dtype=np.float64)
    n = len(images)
    if images.ndim != 3 or mjd.shape != (n,):
        raise ValueError(f"need images (n, H, W) and mjd (n,), got {images.shape} and {mjd.shape}")
    keep = counted_exposures(blank, duplicate)
    c = cfg.crop
    empty = ObjectNights(
        np.zeros((0, c, c), np.float32), np.zeros((c, c), np.float32),
        np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.int64), 1.0,
    )  # fmt: skip
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return empty
    level, noise = _sky(images[idx])
    ok = noise > 0
    idx, level, noise = idx[ok], level[ok], noise[ok]
    if idx.size == 0:
        return empty
    h, w = images.shape[1:]
    y0, x0 = (h - c) // 2, (w - c) // 2
    stamp = images[idx, y0 : y0 + c, x0 : x0 + c]
    valid = stamp > 0
    t = mjd[idx]
    night = assign_nights(t, cfg.night_gap)
    starts = np.flatnonzero(np.r_[True, night[1:] != night[:-1]])
    n_exp = np.diff(np.r_[starts, idx.size])

    weight = 1.0 / noise**2  # (k,)
    pixel_w = valid * weight[:, None, None]  # (k, c, c)
    sky_subtracted = stamp.astype(np.float64) - level[:, None, None]
    signal = sky_subtracted * pixel_w
    sum_w = np.add.reduceat(pixel_w, starts, axis=0)
    coadd_adu = np.add.reduceat(signal, starts, axis=0) / np.maximum(sum_w, 1e-300)
    coadd_adu[sum_w <= 0] = 0.0
    night_noise = 1.0 / np.sqrt(np.add.reduceat(weight, starts))  # ADU, one pixel of the co-add
    scale = float(np.median(noise))
    coadd = (coadd_adu / scale).astype(np.float32)
    reference = _reference(coadd)
    night_mjd = np.add.reduceat(t, starts) / n_exp
    ap = _aperture(c, cfg.aperture)
    usable = valid[:, ap > 0].all(axis=1)  # an exposure with its aperture partly off the chip says nothing
    exposure_flux = np.einsum("kij,ij->k", sky_subtracted, ap) / scale
    # the source's own photon noise, which the sky noise leaves out: a pixel's variance grows by its
    # counts over the gain, and the sky gives the gain itself (variance / level of a sky-dominated image)
    photon_var = np.einsum("kij,ij->k", np.maximum(sky_subtracted, 0.0), ap**2) * noise**2 / np.maximum(level, noise**2)
    exposure_noise = np.sqrt(_aperture_noise(c, cfg.aperture) ** 2 * noise**2 + photon_var) / scale
    intra_chi2, intra_slope, intra_used = _intra_night(exposure_flux, exposure_noise, t, usable, starts)
    return ObjectNights(
        coadd, reference, night_mjd, (night_noise / scale).astype(np.float32), n_exp.astype(np.int64), scale,
        intra_chi2, intra_slope, intra_used,
    )  # fmt: skip


# --------------------------------------------------------------------------- the cache's store


def _store_key(cache: PreparedCache, cfg: SequenceSettings) -> str:
    identity = {
        "format": _FORMAT_VERSION,
        "settings": cfg.to_dict(),
        "n_objects": len(cache),
        "n_images": len(cache.images),
        "cache": cache.content_id,  # a re-prepare of unchanged files keeps it, a changed file changes it
        "object_ids": hashlib.sha1("\0".join(cache.objects["object_id"].astype(str)).encode()).hexdigest(),
    }
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _object_rows(cache: PreparedCache) -> tuple[np.ndarray, ...]:
    objects, images = cache.objects, cache.images
    return (
        objects["image_start"].to_numpy(np.int64),
        objects["n_images"].to_numpy(np.int64),
        images["mjd"].to_numpy(np.float64),
        images["blank"].to_numpy(bool),
        images["duplicate"].to_numpy(bool),
    )


def _build_chunk(cache: PreparedCache, cfg: SequenceSettings, rows: np.ndarray, arrays: tuple[np.ndarray, ...]) -> list[ObjectNights]:
    starts, counts, mjd, blank, duplicate = arrays
    out = []
    for i in rows:
        sl = slice(starts[i], starts[i] + counts[i])
        out.append(object_nights(cache.object_images(int(i)), mjd[sl], blank[sl], duplicate[sl], cfg))
    return out


_WORKER: dict[str, Any] = {}


def _worker_chunk(root: str, cfg: SequenceSettings, rows: np.ndarray) -> list[ObjectNights]:
    state = _WORKER.get(root)
    if state is None:
        from deeptao.data.cache import open_cache

        cache = open_cache(root)
        state = _WORKER[root] = (cache, _object_rows(cache))
    return _build_chunk(state[0], cfg, rows, state[1])


def _default_progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="object", disable=not sys.stderr.isatty(), dynamic_ncols=True)


def build_sequences(
    cache: PreparedCache,
    settings: SequenceSettings | None = None,
    *,
    workers: int = 1,
    progress: Callable[[int, str], Any] | None = None,
    chunk_objects: int = 64,
) -> SequenceStore:
    """Build the representation of every object of ``cache`` once, or reuse a complete store.

    Written to ``CACHE/sequences/<key>/``: ``coadd.f32`` (every night of every
    object, in object order), ``reference.f32`` (one per object), and
    ``nights.npz`` (per-night noise, exposure counts, MJDs and intra-night
    scatter and trend; per-object offsets and noise scales). The key hashes the settings and the cache's identity; a store
    appears under its key only when complete (``meta.json`` is written last),
    so an interrupted build is redone, never half-read.
    """
    cfg = settings if settings is not None else SequenceSettings()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    if getattr(cache, "root", None) is None:  # a cache held in memory (tests, notebooks): build in memory
        arrays = _object_rows(cache)
        return SequenceStore.from_objects(_build_chunk(cache, cfg, np.arange(len(cache)), arrays), cfg)
    key = _store_key(cache, cfg)
    folder = Path(cache.root) / SEQUENCES_DIR / key
    if (folder / "meta.json").is_file():
        return SequenceStore(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = cfg.crop
    n = len(cache)
    chunks = [np.arange(s, min(n, s + chunk_objects)) for s in range(0, n, chunk_objects)]
    offsets = np.zeros(n + 1, np.int64)
    noise = np.ones(n, np.float64)
    night_noise, exposures, mjds, intra_chi2, intra_slope, intra_used = [], [], [], [], [], []
    references = np.zeros((n, c, c), np.float32)
    tmp = folder / "coadd.f32.tmp"
    bar = (progress or _default_progress)(n, "sequences")
    try:
        with open(tmp, "wb") as fh:
            if workers > 1 and len(chunks) > 1:
                pool = ProcessPoolExecutor(min(workers, len(chunks)), mp_context=get_context("spawn"))
                results = pool.map(_worker_chunk, [str(cache.root)] * len(chunks), [cfg] * len(chunks), chunks)
            else:
                pool = None
                arrays = _object_rows(cache)
                results = (_build_chunk(cache, cfg, rows, arrays) for rows in chunks)
            try:
                for rows, objs in zip(chunks, results, strict=True):
                    for i, obj in zip(rows, objs, strict=True):
                        fh.write(np.ascontiguousarray(obj.coadd, np.float32).tobytes())
                        offsets[i + 1] = offsets[i] + len(obj)
                        references[i] = obj.reference
                        noise[i] = obj.noise
                        night_noise.append(obj.night_noise)
                        exposures.append(obj.exposures)
                        mjds.append(obj.mjd)
                        intra_chi2.append(obj.intra_chi2)
                        intra_slope.append(obj.intra_slope)
                        intra_used.append(obj.intra_used)
                    bar.update(len(rows))
            finally:
                if pool is not None:
                    pool.shutdown()
        os.replace(tmp, folder / "coadd.f32")
        references.tofile(folder / "reference.f32")
        np.savez(
            folder / "nights.npz",
            offsets=offsets,
            noise=noise,
            night_noise=np.concatenate(night_noise) if night_noise else np.zeros(0, np.float32),
            exposures=np.concatenate(exposures) if exposures else np.zeros(0, np.int64),
            mjd=np.concatenate(mjds) if mjds else np.zeros(0),
            intra_chi2=np.concatenate(intra_chi2) if intra_chi2 else np.zeros(0, np.float32),
            intra_slope=np.concatenate(intra_slope) if intra_slope else np.zeros(0, np.float32),
            intra_used=np.concatenate(intra_used) if intra_used else np.zeros(0, np.int64),
        )
        meta = {"format": _FORMAT_VERSION, "key": key, "settings": cfg.to_dict(), "n_objects": n, "n_nights": int(offsets[-1])}
        (folder / "meta.json.tmp").write_text(json.dumps(meta, indent=1))
        os.replace(folder / "meta.json.tmp", folder / "meta.json")
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return SequenceStore(folder)


class SequenceStore:
    """A built representation, read lazily (co-adds memory-mapped); safe to pickle into workers."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder: Path | None = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder}: not a complete sequence store (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        self.settings = SequenceSettings(**self.meta["settings"])
        with np.load(self.folder / "nights.npz") as z:
            self.offsets = z["offsets"]
            self.noise = z["noise"]
            self.night_noise = z["night_noise"]
            self.exposures = z["exposures"]
            self.mjd = z["mjd"]
            self.intra_chi2 = z["intra_chi2"]
            self.intra_slope = z["intra_slope"]
            self.intra_used = z["intra_used"]
        self._coadd: np.ndarray | None = None
        self._reference: np.ndarray | None = None

    @classmethod
    def from_objects(cls, objects: list[ObjectNights], settings: SequenceSettings) -> SequenceStore:
        """A store held in memory, for objects built by :func:`object_nights`."""
        c = settings.crop
        store = cls.__new__(cls)
        store.folder = None
        store.settings = settings
        store.meta = {"format": _FORMAT_VERSION, "settings": settings.to_dict(), "n_objects": len(objects)}
        store.offsets = np.r_[0, np.cumsum([len(o) for o in objects])].astype(np.int64)
        store.noise = np.array([o.noise for o in objects], np.float64)
        store.night_noise = np.concatenate([o.night_noise for o in objects]) if objects else np.zeros(0, np.float32)
        store.exposures = np.concatenate([o.exposures for o in objects]) if objects else np.zeros(0, np.int64)
        store.mjd = np.concatenate([o.mjd for o in objects]) if objects else np.zeros(0)
        store.intra_chi2 = np.concatenate([o.intra_chi2 for o in objects]) if objects else np.zeros(0, np.float32)
        store.intra_slope = np.concatenate([o.intra_slope for o in objects]) if objects else np.zeros(0, np.float32)
        store.intra_used = np.concatenate([o.intra_used for o in objects]) if objects else np.zeros(0, np.int64)
        store._coadd = np.concatenate([o.coadd for o in objects]) if objects else np.zeros((0, c, c), np.float32)
        store._reference = np.stack([o.reference for o in objects]) if objects else np.zeros((0, c, c), np.float32)
        return store

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.folder is not None:  # memory maps are reopened where the store is unpickled
            state["_coadd"] = state["_reference"] = None
        return state

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Nights per object."""
        return np.diff(self.offsets)

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._coadd is None:
            assert self.folder is not None
            c = self.settings.crop
            n_nights = int(self.offsets[-1])
            self._coadd = (
                np.memmap(self.folder / "coadd.f32", np.float32, "r", shape=(n_nights, c, c))
                if n_nights
                else np.zeros((0, c, c), np.float32)
            )
            self._reference = np.memmap(self.folder / "reference.f32", np.float32, "r", shape=(len(self), c, c))
        return self._coadd, self._reference  # type: ignore[return-value]

    def object(self, i: int) -> ObjectNights:
        """Object ``i`` (a row of the cache's objects)."""
        coadd, reference = self._maps()
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return ObjectNights(
            np.asarray(coadd[lo:hi]), np.asarray(reference[i]), self.mjd[lo:hi],
            self.night_noise[lo:hi], self.exposures[lo:hi], float(self.noise[i]),
            self.intra_chi2[lo:hi], self.intra_slope[lo:hi], self.intra_used[lo:hi],
        )  # fmt: skip


def open_sequences(cache: PreparedCache, settings: SequenceSettings | None = None, *, workers: int = 1) -> SequenceStore:
    """The cache's representation under ``settings``, built on first use."""
    return build_sequences(cache, settings, workers=workers)
