"""How a model's temperature should depend on the nights it saw: four rules, fitted on validation, scored on test.

Reads a finished ``deeptao replicate --out RUN`` (its cache, splits and the
6-class object-split models of every seed), takes each model's probabilities
before any temperature (the prior shift stays) on its validation and test
objects, whole and cut to their first 1, 2, 4, 8 and 16 nights (only cuts
shorter than the object), and fits on the validation sequences:

- ``one``: one temperature, on whole sequences only (deeptao before 0.2);
- ``sqrt``: ``T exp(s / sqrt n)`` on whole and cut sequences (what deeptao fits);
- ``power``: ``T n ** b``, ``n`` clipped to the longest validation sequence;
- ``per-count``: a temperature per count of the ladder and one for whole
  sequences longer than 16 nights, interpolated in ``log n``.

It prints the test log-loss and the expected calibration error (top class,
15 bins, in %) at each cut, pooled over seeds, per model:

    python benchmarks/early_calibration.py RUN
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

LADDER = (1, 2, 4, 8, 16)


def _raw_estimator(path: Path):
    from deeptao.models import load_model

    estimator = load_model(path)
    if hasattr(estimator, "weight_"):
        raise SystemExit(f"{path}: a fused model; this check reads single models")
    estimator.temperature_, estimator.temperature_slope_ = 1.0, 0.0
    return estimator


def _sequences(cache, estimator, rows: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """``(proba, y, nights, cut)`` for the whole objects (cut 0) and each ladder cut."""
    from deeptao.io import first_nights, sequence_nights

    nights = cache.night_counts(rows)
    out = [(estimator.predict_proba(cache, rows), y, nights, 0)]
    whole = [(cache.object_images(int(r)), cache.object_mjd(int(r))) for r in rows]
    for k in LADDER:
        keep = np.flatnonzero(nights > k)
        if len(keep):
            cut = [first_nights(*whole[i], k) for i in keep]
            out.append((estimator.predict_proba_arrays(cut), y[keep], np.array([sequence_nights(*c) for c in cut]), k))
    return out


def _nll(log_p: np.ndarray, y: np.ndarray, t: np.ndarray) -> float:
    z = log_p / t[:, None]
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def _fit_two(log_p: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``(a, b)`` of ``T = exp(a + b g)`` by log-loss."""
    return minimize(lambda ab: _nll(log_p, y, np.exp(ab[0] + ab[1] * g)), [0.0, 0.0], method="Nelder-Mead").x


def _rules(val: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]):
    from deeptao.models.calibration import fit_nights_temperature, fit_temperature, temperature_at

    proba = np.concatenate([v[0] for v in val])
    y = np.concatenate([v[1] for v in val])
    n = np.maximum(np.concatenate([v[2] for v in val]), 1).astype(float)
    log_p = np.log(np.clip(proba, 1e-12, None))
    single = fit_temperature(val[0][0], val[0][1])
    t, s = fit_nights_temperature(proba, y, n)
    top = n.max()
    a, b = _fit_two(log_p, y, np.log(np.clip(n, 1, top)))
    xs, ts = [], []
    for k in LADDER:
        at = n == k
        at &= np.concatenate([np.full(len(v[1]), v[3] == k) for v in val])
        if at.sum() >= 10:
            xs.append(math.log(k))
            ts.append(fit_temperature(proba[at], y[at]))
    long = (n > max(LADDER)) & np.concatenate([np.full(len(v[1]), v[3] == 0) for v in val])
    if long.sum() >= 10:
        xs.append(math.log(float(np.median(n[long]))))
        ts.append(fit_temperature(proba[long], y[long]))
    return {
        "one": lambda m: np.full(len(m), single),
        "sqrt": lambda m: np.broadcast_to(temperature_at(t, s, m), (len(m),)),
        "power": lambda m: np.exp(a + b * np.log(np.clip(np.maximum(m, 1), 1, top))),
        "per-count": lambda m: np.interp(np.log(np.maximum(m, 1)), xs, ts),
    }


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished deeptao replicate --out folder")
    opts = parser.parse_args(args)

    from deeptao.data.cache import open_cache
    from deeptao.data.tasks import select_task
    from deeptao.evaluation import expected_calibration_error
    from deeptao.models.calibration import apply_temperature

    cache = open_cache(opts.run / "cache")
    task = select_task("6class", cache.labels_array())
    ids = cache.objects["object_id"].to_numpy()
    y_all = np.full(len(cache), -1)
    y_all[task.rows] = task.y
    stages = sorted(p for p in (opts.run / "models").glob("*-object-seed*") if "class" not in p.name)
    if not stages:
        raise SystemExit(f"{opts.run}: no 6-class object-split model stages under models/")
    results: dict[str, dict[str, dict[int, list]]] = {}
    for stage in stages:
        model, seed = stage.name.rsplit("-object-seed", 1)
        files = sorted(stage.glob("model.*"))
        if not files:
            continue
        split_file = opts.run / ("split.csv" if seed == "0" else f"split-seed{seed}.csv")
        split = pd.read_csv(split_file).set_index("object_id").loc[ids, "split"].to_numpy()
        estimator = _raw_estimator(files[0])
        part = {name: task.rows[split[task.rows] == name] for name in ("val", "test")}
        val = _sequences(cache, estimator, part["val"], y_all[part["val"]])
        test = _sequences(cache, estimator, part["test"], y_all[part["test"]])
        for rule, temperature in _rules(val).items():
            for proba, y, nights, cut in test:
                results.setdefault(model, {}).setdefault(rule, {}).setdefault(cut, []).append((proba, y, temperature(nights.astype(float))))
        print(f"{stage.name}: done", flush=True)
    cuts = [*LADDER, 0]
    print("\ntest log-loss / ECE % by nights seen (0: all), pooled over seeds")
    for model, rules in results.items():
        print(f"\n{model}")
        for rule, by_cut in rules.items():
            cells, total = [], 0.0
            for cut in cuts:
                proba = np.concatenate([p for p, _, _ in by_cut[cut]])
                y = np.concatenate([v for _, v, _ in by_cut[cut]])
                t = np.concatenate([t for _, _, t in by_cut[cut]])
                loss = _nll(np.log(np.clip(proba, 1e-12, None)), y, t)
                total += loss
                cells.append(f"{cut or 'all'}: {loss:.3f}/{100 * expected_calibration_error(apply_temperature(proba, t), y):4.1f}")
            print(f"  {rule:9s} sum {total:.3f} | " + "  ".join(cells))


if __name__ == "__main__":
    main()
