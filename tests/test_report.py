"""The report states the published anchors and a leakage gap computed from the predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from deeptao.evaluation import TASK_CLASSES, RunError, make_predictions, save_predictions
from deeptao.report import ANCHORS, ReportContext, write_report

SIX = list(TASK_CLASSES["6class"])


def predictions(rng, *, model, split, task="6class", seed=0, level="object", n=60, accuracy=0.5):
    """Predictions right with probability ``accuracy``; returns the table and its macro F1 by scikit-learn."""
    classes = list(TASK_CLASSES[task])
    y_true = rng.integers(0, len(classes), size=n)
    wrong = rng.integers(0, len(classes), size=n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, wrong)
    proba = np.full((n, len(classes)), 0.1)
    proba[np.arange(n), y_pred] = 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    sep = "#" if level == "image" else ""
    items = [f"o{i}{sep}{i % 3 if sep else ''}" for i in range(n)]
    table = make_predictions(
        model=model, split=split, task=task, seed=seed, level=level, items=items, y_true=y_true, proba=proba
    )
    names = np.asarray(classes)
    macro = f1_score(names[y_true], names[y_pred], labels=classes, average="macro", zero_division=0)
    return table, macro


@pytest.fixture()
def run(tmp_path):
    rng = np.random.default_rng(0)
    parts, macro = [], {}
    for seed in (0, 1, 2):
        for split, acc in (("object", 0.45), ("image", 0.9)):
            table, m = predictions(rng, model="seed-cnn", split=split, seed=seed, accuracy=acc)
            parts.append(table)
            macro[(split, seed)] = m
    for model in ("taonet", "lc-rf"):
        parts.append(predictions(rng, model=model, split="object", task="5class")[0])
    parts.append(predictions(rng, model="seed-cnn", split="object", level="image")[0])
    save_predictions(pd.concat(parts, ignore_index=True), tmp_path)
    return tmp_path, macro


def context(simulated):
    return ReportContext(
        command="deeptao replicate --data sim",
        data_root="/data/sim",
        simulated=simulated,
        objects_per_class={c: 10 for c in SIX},
        images_per_class={c: 700 + i for i, c in enumerate(SIX)},
        split_sizes={"object": {"train": {c: 6 for c in SIX}, "val": {c: 2 for c in SIX}, "test": {c: 2 for c in SIX}}},
        seeds=[0, 1, 2],
    )


def test_report_has_anchors_and_the_measured_leakage_gap(run):
    run_dir, macro = run
    text = write_report(run_dir, context=context(simulated=True)).read_text()

    for anchor in ANCHORS:
        published = f"{100 * anchor.value:.2f}"
        if anchor.std is not None:
            published += f" ± {100 * anchor.std:.2f}"
        assert published in text, anchor
    for figure in ("94.38", "54.58 ± 13.32", "45.49 ± 13.75", "96.25", "52.79", "50.10", "68.80", "87.10"):
        assert figure in text

    image = np.mean([macro[("image", s)] for s in (0, 1, 2)])
    obj = np.mean([macro[("object", s)] for s in (0, 1, 2)])
    assert image - obj > 0.2  # the constructed leak is large, so a sign error would show
    leakage = text.split("## Leakage gap")[1].split("\n## ")[0]
    row = next(line for line in leakage.splitlines() if line.startswith("| seed-cnn | 6 classes | object |"))
    assert f"**{100 * (image - obj):+.2f}**" in row
    assert f"{100 * obj:.2f}" in row and f"{100 * image:.2f}" in row

    # mean ± sample std over seeds for the object split
    std = np.std([macro[("object", s)] for s in (0, 1, 2)], ddof=1)
    assert f"{100 * obj:.2f} ± {100 * std:.2f}" in text

    for model in ("seed-cnn", "taonet", "lc-rf"):
        assert f"ours: {model}" in text
    assert "Simulated data" in text and "sanity check" in text
    assert "deeptao replicate --data sim" in text and "/data/sim" in text
    assert f"| **all** | 60 | {sum(context(True).images_per_class.values()):,} |" in text


def test_real_data_report_has_no_simulation_banner_and_links_figures(run):
    run_dir, _ = run
    (run_dir / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = write_report(run_dir, context=context(simulated=False)).read_text()
    assert "Simulated data" not in text
    assert "(confusion_matrix.png)" in text
    assert "training_curves.png" not in text  # not linked when absent


def test_report_without_context_uses_saved_one_or_says_unknown(run):
    run_dir, _ = run
    text = write_report(run_dir).read_text()
    assert "not recorded" in text and "## Leakage gap" in text
    context(simulated=True).save(run_dir / "context.json")
    assert "Simulated data" in write_report(run_dir).read_text()


def test_context_round_trip(tmp_path):
    ctx = context(simulated=True)
    assert ReportContext.load(ctx.save(tmp_path / "context.json")) == ctx
    (tmp_path / "bad.json").write_text('{"colour": 1}')
    with pytest.raises(ValueError, match="colour"):
        ReportContext.load(tmp_path / "bad.json")


def test_no_gap_without_both_splits(tmp_path):
    table, _ = predictions(np.random.default_rng(1), model="taonet", split="object", task="5class")
    save_predictions(table, tmp_path)
    text = write_report(tmp_path, context=context(simulated=True)).read_text()
    assert "not measured" in text


def test_report_on_empty_folder_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="predictions.parquet"):
        write_report(tmp_path, context=context(simulated=True))
