"""Exported models: the ONNX graphs give the torch models' probabilities, the forest's skops file its own, bad input one line.

Tiny networks are trained for one epoch on a tiny simulated survey, saved as
``replicate`` saves them (``RUN/models/<stage>/model.pt``), exported through
the command line, and both files are run by ``deeptao predict`` on the
survey's FITS files: the tables must agree. What the networks learnt does not
matter here, only that the two ways of running them compute the same function.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from deeptao.cli import main
from deeptao.data.drw_features import DRW_FEATURE_NAMES
from deeptao.data.event_features import EVENT_FEATURE_NAMES
from deeptao.data.inputs import dihedral
from deeptao.data.intra_night_features import INTRA_NIGHT_FEATURE_NAMES
from deeptao.data.stamp_features import STAMP_FEATURE_NAMES
from deeptao.data.variability_features import VARIABILITY_FEATURE_NAMES
from deeptao.models import create_model, load_model
from deeptao.models.taonet import TaoNet
from tests._simulated import simulated_cache

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

TINY = dict(crop=16, embed=16, hidden=8, max_epochs=1, limit_train_batches=2, progress=False, precision="32")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A simulated survey, its prepared cache and the files of a few objects of every class."""
    root = tmp_path_factory.mktemp("export")
    cache = simulated_cache(root, objects_per_class=3, seed=3)
    files = sorted((root / "release").rglob("*.fits"))
    return root, cache, files[::2]


def _fit(name: str, cache, **params):
    labels = cache.labels_array()
    classes = tuple(sorted(set(labels)))
    y = np.array([classes.index(label) for label in labels])
    rows = np.arange(len(labels))
    val = rows[::4]
    train = np.setdiff1d(rows, val)
    model = create_model(name, **params)
    model.fit(cache, train, y[train], classes=classes, val_rows=val, y_val=y[val], seed=0)
    return model, train, y


@pytest.fixture(scope="module")
def run(survey):
    """``RUN/models/<stage>/model.pt`` for each network (and lc-rf's model.joblib), as replicate lays them out."""
    root, cache, _ = survey
    out = root / "run"
    fitted = {}
    for stage, name, params in (
        ("taonet-object-seed0", "taonet", TINY),
        ("taonet-lc-object-seed0", "taonet-lc", {**TINY, "views": 8, "intra_night_features": True, "event_features": True,
                                                     "drw_features": True}),  # every block
        ("seed-cnn-object-seed0", "seed-cnn", dict(max_epochs=1, limit_train_batches=2, progress=False, precision="32")),
        ("lc-rf-object-seed0", "lc-rf", dict(n_estimators=20, n_jobs=1)),
    ):
        model, train, y = _fit(name, cache, **params)
        model.save(out / "models" / stage / f"model{model.file_suffix}")
        fitted[name] = (out / "models" / stage, model, train, y)
    (out / "context.json").write_text(json.dumps({"data_root": str(root / "release"), "simulated": True, "objects_per_class": {"SN": 3}}))
    return fitted


@pytest.fixture(scope="module")
def exported(run, survey):
    """Each network exported once through the command line: ``name -> FILE.onnx``."""
    root = survey[0]
    paths = {}
    for name in ("taonet", "taonet-lc", "seed-cnn"):
        path = root / "exported" / f"{name}.onnx"
        assert main(["export", str(run[name][0]), "--out", str(path)]) == 0
        paths[name] = path
    return paths


def _predict_table(model_path, files, tmp_path, name) -> pd.DataFrame:
    out = tmp_path / f"{name}.csv"
    assert main(["predict", str(model_path), *map(str, files), "--out", str(out)]) == 0
    return pd.read_csv(out, keep_default_na=False)


def _assert_same_tables(torch_table: pd.DataFrame, exported: pd.DataFrame, tolerance: float) -> None:
    assert list(exported.columns) == list(torch_table.columns)
    pd.testing.assert_frame_equal(exported[["file", "object_id", "label"]], torch_table[["file", "object_id", "label"]])
    prob = [c for c in torch_table.columns if c.startswith("prob_")]
    a, b = torch_table[prob].to_numpy(), exported[prob].to_numpy()
    np.testing.assert_allclose(b, a, atol=tolerance, rtol=0)
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-6)
    top2 = np.sort(a, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * tolerance  # where the argmax is not a near tie
    assert (exported["predicted"][clear] == torch_table["predicted"][clear]).all()


# ---------------------------------------------------------------- the graphs compute the same function


def test_padded_forward_equals_the_packed_forward():
    torch.manual_seed(0)
    net = TaoNet(3, crop=16, embed=16, hidden=8, n_features=4).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics away from the identity, so that BN matters
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    x, ref, scalars = torch.randn(4, 9, 2, 16, 16), torch.randn(4, 1, 16, 16), torch.randn(4, 9, net.n_scalars)
    features = torch.randn(4, 4)
    features[1, 2] = float("nan")
    lengths = torch.tensor([9, 3, 1, 5])  # the padding holds noise, not zeros: it must not leak in
    with torch.no_grad():
        packed = net(x, ref, scalars, lengths, features)
        padded = net.forward_padded(x, ref, scalars, lengths, features)
    torch.testing.assert_close(padded, packed, atol=1e-6, rtol=1e-5)


def test_graph_flips_and_rotations_are_those_of_the_numpy_inputs():
    from deeptao.models.export import _torch_dihedral

    image = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)
    for code in range(8):
        np.testing.assert_array_equal(_torch_dihedral(torch.from_numpy(image), code).numpy(), dihedral(image, code))


@pytest.mark.parametrize("name", ["taonet", "taonet-lc", "seed-cnn"])
def test_exported_network_predicts_what_the_torch_model_predicts(name, run, exported, survey, tmp_path):
    stage, model, _, _ = run[name]
    _, _, files = survey
    onnx_path = exported[name]
    assert onnx_path.is_file() and onnx_path.with_suffix(".json").is_file()
    torch_table = _predict_table(stage, files, tmp_path, "torch")
    exported = _predict_table(onnx_path, files, tmp_path, "onnx")
    _assert_same_tables(torch_table, exported, 1e-3)
    # and at full precision, one object with a single exposure among them
    from deeptao.io import read_object

    objects = [read_object(f) for f in files[:4]]
    items = [(o.images, o.mjd) for o in objects] + [(objects[0].images[:1], objects[0].mjd[:1])]
    np.testing.assert_allclose(load_model(onnx_path).predict_proba_arrays(items), model.predict_proba_arrays(items), atol=1e-5)


def test_the_model_card_says_what_the_model_reads_and_learnt(run, exported):
    from deeptao.data.representation import SCALAR_NAMES
    from deeptao.lightcurves import FEATURE_NAMES

    stage, model, train, y = run["taonet-lc"]
    card = json.loads(exported["taonet-lc"].with_suffix(".json").read_text())
    assert card["model"] == "taonet-lc" and card["classes"] == list(model.classes_)
    assert card["representation"]["settings"] == {"crop": 16, "aperture": 3.0, "night_gap": 0.5}
    assert list(card["representation"]["scalars"]) == list(SCALAR_NAMES)
    assert card["representation"]["features"] == [
        *FEATURE_NAMES, *STAMP_FEATURE_NAMES, *VARIABILITY_FEATURE_NAMES, *INTRA_NIGHT_FEATURE_NAMES, *EVENT_FEATURE_NAMES,
        *DRW_FEATURE_NAMES,
    ]  # fmt: skip
    assert [spec["name"] for spec in card["inputs"]] == ["x", "ref", "scalars", "lengths", "features"]
    assert card["prediction"]["views"] == 8
    counts = pd.Series(np.asarray(model.classes_)[y[train]]).value_counts().to_dict()
    assert card["training"]["objects_per_class"] == {c: counts.get(c, 0) for c in model.classes_}
    assert card["validation"]["val_loss"] == pytest.approx(model.fit_result_.best_score)
    assert card["run"]["stage"] == stage.name and card["run"]["simulated"] is True
    assert card["software"]["torch"] == torch.__version__ and card["software"]["onnx"] == onnx.__version__
    # the same card travels inside the file, which is what predict reads
    stored = {p.key: p.value for p in onnx.load(str(exported["taonet-lc"])).metadata_props}
    assert json.loads(stored["deeptao.model_card"]) == card


def test_onnx_prediction_imports_neither_torch_nor_lightning(exported, survey):
    path = exported["taonet"]
    code = (
        "import sys\n"
        "from deeptao.cli import main\n"
        f"rc = main(['predict', {str(path)!r}, {str(survey[2][0])!r}])\n"
        "heavy = sorted(m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules)\n"
        "print('HEAVY', heavy, rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in proc.stdout and "prob_" in proc.stdout


# ---------------------------------------------------------------- the forest


def test_forest_exports_to_skops_and_predicts_exactly_alike(run, survey, tmp_path, capsys):
    pytest.importorskip("skops")
    stage, model, _, _ = run["lc-rf"]
    path = tmp_path / "forest.skops"
    assert main(["export", str(stage), "--format", "skops", "--out", str(path)]) == 0
    capsys.readouterr()
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["model"] == "lc-rf" and card["representation"]["features"] == list(model.feature_names_)
    _, _, files = survey
    torch_free = _predict_table(path, files, tmp_path, "skops")
    pickled = _predict_table(stage, files, tmp_path, "joblib")
    pd.testing.assert_frame_equal(torch_free, pickled)


def test_skops_file_with_a_tampered_tree_or_a_foreign_type_is_refused(run, tmp_path):
    skops_io = pytest.importorskip("skops.io")
    import collections
    import copy

    from deeptao.models.lc_rf import LightCurveForest

    _, model, _, _ = run["lc-rf"]
    tampered = copy.deepcopy(model)
    tree = tampered.pipeline_.named_steps["forest"].estimators_[3].tree_
    state = tree.__getstate__()
    state["nodes"] = state["nodes"].copy()
    state["nodes"]["left_child"][0] = 10**6  # out of bounds: would read memory past the node array
    tree.__setstate__(state)
    path = tampered.save_skops(tmp_path / "tampered.skops")
    with pytest.raises(ValueError, match=r"tampered\.skops: tree 3 of its forest is malformed"):
        LightCurveForest.load_skops(path)
    skops_io.dump({"format": "deeptao-lc-rf-skops", "counts": collections.Counter("ab")}, tmp_path / "foreign.skops")
    with pytest.raises(ValueError, match=r"foreign\.skops: holds types a deeptao forest does not"):
        LightCurveForest.load_skops(tmp_path / "foreign.skops")


def test_forest_refuses_onnx_and_says_why(run, tmp_path, capsys):
    stage, _, _, _ = run["lc-rf"]
    assert main(["export", str(stage), "--out", str(tmp_path / "f.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.joblib" in err and "--format skops" in err and "Traceback" not in err


# ---------------------------------------------------------------- bad input, through the command line


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_export_of_a_folder_without_a_model_fails_in_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 1
    _one_line_error(capsys, f"deeptao export: error: {tmp_path}: no model in this folder")


def test_export_to_an_unknown_format_fails_in_one_line(run, tmp_path, capsys):
    stage, _, _, _ = run["taonet"]
    assert main(["export", str(stage), "--format", "tflite"]) == 1
    _one_line_error(capsys, "unknown export format 'tflite'", "onnx, skops")
    assert main(["export", str(stage), "--out", str(tmp_path / "model.bin")]) == 1
    _one_line_error(capsys, f"{tmp_path / 'model.bin'}: an export to onnx must be a file ending in .onnx")


def test_predict_refuses_an_onnx_file_that_is_not_ours(survey, tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(foreign))
    fits = str(survey[2][0])
    assert main(["predict", str(foreign), fits]) == 1
    _one_line_error(capsys, f"{foreign}: an ONNX model, but not one deeptao exported")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    assert main(["predict", str(garbage), fits]) == 1
    _one_line_error(capsys, f"{garbage}: not a readable ONNX model")


def test_a_calibration_temperature_is_applied_to_the_averaged_probabilities(run, exported, survey, tmp_path, monkeypatch):
    """p ** (1 / T), renormalised, on the view-averaged probabilities: how the torch estimator calibrates."""
    import copy

    import deeptao.models._loading as loading
    from deeptao.io import read_object
    from deeptao.models.export import export_model

    stage, model, _, _ = run["taonet"]
    hot = copy.deepcopy(model)
    hot.temperature_, hot.temperature_slope_ = 2.5, 0.7  # as a calibrated estimator holds them
    monkeypatch.setattr(loading, "load_model", lambda path: hot)
    path = export_model(stage, tmp_path / "hot.onnx").path
    card = json.loads(path.with_suffix(".json").read_text())["prediction"]
    assert (card["temperature"], card["temperature_slope"]) == (2.5, 0.7) and card["calibration"].startswith("applied inside the graph")
    objects = [read_object(f) for f in survey[2][:3]]
    items = [(o.images, o.mjd) for o in objects]
    from deeptao.io import sequence_nights
    from deeptao.models.calibration import apply_temperature, temperature_at

    # the plain export carries the model's own fitted temperature: undo it, then apply 2.5 exp(0.7 / sqrt(n))
    nights = np.array([sequence_nights(*item) for item in items], dtype=float)
    plain = load_model(exported["taonet"]).predict_proba_arrays(items)
    raw = apply_temperature(plain, 1.0 / temperature_at(model.temperature_, model.temperature_slope_, nights))
    expected = raw ** (1 / (2.5 * np.exp(0.7 / np.sqrt(nights))))[:, None]
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(load_model(path).predict_proba_arrays(items), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["taonet", "seed-cnn"])
def test_a_prior_shift_is_exported_as_the_torch_estimator_applies_it(name, run, exported, survey, tmp_path, monkeypatch):
    """(p * prior ** a) ** (1 / T), renormalised: inside the graph for taonet, after pooling for seed-cnn."""
    import copy

    import deeptao.models._loading as loading
    from deeptao.io import read_object, sequence_nights
    from deeptao.models.calibration import apply_temperature, calibrate_proba, temperature_at
    from deeptao.models.export import export_model

    stage, model, _, _ = run[name]
    shifted = copy.deepcopy(model)
    k = len(model.classes_)
    shifted.class_prior_ = tuple(np.linspace(1.0, 0.1, k) / np.linspace(1.0, 0.1, k).sum())
    shifted.prior_power_ = 0.75
    monkeypatch.setattr(loading, "load_model", lambda path: shifted)
    path = export_model(stage, tmp_path / "shifted.onnx").path
    card = json.loads(path.with_suffix(".json").read_text())["prediction"]
    assert card["prior_power"] == 0.75 and card["class_prior"] == pytest.approx(list(shifted.class_prior_))
    assert card["calibration"].startswith("applied inside the graph" if name == "taonet" else "apply to the object's pooled")
    items = [(o.images, o.mjd) for o in (read_object(f) for f in survey[2][:3])]
    np.testing.assert_allclose(load_model(path).predict_proba_arrays(items), shifted.predict_proba_arrays(items), atol=2e-5)
    # and the shift is really there: the plain export differs from it as the formula says
    plain = load_model(exported[name]).predict_proba_arrays(items)
    nights = np.array([sequence_nights(*item) for item in items])
    raw = apply_temperature(plain, 1.0 / temperature_at(model.temperature_, model.temperature_slope_, nights))
    expected = calibrate_proba(
        raw, temperature=model.temperature_, temperature_slope=model.temperature_slope_, nights=nights,
        prior=np.asarray(shifted.class_prior_), prior_power=0.75,
    )  # fmt: skip
    np.testing.assert_allclose(load_model(path).predict_proba_arrays(items), expected, atol=2e-5)
