"""How far do a dozen hand-made stamp features take the light-curve forest? A reference point for the networks.

The networks' claim is that the images carry what the light curve does not.
This benchmark asks how much of that a photometrist could read off the same
stamps by hand. From taonet's representation of each object (nightly co-adds
and their median reference, :mod:`deeptao.data.representation`, the 12-pixel
stamp) it measures twelve numbers, each invariant under the eight flips and
rotations:

- the reference: aperture signal-to-noise, size (second moment), concentration
  (flux within 1.5 px over flux within 6 px), ellipticity, centroid offset;
- the night of the largest central change: where the positive residual sits
  (offset from the stamp centre and from the reference's centroid) and how
  point-like it is;
- motion: a straight-line fit of the nightly centroid against time (rate in
  pixels a year and its significance);
- an early-against-late difference (median of the last third of the nights
  minus the first third): the smaller of its positive and negative peaks (a
  moving star leaves both) and their separation.

It fits the light-curve forest (``lc-rf`` at its defaults) on the MANTRA
features alone and on the MANTRA features with these twelve, on the same
object-group splits as ``bench_networks.py``, and prints test and validation
macro F1 per class. No feature reveals the label. With ``--networks DIR``
(probabilities saved by ``bench_networks.py --save-proba DIR``) it also prints
the networks' scores on the same splits, and their product with the stamp
forest at a weight chosen on validation log-loss (the rule of ``taonet+rf``).
With ``--truth`` (a simulated survey's ``simulation_truth.csv``) it also counts,
for each kind of OTHER the simulator drew, how many test objects each model
called OTHER, pooled over the splits. The truth is only read for this count.

    python benchmarks/stamp_feature_forest.py --cache C913 --seeds 0 1 2 [--networks P] [--truth S913/simulation_truth.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from saved_proba import saved_fits
from sklearn.metrics import f1_score

STAMP_FEATURE_NAMES = (
    "ref_snr", "ref_size", "ref_concentration", "ref_ellipticity", "ref_offset",
    "change_offset", "change_host_offset", "change_compactness",
    "motion_rate", "motion_significance", "dipole_amplitude", "dipole_separation",
)  # fmt: skip

_GAUSS_MEDIAN_NOISE = 1.2533  # noise of a median over that of a mean, Gaussian data


def _offsets(c: int) -> tuple[np.ndarray, np.ndarray]:
    centre = (c - 1) / 2.0
    dy, dx = np.mgrid[0:c, 0:c].astype(np.float64) - centre
    return dy, dx


def _centroid(image: np.ndarray, dy: np.ndarray, dx: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """Centroid of the positive pixels inside ``mask`` and their sum (NaN centroid when nothing is positive)."""
    w = np.clip(image, 0.0, None) * mask
    total = float(w.sum())
    if total <= 0:
        return np.nan, np.nan, 0.0
    return float((w * dy).sum() / total), float((w * dx).sum() / total), total


def stamp_features(nights) -> np.ndarray:  # nights: deeptao.data.representation.ObjectNights
    """The twelve :data:`STAMP_FEATURE_NAMES` of one object; NaN where undefined (too few nights, no signal)."""
    out = np.full(len(STAMP_FEATURE_NAMES), np.nan)
    n = len(nights)
    if n == 0:
        return out
    coadd = nights.coadd.astype(np.float64)
    ref = nights.reference.astype(np.float64)
    dy, dx = _offsets(ref.shape[-1])
    r2 = dy**2 + dx**2
    core, ap, wide = r2 <= 2.25, r2 <= 9.0, r2 <= 36.0
    pixel_noise = float(np.median(nights.night_noise))
    ref_noise = _GAUSS_MEDIAN_NOISE * pixel_noise / np.sqrt(n)
    out[0] = np.arcsinh(ref[ap].sum() / (ref_noise * np.sqrt(ap.sum())))
    cy, cx, total = _centroid(ref, dy, dx, wide)
    if total > 0:
        w = np.clip(ref, 0.0, None) * wide
        yy, xx = (w * (dy - cy) ** 2).sum() / total, (w * (dx - cx) ** 2).sum() / total
        xy = (w * (dy - cy) * (dx - cx)).sum() / total
        half_trace, det = (yy + xx) / 2, yy * xx - xy**2
        spread = np.sqrt(max(half_trace**2 - det, 0.0))
        major, minor = half_trace + spread, max(half_trace - spread, 1e-9)
        out[1] = np.sqrt(yy + xx)
        out[3] = 1.0 - np.sqrt(minor / max(major, 1e-9))
        out[4] = np.hypot(cy, cx)
    else:
        cy = cx = 0.0
    wide_flux = ref[wide].sum()
    out[2] = ref[core].sum() / wide_flux if wide_flux > 0 else np.nan
    change = coadd - ref
    change_snr = (change * ap).sum(axis=(1, 2)) / (nights.night_noise * np.sqrt(ap.sum()))
    k = int(np.argmax(change_snr))
    if change_snr[k] > 3.0:
        py, px, _ = _centroid(change[k], dy, dx, wide)
        out[5] = np.hypot(py, px)
        out[6] = np.hypot(py - cy, px - cx)
        wide_change = change[k][wide].sum()
        out[7] = change[k][core].sum() / wide_change if wide_change > 0 else np.nan
    years = (nights.mjd - nights.mjd.mean()) / 365.25
    track = [(i, *_centroid(coadd[i], dy, dx, ap)[:2]) for i in range(n)]
    track = np.array([t for t in track if np.isfinite(t[1])])
    if len(track) >= 6 and np.ptp(years[track[:, 0].astype(int)]) > 0.5:
        t = years[track[:, 0].astype(int)]
        design = np.column_stack([t, np.ones_like(t)])
        fit_y = np.linalg.lstsq(design, track[:, 1], rcond=None)[0]
        fit_x = np.linalg.lstsq(design, track[:, 2], rcond=None)[0]
        residual = np.concatenate([track[:, 1] - design @ fit_y, track[:, 2] - design @ fit_x])
        rate = np.hypot(fit_y[0], fit_x[0])
        out[8] = rate
        out[9] = rate / (np.std(residual) / np.sqrt(((t - t.mean()) ** 2).sum()) + 1e-9)
    if n >= 6:
        third = max(n // 3, 2)
        late_minus_early = (np.median(coadd[-third:], axis=0) - np.median(coadd[:third], axis=0)) * wide
        noise = _GAUSS_MEDIAN_NOISE * pixel_noise * np.sqrt(2.0 / third)
        out[10] = np.arcsinh(min(late_minus_early.max(), -late_minus_early.min()) / noise)
        peak = np.unravel_index(late_minus_early.argmax(), late_minus_early.shape)
        trough = np.unravel_index(late_minus_early.argmin(), late_minus_early.shape)
        out[11] = np.hypot(peak[0] - trough[0], peak[1] - trough[1])
    return out


def _macro_f1(y: np.ndarray, proba: np.ndarray, per_class: bool = False) -> np.ndarray | float:
    scores = f1_score(y, proba.argmax(axis=1), labels=np.arange(proba.shape[1]), average=None, zero_division=0)
    return scores if per_class else float(scores.mean())


def _other_kinds(truth_path: Path, cache) -> np.ndarray:
    """The simulator's kind of each cache object (matched on CRTS id and label); "?" where the truth has none."""
    import pandas as pd

    try:
        truth = pd.read_csv(truth_path, usecols=["crts_id", "label", "kind"], dtype=str)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{truth_path}: not a simulation truth table ({exc})") from None
    kind_of = dict(zip(zip(truth["crts_id"], truth["label"], strict=True), truth["kind"].fillna("?"), strict=True))
    objects = cache.objects
    return np.array([kind_of.get(key, "?") for key in zip(objects["crts_id"].astype(str), objects["label"].astype(str), strict=True)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--networks", type=Path, default=None, help="probabilities saved by bench_networks.py --save-proba")
    parser.add_argument("--truth", type=Path, default=None, help="simulation_truth.csv of the simulated survey: OTHER recall per kind")
    args = parser.parse_args(argv)

    from deeptao.data.cache import open_cache
    from deeptao.data.representation import SequenceSettings, open_sequences
    from deeptao.data.splits import split_cache
    from deeptao.data.tasks import select_task
    from deeptao.models import create_model
    from deeptao.models.fusion import choose_weight, fuse_probabilities
    from deeptao.models.lc_rf import LightCurveForest

    cache = open_cache(args.cache)
    task = select_task("6class", cache.labels_array())
    t0 = time.perf_counter()
    store = open_sequences(cache, SequenceSettings(crop=12))  # taonet's default representation
    stamp = np.array([stamp_features(store.object(i)) for i in range(len(store))])
    print(f"stamp features of {len(store)} objects in {time.perf_counter() - t0:.1f} s")
    networks = {m: {seed: runs[0] for seed, runs in by_seed.items()} for m, by_seed in saved_fits(args.networks).items() if m != "lc-rf"} if args.networks else {}
    kinds = _other_kinds(args.truth, cache) if args.truth else None
    found: dict[tuple[str, str], list[int]] = {}  # (model, kind) -> [called OTHER, objects]

    class StampForest(LightCurveForest):  # lc-rf, its features followed by the stamp's
        def cache_features(self, cache, rows):
            return np.column_stack([super().cache_features(cache, rows), stamp[np.asarray(rows, dtype=np.int64)]])

        def fit(self, *a, **kw):
            super().fit(*a, **kw)
            self.feature_names_ = [*self.feature_names_, *STAMP_FEATURE_NAMES]
            return self

    scores: dict[str, list[np.ndarray]] = {}
    importances: list[dict[str, float]] = []
    for seed in args.seeds:
        split = split_cache(cache, mode="object", seed=seed)[0][task.rows]
        (tr, ytr), (va, yva), (te, yte) = ((task.rows[split == p], task.y[split == p]) for p in ("train", "val", "test"))
        proba = {}
        for name, forest in (("lc-rf", create_model("lc-rf")), ("lc-rf + stamp", StampForest())):
            forest.fit(cache, tr, ytr, classes=task.classes, val_rows=va, y_val=yva, seed=seed)
            proba[name] = forest.predict_proba(cache, va), forest.predict_proba(cache, te)
        importances.append(forest.feature_importances_)
        for model, by_seed in sorted(networks.items()):
            run = by_seed.get(seed)
            if run is None:
                continue
            if not (np.array_equal(run["val_rows"], va) and np.array_equal(run["test_rows"], te)):
                raise SystemExit(f"{args.networks}: {model} on split {seed} was not scored on this cache's split")
            proba[model] = run["val_proba"], run["test_proba"]
            weight = choose_weight(run["val_proba"], proba["lc-rf + stamp"][0], yva)
            proba[f"{model} x stamp forest (w {weight:g})"] = tuple(
                fuse_probabilities(net, forest, weight) for net, forest in zip(proba[model], proba["lc-rf + stamp"], strict=True)
            )
        for name, (val_p, test_p) in proba.items():
            per_class = _macro_f1(yte, test_p, per_class=True)
            key = name.split(" (w ")[0]
            if kinds is not None:
                other = task.classes.index("OTHER")
                for kind, called in zip(kinds[te][yte == other], test_p[yte == other].argmax(axis=1) == other, strict=True):
                    tally = found.setdefault((key, kind), [0, 0])
                    tally[0] += int(called)
                    tally[1] += 1
            scores.setdefault(key, []).append(per_class)
            print(f"split {seed} {name:34s} test {per_class.mean():.3f}  val {_macro_f1(yva, val_p):.3f}  " + " ".join(f"{c} {v:.2f}" for c, v in zip(task.classes, per_class, strict=True)), flush=True)
    print()
    print(f"{'model':34s} {'macro F1':>15s} " + " ".join(f"{c:>6s}" for c in task.classes))
    for name, rows in scores.items():
        r = np.array(rows)
        macro = r.mean(axis=1)
        std = macro.std(ddof=1) if len(macro) > 1 else float("nan")
        print(f"{name:34s} {macro.mean():.3f} ± {std:.3f}   " + " ".join(f"{v:6.3f}" for v in r.mean(axis=0)))
    mean_importance = {k: float(np.mean([imp[k] for imp in importances])) for k in importances[0]}
    ranked = sorted(mean_importance, key=mean_importance.get, reverse=True)
    if kinds is not None:
        print("\nOTHER test objects called OTHER, by the simulator's kind (pooled over splits):")
        for kind in sorted({k for _, k in found}, key=lambda k: -found[("lc-rf", k)][1]):
            print(f"  {kind:16s} {found[('lc-rf', kind)][1]:4d} objects: " + ", ".join(f"{m} {found[(m, kind)][0]}" for m in scores if (m, kind) in found))
    print("\nthe stamp forest's most important features (mean decrease in impurity, mean over splits):")
    print("  " + ", ".join(f"{k} {mean_importance[k]:.3f}" + (" (stamp)" if k in STAMP_FEATURE_NAMES else "") for k in ranked[:12]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
