"""How far do a dozen hand-made stamp features take the light-curve forest? A reference point for the networks.

The networks' claim is that the images carry what the light curve does not.
This benchmark asks how much of that a photometrist could read off the same
stamps by hand: the twelve rotation-invariant numbers of
:mod:`deeptao.data.stamp_features` (reference morphology, where the largest
change sits, the centroid's motion), measured on taonet's representation of
each object (the 12-pixel stamp). Since 2026-12-04 taonet and taonet-lc take
the same twelve beside their pooled nights.

It fits the light-curve forest (``lc-rf`` at its defaults) on the MANTRA
features alone and on the MANTRA features with these twelve, on the same
object-group splits as ``bench_networks.py``, and prints test and validation
macro F1 per class. No feature reveals the label. With ``--networks DIR``
(probabilities saved by ``bench_networks.py --save-proba DIR``) it also prints
the networks' scores on the same splits, and their product with the stamp
forest (with ``--variability``, the forest that has those features too) at a
weight chosen on validation log-loss (the rule of ``taonet+rf``).
With ``--truth`` (a simulated survey's ``simulation_truth.csv``) it also counts,
for each kind of OTHER the simulator drew, how many test objects each model
called OTHER, pooled over the splits, and prints each forest's confusion
matrix on the plainly drawn test objects (not made to
look like another class, not faint, not given another class's label). The
truth is only read for these counts.
With ``--variability`` it also fits a third forest with the five variability
features of :mod:`deeptao.data.variability_features` after the stamp's (the
check that they carry something the forest's own features do not), and
prints each forest's validation log-loss. With ``--intra-night`` as well, a
fourth forest adds the five intra-night features of
:mod:`deeptao.data.intra_night_features` (what changes within a night's
visit, which the nightly co-adds and bins average away). With ``--event`` as
well, a further forest adds the six event features of
:mod:`deeptao.data.event_features` to the stamp and variability features
(how often the object brightens, how fast its brightest event rises and
fades). With ``--drw`` as well, a last forest adds the four damped-random-walk
features of :mod:`deeptao.data.drw_features` to those.

    python benchmarks/stamp_feature_forest.py --cache C913 --seeds 0 1 2 [--networks P] [--truth S913/simulation_truth.csv] [--variability [--intra-night] [--event [--drw]]]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from saved_proba import saved_fits
from sklearn.metrics import confusion_matrix, f1_score, log_loss

from deeptao.data.drw_features import DRW_FEATURE_NAMES, drw_feature_matrix
from deeptao.data.event_features import EVENT_FEATURE_NAMES, event_feature_matrix
from deeptao.data.intra_night_features import INTRA_NIGHT_FEATURE_NAMES, intra_night_features
from deeptao.data.stamp_features import STAMP_FEATURE_NAMES, stamp_features
from deeptao.data.variability_features import VARIABILITY_FEATURE_NAMES, variability_features


def _macro_f1(y: np.ndarray, proba: np.ndarray, per_class: bool = False) -> np.ndarray | float:
    scores = f1_score(y, proba.argmax(axis=1), labels=np.arange(proba.shape[1]), average=None, zero_division=0)
    return scores if per_class else float(scores.mean())


def _truth(truth_path: Path, cache) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's kind of each cache object, and whether it was drawn plainly; every object must be in the table.

    Matched on CRTS id and label. Plain: not drawn to look like another class
    (``ambiguous``), not faint, and labelled as what it is (label = physical class).
    """
    import pandas as pd

    try:
        truth = pd.read_csv(truth_path, usecols=["crts_id", "label", "kind", "physical_class", "ambiguous", "faint"], dtype=str)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{truth_path}: not a simulation truth table ({exc})") from None
    plain = (truth["ambiguous"] != "True") & (truth["faint"] != "True") & (truth["label"] == truth["physical_class"])
    keys = list(zip(truth["crts_id"], truth["label"], strict=True))
    kind_of = dict(zip(keys, truth["kind"].fillna("?"), strict=True))
    plain_of = dict(zip(keys, plain, strict=True))
    objects = list(zip(cache.objects["crts_id"].astype(str), cache.objects["label"].astype(str), strict=True))
    missing = sum(key not in kind_of for key in objects)
    if missing:  # another survey's table, or one cut short
        raise SystemExit(f"{truth_path}: holds no truth for {missing} of the cache's {len(objects)} objects")
    return np.array([kind_of[key] for key in objects]), np.array([plain_of[key] for key in objects])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--networks", type=Path, default=None, help="probabilities saved by bench_networks.py --save-proba")
    parser.add_argument("--truth", type=Path, default=None, help="simulation_truth.csv of the simulated survey: OTHER recall per kind")
    parser.add_argument("--variability", action="store_true", help="also fit a forest with the variability features after the stamp's")
    parser.add_argument("--intra-night", action="store_true", help="with --variability: a fourth forest, the intra-night features added")
    parser.add_argument("--event", action="store_true", help="with --variability: a forest with the event features after the variability features")
    parser.add_argument("--drw", action="store_true", help="with --event: a forest with the damped-random-walk features after the event features")
    args = parser.parse_args(argv)
    if (args.intra_night or args.event) and not args.variability:
        parser.error("--intra-night and --event need --variability")
    if args.drw and not args.event:
        parser.error("--drw needs --event")

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
    objects = [store.object(i) for i in range(len(store))]  # read once for both feature sets
    stamp = np.array([stamp_features(obj) for obj in objects])
    print(f"stamp features of {len(store)} objects in {time.perf_counter() - t0:.1f} s")
    if args.variability:
        variability = np.array([variability_features(obj) for obj in objects])
    if args.intra_night:
        intra = np.array([intra_night_features(obj) for obj in objects])
    if args.event:
        event = event_feature_matrix(objects)
    if args.drw:
        drw = drw_feature_matrix(objects)
    del objects
    networks = {m: {seed: runs[0] for seed, runs in by_seed.items()} for m, by_seed in saved_fits(args.networks).items() if m != "lc-rf"} if args.networks else {}
    kinds, plain = _truth(args.truth, cache) if args.truth else (None, None)
    found: dict[tuple[str, str], list[int]] = {}  # (model, kind) -> [called OTHER, objects]
    plain_confusion: dict[str, np.ndarray] = {}  # model -> confusion of its plain test objects, pooled over splits

    # Every forest here is left uncalibrated: a temperature does not move its argmax (macro F1), and lc-rf's
    # calibration by nights recomputes features from the images, which would not carry the extra columns.
    class StampForest(LightCurveForest):  # lc-rf, its features followed by the stamp's (and the variability features)
        def __init__(self, extra: np.ndarray = stamp, extra_names: tuple[str, ...] = STAMP_FEATURE_NAMES, **kw):
            super().__init__(**{"calibrate": False, **kw})
            self.extra, self.extra_names = extra, extra_names

        def cache_features(self, cache, rows):
            return np.column_stack([super().cache_features(cache, rows), self.extra[np.asarray(rows, dtype=np.int64)]])

        def fit(self, *a, **kw):
            super().fit(*a, **kw)
            self.feature_names_ = [*self.feature_names_, *self.extra_names]
            return self

    def with_blocks(*blocks: tuple[np.ndarray, tuple[str, ...]]):
        """A factory of the forest with these feature blocks after lc-rf's, bound now (not when it is called)."""
        extra = np.column_stack([matrix for matrix, _ in blocks])
        names = tuple(name for _, block_names in blocks for name in block_names)
        return lambda: StampForest(extra, names)

    stamp_block = (stamp, STAMP_FEATURE_NAMES)
    forests = [("lc-rf", lambda: create_model("lc-rf", calibrate=False)), ("lc-rf + stamp", StampForest)]
    if args.variability:
        variability_block = (variability, VARIABILITY_FEATURE_NAMES)
        forests.append(("lc-rf + stamp + variability", with_blocks(stamp_block, variability_block)))
    if args.intra_night:
        forests.append(("lc-rf + stamp + var + intra-night", with_blocks(stamp_block, variability_block, (intra, INTRA_NIGHT_FEATURE_NAMES))))
    if args.event:
        event_block = (event, EVENT_FEATURE_NAMES)
        forests.append(("lc-rf + stamp + var + event", with_blocks(stamp_block, variability_block, event_block)))
    if args.drw:
        forests.append(("lc-rf + stamp + var + event + drw", with_blocks(stamp_block, variability_block, event_block, (drw, DRW_FEATURE_NAMES))))

    scores: dict[str, list[np.ndarray]] = {}
    validation: dict[str, list[tuple[float, float]]] = {}  # (macro F1, log-loss) on the validation objects, per split
    importances: list[dict[str, float]] = []
    for seed in args.seeds:
        split = split_cache(cache, mode="object", seed=seed)[0][task.rows]
        (tr, ytr), (va, yva), (te, yte) = ((task.rows[split == p], task.y[split == p]) for p in ("train", "val", "test"))
        proba = {}
        for name, make in forests:
            forest = make()
            forest.fit(cache, tr, ytr, classes=task.classes, val_rows=va, y_val=yva, seed=seed)
            proba[name] = forest.predict_proba(cache, va), forest.predict_proba(cache, te)
            if name == "lc-rf + stamp":
                importances.append(forest.feature_importances_)
        for model, by_seed in sorted(networks.items()):
            run = by_seed.get(seed)
            if run is None:
                continue
            if not (np.array_equal(run["val_rows"], va) and np.array_equal(run["test_rows"], te)):
                raise SystemExit(f"{args.networks}: {model} on split {seed} was not scored on this cache's split")
            proba[model] = run["val_proba"], run["test_proba"]
            fused_with = forests[-1][0]  # the forest with the most features
            weight = choose_weight(run["val_proba"], proba[fused_with][0], yva)
            proba[f"{model} x {fused_with} (w {weight:g})"] = tuple(
                fuse_probabilities(net, forest, weight) for net, forest in zip(proba[model], proba[fused_with], strict=True)
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
                mine = plain[te]
                counts = confusion_matrix(yte[mine], test_p[mine].argmax(axis=1), labels=np.arange(len(task.classes)))
                plain_confusion[key] = plain_confusion.get(key, 0) + counts
            scores.setdefault(key, []).append(per_class)
            loss = log_loss(yva, val_p, labels=np.arange(val_p.shape[1]))
            val_f1 = _macro_f1(yva, val_p)
            validation.setdefault(key, []).append((val_f1, loss))
            print(f"split {seed} {name:34s} test {per_class.mean():.3f}  val {val_f1:.3f}  val loss {loss:.3f}  " + " ".join(f"{c} {v:.2f}" for c, v in zip(task.classes, per_class, strict=True)), flush=True)
    print()
    print(f"{'model':34s} {'val F1':>6s} {'val loss':>8s} {'test macro F1':>15s} " + " ".join(f"{c:>6s}" for c in task.classes))
    for name, rows in scores.items():
        r = np.array(rows)
        macro = r.mean(axis=1)
        std = macro.std(ddof=1) if len(macro) > 1 else float("nan")
        val_f1, val_loss = np.mean(validation[name], axis=0)
        print(f"{name:34s} {val_f1:6.3f} {val_loss:8.3f} {macro.mean():.3f} ± {std:.3f}   " + " ".join(f"{v:6.3f}" for v in r.mean(axis=0)))
    mean_importance = {k: float(np.mean([imp[k] for imp in importances])) for k in importances[0]}
    ranked = sorted(mean_importance, key=mean_importance.get, reverse=True)
    if kinds is not None:
        print("\nOTHER test objects called OTHER, by the simulator's kind (pooled over splits):")
        for kind in sorted({k for _, k in found}, key=lambda k: -found[("lc-rf", k)][1]):
            print(f"  {kind:16s} {found[('lc-rf', kind)][1]:4d} objects: " + ", ".join(f"{m} {found[(m, kind)][0]}" for m in scores if (m, kind) in found))
        print("\nplain test objects (not look-alikes, not faint, labelled as what they are), pooled over splits:")
        for name, _ in forests:
            counts = plain_confusion[name]
            print(f"{name}: right {np.trace(counts)} of {counts.sum()}; rows true, columns called " + " ".join(f"{c:>6s}" for c in task.classes))
            for c, row in zip(task.classes, counts, strict=True):
                print(f"  {c:6s} " + " ".join(f"{v:6d}" for v in row))
    print("\nthe stamp forest's most important features (mean decrease in impurity, mean over splits):")
    print("  " + ", ".join(f"{k} {mean_importance[k]:.3f}" + (" (stamp)" if k in STAMP_FEATURE_NAMES else "") for k in ranked[:12]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
