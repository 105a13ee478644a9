"""The arrays a network is fed, built with numpy alone.

The torch datasets (:mod:`deeptao.data.datasets`) wrap these arrays in
tensors for training and prediction; an exported model
(:mod:`deeptao.models.onnx_model`) is fed the very same arrays without torch.
Keeping them here, free of torch, is what lets the two paths agree number for
number.

- single images (seed-cnn): :func:`normalize_images`, one image at a time;
- sequences (taonet, taonet-lc): :func:`night_arrays` per object, from the
  representation of :mod:`deeptao.data.representation`, then
  :func:`pad_nights` per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deeptao.data.representation import SCALAR_NAMES, ObjectNights, SequenceSettings, compress

__all__ = ["normalize_images", "dihedral", "usable_positions", "night_arrays", "pad_nights"]

_MAD_TO_SIGMA = 1.4826


def normalize_images(images: np.ndarray) -> np.ndarray:
    """Robust per-image standardisation of raw counts, as float32 of the same shape.

    Subtract the median, divide by the robust noise (1.4826 x MAD), compress
    with asinh: what the public replication's single-image network is fed. A
    constant (blank) image becomes zeros.

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


def usable_positions(blank: np.ndarray) -> np.ndarray:
    """Positions of the non-blank images of one object, or all of them if all are blank.

    seed-cnn classifies cutouts, not exposures: a duplicate cutout (the same
    exposure from a neighbouring tile, :func:`deeptao.io.counted_exposures`)
    is another view of the sky and stays, as the public replication kept it.
    """
    keep = np.flatnonzero(~np.asarray(blank, dtype=bool))
    return keep if len(keep) else np.arange(len(blank))


def night_arrays(
    obj: ObjectNights, code: int = 0, keep: np.ndarray | None = None, *, aperture: float = SequenceSettings.aperture
) -> dict[str, np.ndarray]:
    """A network's inputs for one object (see :mod:`deeptao.data.representation`).

    ``x`` (T, 2, c, c): the compressed co-add and co-add - reference of each
    night; ``ref`` (1, c, c): the compressed reference; ``scalars`` (T, S),
    the forced photometry in an ``aperture``-pixel radius (the settings the
    representation was built with).
    ``code`` flips/rotates every image of the object alike (:func:`dihedral`);
    ``keep`` selects nights (training's night dropout); a kept night keeps
    its own scalars, its time gap included, which stays the gap to the
    previous night *observed*, dropped or not: so training sees the cadence
    prediction sees. (Gaps recomputed over the kept nights were tried and
    scored lower on ten splits, ``docs/benchmarks.md``.) An object with no
    night gets one empty night, so every object has an input.
    """
    coadd, reference = obj.coadd, obj.reference
    scalars = obj.scalars(aperture)
    if len(coadd) == 0:
        coadd = np.zeros((1, *reference.shape), np.float32)
        scalars = np.zeros((1, len(SCALAR_NAMES)), np.float32)
    if keep is not None and len(obj):
        coadd, scalars = coadd[keep], scalars[keep]
    x = np.stack([compress(coadd), compress(coadd - reference[None])], axis=1)
    ref = compress(reference)[None]
    if code:
        x, ref = dihedral(x, code), dihedral(ref, code)
    return {"x": np.ascontiguousarray(x, np.float32), "ref": np.ascontiguousarray(ref, np.float32), "scalars": scalars}


def pad_nights(items: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A batch of :func:`night_arrays` items, night sequences zero-padded to the longest.

    ``x`` (B, T, 2, c, c), ``ref`` (B, 1, c, c), ``scalars`` (B, T, S) float32;
    ``lengths`` (B,) int64 says where each object's nights end; ``features``
    (B, F) float32 when the items carry them.
    """
    if not items:
        raise ValueError("need at least one item to pad")
    lengths = np.array([len(it["x"]) for it in items], dtype=np.int64)
    t_max = int(lengths.max())
    first = items[0]
    x = np.zeros((len(items), t_max, *first["x"].shape[1:]), np.float32)
    scalars = np.zeros((len(items), t_max, first["scalars"].shape[1]), np.float32)
    for i, it in enumerate(items):
        x[i, : lengths[i]] = it["x"]
        scalars[i, : lengths[i]] = it["scalars"]
    batch = {"x": x, "ref": np.stack([it["ref"] for it in items]).astype(np.float32, copy=False), "scalars": scalars, "lengths": lengths}
    if "features" in first:
        batch["features"] = np.stack([it["features"] for it in items]).astype(np.float32)
    return batch
