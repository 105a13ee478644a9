"""The report states the published anchors and a leakage gap computed from the predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from deeptao.evaluation import (
    TASK_CLASSES,
    RunError,
    bootstrap_macro_f1_shared,
    make_predictions,
    save_predictions,
)
from deeptao.report import ANCHORS, ReportContext, write_report

SIX = list(TASK_CLASSES["6class"])

# Published F1 in % per result, as the release notes give them.
PUBLISHED = {
    "CNN, images split at random": "94.38",
    "TAO-Net (CNN + GRU on image sequences)": "54.58 ± 13.32",
    "random forest on light curves": "45.49 ± 13.75",
    "random forest on light curves, transient vs non-transient": "96.25",
    "random forest on light curves, 8 classes": "52.79",
    "random forest, per-class F1 SN": "50.10",
    "random forest, per-class F1 CV": "68.80",
    "random forest, per-class F1 AGN": "61.70",
    "random forest, per-class F1 BZ": "47.90",
    "random forest, per-class F1 OTHER": "36.50",
    "random forest, per-class F1 NON": "87.10",
}


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


def shared_interval(tables):
    """The interval of seeds resampled together (their test objects overlap), cells by scikit-learn's class order."""
    classes = list(TASK_CLASSES[tables[0]["task"].iloc[0]])
    index = {c: k for k, c in enumerate(classes)}
    outcomes = [
        (t["item"].to_numpy(dtype=str), np.array([index[a] * len(classes) + index[b] for a, b in zip(t["y_true"], t["y_pred"], strict=True)]))
        for t in tables
    ]
    return tuple(np.percentile(bootstrap_macro_f1_shared(outcomes, len(classes)), [2.5, 97.5]))


@pytest.fixture()
def run(tmp_path):
    """seed-cnn on 6 classes (3 seeds, both splits), taonet, taonet-lc and lc-rf on 5 classes (1 seed)."""
    rng = np.random.default_rng(0)
    parts, macro, tables = [], {}, {}
    for seed in (0, 1, 2):
        for split, acc in (("object", 0.45), ("image", 0.9)):
            table, m = predictions(rng, model="seed-cnn", split=split, seed=seed, accuracy=acc)
            parts.append(table)
            macro[(split, seed)] = m
            tables[(split, seed)] = table
    for model, acc in (("taonet", 0.6), ("taonet-lc", 0.3), ("lc-rf", 0.8)):
        table, m = predictions(rng, model=model, split="object", task="5class", accuracy=acc)
        parts.append(table)
        macro[model] = m
        tables[model] = table
    parts.append(predictions(rng, model="seed-cnn", split="object", level="image")[0])
    save_predictions(pd.concat(parts, ignore_index=True), tmp_path)
    return tmp_path, macro, tables


def anchor_cells(text, result):
    """The anchor table's row for one published result, as {column: cell}."""
    section = text.split("## Comparison with published numbers")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines[2:] if line.startswith(f"| {result} |"))
    return dict(zip(header, (c.strip() for c in row.strip("|").split("|")), strict=True))


def ours(macro, interval, std=None):
    """A macro F1 cell as the report should write it: mean [± std] [lo, hi], in %."""
    mean = f"{100 * macro:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")
    return f"{mean} [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


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
    run_dir, macro, _ = run
    text = write_report(run_dir, context=context(simulated=True)).read_text()

    # each published figure (typed from the release notes, not taken from deeptao) on its own row
    for result, published in PUBLISHED.items():
        assert anchor_cells(text, result)["published"] == published, result
    assert len(ANCHORS) == len(PUBLISHED)

    image = np.mean([macro[("image", s)] for s in (0, 1, 2)])
    obj = np.mean([macro[("object", s)] for s in (0, 1, 2)])
    assert image - obj > 0.2  # the constructed leak is large, so a sign error would show
    leakage = text.split("## Leakage gap")[1].split("\n## ")[0]
    row = next(line for line in leakage.splitlines() if line.startswith("| seed-cnn | 6 classes | object |"))
    assert f"**{100 * (image - obj):+.2f}** [+" in row  # the gap and its interval, clearly above 0
    assert f"{100 * obj:.2f}" in row and f"{100 * image:.2f}" in row

    # mean ± sample std over seeds for the object split
    std = np.std([macro[("object", s)] for s in (0, 1, 2)], ddof=1)
    assert f"{100 * obj:.2f} ± {100 * std:.2f}" in text

    header = next(line for line in text.splitlines() if line.startswith("| published result |"))
    assert header.index("ours: seed-cnn") < header.index("ours: taonet |") < header.index("ours: taonet-lc")
    assert header.index("ours: taonet-lc") < header.index("ours: lc-rf")
    assert "Simulated data" in text and "sanity check" in text
    assert "deeptao replicate --data sim" in text and "/data/sim" in text
    assert f"| **all** | 60 | {sum(context(True).images_per_class.values()):,} |" in text


def test_results_show_the_bootstrap_interval_and_balanced_accuracy(run):
    run_dir, macro, tables = run
    text = write_report(run_dir, context=context(simulated=True)).read_text()
    results = text.split("## Results")[1].split("\n## ")[0]

    seeds = [macro[("object", s)] for s in (0, 1, 2)]
    interval = shared_interval([tables[("object", s)] for s in (0, 1, 2)])
    cell = ours(np.mean(seeds), interval, np.std(seeds, ddof=1))
    assert f"| **macro F1** |  | **{cell}** |" in results
    lo, hi = interval
    assert lo < np.mean(seeds) < hi

    objects = [tables[("object", s)] for s in (0, 1, 2)]
    baccs = [balanced_accuracy_score(t["y_true"], t["y_pred"]) for t in objects]
    assert f"| balanced accuracy |  | {100 * np.mean(baccs):.2f} ± {100 * np.std(baccs, ddof=1):.2f} |" in results

    # one seed: no ±, but still an interval; columns in display order
    five = results.split("### 5 transient classes: object split, object level")[1].split("\n### ")[0]
    assert "| class | test objects per seed | taonet | taonet-lc | lc-rf |" in five
    cells = [f"**{ours(macro[m], shared_interval([tables[m]]))}**" for m in ("taonet", "taonet-lc", "lc-rf")]
    assert "| **macro F1** |  | " + " | ".join(cells) + " |" in five


def test_anchor_rows_hold_our_model_of_the_same_kind(run):
    run_dir, macro, tables = run
    text = write_report(run_dir, context=context(simulated=True)).read_text()
    cell = {m: ours(macro[m], shared_interval([tables[m]])) for m in ("taonet", "taonet-lc", "lc-rf")}

    taonet = anchor_cells(text, "TAO-Net (CNN + GRU on image sequences)")
    assert taonet["published"] == "54.58 ± 13.32"
    assert taonet["ours: taonet"] == f"**{cell['taonet']}**"  # the like-for-like comparison, in bold
    assert taonet["ours: taonet-lc"] == cell["taonet-lc"]
    assert taonet["ours: lc-rf"] == cell["lc-rf"]
    assert taonet["ours: seed-cnn"] == "—"  # seed-cnn was not run on the 5-class task

    forest = anchor_cells(text, "random forest on light curves")
    assert forest["published"] == "45.49 ± 13.75"
    assert forest["ours: lc-rf"] == f"**{cell['lc-rf']}**"
    assert forest["ours: taonet"] == cell["taonet"] and forest["ours: taonet-lc"] == cell["taonet-lc"]

    replication = anchor_cells(text, "CNN, images split at random")
    assert replication["ours: seed-cnn"].startswith("**") and replication["ours: taonet"] == "—"


def test_tao_net_row_is_empty_without_a_5class_taonet_run(tmp_path):
    rng = np.random.default_rng(3)
    parts = [
        predictions(rng, model="taonet", split="object", task="6class")[0],  # taonet ran, but not on 5 classes
        predictions(rng, model="taonet-lc", split="object", task="5class")[0],
        predictions(rng, model="lc-rf", split="object", task="5class")[0],
    ]
    save_predictions(pd.concat(parts, ignore_index=True), tmp_path)
    text = write_report(tmp_path, context=context(simulated=True)).read_text()
    taonet = anchor_cells(text, "TAO-Net (CNN + GRU on image sequences)")
    assert taonet["ours: taonet"] == "—"
    assert taonet["ours: taonet-lc"] not in ("—", "") and not taonet["ours: taonet-lc"].startswith("**")
    assert anchor_cells(text, "random forest on light curves")["ours: lc-rf"].startswith("**")
    assert "ours: seed-cnn" not in text  # a model never run gets no column


def test_real_data_report_has_no_simulation_banner_and_links_figures(run):
    run_dir, _, _ = run
    (run_dir / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = write_report(run_dir, context=context(simulated=False)).read_text()
    assert "Simulated data" not in text
    assert "(confusion_matrix.png)" in text
    assert "training_curves.png" not in text  # not linked when absent


def test_report_without_context_uses_saved_one_or_says_unknown(run):
    run_dir, _, _ = run
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
