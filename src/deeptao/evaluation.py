"""Scores come from one table of predictions, so every number can be recomputed.

A run writes ``RUN/predictions.parquet``: one row per scored item (an object,
or one image of an object) for every model, split protocol, task and seed.
Everything else in the run folder is derived from that table:
``metrics.json`` and ``f1_scores.csv`` by :func:`evaluate_run`,
``confusion_matrix.png`` by :func:`deeptao.plotting.plot_run_figures` and the
report by :func:`deeptao.report.write_report`, so a metric can always be
traced back to the predictions that produced it and rebuilt after a change to
the scoring code. This module draws nothing: plotting and the report depend
on it, never the reverse.

Predictions schema (one row per scored item):

=============  =========  ====================================================
column         dtype      meaning
=============  =========  ====================================================
model          str        registered model name (``seed-cnn``, ``taonet``, ...)
split          str        split protocol: ``object`` (by group) or ``image``
task           str        ``6class``, ``5class`` or ``binary`` (see TASK_CLASSES)
seed           int64      seed of the split and the training run
level          str        ``object`` (one row per object) or ``image``
item           str        object_id, or ``object_id#k`` for image row k
y_true         str        true class name (one of the task's classes)
y_pred         str        predicted class name
prob_<CLASS>   float64    predicted probability, one column per task class
temperature    float64    optional: the temperature the probabilities were
                          calibrated with (:mod:`deeptao.models.calibration`);
                          NaN or absent: not calibrated
=============  =========  ====================================================

A table may hold several tasks; ``prob_`` columns of classes outside a row's
task are NaN. Scores are grouped by (model, split, task, level, seed) and then
summarised over seeds as a mean and a *sample* standard deviation (``ddof=1``,
the usual estimate of seed-to-seed spread); with a single seed the standard
deviation is NaN (``null`` in JSON, empty in CSV), never a misleading 0.

Calibration is scored by the expected calibration error of the top class
(:func:`expected_calibration_error`); where a ``temperature`` column says how
the probabilities were calibrated, the same error before the temperature is
recovered exactly from the table (``p_raw ∝ p ** T``). A prior shift chosen on
validation (:mod:`deeptao.models.calibration`, a no-op on a balanced survey)
is not recorded and stays in both: "before" means before temperature scaling.

Early classification (``RUN/early_predictions.parquet``): the same schema plus
a ``nights`` column, the number of first nights each test object was cut to
(0: all of them); :func:`early_scores` gives macro F1 against ``nights``.

The seed-to-seed spread says nothing about how much a macro F1 owes to the
few test objects it was measured on, so each summary also carries a 95 %
percentile bootstrap interval of the seed-mean macro F1 (see
:func:`bootstrap_macro_f1_shared`): the union of the seeds' scored items is
resampled with replacement by object (at image level an object's images move
together), each seed's macro F1 recomputed on the draws in its own test set,
and the seeds averaged. Seeds of one survey test overlapping objects, so
they are resampled together, not each on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeptao.data.tasks import TASKS, task_classes

__all__ = [
    "TASK_CLASSES",
    "SPLITS",
    "LEVELS",
    "KEY_COLUMNS",
    "PREDICTIONS_FILE",
    "METRICS_FILE",
    "F1_FILE",
    "CONFUSION_FILE",
    "STD_DDOF",
    "BOOTSTRAP_REPLICATES",
    "BOOTSTRAP_SEED",
    "CI_LEVEL",
    "RunError",
    "Score",
    "Evaluation",
    "make_predictions",
    "validate_predictions",
    "object_level_from_images",
    "save_predictions",
    "load_predictions",
    "score",
    "macro_f1_from_confusion",
    "balanced_accuracy_from_confusion",
    "bootstrap_macro_f1",
    "bootstrap_macro_f1_shared",
    "macro_f1_ci",
    "aggregate",
    "leakage_gaps",
    "display_order",
    "metrics_dict",
    "f1_table",
    "write_metrics_json",
    "write_f1_csv",
    "evaluate_run",
    "MODEL_ORDER",
    "model_rank",
    "expected_calibration_error",
    "reliability_bins",
    "calibration_inputs",
    "RELIABILITY_FILE",
    "EARLY_FILE",
    "ECE_BINS",
    "EARLY_PREDICTIONS_FILE",
    "validate_early_predictions",
    "early_scores",
]

TASK_CLASSES: dict[str, tuple[str, ...]] = {task: task_classes(task) for task in TASKS}
"""Classes of each task in table order, as :mod:`deeptao.data.tasks` defines them."""

SPLITS = ("object", "image")
LEVELS = ("object", "image")
KEY_COLUMNS = ("model", "split", "task", "level", "seed")
"""One scored run per distinct value of these columns."""

PREDICTIONS_FILE = "predictions.parquet"
METRICS_FILE = "metrics.json"
F1_FILE = "f1_scores.csv"
EARLY_PREDICTIONS_FILE = "early_predictions.parquet"
CONFUSION_FILE = "confusion_matrix.png"
RELIABILITY_FILE = "reliability.png"
EARLY_FILE = "early_classification.png"
"""Drawn by :func:`deeptao.plotting.plot_run_figures`; named here with the other run files."""

STD_DDOF = 1
"""Standard deviations over seeds are sample standard deviations."""

BOOTSTRAP_REPLICATES = 1000
"""Bootstrap replicates per summarised setting; 1000 puts the 2.5 % tail on 25 replicates."""
BOOTSTRAP_SEED = 20_240_917
"""Fixed seed of every bootstrap, so ``metrics.json`` is identical from one evaluation to the next."""
CI_LEVEL = 0.95
"""Coverage of the macro F1 interval."""
ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error."""

_BASE_COLUMNS = ("model", "split", "task", "seed", "level", "item", "y_true", "y_pred")


class RunError(ValueError):
    """A run folder lacks predictions or holds an unusable predictions table."""


# --------------------------------------------------------------------- tables


def make_predictions(
    *,
    model: str,
    split: str,
    task: str,
    seed: int,
    level: str,
    items: Sequence[str],
    y_true: Sequence[str] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str] | None = None,
    temperature: float | np.ndarray | None = None,
) -> pd.DataFrame:
    """Build a predictions table from a classifier's probabilities.

    ``classes`` is the column order of ``proba`` (a classifier's ``classes_``)
    and defaults to the task's classes; ``y_true`` may hold class names or
    integer indices into ``classes``. The predicted class is the arg-max.
    ``temperature``, when given, is the calibration temperature ``proba``
    already carries, one number or one per item (a temperature that depends
    on each object's nights; recorded so the uncalibrated error can be scored).
    """
    known = task_classes(task)
    classes = tuple(known if classes is None else classes)
    proba = np.asarray(proba, dtype=np.float64)
    n = len(items)
    if proba.shape != (n, len(classes)):
        raise ValueError(f"proba has shape {proba.shape}; expected ({n}, {len(classes)}) for classes {list(classes)}")
    y_true = np.asarray(y_true)
    if len(y_true) != n:
        raise ValueError(f"y_true has {len(y_true)} entries for {n} items")
    if y_true.dtype.kind in "iu":
        y_true = np.asarray(classes, dtype=object)[y_true]
    extra = sorted(set(classes) - set(known))
    if extra:
        raise ValueError(f"classes {extra} are not classes of task {task!r}")
    frame = pd.DataFrame(
        {
            "model": pd.Series([model] * n, dtype=object),
            "split": split,
            "task": task,
            "seed": np.full(n, int(seed), dtype=np.int64),
            "level": level,
            "item": pd.Series([str(i) for i in items], dtype=object),
            "y_true": pd.Series(y_true.astype(object), dtype=object),
            "y_pred": pd.Series(np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if n else [], dtype=object),
        }
    )
    for j, cls in enumerate(classes):
        frame[f"prob_{cls}"] = proba[:, j]
    for cls in known:  # a classifier that never saw a class gives it probability 0
        if f"prob_{cls}" not in frame:
            frame[f"prob_{cls}"] = 0.0
    if temperature is not None:
        t = np.asarray(temperature, dtype=np.float64)
        if t.ndim > 1 or (t.ndim == 1 and t.shape != (n,)):
            raise ValueError(f"temperature must be one number or one per item ({n}), got shape {t.shape}")
        frame["temperature"] = np.broadcast_to(t, (n,)).copy()
    return validate_predictions(_order_columns(frame))


def _order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    order = {cls: i for i, cls in enumerate(dict.fromkeys(c for t in TASK_CLASSES.values() for c in t))}
    probs = sorted(
        (c for c in frame.columns if c.startswith("prob_")),
        key=lambda c: (order.get(c[5:], len(order)), c),
    )
    rest = [c for c in frame.columns if c not in _BASE_COLUMNS and c not in probs]
    return frame[list(_BASE_COLUMNS) + probs + rest]


def validate_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Check the schema and return a normalised copy (column order, dtypes).

    Raises ``ValueError`` naming the first fault, because a wrong table would
    otherwise surface as a silently wrong metric.
    """
    if not isinstance(predictions, pd.DataFrame):
        raise TypeError(f"predictions must be a pandas DataFrame, not {type(predictions).__name__}")
    missing = [c for c in _BASE_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    frame = predictions.copy()
    for col in _BASE_COLUMNS:
        if frame[col].isna().any():
            raise ValueError(f"predictions column {col!r} has missing values")
    for col in ("model", "split", "task", "level", "item", "y_true", "y_pred"):
        frame[col] = frame[col].astype(str).astype(object)
    try:
        seeds = pd.to_numeric(frame["seed"], errors="raise")
    except (TypeError, ValueError):
        raise ValueError("predictions column 'seed' must hold integers") from None
    if not np.all(np.equal(np.mod(seeds, 1), 0)):
        raise ValueError("predictions column 'seed' must hold integers")
    frame["seed"] = seeds.astype(np.int64)
    for col, allowed in (("split", SPLITS), ("level", LEVELS), ("task", tuple(TASK_CLASSES))):
        bad = sorted(set(frame[col]) - set(allowed))
        if bad:
            raise ValueError(f"predictions column {col!r} has values {bad}; allowed: {list(allowed)}")
    for task, rows in frame.groupby("task", sort=True):
        classes = TASK_CLASSES[task]
        for col in ("y_true", "y_pred"):
            bad = sorted(set(rows[col]) - set(classes))
            if bad:
                raise ValueError(f"predictions column {col!r} has {bad}, not classes of task {task!r} {list(classes)}")
        for cls in classes:
            col = f"prob_{cls}"
            if col not in frame.columns:
                raise ValueError(f"predictions lack column {col!r} for task {task!r}")
            if not np.isfinite(pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=np.float64)).all():
                raise ValueError(f"predictions column {col!r} has non-finite values for task {task!r}")
    for col in (c for c in frame.columns if c.startswith("prob_")):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
    if "temperature" in frame.columns:
        temperature = pd.to_numeric(frame["temperature"], errors="coerce").to_numpy(np.float64)
        if (temperature[np.isfinite(temperature)] <= 0).any() or np.isinf(temperature).any():
            raise ValueError("predictions column 'temperature' must hold positive numbers (NaN: not calibrated)")
        frame["temperature"] = temperature
    dup = frame.duplicated(subset=list(KEY_COLUMNS) + ["item"])
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise ValueError(
            f"predictions score item {first['item']!r} twice in run "
            + ", ".join(f"{k}={first[k]}" for k in KEY_COLUMNS)
        )
    return _order_columns(frame).reset_index(drop=True)


def object_level_from_images(predictions: pd.DataFrame, rule: str = "mean") -> pd.DataFrame:
    """Object-level rows from image-level rows, each object's images pooled by ``rule``.

    The rules are the models' own (:mod:`deeptao.models.pooling`: ``mean``,
    ``geometric``, ``topk``), so a table of image predictions made elsewhere
    is pooled exactly as seed-cnn pools its images. Only ``level == 'image'``
    rows are used; items are ``object_id#k``.
    """
    from deeptao.models.pooling import pool

    frame = validate_predictions(predictions)
    frame = frame[frame["level"] == "image"]
    if frame.empty:
        raise ValueError("predictions have no image-level rows to average")
    frame = frame.assign(item=_item_objects(frame["item"].to_numpy(dtype=str), "image"))
    parts = []
    for (model, split, task, seed), rows in frame.groupby(["model", "split", "task", "seed"], sort=True):
        classes = TASK_CLASSES[task]
        truth = rows.groupby("item", sort=True)["y_true"].agg(lambda s: set(s))
        mixed = truth[truth.map(len) > 1]
        if len(mixed):
            raise ValueError(f"object {mixed.index[0]!r} has images with different true classes {sorted(mixed.iloc[0])}")
        objects, owner = np.unique(rows["item"].to_numpy(dtype=str), return_inverse=True)
        proba = rows[[f"prob_{c}" for c in classes]].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore"):  # a probability of 0 is a log of -inf, which every rule handles
            pooled = pool(np.log(proba), owner, len(objects), rule)
        parts.append(
            make_predictions(
                model=model,
                split=split,
                task=task,
                seed=int(seed),
                level="object",
                items=list(objects),
                y_true=np.array([next(iter(truth.loc[o])) for o in objects], dtype=object),
                proba=pooled,
                classes=classes,
            )
        )
    return _order_columns(pd.concat(parts, ignore_index=True))


def save_predictions(predictions: pd.DataFrame, run_dir: str | Path, *, append: bool = False) -> Path:
    """Write ``RUN/predictions.parquet``.

    With ``append``, rows already stored for the same (model, split, task,
    level, seed) runs are replaced, so a resumed run never double counts.
    """
    run_dir = Path(run_dir)
    frame = validate_predictions(predictions)
    path = run_dir / PREDICTIONS_FILE
    if append and path.exists():
        old = load_predictions(run_dir)
        new_runs = frame[list(KEY_COLUMNS)].drop_duplicates()
        keep = old.merge(new_runs, on=list(KEY_COLUMNS), how="left", indicator=True)["_merge"] == "left_only"
        frame = validate_predictions(pd.concat([old.loc[keep.to_numpy()], frame], ignore_index=True))
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_predictions(run_dir: str | Path) -> pd.DataFrame:
    """Read and check ``RUN/predictions.parquet`` (``run_dir`` may also be the file)."""
    run_dir = Path(run_dir)
    path = run_dir if run_dir.suffix == ".parquet" else run_dir / PREDICTIONS_FILE
    if not path.is_file():
        where = run_dir if run_dir.suffix != ".parquet" else path
        raise RunError(f"{where}: no {PREDICTIONS_FILE} found; not a run folder, or nothing was scored yet")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise RunError(f"{path}: unreadable parquet ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if frame.empty:
        raise RunError(f"{path}: the predictions table has no rows")
    try:
        return validate_predictions(frame)
    except (TypeError, ValueError) as exc:
        raise RunError(f"{path}: {exc}") from exc


# -------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """Per-class and macro scores of one run, or of several seeds of one setting.

    Arrays follow ``classes``. For a summary over seeds, precision/recall/F1,
    ``macro_f1`` and ``balanced_accuracy`` are means over seeds, the ``*_std``
    fields their sample standard deviations (NaN with one seed), and
    ``support`` and ``confusion`` are summed over seeds, so rows of
    ``confusion`` still add up to ``support``. ``macro_f1_ci`` is the
    bootstrap interval of the seed-mean macro F1 (:func:`aggregate`), NaN
    where it was not computed (a per-seed score). ``ece`` is the expected
    calibration error of the probabilities as predicted, ``ece_uncalibrated``
    the same before temperature scaling (NaN for an uncalibrated model);
    means over seeds in a summary. ``pr_auc`` is each class's area under its
    one-vs-rest precision-recall curve (average precision), NaN for a class
    absent from the test items: with NON fifty times BZ, it says how well a
    rare class is ranked, which F1 at the arg-max does not.
    """

    model: str
    split: str
    task: str
    level: str
    seeds: tuple[int, ...]
    classes: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    macro_f1: float
    macro_f1_std: float = math.nan
    precision_std: np.ndarray = field(default=None)  # type: ignore[assignment]
    recall_std: np.ndarray = field(default=None)  # type: ignore[assignment]
    f1_std: np.ndarray = field(default=None)  # type: ignore[assignment]
    macro_f1_per_seed: tuple[float, ...] = ()
    balanced_accuracy: float = math.nan
    balanced_accuracy_std: float = math.nan
    macro_f1_ci: tuple[float, float] = (math.nan, math.nan)
    ece: float = math.nan
    ece_uncalibrated: float = math.nan
    pr_auc: np.ndarray = field(default=None)  # type: ignore[assignment]
    #: a per-seed score's items and their confusion cells (``true * K + predicted``), what the bootstrap resamples
    outcomes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    #: a summary's per-seed ``outcomes`` (empty where a run had none), for bootstraps across settings
    seed_outcomes: tuple[tuple[np.ndarray, np.ndarray], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        nan = np.full(len(self.classes), np.nan)
        for name in ("precision_std", "recall_std", "f1_std", "pr_auc"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, nan.copy())
        if not self.macro_f1_per_seed:
            object.__setattr__(self, "macro_f1_per_seed", (float(self.macro_f1),))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.split, self.task, self.level)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def class_spread(self) -> float:
        """Sample standard deviation of per-class F1 (how uneven the classes are)."""
        return float(np.std(self.f1, ddof=STD_DDOF)) if len(self.f1) > STD_DDOF else math.nan

    @property
    def confusion_normalized(self) -> np.ndarray:
        """Rows divided by their totals; a class absent from y_true gives a row of zeros."""
        counts = self.confusion.astype(np.float64)
        totals = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def score(predictions: pd.DataFrame) -> list[Score]:
    """Score every (model, split, task, level, seed) run in a predictions table.

    Per-class precision, recall and F1 use scikit-learn with the task's
    classes as labels and ``zero_division=0``, so a class never predicted or
    absent from the test set counts as 0 in the macro average rather than
    being dropped from it. Balanced accuracy is the mean recall over the
    classes present in the test set (:func:`balanced_accuracy_from_confusion`).
    """
    # scikit-learn costs a second to import; loaded here so that importing this
    # module (as plotting and the report do) stays cheap
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    frame = validate_predictions(predictions)
    out = []
    for (model, split, task, level, seed), rows in frame.groupby(list(KEY_COLUMNS), sort=True):
        classes = TASK_CLASSES[task]
        y_true = rows["y_true"].to_numpy()
        y_pred = rows["y_pred"].to_numpy()
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=list(classes), zero_division=0
        )
        confusion = confusion_matrix(y_true, y_pred, labels=list(classes)).astype(np.int64)
        index = {c: k for k, c in enumerate(classes)}
        cells = np.array([index[t] * len(classes) + index[p] for t, p in zip(y_true, y_pred, strict=True)], dtype=np.int64)
        ece, ece_raw = _calibration_errors(rows, classes)
        pr_auc = _pr_auc(rows, classes)
        out.append(
            Score(
                model=model,
                split=split,
                task=task,
                level=level,
                seeds=(int(seed),),
                classes=classes,
                precision=np.asarray(precision, dtype=np.float64),
                recall=np.asarray(recall, dtype=np.float64),
                f1=np.asarray(f1, dtype=np.float64),
                support=np.asarray(support, dtype=np.int64),
                confusion=confusion,
                macro_f1=float(np.mean(f1)),
                balanced_accuracy=balanced_accuracy_from_confusion(confusion),
                ece=ece,
                ece_uncalibrated=ece_raw,
                pr_auc=pr_auc,
                outcomes=(_item_objects(rows["item"].to_numpy(dtype=str), level), cells),
            )
        )
    return display_order(out)


def _item_objects(items: np.ndarray, level: str) -> np.ndarray:
    """The object each scored item belongs to: itself at object level, ``object_id`` of ``object_id#k`` at image level."""
    if level != "image":
        return items
    parts = np.char.rpartition(np.asarray(items, dtype=str), "#")
    return np.where(parts[:, 1] == "#", parts[:, 0], parts[:, 2])


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error: sum over confidence bins of |accuracy - confidence| x share.

    ``proba`` (n, n_classes), ``y`` (n,) class indices. Bins are ``n_bins``
    equal-width intervals of the top probability, closed on the right (the
    first also on the left); NaN for no items.
    """
    confidence, accuracy, count = reliability_bins(proba, y, n_bins)
    if count.sum() == 0:
        return math.nan
    used = count > 0
    return float(np.sum(count[used] * np.abs(accuracy[used] - confidence[used])) / count.sum())


def reliability_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: mean top probability, accuracy and item count (NaN for an empty bin).

    The bins of :func:`expected_calibration_error` and of the reliability
    diagram (:func:`deeptao.plotting.plot_reliability`).
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if proba.ndim != 2 or y.shape != (len(proba),):
        raise ValueError(f"need proba (n, n_classes) and y (n,), got {proba.shape} and {y.shape}")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, correct, minlength=n_bins) / count
    return mean_confidence, accuracy, count


def calibration_inputs(rows: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(proba, y, proba_uncalibrated)`` of one run's rows; the last is None without a temperature column.

    The uncalibrated probabilities are recovered exactly from the calibrated
    ones and the recorded temperature (``p_raw ∝ p ** T``).
    """
    from deeptao.models.calibration import apply_temperature

    proba = rows[[f"prob_{c}" for c in classes]].to_numpy(np.float64)
    index = {c: i for i, c in enumerate(classes)}
    y = rows["y_true"].map(index).to_numpy(np.int64)
    if "temperature" not in rows.columns:
        return proba, y, None
    temperature = rows["temperature"].to_numpy(np.float64)
    if not np.isfinite(temperature).all():
        return proba, y, None
    return proba, y, apply_temperature(proba, 1.0 / temperature)  # each row by its own temperature


def _pr_auc(rows: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """Average precision of each class against the rest (scikit-learn), NaN where the class is absent."""
    from sklearn.metrics import average_precision_score

    y_true = rows["y_true"].to_numpy()
    out = np.full(len(classes), np.nan)
    for j, cls in enumerate(classes):
        positive = y_true == cls
        if positive.any():
            out[j] = average_precision_score(positive, rows[f"prob_{cls}"].to_numpy(np.float64))
    return out


def _calibration_errors(rows: pd.DataFrame, classes: Sequence[str]) -> tuple[float, float]:
    """ECE as predicted and, where rows carry their temperature, before it was applied."""
    proba, y, raw = calibration_inputs(rows, classes)
    return expected_calibration_error(proba, y), (math.nan if raw is None else expected_calibration_error(raw, y))


def macro_f1_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Macro F1 of one confusion matrix or a stack of them, without scikit-learn.

    The bootstrap scores thousands of resampled confusion matrices, too many
    for one scikit-learn call each. Per class F1 = 2 TP / (true + predicted),
    which is scikit-learn's formula, and 0 where the class is neither true
    nor predicted (``zero_division=0``), so the result equals
    ``f1_score(..., labels=classes, average="macro", zero_division=0)``.

    Parameters
    ----------
    confusion : numpy.ndarray
        Counts of shape ``(..., K, K)``: rows true class, columns predicted.

    Returns
    -------
    numpy.ndarray
        Macro F1 of shape ``(...)`` (a 0-d array for one matrix).
    """
    counts = np.asarray(confusion)
    if counts.ndim < 2 or counts.shape[-1] != counts.shape[-2]:
        raise ValueError(f"confusion matrices must have shape (..., K, K), not {counts.shape}")
    tp = np.diagonal(counts, axis1=-2, axis2=-1).astype(np.float64)
    denom = (counts.sum(axis=-1) + counts.sum(axis=-2)).astype(np.float64)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    return f1.mean(axis=-1)


def balanced_accuracy_from_confusion(confusion: np.ndarray) -> float:
    """Mean recall over the classes that occur in the test set (NaN if none does).

    Unlike macro F1 it ignores precision, so it reads as "how often is an
    object of a typical class found"; a class absent from the test set has no
    recall and is left out, as in :func:`sklearn.metrics.balanced_accuracy_score`.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    true = counts.sum(axis=1)
    present = true > 0
    if not present.any():
        return math.nan
    return float(np.mean(np.diag(counts)[present] / true[present]))


def bootstrap_macro_f1(
    confusions: Sequence[np.ndarray], *, n_boot: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Bootstrap replicates of the seed-mean macro F1, one value per replicate.

    Replicate ``b`` resamples each seed's ``n`` scored items with replacement,
    recomputes that seed's macro F1 and averages over seeds. Macro F1 depends
    on the items only through their confusion matrix, and the confusion
    matrix of ``n`` items drawn with replacement is multinomial with ``n``
    trials and the observed cell fractions as probabilities. So the resample
    is drawn as one multinomial per seed and replicate: the same distribution
    as drawing item indices, at a cost of ``n_boot * K**2`` whatever the
    number of items, so image-level settings (tens of thousands of images)
    get the full ``n_boot`` replicates too.

    Parameters
    ----------
    confusions : sequence of numpy.ndarray
        One ``(K, K)`` confusion matrix of counts per seed.
    n_boot : int
        Number of replicates.
    seed : int
        Seed of the :class:`numpy.random.Generator`; seeds are drawn in the
        order given, ``rng.multinomial(n, counts.ravel() / n, size=n_boot)``
        each.

    Returns
    -------
    numpy.ndarray
        ``n_boot`` seed-mean macro F1 values.
    """
    if n_boot <= 0:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not confusions:
        raise ValueError("no confusion matrices to resample")
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    for counts in confusions:
        counts = np.asarray(counts, dtype=np.int64)
        k = counts.shape[0]
        n = int(counts.sum())
        if counts.shape != (k, k) or n <= 0 or (counts < 0).any():
            raise ValueError(f"each seed needs a square confusion matrix of non-negative counts, not {counts.tolist()}")
        draws = rng.multinomial(n, counts.ravel() / n, size=n_boot).reshape(n_boot, k, k)
        total += macro_f1_from_confusion(draws)
    return total / len(confusions)


_SHARED_CHUNK = 100  # replicates drawn at once by the shared-object bootstrap...
_SHARED_CELLS = 5_000_000  # ...fewer where that many objects would make the draws larger than this


def bootstrap_macro_f1_shared(
    outcomes: Sequence[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    *,
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Bootstrap replicates of the seed-mean macro F1, resampling objects shared by the seeds.

    Seeds of one setting split one survey differently, so an object is often
    in the test sets of several seeds (with three seeds and a 15 % test share,
    a sixth of a seed's test objects are in another's). Resampling each seed
    on its own treats their errors as independent and narrows the interval;
    here each replicate draws the union of scored objects once, with
    replacement (a multinomial count per object), and every seed scores the
    draws that fall in its own test set, so an object drawn twice weighs
    twice in every seed that tested it. An object's scored items move
    together: at image level all its images (they show one source, so
    resampling them one by one would claim far more independent evidence
    than there is).

    Parameters
    ----------
    outcomes : sequence of (objects, cells)
        Per seed, one entry per scored item: the object it belongs to and its
        confusion cell ``true * n_classes + predicted``.
    n_classes : int
    n_boot, seed
        As in :func:`bootstrap_macro_f1`.

    Returns
    -------
    numpy.ndarray
        ``n_boot`` seed-mean macro F1 values.
    """
    return _shared_replicates([outcomes], n_classes, n_boot=n_boot, seed=seed)[0]


def _shared_replicates(
    settings: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]], n_classes: int, *, n_boot: int, seed: int
) -> list[np.ndarray]:
    """Seed-mean macro F1 replicates of several settings from the same draws of their objects' union.

    One setting is :func:`bootstrap_macro_f1_shared`. Settings that tested
    the same objects (two split protocols on one survey) are resampled
    together, so the replicates of their difference carry the uncertainty of
    the difference, not of two unrelated scores.
    """
    if n_boot <= 0:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not settings or not all(settings):
        raise ValueError("no scored items to resample")
    k2 = n_classes * n_classes
    flat = [pair for outcomes in settings for pair in outcomes]
    for objects, cells in flat:
        if len(objects) == 0 or len(objects) != len(cells) or np.min(cells) < 0 or np.max(cells) >= k2:
            raise ValueError(f"each seed needs scored items with confusion cells in [0, {k2}), got {len(objects)} items")
    union, inverse = np.unique(np.concatenate([np.asarray(objects, dtype=str) for objects, _ in flat]), return_inverse=True)
    bounds = np.cumsum([0, *(len(objects) for objects, _ in flat)])
    per_seed = []  # (the seed's objects in the union, each one's counts per confusion cell)
    for k, (_, cells) in enumerate(flat):
        owners, local = np.unique(inverse[bounds[k] : bounds[k + 1]], return_inverse=True)
        cell_counts = np.zeros((len(owners), k2))
        np.add.at(cell_counts, (local, np.asarray(cells, dtype=np.int64)), 1.0)
        per_seed.append((owners, cell_counts))
    first = np.cumsum([0, *(len(outcomes) for outcomes in settings)])  # each setting's seeds in per_seed
    rng = np.random.default_rng(seed)
    out = [np.empty(n_boot) for _ in settings]
    chunk = max(1, min(_SHARED_CHUNK, _SHARED_CELLS // len(union)))
    for lo in range(0, n_boot, chunk):
        size = min(chunk, n_boot - lo)
        counts = rng.multinomial(len(union), np.full(len(union), 1.0 / len(union)), size=size).astype(np.float64)
        for g in range(len(settings)):
            total = np.zeros(size)
            for owners, cell_counts in per_seed[first[g] : first[g + 1]]:
                confusion = counts[:, owners] @ cell_counts  # (size, K*K)
                total += macro_f1_from_confusion(confusion.reshape(size, n_classes, n_classes))
            out[g][lo : lo + size] = total / (first[g + 1] - first[g])
    return out


def _percentile_interval(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    lo, hi = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def macro_f1_ci(
    confusions: Sequence[np.ndarray],
    *,
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the seed-mean macro F1 (see :func:`bootstrap_macro_f1`).

    Returns the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    replicates (numpy's default linear interpolation).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return _percentile_interval(bootstrap_macro_f1(confusions, n_boot=n_boot, seed=seed), level)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over the first axis ignoring NaN; NaN where every value is NaN (no warning)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    total = np.where(finite, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _std(values: np.ndarray) -> np.ndarray:
    if values.shape[0] <= STD_DDOF:
        return np.full(values.shape[1:], np.nan)
    return np.std(values, axis=0, ddof=STD_DDOF)


def aggregate(
    scores: Sequence[Score], *, n_boot: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED
) -> list[Score]:
    """Summarise per-seed scores over seeds: mean, sample std (``ddof=1``) and bootstrap interval.

    ``macro_f1_ci`` is :func:`macro_f1_ci` of the runs' confusion matrices,
    which hold all the bootstrap needs, so no predictions table is required.
    Every setting uses the same ``seed``, so its interval does not depend on
    which other settings are in the table. ``n_boot=0`` skips the bootstrap,
    as does a run that already spans several seeds (its confusion matrix is a
    sum and cannot be resampled per seed); the interval is then NaN.
    """
    groups: dict[tuple[str, str, str, str], list[Score]] = {}
    for s in scores:
        groups.setdefault(s.key, []).append(s)
    out = []
    for key in sorted(groups):
        runs = sorted(groups[key], key=lambda s: s.seeds)
        seeds = tuple(seed for s in runs for seed in s.seeds)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {sorted(seeds)} repeat for {'/'.join(key)}; aggregate per-seed scores only")
        if any(s.classes != runs[0].classes for s in runs):
            raise ValueError(f"runs of {'/'.join(key)} disagree on classes")
        stack = {name: np.stack([getattr(s, name) for s in runs]) for name in ("precision", "recall", "f1")}
        macro = np.array([s.macro_f1 for s in runs])
        balanced = np.array([s.balanced_accuracy for s in runs])
        ece = np.array([s.ece for s in runs])
        ece_raw = np.array([s.ece_uncalibrated for s in runs])
        pr = np.stack([s.pr_auc for s in runs])
        ci = (math.nan, math.nan)
        if n_boot > 0 and all(s.n_seeds == 1 and s.confusion.sum() > 0 for s in runs):
            if all(s.outcomes is not None for s in runs):
                ci = _percentile_interval(
                    bootstrap_macro_f1_shared([s.outcomes for s in runs], len(runs[0].classes), n_boot=n_boot, seed=seed)  # type: ignore[misc]
                )
            else:
                ci = macro_f1_ci([s.confusion for s in runs], n_boot=n_boot, seed=seed)
        out.append(
            Score(
                model=key[0],
                split=key[1],
                task=key[2],
                level=key[3],
                seeds=seeds,
                classes=runs[0].classes,
                precision=stack["precision"].mean(axis=0),
                recall=stack["recall"].mean(axis=0),
                f1=stack["f1"].mean(axis=0),
                support=np.sum([s.support for s in runs], axis=0).astype(np.int64),
                confusion=np.sum([s.confusion for s in runs], axis=0).astype(np.int64),
                macro_f1=float(macro.mean()),
                macro_f1_std=float(_std(macro[:, None])[0]),
                precision_std=_std(stack["precision"]),
                recall_std=_std(stack["recall"]),
                f1_std=_std(stack["f1"]),
                macro_f1_per_seed=tuple(float(m) for m in macro),
                balanced_accuracy=float(balanced.mean()),
                balanced_accuracy_std=float(_std(balanced[:, None])[0]),
                macro_f1_ci=ci,
                ece=float(ece.mean()),
                ece_uncalibrated=float(ece_raw.mean()),
                pr_auc=_nanmean_rows(pr),
                seed_outcomes=tuple(s.outcomes for s in runs) if all(s.outcomes is not None for s in runs) else (),  # type: ignore[misc]
            )
        )
    return display_order(out)


def leakage_gaps(
    summary: Sequence[Score], *, n_boot: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED
) -> list[dict[str, Any]]:
    """Image-split minus object-split macro F1 for the same model, task and level.

    Both protocols see the same data; only the split differs, so the gap is
    what a random image split adds by letting near-duplicate images of one
    object sit on both sides. ``gap_ci95`` is a percentile bootstrap interval
    of the gap: the objects both protocols tested are resampled together
    (:func:`_shared_replicates`) and the gap taken per replicate; None where
    the summaries carry no per-seed outcomes or ``n_boot`` is 0.
    """
    by_key = {s.key: s for s in summary}
    gaps = []
    for image in display_order(summary):
        model, split, task, level = image.key
        if split != "image" or (model, "object", task, level) not in by_key:
            continue
        obj = by_key[(model, "object", task, level)]
        interval = None
        if n_boot > 0 and obj.seed_outcomes and image.seed_outcomes:
            b_obj, b_img = _shared_replicates(
                [obj.seed_outcomes, image.seed_outcomes], len(obj.classes), n_boot=n_boot, seed=seed
            )
            interval = list(_percentile_interval(b_img - b_obj))
        gaps.append(
            {
                "model": model,
                "task": task,
                "level": level,
                "object_split_macro_f1": obj.macro_f1,
                "image_split_macro_f1": image.macro_f1,
                "gap": image.macro_f1 - obj.macro_f1,
                "gap_ci95": interval,
                "object_split_n_seeds": obj.n_seeds,
                "image_split_n_seeds": image.n_seeds,
            }
        )
    return gaps


MODEL_ORDER = ("seed-cnn", "taonet", "taonet-lc", "taonet+rf", "lc-rf")
"""Reading order of the built-in models in tables and figures; other models follow."""


def model_rank(model: str) -> int:
    """Position of ``model`` in :data:`MODEL_ORDER` (unknown models after the built-in ones)."""
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)


def display_order(scores: Iterable[Score]) -> list[Score]:
    """Scores in reading order: built-in models first, then task, split and level as defined above."""

    def key(s: Score) -> tuple[Any, ...]:
        return (
            model_rank(s.model),
            s.model,
            list(TASK_CLASSES).index(s.task),
            SPLITS.index(s.split),
            LEVELS.index(s.level),
            s.seeds,
        )

    return sorted(scores, key=key)


# -------------------------------------------------------------------- writers


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _per_class(classes: Sequence[str], values: np.ndarray) -> dict[str, float | None]:
    return {c: _num(v) for c, v in zip(classes, values, strict=True)}


def _score_entry(s: Score, *, per_seed: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": s.model, "split": s.split, "task": s.task, "level": s.level}
    if per_seed:
        entry["seed"] = s.seeds[0]
    else:
        entry["n_seeds"] = s.n_seeds
        entry["seeds"] = list(s.seeds)
    entry |= {
        "macro_f1": s.macro_f1,
        "macro_f1_std": None if per_seed else _num(s.macro_f1_std),
    }
    if not per_seed:
        lo, hi = s.macro_f1_ci
        entry["macro_f1_ci95"] = None if math.isnan(lo) or math.isnan(hi) else [lo, hi]
    entry |= {
        "balanced_accuracy": _num(s.balanced_accuracy),
        "ece": _num(s.ece),
        "ece_uncalibrated": _num(s.ece_uncalibrated),
        "per_class_pr_auc": _per_class(s.classes, s.pr_auc),
        "macro_pr_auc": _num(_nanmean_rows(s.pr_auc[:, None])[0]),
        "per_class_f1": _per_class(s.classes, s.f1),
        "per_class_precision": _per_class(s.classes, s.precision),
        "per_class_recall": _per_class(s.classes, s.recall),
        "support": {c: int(v) for c, v in zip(s.classes, s.support, strict=True)},
        "confusion_matrix": s.confusion.tolist(),
        "classes": list(s.classes),
    }
    if not per_seed:
        entry |= {
            "balanced_accuracy_std": _num(s.balanced_accuracy_std),
            "macro_f1_per_seed": list(s.macro_f1_per_seed),
            "per_class_f1_std": _per_class(s.classes, s.f1_std),
            "per_class_precision_std": _per_class(s.classes, s.precision_std),
            "per_class_recall_std": _per_class(s.classes, s.recall_std),
        }
    return entry


def metrics_dict(
    per_seed: Sequence[Score], summary: Sequence[Score], *, n_boot: int = BOOTSTRAP_REPLICATES
) -> dict[str, Any]:
    """The content of ``metrics.json``.

    ``runs`` has one entry per (model, split, task, level) summarised over
    seeds (``n_seeds``; std is null with one seed; support and confusion
    matrix summed over seeds; ``macro_f1_ci95`` is ``[lo, hi]``, or null when
    not computed); ``per_seed`` has one entry per seed (``seed``).
    ``bootstrap`` records how the intervals were drawn; ``n_boot`` must be
    the value the summary was aggregated with.
    """
    return {
        "std_ddof": STD_DDOF,
        "bootstrap": {
            "method": "percentile bootstrap of the seed-mean macro F1; the union of the seeds' test objects "
            "resampled with replacement once per replicate (an object's images together at image level), "
            "each seed scoring the draws in its own test set",
            "confidence": CI_LEVEL,
            "replicates": n_boot,
            "seed": BOOTSTRAP_SEED,
        },
        "runs": [_score_entry(s, per_seed=False) for s in summary],
        "per_seed": [_score_entry(s, per_seed=True) for s in per_seed],
        "leakage_gaps": leakage_gaps(summary),
    }


def write_metrics_json(
    per_seed: Sequence[Score],
    summary: Sequence[Score],
    path: str | Path,
    *,
    n_boot: int = BOOTSTRAP_REPLICATES,
    early: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """Write :func:`metrics_dict` as strict JSON (NaN becomes ``null``), with ``early`` (:func:`early_scores`) if given."""
    path = Path(path)
    content = metrics_dict(per_seed, summary, n_boot=n_boot)
    if early is not None:
        content["early"] = early
    path.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n")
    return path


def f1_table(summary: Sequence[Score]) -> pd.DataFrame:
    """One row per (model, split, task, level, class): means over seeds, ``*_std`` if any run has several seeds."""
    with_std = any(s.n_seeds > 1 for s in summary)
    rows = []
    for s in summary:
        for i, cls in enumerate(s.classes):
            row: dict[str, Any] = {
                "model": s.model,
                "split": s.split,
                "task": s.task,
                "level": s.level,
                "class": cls,
                "precision": s.precision[i],
                "recall": s.recall[i],
                "f1": s.f1[i],
            }
            if with_std:
                row |= {"precision_std": s.precision_std[i], "recall_std": s.recall_std[i], "f1_std": s.f1_std[i]}
            row |= {"support": int(s.support[i]), "n_seeds": s.n_seeds}
            rows.append(row)
    columns = ["model", "split", "task", "level", "class", "precision", "recall", "f1"]
    if with_std:
        columns += ["precision_std", "recall_std", "f1_std"]
    return pd.DataFrame(rows, columns=columns + ["support", "n_seeds"])


def write_f1_csv(summary: Sequence[Score], path: str | Path) -> Path:
    path = Path(path)
    f1_table(summary).to_csv(path, index=False)
    return path


# -------------------------------------------------------------------- early classification


def validate_early_predictions(early: pd.DataFrame) -> pd.DataFrame:
    """Check an early-classification table: the predictions schema plus ``nights`` (int >= 0)."""
    if "nights" not in early.columns:
        raise ValueError("early predictions lack column 'nights'")
    nights = pd.to_numeric(early["nights"], errors="coerce")
    if nights.isna().any() or (nights < 0).any() or not np.all(np.mod(nights, 1) == 0):
        raise ValueError("early predictions column 'nights' must hold integers >= 0")
    parts = []
    for k, rows in early.assign(nights=nights.astype(np.int64)).groupby("nights", sort=True):
        part = validate_predictions(rows.drop(columns="nights"))
        part.insert(len(_BASE_COLUMNS), "nights", np.int64(k))
        parts.append(part)
    if not parts:
        return early.copy()
    return pd.concat(parts, ignore_index=True)


def early_scores(early: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Macro F1 and calibration against the number of first nights, per (model, split, task, level).

    Returns ``{"model/split/task/level": [{nights, macro_f1, macro_f1_std,
    ece, confidence, accuracy, n_seeds, n_objects}, ...]}`` with ``nights``
    ascending and 0 (every night) last; macro F1 is the mean over seeds, std
    the sample std (None with one seed), ``ece`` the expected calibration
    error of the top class, ``confidence`` its mean predicted probability and
    ``accuracy`` how often it is right (means over seeds): a model calibrated
    on whole sequences alone would be overconfident on a few nights (the
    reason deeptao's temperatures depend on the nights seen), and a broker
    acting on its probabilities should know how far they hold. ``n_objects`` is the objects
    scored per seed (mean).
    """
    frame = validate_early_predictions(early)
    out: dict[str, list[dict[str, Any]]] = {}
    for (model, split, task, level), rows in frame.groupby(["model", "split", "task", "level"], sort=True):
        curve = []
        for k, at_k in rows.groupby("nights", sort=True):
            scores = score(at_k.drop(columns="nights"))
            per_seed = [s.macro_f1 for s in scores]
            sizes = at_k.groupby("seed").size()
            std = float(np.std(per_seed, ddof=STD_DDOF)) if len(per_seed) > STD_DDOF else math.nan
            confidence, accuracy = [], []
            for _, seed_rows in at_k.groupby("seed", sort=True):
                proba, y, _ = calibration_inputs(seed_rows, TASK_CLASSES[task])
                confidence.append(float(proba.max(axis=1).mean()))
                accuracy.append(float((proba.argmax(axis=1) == y).mean()))
            curve.append(
                {
                    "nights": int(k),
                    "macro_f1": float(np.mean(per_seed)),
                    "macro_f1_std": _num(std),
                    "ece": _num(float(np.mean([s.ece for s in scores]))),
                    "confidence": float(np.mean(confidence)),
                    "accuracy": float(np.mean(accuracy)),
                    "n_seeds": len(per_seed),
                    "n_objects": float(sizes.mean()),
                }
            )
        curve.sort(key=lambda e: (e["nights"] == 0, e["nights"]))
        out[f"{model}/{split}/{task}/{level}"] = curve
    return out


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_run` computed and wrote."""

    per_seed: list[Score]
    summary: list[Score]
    files: dict[str, Path]
    early: dict[str, list[dict[str, Any]]] | None = None


def evaluate_run(run_dir: str | Path, *, n_boot: int = BOOTSTRAP_REPLICATES) -> Evaluation:
    """Re-score a run from ``RUN/predictions.parquet`` and rewrite its tables.

    Writes ``metrics.json`` and ``f1_scores.csv`` only; the figures are drawn
    from the returned :class:`Evaluation` by
    :func:`deeptao.plotting.plot_run_figures`, so scoring needs no
    matplotlib. ``n_boot`` is the number of bootstrap replicates of the macro
    F1 interval (0: no interval). Raises :class:`RunError` when the folder
    holds no usable predictions.
    """
    run_dir = Path(run_dir)
    predictions = load_predictions(run_dir)
    per_seed = score(predictions)
    summary = aggregate(per_seed, n_boot=n_boot)
    early_path = run_dir / EARLY_PREDICTIONS_FILE
    early = early_scores(pd.read_parquet(early_path)) if early_path.is_file() else None
    files = {
        "metrics": write_metrics_json(per_seed, summary, run_dir / METRICS_FILE, n_boot=n_boot, early=early),
        "f1_scores": write_f1_csv(summary, run_dir / F1_FILE),
    }
    return Evaluation(per_seed=per_seed, summary=summary, files=files, early=early)
