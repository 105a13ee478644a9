"""What the prior shift does to trained models: test macro F1 and balanced accuracy at power 0 and at the chosen power.

Reads ``deeptao train`` folders (``config.yaml``, ``split.csv``, the model),
predicts their validation and test objects without any shift, chooses the
power on validation exactly as ``fit`` does
(:func:`deeptao.models.calibration.choose_prior_power`, the training
objects' class frequencies), and scores the test objects both ways. Models
saved before the shift existed are measured as they would have been fitted.

    python benchmarks/prior_shift.py RELEASE/taonet RELEASE/lc-rf
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from deeptao.data.cache import open_cache
from deeptao.data.splits import read_split
from deeptao.data.tasks import select_task
from deeptao.models import load_model
from deeptao.models.calibration import choose_prior_power, shift_to_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    rows_out = []
    for folder in args.folders:
        config = yaml.safe_load((folder / "config.yaml").read_text())
        cache = open_cache(config["cache"])
        task = select_task(config["task"], cache.labels_array())
        split = read_split(folder / "split.csv", cache.objects["object_id"].to_numpy())[task.rows]
        y = {name: task.y[split == name] for name in ("train", "val", "test")}
        rows = {name: task.rows[split == name] for name in ("train", "val", "test")}
        model = load_model(folder)
        if hasattr(model, "prior_power_"):
            model.prior_power_ = 0.0  # the unshifted probabilities
        counts = np.bincount(y["train"], minlength=len(task.classes)) + 0.5
        prior = counts / counts.sum()
        val, test = model.predict_proba(cache, rows["val"]), model.predict_proba(cache, rows["test"])
        power = choose_prior_power(val, y["val"], prior)
        labels = np.arange(len(task.classes))
        for a in sorted({0.0, power}):
            pred = shift_to_prior(test, prior, a).argmax(axis=1)
            per_class = f1_score(y["test"], pred, labels=labels, average=None, zero_division=0)
            rows_out.append(
                {"model": config["model"], "power": a, "chosen": a == power,
                 "macro_f1": f1_score(y["test"], pred, labels=labels, average="macro", zero_division=0),
                 "balanced_accuracy": balanced_accuracy_score(y["test"], pred),
                 **{f"F1 {c}": v for c, v in zip(task.classes, per_class, strict=True)}}
            )  # fmt: skip
        print(pd.DataFrame(rows_out).round(3).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
