"""Saved models as files that run without deeptao's training code, each with a model card.

Brokers and follow-up teams run a classifier inside their own pipelines, not
inside the code that trained it. :func:`export_model` writes

- a network (taonet, taonet-lc, seed-cnn) as an **ONNX** graph, run by
  onnxruntime (:mod:`deeptao.models.onnx_model`): no torch, no Lightning;
- the light-curve forest (lc-rf) as a **skops** file, scikit-learn's objects
  in a format that is read without unpickling code
  (:meth:`deeptao.models.lc_rf.LightCurveForest.load_skops`);

and beside either a model card, ``FILE.json``: the classes, the inputs and how
to build them from the FITS files, what the model was trained on and scored on
validation, and the software that wrote it. The card is also stored inside
the exported file (ONNX metadata, or the skops payload), so a file that lost
its card still says what it is, and a file without one is known not to be ours.

What the ONNX graphs compute
----------------------------
- taonet, taonet-lc: inputs as :func:`deeptao.data.inputs.pad_nights` gives
  them (nights and objects dynamic); the graph averages the probabilities of
  the ``views`` flips/rotations itself, as the torch prediction does, and
  returns class probabilities ``proba`` (B, C). taonet-lc also takes the raw
  light-curve features (standardised inside the graph).
- seed-cnn: single normalised images in, per-image log-probabilities
  ``log_proba`` (N, C) out; the object's images are pooled outside the graph
  by the rule chosen on validation (named in the card), with
  :func:`deeptao.models.pooling.pool`.

The graph computes in float32. A torch model whose ``precision`` is "auto"
predicts in bfloat16 autocast on CPUs and GPUs that support it, so there its
probabilities differ from the graph's by bfloat16 rounding, not by the export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import platform
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptao import __version__
from deeptao.data.night_features import NIGHT_FEATURE_BLOCKS
from deeptao.models.calibration import TEMPERATURE_RANGE
from deeptao.models.onnx_model import CARD_FORMAT, CARD_METADATA_KEY, CARD_VERSION

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportResult", "export_model", "model_card"]

#: formats :func:`export_model` writes, with the models each one takes
EXPORT_FORMATS = {"onnx": ("taonet", "taonet-lc", "seed-cnn"), "skops": ("lc-rf",)}
_OPSET = 18


class ExportError(ValueError):
    """A model cannot be exported as asked; the message names the file or value."""


@dataclass(frozen=True)
class ExportResult:
    """Where an export went: the model file and its card."""

    model: str
    format: str
    path: Path
    card: Path


def export_model(model: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, format: str = "onnx") -> ExportResult:
    """Export the saved model at ``model`` (a file, or a ``RUN/models/<stage>/`` folder) to ``out``.

    Parameters
    ----------
    model : path
        What ``deeptao.models.load_model`` reads.
    out : path, optional
        The file to write, ending in ``.onnx`` or ``.skops`` as ``format``
        says; default: beside the saved model, ``model.onnx`` or ``model.skops``.
        Its card is written beside it with the suffix ``.json``.
    format : {"onnx", "skops"}, default="onnx"
        ``onnx`` for the networks, ``skops`` for the forest.

    Raises
    ------
    ExportError
        For an unknown format, a model the format does not take, or a missing
        optional package; the message names the value or the file.
    ValueError
        If ``model`` holds no deeptao model (from ``load_model``).
    """
    from deeptao.models._loading import load_model, resolve_model_file

    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; known formats: {', '.join(EXPORT_FORMATS)}")
    source = resolve_model_file(model)
    estimator = load_model(source)
    name = getattr(estimator, "name", "")
    if getattr(estimator, "exported", False):
        raise ExportError(f"{source}: already an exported model; export the saved model it came from")
    takes = EXPORT_FORMATS[format]
    if name not in takes:
        other = next((f for f, names in EXPORT_FORMATS.items() if name in names), None)
        why = f"; export it with --format {other}" if other else ""
        reason = " (a random forest is not a graph of tensors: skops keeps scikit-learn's own trees, exactly)" if name == "lc-rf" else ""
        raise ExportError(f"{source}: format {format!r} takes {', '.join(takes)}, not {name or type(estimator).__name__}{reason}{why}")
    out = Path(out) if out is not None else source.with_suffix(f".{format}")
    if out.suffix != f".{format}":
        raise ExportError(f"{out}: an export to {format} must be a file ending in .{format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    card_path = out.with_suffix(".json")
    card = model_card(estimator, source=source, file=out, format=format)
    tmp = out.with_name(out.name + ".tmp")
    try:
        if format == "onnx":
            _write_onnx(estimator, source, tmp, card)
        else:
            _write_skops(estimator, tmp, card)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return ExportResult(model=name, format=format, path=out, card=card_path)


# --------------------------------------------------------------------------- the card


def _sequence_inputs(crop: int, n_features: int) -> list[dict[str, Any]]:
    from deeptao.data.representation import SCALAR_NAMES

    inputs = [
        {"name": "x", "shape": ["batch", "nights", 2, crop, crop], "dtype": "float32",
         "holds": "per night: asinh(co-add), asinh(co-add - reference); nights after an object's last are zeros"},
        {"name": "ref", "shape": ["batch", 1, crop, crop], "dtype": "float32", "holds": "asinh(reference)"},
        {"name": "scalars", "shape": ["batch", "nights", len(SCALAR_NAMES)], "dtype": "float32",
         "holds": "per-night scalars, in the order of representation.scalars"},
        {"name": "lengths", "shape": ["batch"], "dtype": "int64", "holds": "nights of each object (>= 1)"},
    ]  # fmt: skip
    if n_features:
        inputs.append({"name": "features", "shape": ["batch", n_features], "dtype": "float32",
                       "holds": "raw per-object features (light-curve, stamp, variability), in the order of representation.features (NaN where undefined)"})  # fmt: skip
    return inputs


def _representation(estimator: Any) -> dict[str, Any]:
    """What the model reads and how deeptao builds it from a FITS file's images."""
    from deeptao.lightcurves import PhotometrySettings

    name = estimator.name
    if name == "lc-rf":
        from deeptao.lightcurves import FEATURE_NAMES

        forest: dict[str, Any] = {
            "kind": "light-curve features",
            "features": list(estimator.feature_names_ if hasattr(estimator, "feature_names_") else FEATURE_NAMES),
            "photometry": _jsonable(dataclasses.asdict(estimator._settings())),
            "build": [
                "blank and duplicate exposures flagged by deeptao.io's rules (order_exposures)",
                "forced aperture photometry at the cutout centre, sky from an annulus, binned by night",
                "features of the nightly light curve: deeptao.lightcurves.features_from_arrays",
            ],
        }
        blocks = estimator._night_blocks()
        if blocks:  # measured on the networks' representation, after the light-curve features
            forest["settings"] = estimator._night_settings().to_dict()
            forest["build"].append("the object's nights: deeptao.data.representation.object_nights with settings")
            forest["build"].extend(block.build_step() for block in blocks)
        return forest
    if name == "seed-cnn":
        return {
            "kind": "single images",
            "image": [64, 64],
            "build": [
                "every non-blank image of the object (deeptao.data.inputs.usable_positions; all if all are blank)",
                "each image: subtract its median and divide by 1.4826 x its MAD (both from every second pixel), then asinh "
                "(deeptao.data.inputs.normalize_images)",
                "the images' probabilities pooled per object by prediction.pooling (deeptao.models.pooling.pool)",
            ],
        }
    from deeptao.data.representation import SCALAR_MEANINGS

    settings = estimator._settings()
    out: dict[str, Any] = {
        "kind": "nights",
        "settings": settings.to_dict(),
        "build": [
            "blank and duplicate exposures left out (deeptao.io.order_exposures flags them)",
            "each image loses its sky level (median of every second pixel); all of an object's images are divided by "
            "one noise scale, the median of their robust sky noises (1.4826 x MAD)",
            "exposures closer than settings.night_gap days make one night: their inverse-variance weighted mean is the "
            "night's co-add",
            "reference: the per-pixel median of the co-adds (their mean with fewer than 3 nights)",
            "the central settings.crop x settings.crop square of each",
            "deeptao.data.representation.object_nights builds this; deeptao.data.inputs.night_arrays (code 0, the "
            "image as it is) and pad_nights give the graph's inputs",
        ],
        "channels": ["asinh(co-add)", "asinh(co-add - reference)"],
        "reference": "asinh(reference)",
        "scalars": dict(SCALAR_MEANINGS),
    }
    names = list(estimator.feature_names())
    if names:
        out["features"] = names
        if getattr(estimator, "uses_features", False):
            out["feature_photometry"] = _jsonable(dataclasses.asdict(PhotometrySettings()))
            out["build"].append("light-curve features: deeptao.lightcurves.features_from_arrays with feature_photometry, raw (NaN allowed)")
        out["build"].extend(block.build_step() for block in NIGHT_FEATURE_BLOCKS if getattr(estimator, block.option, False))
        out["build"].append("features: the columns in the order of representation.features")
    return out


def model_card(estimator: Any, *, source: Path, file: Path, format: str) -> dict[str, Any]:
    """The card of an export: what it classifies, what it reads, what it learnt from, who wrote it."""
    name = estimator.name
    prediction: dict[str, Any] = {}
    if name in ("taonet", "taonet-lc"):
        crop = estimator.crop
        n_features = estimator._n_features()
        inputs = _sequence_inputs(crop, n_features)
        outputs = [{"name": "proba", "shape": ["batch", len(estimator.classes_)], "dtype": "float32",
                    "holds": "class probabilities, averaged over prediction.views flips/rotations"}]  # fmt: skip
        prediction["views"] = int(estimator.views)
    elif name == "seed-cnn":
        inputs = [{"name": "x", "shape": ["images", 1, 64, 64], "dtype": "float32", "holds": "normalised images"}]
        outputs = [{"name": "log_proba", "shape": ["images", len(estimator.classes_)], "dtype": "float32",
                    "holds": "per-image class log-probabilities"}]  # fmt: skip
        prediction["pooling"] = estimator._pooling_rule()
    else:
        inputs = [{"name": "features", "shape": ["objects", len(estimator.feature_names_)], "dtype": "float64",
                   "holds": "raw light-curve features (NaN where undefined; the pipeline imputes them)"}]  # fmt: skip
        outputs = [{"name": "proba", "shape": ["objects", len(estimator.classes_)], "dtype": "float64",
                    "holds": "class probabilities (pipeline.predict_proba, columns placed under their class index)"}]  # fmt: skip
    temperature = getattr(estimator, "temperature_", None)
    if temperature is not None:
        prediction["temperature"] = float(temperature)
        prediction["temperature_slope"] = float(getattr(estimator, "temperature_slope_", 0.0))
    if getattr(estimator, "class_prior_", None) is not None and getattr(estimator, "prior_power_", 0.0):
        prediction["class_prior"] = [float(p) for p in estimator.class_prior_]
        prediction["prior_power"] = float(estimator.prior_power_)
    if "temperature" in prediction or "prior_power" in prediction:
        # said in so many words, so that nobody applies it twice
        prediction["calibration"] = (
            "applied inside the graph, at each object's lengths: the output is calibrated; do not apply temperature or prior_power again"
            if name in ("taonet", "taonet-lc")
            else "apply to the object's pooled probabilities: p * class_prior ** prior_power, then p ** (1 / T), renormalised, "
            "T = temperature * exp(temperature_slope / sqrt(n)) for an object of n nights (deeptao.io.count_nights), clipped to [0.05, 20]"
        )
    training = dict(getattr(estimator, "training_", None) or {})
    if name == "lc-rf" and hasattr(estimator, "seed_"):
        training.setdefault("seed", int(estimator.seed_))
    validation: dict[str, Any] = {}
    if training.get("best_score") is not None:
        validation[training.get("monitor", "score")] = training["best_score"]
    if getattr(estimator, "pooling_scores_", None):
        validation["pooling_rules"] = estimator.pooling_scores_
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model": name,
        "file": file.name,
        "file_format": format,
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": str(source),
        "classes": list(estimator.classes_),
        "inputs": inputs,
        "outputs": outputs,
        "representation": _representation(estimator),
        "prediction": prediction,
        "params": _jsonable(estimator.get_params()),
        "training": _jsonable(training) or "not recorded in the saved model (saved before deeptao recorded it)",
        "run": _run_context(source),
        "validation": _jsonable(validation) or "not recorded in the saved model",
        "software": {"deeptao": __version__, "python": platform.python_version(), "numpy": np.__version__},
    }


def _run_context(source: Path) -> dict[str, Any] | None:
    """What ``deeptao replicate`` recorded of the data, when the model sits in a run's ``models/<stage>/``."""
    run = source.resolve().parent.parent.parent
    context = run / "context.json"
    if source.resolve().parent.parent.name != "models" or not context.is_file():
        return None
    try:
        data = json.loads(context.read_text())
    except (OSError, ValueError):
        return None
    keep = ("data_root", "simulated", "objects_per_class", "images_per_class", "split_sizes", "notes")
    return {"stage": source.resolve().parent.name, **{k: data[k] for k in keep if k in data}}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# --------------------------------------------------------------------------- ONNX


@contextlib.contextmanager
def _gru_traced_whole() -> Iterator[None]:
    """While exporting, let tracing see ``aten.gru`` as one operator, as onnxscript translates it.

    Once torch's Python decompositions are loaded (by a first export, or by
    anything else in the process), they are registered as Python kernels of
    ``aten.gru`` and tracing runs them: the GRU is unrolled over the example's
    time steps, and the graph would accept only that many nights. Those
    kernels are set aside for the export and put back after it (torch is
    pinned, and :func:`_write_onnx` checks that the nights axis stayed dynamic).
    """
    from torch._C import DispatchKey

    op = torch.ops.aten.gru.input
    kernels = getattr(op, "py_kernels", {})
    saved = {k: kernels.pop(k) for k in (DispatchKey.CompositeImplicitAutograd, DispatchKey.Autograd) if k in kernels}
    cache = getattr(op, "_dispatch_cache", None)
    if cache is not None:
        cache.clear()
    try:
        yield
    finally:
        kernels.update(saved)
        if cache is not None:
            cache.clear()


def _write_onnx(estimator: Any, source: Path, path: Path, card: dict[str, Any]) -> None:
    """Trace the network's prediction into an ONNX file at ``path``, the card (completed here) in its metadata."""
    try:
        import onnx
        import onnxscript  # torch's exporter translates with it
    except ImportError as exc:
        raise ExportError(f"{source}: ONNX export needs the optional packages onnx and onnxscript "
                          f"(pip install 'deeptao[onnx]'; missing: {exc.name})") from None  # fmt: skip
    graph, example, dynamic = _graph(estimator)
    names = [spec["name"] for spec in card["inputs"]]
    with warnings.catch_warnings(), _gru_traced_whole(), _quiet_logger("torch.onnx"):
        # the exporter's notes on its own internals say nothing about this model
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph, example, dynamo=True, input_names=names, output_names=[card["outputs"][0]["name"]],
            dynamic_shapes=dynamic, opset_version=_OPSET, external_data=False, verbose=False, report=False,
        )  # fmt: skip
    model = program.model_proto
    for tensor, axes in zip(model.graph.input, dynamic, strict=True):
        fixed = [k for k in axes if not tensor.type.tensor_type.shape.dim[k].dim_param]
        if fixed:
            raise ExportError(f"{source}: the exported graph fixed axes {fixed} of input {tensor.name!r}; it would refuse other sizes")
    card["software"].update({"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__, "opset": str(_OPSET)})
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card)
    model.producer_name, model.producer_version = "deeptao", __version__
    onnx.save_model(model, str(path))


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """The exporter logs which optional libraries it skips; hide that for the export, then restore the level."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _graph(estimator: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
    """The module to trace, an example input and its dynamic axes."""
    net = estimator.network_.float().eval()
    temperature = float(getattr(estimator, "temperature_", None) or 1.0)
    slope = float(getattr(estimator, "temperature_slope_", 0.0) or 0.0)
    prior, power = getattr(estimator, "class_prior_", None), float(getattr(estimator, "prior_power_", 0.0) or 0.0)
    log_shift = torch.zeros(len(estimator.classes_)) if prior is None else power * torch.log(torch.as_tensor(prior, dtype=torch.float32))
    if estimator.name == "seed-cnn":
        example = (torch.zeros(2, 1, 64, 64),)
        return ImageGraph(net), example, ({0: torch.export.Dim("images", min=1)},)
    crop = estimator.crop
    batch, nights = torch.export.Dim("batch", min=1), torch.export.Dim("nights", min=1)
    example = [torch.zeros(2, 3, 2, crop, crop), torch.zeros(2, 1, crop, crop), torch.zeros(2, 3, net.n_scalars), torch.tensor([3, 2])]
    dynamic: list[dict[int, Any]] = [{0: batch, 1: nights}, {0: batch}, {0: batch, 1: nights}, {0: batch}]
    if estimator._n_features():
        example.append(torch.zeros(2, estimator._n_features()))
        dynamic.append({0: batch})
    return SequenceGraph(net, int(estimator.views), temperature, log_shift, slope), tuple(example), tuple(dynamic)


def _torch_dihedral(t: torch.Tensor, code: int) -> torch.Tensor:
    """:func:`deeptao.data.inputs.dihedral` on tensors (flip the last axis, then rotate the last two)."""
    if code & 4:
        t = t.flip(-1)
    return torch.rot90(t, code & 3, (-2, -1)) if code & 3 else t


class SequenceGraph(nn.Module):
    """taonet's probabilities averaged over ``views`` flips/rotations, as its torch prediction averages them.

    The views are stacked along the batch, so the graph holds the network once.
    """

    def __init__(
        self, net: nn.Module, views: int, temperature: float = 1.0, log_shift: torch.Tensor | None = None, slope: float = 0.0
    ) -> None:
        super().__init__()
        self.net, self.views, self.temperature, self.slope = net, views, temperature, slope
        self.shifted = log_shift is not None and bool((log_shift != 0).any())
        self.register_buffer("log_shift", torch.zeros(1) if log_shift is None else log_shift.float())

    def forward(
        self, x: torch.Tensor, ref: torch.Tensor, scalars: torch.Tensor, lengths: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        v = self.views
        xs = torch.cat([_torch_dihedral(x, code) for code in range(v)])
        refs = torch.cat([_torch_dihedral(ref, code) for code in range(v)])
        repeated = None if features is None else features.repeat(v, 1)
        logits = self.net.forward_padded(xs, refs, scalars.repeat(v, 1, 1), lengths.repeat(v), repeated)
        proba = torch.softmax(logits.float(), dim=1).unflatten(0, (v, x.shape[0])).mean(dim=0)
        if self.temperature == 1.0 and self.slope == 0.0 and not self.shifted:
            return proba
        # calibration as the torch estimator applies it, to the view-averaged probabilities:
        # (p * prior ** a) ** (1 / T(n)), renormalised, p floored at 1e-12, T(n) = T exp(s / sqrt(n)) within
        # TEMPERATURE_RANGE, n the object's nights (deeptao.models.calibration)
        log_p = torch.log(proba.clamp(min=1e-12))
        if self.shifted:
            log_p = log_p + self.log_shift
        if self.slope == 0.0:
            return torch.softmax(log_p / self.temperature, dim=1)
        nights = lengths.to(log_p.dtype).clamp(min=1.0)
        lo, hi = TEMPERATURE_RANGE
        t = (self.temperature * torch.exp(self.slope * torch.rsqrt(nights))).clamp(lo, hi)
        return torch.softmax(log_p / t[:, None], dim=1)


class ImageGraph(nn.Module):
    """seed-cnn's per-image log-probabilities (calibration applies to the pooled object, outside the graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(x).float(), dim=1)


# --------------------------------------------------------------------------- skops


def _write_skops(estimator: Any, path: Path, card: dict[str, Any]) -> None:
    """The forest's pipeline as a skops file at ``path``, the card inside."""
    try:
        import skops
    except ImportError as exc:
        raise ExportError(f"{path.with_suffix('')}: skops export needs the optional package skops "
                          f"(pip install 'deeptao[onnx]'; missing: {exc.name})") from None  # fmt: skip
    import sklearn

    card["software"].update({"skops": skops.__version__, "scikit-learn": sklearn.__version__})
    estimator.save_skops(path, card=card)
