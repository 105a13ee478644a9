"""One process against two (DDP, gloo) at the same global batch: the same validation loss, and the time each takes.

For each seed, ``deeptao train`` fits the model twice on the same cache and
split: once in one process with batch ``B`` and ``T`` torch threads, once in
``N`` processes (``--devices N --strategy ddp``) with batch ``B / N`` each and
``T / N`` threads each, so that both use the same cores and see the same
global batches. The two differ only in floating-point reduction order and in
how the class-weighted loss averages over a batch split in parts, so their
best validation losses should agree within the spread between seeds, which
the table shows beside them.

Usage::

    python benchmarks/bench_ddp.py WORK --objects-per-class 60 --seeds 0 1 2
    python benchmarks/bench_ddp.py WORK --cache CACHE --model taonet --batch-size 16 --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def best_val_loss(folder: Path) -> float:
    frames = [pd.read_csv(p) for p in sorted(folder.glob("logs/version_*/metrics.csv"))]
    return float(pd.concat(frames)["val_loss"].dropna().min())


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    with open(log, "w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--cache", type=Path, default=None, help="a prepared cache (default: simulate one into WORK)")
    parser.add_argument("--objects-per-class", type=int, default=60)
    parser.add_argument("--survey-seed", type=int, default=77)
    parser.add_argument("--model", default="taonet")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in all, shared by the processes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.batch_size % args.processes or args.threads % args.processes:
        raise SystemExit("--batch-size and --threads must divide by --processes")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    deeptao = [sys.executable, "-m", "deeptao"]
    cache = args.cache
    if cache is None:
        cache = work / "cache"
        if not (cache / "manifest.json").exists():
            subprocess.run([*deeptao, "simulate", str(work / "survey"), "--objects-per-class", str(args.objects_per_class), "--seed", str(args.survey_seed), "--workers", "2", "--overwrite"], check=True)
            subprocess.run([*deeptao, "prepare", str(work / "survey"), "--out", str(cache)], check=True)

    rows = []
    for seed in args.seeds:
        for n in (1, args.processes):
            out = work / f"{args.model}-p{n}-seed{seed}"
            cmd = [
                *deeptao, "train", "--cache", str(cache), "--model", args.model, "--out", str(out), "--seed", str(seed),
                "--accelerator", "cpu", "--batch-size", str(args.batch_size // n), "--param", f"threads={args.threads // n}",
            ]  # fmt: skip
            if n > 1:
                cmd += ["--devices", str(n), "--strategy", "ddp"]
            seconds = run(cmd, work / f"{out.name}.log") if not (out / "model.pt").exists() else float("nan")
            metrics = json.loads((out / "metrics.json").read_text())["runs"][0]
            rows.append({"seed": seed, "processes": n, "batch_per_process": args.batch_size // n, "best_val_loss": best_val_loss(out),
                         "test_macro_f1": metrics["macro_f1"], "wall_s": seconds})  # fmt: skip
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby("processes").agg(
        val_loss_mean=("best_val_loss", "mean"), val_loss_std=("best_val_loss", "std"),
        f1_mean=("test_macro_f1", "mean"), wall_median=("wall_s", "median"),
    )  # fmt: skip
    pairs = table.pivot(index="seed", columns="processes", values="best_val_loss")
    difference = (pairs[args.processes] - pairs[1]).tolist()
    result = {
        "machine": f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "runs": rows,
        "summary": summary.reset_index().to_dict(orient="records"),
        "val_loss_difference_per_seed": difference,
        "val_loss_difference_mean": statistics.fmean(difference),
    }
    (work / "bench_ddp.json").write_text(json.dumps(result, indent=1))
    print(summary.to_string())
    print(f"best validation loss, {args.processes} processes minus 1, per seed: {', '.join(f'{d:+.4f}' for d in difference)}")


if __name__ == "__main__":
    main()
