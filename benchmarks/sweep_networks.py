"""Many settings of the networks, each over several group splits, fitted in parallel: choose on validation.

A grid file names each setting (a model and its parameters); every setting
is fitted on every split (``--seeds``), as ``bench_networks.py`` fits one,
by ``--workers`` processes at once (on a GPU node they share the GPU; on a
CPU node give each a share of the cores with ``--threads``). Jobs run split
by split, so a run cut short by ``--deadline`` still compares every setting
on the same first splits. Each finished fit is appended to ``--out`` (JSON
lines) at once, and a rerun skips the fits already there. ``--save-proba DIR``
also keeps each fit's validation and test probabilities (one ``.npz`` per
setting and split, named by ``proba_file_stem``) for combining fits offline.

The summary gives, per setting, the mean validation macro F1 and log-loss
(what a choice is made on) and the test macro F1 (mean ± std, and per
class), with the mean paired difference from ``--baseline`` over the splits
both have and on how many of them the setting did better on validation.
``--summary-only`` prints it from ``--out`` without fitting. The light-curve
forest can be a setting too (``{"model": "lc-rf"}``): as the baseline, its
paired test difference is each network's gap over it.

    python benchmarks/sweep_networks.py --cache C --grid grid.json --seeds 0 1 2 3 4 \\
        --workers 8 --threads 2 --out sweep.jsonl --baseline taonet

grid.json::

    {"taonet": {"model": "taonet", "params": {}},
     "taonet-wd0.5": {"model": "taonet", "params": {"weight_decay": 0.5}}}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from bench_networks import fit_and_score, keep_per_class, open_cache_or_exit, parameter_value, positive_int, split_parts

_STATE: dict[str, Any] = {}


def _start_worker(cache_path: str, task_name: str, threads: int, per_class: int | None = None) -> None:
    """Open the cache once per worker; keep torch to its share of the cores; float32 stays float32 on a GPU.

    A worker also leaves when the sweep that started it is gone: a sweep
    stopped with ``kill`` would otherwise leave its fits running, unseen,
    taking the cores from whatever runs next.
    """
    import torch

    threading.Thread(target=_leave_with_parent, args=(os.getppid(),), daemon=True).start()

    from deeptao.data.cache import open_cache
    from deeptao.data.tasks import select_task

    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32 = False  # a "32" setting is compared with "bf16": no TF32 convolutions
    torch.backends.cuda.matmul.allow_tf32 = False
    cache = open_cache(cache_path)
    task = select_task(task_name, cache.labels_array())
    rows, y = keep_per_class(task.rows, task.y, len(task.classes), per_class)
    _STATE.update(cache=cache, classes=task.classes, rows=rows, y=y)


def _leave_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(2.0)
    os._exit(1)


def proba_file_stem(setting: str) -> str:
    """A setting's name as a file name: every run of characters other than letters, digits, ``.`` and ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", setting).strip("_") or "setting"


def _run_job(name: str, model: str, params: dict[str, Any], seed: int, save_proba: Path | None = None) -> dict[str, Any]:
    cache = _STATE["cache"]
    parts = split_parts(cache, _STATE["rows"], _STATE["y"], seed)
    entry = fit_and_score(cache, _STATE["classes"], model, params, parts, seed, seed,
                          save_proba=save_proba, proba_name=proba_file_stem(name))
    entry.update(setting=name, params=params, pid=os.getpid())
    return entry


def _summary(results: list[dict[str, Any]], names: list[str], baseline: str | None) -> str:
    """Per setting: validation macro F1 and log-loss, test macro F1 (mean ± std) and per class; paired with ``baseline``.

    The paired part gives the mean differences and on how many splits the
    setting was better on validation macro F1 and on validation log-loss.
    """
    by = {(r["setting"], r["seed"]): r for r in results}
    classes = list(next(iter(results))["per_class_f1"]) if results else []
    lines = [f"{'setting':28s} {'splits':>6s} {'val F1':>7s} {'val loss':>8s} {'test F1':>13s}  "
             + " ".join(f"{c:>5s}" for c in classes)
             + f"   paired with {baseline}: d val F1, d val loss, d test F1 (splits; val F1 up, val loss down)"]
    for name in names:
        rows = [r for r in results if r["setting"] == name]
        if not rows:
            continue
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("val_macro_f1", "val_log_loss", "macro_f1")}
        spread = float(np.std([r["macro_f1"] for r in rows], ddof=1)) if len(rows) > 1 else float("nan")
        per_class = [float(np.mean([r["per_class_f1"][c] for r in rows])) for c in classes]
        line = (f"{name:28s} {len(rows):6d} {mean['val_macro_f1']:7.3f} {mean['val_log_loss']:8.3f} "
                f"{mean['macro_f1']:6.3f} ± {spread:.3f}  " + " ".join(f"{v:5.3f}" for v in per_class))
        if baseline and name != baseline:
            pairs = [(r, by[(baseline, r["seed"])]) for r in rows if (baseline, r["seed"]) in by]
            if pairs:
                d = {k: np.array([a[k] - b[k] for a, b in pairs]) for k in ("val_macro_f1", "val_log_loss", "macro_f1")}
                line += (f"   {d['val_macro_f1'].mean():+.3f}, {d['val_log_loss'].mean():+.3f}, {d['macro_f1'].mean():+.3f} "
                         f"({len(pairs)}; {int((d['val_macro_f1'] > 0).sum())}, {int((d['val_log_loss'] < 0).sum())})")
        lines.append(line)
    return "\n".join(lines)


def read_fits(path: Path) -> list[dict[str, Any]]:
    """The fits in a sweep's output (JSON lines), none if it does not exist; SystemExit naming the line that is not a fit."""
    if not path.is_file():
        return []
    out = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise SystemExit(f"{path}: line {k} is not JSON; move the file away or mend it") from None
        if not isinstance(entry, dict) or not {"setting", "seed", "val_macro_f1", "val_log_loss", "macro_f1"} <= entry.keys():
            raise SystemExit(f"{path}: line {k} is not a fit of this script; move the file away or mend it")
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--grid", required=True, type=Path, help="JSON: {setting: {model, params}}")
    parser.add_argument("--only", nargs="+", default=None, help="run only these settings of the grid")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--task", default="6class")
    parser.add_argument("--max-objects-per-class", type=positive_int, default=None,
                        help="keep at most this many objects of each class, as bench_networks.py does (learning curves)")
    parser.add_argument("--workers", type=positive_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads per worker")
    parser.add_argument("--set", dest="common", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter given to every setting (e.g. accelerator=gpu), before its own")
    parser.add_argument("--deadline", type=float, default=None, help="start no fit after this many seconds")
    parser.add_argument("--out", required=True, type=Path, help="JSON lines, one per fit; appended to, and read back on rerun")
    parser.add_argument("--save-proba", type=Path, default=None,
                        help="also write each fit's validation and test probabilities here (SETTING-seedS-fitS.npz)")
    parser.add_argument("--baseline", default=None, help="the setting the others are paired with")
    parser.add_argument("--summary-only", action="store_true",
                        help="fit nothing: summarise the fits already in --out (the grid's settings first, then any other)")
    args = parser.parse_args(argv)
    try:
        grid = json.loads(args.grid.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{args.grid}: cannot read the grid ({exc})") from None
    if not isinstance(grid, dict) or not all(isinstance(v, dict) and "model" in v for v in grid.values()):
        raise SystemExit(f"{args.grid}: need {{setting: {{\"model\": NAME, \"params\": {{...}}}}}}")
    if args.summary_only:  # the grid only orders the settings: it may name parameters of an older commit
        done = read_fits(args.out)
        if not done:
            raise SystemExit(f"{args.out}: no fits to summarise")
        names = list(dict.fromkeys([*grid, *(r["setting"] for r in done)]))
        print(_summary(done, names, args.baseline))
        return 0
    common: dict[str, Any] = {}
    for text in args.common:
        key, sep, raw = text.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got {text!r}")
        common[key] = parameter_value(raw)
    from deeptao.models import create_model

    for name, spec in grid.items():  # a misspelt model or parameter stops the sweep before any fit, not in a worker
        try:
            estimator = create_model(spec["model"], **{**common, **spec.get("params", {})})
            getattr(estimator, "_check_params", lambda: None)()  # what fit would refuse
        except (KeyError, TypeError, ValueError) as exc:
            raise SystemExit(f"{args.grid}: setting {name!r}: {exc}") from None
    stems = [proba_file_stem(n) for n in grid] if args.save_proba is not None else []
    if len(set(stems)) < len(stems):
        clash = sorted({s for s in stems if stems.count(s) > 1})
        raise SystemExit(f"{args.grid}: settings whose names differ only in punctuation would share probability files ({', '.join(clash)})")
    open_cache_or_exit(args.cache)  # a bad cache is named here, not in every worker
    names = [n for n in grid if args.only is None or n in args.only]
    done = read_fits(args.out)
    have = {(r["setting"], r["seed"]) for r in done}
    jobs = [(n, s) for s in args.seeds for n in names if (n, s) not in have]
    print(f"{len(jobs)} fits to run ({len(have)} already in {args.out}), {args.workers} at a time", flush=True)
    start = time.perf_counter()
    pending: dict[Future, tuple[str, int]] = {}
    failed = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(str(args.cache), args.task, args.threads, args.max_objects_per_class)) as pool, open(args.out, "a") as fh:
        queue = list(jobs)
        while queue or pending:
            late = args.deadline is not None and time.perf_counter() - start > args.deadline
            while queue and len(pending) < args.workers and not late:
                name, seed = queue.pop(0)
                spec = grid[name]
                params = {**common, **spec.get("params", {})}
                pending[pool.submit(_run_job, name, spec["model"], params, seed, args.save_proba)] = (name, seed)
            if late and queue:
                print(f"deadline: {len(queue)} fits not started", flush=True)
                queue.clear()
            if not pending:
                break
            finished, _ = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
            for fut in finished:
                name, seed = pending.pop(fut)
                try:
                    entry = fut.result()
                except Exception as exc:  # one failed setting must not lose the others' fits
                    print(f"{name} seed {seed}: failed: {type(exc).__name__}: {exc}", flush=True)
                    failed += 1
                    continue
                fh.write(json.dumps(entry) + "\n")
                fh.flush()
                done.append(entry)
                print(f"[{time.perf_counter() - start:6.0f} s] {name:28s} seed {seed}  val {entry['val_macro_f1']:.3f} / "
                      f"{entry['val_log_loss']:.3f}  test {entry['macro_f1']:.3f}  fit {entry['fit_seconds']:.0f} s", flush=True)
    print()
    print(_summary(done, names, args.baseline))
    if failed:
        print(f"{failed} fits failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
