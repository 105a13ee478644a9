"""Pixels: every exposure of one object rendered at once with numpy.

Point sources use a pixel-integrated double-Gaussian PSF (core and wing),
separable, so all sources of all epochs reduce to one batched matrix product;
galaxies are Gaussian light profiles convolved analytically with the PSF core.
Then sky (with a faint gradient), noise (Poisson in its Gaussian limit: every
pixel holds hundreds of electrons or more), cosmic rays, saturation, lost
exposures and chip edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import erf

from ._config import SurveyConfig
from ._physics import Galaxy, PointSource

__all__ = ["render", "SIZE"]

#: side of a cutout in pixels (the release's 64 x 64)
SIZE = 64
_CENTRE = (SIZE - 1) / 2.0
_EDGES = np.arange(SIZE + 1, dtype=float) - 0.5
_HALO_WIDTH = 2.5  # wing sigma in units of the core sigma


def _profiles(pos: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of a 1-D Gaussian falling in each pixel: (n, s, SIZE)."""
    z = (_EDGES[None, None, :] - pos[..., None]) / (np.sqrt(2.0) * sigma[:, None, None])
    return 0.5 * np.diff(erf(z), axis=-1)


def _points(images: np.ndarray, points: Sequence[PointSource], zp: np.ndarray,
            sigma: np.ndarray, shift: np.ndarray, halo: float) -> None:
    if not points:
        return
    x = np.stack([p.x for p in points], axis=1) + _CENTRE + shift[:, :1]
    y = np.stack([p.y for p in points], axis=1) + _CENTRE + shift[:, 1:]
    mag = np.stack([p.mag for p in points], axis=1)
    with np.errstate(over="ignore"):
        flux = np.where(np.isfinite(mag), np.power(10.0, -0.4 * (mag - zp[:, None])), 0.0)
    for weight, width in ((1.0 - halo, 1.0), (halo, _HALO_WIDTH)):
        if weight <= 0:
            continue
        s = sigma * width
        gx = _profiles(x, s)  # (n, S, SIZE)
        gy = _profiles(y, s) * (weight * flux)[..., None]
        images += np.matmul(gy.transpose(0, 2, 1), gx)  # (n, SIZE rows=y, SIZE cols=x)


def _galaxies(images: np.ndarray, galaxies: Sequence[Galaxy], zp: np.ndarray,
              sigma: np.ndarray, shift: np.ndarray) -> None:
    if not galaxies:
        return
    grid = np.arange(SIZE, dtype=np.float32)
    for g in galaxies:
        flux = np.power(10.0, -0.4 * (g.mag - zp))  # (n,)
        var = sigma**2
        cxx, cxy, cyy = g.cov[0, 0] + var, g.cov[0, 1] + 0.0 * var, g.cov[1, 1] + var
        det = cxx * cyy - cxy**2
        # Inverse covariance, with the -1/2 of the exponent folded in.
        a = (-0.5 * cyy / det).astype(np.float32)[:, None, None]
        b = (cxy / det).astype(np.float32)[:, None, None]
        c = (-0.5 * cxx / det).astype(np.float32)[:, None, None]
        dx = (grid[None, :] - (_CENTRE + g.x + shift[:, :1]).astype(np.float32))[:, None, :]
        dy = (grid[None, :] - (_CENTRE + g.y + shift[:, 1:]).astype(np.float32))[:, :, None]
        q = a * dx**2 + b * (dy * dx) + c * dy**2
        norm = (flux / (2.0 * np.pi * np.sqrt(det))).astype(np.float32)
        images += norm[:, None, None] * np.exp(q)


def _cosmic_rays(images: np.ndarray, rng: np.random.Generator, rate: float) -> None:
    counts = rng.poisson(rate, images.shape[0])
    for i in np.flatnonzero(counts):
        for _ in range(int(counts[i])):
            length = int(rng.integers(1, 6))
            angle = rng.uniform(0, np.pi)
            x0, y0 = rng.uniform(0, SIZE, 2)
            steps = np.arange(length)
            xs = np.clip((x0 + steps * np.cos(angle)).astype(int), 0, SIZE - 1)
            ys = np.clip((y0 + steps * np.sin(angle)).astype(int), 0, SIZE - 1)
            images[i, ys, xs] += rng.uniform(300.0, 20000.0, length)


def render(points: Sequence[PointSource], galaxies: Sequence[Galaxy], *, zp: np.ndarray,
           fwhm: np.ndarray, sky: np.ndarray, shift: np.ndarray, bad: np.ndarray,
           rng: np.random.Generator, cfg: SurveyConfig) -> np.ndarray:
    """All images of one cutout sequence, (n, 64, 64) uint16 counts."""
    n = int(zp.size)
    sigma = np.asarray(fwhm, dtype=float) / 2.3548
    images = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    _points(images, points, zp, sigma, shift, cfg.psf_halo_fraction)
    _galaxies(images, galaxies, zp, sigma, shift)

    # Sky with a faint gradient (moonlight, scattered light).
    grad = rng.normal(0.0, 5e-5, size=(n, 2)) * sky[:, None]
    ramp = np.arange(SIZE, dtype=np.float32) - _CENTRE
    images += (sky[:, None, None] + grad[:, 0, None, None] * ramp[None, None, :]
               + grad[:, 1, None, None] * ramp[None, :, None]).astype(np.float32)

    # Photon and read noise: var(ADU) = counts / gain + read_noise**2.
    noise = rng.standard_normal(images.shape, dtype=np.float32)
    images += noise * np.sqrt(np.maximum(images, 0.0) / cfg.gain + cfg.read_noise_adu**2)
    _cosmic_rays(images, rng, cfg.cosmic_ray_rate)
    np.minimum(images, cfg.saturation_adu, out=images)

    # Exposures lost to the pipeline come out constant: zeros or a flat level.
    for i in np.flatnonzero(bad):
        images[i] = 0.0 if rng.random() < 0.5 else float(np.round(sky[i]))
    # Now and then the cutout runs off the chip: a band of zeros along one side.
    for i in np.flatnonzero(rng.random(n) < cfg.edge_fraction):
        width = int(rng.integers(4, 30))
        side = int(rng.integers(4))
        if side == 0:
            images[i, :width] = 0.0
        elif side == 1:
            images[i, -width:] = 0.0
        elif side == 2:
            images[i, :, :width] = 0.0
        else:
            images[i, :, -width:] = 0.0
    np.rint(images, out=images)
    np.clip(images, 0.0, 65535.0, out=images)
    return images.astype(np.uint16)
