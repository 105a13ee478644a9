"""How much of a simulated survey is hard by construction, and how each model does on the hard and the clean part.

The simulator makes some objects of every transient class *ambiguous* (drawn
to look like another class: slow interacting supernovae like AGN, quiet
blazars like AGN, ...) and gives some a *label of another class* (the
physical class differs from the catalogue's, as in real spectroscopic
follow-up). Its truth table says which; this script reads it only to count,
never as an input to a model.

For each split's test objects it prints the macro F1 of two reference
classifiers: one wrong (a random other class) on every mislabelled object
and right on the rest, which no model can beat by more than chance, since a
mislabelled object shows another class; and one wrong on every ambiguous
object too, a yardstick only (an ambiguous object can still be told apart).
With ``--proba`` (a folder written by ``bench_networks.py --save-proba``) it
gives each model's test recall on the clean, ambiguous and mislabelled
objects, pooled over the splits; its recall of each class's clean objects;
the confusion matrix of the clean objects; and, per simulated kind of clean
object, how many it got right and what it called the rest.

    python benchmarks/hard_objects.py --cache C913 --truth S913/simulation_truth.csv --seeds 0 1 2 3 4 --proba P
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_networks import open_cache_or_exit, split_parts
from saved_proba import saved_fits


def _truth(truth_path: Path, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cache object (matched on CRTS id and label): ambiguous; labelled other than its physical class; its kind."""
    import pandas as pd

    try:
        truth = pd.read_csv(truth_path, usecols=["crts_id", "label", "physical_class", "ambiguous", "kind"], dtype=str)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{truth_path}: not a simulation truth table ({exc})") from None
    rows = {
        key: (amb == "True", phys != key[1], kind)
        for key, amb, phys, kind in zip(zip(truth["crts_id"], truth["label"], strict=True), truth["ambiguous"],
                                        truth["physical_class"], truth["kind"].fillna("?"), strict=True)
    }  # fmt: skip
    objects = cache.objects
    keys = list(zip(objects["crts_id"].astype(str), objects["label"].astype(str), strict=True))
    missing = sum(key not in rows for key in keys)
    if missing:
        raise SystemExit(f"{truth_path}: {missing} of the cache's {len(keys)} objects are not in this truth table")
    ambiguous, mislabelled, kind = zip(*(rows[key] for key in keys), strict=True)
    return np.array(ambiguous, dtype=bool), np.array(mislabelled, dtype=bool), np.array(kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True, help="simulation_truth.csv of the simulated survey")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--proba", type=Path, default=None, help="probabilities saved by bench_networks.py --save-proba")
    args = parser.parse_args(argv)

    import pandas as pd
    from sklearn.metrics import f1_score

    from deeptao.data.tasks import select_task

    cache = open_cache_or_exit(args.cache)
    task = select_task("6class", cache.labels_array())
    ambiguous, mislabelled, kind = _truth(args.truth, cache)
    hard = ambiguous | mislabelled
    n_classes = len(task.classes)
    print("share of each class (all objects): ambiguous / mislabelled / either")
    for c, name in enumerate(task.classes):
        rows = task.rows[task.y == c]
        print(f"  {name:6s} {ambiguous[rows].mean():.2f} / {mislabelled[rows].mean():.2f} / {hard[rows].mean():.2f}")
    rng = np.random.default_rng(0)
    for what, flagged in (("mislabelled", mislabelled), ("ambiguous or mislabelled", hard)):
        scores = []
        for seed in args.seeds:
            test, y = split_parts(cache, task.rows, task.y, seed)["test"]
            wrong = np.flatnonzero(flagged[test])
            draws = []
            for _ in range(50):
                pred = y.copy()
                pred[wrong] = (y[wrong] + rng.integers(1, n_classes, len(wrong))) % n_classes
                draws.append(f1_score(y, pred, labels=np.arange(n_classes), average="macro"))
            scores.append(float(np.mean(draws)))
        print(f"wrong on every {what} object, right on the rest: macro F1 per split "
              f"{' '.join(f'{s:.3f}' for s in scores)}; mean {np.mean(scores):.3f}")
    if args.proba is None:
        return 0
    print("\ntest recall, pooled over the splits: clean / ambiguous / mislabelled (objects)")
    names = np.array(task.classes)
    for model, by_seed in saved_fits(args.proba).items():
        fits = [fit for seed in args.seeds for fit in by_seed.get(seed, [])[:1]]
        if not fits:
            continue
        rows = np.concatenate([fit["test_rows"] for fit in fits])
        y = np.concatenate([fit["y_test"] for fit in fits])
        pred = np.concatenate([fit["test_proba"].argmax(axis=1) for fit in fits])
        right, clean = pred == y, ~hard[rows]
        groups = (clean, ambiguous[rows] & ~mislabelled[rows], mislabelled[rows])
        per_class = " ".join(f"{name} {right[clean & (y == c)].mean():.2f}" for c, name in enumerate(names) if (clean & (y == c)).any())
        print(f"  {model:10s} " + " / ".join(f"{right[g].mean():.3f} ({int(g.sum())})" for g in groups) + f"   clean, per class: {per_class}")
        confusion = pd.crosstab(pd.Categorical(names[y[clean]], names), pd.Categorical(names[pred[clean]], names), dropna=False)
        confusion.index.name, confusion.columns.name = "true", "called"
        print("    clean objects:\n" + "\n".join("      " + line for line in confusion.to_string().splitlines()))
        for k in np.unique(kind[rows][clean]):
            mine = clean & (kind[rows] == k)
            wrong = pd.Series(names[pred[mine & ~right]]).value_counts()
            called = ", ".join(f"{name} {n}" for name, n in wrong.items())
            print(f"    {k}: {int(right[mine].sum())} of {int(mine.sum())} right" + (f"; the rest called {called}" if called else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
