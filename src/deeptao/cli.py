"""The ``deeptao`` command: arguments in, library calls out, one-line errors.

Each subcommand's flags come from a dataclass of defaults, so the library and
the command line cannot disagree on a default. ``main(argv)`` returns the exit
status, which keeps the CLI testable without a subprocess.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deeptao._options import option

__all__ = ["main"]


# --------------------------------------------------------------------------- option dataclasses


@dataclasses.dataclass
class PrepareOptions:
    workers: int | None = option("worker processes (default: all CPUs)", default=None)
    strict: bool = option("stop at the first bad file with a non-zero exit", default=False)


def _add_options(parser: Any, options: type, *, exclude: Sequence[str] = ()) -> None:
    """Flags from a dataclass: ``field_name`` becomes ``--field-name``, typed from its hint."""
    hints = typing.get_type_hints(options)
    for f in dataclasses.fields(options):
        if f.name in exclude:
            continue
        hint = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if hint is bool:
            action = argparse.BooleanOptionalAction if f.default else "store_true"
            parser.add_argument(flag, action=action, default=f.default, help=help_text)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        extra: dict[str, Any] = {}
        if "choices" in f.metadata:
            extra["choices"] = f.metadata["choices"]
        if typing.get_origin(hint) is tuple:  # tuple[X, ...]: one or more values
            extra["nargs"] = "+"
            hint = typing.get_args(hint)[0]
        shown = "" if default is None else f" (default: {' '.join(map(str, default)) if isinstance(default, tuple) else default})"
        parser.add_argument(
            flag, type=_scalar_type(hint), default=default, help=help_text + shown, metavar=f.name.upper(), **extra
        )


def _scalar_type(hint: Any) -> Callable[[str], Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint if hint in (int, float, str, Path) else str


def _options(args: argparse.Namespace, options: type) -> Any:
    return options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options) if hasattr(args, f.name)})


# --------------------------------------------------------------------------- commands


def _cmd_prepare(args: argparse.Namespace) -> int:
    from deeptao.data.cache import prepare

    opts = _options(args, PrepareOptions)
    result = prepare(args.root, args.out, workers=opts.workers, strict=opts.strict)
    print(
        f"prepared {result.n_objects} objects, {result.n_images} images in {result.seconds:.1f} s "
        f"({result.parts_built} parts built, {result.parts_reused} reused) -> {result.cache}"
    )
    if result.bad_files:
        print(f"skipped {len(result.bad_files)} bad file(s) (listed in {result.cache / 'bad_files.csv'}):")
        for path, reason in result.bad_files[:20]:
            print(f"  {path}: {reason}")
        if len(result.bad_files) > 20:
            print(f"  ... and {len(result.bad_files) - 20} more")
    if result.warnings:
        from deeptao.io import ReadFault

        by_file: dict[str, list[ReadFault]] = {}
        for path, hdu, row, reason in result.warnings:
            by_file.setdefault(path, []).append(ReadFault(hdu, row, reason))
        dropped = sum(f.drops for faults in by_file.values() for f in faults)
        print(
            f"kept {len(by_file)} file(s) with faults: {dropped} image(s) or row(s) left out, "
            f"{len(result.warnings) - dropped} card(s) disagreeing (listed in {result.cache / 'warnings.csv'}):"
        )
        for path, faults in list(by_file.items())[:20]:
            print(f"  {path}: {faults[0]}" + (f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""))
        if len(by_file) > 20:
            print(f"  ... and {len(by_file) - 20} more files")
    if result.n_non_without_parent:
        print(
            f"{result.n_non_without_parent} NON object(s) name a parent CRTS_ID that no transient here has; "
            "each stays in its parent's group in the splits"
        )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from deeptao.io import read_object
    from deeptao.plotting import ShowDefaults, show_object

    opts = _options(args, ShowDefaults)
    obj = read_object(args.file)
    _say_faults("show", obj)
    out = show_object(obj, opts.out, max_images=opts.max_images, ncols=opts.ncols)
    print(f"{obj.object_id} ({obj.label or 'unlabelled'}, {len(obj)} images) -> {out}")
    return 0


def _say_faults(command: str, obj: Any) -> None:
    """What the reader left out of a file it read, one line each on standard error."""
    for fault in obj.faults:
        print(f"deeptao {command}: {obj.path}: {fault}", file=sys.stderr)


def _cmd_download(args: argparse.Namespace) -> int:
    from deeptao.download import DownloadDefaults, download

    opts = _options(args, DownloadDefaults)
    report = download(args.dest, **dataclasses.asdict(opts))
    print(report)
    return 0 if report.complete else 3


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from deeptao.evaluation import evaluate_run
    from deeptao.plotting import plot_run_figures

    evaluation = evaluate_run(args.run)
    files = {**evaluation.files, **plot_run_figures(evaluation, args.run)}
    for s in evaluation.summary:
        print(f"{s.model:10s} {s.split:6s} {s.task:7s} {s.level:6s} macro F1 {s.macro_f1:.3f}")
    print("wrote " + ", ".join(str(path) for path in files.values()))
    return 0


@dataclasses.dataclass
class SimulateOptions:
    objects_per_class: int = option("transients per class (SN, AGN, BZ, CV, OTHER)", default=100)
    non_per_class: int | None = option("non-transients (default: as many as objects per class)", default=None)
    seed: int = option("the survey depends on this alone", default=0)
    workers: int = option("processes rendering and writing", default=1)
    overwrite: bool = option("replace the simulated files already in OUT", default=False)
    release_like: bool = option("the release's class counts (SN 1372, AGN 606, BZ 239, CV 772, OTHER 818, NON 12500) instead of --objects-per-class", default=False)
    fraction: float = option("with --release-like: scale every class by this (each keeps at least one object)", default=1.0)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from deeptao.simulate import SurveyConfig, release_like_counts, simulate_survey

    opts = _options(args, SimulateOptions)
    if opts.fraction != 1.0 and not opts.release_like:
        print("deeptao simulate: error: --fraction needs --release-like", file=sys.stderr)
        return 2
    if not 0 < opts.fraction <= 1:
        print(f"deeptao simulate: error: --fraction must be in (0, 1], got {opts.fraction}", file=sys.stderr)
        return 2
    bar = _ProgressBar("simulate", "object")
    summary = simulate_survey(
        args.out,
        objects_per_class=opts.objects_per_class,
        seed=opts.seed,
        non_per_class=opts.non_per_class,
        config=_options(args, SurveyConfig),
        workers=opts.workers,
        progress=bar,
        overwrite=opts.overwrite,
        class_counts=release_like_counts(opts.fraction) if opts.release_like else None,
    )
    bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(f"simulated {summary.n_objects} objects ({counts}), {summary.n_images} images in {summary.seconds:.1f} s -> {args.out}")
    return 0


class _ProgressBar:
    """A ``progress(done, total)`` callback drawing a bar on a terminal only."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=not sys.stderr.isatty())
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_replicate(args: argparse.Namespace) -> int:
    from deeptao.replicate import ReplicateOptions, replicate

    opts = _options(args, ReplicateOptions)
    report = replicate(args.out, opts, command="deeptao " + " ".join(sys.argv[1:]))
    print(f"report: {report}")
    return 0


def _cmd_lightcurve(args: argparse.Namespace) -> int:
    from deeptao.io import read_object
    from deeptao.lightcurves import PhotometrySettings, lightcurve_figure

    obj = read_object(args.file)
    _say_faults("lightcurve", obj)
    out = args.out or Path.cwd() / f"{obj.object_id.replace(':', '_')}.lightcurve.png"
    path = lightcurve_figure(obj, out, settings=_options(args, PhotometrySettings))
    print(f"{obj.object_id} ({obj.label or 'unlabelled'}, {len(obj)} images) -> {path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from deeptao.models import load_model
    from deeptao.models.classify import classify_files

    if args.max_nights is not None and args.max_nights < 1:
        print(f"deeptao predict: error: --max-nights must be at least 1, got {args.max_nights}", file=sys.stderr)
        return 2
    model = load_model(args.model)
    result = classify_files(model, args.files, max_nights=args.max_nights, on_read=lambda obj: _say_faults("predict", obj))
    for _, reason in result.skipped:
        print(f"deeptao predict: skipped {reason}", file=sys.stderr)
    if result.table.empty:
        print("deeptao predict: error: no readable file to classify", file=sys.stderr)
        return 1
    if args.out:
        result.table.to_csv(args.out, index=False)
        print(f"classified {len(result.table)} objects -> {args.out}")
    else:
        result.table.to_csv(sys.stdout, index=False, float_format="%.4f")
    return 1 if result.skipped else 0


# --------------------------------------------------------------------------- the parser
#
# Each command is a name, a help line, a description and a function that adds its
# arguments. The arguments of a command are added only when that command is the
# one being run, because they come from option dataclasses that live beside the
# code they configure (the simulator, the plotting, the photometry): importing them
# for ``deeptao --help`` or ``deeptao prepare`` would import matplotlib, scipy and
# the rest, and make every start of the command slow.


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    from deeptao.simulate import SurveyConfig

    p.add_argument("out", type=Path, metavar="OUT")
    _add_options(p, SimulateOptions)
    _add_options(p.add_argument_group("physics and difficulty"), SurveyConfig)


def _prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, metavar="ROOT")
    p.add_argument("--out", type=Path, required=True, metavar="CACHE", help="cache folder to write")
    _add_options(p, PrepareOptions)


def _show_arguments(p: argparse.ArgumentParser) -> None:
    from deeptao.plotting import ShowDefaults

    p.add_argument("file", type=Path, metavar="FILE.fits")
    _add_options(p, ShowDefaults)


def _download_arguments(p: argparse.ArgumentParser) -> None:
    from deeptao.download import DownloadDefaults

    p.add_argument("dest", type=Path, metavar="DEST")
    _add_options(p, DownloadDefaults)


def _lightcurve_arguments(p: argparse.ArgumentParser) -> None:
    from deeptao.lightcurves import PhotometrySettings

    p.add_argument("file", type=Path, metavar="FILE.fits")
    p.add_argument("--out", type=Path, default=None, metavar="PNG", help="figure to write (default: <object id>.lightcurve.png)")
    _add_options(p.add_argument_group("photometry"), PhotometrySettings, exclude=("centre",))


def _replicate_arguments(p: argparse.ArgumentParser) -> None:
    from deeptao.replicate import ReplicateOptions

    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    _add_options(p, ReplicateOptions)


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="MODEL")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE.fits")
    p.add_argument("--out", type=Path, default=None, metavar="CSV", help="write here instead of standard output")
    p.add_argument("--max-nights", type=int, default=None, metavar="K", help="classify from each object's first K nights only (early classification)")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="MODEL_DIR")
    p.add_argument("--format", default="onnx", metavar="FORMAT", help="onnx (taonet, taonet-lc, seed-cnn) or skops (lc-rf) (default: onnx)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="file to write, FILE.onnx or FILE.skops (default: beside the saved model)")


def _cmd_export(args: argparse.Namespace) -> int:
    from deeptao.models.export import export_model

    result = export_model(args.model, args.out, format=args.format)
    print(f"exported {result.model} as {result.format} -> {result.path} (model card {result.card})")
    return 0


#: ``deeptao train``'s trainer options: flag, model parameter, type, help (the model's constructor holds the defaults)
_TRAINER_FLAGS = (
    ("--accelerator", "accelerator", str, "auto, cpu or gpu"),
    ("--devices", "devices", int, "processes (CPU) or GPUs per machine; batch size is per process"),
    ("--strategy", "strategy", str, "Lightning strategy: auto, ddp, ddp_spawn, ..."),
    ("--num-nodes", "num_nodes", int, "machines taking part"),
    ("--precision", "precision", str, "auto, 32 or bf16"),
    ("--batch-size", "batch_size", int, "training batch per process"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--max-epochs", "max_epochs", int, "epochs"),
    ("--num-workers", "num_workers", int, "DataLoader worker processes per training process"),
    ("--logger", "logger", str, "csv, or tensorboard (CSV as well; needs the tensorboard extra)"),
)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, metavar="FILE", help="YAML or TOML configuration; options given here override it")
    p.add_argument("--print-config", action="store_true", help="write the resolved configuration to standard output and stop")
    run = p.add_argument_group("what to train")
    run.add_argument("--cache", type=Path, default=None, metavar="CACHE", help="prepared cache (deeptao prepare)")
    run.add_argument("--model", default=None, metavar="NAME", help="registered model: lc-rf, seed-cnn, taonet, taonet-lc")
    run.add_argument("--out", type=Path, default=None, metavar="DIR", help="folder for the model, configuration, split and logs")
    run.add_argument("--task", default=None, metavar="TASK", help="6class (default), 5class or binary")
    run.add_argument("--split", type=Path, default=None, metavar="CSV", help="split.csv to use (object_id, split)")
    run.add_argument("--seed", type=int, default=None, metavar="S", help="seeds training and, without --split, the split by object group (default 0)")
    trainer = p.add_argument_group("trainer (defaults: the model's own)")
    for flag, _, kind, help_text in _TRAINER_FLAGS:
        trainer.add_argument(flag, type=kind, default=None, metavar=flag[2:].replace("-", "_").upper(), help=help_text)
    trainer.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="any other model parameter (VALUE read as YAML: 0.1, true, null, text); repeatable",
    )  # fmt: skip


def _cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from deeptao.experiment import ConfigError, dump_spec, resolve_spec, train

    params: dict[str, Any] = {name: getattr(args, name) for _, name, _, _ in _TRAINER_FLAGS}
    flags = {name: flag for flag, name, _, _ in _TRAINER_FLAGS}
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {item!r}: expected NAME=VALUE")
        params[name.strip().replace("-", "_")] = yaml.safe_load(text)
        flags[name.strip().replace("-", "_")] = f"--param {name.strip()}"
    run = {"model": args.model, "cache": args.cache, "out": args.out, "task": args.task, "seed": args.seed, "split": args.split}
    if args.print_config and args.config is None:  # a model's defaults, to start a configuration from
        run = {**run, "cache": run["cache"] or "CACHE", "out": run["out"] or "DIR"}
    spec = resolve_spec(config=args.config, run=run, params=params, flags=flags)
    if args.print_config:
        sys.stdout.write(dump_spec(spec))
        return 0
    outcome = train(spec)
    if outcome.main_process:
        score = "" if outcome.test_macro_f1 is None else f", test macro F1 {outcome.test_macro_f1:.3f}"
        print(f"trained {spec.model} in {outcome.seconds:.0f} s{score} -> {outcome.model_file}")
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, metavar="RUN")


@dataclasses.dataclass(frozen=True)
class _Command:
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS = {
    "simulate": _Command(
        "write a simulated CRTS-like survey in the release layout",
        "Write OUT/TAO_transients/data/<CLASS>/*.fits and OUT/TAO_non-transients/data/NON/*.fits, byte for byte "
        "in the release's layout, from physical models of each class. Deterministic for a seed.",
        _simulate_arguments, _cmd_simulate,
    ),
    "prepare": _Command(
        "read a release tree into a streaming cache",
        "Read every FITS file under ROOT (the folder holding TAO_transients and/or TAO_non-transients) "
        "into CACHE. Bad files are skipped and listed; an interrupted run resumes.",
        _prepare_arguments, _cmd_prepare,
    ),
    "show": _Command(
        "draw one object's images in time order",
        "Draw a file's images in MJD order as a zscale-stretched grid, titled with CRTS_ID and label.",
        _show_arguments, _cmd_show,
    ),
    "download": _Command(
        "fetch the Deep-TAO release from GitHub",
        "Bring TAO_transients and TAO_non-transients into DEST (shallow git clone, else the archive), "
        "resumably, then check the per-class file counts. Exit 3 when files are missing.",
        _download_arguments, _cmd_download,
    ),
    "lightcurve": _Command(
        "forced aperture photometry of one file, plotted",
        "Measure the flux at the cutout centre on every image (sky from an annulus), bin by night and "
        "plot magnitude against MJD with errors.",
        _lightcurve_arguments, _cmd_lightcurve,
    ),
    "train": _Command(
        "train one model on a prepared cache, from options or a configuration file",
        "Fit one model on the training objects of a split (a split.csv, or a split by object group drawn with "
        "--seed), validation steering it, and score the test objects. DIR receives config.yaml (the resolved "
        "configuration: --config DIR/config.yaml repeats the training), split.csv, logs/, checkpoints, "
        "predictions.parquet and the model, which 'deeptao predict DIR' and 'deeptao evaluate DIR' read. "
        "An interrupted training resumes. --devices N --strategy ddp trains in N processes (or on N GPUs).",
        _train_arguments, _cmd_train,
    ),
    "replicate": _Command(
        "the study end to end: data, cache, splits, models, report",
        "Simulate the demo survey (or use --data ROOT, the release), prepare it, train seed-cnn under the "
        "object split and the leaky image split and taonet, taonet-lc and lc-rf under the object split (taonet "
        "and lc-rf also on the 5 transient classes), three seeds each, evaluate at object level, and write "
        "RUN/report.md. Interrupted runs resume.",
        _replicate_arguments, _cmd_replicate,
    ),
    "predict": _Command(
        "class probabilities for new files",
        "Classify FITS files with a saved model (RUN/models/<stage>/model.pt or model.joblib, or its folder) "
        "or an exported one (FILE.onnx, run by onnxruntime without torch; FILE.skops). "
        "Unreadable files are skipped with a message and make the exit status 1.",
        _predict_arguments, _cmd_predict,
    ),
    "export": _Command(
        "write a saved model as a file that runs without the training code",
        "Write a saved network (MODEL_DIR, a RUN/models/<stage>/ folder, or its model file) as ONNX, run by "
        "onnxruntime, or the lc-rf forest as skops; a model card FILE.json is written beside it. "
        "'deeptao predict FILE.onnx FILE.fits ...' runs the export.",
        _export_arguments, _cmd_export,
    ),
    "evaluate": _Command(
        "re-score a saved run",
        "Re-read RUN/predictions.parquet and rewrite metrics.json, f1_scores.csv and confusion_matrix.png.",
        _evaluate_arguments, _cmd_evaluate,
    ),
}  # fmt: skip


def _build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command named in ``argv`` only (see above)."""
    from deeptao import __version__

    parser = argparse.ArgumentParser(
        prog="deeptao",
        description="Classify CRTS transients from Deep-TAO image sequences, evaluated at object level.",
    )
    parser.add_argument("--version", action="version", version=f"deeptao {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The first word that is not an option names the command (the top level has only options).
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        if name == chosen:
            command.arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _expected_errors(command: str) -> tuple[type[BaseException], ...]:
    """Failures that are the user's data or setup, reported in one line without a traceback.

    Looked up only among the modules the command imported: a module that was
    never imported cannot have raised its error, and importing it here would
    slow down every failing command.
    """
    # a missing or unreadable path, a file where a folder belongs, a bad value of an option:
    # each says what is wrong in its message
    errors: list[type[BaseException]] = [FileNotFoundError, PermissionError, NotADirectoryError, ValueError]
    for module, names in (
        ("deeptao.io._reader", ("TaoFormatError",)),
        ("deeptao.data.cache", ("PrepareError", "CacheError")),
        ("deeptao.download", ("DownloadError",)),
        ("deeptao.evaluation", ("RunError",)),
        ("deeptao.models.base", ("NotFittedError",)),
    ):
        loaded = sys.modules.get(module)
        errors.extend(getattr(loaded, name) for name in names if hasattr(loaded, name))
    return tuple(errors)


def _show_library_log() -> None:
    """The package's INFO lines (a training's epochs when no bar is drawn) on standard error, once per process."""
    import logging

    class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
        """Writes to whatever ``sys.stderr`` is when a line comes, not what it was when ``main`` first ran."""

        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    logger = logging.getLogger("deeptao")
    if not any(type(h).__name__ == "_Stderr" for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deeptao``; returns the exit status (0 ok, 1 failed, 2 bad usage, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _build_parser(argv).parse_args(argv)
    _show_library_log()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("deeptao: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of standard output went away (``deeptao predict ... | head``)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141
    except Exception as exc:
        if isinstance(exc, _expected_errors(args.command)):
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"deeptao {args.command}: error: {message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
