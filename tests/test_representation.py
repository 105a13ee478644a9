"""The networks' input representation keeps relative flux, shows change at the right night, and is built alike everywhere."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from deeptao.data.datasets import (
    NightDataset,
    ObjectBatchSampler,
    collate_nights,
    dihedral,
    night_arrays,
    normalize_images,
)
from deeptao.data.representation import (
    SCALAR_NAMES,
    SequenceSettings,
    build_sequences,
    object_nights,
)
from deeptao.io import order_exposures
from deeptao.models._torch import make_loader
from tests._fake_cache import FakeCache, blob, to_uint16

NIGHTS = 20


def _star_sequence(rng, amplitudes, *, exposures=4, sky_range=(1200.0, 4000.0)):
    """A centred star of the given peak amplitude per night, ``exposures`` images a night, sky changing nightly."""
    images, mjd = [], []
    for night, amp in enumerate(amplitudes):
        sky = rng.uniform(*sky_range)
        for k in range(exposures):
            noise = np.sqrt(sky / 2.0)  # Poisson noise at a gain of 2 e-/ADU
            images.append(rng.normal(sky, noise, (64, 64)) + blob(amp))
            mjd.append(53500.0 + 3.0 * night + 0.007 * k)
    return to_uint16(np.array(images)), np.array(mjd)


def _aperture_flux(stack, radius=3.0):
    c = (stack.shape[-1] - 1) / 2
    yy, xx = np.mgrid[: stack.shape[-2], : stack.shape[-1]]
    inside = (yy - c) ** 2 + (xx - c) ** 2 <= radius**2
    return stack[:, inside].sum(axis=1)


def test_a_steady_star_scatters_no_more_than_its_photometric_error():
    rng = np.random.default_rng(0)
    images, mjd = _star_sequence(rng, np.full(NIGHTS, 300.0))
    images, mjd, blank, duplicate = order_exposures(images, mjd)
    obj = object_nights(images, mjd, blank, duplicate)
    assert len(obj) == NIGHTS and obj.exposures.tolist() == [4] * NIGHTS
    flux = _aperture_flux(obj.coadd)
    # the photometric error of each night's aperture flux, from the noise the representation carries
    error = np.sqrt(np.pi * 9.0) * obj.night_noise
    assert flux.std(ddof=1) <= 1.5 * np.median(error)
    # per-image standardisation, by contrast, makes the star follow the sky: fake variability
    per_image = normalize_images(images)
    crop = per_image[:, 16:48, 16:48]
    single = np.sinh(crop)  # undo the asinh: noise units of each image
    per_image_flux = _aperture_flux(single)
    nightly = per_image_flux.reshape(NIGHTS, 4).mean(axis=1)
    assert nightly.std(ddof=1) / nightly.mean() > 2 * flux.std(ddof=1) / flux.mean()


def test_a_brightening_shows_in_the_difference_channel_on_its_night():
    rng = np.random.default_rng(1)
    amplitudes = np.full(NIGHTS, 200.0)
    amplitudes[7] = 500.0
    images, mjd = _star_sequence(rng, amplitudes)
    obj = object_nights(*order_exposures(images, mjd))
    arrays = night_arrays(obj)
    assert arrays["x"].shape == (NIGHTS, 2, 32, 32) and arrays["ref"].shape == (1, 32, 32)
    centre = np.sinh(arrays["x"][:, 1, 14:18, 14:18]).sum(axis=(1, 2))
    assert np.argmax(centre) == 7
    significance = obj.scalars()[:, SCALAR_NAMES.index("diff_flux")]
    assert np.sinh(significance[7]) > 10
    others = np.delete(np.abs(np.sinh(significance)), 7)
    assert np.median(others) < 2
    # the co-add channel is the night itself: brighter at night 7 than anywhere else
    assert np.argmax(_aperture_flux(np.sinh(arrays["x"][:, 0]))) == 7


def test_blank_duplicate_and_off_chip_images_carry_no_weight():
    rng = np.random.default_rng(2)
    images, mjd = _star_sequence(rng, np.full(4, 300.0))
    clean = object_nights(*order_exposures(images, mjd))
    images = np.concatenate([images, np.full((1, 64, 64), 2000, np.uint16), images[:1]])
    mjd = np.concatenate([mjd, [mjd[5] + 0.001], mjd[:1]])  # a blank image, then a duplicate cutout
    images, mjd, blank, duplicate = order_exposures(images, mjd)
    assert blank.sum() == 1 and duplicate.sum() == 1
    obj = object_nights(images, mjd, blank, duplicate)
    np.testing.assert_allclose(obj.coadd, clean.coadd, rtol=1e-6, atol=1e-6)
    # a band of zeros (off the chip) on one exposure: those pixels come from the night's other exposures
    edged = images.copy()
    edged[0, :, :20] = 0
    obj = object_nights(edged, mjd, blank, duplicate)
    assert np.isfinite(obj.coadd).all()
    assert abs(obj.coadd[0, :, :4].mean()) < 1.0  # sky, not a hole of -2000 ADU
    nothing = object_nights(images[:1] * 0, mjd[:1], np.array([True]), np.array([False]))
    assert len(nothing) == 0 and night_arrays(nothing)["x"].shape == (1, 2, 32, 32)


def test_first_nights_rebuild_the_reference_from_those_nights_alone():
    rng = np.random.default_rng(3)
    amplitudes = np.r_[np.full(5, 100.0), np.full(15, 600.0)]
    obj = object_nights(*order_exposures(*_star_sequence(rng, amplitudes)))
    early = obj.first_nights(4)
    assert len(early) == 4 and early.first_nights(10) is early
    np.testing.assert_array_equal(early.coadd, obj.coadd[:4])
    np.testing.assert_allclose(early.reference, np.median(obj.coadd[:4], axis=0), rtol=1e-6)
    assert _aperture_flux(early.reference[None])[0] < 0.5 * _aperture_flux(obj.reference[None])[0]
    with pytest.raises(ValueError):
        obj.first_nights(0)
    middle = obj.night_range(5, 9)
    np.testing.assert_array_equal(middle.coadd, obj.coadd[5:9])
    np.testing.assert_allclose(middle.reference, np.median(obj.coadd[5:9], axis=0), rtol=1e-6)
    for bad in ((3, 3), (-1, 2), (0, len(obj) + 1)):
        with pytest.raises(ValueError, match="start < stop"):
            obj.night_range(*bad)


def test_the_light_curve_keeps_the_nights_with_a_usable_measurement():
    rng = np.random.default_rng(4)
    obj = object_nights(*order_exposures(*_star_sequence(rng, np.full(6, 300.0))))
    flux, noise, _ = obj.aperture_photometry()
    mjd, lc_flux, lc_noise = obj.light_curve()
    np.testing.assert_array_equal(mjd, obj.mjd)
    np.testing.assert_array_equal(lc_flux, flux)
    np.testing.assert_array_equal(lc_noise, noise)
    obj.night_noise[1] = 0.0  # a night without a noise estimate, and one with no finite pixels
    obj.coadd[3] = np.nan
    mjd, lc_flux, lc_noise = obj.light_curve()
    np.testing.assert_array_equal(mjd, obj.mjd[[0, 2, 4, 5]])
    np.testing.assert_array_equal(lc_flux, flux[[0, 2, 4, 5]])
    assert (lc_noise > 0).all()


@pytest.mark.parametrize("crop", [7, 9, 66, "32"])
def test_bad_settings_are_refused(crop):
    with pytest.raises(ValueError, match="crop"):
        SequenceSettings(crop=crop)


def _fake_cache(n=6, seed=4):
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(n):
        images, mjd = _star_sequence(rng, rng.uniform(100, 400, 5), exposures=3)
        perm = rng.permutation(len(mjd))
        objects.append(("SN" if i % 2 else "NON", f"g{i}", images[perm], mjd[perm]))
    return FakeCache(objects)


def test_the_store_of_a_prepared_cache_equals_the_objects_built_from_a_file(tmp_path):
    from deeptao.data.cache import open_cache, prepare
    from deeptao.io import read_object
    from deeptao.simulate import simulate_survey

    simulate_survey(tmp_path / "release", objects_per_class=1, seed=3, workers=1)
    prepare(tmp_path / "release", tmp_path / "cache", workers=1)
    cache = open_cache(tmp_path / "cache")
    store = build_sequences(cache)
    assert len(store) == len(cache) and (store.folder / "meta.json").is_file()
    assert build_sequences(cache).folder == store.folder  # reused, not rebuilt
    for i in range(len(cache)):
        obj = read_object(cache.objects.path.iat[i])
        direct = object_nights(*order_exposures(obj.images, obj.mjd))
        stored = store.object(i)
        np.testing.assert_array_equal(stored.coadd, direct.coadd)
        np.testing.assert_array_equal(stored.reference, direct.reference)
        np.testing.assert_array_equal(stored.scalars(), direct.scalars())
        np.testing.assert_array_equal(stored.intra_chi2, direct.intra_chi2)
        np.testing.assert_array_equal(stored.intra_slope, direct.intra_slope)
    again = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(again.object(1).coadd, store.object(1).coadd)


def test_night_dataset_batches_pad_flip_and_thin_alike_in_every_process():
    cache = _fake_cache()
    store = build_sequences(cache)
    ds = NightDataset(store, np.arange(len(cache)), np.arange(len(cache)) % 2, night_dropout=0.3, noise=0.5)
    plain = ds[2]
    flipped = ds[(2, 5, -1)]
    np.testing.assert_array_equal(flipped["x"], dihedral(plain["x"], 5))
    np.testing.assert_array_equal(flipped["ref"], dihedral(plain["ref"], 5))
    np.testing.assert_array_equal(flipped["scalars"], plain["scalars"])  # photometry does not turn
    thinned = ds[(2, 0, 123)]
    assert 1 <= len(thinned["x"]) <= len(plain["x"])
    batch = collate_nights([ds[0], thinned])
    assert batch["x"].shape == (2, 5, 2, 32, 32) and batch["lengths"].tolist() == [5, len(thinned["x"])]
    assert not batch["x"][1, len(thinned["x"]) :].any()  # padding is zeros
    sampler = ObjectBatchSampler(len(ds), 4, train=True, seed=7)
    plan = [k for b in sampler for k in b]
    assert sorted(p for p, _, _ in plan) == list(range(len(ds)))
    assert plan == [k for b in sampler for k in b]
    sampler.set_epoch(1)
    assert plan != [k for b in sampler for k in b]
    serial = list(make_loader(ds, sampler, 0, seed=0))
    parallel = list(make_loader(pickle.loads(pickle.dumps(ds)), sampler, 2, seed=0))
    for a, b in zip(serial, parallel, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_night_dropout_keeps_each_kept_night_s_own_scalars_and_gap():
    rng = np.random.default_rng(4)
    images, mjd = _star_sequence(rng, np.full(6, 300.0))  # nights 3 days apart
    obj = object_nights(*order_exposures(images, mjd))
    keep = np.array([True, False, False, True, True, False])
    gap = SCALAR_NAMES.index("log_gap")
    whole, thinned = night_arrays(obj)["scalars"], night_arrays(obj, keep=keep)["scalars"]
    np.testing.assert_allclose(np.expm1(whole[:, gap]), [0, 3, 3, 3, 3, 3], atol=1e-3)
    # the cadence prediction sees: night 3's gap stays 3 days, not the 9 since the last kept night
    np.testing.assert_array_equal(thinned, whole[keep])
    np.testing.assert_array_equal(night_arrays(obj, keep=keep)["x"], night_arrays(obj)["x"][keep])


def test_time_crop_keeps_one_contiguous_run_of_at_least_the_fraction():
    cache = _fake_cache()
    store = build_sequences(cache)
    ds = NightDataset(store, np.arange(len(cache)), time_crop=0.6)
    plain = ds[3]
    n = len(plain["x"])
    spans = set()
    whole = store.object(3)
    for seed in range(40):
        item = ds[(3, 0, seed)]
        cut = item["x"]
        k = len(cut)
        assert np.ceil(0.6 * n) <= k <= n
        starts = [s for s in range(n - k + 1) if np.array_equal(plain["x"][s : s + k, 0], cut[:, 0])]
        assert starts, "the kept nights are not one contiguous run"
        spans.add((starts[0], k))
        # the reference is the run's own, as early classification rebuilds it from the nights it has
        expected = night_arrays(whole.night_range(starts[0], starts[0] + k))
        np.testing.assert_array_equal(cut, expected["x"])
        np.testing.assert_array_equal(item["ref"], expected["ref"])
    assert len(spans) > 1  # the run moves from draw to draw
    assert any(k < n for _, k in spans)
    np.testing.assert_array_equal(ds[(3, 0, -1)]["x"], plain["x"])  # evaluation keys keep every night
    with pytest.raises(ValueError, match="time_crop"):
        NightDataset(store, np.arange(len(cache)), time_crop=0.0)
