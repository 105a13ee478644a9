"""Forced photometry and nightly binning on synthetic images of known flux."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf

from deeptao.lightcurves import (
    PhotometrySettings,
    asinh_magnitude,
    assign_nights,
    nightly_bin,
    photometry,
    plot_lightcurve,
    pogson_magnitude,
)

SKY = 2000.0
CENTRE = 31.5  # the geometric centre of a 64-pixel cutout


def gaussian_star(total: float, sigma: float, cx: float = CENTRE, cy: float = CENTRE) -> np.ndarray:
    """A Gaussian PSF integrated exactly over each pixel of a 64x64 image."""
    edges = np.arange(65) - 0.5

    def cdf(x, c):
        return 0.5 * (1 + erf((x - c) / (math.sqrt(2) * sigma)))

    px = np.diff(cdf(edges, cx))
    py = np.diff(cdf(edges, cy))
    return total * np.outer(py, px)


def observe(model: np.ndarray, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(model, size=(n, *model.shape)).astype(np.uint16)


@pytest.mark.parametrize("total", [800.0, 4000.0, 40000.0])
def test_injected_flux_is_recovered_within_its_errors(total):
    # sigma = 1 px inside a 4 px aperture: the circle holds 1 - exp(-8) of the light.
    sigma, radius, n = 1.0, 4.0, 1500
    images = observe(SKY + gaussian_star(total, sigma), n, seed=int(total))
    epochs = photometry(images, np.arange(n, dtype=float), aperture=radius, gain=1.0)
    expected = total * (1 - math.exp(-(radius**2) / (2 * sigma**2)))
    pull = (epochs["flux"] - expected) / epochs["flux_err"]
    assert epochs["good"].all()
    assert abs(pull.mean()) < 0.1, pull.mean()
    assert 0.9 < pull.std() < 1.1, pull.std()
    # the errors are the actual scatter, not merely a consistent pull
    assert epochs["flux_err"].median() == pytest.approx(epochs["flux"].std(), rel=0.1)
    assert epochs["background"].median() == pytest.approx(SKY, abs=1.0)


def test_gain_scales_the_source_noise():
    images = observe(SKY + gaussian_star(200000.0, 1.0), 5, seed=1)
    e1 = photometry(images, np.arange(5.0), aperture=4.0, gain=1.0)["flux_err"]
    e4 = photometry(images, np.arange(5.0), aperture=4.0, gain=4.0)["flux_err"]
    flux = photometry(images, np.arange(5.0), aperture=4.0)["flux"]
    # variance = sky part + flux / gain: the difference isolates the source term
    np.testing.assert_allclose(e1**2 - e4**2, flux * (1 - 1 / 4), rtol=1e-9)


def test_same_numbers_as_photutils():
    photutils = pytest.importorskip("photutils.aperture")
    from astropy.stats import SigmaClip

    cfg = PhotometrySettings()
    rng = np.random.default_rng(3)
    images = rng.poisson(SKY, size=(20, 64, 64)).astype(np.uint16)
    images[:, 29:35, 28:34] += rng.integers(0, 900, size=(20, 6, 6)).astype(np.uint16)
    images[:, 40:44, 41:44] += 15000  # a neighbour in the annulus
    ours = photometry(images, np.arange(20.0), settings=cfg)
    aperture = photutils.CircularAperture((CENTRE, CENTRE), r=cfg.aperture)
    annulus = photutils.CircularAnnulus((CENTRE, CENTRE), r_in=cfg.annulus_inner, r_out=cfg.annulus_outer)
    clip = SigmaClip(sigma=cfg.clip_sigma, maxiters=cfg.clip_iters)
    for k, image in enumerate(images.astype(float)):
        sky = photutils.ApertureStats(image, annulus, sigma_clip=clip).median
        total = photutils.aperture_photometry(image, aperture, method="exact")["aperture_sum"][0]
        assert ours.loc[k, "background"] == pytest.approx(sky, abs=1e-9)
        assert ours.loc[k, "flux"] == pytest.approx(total - sky * aperture.area, abs=1.0)  # 1 ADU of ~60000


def test_neighbour_in_the_annulus_is_clipped_away():
    n, total = 300, 5000.0
    clean = observe(SKY + gaussian_star(total, 1.2), n, seed=5)
    crowded_model = SKY + gaussian_star(total, 1.2) + gaussian_star(300000.0, 1.2, cx=CENTRE + 10.5, cy=CENTRE + 1)
    crowded = observe(crowded_model, n, seed=6)
    distance = np.hypot(*(np.mgrid[:64, :64] - CENTRE))
    ring = (distance >= 8) & (distance < 14)
    a = photometry(clean, np.arange(n, dtype=float))
    b = photometry(crowded, np.arange(n, dtype=float))
    # a plain annulus mean would move by tens of ADU per pixel, several flux errors in all...
    naive_shift = (crowded[:, ring].mean() - clean[:, ring].mean()) * math.pi * 3.0**2
    assert naive_shift > 5 * a["flux_err"].mean()
    # ...the clipped median by a small fraction of the sky noise, and the flux by under half an error
    assert abs(b["background"].mean() - a["background"].mean()) < 0.1 * a["background_rms"].mean()
    shift = abs(b["flux"].mean() - a["flux"].mean())
    assert shift < 0.05 * naive_shift and shift < 0.5 * a["flux_err"].mean()


def test_blank_off_chip_and_saturated_images_are_flagged_without_warnings():
    images = observe(SKY + gaussian_star(3000.0, 1.0), 7, seed=7)
    images[1] = 0  # blank (constant zero)
    images[2] = 2000  # blank (constant)
    images[4, :, :33] = 0  # off the chip through the aperture
    images[5, :, :10] = 0  # off the chip in the annulus only
    images[6, 31, 31] = 65535  # saturated
    known = np.zeros(7, bool)
    known[3] = True  # flagged blank by the reader
    dup = np.zeros(7, bool)
    dup[6] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ep = photometry(images, np.arange(7.0), known, duplicate=dup)
    assert ep["blank"].tolist() == [False, True, True, True, False, False, False]
    assert ep["good"].tolist() == [True, False, False, False, False, True, False]
    assert ep.loc[[1, 2, 3, 4], "flux"].isna().all() and ep.loc[[1, 2, 3, 4], "mag"].isna().all()
    assert ep.loc[5, "background"] == pytest.approx(SKY, abs=10)  # zeros left out of the sky
    assert ep["saturated"].tolist() == [False] * 6 + [True]
    assert np.isfinite(ep.loc[6, "flux"]) and ep.loc[6, "duplicate"]
    # a stack of nothing but blanks gives an empty light curve, not an error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nights = nightly_bin(photometry(np.zeros((4, 64, 64), np.uint16), np.arange(4.0)))
    assert len(nights) == 0


def test_nightly_binning_on_a_hand_made_cadence():
    # night A: 4 exposures 10 min apart; night B (0.9 d later): 2 of them plus a
    # duplicate; night C: one exposure 0.45 d after a first (chained: same night).
    mjd = np.array([100.30, 100.307, 100.314, 100.321, 101.2, 101.207, 101.207, 105.0, 105.45])
    flux = np.array([100.0, 110.0, 90.0, 120.0, 50.0, 70.0, 999.0, -20.0, 40.0])
    err = np.array([10.0, 10.0, 10.0, 20.0, 5.0, 10.0, 1.0, 30.0, 30.0])
    good = np.array([True, True, True, True, True, True, False, True, True])
    epochs = pd.DataFrame({"mjd": mjd, "flux": flux, "flux_err": err, "good": good})
    nights = nightly_bin(epochs, night_gap=0.5, zero_point=20.0, softening=10.0)
    assert nights["n_exposures"].tolist() == [4, 2, 2]
    w_a = np.array([1 / 100, 1 / 100, 1 / 100, 1 / 400])
    expected_a = (w_a * flux[:4]).sum() / w_a.sum()
    expected_b = (50 / 25 + 70 / 100) / (1 / 25 + 1 / 100)
    np.testing.assert_allclose(nights["flux"], [expected_a, expected_b, 10.0])
    np.testing.assert_allclose(nights["flux_err"], [w_a.sum() ** -0.5, (1 / 25 + 1 / 100) ** -0.5, 30 / math.sqrt(2)])
    np.testing.assert_allclose(nights["mjd"], [mjd[:4].mean(), 101.2035, 105.225])
    assert nights["mag"].iloc[0] == pytest.approx(20 - 2.5 * math.log10(expected_a))
    assert nights.attrs == {"zero_point": 20.0, "softening": 10.0}
    assert assign_nights(mjd[good], 0.5).tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert assign_nights(mjd[good], 0.4).tolist() == [0, 0, 0, 0, 1, 1, 2, 3]


def test_unsorted_epochs_are_binned_in_time_order():
    epochs = pd.DataFrame(
        {"mjd": [3.0, 1.0, 1.01, 2.0], "flux": [30.0, 10.0, 12.0, 20.0], "flux_err": [1.0] * 4, "good": [True] * 4}
    )
    nights = nightly_bin(epochs, softening=1.0)
    np.testing.assert_allclose(nights["flux"], [11.0, 20.0, 30.0])


def test_magnitudes():
    mag, err = pogson_magnitude(np.array([100.0, 0.0, -5.0]), np.array([1.0, 1.0, 1.0]), 25.0)
    assert mag[0] == pytest.approx(20.0) and err[0] == pytest.approx(2.5 / math.log(10) / 100)
    assert np.isnan(mag[1:]).all()
    flux = np.array([-50.0, 0.0, 50.0, 1e3, 1e5])
    amag, aerr = asinh_magnitude(flux, np.full(5, 10.0), 25.0, 10.0)
    assert np.isfinite(amag).all() and np.all(np.diff(amag) < 0)  # brighter is smaller, always
    assert amag[-1] == pytest.approx(25 - 2.5 * math.log10(1e5), abs=1e-4)  # S/N 1e4: same as Pogson
    step = 1e-3  # the error is |d amag / d flux| times the flux error
    slope = (asinh_magnitude(flux + step, flux, 25.0, 10.0)[0] - amag) / step
    np.testing.assert_allclose(aerr, np.abs(slope) * 10.0, rtol=1e-4)
    with pytest.raises(ValueError, match="softening"):
        asinh_magnitude(flux, flux, 25.0, 0.0)


def test_bad_arguments_are_refused():
    images = np.zeros((3, 64, 64), np.uint16)
    with pytest.raises(ValueError, match="mjd"):
        photometry(images, np.arange(2.0))
    with pytest.raises(ValueError, match="stack"):
        photometry(images[0], np.arange(64.0))
    with pytest.raises(ValueError, match="blank"):
        photometry(images, np.arange(3.0), np.zeros(2, bool))
    with pytest.raises(TypeError, match="unknown photometry setting"):
        photometry(images, np.arange(3.0), aperturee=3.0)
    with pytest.raises(ValueError, match="annulus"):
        PhotometrySettings(aperture=5.0, annulus_inner=4.0)
    with pytest.raises(ValueError, match="outside"):
        photometry(images, np.arange(3.0), centre=(80.0, 10.0))
    with pytest.raises(ValueError, match="ascending"):
        assign_nights(np.array([2.0, 1.0]))


def test_plot_lightcurve_writes_a_png(tmp_path):
    images = observe(SKY + gaussian_star(3000.0, 1.0), 12, seed=8)
    mjd = np.repeat([100.3, 150.3, 200.3], 4) + np.tile(np.arange(4) * 0.007, 3)
    epochs = photometry(images, mjd)
    nights = nightly_bin(epochs)
    out = plot_lightcurve(nights, "test", tmp_path / "sub" / "lc.png", epochs=epochs)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plot_lightcurve(nightly_bin(epochs.assign(good=False)), "none", tmp_path / "empty.png")
    assert empty.stat().st_size > 0
