"""``deeptao replicate``: the study end to end, with an honest split, in one resumable run.

Stages, each skipped when its output is already in the run folder, so an
interrupted run picks up where it stopped (a model stage only when it was
made with the same settings, see :func:`_stage_settings`; otherwise it is
fitted again):

1. the data: the release at ``data``, or the embedded demo survey simulated into ``RUN/survey``;
2. the cache (``RUN/cache``, see :mod:`deeptao.data.cache`);
3. per seed, a split by object group (``split.csv`` for the first seed,
   ``split-seed{N}.csv`` for the others), and for seed-cnn on the first seed
   also the leaky image split that the public replication used, to measure the
   leakage;
4. per task, model, split protocol and seed, a fit on train (validation
   steering model selection) and predictions on test, in ``RUN/models/<stage>/``;
   several stages at once (``jobs``), each in a worker process with its share of torch's threads;
5. the scores (mean ± std over seeds and a bootstrap interval), figures and
   ``report.md``.

By default seed-cnn, taonet, taonet-lc and lc-rf run on the six-class task,
and taonet and lc-rf (the published TAO-Net comparison) also on the five
transient classes, each with three seeds: one split and one training run
tell little on a hundred test objects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeptao import CLASSES
from deeptao._options import option

__all__ = ["ReplicateOptions", "replicate", "DEMO_SURVEY"]

#: The embedded demo survey, what ``replicate`` simulates when given no data. Its magnitudes
#: come from the built-in quantiles, never from a catalogue found nearby, so that every
#: machine simulates the same survey.
DEMO_SURVEY = {"objects_per_class": 100, "seed": 2024, "catalogue_path": "built-in"}


@dataclass
class ReplicateOptions:
    """Defaults of ``deeptao replicate``; the command-line flags are generated from these fields."""

    data: Path | None = option("release root holding TAO_transients and TAO_non-transients (default: simulate the demo survey)", default=None)
    tasks: tuple[str, ...] = option("classification tasks (the image split runs on the first only)", default=("6class", "5class"), choices=("6class", "5class", "binary"))
    models: tuple[str, ...] = option("models to train on the first task", default=("seed-cnn", "taonet", "taonet-lc", "lc-rf"))
    other_task_models: tuple[str, ...] = option("models to train on the tasks after the first (default: those of the published TAO-Net comparison)", default=("taonet", "lc-rf"))
    split: str = option("object (honest), image (the leaky protocol, seed-cnn only) or both", default="both", choices=("object", "image", "both"))
    seeds: int = option("repeat with this many seeds (split and training); reports mean ± std and a bootstrap interval", default=3)
    image_split_seeds: int = option("seeds of the leaky image split (a measurement of leakage, not a model to compare)", default=1)
    max_objects: int | None = option("train on at most this many objects per model (small machines)", default=None)
    max_epochs: int | None = option("epochs per network (default: each model's own)", default=None)
    max_minutes: float | None = option("wall-clock cap per network fit, in minutes (makes runs machine-dependent)", default=None)
    precision: str = option("network compute precision: auto (bfloat16 where the CPU or GPU supports it), 32 (float32 everywhere, for scores and times comparable across machines) or bf16", default="auto", choices=("auto", "32", "bf16"))
    objects_per_class: int = option("demo survey: objects per class", default=DEMO_SURVEY["objects_per_class"])
    survey_seed: int = option("demo survey: simulation seed", default=DEMO_SURVEY["seed"])
    workers: int | None = option("processes for simulate, prepare and features (default: all CPUs)", default=None)
    jobs: int | None = option("model stages fitted at once, each in a process of its own with an equal share of torch's threads (default: one per core, at most 4; 1 fits them one after another in this process)", default=None)
    early_nights: tuple[int, ...] = option("early classification: also score the 6-class test objects cut to their first k nights, for each k (0: all nights)", default=(1, 2, 4, 8, 16, 0))


#: the models with a torch network in them: the network limits reach them, and their scores depend on the thread count
_WITH_NETWORK = ("seed-cnn", "taonet", "taonet-lc", "taonet+rf")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def replicate(out: str | os.PathLike[str], options: ReplicateOptions | None = None, *, command: str = "") -> Path:
    """Run the whole study into ``out`` and return the path of ``report.md``.

    With more than one job (the default on a machine with several cores) the
    model stages are fitted in worker processes started afresh ("spawn"), which
    import the calling script again: from a script, call this under
    ``if __name__ == "__main__":``, or pass ``jobs=1``.
    """
    from deeptao.data.cache import open_cache, prepare
    from deeptao.data.splits import split_cache, write_split
    from deeptao.data.tasks import select_task
    from deeptao.evaluation import EARLY_PREDICTIONS_FILE, evaluate_run, save_predictions, validate_early_predictions
    from deeptao.report import ReportContext, write_report

    opts = options or ReplicateOptions()
    _check(opts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    simulated = opts.data is None
    root = _demo_survey(out / "survey", opts) if simulated else Path(opts.data)  # type: ignore[arg-type]
    _log(f"preparing {root} -> {out / 'cache'}")
    prep = prepare(root, out / "cache", workers=opts.workers)
    if prep.bad_files:
        _log(f"skipped {len(prep.bad_files)} bad files (see {out / 'cache' / 'bad_files.csv'})")
    if prep.warnings:
        _log(f"left out {len(prep.warnings)} images, rows or cards of kept files (see {out / 'cache' / 'warnings.csv'})")
    if prep.n_non_without_parent:
        _log(f"{prep.n_non_without_parent} NON objects name a parent CRTS_ID that no transient here has")
    cache = open_cache(out / "cache")
    tasks = [select_task(name, cache.labels_array()) for name in opts.tasks]
    task = tasks[0]
    for name, t in zip(opts.tasks, tasks, strict=True):
        _log(f"{len(t.rows)} objects, {int(cache.objects['n_images'].iloc[t.rows].sum())} images for task {name}")
    _prepare_inputs(cache, opts)

    split_modes = {"object": ("object",), "image": ("image",), "both": ("object", "image")}[opts.split]
    stages: list[_Stage] = []
    split_sizes: dict[str, dict[str, dict[str, int]]] = {}
    for seed in range(opts.seeds):
        object_split, _ = split_cache(cache, mode="object", seed=seed)
        suffix = "" if seed == 0 else f"-seed{seed}"
        if "object" in split_modes:
            write_split(out, cache, object_split, name=f"split{suffix}.csv")
        image_split = None
        if "image" in split_modes and "seed-cnn" in opts.models and seed < opts.image_split_seeds:
            _, image_split = split_cache(cache, mode="image", seed=seed)
        if seed == 0:
            split_sizes = _split_sizes(cache, task, object_split if "object" in split_modes else None, image_split)
        for k, task_name in enumerate(opts.tasks):
            for model in opts.models if k == 0 else opts.other_task_models:
                for mode in split_modes:
                    if mode == "image" and (model != "seed-cnn" or k > 0 or image_split is None):
                        continue
                    tag = "" if k == 0 else f"-{task_name}"
                    early = tuple(opts.early_nights) if (k == 0 and mode == "object") else ()
                    folder = out / "models" / f"{model}-{mode}{tag}-seed{seed}"
                    stages.append(_Stage(folder, task_name, model, mode, seed, object_split, image_split, early))

    tasks_by_name = dict(zip(opts.tasks, tasks, strict=True))
    threads = _threads_per_stage(opts)
    to_fit = [st for st in stages if not _reusable(st, _stage_settings(cache, tasks_by_name[st.task_name], opts, st, threads))]
    _fit_stages(to_fit, cache, tasks_by_name, opts, threads)
    predictions_done = [pd.read_parquet(st.folder / PREDICTIONS_FILE) for st in stages]
    early_done = [pd.read_parquet(st.folder / EARLY_PREDICTIONS_FILE) for st in stages if (st.folder / EARLY_PREDICTIONS_FILE).is_file()]
    save_predictions(pd.concat(predictions_done, ignore_index=True), out)
    if early_done:
        early_table = validate_early_predictions(pd.concat(early_done, ignore_index=True))
        early_table.to_parquet(out / (EARLY_PREDICTIONS_FILE + ".tmp"), index=False)
        os.replace(out / (EARLY_PREDICTIONS_FILE + ".tmp"), out / EARLY_PREDICTIONS_FILE)
    _log("scoring")
    from deeptao.plotting import plot_run_figures

    plot_run_figures(evaluate_run(out), out)
    _figures(out, cache, task)
    context = ReportContext(
        command=command,
        data_root=str(root),
        simulated=simulated,
        objects_per_class=_per_class(cache, task.rows, "objects"),
        images_per_class=_per_class(cache, task.rows, "images"),
        split_sizes=split_sizes,
        seeds=list(range(opts.seeds)),
        notes=[f"total wall time {time.perf_counter() - started:.0f} s on this machine"]
        + [f"model stages fitted {_jobs(opts)} at a time, each network on {threads} torch thread{'s' * (threads > 1)} (scores depend on it)"]
        + ([f"demo survey: {opts.objects_per_class} objects per class, simulation seed {opts.survey_seed}"] if simulated else []),
    )
    context.save(out / "context.json")
    report = write_report(out, context=context)
    _log(f"done in {time.perf_counter() - started:.0f} s: {report}")
    return report


def _check(opts: ReplicateOptions) -> None:
    from deeptao.data.tasks import TASKS
    from deeptao.models import list_models

    if not opts.tasks:
        raise ValueError("no task given")
    for task in opts.tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    if len(set(opts.tasks)) != len(opts.tasks):
        raise ValueError(f"tasks repeat: {' '.join(opts.tasks)}")
    known = list_models()
    for model in (*opts.models, *opts.other_task_models):
        if model not in known:
            raise ValueError(f"unknown model {model!r}; known models: {', '.join(known)}")
    if opts.split not in ("object", "image", "both"):
        raise ValueError(f"split must be object, image or both, got {opts.split!r}")
    if opts.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {opts.seeds}")
    if opts.jobs is not None and opts.jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {opts.jobs}")
    if opts.image_split_seeds < 0:
        raise ValueError(f"image_split_seeds must be >= 0, got {opts.image_split_seeds}")
    bad = [k for k in opts.early_nights if not isinstance(k, int) or k < 0]
    if bad or len(set(opts.early_nights)) != len(opts.early_nights):
        raise ValueError(f"early_nights must be distinct ints >= 0 (0: all nights), got {' '.join(map(str, opts.early_nights))}")


def _demo_survey(folder: Path, opts: ReplicateOptions) -> Path:
    """Simulate the demo survey once; a marker written last makes a half-written one redo."""
    from deeptao.simulate import SurveyConfig, simulate_survey

    marker = folder / ".deeptao-complete.json"
    wanted = {"objects_per_class": opts.objects_per_class, "seed": opts.survey_seed, "priors": DEMO_SURVEY["catalogue_path"]}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        _log(f"demo survey already in {folder}")
        return folder
    _log(f"simulating the demo survey ({opts.objects_per_class} objects per class) into {folder}")
    t = time.perf_counter()
    config = SurveyConfig(catalogue_path=DEMO_SURVEY["catalogue_path"])
    simulate_survey(folder, objects_per_class=opts.objects_per_class, seed=opts.survey_seed, config=config, workers=opts.workers or os.cpu_count() or 1, overwrite=True)
    marker.write_text(json.dumps(wanted))
    _log(f"simulated in {time.perf_counter() - t:.0f} s")
    return folder


def _model_kwargs(model: str, opts: ReplicateOptions) -> dict[str, Any]:
    """The network limits of ``opts`` as parameters of ``model`` (of its network, for taonet+rf)."""
    if model not in _WITH_NETWORK:
        return {}
    kw: dict[str, Any] = {"max_epochs": opts.max_epochs, "max_objects": opts.max_objects, "precision": opts.precision}
    if opts.max_minutes:
        total = int(opts.max_minutes * 60)
        kw["max_time"] = f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    if model == "taonet+rf":
        return {"network_params": {k: v for k, v in kw.items() if v is not None}}
    return kw


def _prepare_inputs(cache: Any, opts: ReplicateOptions) -> None:
    """Compute, once, what the models read from the cache beyond the images (features, nightly co-adds)."""
    from deeptao.models import create_model

    workers = opts.workers or os.cpu_count() or 1
    models = list(opts.models) + (list(opts.other_task_models) if len(opts.tasks) > 1 else [])
    for model in dict.fromkeys(models):
        t = time.perf_counter()
        create_model(model).prepare_inputs(cache, workers=workers)
        if time.perf_counter() - t > 1:
            _log(f"{model}: inputs ready in {time.perf_counter() - t:.0f} s")


@dataclass(frozen=True)
class _Stage:
    """One model stage: a model fitted under one split protocol, task and seed, in its own folder."""

    folder: Path
    task_name: str
    model: str
    mode: str
    seed: int
    object_split: np.ndarray
    image_split: np.ndarray | None
    early_nights: tuple[int, ...] = ()


def _thread_budget() -> int:
    """The threads the stages share: torch's own count (the physical cores, or ``OMP_NUM_THREADS``)."""
    import torch

    return torch.get_num_threads()


def _jobs(opts: ReplicateOptions) -> int:
    return opts.jobs if opts.jobs else min(_MAX_DEFAULT_JOBS, _thread_budget())


def _threads_per_stage(opts: ReplicateOptions) -> int:
    """torch threads of each stage: :func:`_thread_budget` shared equally among the stages fitted at once.

    It depends on the options and the machine only, never on how many stages are
    left, so a resumed run fits its remaining stages as an uninterrupted one
    would have (float32 sums, and so a network's scores, depend on the thread count).
    """
    return max(1, _thread_budget() // _jobs(opts))


#: the default number of stages fitted at once, whatever the number of cores: each holds
#: its own copy of the model's inputs, and small networks gain little from more threads
_MAX_DEFAULT_JOBS = 4


def _reusable(stage: _Stage, settings: dict[str, Any]) -> bool:
    """Whether ``stage`` was already fitted under ``settings``; if not, clear it and record them for the fit to come.

    The settings are written before the fit, so an interrupted fit resumes (its
    checkpoints kept) only under the same settings.
    """
    recorded = stage.folder / STAGE_SETTINGS_FILE
    if stage.folder.exists():
        try:
            before = json.loads(recorded.read_text())
        except (OSError, ValueError):  # missing, or cut short by a crash: of unknown provenance
            before = None
        if before == settings and (stage.folder / PREDICTIONS_FILE).exists():
            _log(f"{stage.folder.name}: already done")
            return True
        if before != settings:
            changed = "no readable record of its settings" if not isinstance(before, dict) else "changed " + ", ".join(k for k in settings if before.get(k) != settings[k])
            _log(f"{stage.folder.name}: {changed}; fitting it again")
            shutil.rmtree(stage.folder)
    stage.folder.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(settings, indent=1))
    return False


def _fit_stages(stages: list[_Stage], cache: Any, tasks: dict[str, Any], opts: ReplicateOptions, threads: int) -> None:
    """Fit ``stages``, several at once in worker processes when ``jobs`` allows, else here one after another.

    Every stage runs with ``threads`` torch threads, in this process (put back
    after it) or in a worker. A failed stage stops the others; the ones that
    finished keep their predictions, the rest resume from their checkpoints on
    the next run. The longest kinds of fit start first, so that no long one is
    left alone at the end; the order changes nothing in a stage's results.
    """
    jobs = min(_jobs(opts), len(stages))
    if jobs <= 1:
        for stage in stages:
            with _torch_threads(threads):
                _fit_stage(stage, cache, tasks[stage.task_name], opts)
        return
    import logging
    import multiprocessing

    epoch_lines = logging.getLogger("deeptao.training").isEnabledFor(logging.INFO) and logging.getLogger("deeptao").hasHandlers()
    order = sorted(stages, key=lambda st: -_RELATIVE_COST.get((st.model, st.mode), 1))
    _log(f"fitting {len(stages)} stages, {jobs} at a time, {threads} thread{'s' * (threads > 1)} each")
    pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_start_worker, initargs=(threads, epoch_lines))
    try:
        pending = [pool.apply_async(_fit_stage_in_worker, (st, str(cache.root), opts)) for st in order]
        while pending:
            pending[0].wait(1.0)
            for job in [j for j in pending if j.ready()]:
                pending.remove(job)
                job.get()  # raises a stage's error here
        pool.close()
    finally:
        pool.terminate()
        pool.join()


#: how long a kind of stage takes next to a taonet fit (for the order of fitting only; measured on the demo survey)
_RELATIVE_COST = {("seed-cnn", "image"): 2.5, ("seed-cnn", "object"): 2.0, ("lc-rf", "object"): 0.1}

#: in a worker process only: the handler of its epoch lines, whose format names the stage being fitted
_WORKER_LOG: dict[str, Any] = {}


def _start_worker(threads: int, epoch_lines: bool) -> None:
    """Set up a worker process of :func:`_fit_stages`: its thread count, its log lines; Ctrl-C is the parent's to handle."""
    import logging
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    if epoch_lines:
        handler = logging.StreamHandler()
        logger = logging.getLogger("deeptao")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        _WORKER_LOG["handler"] = handler


def _fit_stage_in_worker(stage: _Stage, cache_path: str, opts: ReplicateOptions) -> None:
    import logging

    from deeptao.data.cache import open_cache
    from deeptao.data.tasks import select_task

    handler = _WORKER_LOG.get("handler")
    if handler is not None:
        handler.setFormatter(logging.Formatter(f"[%(asctime)s] {stage.folder.name}: %(message)s", datefmt="%H:%M:%S"))
    cache = open_cache(cache_path)
    _fit_stage(stage, cache, select_task(stage.task_name, cache.labels_array()), opts, in_worker=True)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads and put the caller's count back after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_stage(stage: _Stage, cache: Any, task: Any, opts: ReplicateOptions, *, in_worker: bool = False) -> None:
    """Fit one model under one split protocol and seed; its predictions on test go to ``stage.folder``.

    With ``stage.early_nights`` (object split), the test objects are also scored cut
    to their first k nights for each k (0: all), into ``early_predictions.parquet``.
    A forest's ``n_jobs`` (which changes none of its results) is 1 in a worker process.
    """
    from deeptao.evaluation import make_predictions
    from deeptao.models import create_model

    model, mode, seed, folder = stage.model, stage.mode, stage.seed, stage.folder
    t = time.perf_counter()
    kwargs = _model_kwargs(model, opts)
    if in_worker and "n_jobs" in create_model(model).get_params():
        # a worker is a daemon process: joblib runs it on one thread and warns at any other count
        kwargs["n_jobs"] = 1
    estimator = create_model(model, **kwargs)
    object_ids = cache.objects["object_id"].to_numpy()
    y_all = np.full(len(cache), -1, dtype=np.int64)
    y_all[task.rows] = task.y
    common = dict(model=model, split=mode, task=stage.task_name, seed=seed)
    if mode == "object":
        from deeptao.experiment import fit_on_split, test_predictions

        part = stage.object_split[task.rows]
        _log(f"{folder.name}: fitting on {int((part == 'train').sum())} objects (validation {int((part == 'val').sum())}, test {int((part == 'test').sum())} held out)")
        test = fit_on_split(estimator, cache, task, stage.object_split, seed=seed, workdir=folder)["test"]
        frame = test_predictions(estimator, cache, task, test, **common)
        if stage.early_nights:
            proba = frame.loc[frame["level"] == "object", [f"prob_{c}" for c in estimator.classes_]].to_numpy()
            _early_stage(cache, estimator, test, object_ids[test], y_all[test], proba, stage.early_nights, common, folder)
    else:
        owner = cache.images["object"].to_numpy()
        in_task = y_all[owner] >= 0
        rows = {name: np.flatnonzero(in_task & (stage.image_split == name)) for name in ("train", "val", "test")}
        _log(f"{folder.name}: fitting on {len(rows['train'])} random images (leaky protocol; test {len(rows['test'])} images)")
        estimator.fit_images(cache, rows["train"], y_all[owner[rows["train"]]], classes=task.classes, val_image_rows=rows["val"], y_val=y_all[owner[rows["val"]]], seed=seed, workdir=folder)
        test = rows["test"]
        proba = estimator.predict_image_proba(cache, test)
        items = [f"{object_ids[o]}#{r}" for o, r in zip(owner[test], test, strict=True)]
        frame = make_predictions(level="image", items=items, y_true=y_all[owner[test]], proba=proba, classes=estimator.classes_, **common)
    if hasattr(estimator, "save"):
        estimator.save(folder / f"model{estimator.file_suffix}")
    tmp = folder / (PREDICTIONS_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, folder / PREDICTIONS_FILE)
    _log(f"{folder.name}: done in {time.perf_counter() - t:.0f} s")


#: what a model stage was made with, beside its predictions
STAGE_SETTINGS_FILE = "stage.json"
#: a model stage's predictions on its test part, written last
PREDICTIONS_FILE = "predictions.parquet"


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).astype(str).tobytes() if a.dtype.kind in "OUS" else np.ascontiguousarray(a).tobytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _stage_settings(cache: Any, task: Any, opts: ReplicateOptions, stage: _Stage, threads: int) -> dict[str, Any]:
    """Everything a model stage's predictions depend on, as JSON: a stage is reused only when all of it is unchanged.

    The cache enters through :attr:`~deeptao.data.cache.PreparedCache.content_id`,
    the split through a digest of its labels, so a stage fitted on another survey, another split or
    with other network limits is never mistaken for this one.
    """
    from deeptao import __version__

    split = stage.object_split if stage.mode == "object" else stage.image_split
    settings = {
        "deeptao_version": __version__,
        "model": stage.model,
        "model_params": _model_kwargs(stage.model, opts),
        "task": [str(c) for c in task.classes],
        "task_objects": _digest(task.rows, task.y),
        "split": stage.mode,
        "split_digest": _digest(np.asarray(split)) if split is not None else None,
        "seed": stage.seed,
        "early_nights": list(stage.early_nights),
        "cache": cache.content_id,
    }
    if stage.model in _WITH_NETWORK:
        settings["threads"] = threads  # float32 sums depend on it, and with them a network's scores
    return json.loads(json.dumps(settings))  # as it reads back from the file


def _early_stage(
    cache: Any,
    estimator: Any,
    rows: np.ndarray,
    items: np.ndarray,
    y: np.ndarray,
    proba_all: np.ndarray,
    early_nights: tuple[int, ...],
    common: dict[str, Any],
    stage: Path,
) -> None:
    """Score the test objects as known after their first k nights (early classification)."""
    from deeptao.evaluation import EARLY_PREDICTIONS_FILE, make_predictions
    from deeptao.io import first_nights, sequence_nights
    from deeptao.models.calibration import temperatures_of

    mjd = cache.images["mjd"].to_numpy(np.float64)
    starts = cache.objects["image_start"].to_numpy(np.int64)
    counts = cache.objects["n_images"].to_numpy(np.int64)
    full = [(cache.object_images(int(r)), mjd[starts[r] : starts[r] + counts[r]]) for r in rows]
    frames = []
    for k in early_nights:
        if k == 0:
            proba, nights = proba_all, cache.night_counts(rows)
        else:
            cut = [first_nights(im, t, k) for im, t in full]
            proba, nights = estimator.predict_proba_arrays(cut), np.array([sequence_nights(im, t) for im, t in cut])
        temperature = temperatures_of(estimator, nights)
        frame = make_predictions(level="object", items=items, y_true=y, proba=proba, classes=estimator.classes_, temperature=temperature, **common)
        frames.append(frame.assign(nights=np.int64(k)))
    tmp = stage / (EARLY_PREDICTIONS_FILE + ".tmp")
    pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)
    os.replace(tmp, stage / EARLY_PREDICTIONS_FILE)


def _per_class(cache: Any, rows: np.ndarray, what: str) -> dict[str, int]:
    objects = cache.objects.iloc[rows]
    grouped = objects.groupby("label")["n_images"].agg("size" if what == "objects" else "sum")
    return {c: int(grouped[c]) for c in CLASSES if c in grouped.index}


def _split_sizes(cache: Any, task: Any, object_split: np.ndarray | None, image_split: np.ndarray | None) -> dict[str, dict[str, dict[str, int]]]:
    labels = cache.labels_array()
    sizes: dict[str, dict[str, dict[str, int]]] = {}
    if object_split is not None:
        frame = pd.DataFrame({"label": labels[task.rows], "split": object_split[task.rows]})
        sizes["object"] = {s: frame[frame.split == s].label.value_counts().to_dict() for s in ("train", "val", "test")}
    if image_split is not None:
        owner = cache.images["object"].to_numpy()
        keep = np.isin(owner, task.rows)
        frame = pd.DataFrame({"label": labels[owner[keep]], "split": image_split[keep]})
        sizes["image"] = {s: frame[frame.split == s].label.value_counts().to_dict() for s in ("train", "val", "test")}
    return {m: {s: {k: int(v) for k, v in d.items()} for s, d in parts.items()} for m, parts in sizes.items()}


def _figures(out: Path, cache: Any, task: Any) -> None:
    from deeptao.plotting import plot_sample_images, plot_training_curves

    labels = cache.labels_array()
    samples = {}
    for cls in CLASSES:
        rows = task.rows[labels[task.rows] == cls]
        if len(rows):
            i = int(rows[0])
            samples[cls] = (cache.objects["object_id"].iloc[i], np.asarray(cache.object_images(i)), cache.object_mjd(i))
    if samples:
        plot_sample_images(samples, out / "sample_images.png")
    curves = {}
    for stage in sorted((out / "models").glob("*")):
        logs = sorted(stage.rglob("metrics.csv"))
        if logs:
            curves[stage.name] = logs
    if curves:
        plot_training_curves(curves, out / "training_curves.png")
