"""Training and inference throughput of the networks, beside the public replication's Keras network.

The anchor is the public replication's own network (Conv 32/64/128 3x3 ReLU,
each with 2x2 max-pool, dense 128, dropout 0.5, softmax) in Keras on
TensorFlow's CPU build, trained with its batch size of 16 and predicting with
Keras's default batch, on in-memory float32 arrays (its best case: no I/O).
deeptao's numbers go through its real path: images streamed from a prepared
cache, normalised and augmented on the fly, Lightning's loop.

TensorFlow is not a deeptao dependency: give ``--keras-python`` an
interpreter that has ``tensorflow-cpu`` installed (``pip install
'deeptao[benchmark]'`` in a separate environment); the Keras half then runs in
that interpreter as a child process of this one, in the same run.

Usage::

    python benchmarks/bench_models.py --work /tmp/bench_models --keras-python /path/to/tf/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_CLASSES = 6


def _keras_child(npz: Path, repeats: int) -> dict[str, float]:
    """Runs inside the TensorFlow interpreter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    data = np.load(npz)
    x, y = data["x"][..., None], data["y"]
    tf.random.set_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:256], y[:256], batch_size=16, epochs=1, verbose=0)  # warm-up: graph building
    model.predict(x[:256], verbose=0)
    train, infer = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        train.append(len(x) / (time.perf_counter() - t))
        t = time.perf_counter()
        model.predict(x, verbose=0)
        infer.append(len(x) / (time.perf_counter() - t))
    return {"train_images_per_s": statistics.median(train), "infer_images_per_s": statistics.median(infer),
            "train_runs": train, "infer_runs": infer, "tensorflow": tf.__version__}  # fmt: skip


def _survey_cache(work: Path, objects_per_class: int) -> Path:
    from deeptao.data.cache import prepare
    from deeptao.simulate import simulate_survey

    survey, cache = work / "survey", work / "cache"
    if not (survey / "simulation.json").exists():
        simulate_survey(survey, objects_per_class=objects_per_class, seed=1, overwrite=True)
    prepare(survey, cache, workers=1)
    return cache


def _torch_side(cache_dir: Path, n_images: int, seed: int) -> dict[str, dict[str, float]]:
    """One timed pass of each network: training one epoch, then inference."""
    import torch

    from deeptao.data.cache import open_cache
    from deeptao.data.tasks import select_task
    from deeptao.models import create_model

    cache = open_cache(cache_dir)
    task = select_task("6class", cache.labels_array())
    owner = cache.images["object"].to_numpy()
    y_obj = np.full(len(cache), -1)
    y_obj[task.rows] = task.y
    rng = np.random.default_rng(0)
    images = np.sort(rng.choice(len(owner), size=min(n_images, len(owner)), replace=False))
    out: dict[str, dict[str, float]] = {"torch": {"version": torch.__version__, "threads": torch.get_num_threads()}}

    model = create_model("seed-cnn", max_epochs=1, max_images_per_object=0, progress=False)  # 0: every image
    t = time.perf_counter()
    model.fit_images(cache, images, y_obj[owner[images]], classes=task.classes, seed=seed)
    train = len(images) / (time.perf_counter() - t)
    t = time.perf_counter()
    model.predict_image_proba(cache, images)
    out["seed-cnn"] = {"train_images_per_s": train, "infer_images_per_s": len(images) / (time.perf_counter() - t)}

    rows = task.rows
    counts = cache.objects["n_images"].to_numpy()[rows]
    # taonet reads every image of an object, co-added by night (the co-adds are built once per
    # cache, before the clock starts); prediction averages the eight flips/rotations
    from deeptao.data.representation import open_sequences

    nights = open_sequences(cache).lengths[rows].sum()
    model = create_model("taonet", max_epochs=1, progress=False)
    t = time.perf_counter()
    model.fit(cache, rows, task.y, classes=task.classes, seed=seed)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    model.predict_proba(cache, rows)
    predict = time.perf_counter() - t
    out["taonet"] = {
        "train_images_per_s": float(counts.sum() / seconds), "train_nights_per_s": float(nights / seconds),
        "infer_images_per_s": float(counts.sum() / predict), "infer_nights_per_s": float(nights / predict),
    }  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--keras-python", type=Path, help="interpreter with tensorflow-cpu (omit to skip the anchor)")
    parser.add_argument("--objects-per-class", type=int, default=12)
    parser.add_argument("--images", type=int, default=4096, help="images per training/inference pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keras-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.keras_child:
        print(json.dumps(_keras_child(args.keras_child, args.repeats)))
        return 0

    args.work.mkdir(parents=True, exist_ok=True)
    cache_dir = _survey_cache(args.work, args.objects_per_class)
    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "images": args.images,
    }
    npz = args.work / "keras_input.npz"
    if args.keras_python:
        from deeptao.data.cache import open_cache
        from deeptao.data.datasets import normalize_images

        cache = open_cache(cache_dir)
        n = min(args.images, len(cache.images))
        rng = np.random.default_rng(0)
        picks = np.sort(rng.choice(len(cache.images), size=n, replace=False))
        x = normalize_images(cache.image_stack(picks)).astype(np.float32)
        np.savez(npz, x=x, y=rng.integers(0, N_CLASSES, size=n))
    # Alternate the two frameworks, one pass each per round, so that both see the same machine load.
    runs: dict[str, list[dict[str, float]]] = {}
    for r in range(args.repeats):
        if args.keras_python:
            child = subprocess.run(
                [str(args.keras_python), __file__, "--work", str(args.work), "--keras-child", str(npz), "--repeats", "1"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.setdefault("keras", []).append(json.loads(child.stdout.strip().splitlines()[-1]))
        for name, value in _torch_side(cache_dir, args.images, r).items():
            runs.setdefault(name, []).append(value)
    for name, values in runs.items():
        if name == "torch":
            result[name] = values[0]
            continue
        result[name] = {
            metric: statistics.median(v[metric] for v in values) for metric in ("train_images_per_s", "infer_images_per_s")
        } | {"runs": values}
    for name in ("keras", "seed-cnn", "taonet"):
        if name in result:
            r = result[name]
            print(f"{name:9s} train {r['train_images_per_s']:8.0f} images/s   inference {r['infer_images_per_s']:8.0f} images/s")
    if "keras" in result:
        k, s = result["keras"], result["seed-cnn"]
        result["ratio_train"] = s["train_images_per_s"] / k["train_images_per_s"]
        result["ratio_infer"] = s["infer_images_per_s"] / k["infer_images_per_s"]
        print(f"seed-cnn / keras: training {result['ratio_train']:.2f}x, inference {result['ratio_infer']:.2f}x (medians)")
        # Keras's speed varies from one process to the next on a small machine (its thread
        # placement): the stricter comparison sets our median against its fastest pass.
        best = {m: max(run[m] for run in k["runs"]) for m in ("train_images_per_s", "infer_images_per_s")}
        result["ratio_train_vs_best"] = s["train_images_per_s"] / best["train_images_per_s"]
        result["ratio_infer_vs_best"] = s["infer_images_per_s"] / best["infer_images_per_s"]
        print(f"seed-cnn median / keras fastest pass: training {result['ratio_train_vs_best']:.2f}x, "
              f"inference {result['ratio_infer_vs_best']:.2f}x")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
