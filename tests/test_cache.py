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
        assert images.dtype == np.uint16 and not isinstance(images, np.memmap)  # read, not mapped: RSS stays what is asked for
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
    first_id = open_cache(tmp_path / "cache").content_id
    again = prepare(root, tmp_path / "cache", workers=1, files_per_part=2)
    assert (again.parts_built, again.parts_reused) == (0, 4)
    assert open_cache(tmp_path / "cache").content_id == first_id  # the same content, the same id
    # Rewrite one file with other content: only its part is rebuilt, and the cache follows.
    changed = write_release_file(root, label="SN", name=paths[0].stem, n=30, seed=99)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = prepare(root, tmp_path / "cache", workers=1, files_per_part=2)
    assert (third.parts_built, third.parts_reused) == (1, 3)
    _check_against_reader(tmp_path / "cache", paths)
    assert len(list((tmp_path / "cache" / "parts").glob("*.u16"))) == 4  # stale part removed
    assert open_cache(tmp_path / "cache").content_id != first_id  # trainings on the old content do not resume here


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


# --- malformed input: bad files named, faults inside good files cost only their images ---


def _good_images_by_astropy(path: Path) -> np.ndarray:
    """The images a careful reader keeps, found with astropy alone: rows whose HDU exists and holds a finite 64x64 image."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        table = hdul[1].data
        kept = []
        for ext, mjd in zip(table["HDU_Ext"], table["MJD"], strict=True):
            ext = int(ext)
            if ext < len(hdul) and hdul[ext].data is not None and hdul[ext].data.shape == (64, 64):
                if np.isfinite(hdul[ext].data).all():
                    kept.append((float(mjd), ext, hdul[ext].data.astype(np.uint16)))
    return np.stack([image for _, _, image in sorted(kept, key=lambda t: t[:2])])


def malformed_survey(root: Path) -> tuple[list[Path], dict[Path, str], dict[Path, int]]:
    """Good files, one bad file of each kind (path -> words its reason holds), and files with faults (path -> faults)."""
    from astropy.io import fits

    good = _survey(root, n_objects=3)
    sn = root / "TAO_transients" / "data" / "SN"
    bad: dict[Path, str] = {}
    (sn / "empty.fits").write_bytes(b"")
    bad[sn / "empty.fits"] = "file is empty"
    (sn / "notes.fits").write_text("not FITS at all\n" * 300)
    bad[sn / "notes.fits"] = "not a FITS file"
    (sn / "cut.fits").write_bytes(good[0].read_bytes()[:-5000])
    bad[sn / "cut.fits"] = "truncated"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64), np.uint16))]).writeto(sn / "image_only.fits")
    bad[sn / "image_only.fits"] = "no binary table"
    bad[write_release_file(root, name="CSS000001:small", image_shape=(32, 48), n=5)] = "no usable image"
    cols = [fits.Column("HDU_Ext", "4A", array=["2"]), fits.Column("MJD", "8A", array=["soon"])]
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(np.ones((64, 64), np.uint16))]
    ).writeto(sn / "soon.fits")
    bad[sn / "soon.fits"] = "'soon' is not a number"
    nan = np.full((64, 64), 2000.0, np.float32)
    nan[1, 2] = np.nan
    faulty = {
        write_release_file(root, name="CSS000002:odd", n=10, replace={3: np.ones((32, 48), np.uint16)}): 1,
        write_release_file(root, label="CV", name="CSS000003:nan", n=10, replace={5: nan}): 1,
        write_release_file(root, label="AGN", name="CSS000004:short", n=10, drop_hdus=3): 4,  # 3 rows + N_IMAGES
        write_release_file(root, label="NON", name="nonCSS:9+9", n=10, n_images_card=15): 1,
    }
    return good, bad, faulty


def test_prepare_keeps_every_good_image_and_records_each_fault(tmp_path):
    root = tmp_path / "survey"
    good, bad, faulty = malformed_survey(root)
    result = prepare(root, tmp_path / "cache", workers=1, files_per_part=3)
    reasons = dict(result.bad_files)
    assert set(reasons) == {str(p) for p in bad}
    for path, words in bad.items():
        assert words in reasons[str(path)] and "\n" not in reasons[str(path)]
    cache = open_cache(tmp_path / "cache")
    assert len(cache) == len(good) + len(faulty) == result.n_objects
    by_path = {p: i for i, p in enumerate(cache.objects["path"])}
    for path in good + list(faulty):
        np.testing.assert_array_equal(cache.object_images(by_path[str(path)]), _good_images_by_astropy(path), err_msg=path.name)
    warnings = pd.read_csv(tmp_path / "cache" / "warnings.csv", dtype={"hdu": "Int64", "row": "Int64"})
    assert list(warnings.columns) == ["path", "hdu", "row", "reason"]
    assert warnings["path"].value_counts().to_dict() == {str(p): n for p, n in faulty.items()}
    assert sorted(cache.objects.loc[cache.objects["n_faults"] > 0, "path"]) == sorted(map(str, faulty))
    odd = warnings[warnings["path"].str.contains("odd")].iloc[0]
    assert "image is 32x48, not 64x64" in odd["reason"] and pd.notna(odd["hdu"]) and pd.notna(odd["row"])
    short = warnings[warnings["path"].str.contains("short")]
    assert (short["reason"].str.startswith("no such HDU")).sum() == 3
    assert short["reason"].str.contains("N_IMAGES is 10 but the file has 7 image HDUs").sum() == 1
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert (manifest["n_warnings"], manifest["n_files_with_warnings"]) == (len(warnings), len(faulty))
    assert result.warnings == [
        (r.path, None if pd.isna(r.hdu) else int(r.hdu), None if pd.isna(r.row) else int(r.row), r.reason)
        for r in warnings.itertuples()
    ]


def test_strict_stops_at_a_fault_inside_a_file(tmp_path):
    root = tmp_path / "survey"
    _survey(root, n_objects=3)
    odd = write_release_file(root, label="BZ", name="CSS000005:odd", n=6, replace={2: np.ones((64, 60), np.uint16)})
    with pytest.raises(PrepareError) as info:
        prepare(root, tmp_path / "cache", workers=1, strict=True)
    message = str(info.value)
    assert message.startswith(f"{odd}: HDU ") and message.endswith("image is 64x60, not 64x64") and "\n" not in message
    with pytest.raises(CacheError):
        open_cache(tmp_path / "cache")


def test_strict_also_stops_at_the_faults_of_parts_built_without_it(tmp_path):
    root = tmp_path / "survey"
    _survey(root, n_objects=3)
    odd = write_release_file(root, label="BZ", name="CSS000005:odd", n=6, replace={2: np.ones((64, 60), np.uint16)})
    prepare(root, tmp_path / "cache", workers=1)  # lenient: the odd image is dropped and listed
    with pytest.raises(PrepareError) as info:
        prepare(root, tmp_path / "cache", workers=1, strict=True)  # every part reused
    assert str(info.value).startswith(f"{odd}: HDU ") and str(info.value).endswith("image is 64x60, not 64x64")
    bad = root / "TAO_transients" / "data" / "AGN" / "bad.fits"
    odd.unlink()
    bad.write_bytes(b"SIMPLE  = nope")
    prepare(root, tmp_path / "cache", workers=1)
    with pytest.raises(PrepareError, match="bad.fits"):
        prepare(root, tmp_path / "cache", workers=1, strict=True)


def test_non_objects_whose_parent_is_absent_are_counted_and_grouped_by_that_parent(tmp_path):
    from deeptao.data.splits import split_cache

    root = tmp_path / "survey"
    transients = [write_release_file(root, label=label, name=f"CSS0901{k:02d}:000000+000000", seed=k)
                  for k, label in enumerate(["SN", "AGN", "BZ", "CV", "OTHER"] * 4)]  # fmt: skip
    present = "CSS090100:000000+000000"
    absent_a, absent_b = "CSS990101:000000+000000", "CSS990202:000000+000000"
    parents = [present] * 3 + [absent_a] * 3 + [absent_b]
    for k, parent in enumerate(parents):
        write_release_file(root, label="NON", name=f"nonCSS:{k}.5+1.5", parent=parent, seed=50 + k)
    result = prepare(root, tmp_path / "cache", workers=1)
    assert result.n_objects == len(transients) + len(parents)
    assert result.n_non_without_parent == 4
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["n_non_without_parent"] == 4
    cache = open_cache(tmp_path / "cache")
    objects = cache.objects
    non = objects[objects["label"] == "NON"].sort_values("object_id")
    assert list(non["parent_missing"]) == [p != present for p in parents]
    assert list(non["parent_id"]) == parents and non["crts_id"].isna().all()
    assert not objects.loc[objects["label"] != "NON", "parent_missing"].any()
    for seed in range(5):
        split, _ = split_cache(cache, seed=seed)
        split_of = dict(zip(objects["object_id"], split, strict=True))
        groups = {}
        for object_id, group in zip(objects["object_id"], objects["group"], strict=True):
            groups.setdefault(group, set()).add(split_of[object_id])
        assert all(len(sides) == 1 for sides in groups.values())
        assert sorted(objects.loc[objects["group"] == absent_a, "object_id"]) == [f"nonCSS:{k}.5+1.5" for k in (3, 4, 5)]
        assert list(objects.loc[objects["group"] == absent_b, "object_id"]) == ["nonCSS:6.5+1.5"]
        assert split_of[present] == split_of["nonCSS:0.5+1.5"]


def test_a_cache_of_an_older_format_is_refused_in_one_line(tmp_path):
    _survey(tmp_path / "survey", n_objects=2)
    prepare(tmp_path / "survey", tmp_path / "cache", workers=1)
    manifest_path = tmp_path / "cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CacheError) as info:
        open_cache(tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "cache") in message
    assert "cache format 1" in message and "run 'deeptao prepare' again" in message


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


def test_reads_survive_pickling_closing_and_name_a_truncated_or_missing_part(tmp_path):
    import pickle

    paths = _survey(tmp_path / "survey", n_objects=4)
    prepare(tmp_path / "survey", tmp_path / "cache", workers=1, files_per_part=2)
    with open_cache(tmp_path / "cache") as cache:
        by_path = {p: i for i, p in enumerate(cache.objects["path"])}
        i = by_path[str(paths[-1])]
        expected = read_object(paths[-1]).images
        first = cache.object_images(i)
        first[:] = 0  # a fresh array: writing to it changes nothing on disk or in later reads
        np.testing.assert_array_equal(cache.object_images(i), expected)
        copy = pickle.loads(pickle.dumps(cache))
        np.testing.assert_array_equal(copy.object_images(i), expected)
        cache.close()
        np.testing.assert_array_equal(cache.object_images(i), expected)  # reopened on demand
        part_file = tmp_path / "cache" / "parts" / cache.manifest["parts"][int(cache.objects["part"].iloc[i])]["file"]
    copy.close()
    part_file.write_bytes(part_file.read_bytes()[: 64 * 64 * 2 * 3 + 100])
    with pytest.raises(CacheError) as info:
        open_cache(tmp_path / "cache").object_images(i)
    message = str(info.value)
    assert "\n" not in message and str(part_file) in message and "run 'deeptao prepare' again" in message
    part_file.unlink()
    with pytest.raises(CacheError) as info:
        open_cache(tmp_path / "cache").object_images(i)
    message = str(info.value)
    assert "\n" not in message and str(part_file) in message and "run 'deeptao prepare' again" in message
