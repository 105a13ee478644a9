"""The shared-object bootstrap at release size: time and memory, by object and by image.

Three seeds of a release-size survey (16,307 objects, 15 % of them tested by
each seed, 77 images each) with synthetic confusion cells. At object level the
union holds the seeds' test objects; at image level each image names its
object, so an object's images move together and the union stays the same
size. ``--per-image`` names every image on its own instead, the unit the
first version of the shared bootstrap resampled, for comparison. Run each
unit in its own process so that GNU ``time -v`` gives its peak memory:

    /usr/bin/time -v python benchmarks/bench_bootstrap.py
    /usr/bin/time -v python benchmarks/bench_bootstrap.py --per-image
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _outcomes(rng: np.random.Generator, n_objects: int, share: float, per_object: int, per_image: bool) -> tuple:
    chosen = rng.choice(n_objects, size=int(share * n_objects), replace=False)
    if per_object == 1:
        names = np.array([f"o{o}" for o in chosen])
    elif per_image:
        names = np.array([f"o{o}#{k}" for o in chosen for k in range(per_object)])
    else:
        names = np.repeat([f"o{o}" for o in chosen], per_object)
    return names, rng.integers(0, 36, len(names))


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=16_307)
    parser.add_argument("--share", type=float, default=0.15, help="test share of each seed")
    parser.add_argument("--images", type=int, default=77, help="images per object")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--per-image", action="store_true", help="resample images one by one (the old unit)")
    opts = parser.parse_args(args)

    from deeptao.evaluation import bootstrap_macro_f1_shared

    rng = np.random.default_rng(0)
    for level, per_object in (("object", 1), ("image", opts.images)):
        outcomes = [_outcomes(rng, opts.objects, opts.share, per_object, opts.per_image) for _ in range(opts.seeds)]
        start = time.perf_counter()
        bootstrap_macro_f1_shared(outcomes, 6, n_boot=opts.replicates)
        seconds = time.perf_counter() - start
        unit = "image" if opts.per_image and per_object > 1 else "object"
        print(f"{level} level, {opts.seeds} seeds of {len(outcomes[0][0]):,} items, resampled by {unit}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
