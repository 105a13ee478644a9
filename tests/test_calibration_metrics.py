"""Calibration error and early-classification scores, each checked against an independent computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn.metrics import f1_score

from deeptao.evaluation import (
    EARLY_PREDICTIONS_FILE,
    TASK_CLASSES,
    early_scores,
    evaluate_run,
    expected_calibration_error,
    make_predictions,
    save_predictions,
    score,
    validate_early_predictions,
)

SIX = TASK_CLASSES["6class"]


def _slow_ece(proba, y, n_bins=15):
    """Loop over bins with explicit edges, (lo, hi] (the first closed), as the definition reads."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if inside.any():
            total += inside.sum() / len(y) * abs(correct[inside].mean() - conf[inside].mean())
    return total


def test_ece_matches_a_bin_by_bin_computation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        proba = softmax(rng.normal(0, 2, (300, 6)), axis=1)
        y = rng.integers(0, 6, 300)
        assert expected_calibration_error(proba, y) == pytest.approx(_slow_ece(proba, y), abs=1e-12)


def test_ece_of_perfect_and_of_overconfident_predictions():
    y = np.array([0, 1, 2, 0])
    certain = np.eye(3)[y]
    assert expected_calibration_error(certain, y) == 0.0
    wrong = np.eye(3)[(y + 1) % 3]
    assert expected_calibration_error(wrong, y) == 1.0
    assert math.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, np.int64)))


def _calibrated_table(rng, n, temperature, seed=0):
    raw = softmax(rng.normal(0, 3, (n, 6)), axis=1)
    y = rng.integers(0, 6, n)
    calibrated = softmax(np.log(raw) / temperature, axis=1)
    frame = make_predictions(model="taonet", split="object", task="6class", seed=seed, level="object",
                             items=[f"o{i}" for i in range(n)], y_true=y, proba=calibrated, temperature=temperature)  # fmt: skip
    return frame, raw, calibrated, y


def test_score_recovers_the_uncalibrated_error_from_the_recorded_temperature():
    rng = np.random.default_rng(2)
    frame, raw, calibrated, y = _calibrated_table(rng, 400, 2.5)
    (s,) = score(frame)
    assert s.ece == pytest.approx(_slow_ece(calibrated, y), abs=1e-9)
    assert s.ece_uncalibrated == pytest.approx(_slow_ece(raw, y), abs=1e-9)
    # without a temperature nothing is claimed about the uncalibrated model
    (plain,) = score(frame.drop(columns="temperature"))
    assert plain.ece == pytest.approx(s.ece) and math.isnan(plain.ece_uncalibrated)


def test_a_temperature_per_object_is_recorded_and_undone_row_by_row():
    rng = np.random.default_rng(4)
    n = 300
    raw = softmax(rng.normal(0, 3, (n, 6)), axis=1)
    y = rng.integers(0, 6, n)
    temperature = rng.choice([0.7, 1.3, 2.9], size=n)  # as a temperature that depends on each object's nights
    calibrated = softmax(np.log(raw) / temperature[:, None], axis=1)
    frame = make_predictions(model="taonet", split="object", task="6class", seed=0, level="object",
                             items=[f"o{i}" for i in range(n)], y_true=y, proba=calibrated, temperature=temperature)  # fmt: skip
    np.testing.assert_array_equal(frame["temperature"].to_numpy(), temperature)
    (s,) = score(frame)
    assert s.ece == pytest.approx(_slow_ece(calibrated, y), abs=1e-9)
    assert s.ece_uncalibrated == pytest.approx(_slow_ece(raw, y), abs=1e-9)
    with pytest.raises(ValueError, match="one per item"):
        make_predictions(model="taonet", split="object", task="6class", seed=0, level="object",
                         items=[f"o{i}" for i in range(n)], y_true=y, proba=calibrated, temperature=temperature[:-1])  # fmt: skip


def test_a_bad_temperature_column_is_refused():
    frame, *_ = _calibrated_table(np.random.default_rng(3), 10, 2.0)
    frame.loc[0, "temperature"] = -1.0
    with pytest.raises(ValueError, match="temperature"):
        score(frame)


def _early_table(rng, nights_list, seeds=(0, 1), n=60):
    parts = []
    for seed in seeds:
        y = rng.integers(0, 6, n)
        for k in nights_list:
            # later cuts know more: the true class gets more weight
            logits = rng.normal(0, 1, (n, 6))
            logits[np.arange(n), y] += 0.5 * (k if k else 20)
            f = make_predictions(model="taonet", split="object", task="6class", seed=seed, level="object",
                                 items=[f"o{i}" for i in range(n)], y_true=y, proba=softmax(logits, axis=1))  # fmt: skip
            parts.append(f.assign(nights=k))
    return pd.concat(parts, ignore_index=True)


def test_early_scores_are_sklearn_macro_f1_per_cut_averaged_over_seeds():
    early = _early_table(np.random.default_rng(4), [1, 2, 4, 0])
    curves = early_scores(early)
    curve = curves["taonet/object/6class/object"]
    assert [e["nights"] for e in curve] == [1, 2, 4, 0]
    for entry in curve:
        at_k = early[early.nights == entry["nights"]]
        expected = [
            f1_score(r.y_true, r.y_pred, labels=list(SIX), average="macro", zero_division=0)
            for _, r in at_k.groupby("seed")
        ]
        assert entry["macro_f1"] == pytest.approx(np.mean(expected))
        assert entry["macro_f1_std"] == pytest.approx(np.std(expected, ddof=1))
        assert entry["n_seeds"] == 2 and entry["n_objects"] == 60
        # calibration of the same predictions, by the loop-over-bins definition, averaged over seeds
        probs = [f"prob_{c}" for c in SIX]
        per_seed = [(r[probs].to_numpy(), np.array([SIX.index(t) for t in r.y_true])) for _, r in at_k.groupby("seed")]
        assert entry["ece"] == pytest.approx(np.mean([_slow_ece(p, y) for p, y in per_seed]))
        assert entry["confidence"] == pytest.approx(np.mean([p.max(axis=1).mean() for p, _ in per_seed]))
        assert entry["accuracy"] == pytest.approx(np.mean([(p.argmax(axis=1) == y).mean() for p, y in per_seed]))
    assert curve[0]["macro_f1"] < curve[-1]["macro_f1"]


@pytest.mark.parametrize("bad", [-1, 1.5, None])
def test_early_tables_with_bad_nights_are_refused(bad):
    early = _early_table(np.random.default_rng(5), [1], seeds=(0,), n=5).astype({"nights": object})
    early.loc[0, "nights"] = bad
    with pytest.raises(ValueError, match="nights"):
        validate_early_predictions(early)
    with pytest.raises(ValueError, match="nights"):
        validate_early_predictions(early.drop(columns="nights"))


def test_evaluate_run_writes_ece_and_the_early_curve_into_metrics_json(tmp_path):
    rng = np.random.default_rng(6)
    frame, *_ = _calibrated_table(rng, 100, 1.7)
    save_predictions(frame, tmp_path)
    _early_table(rng, [1, 0], seeds=(0,)).to_parquet(tmp_path / EARLY_PREDICTIONS_FILE)
    evaluation = evaluate_run(tmp_path, n_boot=0)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    (run,) = metrics["runs"]
    assert run["ece"] == pytest.approx(evaluation.summary[0].ece) and run["ece_uncalibrated"] is not None
    assert [e["nights"] for e in metrics["early"]["taonet/object/6class/object"]] == [1, 0]


def test_pr_auc_is_sklearn_average_precision_per_class_and_averaged_over_seeds(tmp_path):
    from sklearn.metrics import average_precision_score

    from deeptao.evaluation import aggregate

    rng = np.random.default_rng(9)
    frames = []
    for seed in (0, 1):
        y = rng.integers(0, 5, 80)  # NON (index 5) never occurs: its PR-AUC is undefined
        proba = softmax(rng.normal(0, 1, (80, 6)) + 2.0 * np.eye(6)[y], axis=1)
        frames.append(make_predictions(model="taonet", split="object", task="6class", seed=seed, level="object",
                                       items=[f"o{i}" for i in range(80)], y_true=y, proba=proba))  # fmt: skip
    per_seed = score(pd.concat(frames, ignore_index=True))
    for s, frame in zip(per_seed, frames, strict=True):
        for j, cls in enumerate(SIX[:5]):
            expected = average_precision_score(frame.y_true == cls, frame[f"prob_{cls}"])
            assert s.pr_auc[j] == pytest.approx(expected)
        assert math.isnan(s.pr_auc[5])
    (summary,) = aggregate(per_seed, n_boot=0)
    np.testing.assert_allclose(summary.pr_auc[:5], np.mean([s.pr_auc[:5] for s in per_seed], axis=0))
    assert math.isnan(summary.pr_auc[5])
    save_predictions(pd.concat(frames, ignore_index=True), tmp_path)
    evaluate_run(tmp_path, n_boot=0)
    (run,) = json.loads((tmp_path / "metrics.json").read_text())["runs"]
    assert run["per_class_pr_auc"]["NON"] is None
    assert run["macro_pr_auc"] == pytest.approx(np.mean(summary.pr_auc[:5]))
