"""How hard is the simulated survey for the light-curve random forest?

Simulates one survey per seed, prepares it, computes light-curve features,
fits ``lc-rf`` on several group splits of each (train + val; a forest needs no
validation) and prints the object-level F1 of each class on the test splits,
as mean and standard deviation over every (survey seed, split) pair, with the
macro F1 and the wall time of each stage. The simulator is calibrated so that
this macro F1 sits in the range of the published light-curve baselines (about
0.45-0.55) with the published per-class pattern (docs/calibration.md).

    python benchmarks/calibrate_lc_rf.py --objects-per-class 150 --seeds 0 1 --split-seeds 3

``--set NAME=VALUE`` overrides one SurveyConfig field (repeatable), for trying
a physics change without editing the defaults; ``--breakdown`` adds the recall
of each class by what the simulation says each object really is (kind of
event, faint, ambiguous, magnitude), to see where a class fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _override(text: str) -> tuple[str, Any]:
    from deeptao.simulate import SurveyConfig

    name, sep, raw = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(SurveyConfig)}
    if not sep or name not in fields:
        raise argparse.ArgumentTypeError(f"--set needs NAME=VALUE with NAME a SurveyConfig field, got {text!r}")
    kind = type(getattr(SurveyConfig(), name))
    if kind is bool:
        return name, raw.lower() in ("1", "true", "yes")
    if raw.lower() == "none":
        return name, None
    return name, (int(raw) if kind is int else float(raw) if kind is float else raw)


def main(args: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects-per-class", type=int, default=100, help="transients per class")
    parser.add_argument("--non", type=int, default=None, help="non-transients (default: objects per class)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="simulation seeds, one survey each")
    parser.add_argument("--seed", type=int, default=None, help="one simulation seed (same as --seeds S)")
    parser.add_argument("--split-seeds", type=int, default=3, help="group splits per survey (seeds 0..N-1)")
    parser.add_argument("--n-estimators", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="overrides", type=_override, action="append", default=[],
                        metavar="NAME=VALUE", help="override a SurveyConfig field (repeatable)")
    parser.add_argument("--breakdown", action="store_true", help="recall by simulated truth")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep surveys and caches here, reused while their settings match (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    opts = parser.parse_args(args)
    if opts.seed is not None:
        opts.seeds = [opts.seed]

    with tempfile.TemporaryDirectory() as tmp:
        return _run(opts, opts.out or Path(tmp))


def _survey(opts: argparse.Namespace, base: Path, seed: int) -> tuple[Path, Path, float]:
    """Simulate (or reuse) the survey of ``seed``; its folder and cache folder."""
    from deeptao.simulate import SurveyConfig, simulate_survey

    cfg = SurveyConfig(**dict(opts.overrides))
    n_non = opts.objects_per_class if opts.non is None else opts.non
    want = {"seed": seed, "objects_per_class": opts.objects_per_class, "non_per_class": n_non,
            "config": json.loads(json.dumps(cfg.to_dict(), default=str))}
    survey, cache = base / f"seed{seed}" / "survey", base / f"seed{seed}" / "cache"
    start = time.perf_counter()
    try:
        have = json.loads((survey / "simulation.json").read_text())
        have = {k: have[k] for k in want}
    except (OSError, KeyError, ValueError):
        have = None
    if have != want:
        shutil.rmtree(base / f"seed{seed}", ignore_errors=True)
        simulate_survey(survey, objects_per_class=opts.objects_per_class, non_per_class=n_non,
                        seed=seed, config=cfg, workers=opts.workers)
    return survey, cache, time.perf_counter() - start


def _breakdown(truth: pd.DataFrame, hits: pd.DataFrame) -> None:
    """Recall of each class by kind, faint, ambiguous and magnitude, pooled over splits."""
    from deeptao import CLASSES

    frame = hits.merge(truth, on=["seed", "object_id"], how="left")
    frame["mag_bin"] = pd.cut(frame["m_disc"], [0, 15, 17, 18, 19, 20, 30]).astype(str)
    print("recall by simulated truth (pooled over seeds and splits; n = test predictions):")
    for label in CLASSES:
        part = frame[frame["label"] == label]
        if part.empty:
            continue
        rows = []
        for column in ("kind", "faint", "ambiguous", "mag_bin"):
            for value, sub in part.groupby(column, sort=True):
                if len(sub) < 3:
                    continue
                top = sub["predicted"].value_counts()
                wrong = top.drop(label, errors="ignore")
                confused = f" ->{wrong.index[0]} {wrong.iloc[0] / len(sub):.2f}" if len(wrong) else ""
                rows.append(f"{column}={value}: {sub['hit'].mean():.2f} (n={len(sub)}){confused}")
        print(f"  {label:<6}" + "\n         ".join(rows))


def _run(opts: argparse.Namespace, out: Path) -> dict[str, float]:
    from sklearn.metrics import confusion_matrix, f1_score

    from deeptao import CLASSES
    from deeptao.data.cache import open_cache, prepare
    from deeptao.data.splits import split_cache
    from deeptao.lightcurves import compute_features
    from deeptao.models import create_model

    times = {"simulate": 0.0, "prepare": 0.0, "features": 0.0, "fit+predict": 0.0}
    scores = []
    total_cm = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    truths, hits = [], []
    n_objects = n_images = 0
    importances: dict[str, float] = {}
    for seed in opts.seeds:
        survey, cache_dir, seconds = _survey(opts, out, seed)
        times["simulate"] += seconds

        start = time.perf_counter()
        prepare(survey, cache_dir, workers=opts.workers)
        cache = open_cache(cache_dir)
        times["prepare"] += time.perf_counter() - start
        n_objects, n_images = n_objects + len(cache), n_images + len(cache.images)

        start = time.perf_counter()
        compute_features(cache, workers=opts.workers)
        times["features"] += time.perf_counter() - start

        labels = cache.labels_array().astype(str)
        ids = cache.objects["object_id"].astype(str).to_numpy()
        y = np.array([CLASSES.index(label) for label in labels])
        if opts.breakdown:
            truth = pd.read_csv(survey / "simulation_truth.csv")
            truth["object_id"] = truth["path"].map(lambda p: Path(p).stem)
            truth["seed"] = seed
            truths.append(truth[["seed", "object_id", "kind", "faint", "ambiguous", "m_disc"]])
        start = time.perf_counter()
        for split_seed in range(opts.split_seeds):
            split, _ = split_cache(cache, seed=split_seed)
            train = np.flatnonzero(np.isin(split, ["train", "val"]))
            test = np.flatnonzero(split == "test")
            model = create_model("lc-rf", n_estimators=opts.n_estimators, n_jobs=opts.workers)
            model.fit(cache, train, y[train], classes=CLASSES, seed=split_seed)
            pred = model.predict_proba(cache, test).argmax(axis=1)
            scores.append(f1_score(y[test], pred, labels=range(len(CLASSES)), average=None, zero_division=0))
            total_cm += confusion_matrix(y[test], pred, labels=range(len(CLASSES)))
            hits.append(pd.DataFrame({"seed": seed, "object_id": ids[test], "label": labels[test],
                                      "predicted": np.asarray(CLASSES)[pred], "hit": pred == y[test]}))
            for name, value in model.feature_importances_.items():
                importances[name] = importances.get(name, 0.0) + value
        times["fit+predict"] += time.perf_counter() - start

    scores_arr = np.asarray(scores)
    per_class, per_class_std = scores_arr.mean(axis=0), scores_arr.std(axis=0)
    macro = scores_arr.mean(axis=1)
    runs = len(scores)
    settings = ", ".join(f"{k}={v}" for k, v in opts.overrides) or "defaults"
    print(
        f"surveys: seeds {opts.seeds} x {opts.objects_per_class} per class ({settings}); "
        f"{n_objects} objects, {n_images} images in all; test F1 over {runs} (seed, split) runs"
    )
    for name, value, spread in zip(CLASSES, per_class, per_class_std, strict=True):
        print(f"  F1 {name:<6} {value:.3f} +- {spread:.3f}")
    print(f"  macro F1 {macro.mean():.3f} +- {macro.std():.3f}")
    print("confusion matrix (rows true, columns predicted), summed over runs:")
    print("        " + " ".join(f"{c:>6}" for c in CLASSES))
    for name, row in zip(CLASSES, total_cm, strict=True):
        print(f"  {name:<6}" + " ".join(f"{v:>6d}" for v in row))
    print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    top = sorted(importances, key=importances.get, reverse=True)[:8]
    print("top features (mean over runs): " + ", ".join(f"{k} {importances[k] / runs:.3f}" for k in top))
    if opts.breakdown:
        _breakdown(pd.concat(truths, ignore_index=True), pd.concat(hits, ignore_index=True))
    result = {"macro_f1": float(macro.mean()), "macro_f1_std": float(macro.std()), "runs": runs}
    result.update({f"f1_{c}": float(v) for c, v in zip(CLASSES, per_class, strict=True)})
    result.update({f"f1_{c}_std": float(v) for c, v in zip(CLASSES, per_class_std, strict=True)})
    if opts.json is not None:
        opts.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
