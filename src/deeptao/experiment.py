"""``deeptao train``: one model fitted on one split of a prepared cache, from one resolved configuration.

A training is a :class:`TrainSpec`: the model, the cache, the task, the split
(a ``split.csv`` or a split seed), the output folder, and every constructor
parameter of the model. The model's constructor is the one typed source of
defaults; a configuration file (YAML, or TOML) overrides them and
command-line options override the file. :func:`dump_spec` writes the result
in the form :func:`resolve_spec` reads back to the same spec, so a printed
configuration is a complete record of a training.

The output folder, once a training has finished::

    config.yaml          the resolved configuration
    split.csv            the split used (object_id, group, split)
    logs/version_*/      training curves: metrics.csv, and TensorBoard events with logger: tensorboard
    last.ckpt, best.ckpt, fingerprint.json
                         Lightning's checkpoints: the same command resumes an interrupted training
    predictions.parquet  the test objects' predictions; metrics.json and f1_scores.csv score them
    model.pt | model.joblib
                         the fitted model, written last (``deeptao predict OUT`` reads it)

Every check of the configuration, the machine, the cache and the split runs
before anything is written, so a refused training leaves no folder that could
pass for a model. In a distributed training every process runs this same
code; only the main one writes files.

``deeptao replicate`` fits and scores each of its object-split stages through
:func:`fit_on_split` and :func:`test_predictions` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ConfigError",
    "TrainSpec",
    "TrainOutcome",
    "RUN_KEYS",
    "CONFIG_FILE",
    "model_parameters",
    "resolve_spec",
    "dump_spec",
    "check_devices",
    "train",
    "fit_on_split",
    "test_predictions",
]

#: what a configuration holds beside ``params`` (the model's constructor parameters)
RUN_KEYS = ("model", "cache", "out", "task", "seed", "split")
CONFIG_FILE = "config.yaml"


class ConfigError(ValueError):
    """A configuration or option names an unknown key or holds an unusable value; the message says which."""


@dataclass(frozen=True)
class TrainSpec:
    """Everything that makes one training: see the module's docstring.

    ``split`` None means a split by object group drawn with ``seed``
    (:func:`deeptao.data.splits.split_cache`); the training itself is
    seeded with ``seed`` either way.
    """

    model: str
    cache: Path
    out: Path
    task: str = "6class"
    seed: int = 0
    split: Path | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings, settings dataclasses as mappings), in the configuration's layout."""
        return {
            "model": self.model,
            "cache": str(self.cache),
            "out": str(self.out),
            "task": self.task,
            "seed": int(self.seed),
            "split": None if self.split is None else str(self.split),
            "params": {k: _plain(v) for k, v in self.params.items()},
        }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- parameters


def _default_estimator(model: str) -> Any:
    from deeptao.models import get_model_builder

    return get_model_builder(model)()


def model_parameters(model: str) -> dict[str, Any]:
    """Every constructor parameter of ``model`` with its default, in the constructor's order."""
    return dict(_default_estimator(model).get_params())


def _parameter_hints(cls: type) -> dict[str, Any]:
    """Type hints of the keyword parameters of ``cls`` and of the constructors it forwards to."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            hints.update({k: v for k, v in typing.get_type_hints(init).items() if k not in ("return", "kwargs")})
        except (NameError, TypeError):  # a hint that cannot be resolved is not checked
            continue
    return hints


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _coerce(name: str, value: Any, hint: Any, where: str) -> Any:
    """``value`` as parameter ``name`` takes it; ConfigError naming ``where`` if it is of no kind the hint allows."""
    if hint is None or hint is Any:
        return value
    kinds = _alternatives(hint)
    if value is None:
        if type(None) in kinds:
            return None
        raise ConfigError(f"{where}: {name} may not be empty")
    for kind in kinds:
        if kind is type(None):
            continue
        if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            try:
                return kind(**value)
            except TypeError as exc:
                raise ConfigError(f"{where}: {name}: {exc}") from None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind in (int, float) and isinstance(value, bool):
            continue
        if kind is Path and isinstance(value, str):
            return Path(value)
        if typing.get_origin(kind) is tuple and isinstance(value, list | tuple):
            return tuple(value)
        origin = typing.get_origin(kind) or kind
        if isinstance(origin, type) and isinstance(value, origin):
            return value
    allowed = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ConfigError(f"{where}: {name} must be {allowed}, got {value!r}")


# --------------------------------------------------------------------------- configuration files


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f"line {where.line + 1}: " if where is not None else ""
            raise ConfigError(f"{path}: not valid YAML ({line}{getattr(exc, 'problem', None) or exc})") from None
    else:
        raise ConfigError(f"{path}: a configuration is a .yaml, .yml or .toml file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a configuration is a mapping of keys to values, got {type(data).__name__}")
    return data


def resolve_spec(
    *,
    config: str | os.PathLike[str] | None = None,
    run: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> TrainSpec:
    """Model defaults, then the configuration file, then ``run`` and ``params`` (None values are unset).

    Parameters
    ----------
    config : path, optional
        A YAML (``.yaml``/``.yml``) or TOML (``.toml``) file holding any of
        :data:`RUN_KEYS` and a ``params`` mapping.
    run : mapping
        Values of :data:`RUN_KEYS` (the command line's).
    params : mapping
        Model parameters (the command line's trainer options).
    flags : mapping
        How each of ``params`` was spelt on the command line, for messages.

    Raises
    ------
    ConfigError
        For an unknown key, model, task or parameter, or a value the model
        refuses; one line naming where it came from.
    """
    path = None if config is None else Path(config)
    file = _read_config(path) if path is not None else {}
    where_file = str(path) if path is not None else ""
    unknown = sorted(set(file) - set(RUN_KEYS) - {"params"})
    if unknown:
        raise ConfigError(f"{where_file}: unknown key {unknown[0]!r}; a configuration holds {', '.join(RUN_KEYS)} and params")
    merged: dict[str, Any] = {k: file.get(k) for k in RUN_KEYS}
    merged.update({k: v for k, v in (run or {}).items() if v is not None})
    for key in ("model", "cache", "out"):
        if merged.get(key) in (None, ""):
            raise ConfigError(f"no {key}: give --{key} or '{key}:' in {where_file or 'a configuration file'}")

    from deeptao.data.tasks import DEFAULT_TASK, task_classes
    from deeptao.models import list_models

    model = str(merged["model"])
    if model not in list_models():
        raise ConfigError(f"unknown model {model!r}; known models: {', '.join(list_models())}")
    task = str(merged.get("task") or DEFAULT_TASK)
    try:
        task_classes(task)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    seed = _coerce("seed", merged.get("seed") if merged.get("seed") is not None else 0, int, where_file or "seed")

    default = _default_estimator(model)
    defaults = dict(default.get_params())
    hints = _parameter_hints(type(default))
    file_params = file.get("params") or {}
    if not isinstance(file_params, dict):
        raise ConfigError(f"{where_file}: params must be a mapping of {model}'s parameters")
    resolved = dict(defaults)
    given = [(k, v, f"{where_file}: params") for k, v in file_params.items()]
    given += [(k, v, (flags or {}).get(k, f"parameter {k}")) for k, v in (params or {}).items() if v is not None]
    for name, value, where in given:
        if name not in defaults:
            raise ConfigError(f"{where}: {model} has no parameter {name!r}; its parameters: {', '.join(defaults)}")
        resolved[name] = _coerce(name, value, hints.get(name), where)
    estimator = _build(model, resolved)
    check = getattr(estimator, "_check_params", None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            raise ConfigError(f"{model}: {exc}") from None
    split = merged.get("split")
    return TrainSpec(
        model=model,
        cache=Path(merged["cache"]),
        out=Path(merged["out"]),
        task=task,
        seed=int(seed),
        split=None if split in (None, "") else Path(split),
        params=resolved,
    )


def _build(model: str, params: Mapping[str, Any]) -> Any:
    """The estimator (the builder directly: ``create_model`` drops parameters set to None)."""
    from deeptao.models import get_model_builder

    try:
        return get_model_builder(model)(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{model}: {exc}") from None


def dump_spec(spec: TrainSpec) -> str:
    """The spec as YAML that :func:`resolve_spec` reads back unchanged."""
    import yaml

    header = "# deeptao train configuration; 'deeptao train --config THIS' repeats the training\n"
    return header + yaml.safe_dump(spec.as_dict(), sort_keys=False, default_flow_style=False)


def check_devices(params: Mapping[str, Any]) -> None:
    """Refuse more devices than this machine has (GPUs for a GPU accelerator, else CPU cores) in one line.

    Only this machine's devices can be counted: ``num_nodes`` is taken on trust.
    """
    devices = params.get("devices")
    if devices is None:
        return
    accelerator = str(params.get("accelerator", "auto"))
    import torch

    from deeptao.training import uses_gpu

    if uses_gpu(accelerator):
        available, kind = torch.cuda.device_count(), "GPU"
        if available == 0:
            raise ConfigError(f"accelerator {accelerator}: this machine has no GPU")
    elif accelerator == "cpu" or accelerator == "auto":
        available, kind = os.cpu_count() or 1, "CPU core"
    else:
        raise ConfigError(f"accelerator must be auto, cpu or gpu, got {accelerator!r}")
    if devices > available:
        raise ConfigError(f"devices {devices}: this machine has {available} {kind}{'s' if available != 1 else ''}")


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainOutcome:
    """What :func:`train` left in ``out``; files are None in a process that is not the main one."""

    out: Path
    model_file: Path | None
    predictions: Path | None
    main_process: bool
    objects: Mapping[str, int]
    test_macro_f1: float | None
    seconds: float


def _log_to(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    return log


def _check_out(out: Path, config_text: str) -> None:
    """``out`` is new, empty, or a folder of this very training (resume); anything else is refused."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    config = out / CONFIG_FILE
    if config.is_file():
        if config.read_text() != config_text:
            raise ConfigError(f"{out}: holds another training ({CONFIG_FILE} differs); choose another --out or remove it")
        return
    if any(out.iterdir()):
        raise ConfigError(f"{out}: not empty and not a training folder (no {CONFIG_FILE})")


@contextlib.contextmanager
def _inputs_lock(cache_root: Path) -> Iterator[None]:
    """Hold the cache's lock while its derived inputs are built: one process builds, the others wait, then read them.

    The processes of a ``torchrun`` or ``srun`` launch, and trainings started
    side by side, all start at once. Without a lockable file (a read-only
    cache, a system without ``fcntl``) the inputs must already be built.
    """
    try:
        import fcntl

        handle = open(cache_root / ".inputs.lock", "a")  # noqa: SIM115 - held open for the lock's lifetime
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rows_by_part(task_rows: np.ndarray, object_split: np.ndarray) -> dict[str, np.ndarray]:
    """The task's cache rows in each part of the split; a split with no training object is refused."""
    part = np.asarray(object_split)[task_rows]
    rows = {name: task_rows[part == name] for name in ("train", "val", "test")}
    if not len(rows["train"]):
        raise ConfigError("the split leaves no training object for this task")
    return rows


def fit_on_split(
    estimator: Any, cache: Any, data: Any, object_split: np.ndarray, *, seed: int, workdir: Path
) -> dict[str, np.ndarray]:
    """Fit ``estimator`` on the training objects of task ``data`` (a :class:`~deeptao.data.tasks.TaskData`), validation steering it; the rows of each part.

    The test rows are returned for scoring and never reach the fit.
    """
    rows = _rows_by_part(data.rows, object_split)
    y_all = np.full(len(cache), -1, dtype=np.int64)
    y_all[data.rows] = data.y
    estimator.fit(
        cache, rows["train"], y_all[rows["train"]], classes=data.classes,
        val_rows=rows["val"], y_val=y_all[rows["val"]], seed=seed, workdir=workdir,
    )  # fmt: skip
    return rows


def test_predictions(estimator: Any, cache: Any, data: Any, test_rows: np.ndarray, **run: Any) -> pd.DataFrame:
    """Object-level predictions of the test objects of task ``data`` (and image-level ones for an image model), as a predictions table.

    ``run`` holds the table's ``model``, ``split``, ``task`` and ``seed``.
    """
    from deeptao.evaluation import make_predictions

    object_ids = cache.objects["object_id"].to_numpy()
    y_all = np.full(len(cache), -1, dtype=np.int64)
    y_all[data.rows] = data.y
    from deeptao.models.calibration import temperatures_of

    proba = estimator.predict_proba(cache, test_rows)
    temperature = temperatures_of(estimator, cache.night_counts(test_rows))
    frames = [
        make_predictions(
            level="object", items=object_ids[test_rows], y_true=y_all[test_rows], proba=proba,
            classes=estimator.classes_, temperature=temperature, **run,
        )
    ]  # fmt: skip
    if getattr(estimator, "image_level", False) and len(test_rows):
        starts = cache.objects["image_start"].to_numpy()[test_rows]
        counts = cache.objects["n_images"].to_numpy()[test_rows]
        image_rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, counts, strict=True)]).astype(np.int64)
        owners = np.repeat(test_rows, counts)
        image_proba = estimator.predict_image_proba(cache, image_rows)
        items = [f"{object_ids[o]}#{r}" for o, r in zip(owners, image_rows, strict=True)]
        frames.append(
            make_predictions(level="image", items=items, y_true=y_all[owners], proba=image_proba, classes=estimator.classes_, **run)
        )
    return pd.concat(frames, ignore_index=True)


def train(spec: TrainSpec, *, quiet: bool = False) -> TrainOutcome:
    """Run the training ``spec`` describes into ``spec.out``; see the module's docstring for the files.

    Raises
    ------
    ConfigError
        For a machine without the devices asked for, a split that does not
        fit the cache, or an output folder holding something else.
    deeptao.data.cache.CacheError
        If ``spec.cache`` is not a prepared cache.
    """
    from deeptao.data.cache import open_cache
    from deeptao.data.splits import read_split, split_cache, write_split
    from deeptao.data.tasks import select_task
    from deeptao.training import is_main_process

    started = time.perf_counter()
    main = is_main_process()
    log = _log_to(quiet or not main)
    check_devices(spec.params)
    estimator = _build(spec.model, spec.params)
    cache = open_cache(spec.cache)
    task = select_task(spec.task, cache.labels_array())
    if not len(task.rows):
        raise ConfigError(f"{spec.cache}: no object of task {spec.task}")
    object_ids = cache.objects["object_id"].to_numpy()
    if spec.split is not None:
        try:
            object_split = read_split(spec.split, object_ids)
        except FileNotFoundError:
            raise ConfigError(f"{spec.split}: no such split file") from None
        except (ValueError, KeyError, pd.errors.ParserError) as exc:
            raise ConfigError(" ".join(str(exc).split())) from None
    else:
        object_split, _ = split_cache(cache, mode="object", seed=spec.seed)
    sizes = {name: len(part) for name, part in _rows_by_part(task.rows, object_split).items()}  # refuses before writing
    config_text = dump_spec(spec)
    out = Path(spec.out)
    _check_out(out, config_text)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / CONFIG_FILE, config_text)
        write_split(out, cache, object_split)

    log(f"{spec.model} on {spec.cache} ({spec.task}): {sizes['train']} training, {sizes['val']} validation, {sizes['test']} test objects -> {out}")
    t = time.perf_counter()
    with _inputs_lock(Path(spec.cache)):
        estimator.prepare_inputs(cache, workers=os.cpu_count() or 1)
    if time.perf_counter() - t > 1:
        log(f"inputs (features, nightly co-adds) ready in {time.perf_counter() - t:.0f} s")
    rows = fit_on_split(estimator, cache, task, object_split, seed=spec.seed, workdir=out)
    if not main:
        return TrainOutcome(out, None, None, False, sizes, None, time.perf_counter() - started)

    from deeptao.evaluation import evaluate_run, save_predictions

    predictions = None
    f1 = None
    if len(rows["test"]):
        frame = test_predictions(estimator, cache, task, rows["test"], model=spec.model, split="object", task=spec.task, seed=spec.seed)
        predictions = save_predictions(frame, out)
        summary = [s for s in evaluate_run(out).summary if s.level == "object"]
        f1 = summary[0].macro_f1 if summary else None
    model_file = out / f"model{estimator.file_suffix}"
    tmp = model_file.with_name("incomplete-" + model_file.name)
    estimator.save(tmp)
    os.replace(tmp, model_file)
    seconds = time.perf_counter() - started
    log(f"saved {model_file}" + ("" if f1 is None else f"; test macro F1 {f1:.3f}") + f" ({seconds:.0f} s)")
    return TrainOutcome(out, model_file, predictions, True, sizes, f1, seconds)
