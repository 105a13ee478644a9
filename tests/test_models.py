"""Normalisation, datasets, and the two networks: they learn what they should and survive a round trip."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deeptao.data.datasets import ImageBatchSampler, ImageDataset, dihedral, normalize_images
from deeptao.models import NotFittedError, ObjectClassifier, create_model, list_models, load_model
from deeptao.models._torch import MaxPool2x2, ModelFileError
from deeptao.models._torch import load_model as load_torch_model
from tests._fake_cache import blob_survey, to_uint16, trend_survey
from tests._simulated import simulated_cache

CLASSES2 = ("source", "sky")


# ---------------------------------------------------------------- normalisation


def test_normalisation_ignores_sky_level_and_scales_by_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 20, (3, 64, 64))
    a = normalize_images(to_uint16(base + 2000))
    b = normalize_images(to_uint16(base + 9000))
    np.testing.assert_allclose(a, b, atol=1e-6)
    # asinh of noise units: the median maps to 0, the robust sigma to asinh(1)
    z = np.sinh(a)
    assert abs(np.median(z)) < 0.05
    assert np.percentile(np.abs(z), 50) == pytest.approx(0.6745, abs=0.05)


def test_normalisation_survives_blank_and_flat_images():
    blank = np.full((64, 64), 2000, np.uint16)
    spiky = blank.copy()
    spiky[10:14, 10:14] = 2500  # MAD is zero, the image is not constant
    out = normalize_images(np.stack([blank, spiky, np.zeros((64, 64), np.uint16)]))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert not out[0].any() and not out[2].any()
    assert out[1, 12, 12] > 0 and out[1, 40, 40] == 0
    assert normalize_images(blank).shape == (64, 64)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64, np.float32, np.float64])
def test_normalisation_agrees_with_a_direct_computation_for_every_pixel_type(dtype):
    rng = np.random.default_rng(1)
    raw = np.clip(rng.normal(2000, 30, (5, 64, 64)), 0, None).round()
    raw[1, 20:24, 20:24] = 60_000  # a saturated star far above the median
    raw[2] = raw[2] * 0 + 1500 + (rng.random((64, 64)) < 0.2) * 3  # MAD may be 0 or tiny
    expected = []
    for image in raw:
        sub = np.sort(image[::2, ::2].ravel())
        med = sub[len(sub) // 2]  # the upper middle of 1,024 values
        scale = 1.4826 * np.sort(np.abs(image[::2, ::2].ravel() - med))[len(sub) // 2]
        scale = scale if scale > 0 else image.std()
        expected.append(np.arcsinh((image - med) / scale))
    out = normalize_images(raw.astype(dtype))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.array(expected), rtol=1e-5, atol=1e-5)

def test_dihedral_gives_the_eight_symmetries():
    image = np.arange(16).reshape(4, 4)
    views = {dihedral(image, code).tobytes() for code in range(8)}
    assert len(views) == 8
    np.testing.assert_array_equal(dihedral(image, 0), image)
    np.testing.assert_array_equal(dihedral(image, 1), np.rot90(image))
    np.testing.assert_array_equal(dihedral(image, 4), np.fliplr(image))


@pytest.mark.parametrize("shape", [(2, 3, 62, 62), (2, 3, 29, 29), (1, 1, 12, 12)])
def test_fast_max_pool_equals_library(shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(MaxPool2x2()(x), F.max_pool2d(x, 2), rtol=0, atol=0)
    x.requires_grad_(True)
    MaxPool2x2()(x).sum().backward()
    assert x.grad.sum().item() == shape[0] * shape[1] * (shape[2] // 2) * (shape[3] // 2)


# ---------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def blob():
    return blob_survey(n_per_class=12, n_images=6, seed=0)


def test_image_dataset_batches_are_normalised_and_augmented(blob):
    cache, _ = blob
    rows = np.array([1, 7, 8])
    ds = ImageDataset(cache, rows, y=np.array([0, 1, 1]), owner=np.array([5, 5, 6]))
    plain = ds.__getitems__([0, 1, 2])
    assert plain["x"].shape == (3, 1, 64, 64) and plain["x"].dtype == torch.float32
    expected = normalize_images(np.stack([cache.image(j) for j in rows]))
    np.testing.assert_array_equal(plain["x"][:, 0].numpy(), expected)
    assert plain["y"].tolist() == [0, 1, 1] and plain["owner"].tolist() == [5, 5, 6]
    turned = ds.__getitems__([(0, 3), (1, 0), (2, 6)])
    np.testing.assert_array_equal(turned["x"][0, 0].numpy(), dihedral(expected[0], 3))
    np.testing.assert_array_equal(turned["x"][2, 0].numpy(), dihedral(expected[2], 6))
    single = ds[1]
    np.testing.assert_array_equal(single["x"].numpy(), plain["x"][1].numpy())


def test_samplers_are_functions_of_seed_and_epoch():
    groups = [np.arange(0, 10), np.arange(10, 13), np.arange(13, 40)]
    sampler = ImageBatchSampler(40, 8, groups=groups, per_group=4, shuffle=True, augment=True, seed=3)
    first = [k for batch in sampler for k in batch]
    assert len(first) == 4 + 3 + 4 == sum(len(b) for b in sampler)
    assert len(sampler) == 2
    for lo, hi in ((0, 10), (10, 13), (13, 40)):
        assert sum(lo <= item < hi for item, _ in first) == min(4, hi - lo)
    assert first == [k for batch in sampler for k in batch]
    sampler.set_epoch(1)
    assert first != [k for batch in sampler for k in batch]



# ---------------------------------------------------------------- models


def test_registry_builds_the_networks():
    assert {"seed-cnn", "taonet", "taonet-lc", "lc-rf"} <= set(list_models())
    cnn, rnn = create_model("seed-cnn"), create_model("taonet", hidden=16)
    assert isinstance(cnn, ObjectClassifier) and isinstance(rnn, ObjectClassifier)
    assert cnn.image_level and not rnn.image_level
    assert rnn.get_params()["hidden"] == 16 and "max_epochs" in cnn.get_params()
    assert create_model("taonet-lc").uses_features and not rnn.uses_features
    with pytest.raises(TypeError):
        create_model("taonet", no_such_option=1)
    with pytest.raises(NotFittedError):
        cnn.predict_proba(None, np.arange(2))


@pytest.mark.parametrize(
    "params",
    [{"max_epochs": 0}, {"batch_size": 0}, {"class_weight": "inverse"}, {"precision": "fp8"}, {"average_decay": 1.0}],
)
def test_bad_parameters_fail_at_fit(params, blob):
    cache, y = blob
    with pytest.raises(ValueError):
        create_model("seed-cnn", **params).fit(cache, np.arange(4), y[:4], classes=CLASSES2)


def _fresh_split(y):
    rows = np.arange(len(y))
    return rows[rows % 4 != 0], rows[rows % 4 == 0]


@pytest.fixture(scope="module")
def fitted_cnn(blob):
    cache, y = blob
    train, val = _fresh_split(y)
    model = create_model("seed-cnn", max_epochs=4, batch_size=16, progress=False)
    return model.fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=0)


@pytest.mark.slow
def test_seed_cnn_separates_sources_from_sky(fitted_cnn):
    cache, y = blob_survey(n_per_class=10, n_images=6, seed=1)  # unseen objects
    proba = fitted_cnn.predict_proba(cache, np.arange(len(y)))
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (proba.argmax(axis=1) == y).mean() >= 0.95
    usable = np.flatnonzero(~cache.images.blank.to_numpy())
    image_proba = fitted_cnn.predict_image_proba(cache, usable)
    image_y = y[cache.images.object.to_numpy()[usable]]
    assert (image_proba.argmax(axis=1) == image_y).mean() >= 0.95


@pytest.mark.slow
def test_objects_without_images_get_the_uniform_distribution(fitted_cnn):
    cache, _ = blob_survey(n_per_class=1, n_images=6, seed=4)
    some = cache.object_images(0), np.arange(len(cache.object_images(0)), dtype=float)
    empty = np.zeros((0, 64, 64), np.uint16), np.zeros(0)
    # an empty object beside a scored one, and a call with nothing to score at all
    proba = fitted_cnn.predict_proba_arrays([some, empty])
    np.testing.assert_allclose(proba[0], fitted_cnn.predict_proba_arrays([some])[0])
    np.testing.assert_allclose(proba[1], [0.5, 0.5])
    np.testing.assert_allclose(fitted_cnn.predict_proba_arrays([empty, empty]), np.full((2, 2), 0.5))


@pytest.mark.slow
def test_bf16_prediction_copy_matches_float32_and_leaves_the_fitted_network_alone(fitted_cnn):
    cache, y = blob_survey(n_per_class=4, n_images=6, seed=3)
    usable = np.flatnonzero(~cache.images.blank.to_numpy())
    model = copy.deepcopy(fitted_cnn)
    model.precision = "32"
    threads = torch.get_num_threads()
    exact = model.predict_image_proba(cache, usable)
    assert torch.get_num_threads() == threads  # prediction leaves the process's settings alone
    assert model._predictor[0] is model.network_
    model.precision = "bf16"
    fast = model.predict_image_proba(cache, usable)
    net, cast, _ = model._predictor
    assert cast and net is not model.network_ and next(net.parameters()).dtype == torch.bfloat16
    assert next(model.network_.parameters()).dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: probabilities agree to a few hundredths, decisions agree
    np.testing.assert_allclose(fast, exact, atol=0.05)
    assert (fast.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.95


def test_image_split_validation_keeps_an_evenly_spaced_few_of_each_object():
    from deeptao.models.seed_cnn import _evenly_spaced_per_group

    # objects 7 (five images), 3 (two) and 9 (one), interleaved as an image split leaves them
    group = np.array([7, 3, 7, 7, 9, 7, 3, 7])
    kept = _evenly_spaced_per_group(group, 2)
    # object 7's first and last image, both of object 3's, object 9's only one
    np.testing.assert_array_equal(kept, [0, 1, 4, 6, 7])
    kept = _evenly_spaced_per_group(group, 3)
    # object 7's first, middle and last of its five; the others whole
    np.testing.assert_array_equal(kept, [0, 1, 3, 4, 6, 7])
    assert len(_evenly_spaced_per_group(np.zeros(0, np.int64), 2)) == 0


@pytest.mark.slow
def test_seed_cnn_trains_on_images(blob):
    cache, y = blob
    owner = cache.images.object.to_numpy()
    rows = np.arange(len(owner))
    train, val = rows[rows % 5 != 0], rows[rows % 5 == 0]
    model = create_model("seed-cnn", max_epochs=3, batch_size=16, progress=False, precision="32")
    # what an earlier object-level fit would have left: none of it may survive the image fit
    model.temperature_, model.prior_power_, model.class_prior_, model.pooling_ = 3.0, 0.5, (0.9, 0.1), "topk"
    model.fit_images(cache, train, y[owner[train]], classes=CLASSES2, val_image_rows=val, y_val=y[owner[val]])
    assert model.fit_result_.best_score is not None
    assert (model.temperature_, model.prior_power_, model.class_prior_, model._pooling_rule()) == (1.0, 0.0, None, "mean")
    fresh, fresh_y = blob_survey(n_per_class=6, n_images=6, seed=2)
    usable = np.flatnonzero(~fresh.images.blank.to_numpy())
    proba = model.predict_image_proba(fresh, usable)
    assert (proba.argmax(axis=1) == fresh_y[fresh.images.object.to_numpy()[usable]]).mean() >= 0.95


@pytest.mark.slow
def test_taonet_tells_rising_from_falling_over_the_same_brightnesses():
    # the same set of amplitudes in both classes, only their order in time differs
    cache, y = trend_survey(n_per_class=16, n_images=12, seed=0, falling=True)
    model = create_model("taonet", batch_size=8, max_epochs=12, progress=False, views=1, noise=0.0, night_dropout=0.0, lr=3e-3)
    model.fit(cache, np.arange(len(y)), y, classes=("rising", "falling"), seed=0)
    fresh, fresh_y = trend_survey(n_per_class=12, n_images=12, seed=5, falling=True)
    proba = model.predict_proba(fresh, np.arange(len(fresh_y)))
    assert (proba.argmax(axis=1) == fresh_y).mean() >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed-cnn", "taonet"])
def test_save_load_round_trip_and_arrays_match_cache(name, tmp_path, blob, fitted_cnn):
    cache, y = blob
    if name == "seed-cnn":
        model = fitted_cnn
    else:
        model = create_model("taonet", max_epochs=1, progress=False)
        model.fit(cache, np.arange(len(y)), y, classes=CLASSES2, seed=0)
    rows = np.arange(len(y))
    before = model.predict_proba(cache, rows)
    path = model.save(tmp_path / "model.pt")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.classes_ == model.classes_
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(cache, rows), before)
    # objects outside any cache, images given in a scrambled order
    rng = np.random.default_rng(0)
    items = []
    for i in rows:
        s, n = cache.objects.image_start[i], cache.objects.n_images[i]
        perm = rng.permutation(n)
        items.append((np.asarray(cache.object_images(i))[perm], cache.images.mjd.to_numpy()[s : s + n][perm]))
    np.testing.assert_allclose(loaded.predict_proba_arrays(items), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("absent", "kept"),
    [
        (("stamp_features", "variability_features", "event_features"), ()),
        (("variability_features", "event_features"), ("stamp_features",)),
        (("event_features",), ("stamp_features", "variability_features")),
    ],
    ids=["before-stamp-features", "before-variability-features", "before-event-features"],
)
def test_a_taonet_file_saved_before_a_feature_block_loads_without_it(tmp_path, blob, absent, kept):
    cache, y = blob
    params = {name: name in kept for name in ("stamp_features", "variability_features", "event_features")}
    model = create_model("taonet", max_epochs=1, progress=False, views=1, **params)
    model.fit(cache, np.arange(len(y)), y, classes=CLASSES2, seed=0)
    path = model.save(tmp_path / "model.pt")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for name in absent:
        del payload["params"][name]  # as a file written before the parameter existed
    torch.save(payload, path)
    loaded = load_model(path)
    assert {name: getattr(loaded, name) for name in params} == params
    rows = np.arange(len(y))
    np.testing.assert_array_equal(loaded.predict_proba(cache, rows), model.predict_proba(cache, rows))


def test_the_feature_blocks_are_measured_on_the_nights_given_to_early_classification(blob):
    cache, y = blob
    model = create_model("taonet", max_epochs=1, progress=False, views=1)
    assert model.stamp_features and model.variability_features and model.event_features  # the defaults
    assert not create_model("taonet-lc").event_features  # validation did not favour them there
    model.fit(cache, np.arange(len(y)), y, classes=CLASSES2, seed=0)
    from deeptao.data.representation import open_sequences

    store = open_sequences(cache, model._settings())
    rows = np.arange(len(y))
    objects = [store.object(int(r)) for r in rows]
    np.testing.assert_allclose(model.predict_proba_nights(objects), model.predict_proba(cache, rows), rtol=1e-5, atol=1e-6)
    early = [obj.first_nights(2) for obj in objects]
    assert not np.allclose(model.predict_proba_nights(early), model.predict_proba(cache, rows))
    with pytest.raises(ValueError, match=f"takes {12 + 5 + 6} features per object"):
        model._predict_nights(iter(objects), None, len(objects))


def test_foreign_model_file_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ModelFileError, match="not a deeptao model"):
        load_torch_model(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_torch_model(tmp_path / "missing.pt")


# ---------------------------------------------------------------- a real prepared cache


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return simulated_cache(tmp_path_factory.mktemp("survey"), objects_per_class=3, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed-cnn", "taonet", "taonet-lc"])
def test_networks_run_on_a_prepared_cache(name, real_cache, tmp_path):
    from deeptao.data.splits import split_cache
    from deeptao.data.tasks import select_task

    task = select_task("6class", real_cache.labels_array())
    split, _ = split_cache(real_cache, seed=0)
    part = split[task.rows]
    train, val, test = (task.rows[part == s] for s in ("train", "val", "test"))
    y_all = np.full(len(real_cache), -1)
    y_all[task.rows] = task.y
    model = create_model(name, max_epochs=1, limit_train_batches=2, progress=False)
    model.fit(real_cache, train, y_all[train], classes=task.classes, val_rows=val, y_val=y_all[val], workdir=tmp_path)
    proba = model.predict_proba(real_cache, test)
    assert proba.shape == (len(test), len(task.classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (tmp_path / "last.ckpt").is_file() and list(tmp_path.glob("logs/version_0/metrics.csv"))


@pytest.fixture(scope="module")
def cv_non_cache(tmp_path_factory):
    """A small simulated survey: 40 CVs and 40 non-transients among the other classes."""
    from deeptao.data.cache import open_cache, prepare
    from deeptao.simulate import SurveyConfig, simulate_survey

    root = tmp_path_factory.mktemp("cvnon")
    simulate_survey(root / "release", objects_per_class=40, seed=11, workers=2, config=SurveyConfig(catalogue_path="built-in"))
    prepare(root / "release", root / "cache", workers=1)
    return open_cache(root / "cache")


@pytest.mark.slow
def test_taonet_clearly_beats_chance_on_a_tiny_survey_within_seconds(cv_non_cache):
    from sklearn.metrics import f1_score

    from deeptao.data.splits import split_cache

    labels = cv_non_cache.labels_array()
    rows = np.flatnonzero(np.isin(labels, ["CV", "NON"]))
    y = (labels[rows] == "CV").astype(np.int64)
    split = split_cache(cv_non_cache, seed=0)[0][rows]
    train = split != "test"
    model = create_model("taonet", max_epochs=15, batch_size=8, progress=False, views=1)
    model.fit(cv_non_cache, rows[train], y[train], classes=("NON", "CV"), seed=0)
    proba = model.predict_proba(cv_non_cache, rows[~train])
    assert f1_score(y[~train], proba.argmax(axis=1), average="macro") >= 0.8


@pytest.mark.slow
def test_predictions_ignore_every_label_revealing_column(real_cache):
    """Discovery magnitude, CLASS-derived label, file variant, names: changing them changes nothing."""
    import copy as _copy

    from deeptao.data.tasks import select_task

    task = select_task("6class", real_cache.labels_array())
    rows = task.rows
    settings = {
        "taonet-lc": {"max_epochs": 1, "progress": False, "views": 2},
        "seed-cnn": {"max_epochs": 1, "progress": False},
        "lc-rf": {"n_estimators": 20},
    }
    honest = {}
    for name, params in settings.items():
        model = create_model(name, **params)
        model.fit(real_cache, rows, task.y, classes=task.classes, seed=0)
        honest[name] = (model, model.predict_proba(real_cache, rows))
    tampered = _copy.copy(real_cache)
    objects = real_cache.objects.copy()
    rng = np.random.default_rng(0)
    objects["mag"] = rng.uniform(10, 25, len(objects))
    objects["label"] = rng.permutation(objects["label"].to_numpy())
    objects["variant"] = np.where(objects["variant"] == objects["variant"].iloc[0], "other", objects["variant"].iloc[0])
    objects["crts_id"] = [f"CSS{k:06d}" for k in range(len(objects))]
    tampered.objects = objects
    for name, (model, proba) in honest.items():
        np.testing.assert_array_equal(model.predict_proba(tampered, rows), proba, err_msg=name)


def test_an_ensemble_averages_members_of_which_the_first_is_the_single_network(blob, tmp_path):
    from deeptao.models._torch import MemberAverage

    cache, y = blob
    rows = np.arange(len(y))
    kw = dict(max_epochs=2, batch_size=8, progress=False, views=1, precision="32", calibrate=False)
    single = create_model("taonet", **kw).fit(cache, rows, y, classes=CLASSES2, seed=3)
    pair = create_model("taonet", members=2, **kw).fit(cache, rows, y, classes=CLASSES2, seed=3, workdir=tmp_path / "w")
    assert isinstance(pair.network_, MemberAverage) and len(pair.fit_results_) == 2
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["member0", "member1"]
    # member 0 trains exactly as the single network; member 1 differs
    first, second = pair.network_.members
    for (name, a), b in zip(first.state_dict().items(), single.network_.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True))
    # the ensemble's probability is the members' mean
    each = []
    for member in (first, second):
        solo = create_model("taonet", **kw)
        solo.classes_, solo.network_ = CLASSES2, member
        each.append(solo.predict_proba(cache, rows))
    np.testing.assert_allclose(pair.predict_proba(cache, rows), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    # and it survives a save and a load
    loaded = load_model(pair.save(tmp_path / "pair.pt"))
    np.testing.assert_allclose(loaded.predict_proba(cache, rows), pair.predict_proba(cache, rows), rtol=0, atol=1e-7)


def test_networks_calibrate_on_validation_without_changing_any_argmax(blob, tmp_path):
    from deeptao.io import first_nights, sequence_nights
    from deeptao.models.calibration import NIGHTS_LADDER, apply_temperature, fit_nights_temperature, temperature_at

    cache, y = blob
    rows = np.arange(len(y))
    train, val = rows[::2], rows[1::2]
    kw = dict(max_epochs=2, batch_size=8, progress=False, views=2, precision="32")
    raw = create_model("taonet", calibrate=False, **kw).fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=1)
    cal = create_model("taonet", **kw).fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=1)
    assert (raw.temperature_, raw.temperature_slope_) == (1.0, 0.0)
    # the temperature and its slope are fitted on the validation objects whole and cut to the ladder's nights
    whole = [(cache.object_images(int(r)), cache.object_mjd(int(r))) for r in val]
    nights = np.array([sequence_nights(*item) for item in whole])
    cuts = [(first_nights(*item, k), k, label) for item, n, label in zip(whole, nights, y[val], strict=True) for k in NIGHTS_LADDER if k < n]
    assert cuts
    expected = fit_nights_temperature(
        np.concatenate([raw.predict_proba(cache, val), raw.predict_proba_arrays([c[0] for c in cuts])]),
        np.concatenate([y[val], [c[2] for c in cuts]]),
        np.concatenate([nights, [c[1] for c in cuts]]),
    )
    assert (cal.temperature_, cal.temperature_slope_) == pytest.approx(expected, rel=1e-6, abs=1e-9) and cal.temperature_ != 1.0
    t = temperature_at(*expected, cache.night_counts(rows))
    np.testing.assert_allclose(cal.predict_proba(cache, rows), apply_temperature(raw.predict_proba(cache, rows), t), atol=1e-6)
    assert (cal.predict_proba(cache, rows).argmax(1) == raw.predict_proba(cache, rows).argmax(1)).all()
    loaded = load_model(cal.save(tmp_path / "m.pt"))
    assert (loaded.temperature_, loaded.temperature_slope_) == pytest.approx((cal.temperature_, cal.temperature_slope_))


def test_fitting_a_network_leaves_the_callers_torch_stream_alone(blob):
    cache, y = blob
    train, val = _fresh_split(y)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first = create_model("seed-cnn", max_epochs=1, batch_size=16, progress=False, precision="32")
    first.fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=0)
    torch.testing.assert_close(torch.rand(3), expected)
    # and the seed alone fixes the initial weights, whatever the caller drew before
    torch.manual_seed(123)
    second = create_model("seed-cnn", max_epochs=1, batch_size=16, progress=False, precision="32")
    second.fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=0)
    for a, b in zip(first.network_.state_dict().values(), second.network_.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
