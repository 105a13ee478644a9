"""What the torch estimators share: parameters, fitting through Lightning, pooled prediction, files.

A subclass supplies the network (``_build_network``), its data loaders
(``_make_loaders``) and its batched prediction over objects
(``_predict_sources``); everything else — parameter checks, subsampling for
small machines, class weights, the training fingerprint that makes resumption
safe, saving and loading — lives here once.

Prediction works on *sources*: one ``(images, mjd, blank)`` triple per object,
drawn either from a prepared cache or from arrays (a FITS file read by
``deeptao.io``), so ``deeptao predict`` needs no cache.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from deeptao.data.datasets import passthrough
from deeptao.io import order_objects, sequence_nights
from deeptao.models._registry import get_model_builder
from deeptao.models.base import ObjectClassifier
from deeptao.models.calibration import calibrate_proba, choose_prior_power, fit_nights_calibration, shift_to_prior

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache
    from deeptao.training import FitResult, TrainConfig

# deeptao.training (and with it Lightning, several seconds of imports) is imported
# only by the methods that train: loading a saved network and predicting never need it.

__all__ = [
    "TorchClassifier",
    "ModelFileError",
    "MaxPool2x2",
    "load_model",
    "resolve_precision",
    "Source",
    "cache_sources",
    "array_sources",
]

_FORMAT = "deeptao-torch-model"
_FORMAT_VERSION = 1

#: one object's images (uint16, (n, 64, 64), MJD order), their MJDs, and which are blank
Source = tuple[np.ndarray, np.ndarray, np.ndarray]

# Parameters that change where a training runs or how it is watched, not what it
# learns: a checkpoint made under other values of these may be resumed. (The
# epoch count is not one of them: the learning-rate schedule spans it.)
# (``devices`` and ``num_nodes`` are not: they multiply the global batch.)
_RUN_ONLY = frozenset({"max_time", "patience", "progress", "num_workers", "threads", "accelerator", "eval_batch_size", "calibrate", "members", "strategy", "logger", "prior_shift"})


class MemberAverage(nn.Module):
    """Independently trained networks as one: the log of their mean probability.

    Its output is a valid logit vector (softmax gives back the mean
    probability), so prediction, bfloat16 copies and export treat an
    ensemble exactly as a single network.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._average([m(*args, **kwargs) for m in self.members])

    def forward_padded(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The members' ``forward_padded`` (the traceable form an export uses), averaged alike."""
        return self._average([m.forward_padded(*args, **kwargs) for m in self.members])

    def _average(self, logits: list[torch.Tensor]) -> torch.Tensor:
        log_proba = torch.stack([torch.log_softmax(z.float(), dim=1) for z in logits])
        return torch.logsumexp(log_proba, dim=0) - math.log(len(self.members))


class ModelFileError(ValueError):
    """A saved model file is missing, foreign or damaged; the message names the file."""


class MaxPool2x2(nn.Module):
    """2 x 2 max-pooling, stride 2, floor mode — ``nn.MaxPool2d(2)`` with a faster inference path.

    Without gradients it takes the maximum of strided views (rows, then
    columns): the same numbers, about twice as fast as the CPU pooling kernel
    on channels-last tensors, whose cost comes from computing indices nobody
    needs. With gradients the library kernel runs: its backward is the fast one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.max_pool2d(x, 2)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"32"`` or ``"bf16"``; ``"auto"`` picks bfloat16 autocast where the hardware supports it.

    On CPUs with oneDNN bfloat16 support the networks train about 2.5x and
    predict about 1.5x faster in bf16-mixed precision (weights and loss stay
    float32), which is what makes CPU-only runs practical.
    """
    if precision not in ("auto", "32", "bf16"):
        raise ValueError(f"precision must be 'auto', '32' or 'bf16', got {precision!r}")
    if precision != "auto":
        return precision
    try:
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "32"
        return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"
    except (AttributeError, RuntimeError):  # an older or unusual build: stay exact
        return "32"


_Job = TypeVar("_Job")


def _as_bf16_input(t: torch.Tensor) -> torch.Tensor:
    """Floating inputs as bfloat16, image batches channels-last; others (lengths, indices) untouched."""
    if not t.is_floating_point():
        return t
    t = t.to(torch.bfloat16)
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def cache_sources(cache: PreparedCache, rows: np.ndarray) -> Iterator[Source]:
    """The objects at ``rows`` of ``cache`` as prediction sources, read lazily."""
    objects, images = cache.objects, cache.images
    starts = objects["image_start"].to_numpy(np.int64)
    counts = objects["n_images"].to_numpy(np.int64)
    mjd = images["mjd"].to_numpy(np.float64)
    blank = images["blank"].to_numpy(bool)
    for row in np.asarray(rows, dtype=np.int64):
        s, n = starts[row], counts[row]
        yield cache.object_images(int(row)), mjd[s : s + n], blank[s : s + n]


def array_sources(items: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[Source]:
    """Objects given as ``(images, mjd)`` pairs, put in MJD order and flagged as the reader flags them.

    Raises
    ------
    ValueError
        If images are not ``(n, H, W)`` or ``mjd`` does not have one value per image.
    """
    for images, mjd, blank, _ in order_objects(items):
        yield images, mjd, blank


def _digest(cache: Any, *arrays: np.ndarray | None) -> str:
    """What a training learns from: the cache's content (:attr:`PreparedCache.content_id`) and the rows and labels drawn from it."""
    h = hashlib.sha1(f"{cache.content_id}|{len(cache)}|".encode())
    for a in arrays:
        h.update(b"none" if a is None else np.ascontiguousarray(a, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()


def _class_counts(y: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    return {str(c): int(n) for c, n in zip(classes, counts, strict=True)}


def _stratified_cap(rows: np.ndarray, y: np.ndarray, cap: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cap`` objects, each class keeping its share (and at least one object)."""
    if cap is None or len(rows) <= cap:
        return rows, y
    rng = np.random.default_rng([seed, 0x5EED])
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        quota = max(1, int(len(idx) * cap / len(rows)))
        keep.append(rng.choice(idx, min(quota, len(idx)), replace=False))
    keep = np.sort(np.concatenate(keep))
    return rows[keep], y[keep]


def make_loader(dataset: Dataset, batch_sampler: Sampler, num_workers: int, seed: int) -> DataLoader:
    """A DataLoader whose dataset builds whole batches (``__getitems__``)."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=passthrough,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


class TorchClassifier(ObjectClassifier):
    """Base of the torch estimators; see the subclasses for the parameters' meaning.

    Common parameters
    -----------------
    max_epochs : int
    max_time : str or None
        Wall-clock cap ``"DD:HH:MM:SS"`` (a safety net: a run it stops is not
        reproducible across machines).
    batch_size : int
        Training batch (images or sequences, per subclass).
    eval_batch_size : int
        Images per forward pass when predicting.
    lr, weight_decay : float
        AdamW (peak learning rate).
    schedule : {"cosine", "constant"}
        Warm-up then cosine decay over the whole run, or a constant rate.
    warmup : float
        Share of the optimiser steps spent warming up.
    label_smoothing : float
        Share of each training target spread evenly over the classes.
    average_decay : float
        Above 0, the network validated, checkpointed and kept is an
        exponential moving average of the weights over the optimiser steps,
        with this decay per step (0.99: about the last hundred steps).
    patience : int
        Epochs without validation improvement before stopping.
    monitor : {"val_loss", "val_f1"}
        What picks the kept epoch and stops training: validation loss by
        default (macro F1 on a hundred objects is mostly noise).
    class_weight : {"balanced", "none"}
        Loss weights inverse to class frequency in the training items, or
        none (None works too, except through ``create_model``, which drops it).
    limit_train_batches : int, float or None
        Cap on batches per epoch.
    max_objects : int or None
        Train (and validate) on a class-stratified random subset of at most
        this many objects — for small machines.
    num_workers : int
        DataLoader worker processes (0 loads in the training process, best
        on 2 cores).
    accelerator : str
        ``"auto"``: a GPU when present, else CPU; also used for prediction.
    devices, num_nodes : int
        Training processes per machine (CPU) or accelerators per machine
        (GPU), and machines. ``batch_size`` is per process, so the global
        batch is ``batch_size * devices * num_nodes``. Prediction runs in each
        process on one device.
    strategy : str
        Lightning's distribution strategy (``"auto"``, ``"ddp"``, ``"ddp_spawn"``, ...).
    logger : {"csv", "tensorboard"}
        Training curves as CSV (always) and, with ``"tensorboard"``, as
        TensorBoard event files too.
    threads : int or None
        torch threads during training; None leaves torch's default.
    progress : bool or None
        Progress bars; None shows them on a terminal only.
    deterministic : bool
    precision : {"auto", "32", "bf16"}
        Compute precision for training and prediction; "auto" uses bfloat16
        mixed precision where the hardware supports it.
    members : int
        Independently trained networks (different initialisation, dropout
        and batch order; the same data) whose probabilities are averaged: a
        deep ensemble, ``members`` times the training time. Member ``j``
        trains with seed ``seed + 1000 j`` (member 0 is the single network
        ``members=1`` trains) and, under ``workdir``, in ``workdir/member<j>``.
    calibrate : bool
        After training, fit a temperature on the validation objects, whole
        and cut to their first nights, as a function of the nights a
        prediction saw (:mod:`deeptao.models.calibration`); every
        object-level probability the model predicts afterwards is
        calibrated by it (``temperature_`` and ``temperature_slope_``, 1.0
        and 0.0 without validation objects). Arg-max and F1 are unchanged.
    prior_shift : bool
        After training, and before the temperature, multiply the
        probabilities by the training class frequencies to a power chosen
        on the validation objects' macro F1
        (:func:`deeptao.models.calibration.choose_prior_power`;
        ``prior_power_``, 0 without validation objects). Undoes what the
        balanced loss weights do to an imbalanced survey; a no-op on a
        balanced one.
    """

    #: registry name, written into saved files so that loading rebuilds the right estimator
    name: ClassVar[str] = ""
    file_suffix = ".pt"
    #: whether prediction in bf16 may run a bfloat16 copy of the network (see _prepare_inference)
    _bf16_inference_copy: ClassVar[bool] = False
    #: whether ``batch_size=None`` means "sized to the training data" (the subclass sizes it)
    _batch_size_from_data: ClassVar[bool] = False
    #: parameters added after files were first saved, with the value a file without them was fitted with
    _defaults_before_recorded: ClassVar[dict[str, Any]] = {}
    #: the calibration temperature of a long sequence (1.0: none), and how much more a short one needs
    #: (``T(n) = temperature_ * exp(temperature_slope_ / sqrt(n))``; 0.0 in files saved before it existed)
    temperature_: float = 1.0
    temperature_slope_: float = 0.0
    #: the training objects' class frequencies, and the power the prior shift raises them to (0: no shift)
    class_prior_: tuple[float, ...] | None = None
    prior_power_: float = 0.0

    def __init__(
        self,
        *,
        max_epochs: int = 20,
        max_time: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        schedule: str = "cosine",
        warmup: float = 0.05,
        label_smoothing: float = 0.0,
        average_decay: float = 0.0,
        patience: int = 5,
        monitor: str = "val_loss",
        class_weight: str | None = "balanced",
        limit_train_batches: int | float | None = None,
        max_objects: int | None = None,
        num_workers: int = 0,
        accelerator: str = "auto",
        devices: int = 1,
        strategy: str = "auto",
        num_nodes: int = 1,
        logger: str = "csv",
        threads: int | None = None,
        progress: bool | None = None,
        deterministic: bool = True,
        precision: str = "auto",
        members: int = 1,
        calibrate: bool = True,
        prior_shift: bool = True,
    ) -> None:
        self.max_epochs = max_epochs
        self.max_time = max_time
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup = warmup
        self.label_smoothing = label_smoothing
        self.average_decay = average_decay
        self.patience = patience
        self.monitor = monitor
        self.class_weight = class_weight
        self.limit_train_batches = limit_train_batches
        self.max_objects = max_objects
        self.num_workers = num_workers
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self.logger = logger
        self.threads = threads
        self.progress = progress
        self.deterministic = deterministic
        self.precision = precision
        self.members = members
        self.calibrate = calibrate
        self.prior_shift = prior_shift

    # ------------------------------------------------------------------ parameters

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters only (never fitted state)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def _check_params(self) -> None:
        for name in ("max_epochs", "batch_size", "eval_batch_size", "devices", "num_nodes"):
            value = getattr(self, name)
            if name == "batch_size" and value is None and self._batch_size_from_data:
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ValueError(f"average_decay must be in [0, 1), got {self.average_decay!r}")
        if self.class_weight not in ("balanced", "none", None):
            raise ValueError(f"class_weight must be 'balanced' or 'none', got {self.class_weight!r}")
        from deeptao.training import LOGGERS

        if self.logger not in LOGGERS:
            raise ValueError(f"logger must be one of {', '.join(LOGGERS)}, got {self.logger!r}")
        if not isinstance(self.members, int) or self.members < 1:
            raise ValueError(f"members must be a positive int, got {self.members!r}")
        if self.max_objects is not None and self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1 or None, got {self.max_objects!r}")

    def _train_config(self) -> TrainConfig:
        from deeptao.training import TrainConfig

        return TrainConfig(
            max_epochs=self.max_epochs,
            max_time=self.max_time,
            patience=self.patience,
            monitor=self.monitor,
            limit_train_batches=self.limit_train_batches,
            accelerator=self.accelerator,
            devices=self.devices,
            strategy=self.strategy,
            num_nodes=self.num_nodes,
            logger=self.logger,
            average_decay=self.average_decay,
            progress=self.progress,
            deterministic=self.deterministic,
            threads=self.threads,
            precision="bf16-mixed" if self._precision() == "bf16" else "32-true",
        )

    # ------------------------------------------------------------------ subclass hooks

    def _build_network(self, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _member(self, n_classes: int) -> nn.Module:
        """One network as trained."""
        # channels-last: the layout oneDNN convolutions run fastest in on CPU
        return self._build_network(n_classes).to(memory_format=torch.channels_last)

    def _network(self, n_classes: int) -> nn.Module:
        """The fitted model's network: one member, or their :class:`MemberAverage`."""
        if self.members == 1:
            return self._member(n_classes)
        return MemberAverage([self._member(n_classes) for _ in range(self.members)])

    def _init_network(self, network: nn.Module) -> None:
        """Set what a fresh network learns from the training data before any step (none by default)."""

    def _precision(self) -> str:
        return resolve_precision(self.precision, self._device())

    def _make_loaders(
        self,
        cache: PreparedCache,
        rows: np.ndarray,
        y: np.ndarray,
        val_rows: np.ndarray | None,
        y_val: np.ndarray | None,
        seed: int,
    ) -> tuple[DataLoader, DataLoader | None, np.ndarray]:
        """Training loader, validation loader, and the labels of the training items."""
        raise NotImplementedError

    def _predict_sources(self, sources: Iterable[Source], n: int) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting

    @staticmethod
    def _check_xy(rows: np.ndarray, y: np.ndarray, n_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64)
        y = np.asarray(y, dtype=np.int64)
        if rows.ndim != 1 or rows.shape != y.shape:
            raise ValueError(f"{what}: rows and y must be 1-D of one length, got {rows.shape} and {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{what}: class indices must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
        return rows, y

    def _fit_with(
        self,
        make_loaders: Any,
        *,
        classes: Sequence[str],
        seed: int,
        workdir: Path | None,
        data_digest: str,
        data_summary: dict[str, Any] | None = None,
    ) -> TorchClassifier:
        """Train ``members`` networks with ``make_loaders(member_seed)``; ``network_`` is the last or their average."""
        self._check_params()
        classes = tuple(str(c) for c in classes)
        networks, results = [], []
        for j in range(self.members):
            member_dir = workdir if workdir is None or self.members == 1 else Path(workdir) / f"member{j}"
            network, result = self._train_member(
                make_loaders, classes=classes, seed=seed + 1000 * j, workdir=member_dir, data_digest=data_digest
            )
            networks.append(network.cpu().eval())
            results.append(result)
        self.fit_results_ = results
        self.fit_result_: FitResult = results[0]
        self.network_ = networks[0] if self.members == 1 else MemberAverage(networks).eval()
        self.classes_ = classes
        # what a model card says of the training (saved with the weights)
        self.training_: dict[str, Any] = {
            **(data_summary or {}),
            "seed": int(seed),
            "members": self.members,
            "data_digest": data_digest,
            "epochs": [r.epochs for r in results] if self.members > 1 else results[0].epochs,
            "monitor": self.monitor,
            "best_score": [r.best_score for r in results] if self.members > 1 else results[0].best_score,
        }
        return self

    def _train_member(
        self,
        make_loaders: Any,
        *,
        classes: tuple[str, ...],
        seed: int,
        workdir: Path | None,
        data_digest: str,
    ) -> tuple[nn.Module, FitResult]:
        from deeptao.training import ClassifierModule, balanced_class_weights, fit_module  # Lightning: only to train

        train_loader, val_loader, y_items = make_loaders(seed)
        with torch.random.fork_rng(devices=[]):  # the initial weights follow the seed; the caller's stream is left alone
            torch.manual_seed(seed)
            network = self._member(len(classes))
            self._init_network(network)
        if len(y_items) == 0:
            raise ValueError("no training items: the training rows hold no images")
        weights = balanced_class_weights(y_items, len(classes)) if self.class_weight == "balanced" else None
        module = ClassifierModule(
            network,
            len(classes),
            lr=self.lr,
            weight_decay=self.weight_decay,
            class_weights=None if weights is None else weights.tolist(),
            schedule=self.schedule,
            warmup=self.warmup,
            label_smoothing=self.label_smoothing,
            pool_items=self._validation_pooling(),
        )
        fingerprint = {
            "model": self.name,
            "params": {k: v for k, v in self.get_params().items() if k not in _RUN_ONLY},
            "classes": list(classes),
            "data": data_digest,
            "seed": int(seed),
            "precision": self._precision(),  # "auto" resolved: bf16 weights do not resume as float32 ones
        }
        result = fit_module(
            module,
            train_loader,
            val_loader,
            config=self._train_config(),
            seed=seed,
            workdir=workdir,
            fingerprint=fingerprint,
        )
        return network, result

    def fit(
        self,
        cache: PreparedCache,
        rows: np.ndarray,
        y: np.ndarray,
        *,
        classes: Sequence[str],
        val_rows: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        seed: int = 0,
        workdir: Path | None = None,
    ) -> TorchClassifier:
        """Train on the objects at ``rows``; validation objects steer model choice and stopping.

        With ``workdir``, an interrupted fit called again with the same data,
        parameters and seed resumes from ``workdir/last.ckpt``.
        """
        rows, y = self._check_xy(rows, y, len(classes), "training")
        rows, y = _stratified_cap(rows, y, self.max_objects, seed)
        if val_rows is not None:
            if y_val is None:
                raise ValueError("val_rows given without y_val")
            val_rows, y_val = self._check_xy(val_rows, y_val, len(classes), "validation")
            val_rows, y_val = _stratified_cap(val_rows, y_val, self.max_objects, seed)
        digest = _digest(cache, rows, y, val_rows, y_val)
        summary = {"objects_per_class": _class_counts(y, classes), "objects_in_cache": len(cache)}
        if val_rows is not None:
            summary["validation_objects_per_class"] = _class_counts(y_val, classes)
        self._fit_with(
            lambda member_seed: self._make_loaders(cache, rows, y, val_rows, y_val, member_seed),
            classes=classes,
            seed=seed,
            workdir=workdir,
            data_digest=digest,
            data_summary=summary,
        )
        self.temperature_, self.temperature_slope_, self.prior_power_ = 1.0, 0.0, 0.0
        counts = np.bincount(y, minlength=len(classes)).astype(float)
        self.class_prior_ = tuple(((counts + 0.5) / (counts + 0.5).sum()).tolist())  # never 0: a class absent from training
        has_val = val_rows is not None and len(val_rows) > 0
        self._after_training(cache, val_rows if has_val else None, y_val if has_val else None)
        if has_val and (self.calibrate or self.prior_shift):
            raw = self.predict_proba(cache, val_rows)  # no shift, no temperature yet
            if self.prior_shift:
                self.prior_power_ = choose_prior_power(raw, y_val, np.asarray(self.class_prior_))
            if self.calibrate:
                prior = np.asarray(self.class_prior_)

                def shifted_arrays(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
                    return shift_to_prior(self._raw_proba_arrays(items), prior, self.prior_power_)

                self.temperature_, self.temperature_slope_ = fit_nights_calibration(
                    cache, val_rows, y_val, shift_to_prior(raw, prior, self.prior_power_), shifted_arrays
                )
        return self

    def _after_training(self, cache: PreparedCache, val_rows: np.ndarray | None, y_val: np.ndarray | None) -> None:
        """Choices made on the validation objects (None: there are none) once the weights are final, before calibration."""

    def _calibrated(self, proba: np.ndarray, nights: np.ndarray) -> np.ndarray:
        """Object-level probabilities after the fitted prior shift and the temperature at each object's ``nights``."""
        prior = None if self.class_prior_ is None else np.asarray(self.class_prior_)
        return calibrate_proba(
            proba, temperature=self.temperature_, temperature_slope=self.temperature_slope_, nights=nights,
            prior=prior, prior_power=self.prior_power_,
        )  # fmt: skip

    # ------------------------------------------------------------------ prediction

    def _device(self) -> torch.device:
        if self.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")

    def _log_proba(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Log-probabilities of one batch of network inputs (after :meth:`_prepare_inference`)."""
        net, cast, autocast = self._predictor
        device = next(net.parameters()).device
        inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if cast:
            inputs = {k: _as_bf16_input(v) for k, v in inputs.items()}
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = net(**inputs)
            return torch.log_softmax(logits.float(), dim=1).cpu().numpy()

    def _log_proba_jobs(self, jobs: Iterable[_Job], make_batch: Callable[[_Job], dict[str, torch.Tensor]]) -> list[np.ndarray]:
        """Log-probabilities of ``make_batch(job)`` for each job, in order (after :meth:`_prepare_inference`)."""
        return [self._log_proba(make_batch(job)) for job in jobs]

    def _validation_pooling(self) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None:
        """How validation pools an object's items during training; None when items are objects."""
        return None

    def _prepare_inference(self) -> None:
        """Pick the network that predicts: the fitted one, or its bfloat16 copy.

        Where the precision is bf16 and the subclass allows it
        (``_bf16_inference_copy``), prediction runs a copy whose weights are
        bfloat16 and channels-last instead of autocasting: the convolutions see
        the same bfloat16 operands, but no weight is cast again at every batch
        and oneDNN gets the layout it is fastest in (about 2x the images per
        second for the seed CNN on a 2-core CPU; ``benchmarks/bench_models.py``).
        """
        self._check_fitted()
        self.network_.to(self._device()).eval()
        bf16 = self._precision() == "bf16"
        if bf16 and self._bf16_inference_copy:
            net = copy.deepcopy(self.network_).to(torch.bfloat16).to(memory_format=torch.channels_last)
            self._predictor = (net, True, False)
        else:
            self._predictor = (self.network_, False, bf16)

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Class probabilities per object, shape ``(len(rows), len(classes_))``."""
        self._prepare_inference()
        rows = np.asarray(rows, dtype=np.int64)
        return self._calibrated(self._predict_sources(cache_sources(cache, rows), len(rows)), cache.night_counts(rows))

    def predict_proba_arrays(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Class probabilities for objects given as ``(images uint16 (n, 64, 64), mjd (n,))`` pairs.

        For images outside any cache, e.g. one FITS file read with
        :func:`deeptao.io.read_object`.
        """
        items = list(items)
        proba = self._raw_proba_arrays(items)
        return self._calibrated(
            proba, np.array([sequence_nights(images, mjd) for images, mjd in items], dtype=np.int64)
        )

    def _raw_proba_arrays(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """:meth:`predict_proba_arrays` before the prior shift and temperature."""
        self._prepare_inference()
        return self._predict_sources(array_sources(items), len(items))

    # ------------------------------------------------------------------ files

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (inside a fused model's file, into workers) without the prediction-time copy of the network."""
        state = self.__dict__.copy()
        state.pop("_predictor", None)
        return state

    def save(self, path: str | Path) -> Path:
        """Write parameters, classes and best weights to one file; see :func:`load_model`."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
        torch.save(
            {
                "format": _FORMAT,
                "version": _FORMAT_VERSION,
                "model": self.name,
                "params": self.get_params(),
                "classes": list(self.classes_),
                "state_dict": state,
                "learned": self._learned_state(),
                "training": getattr(self, "training_", None),
            },
            path,
        )
        return path

    def _learned_state(self) -> dict[str, Any]:
        """Fitted state beside the weights (JSON-like values), saved with them; subclasses add theirs."""
        return {
            "temperature_": float(self.temperature_),
            "temperature_slope_": float(self.temperature_slope_),
            "prior_power_": float(self.prior_power_),
            "class_prior_": None if self.class_prior_ is None else [float(p) for p in self.class_prior_],
        }

    def _restore(self, classes: Sequence[str], state_dict: dict[str, torch.Tensor], learned: dict[str, Any] | None = None) -> None:
        self.classes_ = tuple(classes)
        self.network_ = self._network(len(self.classes_))
        self.network_.load_state_dict(state_dict)
        self.network_.eval()
        for name, value in (learned or {}).items():
            setattr(self, name, value)


def load_model(path: str | Path) -> TorchClassifier:
    """Rebuild a fitted estimator written by :meth:`TorchClassifier.save`.

    Raises
    ------
    ModelFileError
        If the file cannot be read or was not written by ``save``.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise ModelFileError(f"{path}: not a deeptao model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelFileError(f"{path}: not a deeptao model file")
    if payload.get("version") != _FORMAT_VERSION:
        raise ModelFileError(f"{path}: model file version {payload.get('version')!r} is not supported")
    try:
        # the builder directly: create_model would drop parameters saved as None
        estimator = get_model_builder(payload["model"])(**payload["params"])
        for name, value in estimator._defaults_before_recorded.items():  # what a file older than the parameter meant
            if name not in payload["params"]:
                setattr(estimator, name, value)
        estimator._restore(payload["classes"], payload["state_dict"], payload.get("learned"))
        if payload.get("training") is not None:  # absent from files saved before it was recorded
            estimator.training_ = payload["training"]
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: damaged model file ({exc})".splitlines()[0]) from None
    return estimator
