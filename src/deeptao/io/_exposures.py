"""The rules that say which exposures of an object count, and which night each belongs to.

One place for them, because the reader, the light curves, the networks'
input representation and prediction on loose files must agree image for
image: a file scored through the cache and the same file scored on its own
must see the same exposures.

- A *blank* image is constant (zero variance): a cutout the pipeline lost.
- A *duplicate* is a second cutout of one exposure (the same MJD again, from a
  neighbouring tile); it adds no new light. Of an exposure's cutouts the first
  that is not blank is kept, so a lost cutout never takes its twin with it.
- A *night* is a chain of exposures less than ``night_gap`` days apart. CRTS
  visits a field about four times within an hour; consecutive nights are at
  least half a day apart, so a gap rule needs no site longitude.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["blank_images", "duplicate_exposures", "counted_exposures", "count_nights", "sequence_nights", "assign_nights", "order_exposures", "order_objects", "first_nights", "NIGHT_GAP_DAYS"]

#: exposures closer than this many days (chained) make one night
NIGHT_GAP_DAYS = 0.5


def blank_images(images: np.ndarray) -> np.ndarray:
    """True for each image of a stack ``(n, H, W)`` whose pixels are all equal."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be a stack (n, height, width), got shape {images.shape}")
    if len(images) == 0:
        return np.zeros(0, dtype=bool)
    flat = images.reshape(len(images), -1)
    return flat.min(axis=1) == flat.max(axis=1)


def duplicate_exposures(mjd: np.ndarray, blank: np.ndarray | None = None) -> np.ndarray:
    """True for each cutout (``mjd`` ascending) of an exposure that another of its cutouts stands for.

    Of the cutouts sharing an MJD, the first that is not ``blank`` is kept
    (the first of them if all are blank) and the others are duplicates.
    Without ``blank``, the first cutout is kept.
    """
    mjd = np.asarray(mjd, dtype=np.float64)
    n = mjd.size
    blank = np.zeros(n, dtype=bool) if blank is None else np.asarray(blank, dtype=bool)
    if blank.shape != mjd.shape:
        raise ValueError(f"blank has shape {blank.shape}, expected {mjd.shape}")
    if n == 0:
        return np.zeros(0, dtype=bool)
    exposure = np.cumsum(np.r_[True, mjd[1:] != mjd[:-1]])  # cutouts of one exposure share a number
    # each exposure's cutouts, non-blank first, in file order within each (lexsort is stable);
    # the first of each exposure is the one kept
    order = np.lexsort((blank, exposure))
    duplicate = np.ones(n, dtype=bool)
    duplicate[order[np.r_[True, exposure[order][1:] != exposure[order][:-1]]]] = False
    return duplicate


def counted_exposures(blank: np.ndarray, duplicate: np.ndarray) -> np.ndarray:
    """True for each image that counts as an exposure: neither blank nor a duplicate cutout.

    Every consumer (early classification's night count, the networks'
    representation, the light curves) selects exposures by this rule, then
    applies its own test of what it can measure (an aperture off the chip).
    """
    blank, duplicate = np.asarray(blank, dtype=bool), np.asarray(duplicate, dtype=bool)
    if blank.shape != duplicate.shape:
        raise ValueError(f"blank {blank.shape} and duplicate {duplicate.shape} flags must have one value per image")
    return ~blank & ~duplicate


def assign_nights(mjd: np.ndarray, night_gap: float = NIGHT_GAP_DAYS) -> np.ndarray:
    """Night index (0, 1, ...) of each exposure, ``mjd`` ascending: a gap over ``night_gap`` days starts a night."""
    mjd = np.asarray(mjd, dtype=np.float64)
    if mjd.size and np.any(np.diff(mjd) < 0):
        raise ValueError("mjd must be in ascending order to assign nights")
    if mjd.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(np.diff(mjd) > night_gap)]).astype(np.int64)


def order_exposures(images: np.ndarray, mjd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images given loose, put in MJD order (stable) and flagged as the reader flags them.

    Returns ``(images, mjd, blank, duplicate)``.

    Raises
    ------
    ValueError
        If ``images`` is not ``(n, H, W)``, ``mjd`` does not have one value per
        image, or an MJD is not finite (the file reader drops such images; an
        array handed in directly would put them in a night of their own making).
    """
    images = np.asarray(images)
    mjd = np.asarray(mjd, dtype=np.float64)
    if images.ndim != 3 or mjd.shape != (len(images),):
        raise ValueError(f"need images (n, H, W) and mjd (n,), got {images.shape} and {mjd.shape}")
    if not np.isfinite(mjd).all():
        raise ValueError(f"{int((~np.isfinite(mjd)).sum())} of {len(mjd)} MJDs are not finite")
    order = np.argsort(mjd, kind="stable")
    images, mjd = images[order], mjd[order]
    blank = blank_images(images)
    return images, mjd, blank, duplicate_exposures(mjd, blank)


def order_objects(
    items: Iterable[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`order_exposures` of each ``(images, mjd)`` pair; an error names the object by its position.

    Raises
    ------
    ValueError
        ``"object k: ..."`` for the first pair that is not ``(n, H, W)`` images with one MJD each.
    """
    for k, (images, mjd) in enumerate(items):
        try:
            ordered = order_exposures(images, mjd)
        except ValueError as exc:
            raise ValueError(f"object {k}: {exc}") from None
        yield ordered


def count_nights(mjd: np.ndarray, blank: np.ndarray, duplicate: np.ndarray, night_gap: float = NIGHT_GAP_DAYS) -> int:
    """Nights with at least one exposure that counts (:func:`counted_exposures`), ``mjd`` ascending."""
    mjd = np.asarray(mjd, dtype=np.float64)[counted_exposures(blank, duplicate)]
    return int(assign_nights(mjd, night_gap)[-1]) + 1 if mjd.size else 0


def sequence_nights(images: np.ndarray, mjd: np.ndarray, night_gap: float = NIGHT_GAP_DAYS) -> int:
    """:func:`count_nights` of images given loose (any order; blank and duplicate cutouts found as the reader finds them)."""
    _, mjd, blank, duplicate = order_exposures(images, mjd)
    return count_nights(mjd, blank, duplicate, night_gap)


def first_nights(
    images: np.ndarray, mjd: np.ndarray, nights: int, night_gap: float = NIGHT_GAP_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """The exposures of an object as known after its first ``nights`` nights, in MJD order.

    Nights are counted over the exposures that count (not blank, not a
    duplicate), as every model sees them; blank or duplicate images inside that
    time stay (the models skip them anyway), later exposures go. Early
    classification scores a model on these.

    Returns ``(images, mjd)``.
    """
    if not isinstance(nights, (int, np.integer)) or nights < 1:
        raise ValueError(f"need at least one night, got {nights!r}")
    images, mjd, blank, duplicate = order_exposures(images, mjd)
    usable = np.flatnonzero(counted_exposures(blank, duplicate))
    if usable.size == 0:
        return images, mjd
    night = assign_nights(mjd[usable], night_gap)
    if night[-1] < nights:
        return images, mjd
    last = mjd[usable[np.searchsorted(night, nights) - 1]]
    keep = mjd <= last
    return images[keep], mjd[keep]
