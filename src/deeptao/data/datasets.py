"""Torch datasets over a prepared cache: single images (seed-cnn), or whole objects' nights (taonet).

Pixels stay on disk: a dataset holds the cache or the sequence store
(memory-mapped) and index arrays only, so its memory does not grow with the
survey. A pickled dataset (as DataLoader workers started with ``spawn``
receive it) drops its memory maps; each worker reopens them lazily.

Which items a batch holds, and how each is flipped or thinned, is decided by
the batch samplers below from ``(seed, epoch)`` alone. The datasets are pure
functions of those keys, so an epoch reads the same with any number of
workers, and a resumed run repeats the epochs it would have run.

Single images (the public replication's protocol) are standardised one by one
(:func:`normalize_images`). Sequence networks see the representation of
:mod:`deeptao.data.representation` instead, where one noise scale per object
keeps the relative flux between nights.

Augmentation in training is one of the eight flips/rotations of the square:
the sky has no preferred orientation. Single images each get their own; an
object gets one for all its images, because the cutouts of one object are
aligned on the sky and what moves or changes between them is the signal.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from deeptao.data.inputs import dihedral, night_arrays, normalize_images, pad_nights, usable_positions

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache
    from deeptao.data.representation import SequenceStore

__all__ = [
    "normalize_images",
    "dihedral",
    "ImageDataset",
    "NightDataset",
    "night_arrays",
    "collate_nights",
    "ImageBatchSampler",
    "ObjectBatchSampler",
    "collate_images",
    "passthrough",
    "usable_positions",
    "process_group",
]


def passthrough(batch: Any) -> Any:
    """Collate for datasets whose ``__getitems__`` already returns a batch."""
    return batch


def _labels(y: np.ndarray | None, n: int) -> np.ndarray:
    if y is None:
        return np.full(n, -1, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    return y


class ImageDataset(Dataset):
    """One item per image: ``{"x": (1, 64, 64) float32, "y": int, "owner": int}``.

    Parameters
    ----------
    cache : PreparedCache
    image_rows : array of int
        Rows of ``cache.images``.
    y : array of int, optional
        Class index per item (-1 when unknown).
    owner : array of int, optional
        An id per item returned with it; predictions of items sharing an owner
        are pooled into one (e.g. the position of the image's object).

    Keys for ``__getitems__`` are item positions or ``(position, code)``
    pairs, ``code`` choosing a :func:`dihedral` transform.
    """

    def __init__(
        self,
        cache: PreparedCache,
        image_rows: np.ndarray,
        y: np.ndarray | None = None,
        owner: np.ndarray | None = None,
    ) -> None:
        self.cache = cache
        self.image_rows = np.asarray(image_rows, dtype=np.int64)
        n = len(self.image_rows)
        self.y = _labels(y, n)
        self.owner = np.arange(n, dtype=np.int64) if owner is None else np.asarray(owner, dtype=np.int64)
        if self.owner.shape != (n,):
            raise ValueError(f"owner must have shape ({n},), got {self.owner.shape}")

    def __len__(self) -> int:
        return len(self.image_rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        batch = self.__getitems__([key])
        return {"x": batch["x"][0], "y": int(batch["y"][0]), "owner": int(batch["owner"][0])}

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> dict[str, torch.Tensor]:
        pos, codes = _split_keys(keys)
        cache = self.cache
        raw = cache.image_stack(self.image_rows[pos])
        x = normalize_images(raw)
        for code in np.unique(codes[codes > 0]):
            sel = codes == code
            x[sel] = dihedral(x[sel], int(code))
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x)[:, None]),
            "y": torch.from_numpy(self.y[pos]),
            "owner": torch.from_numpy(self.owner[pos]),
        }


def collate_images(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack single-image items (the ``__getitem__`` path)."""
    return {
        "x": torch.stack([s["x"] for s in samples]),
        "y": torch.as_tensor([s["y"] for s in samples], dtype=torch.int64),
        "owner": torch.as_tensor([s["owner"] for s in samples], dtype=torch.int64),
    }


def _split_keys(keys: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    pos = np.array([k[0] if isinstance(k, tuple) else k for k in keys], dtype=np.int64)
    codes = np.array([k[1] if isinstance(k, tuple) else 0 for k in keys], dtype=np.int64)
    return pos, codes


class NightDataset(Dataset):
    """One item per object: its nights as the sequence networks see them.

    Keys for ``__getitems__`` are object positions, or ``(position, code,
    drop_seed)`` tuples from :class:`ObjectBatchSampler`: ``code`` a
    :func:`dihedral` transform for all of the object's images, ``drop_seed``
    (>= 0) the seed that draws which nights ``night_dropout`` leaves out.

    Parameters
    ----------
    store : SequenceStore
        The cache's representation (:func:`deeptao.data.representation.open_sequences`).
    object_rows : int array
        Rows of the cache's objects.
    y : int array, optional
    features : float array (n, F), optional
        Per-object features handed to the network as ``features`` (taonet-lc).
    night_dropout : float, default=0
        Training only: the chance that each night is left out (one always stays).
    noise : float, default=0
        Training only: Gaussian noise of this many times each night's own noise
        is added to its co-add, so that no two epochs show an object's pixels
        alike and the network cannot learn a field by heart.
    time_crop : float, default=1
        Training only: below 1, each draw keeps one contiguous run of the
        object's nights, its length uniform between this fraction of them and
        all of them, so that the network meets histories cut at either end.
    """

    def __init__(
        self,
        store: SequenceStore,
        object_rows: np.ndarray,
        y: np.ndarray | None = None,
        features: np.ndarray | None = None,
        *,
        night_dropout: float = 0.0,
        noise: float = 0.0,
        time_crop: float = 1.0,
    ) -> None:
        self.store = store
        self.object_rows = np.asarray(object_rows, dtype=np.int64)
        self.y = _labels(y, len(self.object_rows))
        if features is not None:
            features = np.asarray(features, dtype=np.float32)
            if features.shape[0] != len(self.object_rows):
                raise ValueError(f"features has {features.shape[0]} rows for {len(self.object_rows)} objects")
        self.features = features
        if not 0.0 <= night_dropout < 1.0:
            raise ValueError(f"night_dropout must be in [0, 1), got {night_dropout!r}")
        self.night_dropout = float(night_dropout)
        if not noise >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        self.noise = float(noise)
        if not 0.0 < time_crop <= 1.0:
            raise ValueError(f"time_crop must be in (0, 1], got {time_crop!r}")
        self.time_crop = float(time_crop)
        self.lengths = store.lengths[self.object_rows]

    def __len__(self) -> int:
        return len(self.object_rows)

    def _item(self, key: int | tuple[int, int, int]) -> dict[str, Any]:
        pos, code, drop_seed = key if isinstance(key, tuple) else (key, 0, -1)
        obj = self.store.object(int(self.object_rows[pos]))
        keep = None
        if drop_seed >= 0 and len(obj):
            rng = np.random.default_rng(drop_seed)
            n = len(obj)
            if self.time_crop < 1.0 and n > 1:
                # the object as seen over a run of its nights: its reference rebuilt from those alone,
                # as early classification rebuilds it from the first nights
                span = int(rng.integers(max(1, math.ceil(self.time_crop * n)), n + 1))
                start = int(rng.integers(0, n - span + 1))
                obj, n = obj.night_range(start, start + span), span
            if self.night_dropout > 0 and n > 1:
                keep = rng.random(n) >= self.night_dropout
                if not keep.any():
                    keep[rng.choice(n)] = True
            if self.noise > 0:
                extra = rng.standard_normal(obj.coadd.shape, dtype=np.float32)
                extra *= (self.noise * obj.night_noise)[:, None, None]
                obj = dataclasses.replace(obj, coadd=obj.coadd + extra)
        item: dict[str, Any] = night_arrays(obj, int(code), keep, aperture=self.store.settings.aperture)
        item["y"] = int(self.y[pos])
        item["owner"] = int(pos)
        if self.features is not None:
            item["features"] = self.features[pos]
        return item

    def __getitem__(self, key: int | tuple[int, int, int]) -> dict[str, Any]:
        return self._item(key)

    def __getitems__(self, keys: Sequence[int | tuple[int, int, int]]) -> dict[str, torch.Tensor]:
        return collate_nights([self._item(k) for k in keys])


def collate_nights(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad night sequences to the longest in the batch (:func:`deeptao.data.inputs.pad_nights`), as tensors."""
    batch = {name: torch.from_numpy(array) for name, array in pad_nights(items).items()}
    batch["y"] = torch.as_tensor([it.get("y", -1) for it in items], dtype=torch.int64)
    batch["owner"] = torch.as_tensor([it.get("owner", k) for k, it in enumerate(items)], dtype=torch.int64)
    return batch


# --------------------------------------------------------------------------- samplers


def process_group() -> tuple[int, int]:
    """``(rank, world size)`` of torch's default process group; ``(0, 1)`` outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _EpochBatchSampler(Sampler):
    """A batch sampler whose epochs are functions of ``(seed, epoch)``, sharded over the processes of a training.

    Lightning calls ``set_epoch`` before every training epoch. Every process
    draws the same epoch plan and takes every ``world``-th item of it from
    its rank on, so that the processes of a distributed training see
    disjoint items, and the union of their ``k``-th batches is the ``k``-th
    batch a single process with ``world`` times the batch size would see.
    In training, the plan is padded with its first items to a multiple of
    the world size (as ``torch.utils.data.DistributedSampler`` does), since
    every process must take the same number of optimiser steps; in
    evaluation it is not, so that no item is scored twice. Outside a process
    group the sampler is the single-process one.
    """

    #: whether the plan is padded so that every process gets as many items (training)
    _pads_shards: bool = False

    def __init__(self, batch_size: int, *, seed: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _plan(self) -> list[Any]:
        raise NotImplementedError

    def _shard(self, plan: list[Any]) -> list[Any]:
        rank, world = process_group()
        if world == 1:
            return plan
        if self._pads_shards and plan:
            total = math.ceil(len(plan) / world) * world
            plan = (plan * math.ceil(total / len(plan)))[:total]
        return plan[rank::world]

    def _shard_size(self) -> int:
        rank, world = process_group()
        n = self._n_items()
        if world == 1:
            return n
        return math.ceil(n / world) if self._pads_shards and n else len(range(rank, n, world))

    def __iter__(self) -> Iterator[list[Any]]:
        plan = self._shard(self._plan())
        for i in range(0, len(plan), self.batch_size):
            yield plan[i : i + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(self._shard_size() / self.batch_size)

    def _n_items(self) -> int:
        raise NotImplementedError


class ImageBatchSampler(_EpochBatchSampler):
    """Batches of image items, for training (shuffled, augmented) or evaluation (in order).

    Parameters
    ----------
    n_items : int
        Length of the :class:`ImageDataset`.
    batch_size : int
    groups : sequence of int arrays, optional
        Item positions of each object. With ``per_group``, every epoch draws at
        most that many items of each object afresh, so objects with hundreds of
        images do not outweigh those with ten, and an epoch stays short.
    per_group : int, optional
    max_items : int, optional
        At most this many items per epoch: the first ``max_items`` of the
        shuffled draw, a fresh random subset every epoch. It sizes an epoch to
        a fixed number of optimiser steps whatever the survey's size, so that
        validation, early stopping and the learning-rate schedule act as often
        on a million images as on ten thousand.
    shuffle, augment : bool
        Training: shuffle the items and give each a random flip/rotation.
    seed : int
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        *,
        groups: Sequence[np.ndarray] | None = None,
        per_group: int | None = None,
        max_items: int | None = None,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed=seed)
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
        self.n_items = int(n_items)
        self.groups = groups
        self.per_group = per_group
        self.max_items = max_items
        self.shuffle = shuffle
        self.augment = augment
        self._pads_shards = shuffle

    def _n_items(self) -> int:
        if self.groups is not None and self.per_group is not None:
            n = int(sum(min(len(g), self.per_group) for g in self.groups))
        else:
            n = self.n_items
        return n if self.max_items is None else min(n, self.max_items)

    def _plan(self) -> list[Any]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.groups is not None and self.per_group is not None:
            chosen = [
                g if len(g) <= self.per_group else rng.choice(g, self.per_group, replace=False) for g in self.groups
            ]
            items = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        else:
            items = np.arange(self.n_items)
        if self.shuffle:
            items = rng.permutation(items)
        items = items[: self._n_items()]
        if self.augment:
            codes = rng.integers(0, 8, len(items))
            return list(zip(items.tolist(), codes.tolist(), strict=True))
        return items.tolist()


class ObjectBatchSampler(_EpochBatchSampler):
    """Batches of whole objects: shuffled, each with a random flip/rotation and a night-dropout seed, in training.

    Evaluation (``train=False``) gives the objects in order, untransformed.
    A sampler that knows the batch's labels could balance classes here; the
    networks weight the loss instead (:func:`deeptao.training.balanced_class_weights`),
    which keeps every object in every epoch.
    """

    def __init__(self, n_items: int, batch_size: int, *, train: bool = False, seed: int = 0) -> None:
        super().__init__(batch_size, seed=seed)
        self.n_items = int(n_items)
        self.train = train
        self._pads_shards = train

    def _n_items(self) -> int:
        return self.n_items

    def _plan(self) -> list[Any]:
        if not self.train:
            return list(range(self.n_items))
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n_items)
        codes = rng.integers(0, 8, self.n_items)
        drops = rng.integers(0, 2**31 - 1, self.n_items)
        return [(int(p), int(c), int(d)) for p, c, d in zip(order, codes, drops, strict=True)]
