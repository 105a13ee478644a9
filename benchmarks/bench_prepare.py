"""Prepare speed and memory against a plain fitsio loop, on the same files in the same run.

The anchor opens each file once with ``fitsio.FITS`` and reads the table and
every image, in one process: what a straightforward script would do. Runs
alternate (anchor, prepare, anchor, prepare, ...) after one warm-up pass over
the files, so both see a warm page cache; medians and their ratio are
reported. Peak memory comes from GNU ``time -v`` around ``deeptao prepare``.

Usage::

    python benchmarks/bench_prepare.py --simulate 600 --work /tmp/bench   # make a survey, then time
    python benchmarks/bench_prepare.py --root SURVEY --work /tmp/bench      # time an existing survey
    python benchmarks/bench_prepare.py --root SURVEY --work /tmp/bench --memory-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fitsio

from deeptao.io import iter_fits_files


def anchor(files: list[Path]) -> int:
    n_images = 0
    for path in files:
        with fitsio.FITS(str(path)) as fits:
            fits[1].read()
            for hdu in range(2, len(fits)):
                fits[hdu].read()
                n_images += 1
    return n_images


def warm(files: list[Path]) -> int:
    total = 0
    for path in files:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total


_TIMED_PREPARE = (
    "import sys, time\n"
    "from deeptao.data.cache import prepare\n"
    "t = time.perf_counter()\n"
    "prepare(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]))\n"
    "print(time.perf_counter() - t)\n"
)


def timed_prepare(root: Path, cache: Path, workers: int) -> float:
    """Seconds of one ``prepare`` call in a fresh process, as ``deeptao prepare`` runs it.

    A fresh process matters: workers are forked from a parent with no threads
    yet, which a long-lived benchmark process (pyarrow's pools started) is not.
    Interpreter start and imports are excluded, as they are for the anchor.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _TIMED_PREPARE, str(root), str(cache), str(workers)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(proc.stdout.strip().splitlines()[-1])


def peak_rss_mib(root: Path, cache: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of the largest process) for ``deeptao prepare`` under GNU time."""
    shutil.rmtree(cache, ignore_errors=True)
    deeptao = Path(sys.executable).with_name("deeptao")
    cmd = ["/usr/bin/time", "-v", str(deeptao), "prepare", str(root), "--out", str(cache), "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return seconds, int(match.group(1)) / 1024 if match else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="existing survey to time")
    parser.add_argument("--simulate", type=int, help="simulate this many objects per class (NON included) first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (survey and caches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--memory-only", action="store_true", help="only the GNU time run")
    parser.add_argument("--json", type=Path, help="append the result as one JSON line here")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    root = args.root
    if root is None:
        from deeptao.simulate import simulate_survey

        root = args.work / "survey"
        if not (root / "TAO_transients").exists():
            t = time.perf_counter()
            simulate_survey(root, objects_per_class=args.simulate, seed=args.seed, workers=args.workers)
            print(f"simulated {args.simulate} objects per class in {time.perf_counter() - t:.1f} s")
    files = [p for p, _ in iter_fits_files(root)]
    size = sum(p.stat().st_size for p in files)
    cache = args.work / "cache"
    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "files": len(files),
        "fits_bytes": size,
        "workers": args.workers,
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
    }
    if not args.memory_only:
        warm(files)
        anchor_s, ours_s = [], []
        n_images = 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            n_images = anchor(files)
            anchor_s.append(time.perf_counter() - t)
            shutil.rmtree(cache, ignore_errors=True)
            ours_s.append(timed_prepare(root, cache, args.workers))
            print(f"anchor {anchor_s[-1]:.2f} s   prepare {ours_s[-1]:.2f} s   ratio {anchor_s[-1] / ours_s[-1]:.2f}")
        a, o = statistics.median(anchor_s), statistics.median(ours_s)
        result |= {
            "images": n_images,
            "anchor_s": anchor_s,
            "prepare_s": ours_s,
            "anchor_median_s": a,
            "prepare_median_s": o,
            "speedup_median": a / o,
            "anchor_images_per_s": n_images / a,
            "prepare_images_per_s": n_images / o,
        }
        print(f"median: anchor {a:.2f} s, prepare {o:.2f} s -> {a / o:.2f}x faster ({n_images / o:,.0f} images/s)")
    seconds, rss = peak_rss_mib(root, cache, args.workers)
    result |= {"gnu_time_prepare_s": seconds, "peak_rss_mib": rss}
    print(f"deeptao prepare under GNU time: {seconds:.1f} s, peak RSS {rss:.0f} MiB (largest process)")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
