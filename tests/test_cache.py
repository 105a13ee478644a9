"""prepare: contents equal to the reader's, bad files reported, incremental, killed-then-resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeptao.data import CacheError, PrepareError, open_cache, prepare
from deeptao.io import read_object
from tests.fitsfactory import write_release_file


def _survey(root: Path, n_objects: int = 9, n: int = 14) -> list[Path]:
    labels = ["SN", "AGN", "BZ", "CV", "OTHER", "NON"]
    paths = []
    for i in range(n_objects):
        label = labels[i % len(labels)]
        name = f"nonCSS:{i}.5+1.25" if label == "NON" else f"CSS0801{i:02d}:000000+000000"
        paths.append(write_release_file(root, label=label, name=name, n=n + i, seed=i, parent="CSS080100:000000+000000"))
    return paths


def _check_against_reader(cache_dir: Path, paths: list[Path]) -> None:
    cache = open_cache(cache_dir)
    assert len(cache) == len(paths)
    by_path = {p: i for i, p in enumerate(cache.objects["path"])}
    for path in paths:
        i = by_path[str(path)]
        obj = read_object(path)
        row = cache.objects.iloc[i]
        assert (row.object_id, row.label, row.group, row.n_images) == (obj.object_id, obj.label, obj.group, len(obj))
        images = cache.object_images(i)
        assert images.dtype == np.uint16 and isinstance(images, np.memmap)
        np.testing.assert_array_equal(images, obj.images)
        np.testing.assert_array_equal(cache.object_mjd(i), obj.mjd)
        rows = cache.images.iloc[row.image_start : row.image_start + row.n_images]
        assert (rows["object"] == i).all()
        np.testing.assert_array_equal(rows["mjd"], obj.mjd)
        np.testing.assert_array_equal(cache.image(int(row.image_start) + 1), obj.images[1])
    # rows from every part, shuffled and repeated, in one read
    rows = np.random.default_rng(0).permutation(np.r_[np.arange(len(cache.images)), 0, 5])
    stack = cache.image_stack(rows)
    assert stack.dtype == np.uint16 and stack.shape == (len(rows), 64, 64)
    np.testing.assert_array_equal(stack, np.stack([cache.image(int(j)) for j in rows]))
    assert cache.image_stack(np.zeros(0, np.int64)).shape == (0, 64, 64)


@pytest.mark.parametrize("workers", [1, 2])
def test_cache_holds_what_the_reader_reads(tmp_path, workers):
    paths = _survey(tmp_path / "survey")
    result = prepare(tmp_path / "survey", tmp_path / "cache", workers=workers, files_per_part=4)
    assert result.n_objects == len(paths) and result.bad_files == []
    assert result.n_images == sum(14 + i for i in range(len(paths)))
    _check_against_reader(tmp_path / "cache", paths)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["n_images"] == result.n_images
    assert set(pd.read_parquet(tmp_path / "cache" / "objects.parquet").columns) >= {
        "object_id", "label", "group", "n_images", "path",
    }  # fmt: skip


def test_bad_files_are_skipped_and_reported(tmp_path):
    root = tmp_path / "survey"
    paths = _survey(root, n_objects=4)
    sn = root / "TAO_transients" / "data" / "SN"
    (sn / "empty.fits").write_bytes(b"")
    (sn / "notes.txt").write_text("not data, ignored")
    truncated = sn / "cut.fits"
    truncated.write_bytes(paths[0].read_bytes()[:5000])
    result = prepare(root, tmp_path / "cache", workers=1)
    assert result.n_objects == 4
    reasons = dict(result.bad_files)
    assert set(reasons) == {str(sn / "empty.fits"), str(truncated)}
    assert "empty" in reasons[str(sn / "empty.fits")]
    report = pd.read_csv(tmp_path / "cache" / "bad_files.csv")
    assert sorted(report["path"]) == sorted(reasons)


def test_strict_stops_at_first_bad_file(tmp_path):
    root = tmp_path / "survey"
    _survey(root, n_objects=3)
    bad = root / "TAO_transients" / "data" / "AGN" / "bad.fits"
    bad.write_bytes(b"SIMPLE  = nope")
    with pytest.raises(PrepareError) as info:
        prepare(root, tmp_path / "cache", workers=1, strict=True)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CacheError):
        open_cache(tmp_path / "cache")


def test_incremental_reuses_parts_and_redoes_changed_ones(tmp_path):
    root = tmp_path / "survey"
    paths = _survey(root, n_objects=8)
    first = prepare(root, tmp_path / "cache", workers=1, files_per_part=2)
    assert first.parts_built == 4
    again = prepare(root, tmp_path / "cache", workers=1, files_per_part=2)
    assert (again.parts_built, again.parts_reused) == (0, 4)
    # Rewrite one file with other content: only its part is rebuilt, and the cache follows.
    changed = write_release_file(root, label="SN", name=paths[0].stem, n=30, seed=99)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = prepare(root, tmp_path / "cache", workers=1, files_per_part=2)
    assert (third.parts_built, third.parts_reused) == (1, 3)
    _check_against_reader(tmp_path / "cache", paths)
    assert len(list((tmp_path / "cache" / "parts").glob("*.u16"))) == 4  # stale part removed


def test_no_fits_files_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no .fits files"):
        prepare(tmp_path / "empty", tmp_path / "cache")


def test_open_cache_refuses_a_partial_folder(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(CacheError, match="not a complete deeptao cache"):
        open_cache(tmp_path / "half")


_KILLABLE = """
import sys
from deeptao.data import cache
real = cache._build_part
def slow(*args):
    out = real(*args)
    import time; time.sleep(0.4)
    return out
cache._build_part = slow
cache.prepare(sys.argv[1], sys.argv[2], workers=1, files_per_part=1)
"""


def test_killed_prepare_leaves_no_whole_cache_and_resumes(tmp_path):
    root = tmp_path / "survey"
    paths = _survey(root, n_objects=8)
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(root), str(cache_dir)])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((cache_dir / "parts").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((cache_dir / "parts").glob("*.json")))
    assert 3 <= done < 8
    with pytest.raises(CacheError):
        open_cache(cache_dir)
    result = prepare(root, cache_dir, workers=1, files_per_part=1)
    assert result.parts_reused >= 3 and result.parts_built == 8 - result.parts_reused
    _check_against_reader(cache_dir, paths)


def test_a_survey_of_only_bad_files_gives_an_empty_but_whole_cache(tmp_path):
    folder = tmp_path / "survey" / "TAO_transients" / "data" / "SN"
    folder.mkdir(parents=True)
    (folder / "a.fits").write_bytes(b"")
    result = prepare(tmp_path / "survey", tmp_path / "cache", workers=1)
    assert (result.n_objects, len(result.bad_files)) == (0, 1)
    cache = open_cache(tmp_path / "cache")
    assert len(cache) == 0 and len(cache.images) == 0


def test_workers_start_before_the_progress_bar(tmp_path):
    """A progress bar may start a thread (tqdm does); the workers must exist by then so they can fork."""
    import multiprocessing

    _survey(tmp_path / "survey", n_objects=4, n=6)
    seen = []

    class Bar:
        def __init__(self, total, desc):
            seen.append(len(multiprocessing.active_children()))

        def update(self, n):
            pass

        def close(self):
            pass

    prepare(tmp_path / "survey", tmp_path / "cache", workers=2, files_per_part=1, progress=Bar)
    assert seen == [2]
    _check_against_reader(tmp_path / "cache", sorted((tmp_path / "survey").rglob("*.fits")))


def test_arrow_columns_built_from_buffers_equal_pyarrows_own():
    import pyarrow as pa

    from deeptao.data._arrow import LARGE_STRING, from_numpy, to_numpy

    text = np.array(["SN", None, "", "naïve ✓", 7, "x" * 300], dtype=object)
    ours = from_numpy(text, LARGE_STRING)
    ours.validate(full=True)
    assert ours.equals(pa.array([None if v is None else str(v) for v in text], LARGE_STRING))
    flags = np.array([True, False, True, True, False, False, False, False, True, True])  # more than one byte of bits
    assert from_numpy(flags, pa.bool_()).equals(pa.array(flags.tolist(), pa.bool_()))
    ints = np.array([3, -1, 2**40, 0])
    assert from_numpy(ints, pa.int64()).equals(pa.array(ints.tolist(), pa.int64()))
    floats = np.array([0.5, np.nan, -2.0])
    np.testing.assert_array_equal(to_numpy(from_numpy(floats, pa.float64())), floats)
    # a sliced, chunked column reads back from its offset
    chunked = pa.chunked_array([pa.array(ints.tolist(), pa.int64())[1:], pa.array([9], pa.int64())])
    np.testing.assert_array_equal(to_numpy(chunked), [-1, 2**40, 0, 9])
    assert len(to_numpy(pa.chunked_array([], pa.int64()))) == 0
    with pytest.raises(TypeError):
        to_numpy(pa.array([1, None], pa.int64()))


def test_one_file_name_in_two_class_folders_and_an_all_bad_survey(tmp_path):
    root = tmp_path / "survey"
    write_release_file(root, label="SN", name="CSS1", seed=1)
    write_release_file(root, label="CV", name="CSS1", seed=2)
    result = prepare(root, tmp_path / "cache", workers=1)
    cache = open_cache(tmp_path / "cache")
    assert result.n_objects == 2 and sorted(cache.objects.object_id) == ["CSS1", "CSS1@CV"]
    assert cache.objects.set_index("object_id").label.to_dict() == {"CSS1": "SN", "CSS1@CV": "CV"}

    bad_root = tmp_path / "bad"
    (bad_root / "TAO_transients" / "data" / "SN").mkdir(parents=True)
    (bad_root / "TAO_transients" / "data" / "SN" / "empty.fits").write_bytes(b"")
    result = prepare(bad_root, tmp_path / "bad_cache", workers=1)
    assert result.n_objects == 0 and len(result.bad_files) == 1
    empty = open_cache(tmp_path / "bad_cache")
    assert len(empty) == 0 and len(empty.images) == 0
    assert {"object", "mjd", "blank"} <= set(empty.images.columns)
    assert {"object_id", "label", "part", "image_start"} <= set(empty.objects.columns)
