"""Torch datasets over a prepared cache: one image, or one object's image sequence.

Pixels stay on disk: a dataset holds the cache (memory-mapped) and index
arrays only, so its memory does not grow with the survey. A pickled dataset
(as DataLoader workers started with ``spawn`` receive it) carries the cache,
whose pickling drops its memory maps; each worker reopens them lazily.

Which items a batch holds, and how each is flipped or cropped, is decided by
the batch samplers below from ``(seed, epoch)`` alone. The datasets are pure
functions of those keys, so an epoch reads the same with any number of
workers, and a resumed run repeats the epochs it would have run.

Normalisation works per image: subtract the median, divide by the robust noise
(1.4826 x MAD), compress with asinh. The sky level (~2,000 ADU) and its noise
vary from night to night and field to field; the source, in units of noise,
is what is comparable. A constant (blank) image becomes zeros.

Augmentation in training is one of the eight flips/rotations of the square:
the sky has no preferred orientation. Single images each get their own; a
sequence gets one for all its images, because the cutouts of one object are
aligned on the sky and what moves or changes between them is the signal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = [
    "normalize_images",
    "dihedral",
    "time_gaps",
    "ImageDataset",
    "SequenceDataset",
    "ImageBatchSampler",
    "SequenceBatchSampler",
    "sequence_windows",
    "CROP_MODES",
    "collate_sequences",
    "collate_images",
    "passthrough",
    "usable_positions",
]

_MAD_TO_SIGMA = 1.4826


def normalize_images(images: np.ndarray) -> np.ndarray:
    """Robust per-image standardisation of raw counts, as float32 of the same shape.

    Median and MAD come from every second pixel in each direction (1,024 of
    4,096): as robust as the full image for a 64 x 64 cutout of mostly sky, and
    four times cheaper, which matters at a thousand images per second. When the
    MAD is zero (a flat image with a few distinct pixels) the standard deviation
    stands in; when that is zero too the image is constant and maps to zeros.
    """
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"images must have at least 2 dimensions, got shape {images.shape}")
    shape = images.shape
    flat = images.reshape((-1,) + shape[-2:])
    n = len(flat)
    if n == 0:
        return np.zeros(shape, dtype=np.float32)
    sub = flat[:, ::2, ::2].reshape(n, -1)
    k = sub.shape[1] // 2
    integer = np.issubdtype(sub.dtype, np.integer)
    if np.issubdtype(sub.dtype, np.unsignedinteger):
        # |x - median| in the pixels' own unsigned type: no widening, and partitioning
        # 16-bit values is about twice as fast as 64-bit ones
        med = np.partition(sub, k, axis=1)[:, k]
        m = med[:, None]
        dev = np.maximum(sub, m) - np.minimum(sub, m)
    elif integer:
        med = np.partition(sub, k, axis=1)[:, k].astype(np.int64)
        dev = np.abs(sub.astype(np.int64) - med[:, None])
    else:
        sub = np.nan_to_num(sub.astype(np.float64))
        med = np.partition(sub, k, axis=1)[:, k]
        dev = np.abs(sub - med[:, None])
    scale = _MAD_TO_SIGMA * np.partition(dev, k, axis=1)[:, k].astype(np.float64)
    flat_scale = scale <= 0
    if flat_scale.any():
        scale[flat_scale] = flat[flat_scale].reshape(int(flat_scale.sum()), -1).std(axis=1)
    constant = scale <= 0
    scale[constant] = 1.0
    out = flat.astype(np.float32)
    out -= med.astype(np.float32)[:, None, None]
    out *= (1.0 / scale).astype(np.float32)[:, None, None]
    if not integer:
        np.nan_to_num(out, copy=False)
    np.arcsinh(out, out=out)
    out[constant] = 0.0
    return out.reshape(shape)


def dihedral(images: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes (code 0 is identity).

    The sky has no preferred orientation, so all eight are equally valid views.
    """
    if code & 4:
        images = images[..., ::-1]
    return np.rot90(images, k=code & 3, axes=(-2, -1))


def time_gaps(mjd: np.ndarray) -> np.ndarray:
    """log1p of the days since the previous image (0 for the first), as float32.

    The log keeps minutes within a night (~0.007 d), nights, and seasonal gaps
    (hundreds of days) on one usable scale.
    """
    mjd = np.asarray(mjd, dtype=np.float64)
    gaps = np.diff(mjd, prepend=mjd[:1]) if len(mjd) else mjd
    return np.log1p(np.clip(gaps, 0.0, None)).astype(np.float32)


def usable_positions(blank: np.ndarray) -> np.ndarray:
    """Positions of the non-blank images of one object, or all of them if all are blank."""
    keep = np.flatnonzero(~np.asarray(blank, dtype=bool))
    return keep if len(keep) else np.arange(len(blank))


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


class SequenceDataset(Dataset):
    """One item per object: its images in MJD order, with time gaps.

    Items are ``{"x": (T, 1, 64, 64) float32, "dt": (T,) float32, "length": T,
    "y": int, "owner": int}``; :func:`collate_sequences` pads them. Blank images
    are left out (they carry no light), unless an object has nothing else.

    Keys for ``__getitems__`` are object positions (whole sequence) or tuples
    ``(position, selected, code)``: ``selected`` the ascending positions of the
    images to use among the object's usable ones, ``code`` a :func:`dihedral`
    transform applied to all of them, so the source keeps its place from image
    to image.
    """

    def __init__(
        self,
        cache: PreparedCache,
        object_rows: np.ndarray,
        y: np.ndarray | None = None,
        *,
        drop_blank: bool = True,
    ) -> None:
        self.cache = cache
        self.object_rows = np.asarray(object_rows, dtype=np.int64)
        self.y = _labels(y, len(self.object_rows))
        objects, images = cache.objects, cache.images
        starts = objects["image_start"].to_numpy(np.int64)[self.object_rows]
        counts = objects["n_images"].to_numpy(np.int64)[self.object_rows]
        blank = images["blank"].to_numpy(bool) if drop_blank else np.zeros(len(images), bool)
        mjd = images["mjd"].to_numpy(np.float64)
        keep, offsets = [], [0]
        for s, c in zip(starts, counts, strict=True):
            local = usable_positions(blank[s : s + c])
            keep.append(local)
            offsets.append(offsets[-1] + len(local))
        self._local = np.concatenate(keep) if keep else np.zeros(0, np.int64)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._starts = starts
        self._mjd = mjd[np.repeat(starts, np.diff(self._offsets)) + self._local]
        self.lengths = np.diff(self._offsets)

    def __len__(self) -> int:
        return len(self.object_rows)

    def _item(self, key: int | tuple[int, Any, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            pos, selected, code = key
        else:
            pos, selected, code = key, None, 0
        lo, hi = self._offsets[pos], self._offsets[pos + 1]
        chosen = np.arange(lo, hi) if selected is None else lo + np.asarray(selected, dtype=np.int64)
        if len(chosen) and (chosen[0] < lo or chosen[-1] >= hi):
            raise IndexError(f"object {pos} has {hi - lo} usable images; asked for positions {selected!r}")
        raw = self.cache.object_images(int(self.object_rows[pos]))
        x = normalize_images(raw[self._local[chosen]])
        if code:
            x = dihedral(x, int(code))
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x)[:, None]),
            "dt": torch.from_numpy(time_gaps(self._mjd[chosen])),
            "length": len(chosen),
            "y": int(self.y[pos]),
            "owner": int(pos),
        }

    def __getitem__(self, key: int | tuple[int, Any, int]) -> dict[str, Any]:
        return self._item(key)

    def __getitems__(self, keys: Sequence[int | tuple[int, Any, int]]) -> dict[str, torch.Tensor]:
        return collate_sequences([self._item(k) for k in keys])


def collate_sequences(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad sequences to the longest in the batch; ``lengths`` say where each ends."""
    lengths = torch.as_tensor([s["length"] for s in samples], dtype=torch.int64)
    t_max = max(int(lengths.max()), 1) if len(samples) else 1
    shape = samples[0]["x"].shape[1:] if samples else (1, 64, 64)
    x = torch.zeros((len(samples), t_max, *shape), dtype=torch.float32)
    dt = torch.zeros((len(samples), t_max), dtype=torch.float32)
    for i, s in enumerate(samples):
        x[i, : s["length"]] = s["x"]
        dt[i, : s["length"]] = s["dt"]
    return {
        "x": x,
        "dt": dt,
        "lengths": lengths,
        "y": torch.as_tensor([s["y"] for s in samples], dtype=torch.int64),
        "owner": torch.as_tensor([s["owner"] for s in samples], dtype=torch.int64),
    }


# --------------------------------------------------------------------------- samplers


class _EpochBatchSampler(Sampler):
    """A batch sampler whose epochs are functions of ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every training epoch.
    """

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

    def __iter__(self) -> Iterator[list[Any]]:
        plan = self._plan()
        for i in range(0, len(plan), self.batch_size):
            yield plan[i : i + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(self._n_items() / self.batch_size)

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
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed=seed)
        self.n_items = int(n_items)
        self.groups = groups
        self.per_group = per_group
        self.shuffle = shuffle
        self.augment = augment

    def _n_items(self) -> int:
        if self.groups is not None and self.per_group is not None:
            return int(sum(min(len(g), self.per_group) for g in self.groups))
        return self.n_items

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
        if self.augment:
            codes = rng.integers(0, 8, len(items))
            return list(zip(items.tolist(), codes.tolist(), strict=True))
        return items.tolist()


CROP_MODES = ("subsample", "window")


def sequence_windows(lengths: np.ndarray, max_len: int, mode: str = "subsample") -> list[tuple[int, np.ndarray]]:
    """Fixed selections ``(position, selected)`` of at most ``max_len`` images covering every sequence.

    A sequence longer than ``max_len`` is split into ``n = ceil(L / max_len)``
    selections that together hold every image: in ``"subsample"`` mode the
    interleaved subsets ``k::n`` (each spanning the whole history, as the
    training subsamples do); in ``"window"`` mode contiguous windows spread
    evenly from the first image to the last (overlapping a little when ``L``
    is not a multiple of ``max_len``).
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    out = []
    for pos, length in enumerate(np.asarray(lengths, dtype=np.int64)):
        length = int(length)
        n = max(1, math.ceil(length / max_len))
        if mode == "subsample":
            out.extend((pos, np.arange(k, length, n)) for k in range(n))
        else:
            width = min(length, max_len)
            starts = np.round(np.linspace(0, length - width, n)).astype(int) if n > 1 else [0]
            out.extend((pos, np.arange(s, s + width)) for s in starts)
    return out


class SequenceBatchSampler(_EpochBatchSampler):
    """Batches of image selections from sequences.

    Training (``train=True``): each epoch visits every object once in random
    order; a sequence longer than ``max_len`` is cut to ``max_len`` images —
    a random sorted subset of them (``"subsample"``: the whole history, thinner)
    or a random contiguous window (``"window"``: a stretch of it, complete) —
    with one random flip/rotation per sequence. Evaluation: the fixed
    selections of :func:`sequence_windows`, in order.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        *,
        max_len: int,
        mode: str = "subsample",
        train: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed=seed)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if mode not in CROP_MODES:
            raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_len = int(max_len)
        self.mode = mode
        self.train = train
        self._windows = None if train else sequence_windows(self.lengths, self.max_len, mode)

    def _n_items(self) -> int:
        return len(self.lengths) if self.train else len(self._windows)

    def _plan(self) -> list[Any]:
        if not self.train:
            return [(p, sel, 0) for p, sel in self._windows]
        rng = np.random.default_rng([self.seed, self.epoch])
        plan = []
        for pos in rng.permutation(len(self.lengths)):
            length = int(self.lengths[pos])
            if length <= self.max_len:
                selected = np.arange(length)
            elif self.mode == "subsample":
                selected = np.sort(rng.choice(length, self.max_len, replace=False))
            else:
                start = int(rng.integers(0, length - self.max_len + 1))
                selected = np.arange(start, start + self.max_len)
            plan.append((int(pos), selected, int(rng.integers(0, 8))))
        return plan
