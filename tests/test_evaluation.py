"""Scores must agree with scikit-learn and survive the trip through the run folder."""

from __future__ import annotations

import ast
import inspect
import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

import deeptao.evaluation
from deeptao.evaluation import (
    BOOTSTRAP_SEED,
    TASK_CLASSES,
    RunError,
    _shared_replicates,
    aggregate,
    balanced_accuracy_from_confusion,
    bootstrap_macro_f1,
    bootstrap_macro_f1_shared,
    display_order,
    evaluate_run,
    leakage_gaps,
    load_predictions,
    macro_f1_ci,
    macro_f1_from_confusion,
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
    # OTHER has no true objects: it has no recall and is left out, as scikit-learn does
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected_bacc = balanced_accuracy_score(y_true, y_pred)
    assert s.balanced_accuracy == pytest.approx(expected_bacc)
    assert np.isnan(s.macro_f1_ci).all()  # per-seed scores carry no interval


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
    assert np.isnan(one.balanced_accuracy_std)


def test_aggregate_balanced_accuracy_is_mean_over_seeds():
    rng = np.random.default_rng(13)
    per_seed, parts = [], []
    for seed in (0, 1, 2):
        yt = random_labels(rng, 80, SIX)
        yp = [t if rng.random() < 0.6 else p for t, p in zip(yt, random_labels(rng, 80, SIX), strict=True)]
        per_seed.append(balanced_accuracy_score(yt, yp))
        parts.append(frame(yt, yp, seed=seed, rng=rng))
    (s,) = aggregate(score(pd.concat(parts, ignore_index=True)))
    assert s.balanced_accuracy == pytest.approx(np.mean(per_seed))
    assert s.balanced_accuracy_std == pytest.approx(np.std(per_seed, ddof=1))
    # a mean over seeds, not the balanced accuracy of the confusion matrix summed over seeds
    assert s.balanced_accuracy != pytest.approx(balanced_accuracy_from_confusion(s.confusion), rel=1e-9)
    assert math.isnan(balanced_accuracy_from_confusion(np.zeros((3, 3), dtype=int)))


# ---------------------------------------------------------------- bootstrap


def test_fast_macro_f1_equals_sklearn_on_random_resamples():
    rng = np.random.default_rng(7)
    for task in TASK_CLASSES:
        classes = list(TASK_CLASSES[task])
        # a class missing from the truth and one never predicted exercise zero_division
        y_true = np.array(random_labels(rng, 120, classes[1:] if len(classes) > 2 else classes))
        y_pred = np.array(random_labels(rng, 120, classes[:-1] if len(classes) > 2 else classes))
        resamples = [rng.integers(0, len(y_true), size=len(y_true)) for _ in range(25)]
        stack = np.stack([confusion_matrix(y_true[i], y_pred[i], labels=classes) for i in resamples])
        fast = macro_f1_from_confusion(stack)
        slow = [f1_score(y_true[i], y_pred[i], labels=classes, average="macro", zero_division=0) for i in resamples]
        assert fast.shape == (25,)
        np.testing.assert_array_equal(fast, slow)  # same formula, same floating-point operations
    assert float(macro_f1_from_confusion(np.zeros((3, 3), dtype=int))) == 0.0
    with pytest.raises(ValueError, match="shape"):
        macro_f1_from_confusion(np.zeros((2, 3)))


def _seeds(rng, n_seeds=3, n=60, accuracy=0.5, classes=SIX):
    out = []
    for _ in range(n_seeds):
        yt = np.array(random_labels(rng, n, classes))
        yp = np.where(rng.random(n) < accuracy, yt, np.array(random_labels(rng, n, classes)))
        out.append((yt, yp))
    return out


def test_bootstrap_matches_a_slow_sklearn_bootstrap_with_the_same_seed():
    """Spell each multinomial draw out as a resample of items and score it with scikit-learn."""
    rng = np.random.default_rng(8)
    seeds = _seeds(rng, n=50)
    n_boot = 150
    confusions = [confusion_matrix(yt, yp, labels=SIX) for yt, yp in seeds]

    slow_rng = np.random.default_rng(BOOTSTRAP_SEED)
    total = np.zeros(n_boot)
    for yt, yp in seeds:
        cells = [(t, p) for t in SIX for p in SIX]
        cm = confusion_matrix(yt, yp, labels=SIX).ravel()
        draws = slow_rng.multinomial(len(yt), cm / len(yt), size=n_boot)
        for b, counts in enumerate(draws):
            items = [cell for cell, k in zip(cells, counts, strict=True) for _ in range(k)]
            assert len(items) == len(yt)
            t, p = zip(*items, strict=True)
            total[b] += f1_score(t, p, labels=SIX, average="macro", zero_division=0)
    slow = total / len(seeds)

    fast = bootstrap_macro_f1(confusions, n_boot=n_boot, seed=BOOTSTRAP_SEED)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)
    lo, hi = macro_f1_ci(confusions, n_boot=n_boot, seed=BOOTSTRAP_SEED)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])), rel=1e-12)


def test_multinomial_bootstrap_has_the_distribution_of_item_resampling():
    """The textbook bootstrap (draw item indices) and the multinomial draw agree within Monte Carlo error."""
    rng = np.random.default_rng(9)
    seeds = _seeds(rng, n=60)
    n_boot = 20_000
    index_rng = np.random.default_rng(1)
    total = np.zeros(n_boot)
    for yt, yp in seeds:
        idx = index_rng.integers(0, len(yt), size=(n_boot, len(yt)))
        codes = (pd.Categorical(yt, SIX).codes * 6 + pd.Categorical(yp, SIX).codes)[idx]
        flat = (codes + 36 * np.arange(n_boot)[:, None]).ravel()
        total += macro_f1_from_confusion(np.bincount(flat, minlength=36 * n_boot).reshape(n_boot, 6, 6))
    textbook = total / len(seeds)

    fast = bootstrap_macro_f1([confusion_matrix(yt, yp, labels=SIX) for yt, yp in seeds], n_boot=n_boot, seed=2)
    # Monte Carlo standard errors here are below 0.001
    assert fast.mean() == pytest.approx(textbook.mean(), abs=0.002)
    assert fast.std() == pytest.approx(textbook.std(), rel=0.03)
    np.testing.assert_allclose(np.percentile(fast, [2.5, 97.5]), np.percentile(textbook, [2.5, 97.5]), atol=0.005)


def test_aggregate_stores_a_reproducible_interval_around_the_mean():
    rng = np.random.default_rng(10)
    seeds = _seeds(rng, n=150)
    table = pd.concat([frame(yt, yp, seed=k, rng=rng) for k, (yt, yp) in enumerate(seeds)], ignore_index=True)
    (s,) = aggregate(score(table))
    lo, hi = s.macro_f1_ci
    assert lo < s.macro_f1 < hi and hi - lo < 0.3
    # the seeds score the same item names: they are resampled together
    expected = np.percentile(bootstrap_macro_f1_shared([_outcomes(yt, yp) for yt, yp in seeds], 6), [2.5, 97.5])
    assert s.macro_f1_ci == pytest.approx(tuple(expected), rel=1e-12)

    # same numbers again, and whatever other settings share the table
    other = frame(*seeds[0], model="lc-rf", task="6class", rng=rng)
    again = {x.model: x for x in aggregate(score(pd.concat([table, other], ignore_index=True)))}
    assert again["seed-cnn"].macro_f1_ci == s.macro_f1_ci
    # more test items, narrower interval
    wide = aggregate(score(pd.concat([frame(yt[:30], yp[:30], seed=k, rng=rng) for k, (yt, yp) in enumerate(seeds)])))
    assert wide[0].macro_f1_ci[1] - wide[0].macro_f1_ci[0] > hi - lo
    (none,) = aggregate(score(table), n_boot=0)
    assert np.isnan(none.macro_f1_ci).all()


def _outcomes(y_true, y_pred, names=None):
    index = {c: k for k, c in enumerate(SIX)}
    names = np.array([f"CSS{i:06d}:0+0" for i in range(len(y_true))]) if names is None else np.asarray(names)
    return names, np.array([index[t] * 6 + index[p] for t, p in zip(y_true, y_pred, strict=True)])


def test_shared_bootstrap_matches_a_slow_sklearn_bootstrap_with_the_same_draws():
    """Each replicate: one count per item of the union, and every seed scored by scikit-learn with those counts as weights."""
    rng = np.random.default_rng(12)
    names = np.array([f"obj{i}" for i in range(70)])
    seeds = []
    for _ in range(3):  # each seed tests 40 of the 70 objects: they overlap
        chosen = np.sort(rng.choice(70, size=40, replace=False))
        yt = np.array(random_labels(rng, 40, SIX))
        yp = np.where(rng.random(40) < 0.5, yt, np.array(random_labels(rng, 40, SIX)))
        seeds.append((names[chosen], yt, yp))
    n_boot = 230  # more than one chunk of replicates
    fast = bootstrap_macro_f1_shared([_outcomes(yt, yp, nm) for nm, yt, yp in seeds], 6, n_boot=n_boot, seed=5)

    union = np.unique(np.concatenate([nm for nm, _, _ in seeds]))
    draw_rng = np.random.default_rng(5)
    counts = np.concatenate([draw_rng.multinomial(len(union), np.full(len(union), 1 / len(union)), size=min(100, n_boot - lo))
                             for lo in range(0, n_boot, 100)])  # fmt: skip
    slow = np.zeros(n_boot)
    for nm, yt, yp in seeds:
        weight = counts[:, np.searchsorted(union, nm)]
        for b in range(n_boot):
            keep = weight[b] > 0
            slow[b] += f1_score(yt[keep], yp[keep], labels=SIX, average="macro", zero_division=0, sample_weight=weight[b][keep])
    np.testing.assert_allclose(fast, slow / 3, rtol=1e-9, atol=1e-12)


def test_seeds_that_test_the_same_objects_are_not_counted_as_independent_evidence():
    rng = np.random.default_rng(13)
    (yt, yp), = _seeds(rng, n_seeds=1, n=200)
    one = np.percentile(bootstrap_macro_f1_shared([_outcomes(yt, yp)], 6, n_boot=4000), [2.5, 97.5])
    same = np.percentile(bootstrap_macro_f1_shared([_outcomes(yt, yp)] * 3, 6, n_boot=4000), [2.5, 97.5])
    independent = macro_f1_ci([confusion_matrix(yt, yp, labels=SIX)] * 3, n_boot=4000)
    # three seeds that scored the same objects alike know what one knows: the same interval
    np.testing.assert_allclose(same, one, rtol=1e-12)
    # resampled each on its own they would claim about sqrt(3) times the precision
    assert (independent[1] - independent[0]) < 0.7 * (same[1] - same[0])
    with pytest.raises(ValueError, match="confusion cells"):
        bootstrap_macro_f1_shared([(np.array(["a"]), np.array([36]))], 6)
    with pytest.raises(ValueError, match="no scored items"):
        bootstrap_macro_f1_shared([], 6)


def test_an_objects_images_are_resampled_together():
    rng = np.random.default_rng(14)
    objects = np.repeat([f"obj{i}" for i in range(40)], 30)  # 40 objects, 30 images each
    truth = np.repeat(rng.integers(0, 6, 40), 30)
    right = np.repeat(rng.random(40) < 0.5, 30)  # an object's images are right or wrong together
    cells = truth * 6 + np.where(right, truth, (truth + 1) % 6)
    by_object = np.percentile(bootstrap_macro_f1_shared([(objects, cells)], 6, n_boot=3000), [2.5, 97.5])
    by_image = np.percentile(bootstrap_macro_f1_shared([(np.arange(len(cells)).astype(str), cells)], 6, n_boot=3000), [2.5, 97.5])
    # 40 independent pieces of evidence, not 1200: the interval is several times wider
    assert by_object[1] - by_object[0] > 3 * (by_image[1] - by_image[0])
    table = frame([SIX[t] for t in truth], [SIX[c % 6] for c in cells], level="image", rng=rng)
    table["item"] = [f"{o}#{k}" for k, o in enumerate(objects)]
    (s,) = aggregate(score(table))
    assert s.macro_f1_ci == pytest.approx(
        tuple(np.percentile(bootstrap_macro_f1_shared([(objects, cells)], 6), [2.5, 97.5])), rel=1e-12
    )


def test_bootstrap_is_fast_for_objects_and_images():
    rng = np.random.default_rng(11)
    small = [confusion_matrix(yt, yp, labels=SIX) for yt, yp in _seeds(rng, n=300)]
    images = [rng.multinomial(50_000, np.full(36, 1 / 36)).reshape(6, 6) for _ in range(3)]
    for confusions in (small, images):
        start = time.perf_counter()
        lo, hi = macro_f1_ci(confusions, n_boot=1000)
        assert time.perf_counter() - start < 0.5
        assert 0 <= lo < hi <= 1


def test_bootstrap_rejects_what_it_cannot_resample():
    with pytest.raises(ValueError, match="no confusion"):
        bootstrap_macro_f1([])
    with pytest.raises(ValueError, match="non-negative"):
        bootstrap_macro_f1([np.zeros((2, 2), dtype=int)])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_macro_f1([np.eye(2, dtype=int)], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        macro_f1_ci([np.eye(2, dtype=int)], level=95)


def test_display_order_puts_taonet_lc_between_taonet_and_the_forest():
    rng = np.random.default_rng(12)
    models = ["lc-rf", "zeta-net", "taonet-lc", "seed-cnn", "taonet"]
    table = pd.concat([frame(*_seeds(rng, 1, n=10)[0], model=m, rng=rng) for m in models], ignore_index=True)
    assert [s.model for s in display_order(score(table))] == ["seed-cnn", "taonet", "taonet-lc", "lc-rf", "zeta-net"]


def test_leakage_gap_is_image_minus_object_for_same_setting():
    rng = np.random.default_rng(4)
    yt_o, yp_o = random_labels(rng, 60, SIX), random_labels(rng, 60, SIX)
    yt_i = random_labels(rng, 60, SIX)
    yp_i = [t if rng.random() < 0.8 else p for t, p in zip(yt_i, random_labels(rng, 60, SIX), strict=True)]
    table = pd.concat([frame(yt_o, yp_o, split="object"), frame(yt_i, yp_i, split="image")], ignore_index=True)
    (gap,) = leakage_gaps(aggregate(score(table)))
    expected = f1_score(yt_i, yp_i, labels=SIX, average="macro", zero_division=0) - f1_score(
        yt_o, yp_o, labels=SIX, average="macro", zero_division=0
    )
    assert gap["model"] == "seed-cnn" and gap["gap"] == pytest.approx(expected)
    lo, hi = gap["gap_ci95"]
    assert lo < gap["gap"] < hi and lo > 0  # an 80 %-right leaky split against chance: clearly above

    # the same predictions under both protocols: every replicate's gap is 0, the interval is [0, 0]
    same = pd.concat([frame(yt_o, yp_o, split="object"), frame(yt_o, yp_o, split="image")], ignore_index=True)
    (none,) = leakage_gaps(aggregate(score(same)))
    assert none["gap"] == 0 and none["gap_ci95"] == [0.0, 0.0]
    # the gap's replicates are the difference of each protocol's, drawn from the same objects
    b_obj, b_img = _shared_replicates(
        [[_outcomes(yt_o, yp_o)], [_outcomes(yt_i, yp_i)]], 6, n_boot=1000, seed=BOOTSTRAP_SEED
    )
    assert gap["gap_ci95"] == pytest.approx(list(np.percentile(b_img - b_obj, [2.5, 97.5])), rel=1e-12)
    np.testing.assert_array_equal(b_obj, bootstrap_macro_f1_shared([_outcomes(yt_o, yp_o)], 6, n_boot=1000))  # same union here
    assert leakage_gaps(aggregate(score(table)), n_boot=0)[0]["gap_ci95"] is None


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
    # the other rules are the models' own
    geometric = object_level_from_images(images, rule="geometric").set_index("item")
    expected = np.exp(np.log(proba[:4]).mean(axis=0))
    np.testing.assert_allclose(geometric.loc["obj1", [f"prob_{c}" for c in SIX]].to_numpy(dtype=float), expected / expected.sum())
    with pytest.raises(ValueError, match="pooling rule must be one of"):
        object_level_from_images(images, rule="vote")


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
    for name in ("metrics.json", "f1_scores.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "confusion_matrix.png").exists()  # figures are plotting's job
    assert set(result.files) == {"metrics", "f1_scores"}

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
    lo, hi = cnn["macro_f1_ci95"]
    shared = bootstrap_macro_f1_shared([_outcomes(*raw[s]) for s in (0, 1, 2)], 6)
    assert [lo, hi] == pytest.approx(np.percentile(shared, [2.5, 97.5]).tolist())
    assert lo < cnn["macro_f1"] < hi
    baccs = [balanced_accuracy_score(*raw[s]) for s in (0, 1, 2)]
    assert cnn["balanced_accuracy"] == pytest.approx(np.mean(baccs))
    assert cnn["balanced_accuracy_std"] == pytest.approx(np.std(baccs, ddof=1))
    assert metrics["bootstrap"]["replicates"] == 1000 and metrics["bootstrap"]["confidence"] == 0.95
    per_seed_cnn = {r["seed"]: r for r in metrics["per_seed"] if r["model"] == "seed-cnn"}
    assert per_seed_cnn[1]["balanced_accuracy"] == pytest.approx(baccs[1])
    assert "macro_f1_ci95" not in per_seed_cnn[1]
    tao = runs[("taonet", "5class")]
    assert tao["n_seeds"] == 1 and tao["macro_f1_std"] is None and tao["classes"] == SIX[:5]
    five = {c: k for k, c in enumerate(SIX[:5])}
    cells5 = np.array([five[t] * 5 + five[p] for t, p in zip(yt5, yp5, strict=True)])
    one_seed = bootstrap_macro_f1_shared([(np.array([f"CSS{i:06d}:0+0" for i in range(len(yt5))]), cells5)], 5)
    assert tao["macro_f1_ci95"] == pytest.approx(np.percentile(one_seed, [2.5, 97.5]).tolist())
    assert tao["per_class_f1"] == pytest.approx(
        dict(zip(SIX[:5], f1_score(yt5, yp5, labels=SIX[:5], average=None, zero_division=0), strict=True))
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
    evaluate_run(tmp_path)
    assert before == ((tmp_path / "metrics.json").read_bytes(), (tmp_path / "f1_scores.csv").read_bytes())


def test_single_seed_csv_has_no_std_columns(tmp_path):
    save_predictions(frame(["SN", "AGN", "NON"], ["SN", "NON", "NON"]), tmp_path)
    evaluate_run(tmp_path)
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


def test_evaluation_never_imports_plotting_or_the_report():
    """Plotting and the report depend on evaluation, never the reverse (no import cycle, no matplotlib)."""
    tree = ast.parse(inspect.getsource(deeptao.evaluation))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    forbidden = ("deeptao.plotting", "deeptao.report", "matplotlib")
    assert not [name for name in imported if name.startswith(forbidden)]
    assert "plot" not in inspect.signature(evaluate_run).parameters
