"""Forced photometry of one object's stack: deeptao's array version against photutils.

Justifies hand-written photometry: the same fluxes and sky levels as photutils
(aperture 'exact' overlap, sigma-clipped median of a 'center' annulus), measured
for every image of an object in one array operation instead of one call per image.

    python benchmarks/photometry_speed.py [--images 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(args)

    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry

    from deeptao.lightcurves import PhotometrySettings, photometry

    cfg = PhotometrySettings()
    rng = np.random.default_rng(opts.seed)
    images = rng.poisson(2000.0, size=(opts.images, 64, 64)).astype(np.uint16)
    images[:, 30:34, 30:34] += rng.integers(0, 3000, size=(opts.images, 1, 1)).astype(np.uint16)
    images[:, 10:13, 40:43] += 20000  # a neighbour in the annulus
    mjd = np.arange(opts.images, dtype=float)

    start = time.perf_counter()
    ours = photometry(images, mjd, settings=cfg)
    t_ours = time.perf_counter() - start

    centre = (31.5, 31.5)
    aperture = CircularAperture(centre, r=cfg.aperture)
    annulus = CircularAnnulus(centre, r_in=cfg.annulus_inner, r_out=cfg.annulus_outer)
    clip = SigmaClip(sigma=cfg.clip_sigma, maxiters=cfg.clip_iters)
    start = time.perf_counter()
    flux, sky = np.empty(opts.images), np.empty(opts.images)
    for k, image in enumerate(images.astype(np.float64)):
        stats = ApertureStats(image, annulus, sigma_clip=clip, sum_method="center")
        total = aperture_photometry(image, aperture, method="exact")["aperture_sum"][0]
        sky[k] = stats.median
        flux[k] = total - stats.median * aperture.area
    t_photutils = time.perf_counter() - start

    print(f"images: {opts.images}")
    print(f"deeptao:   {t_ours * 1e3:8.1f} ms  ({t_ours / opts.images * 1e6:6.1f} us/image)")
    print(f"photutils: {t_photutils * 1e3:8.1f} ms  ({t_photutils / opts.images * 1e6:6.1f} us/image)")
    print(f"speed-up:  {t_photutils / t_ours:8.1f}x")
    print(f"max |sky difference|:  {np.max(np.abs(ours['background'] - sky)):.3g} ADU")
    print(
        f"max |flux difference|: {np.max(np.abs(ours['flux'] - flux)):.3g} ADU "
        f"(median flux error {ours['flux_err'].median():.1f} ADU)"
    )


if __name__ == "__main__":
    main()
