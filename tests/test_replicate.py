"""replicate end to end on a tiny simulated survey: files, honest split, resume, predict round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from deeptao.cli import main
from deeptao.data.cache import open_cache
from deeptao.io import read_object
from deeptao.models import load_model
from deeptao.replicate import ReplicateOptions, replicate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    opts = ReplicateOptions(objects_per_class=3, survey_seed=5, max_epochs=1, workers=1, seeds=1)
    replicate(out, opts)
    return out, opts


@pytest.mark.slow
def test_run_folder_has_every_artefact(run):
    out, _ = run
    for name in (
        "metrics.json", "f1_scores.csv", "confusion_matrix.png", "sample_images.png",
        "training_curves.png", "split.csv", "report.md", "predictions.parquet",
    ):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    settings = {(r["model"], r["split"], r["level"]) for r in metrics["runs"]}
    assert {(m, "object", "object") for m in ("seed-cnn", "taonet", "taonet-lc", "lc-rf")} <= settings
    # the five transient classes TAO-Net was published on run too, object split only
    five = {(r["model"], r["split"]) for r in metrics["runs"] if r["task"] == "5class"}
    assert five == {(m, "object") for m in ("taonet", "lc-rf")}
    assert ("seed-cnn", "image", "image") in settings and ("seed-cnn", "object", "image") in settings
    from deeptao.data.tasks import task_classes

    predictions = pd.read_parquet(out / "predictions.parquet")
    for r in metrics["runs"]:
        classes = list(task_classes(r["task"]))
        assert list(r["per_class_f1"]) == classes
        # every score again by scikit-learn, from the stored predictions of that run
        rows = predictions[(predictions.model == r["model"]) & (predictions.split == r["split"])
                           & (predictions.task == r["task"]) & (predictions.level == r["level"])]  # fmt: skip
        expected = f1_score(rows.y_true, rows.y_pred, labels=classes, average=None, zero_division=0)
        np.testing.assert_allclose(list(r["per_class_f1"].values()), expected, atol=1e-9, err_msg=str(r["model"]))
        assert r["macro_f1"] == pytest.approx(expected.mean())
        lo, hi = r["macro_f1_ci95"]
        assert lo <= r["macro_f1"] <= hi
    f1 = pd.read_csv(out / "f1_scores.csv")
    assert {"model", "split", "task", "level", "class", "precision", "recall", "f1"} <= set(f1.columns)
    # calibration: every model on the object split, the forest too, fitted a temperature, recorded with its predictions
    for r in metrics["runs"]:
        if r["split"] == "object" and r["level"] == "object":
            assert r["ece"] is not None and 0.0 <= r["ece"] <= 1.0
            assert r["ece_uncalibrated"] is not None and 0.0 <= r["ece_uncalibrated"] <= 1.0, r["model"]
    assert (out / "reliability.png").stat().st_size > 0 and "## Calibration" in (out / "report.md").read_text()
    # early classification: each model of the first task at every cut, the full cut equal to the main scores
    early = metrics["early"]
    assert set(early) == {f"{m}/object/6class/object" for m in ("seed-cnn", "taonet", "taonet-lc", "lc-rf")}
    for key, curve in early.items():
        assert [e["nights"] for e in curve] == [1, 2, 4, 8, 16, 0]
        full = next(r for r in metrics["runs"] if f"{r['model']}/{r['split']}/{r['task']}/{r['level']}" == key)
        assert curve[-1]["macro_f1"] == pytest.approx(full["macro_f1"])
    table = pd.read_parquet(out / "early_predictions.parquet")
    one = table[(table.model == "lc-rf") & (table.nights == 1)]
    expected = f1_score(one.y_true, one.y_pred, labels=list(task_classes("6class")), average="macro", zero_division=0)
    assert early["lc-rf/object/6class/object"][0]["macro_f1"] == pytest.approx(expected)
    report = (out / "report.md").read_text()
    assert (out / "early_classification.png").stat().st_size > 0 and "## Early classification" in report
    assert "Calibration of the same predictions" in report.split("## Early classification")[1]
    # the leakage gap the report states is the one the predictions give
    report = (out / "report.md").read_text()
    leakage = report.split("## Leakage gap")[1].split("\n## ")[0]
    row = next(line for line in leakage.splitlines() if line.startswith("| seed-cnn | 6 classes | image |"))
    six = list(task_classes("6class"))
    macro = {
        split: f1_score(p.y_true, p.y_pred, labels=six, average="macro", zero_division=0)
        for split, p in predictions[(predictions.model == "seed-cnn") & (predictions.level == "image")].groupby("split")
    }
    assert f"**{100 * (macro['image'] - macro['object']):+.2f}**" in row
    # the demo survey is the same on every machine: built-in magnitudes, whatever catalogue lies nearby
    assert json.loads((out / "survey" / "simulation.json").read_text())["priors"] == "built-in"


@pytest.mark.slow
def test_no_group_spans_two_splits_and_test_objects_are_never_trained_on(run):
    out, _ = run
    split = pd.read_csv(out / "split.csv")
    assert list(split.columns) == ["object_id", "group", "split"]
    assert (split.groupby("group")["split"].nunique() == 1).all()
    predictions = pd.read_parquet(out / "predictions.parquet")
    honest = predictions[(predictions.split == "object") & (predictions.level == "object")]
    test_ids = set(split.loc[split.split == "test", "object_id"])
    assert set(honest["item"]) == test_ids


@pytest.mark.slow
def test_rerun_resumes_without_retraining(run):
    out, opts = run
    before = pd.read_parquet(out / "predictions.parquet")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("model.*")}
    assert len(stamps) == 7  # seed-cnn twice, taonet, taonet-lc, lc-rf; taonet and lc-rf on 5 classes
    replicate(out, opts)
    assert {p: p.stat().st_mtime_ns for p in (out / "models").rglob("model.*")} == stamps  # nothing refitted
    after = pd.read_parquet(out / "predictions.parquet")
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["taonet", "taonet-lc", "lc-rf", "seed-cnn"])
def test_predict_round_trip_matches_the_run(run, model, tmp_path, capsys):
    out, _ = run
    stage = out / "models" / f"{model}-object-seed0"
    saved = pd.read_parquet(stage / "predictions.parquet")
    saved = saved[saved.level == "object"].set_index("item")
    cache = open_cache(out / "cache")
    paths = cache.objects.set_index("object_id").loc[saved.index, "path"]
    estimator = load_model(stage)
    proba = estimator.predict_proba_arrays([(o.images, o.mjd) for o in map(read_object, paths)])
    columns = [f"prob_{c}" for c in estimator.classes_]
    np.testing.assert_allclose(proba, saved[columns].to_numpy(), rtol=1e-4, atol=1e-5)
    csv = tmp_path / "p.csv"
    assert main(["predict", str(stage), *map(str, paths), "--out", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert list(table["object_id"]) == list(saved.index)
    assert list(table["predicted"]) == list(saved["y_pred"])


@pytest.mark.slow
def test_evaluate_rescoring_reproduces_metrics(run):
    out, _ = run
    before = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["runs"] == before["runs"]


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["replicate", "--out", str(tmp_path), "--models", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'nope'" in err


def test_precision_reaches_every_network_and_no_forest():
    from deeptao.models import create_model
    from deeptao.replicate import _model_kwargs

    opts = ReplicateOptions(precision="32")
    for model in ("seed-cnn", "taonet", "taonet-lc"):
        assert create_model(model, **_model_kwargs(model, opts)).precision == "32", model
    assert _model_kwargs("taonet+rf", opts)["network_params"]["precision"] == "32"
    assert _model_kwargs("lc-rf", opts) == {}
    assert create_model("taonet", **_model_kwargs("taonet", ReplicateOptions())).precision == "auto"


def test_unknown_precision_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["replicate", "--out", str(tmp_path), "--precision", "16"])
    assert exc.value.code == 2 and "--precision" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_every_seed_keeps_its_own_split_file(tmp_path):
    opts = ReplicateOptions(
        objects_per_class=3, survey_seed=5, workers=1, seeds=2, models=("lc-rf",), other_task_models=("lc-rf",)
    )
    replicate(tmp_path, opts)
    first, second = (pd.read_csv(tmp_path / name) for name in ("split.csv", "split-seed1.csv"))
    assert list(first["object_id"]) == list(second["object_id"])
    assert not (first["split"] == second["split"]).all()


def test_a_stage_is_reused_only_under_the_settings_it_was_made_with(tmp_path, capsys):
    opts = ReplicateOptions(
        objects_per_class=3, survey_seed=5, workers=1, seeds=1, tasks=("6class",), models=("lc-rf",), split="object",
        early_nights=(0,),
    )  # fmt: skip
    replicate(tmp_path, opts)
    stage = tmp_path / "models" / "lc-rf-object-seed0"
    model_file = stage / "model.joblib"
    first = model_file.stat().st_mtime_ns
    assert json.loads((stage / "stage.json").read_text())["early_nights"] == [0]

    replicate(tmp_path, ReplicateOptions(**{**opts.__dict__, "max_epochs": 3}))  # a network limit: nothing of the forest's
    assert model_file.stat().st_mtime_ns == first and "lc-rf-object-seed0: already done" in capsys.readouterr().out

    replicate(tmp_path, ReplicateOptions(**{**opts.__dict__, "early_nights": (1, 0)}))
    assert model_file.stat().st_mtime_ns != first and "changed early_nights; fitting it again" in capsys.readouterr().out
    early = pd.read_parquet(tmp_path / "early_predictions.parquet")
    assert sorted(early["nights"].unique()) == [0, 1]

    (stage / "stage.json").unlink()  # a stage of unknown provenance (an older deeptao) is not trusted
    replicate(tmp_path, opts)
    assert "no readable record of its settings; fitting it again" in capsys.readouterr().out
    (stage / "stage.json").write_text('{"model": "lc-')  # cut short: the same, not a crash
    replicate(tmp_path, opts)
    assert "no readable record of its settings; fitting it again" in capsys.readouterr().out
    assert json.loads((stage / "stage.json").read_text())["model"] == "lc-rf"


@pytest.mark.slow
def test_stages_fitted_in_worker_processes_predict_as_those_fitted_here(tmp_path, monkeypatch):
    """Two stages at once, each in a worker on one thread, give the predictions of one-at-a-time fits on one thread."""
    import deeptao.replicate as rep

    opts = ReplicateOptions(
        objects_per_class=3, survey_seed=5, max_epochs=1, workers=1, seeds=1, tasks=("6class",),
        models=("taonet", "lc-rf"), split="object", early_nights=(1, 0),
    )  # fmt: skip
    monkeypatch.setattr(rep, "_thread_budget", lambda: 1)
    replicate(tmp_path / "here", ReplicateOptions(**{**opts.__dict__, "jobs": 1}))
    monkeypatch.setattr(rep, "_thread_budget", lambda: 2)
    replicate(tmp_path / "workers", ReplicateOptions(**{**opts.__dict__, "jobs": 2}))
    for name in ("predictions.parquet", "early_predictions.parquet"):
        here, there = (pd.read_parquet(tmp_path / run / name) for run in ("here", "workers"))
        assert len(here) and here["model"].nunique() == 2
        pd.testing.assert_frame_equal(here, there, check_exact=True)
    stage = tmp_path / "workers" / "models" / "taonet-object-seed0"
    assert json.loads((stage / "stage.json").read_text())["threads"] == 1
    assert "model stages fitted 2 at a time, each network on 1 torch thread (scores depend on it)" in (tmp_path / "workers" / "report.md").read_text()


def test_threads_per_stage_share_the_cpus_and_record_on_network_stages_only(tmp_path, monkeypatch):
    import deeptao.replicate as rep

    monkeypatch.setattr(rep, "_thread_budget", lambda: 16)
    assert rep._threads_per_stage(ReplicateOptions()) == 4  # at most 4 stages at once by default
    assert rep._threads_per_stage(ReplicateOptions(jobs=3)) == 5
    assert rep._threads_per_stage(ReplicateOptions(jobs=32)) == 1
    monkeypatch.setattr(rep, "_thread_budget", lambda: 2)
    assert rep._threads_per_stage(ReplicateOptions()) == 1
    assert rep._threads_per_stage(ReplicateOptions(jobs=1)) == 2


def test_a_stage_fitted_with_other_threads_is_fitted_again_and_a_forest_is_not(tmp_path, monkeypatch, capsys):
    import deeptao.replicate as rep

    opts = ReplicateOptions(
        objects_per_class=3, survey_seed=5, max_epochs=1, workers=1, seeds=1, tasks=("6class",),
        models=("taonet", "lc-rf"), split="object", early_nights=(0,), jobs=1,
    )  # fmt: skip
    monkeypatch.setattr(rep, "_thread_budget", lambda: 1)
    replicate(tmp_path, opts)
    capsys.readouterr()
    monkeypatch.setattr(rep, "_thread_budget", lambda: 2)
    replicate(tmp_path, opts)
    out = capsys.readouterr().out
    assert "taonet-object-seed0: changed threads; fitting it again" in out
    assert "lc-rf-object-seed0: already done" in out


def test_a_stage_that_fails_in_a_worker_stops_the_run_with_its_error(tmp_path):
    import deeptao.replicate as rep
    from tests._simulated import simulated_cache

    cache = simulated_cache(tmp_path, objects_per_class=2, seed=3)
    split = np.array(["train"] * len(cache), dtype=object)
    stages = [rep._Stage(tmp_path / f"s{k}", "6class", "no-such-model", "object", k, split, None) for k in range(2)]
    tasks = {"6class": None}
    with pytest.raises(ValueError, match="no-such-model"):
        rep._fit_stages(stages, cache, tasks, ReplicateOptions(jobs=2), threads=1)


def test_jobs_below_one_is_refused(tmp_path, capsys):
    assert main(["replicate", "--out", str(tmp_path / "run"), "--jobs", "0"]) == 1
    assert "jobs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
