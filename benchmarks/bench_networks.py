"""Do the networks beat the light-curve forest on the same objects? Macro F1 over group splits.

Fits each model on the train part of several object-group splits of one
prepared cache (validation steering the networks; the test part never seen
in training), and prints per-class and macro F1 on test, mean and sample std
over splits, with each fit's wall time, and the validation objects' macro F1
and log-loss: a choice between settings is made on those, not on test.

    deeptao simulate S --objects-per-class 300 --seed 913 --catalogue-path built-in
    deeptao prepare S --out C
    python benchmarks/bench_networks.py --cache C --models lc-rf taonet taonet-lc seed-cnn --seeds 0 1 2 --out results.json

``--set MODEL.NAME=VALUE`` overrides one estimator parameter (repeatable).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def parameter_value(raw: str) -> Any:
    """A parameter given on the command line: JSON where it parses (numbers, booleans, lists), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1 (a count of objects)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {text!r}")
    return value


def mean_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean negative log-probability of the true class (floored at 1e-12): the validation log-loss every fit records."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def _override(text: str) -> tuple[str, str, Any]:
    key, sep, raw = text.partition("=")
    model, dot, name = key.partition(".")
    if not sep or not dot:
        raise argparse.ArgumentTypeError(f"--set needs MODEL.NAME=VALUE, got {text!r}")
    return model, name, parameter_value(raw)


def open_cache_or_exit(path: Path) -> Any:
    """The prepared cache at ``path``; SystemExit with the one-line reason if it is not one."""
    from deeptao.data.cache import CacheError, open_cache

    try:
        return open_cache(path)
    except CacheError as exc:
        raise SystemExit(str(exc)) from None


def split_parts(cache: Any, rows_all: np.ndarray, y_all: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train, val and test rows and labels of the object-group split drawn with ``seed``."""
    from deeptao.data.splits import split_cache

    split = split_cache(cache, mode="object", seed=seed)[0][rows_all]
    return {name: (rows_all[split == name], y_all[split == name]) for name in ("train", "val", "test")}


def keep_per_class(rows_all: np.ndarray, y_all: np.ndarray, n_classes: int, per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    """At most ``per_class`` objects of each class (all of them if None): the learning curves' subsets.

    Each class's objects are permuted by one fixed draw and cut, so every
    model, split and process keeps the same objects, and a smaller size's
    objects are among a larger size's (nested subsets).
    """
    if not per_class:
        return rows_all, y_all
    rng = np.random.default_rng(12345)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y_all == c))[:per_class] for c in range(n_classes)])
    keep.sort()
    return rows_all[keep], y_all[keep]


def fit_and_score(
    cache: Any,
    classes: Any,
    model: str,
    params: dict[str, Any],
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    seed: int,
    fit_seed: int,
    *,
    workdir: Path | None = None,
    save_proba: Path | None = None,
    proba_name: str | None = None,
) -> dict[str, Any]:
    """Fit one model on a split's train part (validation steering it) and score it on validation and test.

    With ``save_proba`` the validation and test probabilities go to
    ``save_proba/NAME-seedS-fitF.npz``, NAME being ``proba_name`` (default:
    the model's name), so that fits can be combined offline afterwards.
    """
    from sklearn.metrics import f1_score

    from deeptao.models import create_model

    estimator = create_model(model, **params)
    (tr, ytr), (va, yva), (te, yte) = parts["train"], parts["val"], parts["test"]
    t = time.perf_counter()
    estimator.fit(cache, tr, ytr, classes=classes, val_rows=va, y_val=yva, seed=fit_seed, workdir=workdir)
    fit_s = time.perf_counter() - t
    proba = estimator.predict_proba(cache, te)
    val_proba = estimator.predict_proba(cache, va)
    pred = proba.argmax(axis=1)
    labels = np.arange(len(classes))
    if save_proba is not None:
        save_proba.mkdir(parents=True, exist_ok=True)
        np.savez(save_proba / f"{proba_name or model}-seed{seed}-fit{fit_seed}.npz", val_rows=va, y_val=yva, val_proba=val_proba, test_rows=te, y_test=yte, test_proba=proba)
    per_class = f1_score(yte, pred, labels=labels, average=None, zero_division=0)
    return {
        "model": model, "seed": seed, "macro_f1": float(per_class.mean()),
        "per_class_f1": dict(zip(classes, per_class.round(4).tolist(), strict=True)),
        "val_macro_f1": float(f1_score(yva, val_proba.argmax(axis=1), labels=labels, average="macro", zero_division=0)),
        "val_log_loss": mean_log_loss(yva, val_proba),
        "fit_seconds": round(fit_s, 1), "n_train": int(len(tr)), "n_test": int(len(te)),
        "epochs": getattr(getattr(estimator, "fit_result_", None), "epochs", None),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--models", nargs="+", default=["lc-rf", "taonet", "taonet-lc"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--task", default="6class")
    parser.add_argument("--max-objects-per-class", type=positive_int, default=None, help="keep at most this many objects of each class (learning curves)")
    parser.add_argument("--set", dest="overrides", action="append", type=_override, default=[])
    parser.add_argument("--out", type=Path, default=None, help="write every per-split score here (JSON)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep checkpoints and logs here")
    parser.add_argument("--fit-seed-offset", type=int, default=0, help="train with seed S + this on split S (independent fits of one split)")
    parser.add_argument("--save-proba", type=Path, default=None, help="write each fit's validation and test probabilities here (MODEL-seedS.npz)")
    args = parser.parse_args(argv)

    from deeptao.data.tasks import select_task

    cache = open_cache_or_exit(args.cache)
    task = select_task(args.task, cache.labels_array())
    rows_all, y_all = keep_per_class(task.rows, task.y, len(task.classes), args.max_objects_per_class)
    results: list[dict[str, Any]] = []
    for seed in args.seeds:
        parts = split_parts(cache, rows_all, y_all, seed)
        for model in args.models:
            params = {name: value for m, name, value in args.overrides if m == model}
            workdir = None if args.workdir is None else args.workdir / f"{model}-seed{seed}"
            entry = fit_and_score(cache, task.classes, model, params, parts, seed, seed + args.fit_seed_offset,
                                  workdir=workdir, save_proba=args.save_proba)
            results.append(entry)
            print(f"seed {seed} {model:10s} macro F1 {entry['macro_f1']:.3f}  (val {entry['val_macro_f1']:.3f}, log-loss {entry['val_log_loss']:.3f})  fit {entry['fit_seconds']:6.1f} s  " + " ".join(f"{c} {v:.2f}" for c, v in entry["per_class_f1"].items()), flush=True)
    print()
    print(f"{'model':10s} {'macro F1':>15s} " + " ".join(f"{c:>6s}" for c in task.classes) + "   fit s (median)")
    for model in args.models:
        rows = [r for r in results if r["model"] == model]
        macro = np.array([r["macro_f1"] for r in rows])
        std = macro.std(ddof=1) if len(macro) > 1 else float("nan")
        per = [np.mean([r["per_class_f1"][c] for r in rows]) for c in task.classes]
        val = np.mean([r["val_macro_f1"] for r in rows]), np.mean([r["val_log_loss"] for r in rows])
        print(f"{model:10s} {macro.mean():.3f} ± {std:.3f}   " + " ".join(f"{v:6.3f}" for v in per) + f"   {np.median([r['fit_seconds'] for r in rows]):.0f}"
              + f"   validation: macro F1 {val[0]:.3f}, log-loss {val[1]:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"cache": str(args.cache), "task": args.task, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
