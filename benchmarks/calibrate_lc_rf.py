"""How hard is the simulated survey for the light-curve random forest?

Simulates a survey, prepares it, computes light-curve features, fits ``lc-rf``
on a group split (train + val; a forest needs no validation) and prints the
object-level F1 of each class on the test split, the macro F1 and the wall
time of each stage. The simulator is calibrated so that this macro F1 sits
near the published light-curve baselines (about 0.45-0.55).

    python benchmarks/calibrate_lc_rf.py --objects-per-class 150 --seed 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main(args: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects-per-class", type=int, default=100, help="transients per class")
    parser.add_argument("--non", type=int, default=None, help="non-transients (default: objects per class)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed")
    parser.add_argument("--split-seeds", type=int, default=3, help="group splits averaged over (seeds 0..N-1)")
    parser.add_argument("--n-estimators", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the survey and cache here (default: a temp dir)")
    opts = parser.parse_args(args)

    with tempfile.TemporaryDirectory() as tmp:
        return _run(opts, opts.out or Path(tmp))


def _run(opts: argparse.Namespace, out: Path) -> dict[str, float]:
    from sklearn.metrics import confusion_matrix, f1_score

    from deeptao import CLASSES
    from deeptao.data.cache import open_cache, prepare
    from deeptao.data.splits import split_cache
    from deeptao.lightcurves import compute_features
    from deeptao.models import create_model
    from deeptao.simulate import simulate_survey

    times: dict[str, float] = {}
    start = time.perf_counter()
    survey, cache_dir = out / "survey", out / "cache"
    if not any(survey.rglob("*.fits")):
        simulate_survey(
            survey,
            objects_per_class=opts.objects_per_class,
            non_per_class=opts.non,
            seed=opts.seed,
            workers=opts.workers,
        )
    times["simulate"] = time.perf_counter() - start

    start = time.perf_counter()
    prepare(survey, cache_dir, workers=opts.workers)
    cache = open_cache(cache_dir)
    times["prepare"] = time.perf_counter() - start

    start = time.perf_counter()
    compute_features(cache, workers=opts.workers)
    times["features"] = time.perf_counter() - start

    labels = cache.labels_array().astype(str)
    y = np.array([CLASSES.index(label) for label in labels])
    start = time.perf_counter()
    scores = []
    total_cm = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for split_seed in range(opts.split_seeds):
        split, _ = split_cache(cache, seed=split_seed)
        train = np.flatnonzero(np.isin(split, ["train", "val"]))
        test = np.flatnonzero(split == "test")
        model = create_model("lc-rf", n_estimators=opts.n_estimators, n_jobs=opts.workers)
        model.fit(cache, train, y[train], classes=CLASSES, seed=split_seed)
        pred = model.predict_proba(cache, test).argmax(axis=1)
        scores.append(f1_score(y[test], pred, labels=range(len(CLASSES)), average=None, zero_division=0))
        total_cm += confusion_matrix(y[test], pred, labels=range(len(CLASSES)))
    times["fit+predict"] = time.perf_counter() - start

    per_class = np.mean(scores, axis=0)
    spread = np.std([s.mean() for s in scores])
    print(
        f"objects: {len(cache)} ({opts.objects_per_class} per class, seed {opts.seed}); "
        f"images: {len(cache.images)}; test F1 averaged over {opts.split_seeds} group splits"
    )
    for name, value in zip(CLASSES, per_class, strict=True):
        print(f"  F1 {name:<6} {value:.3f}")
    print(f"  macro F1 {per_class.mean():.3f} (+- {spread:.3f} across splits)")
    print("confusion matrix (rows true, columns predicted), summed over splits:")
    print("        " + " ".join(f"{c:>6}" for c in CLASSES))
    for name, row in zip(CLASSES, total_cm, strict=True):
        print(f"  {name:<6}" + " ".join(f"{v:>6d}" for v in row))
    print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    importances = model.feature_importances_
    top = sorted(importances, key=importances.get, reverse=True)[:8]
    print("top features (last split): " + ", ".join(f"{k} {importances[k]:.3f}" for k in top))
    result = {f"f1_{c}": float(v) for c, v in zip(CLASSES, per_class, strict=True)}
    return {"macro_f1": float(per_class.mean()), **result}


if __name__ == "__main__":
    main()
