"""The whole pipeline at the release's size: simulate, prepare, train and score every model, stage by stage.

Each stage is one fresh ``deeptao`` process run under GNU ``time -v``, so its
wall time and peak resident memory are those a user would see:

- ``simulate``: ``deeptao simulate WORK/survey --release-like --fraction F``
  (16,307 objects and about 1.2 M images at F = 1);
- ``prepare``: ``deeptao prepare WORK/survey --out WORK/cache``;
- ``train-<model>``: ``deeptao train --cache WORK/cache --model <model> --out
  WORK/<model> --seed S``, which also scores the test objects. The first
  training that needs them builds the light-curve features or the nightly
  co-adds into the cache, inside its stage.

A stage whose output is already there is skipped (and its earlier figures
kept), so an interrupted benchmark resumes. The results, with the machine and
the command, go to ``WORK/release_scale.json``; the networks' epoch times come
from their training logs (``train_epoch_seconds``, the training steps of
one epoch, validation excluded).

Usage::

    python benchmarks/release_scale.py WORK                       # everything, the full release size
    python benchmarks/release_scale.py WORK --fraction 0.1        # a tenth of every class
    python benchmarks/release_scale.py WORK --models taonet --max-epochs 1   # one epoch: the throughput figure
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

MODELS = ("lc-rf", "taonet", "taonet-lc", "seed-cnn")


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` under GNU time; its output goes to ``log``."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    with open(log, "w") as out:
        done = subprocess.run([gnu_time, "-v", *cmd], stdout=out, stderr=subprocess.STDOUT, text=True)
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = sum(float(part) * 60**k for k, part in enumerate(reversed(wall.split(":"))))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"wall_s": round(seconds, 1), "peak_rss_mib": round(rss_kb / 1024, 1)}


def training_figures(folder: Path) -> dict[str, object]:
    """Epochs, epoch times and test macro F1 of a ``deeptao train`` folder."""
    figures: dict[str, object] = {}
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
    runs = [r for r in metrics.get("runs", []) if r.get("level") == "object"]
    if runs:
        figures["test_macro_f1"] = runs[0].get("macro_f1")
        figures["test_balanced_accuracy"] = runs[0].get("balanced_accuracy")
        figures["test_macro_pr_auc"] = runs[0].get("macro_pr_auc")
    logs = sorted(folder.glob("logs/version_*/metrics.csv"))
    if logs:
        frame = pd.concat([pd.read_csv(p) for p in logs], ignore_index=True)
        if "train_epoch_seconds" in frame:
            epochs = frame["train_epoch_seconds"].dropna()
            figures["epochs"] = int(len(epochs))
            figures["epoch_seconds_median"] = round(float(epochs.median()), 1)
            figures["epoch_seconds"] = [round(float(s), 1) for s in epochs]
        if "val_loss" in frame:
            figures["best_val_loss"] = round(float(frame["val_loss"].dropna().min()), 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the survey, cache, trainings and results")
    parser.add_argument("--fraction", type=float, default=1.0, help="scale every class of the release by this")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-epochs", type=int, default=None, help="cap the networks' epochs (default: each model's own)")
    args = parser.parse_args()

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "release_scale.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"stages": {}}
    results.update(
        machine=f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        python=sys.version.split()[0],
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        fraction=args.fraction,
    )
    deeptao = [sys.executable, "-m", "deeptao"]

    def stage(name: str, cmd: list[str], done: Path) -> None:
        if done.exists() and name in results["stages"]:
            print(f"{name}: already done", flush=True)
            return
        print(f"{name}: {' '.join(cmd)}", flush=True)
        figures = timed(cmd, work / f"{name}.log")
        figures["date"] = time.strftime("%Y-%m-%d %H:%M")
        results["stages"][name] = figures
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{name}: {figures['wall_s']:.0f} s, peak RSS {figures['peak_rss_mib']:.0f} MiB", flush=True)

    survey = work / "survey"
    stage(
        "simulate",
        [*deeptao, "simulate", str(survey), "--release-like", "--fraction", str(args.fraction), "--workers", str(args.workers), "--overwrite"],
        survey / "TAO_non-transients",
    )
    stage("prepare", [*deeptao, "prepare", str(survey), "--out", str(work / "cache"), "--workers", str(args.workers)], work / "cache" / "manifest.json")
    for model in args.models:
        out = work / model
        cmd = [*deeptao, "train", "--cache", str(work / "cache"), "--model", model, "--out", str(out), "--seed", str(args.seed)]
        if args.max_epochs is not None and model != "lc-rf":
            cmd += ["--max-epochs", str(args.max_epochs)]
        stage(f"train-{model}", cmd, out / ("model.joblib" if model == "lc-rf" else "model.pt"))
        results["stages"][f"train-{model}"].update(training_figures(out))
        results_path.write_text(json.dumps(results, indent=1))
    total = sum(s["wall_s"] for s in results["stages"].values())
    peak = max(s["peak_rss_mib"] for s in results["stages"].values())
    results["total_wall_s"], results["peak_rss_mib"] = round(total, 1), peak
    results_path.write_text(json.dumps(results, indent=1))
    print(f"total {total / 60:.1f} min, peak RSS {peak:.0f} MiB -> {results_path}")


if __name__ == "__main__":
    main()
