"""Learning curves: macro F1 (mean ± std over group splits) against objects per class, per model.

Simulates one survey large enough for the largest size (a seed other than the
demo survey's), prepares it, and for each size keeps that many objects of
each class (the same random objects for every model), then fits and scores
every model on several object-group splits with ``bench_networks.py``'s
protocol, run by ``sweep_networks.py``. Writes a JSON of every score, a
Markdown table and a figure.

    python benchmarks/learning_curve.py --work W --sizes 50 100 200 400 800 \\
        --models lc-rf seed-cnn taonet taonet-lc --seeds 0 1 2 --survey-seed 4242

The default runs one fit at a time on every core, as the figures in the
docs were measured (it repeats them to the digit). ``--workers 2 --threads 1``
fits two at once on one core each, which on a 2-core machine finishes
sooner; the forest's scores stay the same, the networks' do not quite (one
thread adds its floats in another order, and training drifts apart: at 50
objects per class, over splits 0-2, taonet scored 0.603 ± 0.082 on one thread
against 0.619 ± 0.086 on two), and a fit's wall time is then that of a fit
sharing the machine. Sizes already in ``W/learning_curve.json`` are not run again, and
within a size the fits already in ``W/size-N.jsonl`` are kept, so the
benchmark can be grown or resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_networks import positive_int
from sweep_networks import read_fits

HERE = Path(__file__).resolve().parent


def _ensure_cache(work: Path, per_class: int, survey_seed: int) -> Path:
    from deeptao.data.cache import prepare
    from deeptao.simulate import SurveyConfig, simulate_survey

    survey, cache = work / f"survey-{survey_seed}-{per_class}", work / f"cache-{survey_seed}-{per_class}"
    marker = survey / ".complete"
    if not marker.exists():
        simulate_survey(survey, objects_per_class=per_class, seed=survey_seed, config=SurveyConfig(catalogue_path="built-in"), workers=2, overwrite=True)
        marker.write_text("ok")
    prepare(survey, cache, workers=2)
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--sizes", nargs="+", type=positive_int, default=[50, 100, 200, 400, 800])
    parser.add_argument("--models", nargs="+", default=["lc-rf", "seed-cnn", "taonet", "taonet-lc"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--survey-seed", type=int, default=4242)
    parser.add_argument("--docs", type=Path, default=None, help="also write learning_curve.md and .png here")
    parser.add_argument("--workers", type=positive_int, default=1, help="fits at once")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1, help="torch threads per fit")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cache = _ensure_cache(args.work, max(args.sizes), args.survey_seed)
    store = args.work / "learning_curve.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    for size in args.sizes:
        todo = [m for m in args.models if f"{size}:{m}" not in results]
        if not todo:
            continue
        grid = args.work / f"grid-{size}.json"
        grid.write_text(json.dumps({model: {"model": model, "params": {}} for model in todo}))
        out = args.work / f"size-{size}.jsonl"
        cmd = [sys.executable, str(HERE / "sweep_networks.py"), "--cache", str(cache), "--grid", str(grid),
               "--seeds", *map(str, args.seeds), "--max-objects-per-class", str(size), "--out", str(out),
               "--workers", str(args.workers), "--threads", str(args.threads)]  # fmt: skip
        print(" ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode:
            raise SystemExit(f"{out}: the sweep of size {size} stopped (see above); mend that and rerun to resume it")
        for entry in read_fits(out):
            if entry["setting"] in todo and entry["seed"] in args.seeds:
                results.setdefault(f"{size}:{entry['model']}", []).append(entry)
        store.write_text(json.dumps(results, indent=1))
    _write_outputs(results, args.sizes, args.models, args.docs or args.work)
    return 0


def _write_outputs(results: dict, sizes: list[int], models: list[str], folder: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["| objects per class | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for model in models:
        xs, means, stds = [], [], []
        for size in sizes:
            scores = [r["macro_f1"] for r in results.get(f"{size}:{model}", [])]
            if scores:
                xs.append(size)
                means.append(np.mean(scores))
                stds.append(np.std(scores, ddof=1) if len(scores) > 1 else 0.0)
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=model)
    for size in sizes:
        cells = []
        for model in models:
            scores = [r["macro_f1"] for r in results.get(f"{size}:{model}", [])]
            cells.append(f"{np.mean(scores):.3f} ± {np.std(scores, ddof=1):.3f} ({len(scores)})" if len(scores) > 1 else ("—" if not scores else f"{scores[0]:.3f} (1)"))
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("objects per class (before the 70/15/15 split)")
    ax.set_ylabel("6-class macro F1 on test (mean ± std over splits)")
    ax.axhline(1 / 6, color="grey", lw=0.8, ls=":", label="chance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "learning_curve.png", dpi=110)
    (folder / "learning_curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
