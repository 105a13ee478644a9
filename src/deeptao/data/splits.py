"""Train/validation/test splits that keep every field on one side.

The images of one object are near-duplicates of each other, and a NON object is
cut out of the same exposures as the transient it sits beside. A split that
lets a field appear on both sides measures memory, not classification. So the
unit of splitting is the *group*: a transient's CRTS ID, and for a NON object
the CRTS ID in its header (``cache.objects.group``). Groups are assigned whole,
stratified by class so that rare classes (BZ has 239 objects in the release)
still reach every split.

The ``image`` mode splits images at random, ignoring objects. It reproduces the
leaky protocol of a public replication and exists only to measure that leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = [
    "SPLITS",
    "SPLIT_MODES",
    "DEFAULT_FRACTIONS",
    "split_objects",
    "split_images",
    "split_cache",
    "write_split",
    "read_split",
]

SPLITS = ("train", "val", "test")
SPLIT_MODES = ("object", "image")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)

# When a class has fewer groups than splits, it goes to these splits first:
# a class absent from training cannot be learned, one absent from test cannot be scored.
_SEED_ORDER = (0, 2, 1)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    frac = np.asarray(fractions, dtype=float)
    if frac.shape != (len(SPLITS),):
        raise ValueError(f"fractions must give {len(SPLITS)} numbers (train, val, test), got {fractions!r}")
    if not np.all(np.isfinite(frac)) or np.any(frac < 0) or frac[0] <= 0:
        raise ValueError(f"fractions must be >= 0 with a positive train share, got {fractions!r}")
    if abs(frac.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {frac.sum():g})")
    return frac


def split_objects(
    groups: Sequence[str] | np.ndarray,
    labels: Sequence[str] | np.ndarray,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Assign each object to ``train``, ``val`` or ``test`` with its whole group.

    Parameters
    ----------
    groups : array-like of str, shape (n_objects,)
        Group of each object; objects of one group always share a split.
    labels : array-like of str, shape (n_objects,)
        Class of each object, used for stratification only.
    fractions : three floats, default=(0.70, 0.15, 0.15)
        Target share of each class in train, val and test.
    seed : int, default=0
        The assignment is a deterministic function of the inputs and ``seed``.

    Returns
    -------
    numpy.ndarray of str, shape (n_objects,)
        ``"train"``, ``"val"`` or ``"test"`` per object.

    Notes
    -----
    First, class by class from the class with fewest groups (ties in name
    order), each split with a positive fraction that still lacks the class
    receives one unassigned group holding it (the smallest such group, ties
    broken at random). So a class reaches every split whenever it has at least
    three groups free of the classes seeded before it — in Deep-TAO, where a
    group is one transient and the NON objects cut beside it, every class with
    three groups does. The remaining groups, largest first, each go to the
    split that brings the class counts placed so far closest to the fractions
    (a chi-square-like criterion in which each class weighs by the inverse of
    its size, so rare classes count as much as NON).
    """
    frac = _check_fractions(fractions)
    groups = np.asarray(groups, dtype=object).astype(str)
    labels = np.asarray(labels, dtype=object).astype(str)
    if groups.shape != labels.shape or groups.ndim != 1:
        raise ValueError(f"groups and labels must be 1-D of one length, got {groups.shape} and {labels.shape}")
    n = len(groups)
    if n == 0:
        return np.empty(0, dtype="<U5")

    group_names, group_of = np.unique(groups, return_inverse=True)
    class_names, class_of = np.unique(labels, return_inverse=True)
    n_groups, n_classes, n_splits = len(group_names), len(class_names), len(SPLITS)

    counts = np.zeros((n_groups, n_classes), dtype=float)
    np.add.at(counts, (group_of, class_of), 1.0)
    total = counts.sum(axis=0)
    weight = 1.0 / total
    assigned = np.zeros((n_splits, n_classes), dtype=float)
    split_of_group = np.full(n_groups, -1, dtype=int)

    rng = np.random.default_rng(seed)
    # A random rank per group breaks every tie, so the seed decides among equals.
    rank = rng.permutation(n_groups)
    size = counts.sum(axis=1)

    def give(g: int, s: int) -> None:
        split_of_group[g] = s
        assigned[s] += counts[g]

    # 1. seed every class into every split, rarest class first
    groups_per_class = (counts > 0).sum(axis=0)
    for c in np.lexsort((np.arange(n_classes), groups_per_class)):
        for s in _SEED_ORDER:
            if frac[s] == 0 or assigned[s, c] > 0:
                continue
            free = np.flatnonzero((counts[:, c] > 0) & (split_of_group < 0))
            if len(free) == 0:
                break
            give(free[np.lexsort((rank[free], size[free]))[0]], s)

    # 2. the rest, largest groups first, where the class counts need them most
    rest = np.flatnonzero(split_of_group < 0)
    rest = rest[np.lexsort((rank[rest], -size[rest]))]
    allowed = frac > 0
    seen = assigned.sum(axis=0)
    for g in rest:
        row = counts[g]
        seen += row
        # Targets follow the objects placed so far, so every class stays near
        # its fractions at every step and the groups still to come are not
        # counted on to repair an early imbalance.
        gap = assigned - frac[:, None] * seen[None, :]
        # change in sum_{s,c} w_c gap^2 if g joins split s
        delta = ((2.0 * gap + row) * row * weight).sum(axis=1)
        delta[~allowed] = np.inf
        give(g, int(np.argmin(delta)))

    return np.asarray(SPLITS)[split_of_group[group_of]]


def split_images(
    labels: Sequence[str] | np.ndarray,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Split images at random, stratified by class, ignoring which object they show.

    This is the leaky protocol: neighbouring exposures of one field land on both
    sides. Use it only to measure how much it inflates scores.

    Parameters
    ----------
    labels : array-like of str, shape (n_images,)
        Class of each image (its object's class).
    fractions, seed
        As in :func:`split_objects`.

    Returns
    -------
    numpy.ndarray of str, shape (n_images,)
    """
    frac = _check_fractions(fractions)
    labels = np.asarray(labels, dtype=object).astype(str)
    out = np.empty(len(labels), dtype="<U5")
    rng = np.random.default_rng(seed)
    for name in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == name))
        n_test = int(round(frac[2] * len(idx)))
        n_val = int(round(frac[1] * len(idx)))
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
        out[idx[n_test + n_val :]] = "train"
    return out


def split_cache(
    cache: PreparedCache,
    *,
    mode: str = "object",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Split the objects (``mode="object"``) or images (``mode="image"``) of a cache.

    The split ignores the task, so that 6-class, 5-class and binary runs share
    one partition; a task only drops objects from it.

    Returns
    -------
    object_split : numpy.ndarray of str, shape (len(cache),)
        Per object. In image mode an object whose images fell into several
        splits is ``"mixed"``.
    image_split : numpy.ndarray of str or None
        Per image row of ``cache.images`` in image mode, else None.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {SPLIT_MODES}, got {mode!r}")
    objects = cache.objects
    labels = objects["label"].astype(str).to_numpy()
    if mode == "object":
        return split_objects(objects["group"].to_numpy(), labels, fractions=fractions, seed=seed), None
    owner = cache.images["object"].to_numpy()
    image_split = split_images(labels[owner], fractions=fractions, seed=seed)
    per_object = (
        pd.Series(image_split).groupby(owner).agg(lambda s: s.iloc[0] if s.nunique() == 1 else "mixed")
    )
    object_split = np.full(len(objects), "mixed", dtype="<U5")
    object_split[per_object.index.to_numpy()] = per_object.to_numpy()
    return object_split, image_split


def write_split(
    out_dir: str | Path,
    cache: PreparedCache,
    object_split: np.ndarray,
    image_split: np.ndarray | None = None,
    *,
    name: str = "split.csv",
) -> list[Path]:
    """Write ``split.csv`` (object_id, group, split) and, in image mode, ``split_images.csv``.

    ``name`` renames the object split's file, so that several seeds' splits can
    sit in one folder without one overwriting another.

    ``split_images.csv`` has one row per image: image (row in ``cache.images``),
    object_id, mjd, split.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = cache.objects
    if len(object_split) != len(objects):
        raise ValueError(f"object_split has {len(object_split)} entries for {len(objects)} objects")
    table = pd.DataFrame(
        {"object_id": objects["object_id"].to_numpy(), "group": objects["group"].to_numpy(), "split": object_split}
    )
    written = [out_dir / name]
    table.to_csv(written[0], index=False)
    if image_split is not None:
        images = cache.images
        if len(image_split) != len(images):
            raise ValueError(f"image_split has {len(image_split)} entries for {len(images)} images")
        owner = images["object"].to_numpy()
        per_image = pd.DataFrame(
            {
                "image": np.arange(len(images)),
                "object_id": objects["object_id"].to_numpy()[owner],
                "mjd": images["mjd"].to_numpy(),
                "split": image_split,
            }
        )
        written.append(out_dir / "split_images.csv")
        per_image.to_csv(written[1], index=False)
    return written


def read_split(path: str | Path, object_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Split names per object from a ``split.csv``, in the order of ``object_ids``.

    Raises
    ------
    ValueError
        If the file lacks an object asked for, names one not asked for (it
        was written for another cache) or names an unknown split.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable split table ({' '.join(str(exc).split())})") from None
    missing_cols = {"object_id", "split"} - set(table.columns)
    if missing_cols:
        raise ValueError(f"{path}: missing columns {sorted(missing_cols)}")
    lookup = pd.Series(table["split"].to_numpy(), index=table["object_id"].to_numpy())
    if not lookup.index.is_unique:
        raise ValueError(f"{path}: object_id values repeat")
    ids = pd.Index(np.asarray(object_ids, dtype=object).astype(str))
    missing = ids.difference(lookup.index)
    if len(missing):
        raise ValueError(f"{path}: no split for {len(missing)} objects, e.g. {missing[0]!r}")
    foreign = lookup.index.difference(ids)
    if len(foreign):
        raise ValueError(f"{path}: {len(foreign)} objects are not in the cache, e.g. {foreign[0]!r}")
    out = lookup.reindex(ids).to_numpy().astype(str)
    unknown = set(out) - set(SPLITS) - {"mixed"}
    if unknown:
        raise ValueError(f"{path}: unknown split names {sorted(unknown)}")
    return out
