"""lc-rf end to end: simulated survey -> cache -> stored light curves and features -> forest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deeptao import CLASSES
from deeptao.data.cache import open_cache, prepare
from deeptao.io import read_object
from deeptao.lightcurves import (
    FEATURE_NAMES,
    FEATURES_FILE,
    LIGHTCURVES_FILE,
    PhotometrySettings,
    compute_features,
    load_lightcurves,
    nightly_bin,
    photometry,
    store,
)
from deeptao.models import NotFittedError, create_model, list_models
from deeptao.models.lc_rf import LightCurveForest
from tests.fitsfactory import write_release_file


@pytest.fixture(scope="module")
def simulated_cache(tmp_path_factory):
    from deeptao.simulate import simulate_survey

    root = tmp_path_factory.mktemp("lc_rf")
    simulate_survey(root / "survey", objects_per_class=5, seed=3)
    prepare(root / "survey", root / "cache", workers=1)
    return root / "cache"


def _class_indices(cache) -> np.ndarray:
    return np.array([CLASSES.index(label) for label in cache.labels_array()])


def test_lc_rf_fits_and_predicts_a_simulated_survey(simulated_cache, tmp_path):
    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    train, test = rows[rows % 3 != 0], rows[rows % 3 == 0]
    assert "lc-rf" in list_models()
    model = create_model("lc-rf", n_estimators=60, n_jobs=1)
    assert model.fit(cache, train, y[train], classes=CLASSES, seed=7, workdir=tmp_path) is model
    proba = model.predict_proba(cache, test)
    assert proba.shape == (len(test), len(CLASSES)) and model.classes_ == list(CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(cache, test)) <= set(CLASSES)

    again = create_model("lc-rf", n_estimators=60, n_jobs=2).fit(cache, train, y[train], classes=CLASSES, seed=7)
    np.testing.assert_array_equal(again.predict_proba(cache, test), proba)  # seeded, whatever n_jobs

    assert list(tmp_path.iterdir()) == []  # nothing to checkpoint
    loaded = LightCurveForest.load(model.save(tmp_path / "model.joblib"))
    np.testing.assert_array_equal(loaded.predict_proba(cache, test), proba)

    # New files (no cache): read with the reader, measured from arrays, same answer.
    objs = [read_object(cache.objects["path"].iloc[i]) for i in test[:4]]
    from_files = loaded.predict_proba_arrays([(o.images, o.mjd, o.blank, o.table["duplicate"]) for o in objs])
    np.testing.assert_allclose(from_files, proba[:4])


def test_validation_chooses_the_prior_shift_of_an_imbalanced_training_set(simulated_cache, tmp_path):
    from deeptao.models.calibration import PRIOR_POWERS, apply_temperature, shift_to_prior, temperature_at

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    non = CLASSES.index("NON")
    # all NON objects and one of each other class train; the rest validate
    train = np.concatenate([rows[y == non], [rows[y == c][0] for c in range(len(CLASSES)) if c != non]])
    val = np.setdiff1d(rows, train)
    model = LightCurveForest(n_estimators=40, n_jobs=1).fit(cache, train, y[train], classes=CLASSES, val_rows=val, y_val=y[val])
    counts = np.bincount(y[train], minlength=len(CLASSES)) + 0.5
    np.testing.assert_allclose(model.class_prior_, counts / counts.sum())
    assert model.prior_power_ in PRIOR_POWERS
    model.prior_power_ = 0.5  # whatever validation chose, prediction applies the shift it holds, then the temperature
    raw = LightCurveForest.__dict__["_proba"](model, model.cache_features(cache, val))
    t = temperature_at(model.temperature_, model.temperature_slope_, cache.night_counts(val))
    np.testing.assert_allclose(model.predict_proba(cache, val), apply_temperature(shift_to_prior(raw, np.asarray(model.class_prior_), 0.5), t))
    unshifted = LightCurveForest(n_estimators=40, n_jobs=1, prior_shift=False).fit(cache, train, y[train], classes=CLASSES, val_rows=val, y_val=y[val])
    assert unshifted.prior_power_ == 0.0
    pytest.importorskip("skops")
    again = LightCurveForest.load_skops(model.save_skops(tmp_path / "m.skops"))
    assert (again.temperature_, again.temperature_slope_) == (model.temperature_, model.temperature_slope_)
    np.testing.assert_allclose(again.predict_proba(cache, val), model.predict_proba(cache, val))


def test_the_forest_fits_a_temperature_by_nights_on_validation_without_changing_any_argmax(simulated_cache):
    from deeptao.io import first_nights, sequence_nights
    from deeptao.models.calibration import NIGHTS_LADDER, apply_temperature, fit_nights_temperature, temperature_at

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    train, val = rows[rows % 2 == 0], rows[rows % 2 == 1]
    kw = dict(n_estimators=40, n_jobs=1, prior_shift=False)
    raw = LightCurveForest(calibrate=False, **kw).fit(cache, train, y[train], classes=CLASSES, val_rows=val, y_val=y[val], seed=3)
    cal = LightCurveForest(**kw).fit(cache, train, y[train], classes=CLASSES, val_rows=val, y_val=y[val], seed=3)
    assert (raw.temperature_, raw.temperature_slope_) == (1.0, 0.0)
    whole = [(cache.object_images(int(r)), cache.object_mjd(int(r))) for r in val]
    nights = np.array([sequence_nights(*item) for item in whole])
    cuts = [(first_nights(*item, k), k, label) for item, n, label in zip(whole, nights, y[val], strict=True) for k in NIGHTS_LADDER if k < n]
    expected = fit_nights_temperature(
        np.concatenate([raw.predict_proba(cache, val), raw.predict_proba_arrays([c[0] for c in cuts])]),
        np.concatenate([y[val], [c[2] for c in cuts]]),
        np.concatenate([nights, [c[1] for c in cuts]]),
    )
    assert (cal.temperature_, cal.temperature_slope_) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert cal.temperature_slope_ != 0.0  # a forest that has seen one night needs more temperature than one that has seen all
    p_raw, p_cal = raw.predict_proba(cache, rows), cal.predict_proba(cache, rows)
    np.testing.assert_allclose(p_cal, apply_temperature(p_raw, temperature_at(*expected, cache.night_counts(rows))), atol=1e-9)
    assert (p_cal.argmax(axis=1) == p_raw.argmax(axis=1)).all()


def test_stored_light_curves_equal_direct_photometry(simulated_cache):
    cache = open_cache(simulated_cache)
    features = compute_features(cache)
    assert list(features.index) == cache.objects["object_id"].tolist()
    assert list(features.columns[: len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    epochs = load_lightcurves(cache)
    assert len(epochs) == len(cache.images)
    np.testing.assert_array_equal(epochs["mjd"].to_numpy(), cache.images["mjd"].to_numpy())
    i = int(np.argmax(cache.objects["n_images"].to_numpy()))
    start, n = int(cache.objects["image_start"].iloc[i]), int(cache.objects["n_images"].iloc[i])
    rows = cache.images.iloc[start : start + n]
    direct = photometry(cache.object_images(i), rows["mjd"], rows["blank"], duplicate=rows["duplicate"])
    stored = epochs[epochs["object"] == i].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[direct.columns], direct, check_dtype=False)
    nights = nightly_bin(direct)
    assert features["n_nights"].iloc[i] == len(nights) == stored["night"].max() + 1
    assert features["n_good"].iloc[i] == direct["good"].sum()
    assert features["n_exposures"].iloc[i] == n


@pytest.mark.slow
def test_features_are_reused_and_recomputed_when_settings_change(simulated_cache, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "cache"
    shutil.copytree(simulated_cache, root, ignore=shutil.ignore_patterns(LIGHTCURVES_FILE, FEATURES_FILE))
    cache = open_cache(root)
    ticks: list[int] = []

    class Bar:
        def __init__(self, total, desc):
            self.total = total

        def update(self, n):
            ticks.append(n)

        def close(self):
            pass

    first = compute_features(cache, progress=Bar)
    assert sum(ticks) == len(cache)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no temporary left
    key = _stored_key_of(root)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although nothing changed")

    with monkeypatch.context() as patch:
        patch.setattr(store, "measure", fail)
        pd.testing.assert_frame_equal(compute_features(open_cache(root)), first)
        with pytest.raises(AssertionError, match="recomputed"):  # the patch does guard the work
            compute_features(cache, force=True)
    assert _stored_key_of(root) == key  # the failed run left the stored files alone...
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # ...and no temporary

    wider = compute_features(cache, settings=PhotometrySettings(aperture=4.0))
    assert _stored_key_of(root) != key
    assert not np.allclose(wider["std"].to_numpy(), first["std"].to_numpy(), equal_nan=True)

    (root / FEATURES_FILE).write_bytes(b"not parquet")  # damaged: recomputed, not trusted
    monkeypatch.setattr(store, "_CHUNK_OBJECTS", 7)  # several chunks, so two processes share them
    parallel = compute_features(cache, workers=2)
    pd.testing.assert_frame_equal(parallel, first)
    assert pq.read_table(root / LIGHTCURVES_FILE).num_rows == len(cache.images)


def _stored_key_of(root) -> bytes:
    return pq.read_schema(root / FEATURES_FILE).metadata[b"deeptao.lightcurves"]


def _toy_survey(root, n_per_class: int = 12) -> None:
    """Three obviously different behaviours, written with astropy: flat, outburst, oscillation."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    psf = np.exp(-((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / (2 * 1.0**2))
    psf /= psf.sum()
    for i in range(3 * n_per_class):
        label = ("NON", "SN", "AGN")[i % 3]
        nights = np.sort(rng.choice(np.arange(53400, 56000, 3), size=14, replace=False))
        mjd = np.concatenate([night + 0.3 + np.arange(4) * 0.007 for night in nights])
        if label == "NON":
            flux = np.full(mjd.size, 6000.0)
        elif label == "SN":
            peak = mjd[rng.integers(10, 40)]
            flux = 300.0 + 30000.0 * np.exp(-np.abs(mjd - peak) / 30.0) * (mjd >= peak - 10)
        else:
            flux = 6000.0 * (1 + 0.6 * np.sin(2 * np.pi * mjd / rng.uniform(200, 500)))
        images = rng.poisson(2000.0 + flux[:, None, None] * psf).astype(np.uint16)
        name = f"nonCSS:{i}.5+1.25" if label == "NON" else f"CSS0801{i:02d}:000000+000000"
        write_release_file(root, label=label, name=name, mjd=mjd, images=images, parent="CSS080100:000000+000000")


@pytest.mark.slow
def test_forest_separates_clearly_different_light_curves(tmp_path):
    _toy_survey(tmp_path / "toy")
    prepare(tmp_path / "toy", tmp_path / "cache", workers=1)
    cache = open_cache(tmp_path / "cache")
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    train, test = rows[rows % 2 == 0], rows[rows % 2 == 1]
    model = LightCurveForest(n_estimators=100, n_jobs=1).fit(cache, train, y[train], classes=CLASSES)
    accuracy = (model.predict_proba(cache, test).argmax(axis=1) == y[test]).mean()
    assert accuracy >= 0.85, accuracy
    proba = model.predict_proba(cache, test)
    absent = [CLASSES.index(c) for c in ("BZ", "CV", "OTHER")]
    assert (proba[:, absent] == 0).all()  # never trained on: never predicted


def test_undefined_features_are_imputed(tmp_path):
    # One object whose every image is blank has no light curve at all.
    root = tmp_path / "s"
    for i, label in enumerate(["SN", "AGN", "SN", "AGN", "NON", "NON"]):
        name = f"nonCSS:{i}.5+1.25" if label == "NON" else f"CSS0801{i:02d}:000000+000000"
        write_release_file(root, label=label, name=name, n=16, seed=i, blank=tuple(range(16)) if i == 0 else ())
    prepare(root, tmp_path / "cache", workers=1)
    cache = open_cache(tmp_path / "cache")
    features = compute_features(cache)
    assert features.iloc[0][list(FEATURE_NAMES)].isna().all() and features["n_good"].iloc[0] == 0
    labels = cache.labels_array().astype(str)
    model = LightCurveForest(n_estimators=20, n_jobs=1).fit(cache, np.arange(6), labels, classes=CLASSES)
    proba = model.predict_proba(cache, np.arange(6))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.feature_importances_) == set(FEATURE_NAMES)
    assert sum(model.feature_importances_.values()) == pytest.approx(1.0)


def test_misuse_is_refused(simulated_cache):
    cache = open_cache(simulated_cache)
    model = LightCurveForest(n_estimators=5, n_jobs=1)
    with pytest.raises(NotFittedError):
        model.predict_proba(cache, np.arange(3))
    with pytest.raises(ValueError, match="class indices"):
        model.fit(cache, np.arange(3), np.array([0, 1, 9]), classes=CLASSES)
    with pytest.raises(ValueError, match="single class"):
        model.fit(cache, np.arange(3), np.array([1, 1, 1]), classes=CLASSES)
    with pytest.raises(ValueError, match="not among classes"):
        model.fit(cache, np.arange(2), np.array(["SN", "XX"]), classes=CLASSES)
    with pytest.raises(ValueError, match="workers"):
        compute_features(cache, workers=0)
    fitted = LightCurveForest(n_estimators=5, n_jobs=1).fit(cache, np.arange(6), np.arange(6) % 2, classes=CLASSES)
    images = np.zeros((3, 64, 64), dtype=np.uint16)
    with pytest.raises(ValueError, match="got 1 items"):
        fitted.predict_proba_arrays([(images,)])


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(ValueError, match="no such model file"):
        LightCurveForest.load(tmp_path / "missing.joblib")
    (tmp_path / "text.joblib").write_text("hello")
    with pytest.raises(ValueError, match="not a deeptao model file"):
        LightCurveForest.load(tmp_path / "text.joblib")
    import joblib

    joblib.dump({"format": "something else"}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="not an lc-rf model file"):
        LightCurveForest.load(tmp_path / "other.joblib")


def test_predict_says_what_the_reader_left_out(simulated_cache, tmp_path, capsys):
    from deeptao.cli import main

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    model = create_model("lc-rf", n_estimators=10, n_jobs=1).fit(cache, rows, y, classes=CLASSES, seed=0)
    saved = model.save(tmp_path / "model.joblib")
    odd = write_release_file(tmp_path / "new", label="CV", n=9, replace={4: np.ones((60, 64), np.uint16)})
    assert main(["predict", str(saved), str(odd), "--out", str(tmp_path / "p.csv")]) == 0
    from astropy.io import fits

    with fits.open(odd) as hdul:
        ext = next(k for k in range(2, len(hdul)) if hdul[k].data.shape == (60, 64))
        row = list(hdul[1].data["HDU_Ext"]).index(ext)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"deeptao predict: {odd}: HDU {ext}, row {row}: image is 60x64, not 64x64"]
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


def test_predict_max_nights_classifies_from_the_first_nights_only(simulated_cache, tmp_path, capsys):
    from deeptao.cli import main
    from deeptao.io import first_nights, read_object

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    model = create_model("lc-rf", n_estimators=10, n_jobs=1).fit(cache, rows, y, classes=CLASSES, seed=0)
    saved = model.save(tmp_path / "model.joblib")
    files = [Path(p) for p in cache.objects["path"].iloc[:4]]
    assert main(["predict", str(saved), *map(str, files), "--max-nights", "2", "--out", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    objects = [read_object(f) for f in files]
    expected = model.predict_proba_arrays([first_nights(o.images, o.mjd, 2) for o in objects])
    np.testing.assert_allclose(table[[f"prob_{c}" for c in model.classes_]].to_numpy(), expected, atol=1e-12)
    capsys.readouterr()
    assert main(["predict", str(saved), str(files[0]), "--max-nights", "0"]) == 2
    assert capsys.readouterr().err.strip() == "deeptao predict: error: --max-nights must be at least 1, got 0"


def test_the_forest_takes_the_representations_feature_blocks_alike_from_cache_and_files(simulated_cache):
    from deeptao.data.night_features import NIGHT_FEATURE_BLOCKS
    from deeptao.data.representation import SequenceSettings, open_sequences
    from deeptao.data.stamp_features import STAMP_FEATURE_NAMES, stamp_feature_matrix

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    train, test = rows[rows % 3 != 0], rows[rows % 3 == 0]
    # named out of the blocks' order: the forest keeps the blocks' own order
    blocks = ("event_features", "stamp_features")
    model = create_model("lc-rf", n_estimators=40, n_jobs=1, night_features=blocks)
    model.prepare_inputs(cache)
    model.fit(cache, train, y[train], classes=CLASSES, seed=1)
    extra = [name for block in NIGHT_FEATURE_BLOCKS if block.option in blocks for name in block.names]
    assert model.feature_names_ == [*FEATURE_NAMES, *extra] and extra[: len(STAMP_FEATURE_NAMES)] == list(STAMP_FEATURE_NAMES)

    # the columns after the light-curve features are the stamp block of the stored representation (crop 12)
    X = model.cache_features(cache, test)
    store = open_sequences(cache, SequenceSettings(crop=12))
    stamp = stamp_feature_matrix([store.object(int(r)) for r in test], SequenceSettings(crop=12).aperture)
    np.testing.assert_array_equal(X[:, len(FEATURE_NAMES) : len(FEATURE_NAMES) + len(STAMP_FEATURE_NAMES)], stamp)

    # a loose file, read by the reader and given in file order, scores as its cached copy
    proba = model.predict_proba(cache, test)
    objs = [read_object(cache.objects["path"].iloc[i]) for i in test[:4]]
    from_files = model.predict_proba_arrays([(o.images, o.mjd) for o in objs])
    np.testing.assert_allclose(from_files, proba[:4])
    flipped = model.predict_proba_arrays([(o.images[::-1], o.mjd[::-1], o.blank[::-1], o.table["duplicate"].to_numpy()[::-1]) for o in objs])
    np.testing.assert_allclose(flipped, proba[:4])

    lc_only = create_model("lc-rf", n_estimators=40, n_jobs=1).fit(cache, train, y[train], classes=CLASSES, seed=1)
    assert lc_only.feature_names_ == list(FEATURE_NAMES) and lc_only.cache_features(cache, test).shape[1] == len(FEATURE_NAMES)


def test_unknown_feature_blocks_are_refused(simulated_cache):
    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    for bad, match in ((("stamp_features", "colour_features"), "unknown night_features"), ("stamp_features", "a sequence")):
        with pytest.raises(ValueError, match=match):
            create_model("lc-rf", n_estimators=5, n_jobs=1, night_features=bad).fit(cache, np.arange(len(cache)), y, classes=CLASSES)


def test_a_forest_with_feature_blocks_round_trips_through_skops_and_its_card_says_how_to_build_them(simulated_cache, tmp_path):
    pytest.importorskip("skops")
    from deeptao.models.export import model_card

    cache = open_cache(simulated_cache)
    y = _class_indices(cache)
    rows = np.arange(len(cache))
    model = create_model("lc-rf", n_estimators=20, n_jobs=1, night_features=("stamp_features",))
    model.fit(cache, rows[rows % 2 == 0], y[rows % 2 == 0], classes=CLASSES, seed=2)
    loaded = LightCurveForest.load_skops(model.save_skops(tmp_path / "forest.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(cache, rows[1::2]), model.predict_proba(cache, rows[1::2]))
    card = model_card(model, source=tmp_path, file=tmp_path / "forest.skops", format="skops")["representation"]
    assert card["features"] == model.feature_names_ and card["settings"]["crop"] == 12
    assert any("deeptao.data.stamp_features.stamp_features" in step for step in card["build"])
