"""Classifying files in chunks: the same probabilities whatever the chunk, bad files skipped and named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptao.io import first_nights, read_object
from deeptao.models import create_model
from deeptao.models.classify import classify_files
from tests._simulated import simulated_cache

TINY_NET = dict(crop=16, embed=16, hidden=8, max_epochs=1, views=1, progress=False, precision="32")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from deeptao.data.tasks import select_task

    root = tmp_path_factory.mktemp("classify")
    cache = simulated_cache(root, objects_per_class=3, seed=21)
    task = select_task("6class", cache.labels_array())
    files = sorted((root / "release").rglob("*.fits"))
    bad = root / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)  # a header cut short
    return cache, task, [*files[:5], bad, *files[5:9]], bad


@pytest.fixture(scope="module", params=["lc-rf", "taonet"])
def model(request, survey):
    cache, task, _, _ = survey
    params = {"n_estimators": 20} if request.param == "lc-rf" else TINY_NET
    return create_model(request.param, **params).fit(cache, task.rows, task.y, classes=task.classes, seed=0)


def test_probabilities_do_not_depend_on_the_chunk_size(model, survey):
    _, _, files, bad = survey
    whole = classify_files(model, files, chunk_files=len(files), progress=False)
    pieces = classify_files(model, files, chunk_files=2, progress=False)
    pd.testing.assert_frame_equal(whole.table, pieces.table, rtol=1e-5, atol=1e-6)
    good = [f for f in files if f != bad]
    assert list(whole.table["file"]) == [str(f) for f in good]  # in the order given, the bad file left out
    expected = model.predict_proba_arrays([(o.images, o.mjd) for o in map(read_object, good)])
    np.testing.assert_allclose(whole.table[[f"prob_{c}" for c in model.classes_]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert list(whole.table["predicted"]) == [model.classes_[k] for k in expected.argmax(axis=1)]
    assert [p for p, _ in whole.skipped] == [bad] and str(bad) in whole.skipped[0][1]


def test_early_classification_sees_only_the_first_nights(model, survey):
    _, _, files, bad = survey
    good = [f for f in files if f != bad][:4]
    early = classify_files(model, good, max_nights=1, progress=False).table
    cut = [first_nights(o.images, o.mjd, 1) for o in map(read_object, good)]
    np.testing.assert_allclose(
        early[[f"prob_{c}" for c in model.classes_]].to_numpy(), model.predict_proba_arrays(cut), rtol=1e-5, atol=1e-6
    )
    assert list(early["nights"]) == [1] * len(good)  # what the model saw
    whole = classify_files(model, good, progress=False).table
    # a night: exposures that count, chained less than half a day apart
    counted = [np.sort(o.mjd[~o.blank & ~o.table["duplicate"].to_numpy()]) for o in map(read_object, good)]
    expected = [int(np.sum(np.diff(t) > 0.5)) + 1 for t in counted]
    assert list(whole["nights"]) == expected and min(expected) > 1


def test_bad_arguments_and_no_readable_file(model, survey):
    _, _, _, bad = survey
    with pytest.raises(ValueError, match="max_nights must be at least 1"):
        classify_files(model, [bad], max_nights=0)
    with pytest.raises(ValueError, match="chunk_files must be at least 1"):
        classify_files(model, [bad], chunk_files=0)
    result = classify_files(model, [bad], progress=False)
    assert result.table.empty and list(result.table.columns)[:5] == ["file", "object_id", "label", "nights", "predicted"]
    assert len(result.skipped) == 1
