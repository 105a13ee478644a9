"""Reading a prepared cache's pixels: positioned reads (what the cache does) against a memory map.

The cache reads pixels with ``os.pread`` instead of mapping its part files. This
benchmark shows what that costs and what it saves, on a cache you give it:

- time per training batch (``--batch`` random images drawn from the whole
  cache, as a shuffled epoch asks for them) and per object (all of one object's
  images, as building co-adds or light curves asks for them), median of
  ``--repeats`` passes over the same rows after one warm-up pass, so both read
  from the page cache;
- the resident memory the process holds after reading ``--fraction`` of the
  cache's images in random batches, split into anonymous memory and mapped file
  pages (``RssAnon`` and ``RssFile`` of ``/proc/self/status``; Linux only). Each
  way runs in its own fresh process, so neither sees the other's pages.

The memory map is the anchor, rebuilt here the way the cache used to read.

    python benchmarks/bench_cache_reads.py CACHE [--batch 64] [--batches 2000] [--objects 2000] [--fraction 0.25]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np


class MappedReader:
    """The old reading: one read-only ``np.memmap`` per part, fancy-indexed."""

    def __init__(self, cache) -> None:
        self.cache = cache
        self.maps: dict[int, np.ndarray] = {}

    def _map(self, part: int) -> np.ndarray:
        if part not in self.maps:
            info = self.cache.manifest["parts"][part]
            self.maps[part] = np.memmap(self.cache.root / "parts" / info["file"], np.uint16, "r", shape=(info["n_images"], 64, 64))
        return self.maps[part]

    def image_stack(self, rows: np.ndarray) -> np.ndarray:
        owner = self.cache._image_object[rows]
        part = self.cache._object_part[owner]
        local = self.cache._object_offset[owner] + rows - self.cache._image_start[owner]
        out = np.empty((len(rows), 64, 64), np.uint16)
        for p in np.unique(part):
            sel = part == p
            out[sel] = self._map(int(p))[local[sel]]
        return out

    def object_images(self, i: int) -> np.ndarray:
        start = self.cache._object_offset[i]
        return np.array(self._map(int(self.cache._object_part[i]))[start : start + self.cache._object_count[i]])


def _rss_mib() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def _reader(cache, way: str):
    return cache if way == "pread" else MappedReader(cache)


def memory_child(cache_dir: str, way: str, fraction: float, batch: int, seed: int) -> None:
    """Read ``fraction`` of the images in random batches, then print the process's resident memory as JSON."""
    from deeptao.data import open_cache

    cache = open_cache(cache_dir)
    reader = _reader(cache, way)
    before = _rss_mib()
    rows = np.random.default_rng(seed).permutation(len(cache.images))[: int(fraction * len(cache.images))]
    start = time.perf_counter()
    keep = 0
    for lo in range(0, len(rows), batch):
        keep += int(reader.image_stack(rows[lo : lo + batch])[:, 32, 32].sum() > 0)
    print(json.dumps({"way": way, "images": len(rows), "seconds": round(time.perf_counter() - start, 1), "before": before, "after": _rss_mib()}))


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of the images read for the memory figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-child", choices=["pread", "memmap"], help=argparse.SUPPRESS)
    opts = parser.parse_args(args)
    if opts.memory_child:
        memory_child(opts.cache, opts.memory_child, opts.fraction, opts.batch, opts.seed)
        return

    from deeptao.data import open_cache

    cache = open_cache(opts.cache)
    rng = np.random.default_rng(opts.seed)
    batches = [rng.integers(0, len(cache.images), opts.batch) for _ in range(opts.batches)]
    objects = rng.permutation(len(cache))[: opts.objects]
    results: dict[str, object] = {
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs)",
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d"),
        "cache": f"{len(cache)} objects, {len(cache.images)} images",
    }
    for way in ("memmap", "pread"):
        reader = _reader(cache, way)
        for name, work, units in (
            ("batch", lambda r=reader: [r.image_stack(b) for b in batches], len(batches)),
            ("object", lambda r=reader: [r.object_images(int(i)) for i in objects], len(objects)),
        ):
            work()  # warm-up: both ways then read from the page cache
            times = []
            for _ in range(opts.repeats):
                start = time.perf_counter()
                work()
                times.append(time.perf_counter() - start)
            results[f"{way}_{name}_us"] = round(statistics.median(times) / units * 1e6, 1)
    for name in ("batch", "object"):
        results[f"pread_over_memmap_{name}"] = round(results[f"pread_{name}_us"] / results[f"memmap_{name}_us"], 2)
    for way in ("memmap", "pread"):
        child = [sys.executable, __file__, opts.cache, "--memory-child", way, "--fraction", str(opts.fraction), "--batch", str(opts.batch)]
        results[f"{way}_memory"] = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
