"""The run report: what was run, what it scored, and how that compares with the literature.

``RUN/report.md`` is written from the run's predictions table, never from
numbers typed in by hand, so the leakage gap and every F1 in it can be
recomputed with ``deeptao evaluate``. The published numbers it compares with
are facts from the papers, kept below in :data:`ANCHORS`.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deeptao.evaluation import (
    BOOTSTRAP_REPLICATES,
    CI_LEVEL,
    CONFUSION_FILE,
    EARLY_FILE,
    EARLY_PREDICTIONS_FILE,
    ECE_BINS,
    RELIABILITY_FILE,
    STD_DDOF,
    TASK_CLASSES,
    Score,
    aggregate,
    display_order,
    early_scores,
    leakage_gaps,
    load_predictions,
    model_rank,
    score,
)

__all__ = [
    "Anchor",
    "ANCHORS",
    "ReportContext",
    "REPORT_FILE",
    "CONTEXT_FILE",
    "FIGURES",
    "write_report",
]

REPORT_FILE = "report.md"
CONTEXT_FILE = "context.json"
FIGURES = {
    CONFUSION_FILE: "Confusion matrices (colour: fraction of the true class; numbers: counts summed over seeds)",
    RELIABILITY_FILE: "Reliability diagrams, object split (dashed: before temperature scaling)",
    EARLY_FILE: "Early classification: test macro F1 from the first nights only",
    "sample_images.png": "Sample cutouts, one object per class",
    "training_curves.png": "Training curves",
}

_TASK_TITLES = {"6class": "6 classes", "5class": "5 transient classes", "binary": "transient vs non-transient"}
_PACKAGES = ("deeptao", "numpy", "torch", "lightning", "scikit-learn", "astropy", "fitsio", "pandas", "matplotlib")


# -------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class Anchor:
    """One published number and the setting of ours that it should be read against.

    ``value`` and ``std`` are fractions. ``cls`` is set for a per-class F1.
    ``task`` is our task used for the comparison; ``caveat`` says where the
    published setting differs from ours. ``model`` is our model of the same
    kind as the published one (its cell is the like-for-like comparison and
    is set in bold); every other model's number in the same setting is shown
    beside it for context.
    """

    source: str
    result: str
    task: str
    split: str
    value: float
    std: float | None = None
    cls: str | None = None
    caveat: str = ""
    model: str | None = None


ANCHORS: tuple[Anchor, ...] = (
    Anchor(
        "public replication",
        "CNN, images split at random",
        "6class",
        "image",
        0.9438,
        caveat="images of one object on both sides of the split",
        model="seed-cnn",
    ),
    Anchor(
        "TAO-Net paper", "TAO-Net (CNN + GRU on image sequences)", "5class", "object", 0.5458, 0.1332, model="taonet"
    ),
    Anchor("TAO-Net paper", "random forest on light curves", "5class", "object", 0.4549, 0.1375, model="lc-rf"),
    Anchor(
        "MANTRA paper",
        "random forest on light curves, transient vs non-transient",
        "binary",
        "object",
        0.9625,
        caveat="light curves from the CRTS catalogue, not these cutouts",
        model="lc-rf",
    ),
    Anchor(
        "MANTRA paper",
        "random forest on light curves, 8 classes",
        "6class",
        "object",
        0.5279,
        caveat="8 classes there, 6 here: not the same task",
        model="lc-rf",
    ),
    *(
        Anchor(
            "MANTRA paper (draft table)",
            f"random forest, per-class F1 {cls}",
            "6class",
            "object",
            value,
            cls=cls,
            caveat="per-class F1 from a different class set",
            model="lc-rf",
        )
        for cls, value in (
            ("SN", 0.501),
            ("CV", 0.688),
            ("AGN", 0.617),
            ("BZ", 0.479),
            ("OTHER", 0.365),
            ("NON", 0.871),
        )
    ),
)
"""Published results (Deep-TAO / TAO-Net and MANTRA papers, and one public replication)."""


# -------------------------------------------------------------------- context


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _machine() -> str:
    return f"{platform.node()} ({platform.platform()}, {os.cpu_count()} CPUs)"


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass
class ReportContext:
    """What the report needs to know beyond the predictions; filled by the run that made them.

    ``simulated`` is ``None`` when unknown, which the report states rather
    than guessing. ``split_sizes`` maps a split protocol (``object`` /
    ``image``) to a part (``train``/``val``/``test``) to a class to a count,
    counted in ``split_units[protocol]`` (objects or images).
    """

    command: str = ""
    data_root: str = ""
    simulated: bool | None = None
    date: str = field(default_factory=_now)
    machine: str = field(default_factory=_machine)
    versions: dict[str, str] = field(default_factory=_versions)
    objects_per_class: dict[str, int] = field(default_factory=dict)
    images_per_class: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    split_units: dict[str, str] = field(default_factory=lambda: {"object": "objects", "image": "images"})
    seeds: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Store as JSON beside the run, so that the report can be rebuilt later from its predictions."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReportContext:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable report context ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: report context must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown report context fields {unknown}")
        return cls(**data)


# ------------------------------------------------------------------ formatting


def _pct(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def _finite_mean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{_pct(mean)} ± {_pct(std)}" if math.isfinite(std) else _pct(mean)


def _ci(interval: tuple[float, float]) -> str:
    lo, hi = interval
    return f"[{_pct(lo)}, {_pct(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else ""


def _macro(s: Score) -> str:
    """Macro F1 as mean ± std over seeds, then the bootstrap interval when there is one."""
    return " ".join(part for part in (_pm(s.macro_f1, s.macro_f1_std), _ci(s.macro_f1_ci)) if part)


def _count(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _ordered_models(summary: Sequence[Score]) -> list[str]:
    return list(dict.fromkeys(s.model for s in display_order(summary)))


def _ordered_classes(*keys: Mapping[str, Any]) -> list[str]:
    seen = dict.fromkeys(c for t in TASK_CLASSES.values() for c in t)
    present = {c for k in keys for c in k}
    return [c for c in seen if c in present] + sorted(present - set(seen))


# -------------------------------------------------------------------- sections


def _section_run(ctx: ReportContext | None, run_dir: Path) -> list[str]:
    lines = ["## What was run", ""]
    if ctx is None:
        return lines + [
            f"No run context was recorded in `{run_dir}`; the tables below come from its predictions alone.",
            "",
        ]
    data_kind = {True: "simulated survey in the release's file format", False: "the Deep-TAO release", None: "not recorded"}
    items = [
        ("Command", f"`{ctx.command}`" if ctx.command else "not recorded"),
        ("Date", ctx.date),
        ("Machine", ctx.machine),
        ("Versions", ", ".join(f"{k} {v}" for k, v in ctx.versions.items()) or "not recorded"),
        ("Data root", f"`{ctx.data_root}`" if ctx.data_root else "not recorded"),
        ("Data", data_kind[ctx.simulated]),
        ("Seeds", ", ".join(str(s) for s in ctx.seeds) or "not recorded"),
    ]
    lines += [f"- **{k}:** {v}" for k, v in items]
    lines += [f"- {note}" for note in ctx.notes]
    lines.append("")

    if ctx.objects_per_class or ctx.images_per_class:
        classes = _ordered_classes(ctx.objects_per_class, ctx.images_per_class)
        rows = []
        for c in classes:
            n_obj, n_img = ctx.objects_per_class.get(c), ctx.images_per_class.get(c)
            ratio = _count(round(n_img / n_obj, 1)) if n_obj and n_img is not None else "—"
            rows.append([c, _count(n_obj) if n_obj is not None else "—", _count(n_img) if n_img is not None else "—", ratio])
        tot_obj, tot_img = sum(ctx.objects_per_class.values()), sum(ctx.images_per_class.values())
        rows.append(["**all**", _count(tot_obj), _count(tot_img), _count(round(tot_img / tot_obj, 1)) if tot_obj else "—"])
        lines += ["### Data", ""] + _table(["class", "objects", "images", "images per object"], rows) + [""]

    for protocol, parts in ctx.split_sizes.items():
        unit = ctx.split_units.get(protocol, "items")
        names = list(parts)
        classes = _ordered_classes(*parts.values())
        rows = [[c] + [_count(parts[p].get(c, 0)) for p in names] for c in classes]
        rows.append(["**all**"] + [_count(sum(parts[p].values())) for p in names])
        title = f"### {protocol.capitalize()} split ({unit} per class and part)"
        lines += [title, ""] + _table(["class"] + names, rows) + [""]
    return lines


def _setting_title(task: str, split: str, level: str) -> str:
    title = f"### {_TASK_TITLES.get(task, task)}: {split} split, {level} level"
    if split == "image":
        title += " (leaky)"
    return title


def _section_results(summary: Sequence[Score]) -> list[str]:
    lines = [
        "## Results",
        "",
        "F1 in %, per class and macro-averaged over the task's classes (a class never predicted counts as 0).",
        f"With several seeds each cell is mean ± sample standard deviation over seeds (ddof={STD_DDOF}).",
        f"Brackets give a {100 * CI_LEVEL:.0f} % percentile bootstrap interval of the seed-mean macro F1: the seeds' test",
        "objects resampled with replacement together (seeds share some; at image level an object's images move as one),",
        f"{BOOTSTRAP_REPLICATES} times; it shows how much the score owes to the particular test objects, which the spread",
        "over seeds does not. Balanced accuracy is the mean recall over",
        "the classes in the test set. PR-AUC is each class's average precision against the rest (how well the",
        "probabilities rank a rare class), averaged over the classes present.",
        "Object level: one prediction per object. Image level: one prediction per image. The image split puts",
        "images of one object on both sides, so its numbers measure memory as much as classification.",
        "",
    ]
    settings = sorted(
        {(s.task, s.split, s.level) for s in summary},
        key=lambda k: (list(TASK_CLASSES).index(k[0]), k[1] != "object", k[2] != "object"),
    )
    for task, split, level in settings:
        here = {s.model: s for s in summary if (s.task, s.split, s.level) == (task, split, level)}
        models = _ordered_models(list(here.values()))
        first = here[models[0]]
        classes = first.classes
        unit = "objects" if level == "object" else "images"
        rows = []
        for i, cls in enumerate(classes):
            n = first.support[i] / first.n_seeds
            rows.append([cls, _count(round(n, 1))] + [_pm(here[m].f1[i], here[m].f1_std[i]) for m in models])
        rows.append(["**macro F1**", ""] + [f"**{_macro(here[m])}**" for m in models])
        rows.append(
            ["balanced accuracy", ""] + [_pm(here[m].balanced_accuracy, here[m].balanced_accuracy_std) for m in models]
        )
        if level == "object":
            rows.append(["PR-AUC, mean over classes", ""] + [_pct(_finite_mean(here[m].pr_auc)) for m in models])
        rows.append(["spread over classes", ""] + [_pct(here[m].class_spread) for m in models])
        rows.append(["seeds", ""] + [str(here[m].n_seeds) for m in models])
        header = ["class", f"test {unit} per seed"] + models
        lines += [_setting_title(task, split, level), ""] + _table(header, rows) + [""]
    lines += [
        "'Spread over classes' is the sample standard deviation of the per-class F1 of the mean scores; published",
        "± figures may be of either kind, so both are given.",
        "",
    ]
    return lines


def _section_calibration(summary: Sequence[Score]) -> list[str]:
    runs = [s for s in summary if s.split == "object" and s.level == "object" and not math.isnan(s.ece)]
    if not runs:
        return []
    lines = [
        "## Calibration",
        "",
        f"Expected calibration error of the top class in % ({ECE_BINS} equal-width confidence bins, object split, mean",
        "over seeds): how far, on average, the predicted probability of the chosen class lies from how often it is",
        "right. Each model fits a temperature on its validation objects after training, one that grows for objects",
        "seen on fewer nights (T(n) = T exp(s / sqrt n)); 'before' is the same model without it (a prior shift, where",
        "one was chosen, stays in both). Arg-max and F1 do not change.",
        "",
    ]
    rows = [
        [s.model, _TASK_TITLES.get(s.task, s.task), _pct(s.ece_uncalibrated) if not math.isnan(s.ece_uncalibrated) else "not calibrated", _pct(s.ece)]
        for s in runs
    ]
    return lines + _table(["model", "task", "ECE before", "ECE as predicted"], rows) + [""]


def _section_early(run_dir: Path) -> list[str]:
    path = run_dir / EARLY_PREDICTIONS_FILE
    if not path.is_file():
        return []
    import pandas as pd

    curves = early_scores(pd.read_parquet(path))
    if not curves:
        return []
    cuts = sorted({e["nights"] for c in curves.values() for e in c}, key=lambda k: (k == 0, k))
    lines = [
        "## Early classification",
        "",
        "Test macro F1 in % (mean ± std over seeds) when each test object is cut to its first k nights, as a",
        "broker would see it; the models are the ones trained on whole sequences (object split).",
        "",
    ]
    scores, calibration = [], []
    for key, curve in sorted(curves.items(), key=lambda kv: model_rank(kv[0].split("/")[0])):
        by_k = {e["nights"]: e for e in curve}
        model, _split, task, _level = key.split("/")
        name = [model, _TASK_TITLES.get(task, task)]
        scores.append(name + [_pm(by_k[k]["macro_f1"], math.nan if by_k[k]["macro_f1_std"] is None else by_k[k]["macro_f1_std"]) if k in by_k else "" for k in cuts])
        calibration.append(name + [
            f"{_pct(by_k[k]['ece'])} ({by_k[k]['confidence']:.2f} / {by_k[k]['accuracy']:.2f})" if k in by_k and by_k[k]["ece"] is not None else ""
            for k in cuts
        ])  # fmt: skip
    header = ["model", "task"] + [("all nights" if k == 0 else f"{k} night" + ("s" if k > 1 else "")) for k in cuts]
    lines += _table(header, scores) + [""]
    lines += [
        "Calibration of the same predictions: expected calibration error of the top class in %, then its mean",
        "predicted probability against how often it is right (means over seeds). The temperature was fitted on",
        "validation objects whole and cut to their first 1, 2, 4, 8 and 16 nights; where the probability exceeds the",
        "accuracy, the model is overconfident that early.",
        "",
    ]
    return lines + _table(header, calibration) + [""]


def _section_leakage(summary: Sequence[Score]) -> list[str]:
    lines = ["## Leakage gap", ""]
    gaps = leakage_gaps(summary)
    if not gaps:
        return lines + [
            "No model was scored under both split protocols in this run, so the leakage gap was not measured.",
            "",
        ]
    lines += [
        "Macro F1 of the same model on the same data and at the same level, with images split at random",
        "minus with objects split by group. Only the split differs, so the gap is what leakage adds. Brackets: a",
        f"{100 * CI_LEVEL:.0f} % bootstrap interval of the gap, the objects both splits tested resampled together.",
        "",
    ]
    rows = [
        [
            g["model"],
            _TASK_TITLES.get(g["task"], g["task"]),
            g["level"],
            _pct(g["object_split_macro_f1"]),
            _pct(g["image_split_macro_f1"]),
            f"**{100 * g['gap']:+.2f}**" + ("" if g.get("gap_ci95") is None else f" [{100 * g['gap_ci95'][0]:+.2f}, {100 * g['gap_ci95'][1]:+.2f}]"),
        ]
        for g in gaps
    ]
    lines += _table(["model", "task", "level", "object split", "image split", "gap (points)"], rows, "lllrrr")
    return lines + [""]


def _ours_for(anchor: Anchor, model: str, by_key: Mapping[tuple[str, str, str, str], Score]) -> str:
    levels = ("image", "object") if anchor.split == "image" else ("object",)
    for level in levels:
        s = by_key.get((model, anchor.split, anchor.task, level))
        if s is None:
            continue
        if anchor.cls is None:
            value = _macro(s)
        elif anchor.cls in s.classes:
            i = s.classes.index(anchor.cls)
            value = _pm(s.f1[i], s.f1_std[i])
        else:
            continue
        return value + (" (image level)" if level == "image" else "")
    return "—"


def _section_anchors(summary: Sequence[Score], simulated: bool | None) -> list[str]:
    by_key = {s.key: s for s in summary}
    models = _ordered_models(summary)
    lines = [
        "## Comparison with published numbers",
        "",
        "Published F1 in % from the Deep-TAO / TAO-Net and MANTRA papers and from one public replication, beside",
        "ours in the closest setting (same task and split protocol; object level, or image level for the",
        "image-split replication where the model scores images). Our ± is over seeds, brackets the bootstrap",
        "interval of the macro F1. **Bold**: our model of the same kind as the published one; '—': that model",
        "was not scored in this setting.",
        "",
    ]
    if simulated:
        lines += ["*Simulated data: the 'ours' columns are a sanity check only, not a comparison.*", ""]
    rows = []
    for a in ANCHORS:
        published = _pm(a.value, a.std if a.std is not None else math.nan)
        setting = f"{_TASK_TITLES.get(a.task, a.task)}, {a.split} split"
        ours = []
        for m in models:
            cell = _ours_for(a, m, by_key)
            ours.append(f"**{cell}**" if m == a.model and cell != "—" else cell)
        rows.append([a.result, a.source, setting, published] + ours + [a.caveat])
    header = ["published result", "source", "our setting", "published"] + [f"ours: {m}" for m in models] + ["caveat"]
    lines += _table(header, rows, "lllr" + "r" * len(models) + "l")
    return lines + [""]


def _section_figures(run_dir: Path) -> list[str]:
    present = [(name, caption) for name, caption in FIGURES.items() if (run_dir / name).is_file()]
    if not present:
        return []
    lines = ["## Figures", ""]
    for name, caption in present:
        lines += [f"**{caption}:** [{name}]({name})", "", f"![{caption}]({name})", ""]
    return lines


def _banner(simulated: bool | None) -> list[str]:
    if simulated:
        return [
            "> **Simulated data.** Every number below comes from a simulated survey written in the Deep-TAO file",
            "> format, not from CRTS observations. It shows that the pipeline runs end to end and that the",
            "> evaluation exposes leakage; it says nothing about how well these models classify real transients.",
            "> Do not compare these numbers with the published ones except as a sanity check.",
            "",
        ]
    if simulated is None:
        return [
            "> It was not recorded whether this run used the real release or simulated data; read the numbers",
            "> with that in mind.",
            "",
        ]
    return []


# ---------------------------------------------------------------------- entry


def write_report(run_dir: str | Path, *, context: ReportContext | None = None) -> Path:
    """Write ``RUN/report.md`` from ``RUN/predictions.parquet`` and return its path.

    Without ``context``, ``RUN/context.json`` is used when present. Raises
    :class:`deeptao.evaluation.RunError` when the run has no predictions.
    """
    run_dir = Path(run_dir)
    predictions = load_predictions(run_dir)
    if context is None and (run_dir / CONTEXT_FILE).is_file():
        context = ReportContext.load(run_dir / CONTEXT_FILE)
    summary = aggregate(score(predictions))
    simulated = context.simulated if context is not None else None

    lines = ["# deeptao replication report", ""]
    lines += _banner(simulated)
    lines += _section_run(context, run_dir)
    lines += _section_results(summary)
    lines += _section_calibration(summary)
    lines += _section_early(run_dir)
    lines += _section_leakage(summary)
    lines += _section_anchors(summary, simulated)
    lines += _section_figures(run_dir)
    lines += [
        "---",
        f"Generated by deeptao from `{run_dir.name}/predictions.parquet`; `deeptao evaluate` on this folder",
        "recomputes the scores above (`metrics.json`, `f1_scores.csv`) from it.",
        "",
    ]
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines))
    return path

