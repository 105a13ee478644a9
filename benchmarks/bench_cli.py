"""Start-up and whole-process speed of the ``deeptao`` command, against plain anchors, in one run.

What a user waits for is the whole process: interpreter start, imports, worker
start-up, the work and the writes. Every figure here is therefore the wall time
of a fresh process, measured from outside:

- ``deeptao --help``, against ``python -c pass`` (the interpreter alone);
- ``deeptao prepare ROOT --out CACHE``, against the same plain fitsio loop as
  ``bench_prepare.py`` (open each file once, read the table and every image),
  run as a script in its own process;
- with ``--model``, ``deeptao predict MODEL`` on a few files, against
  ``python -c "import lightning"`` (what predicting used to pay before its
  first file).

The files are read once before timing, and each command runs once untimed,
so the page cache and the bytecode caches are warm. Then the commands
alternate, ``--repeats`` rounds, and the medians and their ratios are reported.

Usage::

    python benchmarks/bench_cli.py --simulate 167 --work /tmp/bcli          # about 1,000 files of about 77 images
    python benchmarks/bench_cli.py --root SURVEY --work /tmp/bcli --repeats 7
    python benchmarks/bench_cli.py --root SURVEY --work /tmp/bcli --model RUN/models/taonet-object-seed0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from deeptao.io import iter_fits_files

# The anchor as a script of its own, so that it too pays its interpreter start and imports.
_ANCHOR = """\
import sys
from pathlib import Path

import fitsio

n_images = 0
for path in sorted(Path(sys.argv[1]).glob("TAO_*/data/*/*.fits")):
    with fitsio.FITS(str(path)) as fits:
        fits[1].read()
        for hdu in range(2, len(fits)):
            fits[hdu].read()
            n_images += 1
print(n_images)
"""


def wall(cmd: list[str]) -> float:
    """Seconds of one fresh process, start to exit; fails loudly if the command does."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def warm(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="existing survey to prepare")
    parser.add_argument("--simulate", type=int, help="simulate this many objects per class (NON included) first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (survey, caches, anchor script)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--model", type=Path, help="a saved network (RUN/models/<stage>) to time predict with")
    parser.add_argument("--predict-files", type=int, default=8, help="files predict classifies")
    parser.add_argument("--json", type=Path, help="append the result as one JSON line here")
    args = parser.parse_args(argv)

    deeptao = str(Path(sys.executable).with_name("deeptao"))
    args.work.mkdir(parents=True, exist_ok=True)
    root = args.root
    if root is None:
        root = args.work / "survey"
        if not (root / "TAO_transients").exists():
            cmd = [deeptao, "simulate", str(root), "--objects-per-class", str(args.simulate), "--seed", str(args.seed)]
            print(f"simulating: {' '.join(cmd)} ({wall([*cmd, '--workers', str(args.workers)]):.1f} s)")
    files = [p for p, _ in iter_fits_files(root)]
    anchor_script = args.work / "anchor.py"
    anchor_script.write_text(_ANCHOR)
    cache = args.work / "cache"

    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "deeptao --help": [deeptao, "--help"],
        "anchor": [sys.executable, str(anchor_script), str(root)],
        "deeptao prepare": [deeptao, "prepare", str(root), "--out", str(cache), "--workers", str(args.workers)],
    }
    if args.model:
        commands["import lightning"] = [sys.executable, "-c", "import lightning"]
        commands["deeptao predict"] = [deeptao, "predict", str(args.model), *map(str, files[: args.predict_files])]

    warm(files)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.repeats + 1):  # round 0 warms the bytecode and is not kept
        for name, cmd in commands.items():
            if name == "deeptao prepare":
                shutil.rmtree(cache, ignore_errors=True)
            seconds = wall(cmd)
            if round_:
                times[name].append(seconds)
        if round_:
            print("   ".join(f"{name} {t[-1]:.3f}" for name, t in times.items()))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print("medians: " + ", ".join(f"{name} {m:.3f} s" for name, m in medians.items()))
    ratio = medians["anchor"] / medians["deeptao prepare"]
    print(f"deeptao prepare is {ratio:.2f}x the anchor as whole processes ({len(files)} files)")
    if args.model:
        print(f"deeptao predict ({args.predict_files} files) takes {medians['deeptao predict']:.2f} s; "
              f"importing lightning alone {medians['import lightning']:.2f} s")  # fmt: skip

    if args.json:
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
            "files": len(files),
            "workers": args.workers,
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "seconds": times,
            "medians_s": medians,
            "prepare_speedup": ratio,
        }
        with open(args.json, "a") as fh:
            fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
