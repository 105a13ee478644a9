"""Training a network with Lightning: the loss and optimiser live here, not in the model.

A model file defines a plain :class:`torch.nn.Module`; :class:`ClassifierModule`
wraps it with a class-weighted cross-entropy, AdamW with a warm-up and cosine
schedule, and an object-level validation macro F1 (predictions of the items
one object contributed are pooled first, by the rule the model hands in as
``pool_items``; during training that is a cheaper view than at test time: one
view of each object for taonet; for seed-cnn, the mean over a fixed, evenly
spaced set of ``images_per_object`` images, 8 by default).
:func:`fit_module` runs the Trainer with the habits the study needs:

- model selection and early stopping on the validation set only;
- ``workdir/last.ckpt`` after every epoch, and automatic resumption from it
  when the same training (same fingerprint) is started again; a training that
  ran to its end (early stop, ``max_epochs`` or ``max_time``) is recorded in
  ``workdir/finished.json`` and, started again, only loads its weights
  (Lightning would otherwise train one more epoch past an early stop);
- training curves in ``workdir/logs/version_*/metrics.csv`` (:func:`read_metrics`
  joins the runs of an interrupted training);
- a seed that fixes the run; CPU by default, a GPU when one is present;
- several processes (devices, nodes) through Lightning's strategies: the
  batch samplers of :mod:`deeptao.data.datasets` shard themselves by rank,
  validation gathers every rank's items before scoring, and only the main
  process (:func:`is_main_process`) writes files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from sklearn.metrics import f1_score
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.data import DataLoader

__all__ = [
    "TrainConfig",
    "ClassifierModule",
    "FitResult",
    "fit_module",
    "read_metrics",
    "balanced_class_weights",
    "TrainingResumeWarning",
    "is_main_process",
    "uses_gpu",
    "LOGGERS",
]

#: experiment loggers: CSV always (``read_metrics`` reads it), TensorBoard on request
LOGGERS = ("csv", "tensorboard")

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
_FINGERPRINT = "fingerprint.json"
#: one line per epoch when no progress bar is drawn; the library adds no handler, the command line does
EPOCH_LOG = logging.getLogger("deeptao.training")
_FINISHED = "finished.json"
_NOT_INPUTS = ("y", "owner")


class TrainingResumeWarning(UserWarning):
    """A checkpoint in the work directory belongs to another training and is ignored."""


@dataclass(frozen=True)
class TrainConfig:
    """How long and how a network trains; model-independent, one source for CLI flags.

    Attributes
    ----------
    max_epochs : int
    max_time : str or None
        Wall-clock cap, ``"DD:HH:MM:SS"``. A run stopped by it depends on the
        machine's speed, so it is a safety net, not a schedule.
    patience : int
        Validation epochs without improvement before stopping.
    monitor : str
        ``"val_loss"`` (minimised; the default: on a few hundred validation
        objects the loss is a far steadier guide than macro F1) or
        ``"val_f1"`` (object-level macro F1, maximised).
    limit_train_batches, limit_val_batches : int, float or None
        Batches per epoch (int) or share of them (float); None for all.
    accelerator : str
        ``"auto"`` picks a GPU when present, else the CPU.
    progress : bool or None
        Progress bars; None shows them only on a terminal.
    deterministic : bool
        Ask torch for deterministic algorithms (warn where none exist).
    threads : int or None
        torch intra-op threads during training; None leaves torch's choice.
    precision : str
        Lightning precision, e.g. ``"32-true"`` or ``"bf16-mixed"``.
    devices : int
        Processes per node (CPU) or accelerators per node (GPU).
    strategy : str
        Lightning strategy: ``"auto"`` (one device), ``"ddp"`` (one process
        per device; the CPU backend is gloo), ``"ddp_spawn"``, ...
    num_nodes : int
        Machines taking part; each runs ``devices`` processes.
    logger : {"csv", "tensorboard"}
        ``"tensorboard"`` writes TensorBoard event files under ``logs/`` as
        well as the CSV (needs the ``tensorboard`` extra).
    average_decay : float
        Above 0, validation, checkpoints and the final network use an
        exponential moving average of the weights (and batch-norm
        statistics) over the optimiser steps, with this decay per step;
        0 keeps the weights as the last step left them.
    """

    max_epochs: int = 20
    max_time: str | None = None
    patience: int = 5
    monitor: str = "val_loss"
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    accelerator: str = "auto"
    progress: bool | None = None
    deterministic: bool = True
    threads: int | None = None
    precision: str = "32-true"
    devices: int = 1
    strategy: str = "auto"
    num_nodes: int = 1
    logger: str = "csv"
    average_decay: float = 0.0


def uses_gpu(accelerator: str) -> bool:
    """Whether training under Lightning's ``accelerator`` runs on GPUs: asked for, or ``"auto"`` with one present."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def is_main_process() -> bool:
    """Whether this process is global rank 0 of its launch, judged from the launcher's environment.

    Readable before any process group exists (a process started by
    Lightning, ``torchrun`` or ``srun`` knows its rank from its environment
    at once), so that files outside Lightning's checkpoints, such as the
    resolved configuration or the saved model, are written once.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return int(os.environ["SLURM_PROCID"]) == 0
    return all(int(os.environ.get(key, "0")) == 0 for key in ("LOCAL_RANK", "NODE_RANK"))


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k * count_c)``, as scikit-learn's "balanced"; a class absent from ``y`` gets 0.

    Weighting the loss lets every class matter equally in training while the
    data (and so evaluation) keep their natural proportions.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


class ClassifierModule(L.LightningModule):
    """Owns the loss, the optimiser, its schedule and the validation metrics of a classification network.

    Parameters
    ----------
    network : nn.Module
        Called with the batch's inputs as keywords (every key except ``y`` and
        ``owner``); returns logits ``(batch, n_classes)``.
    n_classes : int
    lr, weight_decay : float
        AdamW settings (peak learning rate).
    class_weights : sequence of float, optional
        Cross-entropy weight per class (training and validation loss).
    schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: a linear warm-up over the first ``warmup`` share of all
        optimiser steps, then a cosine decay to zero at the last step. A few
        hundred steps at a constant rate end wherever the last noisy step
        left the weights; the decay lets them settle.
    warmup : float, default=0.05
    label_smoothing : float, default=0
        Training loss only: the target puts this much probability evenly on
        all classes, which tempers overconfidence when some labels are wrong
        (the release's classes come from follow-up that is sometimes unsure);
        validation loss, which model selection reads, is the cross-entropy
        without smoothing (class-weighted like the training loss).
    pool_items : callable, optional
        ``pool_items(log_proba, owner, n_owners) -> proba`` turns the
        validation items' log-probabilities into one prediction per object;
        None when every item is an object.
    """

    def __init__(
        self,
        network: nn.Module,
        n_classes: int,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weights: Sequence[float] | None = None,
        schedule: str = "cosine",
        warmup: float = 0.05,
        label_smoothing: float = 0.0,
        pool_items: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must be in [0, 1), got {warmup!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.save_hyperparameters(ignore=["network", "pool_items"])
        self.network = network
        self.pool_items = pool_items
        weights = torch.ones(n_classes) if class_weights is None else torch.as_tensor(class_weights)
        self.register_buffer("class_weights", weights.to(torch.float32), persistent=False)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.network(**{k: v for k, v in batch.items() if k not in _NOT_INPUTS})

    def _common_step(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits.float(), batch["y"], weight=self.class_weights, label_smoothing=smoothing)
        self.log(
            f"{stage}_loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["y"]),
            sync_dist=True,
        )
        return loss, logits

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        # wall time of the epoch's training steps (validation excluded): the throughput figure at scale
        seconds = time.perf_counter() - getattr(self, "_epoch_started", time.perf_counter())
        self.log("train_epoch_seconds", seconds, reduce_fx="max", sync_dist=True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, "train")[0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, logits = self._common_step(batch, "val")
        self._val_outputs.append(
            (F.log_softmax(logits.float(), dim=1).cpu(), batch["y"].cpu(), batch["owner"].cpu())
        )

    def on_validation_epoch_end(self) -> None:
        log_proba, y, owner = self._gathered_outputs()
        if not len(y):
            return
        owners, index = np.unique(owner, return_inverse=True)
        y_owner = np.zeros(len(owners), dtype=np.int64)
        y_owner[index] = y
        if self.pool_items is None:
            proba = np.zeros((len(owners), log_proba.shape[1]))
            proba[index] = np.exp(log_proba)
        else:
            proba = self.pool_items(log_proba, index, len(owners))
        f1 = f1_score(
            y_owner,
            proba.argmax(axis=1),
            labels=np.arange(self.hparams.n_classes),
            average="macro",
            zero_division=0,
        )
        self.log("val_f1", float(f1), prog_bar=True, sync_dist=True)  # the same on every rank (gathered)

    def _gathered_outputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's validation ``(log_proba, y, owner)`` from every process, so that all score all objects alike."""
        n_classes = int(self.hparams.n_classes)
        if self._val_outputs:
            parts = tuple(torch.cat(p).numpy() for p in zip(*self._val_outputs, strict=True))
        else:
            parts = (np.zeros((0, n_classes), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._val_outputs.clear()
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, parts)
            parts = tuple(np.concatenate(column) for column in zip(*gathered, strict=True))
        return parts  # type: ignore[return-value]

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.schedule == "constant":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = max(1, int(round(self.hparams.warmup * total)))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@dataclass(frozen=True)
class FitResult:
    """What a training left behind.

    ``best_checkpoint`` is None without validation data (the final weights
    are then the result).
    """

    workdir: Path | None
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    resumed: bool
    epochs: int
    global_step: int
    best_score: float | None
    main_process: bool = True
    world_size: int = 1


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence Lightning's chatter (device banners, worker hints) for library use."""
    with warnings.catch_warnings():
        for message in (
            ".*does not have many workers.*",
            ".*exists and is not empty.*",
            ".*is smaller than the logging interval.*",
            ".*`training_step` returned `None`.*",
            ".*Checkpoint directory.*exists and is not empty.*",
            ".*isinstance.treespec, LeafSpec.*",
            ".*have no `val_dataloader`.*",
        ):
            warnings.filterwarnings("ignore", message=message)
        loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
        levels = [lg.level for lg in loggers]
        if enabled:
            for lg in loggers:
                lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _finished_record(workdir: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """What a training of this fingerprint that ran to its end left in ``workdir/finished.json``; None if none did."""
    try:
        record = json.loads((workdir / _FINISHED).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        return None
    return record


def _fingerprint_matches(workdir: Path, fingerprint: dict[str, Any]) -> bool:
    path = workdir / _FINGERPRINT
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(fingerprint))
    except (OSError, ValueError):
        return False


@dataclass
class _CallerState:
    """What a fit changes for the whole process, read before it and put back after it.

    Lightning's Trainer switches torch's deterministic mode and, with it, sets
    ``CUBLAS_WORKSPACE_CONFIG``; ``seed_everything`` reseeds the global
    ``random``, numpy and torch generators and sets ``PL_GLOBAL_SEED`` and
    ``PL_SEED_WORKERS``; ``threads`` sets torch's thread count. A caller who
    seeded numpy before a fit gets its stream back where it was, as if the
    fit had drawn nothing from it.
    """

    threads: int
    deterministic: tuple[bool, bool]
    cudnn_benchmark: bool
    rng: tuple[Any, Any, torch.Tensor, list[torch.Tensor] | None]
    environ: dict[str, str | None]

    _ENV = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")

    @classmethod
    def snapshot(cls) -> _CallerState:
        import random

        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(
            threads=torch.get_num_threads(),
            deterministic=(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            rng=(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda),
            environ={name: os.environ.get(name) for name in cls._ENV},
        )

    def restore(self) -> None:
        import random

        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic[0], warn_only=self.deterministic[1])
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        py, np_state, cpu, cuda = self.rng
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for name, value in self.environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fit_module(
    module: ClassifierModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    workdir: str | Path | None = None,
    fingerprint: dict[str, Any] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> FitResult:
    """Train ``module`` and leave its network holding the best validation weights.

    Parameters
    ----------
    module : ClassifierModule
    train_loader, val_loader : DataLoader
        Validation steers checkpoint choice and early stopping; the test set
        must never be passed here.
    config : TrainConfig
    seed : int
        Seeds Python, numpy and torch (and DataLoader workers).
    workdir : path, optional
        Receives ``last.ckpt``, ``best.ckpt``, ``fingerprint.json`` and
        ``logs/``. If ``last.ckpt`` is there and ``fingerprint.json`` matches
        ``fingerprint``, training resumes from it; a fingerprint that differs
        (the networks' include ``max_epochs``, which sizes the schedule) starts
        afresh. None trains in a temporary directory.
    fingerprint : dict, optional
        JSON-serialisable description of everything that makes a training
        itself (data, network, optimiser, seed); a checkpoint made under
        another fingerprint is ignored with a :class:`TrainingResumeWarning`.
    callbacks : sequence of lightning.Callback
        Extra side effects (figures, sample dumps), run after checkpointing
        and early stopping.

    Returns
    -------
    FitResult
    """
    if config.monitor not in ("val_f1", "val_loss"):
        raise ValueError(f"monitor must be 'val_f1' or 'val_loss', got {config.monitor!r}")
    if config.max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {config.max_epochs}")
    if config.logger not in LOGGERS:
        raise ValueError(f"logger must be one of {', '.join(LOGGERS)}, got {config.logger!r}")
    main = is_main_process()
    fingerprint = {} if fingerprint is None else fingerprint
    progress = sys.stderr.isatty() if config.progress is None else bool(config.progress)
    mode = "max" if config.monitor == "val_f1" else "min"

    with contextlib.ExitStack() as stack:
        if workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deeptao-train-")))
        else:
            work = Path(workdir)
            work.mkdir(parents=True, exist_ok=True)
        stack.enter_context(_quiet(not progress))
        last = work / LAST_CHECKPOINT
        resume = last.is_file() and _fingerprint_matches(work, fingerprint)
        if last.is_file() and not resume and main:
            warnings.warn(
                f"{last}: made by a different training; starting afresh and overwriting it",
                TrainingResumeWarning,
                stacklevel=2,
            )
            for stale in (last, work / BEST_CHECKPOINT, work / _FINISHED):
                stale.unlink(missing_ok=True)
        has_val = val_loader is not None and len(val_loader) > 0
        finished = _finished_record(work, fingerprint) if resume else None
        if finished is not None:
            return _finished_result(module, work, finished, has_val=has_val, keep=workdir is not None)
        if main:
            (work / _FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
            (work / _FINISHED).unlink(missing_ok=True)

        # Two checkpoints: Lightning refreshes a monitored callback's ``save_last``
        # only when the score improves, which would resume from a stale epoch.
        # The unmonitored one rewrites last.ckpt after every epoch; it comes
        # second so that it records the best checkpoint's state of that epoch.
        best_checkpoint = ModelCheckpoint(
            dirpath=work,
            filename=BEST_CHECKPOINT.removesuffix(".ckpt"),
            monitor=config.monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,
        )
        last_checkpoint = ModelCheckpoint(
            dirpath=work, filename=LAST_CHECKPOINT.removesuffix(".ckpt"), save_top_k=1, enable_version_counter=False
        )
        all_callbacks: list[L.Callback] = []
        if has_val:
            all_callbacks += [best_checkpoint, EarlyStopping(monitor=config.monitor, mode=mode, patience=config.patience)]
        all_callbacks.append(last_checkpoint)
        if config.average_decay > 0:
            all_callbacks.append(WeightAveraging(multi_avg_fn=get_ema_multi_avg_fn(config.average_decay)))
        if not progress:
            all_callbacks.append(_EpochLog())
        all_callbacks.extend(callbacks)
        n_batches = len(train_loader)
        if isinstance(config.limit_train_batches, int):
            n_batches = min(n_batches, config.limit_train_batches)
        on_gpu = uses_gpu(config.accelerator)
        # Building the Trainer already switches torch's deterministic mode, so the caller's
        # settings are read before it and put back after the fit.
        caller = _CallerState.snapshot()
        trainer = L.Trainer(
            # batch statistics over the global batch, as one process would see them; torch
            # synchronises batch norm on accelerators only, so on CPU each process normalises its own batch
            sync_batchnorm=on_gpu and config.devices * config.num_nodes > 1,
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            # the batch samplers shard themselves by rank (deeptao.data.datasets)
            use_distributed_sampler=False,
            max_epochs=config.max_epochs,
            max_time=config.max_time,
            limit_train_batches=config.limit_train_batches,
            limit_val_batches=config.limit_val_batches,
            callbacks=all_callbacks,
            logger=_loggers(work, config.logger),
            log_every_n_steps=max(1, min(50, n_batches)),
            enable_progress_bar=progress,
            enable_model_summary=progress,
            num_sanity_val_steps=0,
            deterministic="warn" if config.deterministic else None,
            precision=config.precision,
            default_root_dir=work,
        )
        L.seed_everything(seed, workers=True, verbose=False)
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            trainer.fit(
                module,
                train_dataloaders=train_loader,
                val_dataloaders=val_loader if has_val else None,
                ckpt_path=str(last) if resume else None,
            )
        finally:
            caller.restore()

        best = Path(best_checkpoint.best_model_path) if has_val and best_checkpoint.best_model_path else None
        if best is not None and best.is_file():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        score = best_checkpoint.best_model_score if has_val else None
        keep = workdir is not None
        result = FitResult(
            workdir=work if keep else None,
            best_checkpoint=best if keep and best is not None and best.is_file() else None,
            last_checkpoint=last if keep and last.is_file() else None,
            resumed=resume,
            epochs=int(trainer.current_epoch),
            global_step=int(trainer.global_step),
            best_score=None if score is None else float(score),
            main_process=bool(trainer.is_global_zero),
            world_size=int(trainer.world_size),
        )
        if keep and main and not trainer.interrupted:  # Lightning returns from fit on Ctrl-C: not an end
            record = {"fingerprint": fingerprint, "epochs": result.epochs, "global_step": result.global_step}
            record |= {"best_score": result.best_score, "world_size": result.world_size}
            tmp = work / (_FINISHED + ".tmp")
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
            tmp.replace(work / _FINISHED)
        return result


class _EpochLog(L.Callback):
    """An INFO line on :data:`EPOCH_LOG` after each epoch: losses, validation F1, seconds.

    For runs whose progress bar is off (a batch job, output to a file), which
    would otherwise be silent for the whole fit. Nothing shows unless the
    caller gives the logger a handler, as ``deeptao``'s command line does.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not EPOCH_LOG.isEnabledFor(logging.INFO):
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for key, label in (("train_loss_epoch", "train loss"), ("val_loss", "validation loss"), ("val_f1", "validation F1")):
            if key in metrics:
                parts.append(f"{label} {float(metrics[key]):.3f}")
        EPOCH_LOG.info("%s (%.0f s)", ", ".join(parts), time.perf_counter() - self._started)


def _finished_result(module: ClassifierModule, work: Path, record: dict[str, Any], *, has_val: bool, keep: bool) -> FitResult:
    """The weights and the result of a training that ran to its end, without training: see :func:`fit_module`."""
    best, last = work / BEST_CHECKPOINT, work / LAST_CHECKPOINT
    source = best if has_val and best.is_file() else last
    module.load_state_dict(torch.load(source, map_location="cpu", weights_only=True)["state_dict"])
    return FitResult(
        workdir=work if keep else None,
        best_checkpoint=best if keep and has_val and best.is_file() else None,
        last_checkpoint=last if keep else None,
        resumed=True,
        epochs=int(record["epochs"]),
        global_step=int(record["global_step"]),
        best_score=record["best_score"],
        main_process=is_main_process(),
        world_size=int(record["world_size"]),
    )


def _loggers(work: Path, logger: str) -> list[Any]:
    """CSV always, in ``logs/version_*``; TensorBoard event files beside it in the same version folder."""
    loggers: list[Any] = [CSVLogger(save_dir=work, name="logs")]
    if logger == "tensorboard":
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=work, name="logs", version=loggers[0].version, default_hp_metric=False))
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
            raise ValueError(f"logger 'tensorboard' needs the tensorboard package: pip install 'deeptao[tensorboard]' ({exc})") from None
    return loggers


def read_metrics(workdir: str | Path) -> pd.DataFrame:
    """Training curves of every run in ``workdir`` (one per resumption), oldest first.

    Columns are Lightning's (``epoch``, ``step``, ``train_loss_step``,
    ``train_loss_epoch``, ``train_epoch_seconds``, ``val_loss``, ``val_f1``)
    plus ``run`` (the log version). Raises FileNotFoundError if no run logged anything.
    """
    paths = sorted(
        Path(workdir, "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1])
    )
    frames = [pd.read_csv(p).assign(run=int(p.parent.name.split("_")[-1])) for p in paths]
    if not frames:
        raise FileNotFoundError(f"{Path(workdir) / 'logs'}: no metrics.csv from a training run")
    return pd.concat(frames, ignore_index=True)

