"""Offline: ensembles of saved network fits and late fusion with the forest, from saved probabilities.

Reads the ``MODEL-seedS-fitF.npz`` files that ``bench_networks.py --save-proba
DIR`` writes (validation and test probabilities of each fit) and prints, per
model: the mean test macro F1 of its single fits, of the average of all its
fits on a split (an ensemble), and of ``log p_net + w log p_lc-rf`` with the
weight ``w`` in [0, 2] chosen on the validation log-loss (the test set chooses
nothing): the rule of the ``taonet+rf`` model (:mod:`deeptao.models.fusion`).
``--combine A B ...`` also averages different models (the geometric mean of
all their fits on a split) and pairs the result with A's fits on the same
splits: the test and validation macro F1 and the validation log-loss, and the
gap over lc-rf where its fits are there.

    python benchmarks/bench_networks.py --cache C --models lc-rf taonet --save-proba P
    python benchmarks/late_fusion.py P
    python benchmarks/late_fusion.py P --combine taonet-lc taonet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_networks import mean_log_loss
from saved_proba import saved_fits
from sklearn.metrics import f1_score

from deeptao.models.fusion import choose_weight, fuse_probabilities

_FLOOR = 1e-9


def _macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    return float(f1_score(y, proba.argmax(axis=1), average="macro", labels=np.arange(proba.shape[1]), zero_division=0))


def _geometric_mean(probas: list[np.ndarray]) -> np.ndarray:
    log_p = np.mean([np.log(np.clip(p, _FLOOR, 1.0)) for p in probas], axis=0)
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of saved probabilities")
    parser.add_argument("--combine", nargs="+", default=None, metavar="MODEL",
                        help="also average these models' fits (geometric mean), paired with the first")
    args = parser.parse_args(argv)
    fits: dict[str, dict[int, list[dict[str, np.ndarray]]]] = {}
    for folder in args.folders:
        for model, by_seed in saved_fits(folder).items():
            for seed, runs in by_seed.items():
                fits.setdefault(model, {}).setdefault(seed, []).extend(runs)
    forest = {seed: runs[0] for seed, runs in fits.pop("lc-rf", {}).items()}
    if forest:
        print(f"lc-rf: {np.mean([_macro_f1(r['y_test'], r['test_proba']) for r in forest.values()]):.3f} on splits {sorted(forest)}")
    for model, by_seed in sorted(fits.items()):
        single, ensemble, fused = [], [], []
        for seed, runs in sorted(by_seed.items()):
            y, y_val = runs[0]["y_test"], runs[0]["y_val"]
            single.append(np.mean([_macro_f1(y, r["test_proba"]) for r in runs]))
            test, val = _geometric_mean([r["test_proba"] for r in runs]), _geometric_mean([r["val_proba"] for r in runs])
            ensemble.append(_macro_f1(y, test))
            if seed in forest:
                f = forest[seed]
                w = choose_weight(val, f["val_proba"], y_val)  # the rule of the taonet+rf model
                fused.append((_macro_f1(y, fuse_probabilities(test, f["test_proba"], w)), w))
        line = f"{model}: splits {sorted(by_seed)}, fits per split {[len(r) for _, r in sorted(by_seed.items())]}; single {np.mean(single):.3f}, ensemble {np.mean(ensemble):.3f}"
        if fused:
            line += f", fused with lc-rf {np.mean([a for a, _ in fused]):.3f} (weights {[w for _, w in fused]})"
        print(line)
    if args.combine:
        print(_combination(fits, forest, args.combine, args.folders))
    return 0


def _combination(fits: dict[str, dict[int, list[dict[str, np.ndarray]]]], forest: dict[int, dict[str, np.ndarray]],
                 names: list[str], folders: list[Path]) -> str:
    """The geometric mean of the named models' fits on each split they all have, paired with the first model's fits."""
    missing = [n for n in names if n not in fits]
    if missing:
        raise SystemExit(f"{', '.join(map(str, folders))}: no saved fits of {', '.join(missing)} for --combine "
                         f"(have: {', '.join(sorted(fits)) or 'none'})")
    seeds = sorted(set.intersection(*(set(fits[n]) for n in names)))
    if not seeds:
        raise SystemExit(f"--combine: {', '.join(names)} share no split")
    rows = []
    for seed in seeds:
        first = fits[names[0]][seed]
        y, y_val = first[0]["y_test"], first[0]["y_val"]
        for n in names[1:]:
            other = fits[n][seed][0]
            if not (np.array_equal(other["test_rows"], first[0]["test_rows"]) and np.array_equal(other["val_rows"], first[0]["val_rows"])):
                raise SystemExit(f"--combine: {n} and {names[0]} were scored on different objects on split {seed}")
        runs = [r for n in names for r in fits[n][seed]]
        test = _geometric_mean([r["test_proba"] for r in runs])
        val = _geometric_mean([r["val_proba"] for r in runs])
        alone_test = _geometric_mean([r["test_proba"] for r in first])
        alone_val = _geometric_mean([r["val_proba"] for r in first])
        rows.append((_macro_f1(y, test) - _macro_f1(y, alone_test), _macro_f1(y_val, val) - _macro_f1(y_val, alone_val),
                     mean_log_loss(y_val, val) - mean_log_loss(y_val, alone_val), _macro_f1(y, test),
                     _macro_f1(y, test) - _macro_f1(y, forest[seed]["test_proba"]) if seed in forest else np.nan))
    d = np.array(rows)
    spread = f" ± {d[:, 3].std(ddof=1):.3f}" if len(d) > 1 else ""
    line = (f"{' × '.join(names)}: splits {seeds}; test {d[:, 3].mean():.3f}{spread}; against {names[0]} alone: "
            f"test {d[:, 0].mean():+.3f} (higher on {int((d[:, 0] > 0).sum())}), val F1 {d[:, 1].mean():+.3f}, "
            f"val loss {d[:, 2].mean():+.3f} (lower on {int((d[:, 2] < 0).sum())})")
    if not np.isnan(d[:, 4]).any():
        line += f"; gap over lc-rf {100 * d[:, 4].mean():+.1f} points"
    return line


if __name__ == "__main__":
    raise SystemExit(main())
