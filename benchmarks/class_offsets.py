"""Would per-class decision offsets chosen on validation lift test macro F1? An offline check.

Reads the probabilities that ``bench_networks.py --save-proba DIR`` writes
(one ``MODEL-seedS-fitF.npz`` per fit), adds one offset per class to the
log-probabilities, chosen by coordinate search over [-1.5, 1.5] to maximise
the validation objects' macro F1 (ties go to the smaller offset), and prints
validation and test macro F1 before and after. The test objects choose
nothing; they only show whether the choice carries over.

    python benchmarks/bench_networks.py --cache C --models lc-rf taonet --save-proba P
    python benchmarks/class_offsets.py P
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from saved_proba import read_saved_proba
from sklearn.metrics import f1_score

_GRID = np.round(np.linspace(-1.5, 1.5, 31), 2)


def macro_f1(y: np.ndarray, score: np.ndarray) -> float:
    return float(f1_score(y, score.argmax(axis=1), labels=np.arange(score.shape[1]), average="macro", zero_division=0))


def choose_offsets(log_proba: np.ndarray, y: np.ndarray, passes: int = 3) -> tuple[np.ndarray, float]:
    """Offsets (one per class) and the macro F1 they reach on ``(log_proba, y)``."""
    offsets = np.zeros(log_proba.shape[1])
    best = macro_f1(y, log_proba)
    for _ in range(passes):
        for c in range(len(offsets)):
            for value in _GRID:
                trial = offsets.copy()
                trial[c] = value
                score = macro_f1(y, log_proba + trial)
                if score > best + 1e-12 or (abs(score - best) <= 1e-12 and abs(value) < abs(offsets[c])):
                    best, offsets = score, trial
    return offsets, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the --save-proba folder of bench_networks.py")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.npz"))
    if not files:
        parser.error(f"{args.folder}: no .npz files from bench_networks.py --save-proba")
    for path in files:
        saved = read_saved_proba(path)
        val = np.log(np.clip(saved["val_proba"], 1e-12, 1.0))
        test = np.log(np.clip(saved["test_proba"], 1e-12, 1.0))
        offsets, val_after = choose_offsets(val, saved["y_val"])
        print(
            f"{path.stem:28s} validation {macro_f1(saved['y_val'], val):.3f} -> {val_after:.3f}   "
            f"test {macro_f1(saved['y_test'], test):.3f} -> {macro_f1(saved['y_test'], test + offsets):.3f}   "
            f"offsets {' '.join(f'{v:+.1f}' for v in offsets)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
