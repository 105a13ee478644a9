"""Figures for a run: confusion matrices, object cutouts, sample images, training curves.

Figures are drawn from what :mod:`deeptao.evaluation` computed
(:func:`plot_run_figures` takes its :class:`~deeptao.evaluation.Evaluation`);
evaluation itself never imports this module, so scoring needs no matplotlib.

Figures are built as bare :class:`matplotlib.figure.Figure` objects rendered by
the Agg canvas, never through ``pyplot``: nothing is registered in a global
figure manager, so a long replication cannot leak figures, and importing this
module does not change the caller's matplotlib backend. Functions that save a
file release the figure before returning.

Cutouts are shown with a z-scale stretch (IRAF's ``zscale`` as implemented by
:class:`astropy.visualization.ZScaleInterval`), the usual choice for faint
sources on sky background; constant (blank) images, which the release
contains, fall back to a flat grey instead of dividing by zero.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.visualization import ZScaleInterval
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deeptao.evaluation import (
    CONFUSION_FILE,
    EARLY_FILE,
    RELIABILITY_FILE,
    TASK_CLASSES,
    Evaluation,
    Score,
    calibration_inputs,
    display_order,
    load_predictions,
    model_rank,
    reliability_bins,
)

__all__ = [
    "zscale_limits",
    "plot_run_figures",
    "plot_confusion_matrices",
    "plot_reliability",
    "plot_early_classification",
    "plot_object",
    "show_object",
    "plot_sample_images",
    "plot_training_curves",
    "ShowDefaults",
]

_DPI = 110


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_png: str | Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=_DPI)
    fig.clear()  # drop artists now; the figure is not held by any manager
    return out_png


def zscale_limits(image: np.ndarray) -> tuple[float, float]:
    """Display limits for one cutout: z-scale, widened when the image is flat or empty."""
    data = np.asarray(image, dtype=np.float32)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi > lo:
        try:
            lo, hi = (float(v) for v in ZScaleInterval().get_limits(finite))
        except (IndexError, ValueError):  # astropy gives up on degenerate samples
            pass
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def _show_cutout(ax: Any, image: np.ndarray) -> None:
    lo, hi = zscale_limits(image)
    ax.imshow(np.asarray(image, dtype=np.float32), cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _spread_indices(n: int, k: int | None) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)``, so a subset still spans the whole time range."""
    if k is None or k >= n:
        return np.arange(n)
    if k <= 0:
        raise ValueError(f"the number of images to show must be positive, got {k}")
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


# -------------------------------------------------------- confusion matrices


def plot_confusion_matrices(scores: Sequence[Score], out_png: str | Path, *, ncols: int = 3) -> Path:
    """One panel per (model, split, task, level): counts written in, colour row-normalised.

    Row normalisation makes the colour read as recall, so a rare class (BZ)
    is as visible as NON; the counts keep the absolute sizes honest.
    """
    if not scores:
        raise ValueError("no scores to plot")
    scores = display_order(scores)
    n = len(scores)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    size = max(3.2, 0.62 * max(len(s.classes) for s in scores) + 1.6)
    fig = _new_figure(size * ncols, (size + 0.35) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, s in zip(axes.flat, scores, strict=False):
        norm = s.confusion_normalized
        image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        k = len(s.classes)
        for i in range(k):
            for j in range(k):
                colour = "white" if norm[i, j] > 0.55 else "black"
                ax.text(j, i, f"{s.confusion[i, j]:d}", ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(k), s.classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), s.classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        f1 = f"macro F1 {100 * s.macro_f1:.1f}%"
        if s.n_seeds > 1:
            f1 += f" ± {100 * s.macro_f1_std:.1f} ({s.n_seeds} seeds)"
        ax.set_title(f"{s.model} · {s.task}\n{s.split} split, {s.level} level\n{f1}", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="fraction of true class")
    return _save(fig, out_png)


def plot_reliability(predictions: pd.DataFrame, out_png: str | Path, *, ncols: int = 4) -> Path:
    """Reliability diagram per (model, task), object split and level, seeds pooled.

    Accuracy against mean top probability in the bins of the calibration
    error; solid: the probabilities as predicted, dashed: before temperature
    scaling (where the table records a temperature). Points on the diagonal
    are honest probabilities; marker area grows with the items in the bin.
    """
    frame = predictions[(predictions["split"] == "object") & (predictions["level"] == "object")]
    groups = sorted(frame.groupby(["model", "task"], sort=False).groups, key=lambda k: (model_rank(k[0]), list(TASK_CLASSES).index(k[1])))
    if not groups:
        raise ValueError("no object-level predictions of the object split to draw")
    n = len(groups)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = _new_figure(3.2 * ncols, 3.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (model, task) in zip(axes.flat, groups, strict=False):
        rows = frame[(frame["model"] == model) & (frame["task"] == task)]
        proba, y, raw = calibration_inputs(rows, TASK_CLASSES[task])
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        for probs, style, label in ((raw, "--", "before the temperature"), (proba, "-", "as predicted")):
            if probs is None:
                continue
            confidence, accuracy, count = reliability_bins(probs, y)
            used = count > 0
            line = ax.plot(confidence[used], accuracy[used], style, lw=1.2, label=label)[0]
            ax.scatter(confidence[used], accuracy[used], s=8 + 60 * count[used] / count.max(), color=line.get_color())
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean top probability")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{model} · {task}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    return _save(fig, out_png)


def plot_early_classification(early: Mapping[str, Sequence[Mapping[str, Any]]], out_png: str | Path) -> Path:
    """Macro F1 against the number of first nights seen, one line per model (± std over seeds).

    ``early`` is :func:`deeptao.evaluation.early_scores`'s result; the point
    for every night sits at the right end of the axis.
    """
    if not early:
        raise ValueError("no early-classification scores to draw")
    cuts = sorted({e["nights"] for curve in early.values() for e in curve if e["nights"] > 0})
    positions = {k: i for i, k in enumerate(cuts)}
    positions[0] = len(cuts)
    fig = _new_figure(6.0, 3.8)
    ax = fig.subplots()
    for key in sorted(early, key=lambda k: model_rank(k.split("/")[0])):
        curve = early[key]
        x = np.array([positions[e["nights"]] for e in curve], dtype=float)
        f1 = np.array([e["macro_f1"] for e in curve])
        std = np.array([np.nan if e["macro_f1_std"] is None else e["macro_f1_std"] for e in curve])
        model, split, task, _level = key.split("/")
        line = ax.plot(x, f1, "o-", lw=1.2, ms=3, label=f"{model} ({task})")[0]
        if np.isfinite(std).any():
            ax.fill_between(x, f1 - std, f1 + std, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xticks(range(len(cuts) + 1), [str(k) for k in cuts] + ["all"])
    ax.set_xlabel("first nights seen")
    ax.set_ylabel("test macro F1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_run_figures(evaluation: Evaluation, run_dir: str | Path) -> dict[str, Path]:
    """Draw the figures that follow from a run's scores into ``run_dir``.

    ``confusion_matrix.png`` (:data:`deeptao.evaluation.CONFUSION_FILE`) from
    ``evaluation.summary``; ``reliability.png`` from the run's predictions;
    ``early_classification.png`` where the run scored early classification.
    The keys match those of ``evaluation.files``, so
    ``{**evaluation.files, **plot_run_figures(evaluation, run_dir)}`` lists
    every file the run's scoring wrote.
    """
    run_dir = Path(run_dir)
    files = {"confusion_matrix": plot_confusion_matrices(evaluation.summary, run_dir / CONFUSION_FILE)}
    predictions = load_predictions(run_dir)
    if ((predictions["split"] == "object") & (predictions["level"] == "object")).any():
        files["reliability"] = plot_reliability(predictions, run_dir / RELIABILITY_FILE)
    if evaluation.early:
        files["early_classification"] = plot_early_classification(evaluation.early, run_dir / EARLY_FILE)
    return files


# ------------------------------------------------------------------- cutouts


def plot_object(
    images: np.ndarray,
    mjd: np.ndarray,
    *,
    title: str,
    max_images: int | None = None,
    ncols: int = 8,
    blank: np.ndarray | None = None,
) -> Figure:
    """The cutouts of one object in time order, each stretched on its own and titled with its MJD.

    Each image gets its own z-scale because sky level and seeing change from
    night to night; a shared stretch would hide most of them. ``blank``
    (one flag per image) marks the constant images in their titles.
    """
    images = np.asarray(images)
    mjd = np.asarray(mjd, dtype=np.float64)
    if images.ndim != 3 or len(images) != len(mjd):
        raise ValueError(f"images must be (n, h, w) with one MJD each; got {images.shape} and {mjd.shape}")
    if ncols <= 0:
        raise ValueError(f"ncols must be positive, got {ncols}")
    blank = np.zeros(len(mjd), dtype=bool) if blank is None else np.asarray(blank, dtype=bool)
    if blank.shape != mjd.shape:
        raise ValueError(f"blank must have one flag per image; got {blank.shape} for {mjd.shape}")
    order = np.argsort(mjd, kind="stable")
    chosen = order[_spread_indices(len(order), max_images)]
    n = len(chosen)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = _new_figure(1.45 * ncols, 1.6 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, idx in zip(axes.flat, chosen, strict=False):
        _show_cutout(ax, images[idx])
        ax.set_title(f"{mjd[idx]:.3f}" + (" blank" if blank[idx] else ""), fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    shown = f"{n} of {len(images)} images" if n < len(images) else f"{n} images"
    fig.suptitle(f"{title}  ({shown}, MJD)" if n else f"{title}  (no images)", fontsize=10)
    return fig


@dataclass(frozen=True)
class ShowDefaults:
    """Defaults of ``deeptao show``; CLI flags are generated from these fields."""

    out: str | None = None
    max_images: int | None = 48
    ncols: int = 8


def show_object(
    obj: Any,
    out_png: str | Path | None = None,
    max_images: int | None = ShowDefaults.max_images,
    *,
    ncols: int = ShowDefaults.ncols,
) -> Path:
    """Save the cutouts of a :class:`deeptao.io.TaoObject` as a PNG and return its path.

    The default file name is the object's id with ``:`` (illegal on some file
    systems) replaced by ``_``, in the current directory.
    """
    if out_png is None:
        out_png = Path.cwd() / f"{str(obj.object_id).replace(':', '_')}.png"
    blank = np.asarray(getattr(obj, "blank", np.zeros(len(obj.mjd), dtype=bool)), dtype=bool)
    label = obj.label if obj.label is not None else "unlabelled"
    title = f"{obj.object_id} — {label}"
    if blank.any():
        title += f", {int(blank.sum())} blank"
    fig = plot_object(obj.images, obj.mjd, title=title, max_images=max_images, ncols=ncols, blank=blank)
    return _save(fig, out_png)


def plot_sample_images(
    objects: Mapping[str, tuple[str, np.ndarray, np.ndarray]],
    out_png: str | Path,
    n_per_object: int = 4,
) -> Path:
    """One row per class: a few cutouts of one object, spread over its time range.

    ``objects`` maps a class name to ``(object_id, images, mjd)``.
    """
    if not objects:
        raise ValueError("no objects to plot")
    if n_per_object <= 0:
        raise ValueError(f"n_per_object must be positive, got {n_per_object}")
    nrows = len(objects)
    fig = _new_figure(1.9 * n_per_object + 0.6, 2.05 * nrows)
    axes = fig.subplots(nrows, n_per_object, squeeze=False)
    for row, (cls, (object_id, images, mjd)) in enumerate(objects.items()):
        images = np.asarray(images)
        mjd = np.asarray(mjd, dtype=np.float64)
        if images.ndim != 3 or len(images) != len(mjd):
            raise ValueError(f"class {cls}: images must be (n, h, w) with one MJD each; got {images.shape}, {mjd.shape}")
        order = np.argsort(mjd, kind="stable")
        chosen = order[_spread_indices(len(order), n_per_object)]
        for col in range(n_per_object):
            ax = axes[row, col]
            if col >= len(chosen):
                ax.set_axis_off()
                continue
            idx = chosen[col]
            _show_cutout(ax, images[idx])
            ax.set_title(f"{object_id}\nMJD {mjd[idx]:.3f}", fontsize=6.5)
        axes[row, 0].set_ylabel(cls, fontsize=11, rotation=0, ha="right", va="center")
        if len(chosen) == 0:  # keep the class label visible on an empty row
            axes[row, 0].set_axis_on()
            axes[row, 0].set_xticks([])
            axes[row, 0].set_yticks([])
    return _save(fig, out_png)


# ----------------------------------------------------------- training curves

_TRAIN_LOSS = ("train_loss_epoch", "train_loss")
_VAL_LOSS = ("val_loss_epoch", "val_loss")
_VAL_F1 = ("val_macro_f1", "val_macro_f1_epoch", "val_f1_macro", "val_f1")


def _epoch_series(frame: pd.DataFrame, candidates: Sequence[str], xcol: str) -> pd.Series | None:
    """The last logged value per epoch of the first column present.

    CSVLogger writes one row per logging call with the other metrics NaN, so
    the rows of a column are scattered; dropping NaN first collects them.
    """
    for col in candidates:
        if col in frame.columns:
            values = frame[[xcol, col]].apply(pd.to_numeric, errors="coerce").dropna()
            if not values.empty:
                return values.groupby(xcol, sort=True)[col].last()
    return None


def _read_logs(paths: str | Path | Sequence[str | Path], name: str) -> pd.DataFrame | None:
    """One run's logs; a resumed run has several ``version_*/metrics.csv``, read in the order given."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frames = []
    for path in map(Path, paths):
        try:
            frames.append(pd.read_csv(path))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            warnings.warn(f"{path}: cannot read training log ({type(exc).__name__}); skipped for run {name!r}", stacklevel=3)
    return pd.concat(frames, ignore_index=True) if frames else None


def plot_training_curves(
    metrics_csv_paths: Mapping[str, str | Path | Sequence[str | Path]], out_png: str | Path
) -> Path:
    """Train/validation loss and validation macro F1 per epoch, one colour per run.

    Each run maps to a Lightning ``CSVLogger`` ``metrics.csv``, or to a list
    of them for a resumed run. Missing files or columns are warned about and
    skipped, because a report should still be drawn for the runs that did log.
    """
    fig = _new_figure(11.0, 4.0)
    ax_loss, ax_f1 = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(metrics_csv_paths))]
    drew = False
    for colour, (name, path) in zip(colours, metrics_csv_paths.items(), strict=True):
        frame = _read_logs(path, name)
        if frame is None:
            continue
        xcol = next((c for c in ("epoch", "step") if c in frame.columns), None)
        if xcol is None:
            frame = frame.assign(_row=np.arange(len(frame)))
            xcol = "_row"
        series = {
            "train loss": (ax_loss, "-", _epoch_series(frame, _TRAIN_LOSS, xcol)),
            "val loss": (ax_loss, "--", _epoch_series(frame, _VAL_LOSS, xcol)),
            "val macro F1": (ax_f1, "-", _epoch_series(frame, _VAL_F1, xcol)),
        }
        found = [k for k, (_, _, s) in series.items() if s is not None]
        if not found:
            warnings.warn(f"{path}: no loss or macro F1 columns; run {name!r} skipped", stacklevel=2)
            continue
        for what, (ax, style, s) in series.items():
            if s is not None:
                ax.plot(s.index, s.to_numpy(), style, color=colour, marker=".", label=f"{name} {what}")
                drew = True
    ax_loss.set_title("loss")
    ax_f1.set_title("validation macro F1")
    for ax in (ax_loss, ax_f1):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    ax_f1.set_ylim(0, 1)
    if not drew:
        ax_loss.text(0.5, 0.5, "no training logs", ha="center", va="center", transform=ax_loss.transAxes)
    return _save(fig, out_png)
