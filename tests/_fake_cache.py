"""An in-memory stand-in for PreparedCache with the documented attributes, and toy surveys.

Only the attributes the models and datasets use: ``root``, ``len()``,
``objects`` (object_id, label, group, n_images, n_blank, image_start),
``images`` (object, mjd, blank, duplicate), ``object_images(i)``, ``image(j)``,
``labels_array()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SKY = 2000.0
NOISE = 20.0


class FakeCache:
    def __init__(self, objects: list[tuple[str, str, np.ndarray, np.ndarray]], root: Path | None = None) -> None:
        """``objects``: (label, group, images uint16 (n,64,64), mjd (n,)) per object."""
        self.root = root
        rows, image_rows, stacks = [], [], []
        start = 0
        for i, (label, group, images, mjd) in enumerate(objects):
            order = np.argsort(mjd, kind="stable")
            images, mjd = images[order], np.asarray(mjd, dtype=np.float64)[order]
            flat = images.reshape(len(images), -1)
            blank = flat.min(axis=1) == flat.max(axis=1)
            rows.append(
                dict(
                    object_id=f"obj{i:04d}",
                    label=label,
                    group=group,
                    crts_id=group,
                    n_images=len(images),
                    n_blank=int(blank.sum()),
                    path=f"/fake/obj{i:04d}.fits",
                    image_start=start,
                )
            )
            image_rows.append(
                pd.DataFrame(
                    dict(object=i, mjd=mjd, hdu_ext=np.arange(2, len(images) + 2), blank=blank, duplicate=False)
                )
            )
            stacks.append(images)
            start += len(images)
        self.objects = pd.DataFrame(rows)
        self.images = pd.concat(image_rows, ignore_index=True)
        self._pixels = np.concatenate(stacks).astype(np.uint16)
        self._pixels.setflags(write=False)

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def content_id(self) -> str:
        import hashlib

        return hashlib.sha1(self._pixels.tobytes()).hexdigest()[:16]

    def object_images(self, i: int) -> np.ndarray:
        s = int(self.objects.image_start.iat[i])
        return self._pixels[s : s + int(self.objects.n_images.iat[i])]

    def object_mjd(self, i: int) -> np.ndarray:
        s = int(self.objects.image_start.iat[i])
        return self.images["mjd"].to_numpy()[s : s + int(self.objects.n_images.iat[i])]

    def night_counts(self, rows: np.ndarray) -> np.ndarray:
        from deeptao.io import sequence_nights

        return np.array([sequence_nights(self.object_images(int(i)), self.object_mjd(int(i))) for i in rows], dtype=np.int64)

    def image(self, j: int) -> np.ndarray:
        return self._pixels[j]

    def image_stack(self, rows: np.ndarray) -> np.ndarray:
        return self._pixels[np.asarray(rows, dtype=np.int64)]

    def labels_array(self) -> np.ndarray:
        return self.objects["label"].to_numpy(dtype=object)


def blob(amplitude: float, size: int = 64, width: float = 2.5) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return amplitude * np.exp(-(xx**2 + yy**2) / (2 * width**2))


def sky(rng: np.random.Generator, n: int, size: int = 64) -> np.ndarray:
    return rng.normal(SKY, NOISE, (n, size, size))


def to_uint16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 65535).astype(np.uint16)


def blob_survey(n_per_class: int = 12, n_images: int = 6, seed: int = 0) -> tuple[FakeCache, np.ndarray]:
    """Class 0: a bright centred source on sky; class 1: empty sky. One blank image per object."""
    rng = np.random.default_rng(seed)
    objects, y = [], []
    for label, amp in ((0, 400.0), (1, 0.0)):
        for i in range(n_per_class):
            images = sky(rng, n_images) + blob(amp * rng.uniform(0.7, 1.3))
            images[0] = 0  # a blank image must not break anything
            mjd = 53500 + np.sort(rng.uniform(0, 2000, n_images))
            objects.append((("SN", "NON")[label], f"g{label}_{i}", to_uint16(images), mjd))
            y.append(label)
    return FakeCache(objects), np.asarray(y)


def trend_survey(
    n_per_class: int = 12, n_images: int = 12, seed: int = 0, *, falling: bool = False
) -> tuple[FakeCache, np.ndarray]:
    """Class 0: a source brightening steadily with time; class 1: the same source at constant brightness.

    The per-image brightness distributions overlap, so a single image cannot
    tell the classes apart as well as the order can. With ``falling``, class 1
    fades through the very same brightnesses instead: only the order in time
    tells the classes apart.
    """
    rng = np.random.default_rng(seed)
    objects, y = [], []
    for label in (0, 1):
        for i in range(n_per_class):
            mjd = 53500 + np.sort(rng.uniform(0, 1000, n_images))
            if label == 0:
                amps = np.linspace(20, 400, n_images)
            elif falling:
                amps = np.linspace(400, 20, n_images)
            else:
                amps = np.full(n_images, rng.uniform(20, 400))
            images = sky(rng, n_images) + np.stack([blob(a) for a in amps])
            objects.append((("SN", "AGN")[label], f"t{label}_{i}", to_uint16(images), mjd))
            y.append(label)
    return FakeCache(objects), np.asarray(y)
