"""Scores must agree with scikit-learn and survive the trip through the run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from deeptao.evaluation import (
    TASK_CLASSES,
    RunError,
    aggregate,
    evaluate_run,
    leakage_gaps,
    load_predictions,
    make_predictions,
    object_level_from_images,
    save_predictions,
    score,
    validate_predictions,
)

SIX = list(TASK_CLASSES["6class"])


def frame(y_true, y_pred, *, model="seed-cnn", split="object", task="6class", seed=0, level="object", rng=None):
    """A predictions table written by hand, independent of make_predictions."""
    classes = TASK_CLASSES[task]
    rng = rng or np.random.default_rng(seed)
    n = len(y_true)
    probs = rng.dirichlet(np.ones(len(classes)), size=n)
    data = {
        "model": [model] * n,
        "split": [split] * n,
        "task": [task] * n,
        "seed": [seed] * n,
        "level": [level] * n,
        "item": [f"CSS{i:06d}:0+0" for i in range(n)],
        "y_true": list(y_true),
        "y_pred": list(y_pred),
    }
    data |= {f"prob_{c}": probs[:, j] for j, c in enumerate(classes)}
    return pd.DataFrame(data)


def random_labels(rng, n, classes):
    return list(rng.choice(classes, size=n))


# ------------------------------------------------------------------ score()


def test_score_matches_sklearn_with_missing_classes():
    rng = np.random.default_rng(1)
    # OTHER never occurs in y_true, BZ is never predicted
    y_true = random_labels(rng, 200, [c for c in SIX if c != "OTHER"])
    y_pred = random_labels(rng, 200, [c for c in SIX if c != "BZ"])
    (s,) = score(frame(y_true, y_pred))

    p, r, f, sup = precision_recall_fscore_support(y_true, y_pred, labels=SIX, zero_division=0)
    np.testing.assert_allclose(s.precision, p)
    np.testing.assert_allclose(s.recall, r)
    np.testing.assert_allclose(s.f1, f)
    np.testing.assert_array_equal(s.support, sup)
    assert s.macro_f1 == pytest.approx(f1_score(y_true, y_pred, labels=SIX, average="macro", zero_division=0))
    np.testing.assert_array_equal(s.confusion, confusion_matrix(y_true, y_pred, labels=SIX))
    with np.errstate(all="ignore"):
        expected_norm = confusion_matrix(y_true, y_pred, labels=SIX, normalize="true")
    np.testing.assert_allclose(s.confusion_normalized, np.nan_to_num(expected_norm))
    assert s.f1[SIX.index("BZ")] == 0 and s.f1[SIX.index("OTHER")] == 0
    assert not np.isnan(s.confusion_normalized).any()
    assert s.classes == tuple(SIX) and s.seeds == (0,)


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(sorted(TASK_CLASSES)),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
)
def test_score_agrees_with_sklearn_on_any_table(task, seed, n):
    rng = np.random.default_rng(seed)
    classes = list(TASK_CLASSES[task])
    y_true, y_pred = random_labels(rng, n, classes), random_labels(rng, n, classes)
    (s,) = score(frame(y_true, y_pred, task=task))
    assert s.macro_f1 == pytest.approx(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    np.testing.assert_allclose(s.f1, f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0))
    np.testing.assert_array_equal(s.confusion, confusion_matrix(y_true, y_pred, labels=classes))


def test_score_groups_by_model_split_task_level_seed():
    rng = np.random.default_rng(2)
    parts, truth = [], {}
    for model in ("seed-cnn", "lc-rf"):
        for split in ("object", "image"):
            for seed in (0, 1):
                yt, yp = random_labels(rng, 30, SIX), random_labels(rng, 30, SIX)
                truth[(model, split, "6class", "object", seed)] = (yt, yp)
                parts.append(frame(yt, yp, model=model, split=split, seed=seed, rng=rng))
    binary = list(TASK_CLASSES["binary"])
    yt, yp = random_labels(rng, 30, binary), random_labels(rng, 30, binary)
    truth[("seed-cnn", "object", "binary", "object", 0)] = (yt, yp)
    parts.append(frame(yt, yp, task="binary", rng=rng))
    scores = score(pd.concat(parts, ignore_index=True))
    assert len(scores) == len(truth)
    for s in scores:
        yt, yp = truth[s.key + (s.seeds[0],)]
        labels = list(TASK_CLASSES[s.task])
        assert s.macro_f1 == pytest.approx(f1_score(yt, yp, labels=labels, average="macro", zero_division=0))


# ---------------------------------------------------------------- aggregate


def test_aggregate_is_mean_and_sample_std_over_seeds():
    rng = np.random.default_rng(3)
    per_seed_f1, per_seed_macro, confusions = [], [], []
    parts = []
    for seed in (0, 1, 2, 3):
        yt, yp = random_labels(rng, 50, SIX), random_labels(rng, 50, SIX)
        per_seed_f1.append(f1_score(yt, yp, labels=SIX, average=None, zero_division=0))
        per_seed_macro.append(f1_score(yt, yp, labels=SIX, average="macro", zero_division=0))
        confusions.append(confusion_matrix(yt, yp, labels=SIX))
        parts.append(frame(yt, yp, seed=seed, rng=rng))
    # a second setting with a single seed
    parts.append(frame(random_labels(rng, 20, SIX), random_labels(rng, 20, SIX), model="taonet", rng=rng))
    summary = {s.model: s for s in aggregate(score(pd.concat(parts, ignore_index=True)))}

    s = summary["seed-cnn"]
    assert s.seeds == (0, 1, 2, 3) and s.n_seeds == 4
    assert s.macro_f1 == pytest.approx(np.mean(per_seed_macro))
    assert s.macro_f1_std == pytest.approx(np.std(per_seed_macro, ddof=1))
    np.testing.assert_allclose(s.f1, np.mean(per_seed_f1, axis=0))
    np.testing.assert_allclose(s.f1_std, np.std(per_seed_f1, axis=0, ddof=1))
    np.testing.assert_array_equal(s.confusion, np.sum(confusions, axis=0))
    np.testing.assert_array_equal(s.support, s.confusion.sum(axis=1))
    np.testing.assert_allclose(s.macro_f1_per_seed, per_seed_macro)

    one = summary["taonet"]
    assert one.n_seeds == 1 and np.isnan(one.macro_f1_std) and np.isnan(one.f1_std).all()


def test_leakage_gap_is_image_minus_object_for_same_setting():
    rng = np.random.default_rng(4)
    yt_o, yp_o = random_labels(rng, 60, SIX), random_labels(rng, 60, SIX)
    yt_i = random_labels(rng, 60, SIX)
    yp_i = [t if rng.random() < 0.8 else p for t, p in zip(yt_i, random_labels(rng, 60, SIX))]
    table = pd.concat([frame(yt_o, yp_o, split="object"), frame(yt_i, yp_i, split="image")], ignore_index=True)
    (gap,) = leakage_gaps(aggregate(score(table)))
    expected = f1_score(yt_i, yp_i, labels=SIX, average="macro", zero_division=0) - f1_score(
        yt_o, yp_o, labels=SIX, average="macro", zero_division=0
    )
    assert gap["model"] == "seed-cnn" and gap["gap"] == pytest.approx(expected)


# ------------------------------------------------------------ table helpers


def test_make_predictions_takes_argmax_and_fills_unseen_classes():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    table = make_predictions(
        model="lc-rf",
        split="object",
        task="6class",
        seed=7,
        level="object",
        items=["a", "b"],
        y_true=np.array([0, 2]),
        proba=proba,
        classes=["SN", "AGN", "NON"],
    )
    assert list(table["y_pred"]) == ["SN", "NON"]
    assert list(table["y_true"]) == ["SN", "NON"]
    assert (table["prob_BZ"] == 0).all() and table["seed"].dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        make_predictions(
            model="m", split="object", task="6class", seed=0, level="object", items=["a"], y_true=["SN"], proba=proba
        )


def test_validate_rejects_bad_tables():
    good = frame(["SN", "AGN"], ["SN", "SN"])
    with pytest.raises(ValueError, match="lack columns"):
        validate_predictions(good.drop(columns="y_pred"))
    with pytest.raises(ValueError, match="not classes of task"):
        validate_predictions(good.assign(y_true=["SN", "QSO"]))
    with pytest.raises(ValueError, match="twice"):
        validate_predictions(good.assign(item=["x", "x"]))
    with pytest.raises(ValueError, match="split"):
        validate_predictions(good.assign(split="random"))
    with pytest.raises(ValueError, match="prob_NON"):
        validate_predictions(good.drop(columns="prob_NON"))


def test_object_level_from_images_averages_probabilities():
    rng = np.random.default_rng(5)
    objects = {"obj1": "SN", "obj2": "CV"}
    items, y_true = [], []
    for obj, label in objects.items():
        for k in range(4):
            items.append(f"{obj}#{k}")
            y_true.append(label)
    proba = rng.dirichlet(np.ones(6), size=len(items))
    images = make_predictions(
        model="seed-cnn", split="object", task="6class", seed=0, level="image", items=items, y_true=y_true, proba=proba
    )
    objs = object_level_from_images(images).set_index("item")
    for i, obj in enumerate(objects):
        mean = proba[4 * i : 4 * i + 4].mean(axis=0)
        np.testing.assert_allclose(objs.loc[obj, [f"prob_{c}" for c in SIX]].to_numpy(dtype=float), mean)
        assert objs.loc[obj, "y_pred"] == SIX[int(mean.argmax())]
        assert objs.loc[obj, "y_true"] == objects[obj] and objs.loc[obj, "level"] == "object"


# ------------------------------------------------------------ run folder


def test_evaluate_run_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    parts, raw = [], {}
    for seed in (0, 1, 2):
        yt, yp = random_labels(rng, 40, SIX), random_labels(rng, 40, SIX)
        raw[seed] = (yt, yp)
        parts.append(frame(yt, yp, seed=seed, rng=rng))
    yt5, yp5 = random_labels(rng, 30, SIX[:5]), random_labels(rng, 30, SIX[:5])
    parts.append(frame(yt5, yp5, model="taonet", task="5class", rng=rng))
    table = pd.concat(parts, ignore_index=True)
    save_predictions(table, tmp_path)
    pd.testing.assert_frame_equal(
        load_predictions(tmp_path)[list(table.columns)].reset_index(drop=True), validate_predictions(table)[list(table.columns)]
    )

    result = evaluate_run(tmp_path)
    for name in ("metrics.json", "f1_scores.csv", "confusion_matrix.png"):
        assert (tmp_path / name).stat().st_size > 0

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"runs", "per_seed"} <= set(metrics)
    assert len(metrics["runs"]) == 2 and len(metrics["per_seed"]) == 4
    runs = {(r["model"], r["task"]): r for r in metrics["runs"]}
    cnn = runs[("seed-cnn", "6class")]
    required = {"model", "split", "task", "level", "n_seeds", "macro_f1", "macro_f1_std", "per_class_f1",
                "per_class_precision", "per_class_recall", "support", "confusion_matrix", "classes"}
    assert required <= set(cnn)
    macros = [f1_score(*raw[s], labels=SIX, average="macro", zero_division=0) for s in (0, 1, 2)]
    assert cnn["n_seeds"] == 3 and cnn["classes"] == SIX
    assert cnn["macro_f1"] == pytest.approx(np.mean(macros))
    assert cnn["macro_f1_std"] == pytest.approx(np.std(macros, ddof=1))
    assert cnn["confusion_matrix"] == sum(confusion_matrix(*raw[s], labels=SIX) for s in (0, 1, 2)).tolist()
    tao = runs[("taonet", "5class")]
    assert tao["n_seeds"] == 1 and tao["macro_f1_std"] is None and tao["classes"] == SIX[:5]
    assert tao["per_class_f1"] == pytest.approx(
        dict(zip(SIX[:5], f1_score(yt5, yp5, labels=SIX[:5], average=None, zero_division=0)))
    )
    seeds = sorted(r["seed"] for r in metrics["per_seed"] if r["model"] == "seed-cnn")
    assert seeds == [0, 1, 2]

    csv = pd.read_csv(tmp_path / "f1_scores.csv")
    assert list(csv.columns[:8]) == ["model", "split", "task", "level", "class", "precision", "recall", "f1"]
    assert {"precision_std", "recall_std", "f1_std"} <= set(csv.columns)
    cnn_rows = csv[(csv.model == "seed-cnn")].set_index("class").loc[SIX]
    per_seed = np.array([f1_score(*raw[s], labels=SIX, average=None, zero_division=0) for s in (0, 1, 2)])
    np.testing.assert_allclose(cnn_rows["f1"], per_seed.mean(axis=0))
    np.testing.assert_allclose(cnn_rows["f1_std"], per_seed.std(axis=0, ddof=1))
    assert csv[csv.model == "taonet"]["f1_std"].isna().all()
    assert len(result.summary) == 2

    # a rerun rewrites byte-identical tables
    before = (tmp_path / "metrics.json").read_bytes(), (tmp_path / "f1_scores.csv").read_bytes()
    evaluate_run(tmp_path, plot=False)
    assert before == ((tmp_path / "metrics.json").read_bytes(), (tmp_path / "f1_scores.csv").read_bytes())


def test_single_seed_csv_has_no_std_columns(tmp_path):
    save_predictions(frame(["SN", "AGN", "NON"], ["SN", "NON", "NON"]), tmp_path)
    evaluate_run(tmp_path, plot=False)
    csv = pd.read_csv(tmp_path / "f1_scores.csv")
    assert not any(c.endswith("_std") for c in csv.columns)


def test_append_replaces_the_same_run(tmp_path):
    first = frame(["SN", "AGN"], ["SN", "SN"], seed=0)
    other = frame(["SN"], ["CV"], seed=1)
    save_predictions(pd.concat([first, other], ignore_index=True), tmp_path)
    redo = frame(["CV", "CV", "BZ"], ["CV", "CV", "BZ"], seed=0)
    save_predictions(redo, tmp_path, append=True)
    stored = load_predictions(tmp_path)
    assert len(stored) == 4
    assert sorted(stored.loc[stored.seed == 0, "y_true"]) == ["BZ", "CV", "CV"]


def test_empty_run_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(RunError) as err:
        evaluate_run(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "predictions.parquet" in message
    assert isinstance(err.value, ValueError)


def test_corrupt_predictions_file_is_a_one_line_error(tmp_path):
    (tmp_path / "predictions.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(RunError) as err:
        evaluate_run(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path / "predictions.parquet") in str(err.value)
