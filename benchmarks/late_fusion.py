"""Offline: ensembles of saved network fits and late fusion with the forest, from saved probabilities.

Reads the ``MODEL-seedS-fitF.npz`` files that ``bench_networks.py --save-proba
DIR`` writes (validation and test probabilities of each fit) and prints, per
model: the mean test macro F1 of its single fits, of the average of all its
fits on a split (an ensemble), and of ``log p_net + w log p_lc-rf`` with the
weight ``w`` in [0, 2] chosen on the validation log-loss (the test set chooses
nothing): the rule of the ``taonet+rf`` model (:mod:`deeptao.models.fusion`).

    python benchmarks/bench_networks.py --cache C --models lc-rf taonet --save-proba P
    python benchmarks/late_fusion.py P
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
