"""``deeptao train``: configurations, the output folder, bad input, and training in two processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deeptao.cli import main
from deeptao.data import datasets
from deeptao.data.datasets import ImageBatchSampler, ObjectBatchSampler
from deeptao.experiment import ConfigError, dump_spec, resolve_spec
from tests._simulated import simulated_cache

TINY = ["--max-epochs", "1", "--param", "embed=16", "--param", "hidden=8", "--param", "views=1"]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A tiny simulated survey and its prepared cache."""
    root = tmp_path_factory.mktemp("train")
    simulated_cache(root, objects_per_class=5, seed=4)
    return root


@pytest.fixture(scope="module")
def trained(survey):
    """One taonet training through the command line, shared by the tests that only read its folder."""
    out = survey / "taonet"
    assert main(["train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(out), *TINY]) == 0
    return out


# --------------------------------------------------------------------------- samplers shard by rank


def _batches(sampler, rank, world, monkeypatch):
    monkeypatch.setattr(datasets, "process_group", lambda: (rank, world))
    return list(sampler), len(sampler)


@pytest.mark.parametrize("world", [2, 3])
def test_training_shards_are_disjoint_and_make_up_the_single_process_batches(world, monkeypatch):
    single = ObjectBatchSampler(23, 2 * world, train=True, seed=5)
    single.set_epoch(3)
    whole, _ = _batches(single, 0, 1, monkeypatch)
    shards = []
    for rank in range(world):
        sampler = ObjectBatchSampler(23, 2, train=True, seed=5)
        sampler.set_epoch(3)
        batches, n = _batches(sampler, rank, world, monkeypatch)
        assert n == len(batches) == len(whole)  # every rank takes as many steps
        shards.append(batches)
    seen = [key for batches in shards for batch in batches for key in batch]
    assert len(seen) == -(-23 // world) * world  # padded to a multiple of the world size
    assert {key[0] for key in seen} == set(range(23))
    for k, batch in enumerate(whole[:-1]):  # the k-th global batch is the union of the ranks' k-th batches
        assert sorted(batch) == sorted(key for shard in shards for key in shard[k])


def test_evaluation_shards_partition_the_items_without_repeats(monkeypatch):
    for sampler in (ObjectBatchSampler(11, 4), ImageBatchSampler(11, 4)):
        items, lengths = [], []
        for rank in range(3):
            batches, n = _batches(sampler, rank, 3, monkeypatch)
            lengths.append(n)
            items += [key for batch in batches for key in batch]
            assert n == len(batches)
        assert sorted(items) == list(range(11))


def test_image_training_shards_keep_the_per_object_draw(monkeypatch):
    groups = [np.arange(0, 30), np.arange(30, 34), np.arange(34, 60)]
    sampler = ImageBatchSampler(60, 5, groups=groups, per_group=8, shuffle=True, augment=True, seed=1)
    whole, _ = _batches(sampler, 0, 1, monkeypatch)
    parts = [_batches(sampler, r, 2, monkeypatch)[0] for r in range(2)]
    flat = sorted(k for batches in parts for b in batches for k in b)
    assert flat == sorted(k for b in whole for k in b)  # 20 items: nothing to pad


def test_an_epoch_cap_draws_a_fresh_subset_of_that_size_and_shards_it(monkeypatch):
    groups = [np.arange(0, 30), np.arange(30, 34), np.arange(34, 60)]
    sampler = ImageBatchSampler(60, 4, groups=groups, per_group=8, max_items=10, shuffle=True, augment=True, seed=2)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches, n = _batches(sampler, 0, 1, monkeypatch)
        items = [key[0] for batch in batches for key in batch]
        assert n == len(batches) == 3 and len(items) == len(set(items)) == 10
        per_object = [sum(int(i in g) for i in items) for g in groups]
        assert all(k <= 8 for k in per_object)  # the per-object draw still holds
        epochs.append(frozenset(items))
        parts = [_batches(sampler, r, 2, monkeypatch)[0] for r in range(2)]
        assert sorted(k[0] for b in parts[0] + parts[1] for k in b) == sorted(items)
    assert len(set(epochs)) > 1  # not the same ten every epoch
    uncapped = ImageBatchSampler(60, 4, groups=groups, per_group=8, max_items=100, shuffle=True, seed=2)
    assert _batches(uncapped, 0, 1, monkeypatch)[1] == 5  # 20 items drawn, under the cap
    with pytest.raises(ValueError, match="max_items"):
        ImageBatchSampler(60, 4, max_items=0)


def _gather_worker(rank: int, world: int, init: str, results: str) -> None:
    import torch.distributed as dist

    from deeptao.training import ClassifierModule

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    module = ClassifierModule(torch.nn.Linear(2, 3), 3)
    # rank r scored the items r, r + world, ...; rank 1 of 3 scores nothing of 1 item's worth
    mine = np.arange(rank, 7, world)
    module._val_outputs.append(
        (torch.full((len(mine), 3), float(rank)), torch.as_tensor(mine % 3), torch.as_tensor(mine))
    )
    log_proba, y, owner = module._gathered_outputs()
    np.savez(Path(results) / f"rank{rank}.npz", log_proba=log_proba, y=y, owner=owner)
    dist.destroy_process_group()


def test_validation_outputs_are_gathered_from_every_rank(tmp_path):
    world = 3
    init = f"file://{tmp_path / 'rendezvous'}"
    torch.multiprocessing.spawn(_gather_worker, args=(world, init, str(tmp_path)), nprocs=world, join=True)
    for rank in range(world):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert sorted(got["owner"].tolist()) == list(range(7))
        np.testing.assert_array_equal(got["y"], got["owner"] % 3)
        np.testing.assert_array_equal(got["log_proba"][:, 0], got["owner"] % world)


# --------------------------------------------------------------------------- configurations


def test_printed_configuration_reads_back_unchanged(tmp_path, capsys):
    assert main(["train", "--cache", "C", "--model", "taonet", "--out", "D", "--lr", "0.01", "--param", "hidden=12", "--print-config"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(printed)
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    spec = resolve_spec(config=tmp_path / "c.yaml")
    assert spec.params["lr"] == 0.01 and spec.params["hidden"] == 12 and spec.params["embed"] == 64
    import inspect

    from deeptao.models.taonet import TaoNetClassifier

    own = inspect.signature(TaoNetClassifier.__init__).parameters["max_epochs"].default
    assert spec.params["max_epochs"] == own  # taonet's own default, from its constructor
    assert dump_spec(spec) == printed


def test_a_models_defaults_print_without_a_cache(capsys):
    assert main(["train", "--model", "lc-rf", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "cache: CACHE\n" in printed and "out: DIR\n" in printed and "n_estimators: 500\n" in printed


def test_command_line_overrides_the_file_and_toml_is_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "seed-cnn"\ncache = "C"\nout = "D"\nseed = 3\n[params]\nlr = 0.5\nbatch_size = 8\n')
    spec = resolve_spec(config=path, run={"seed": 7}, params={"batch_size": 16})
    assert (spec.model, spec.seed, spec.params["lr"], spec.params["batch_size"]) == ("seed-cnn", 7, 0.5, 16)
    assert spec.params["max_images_per_object"] == 8


def test_lc_rf_settings_dataclass_round_trips(tmp_path):
    from deeptao.lightcurves import PhotometrySettings

    path = tmp_path / "c.yaml"
    path.write_text("model: lc-rf\ncache: C\nout: D\nparams:\n  n_estimators: 50\n  photometry: {aperture: 3.0}\n")
    spec = resolve_spec(config=path)
    assert spec.params["photometry"] == PhotometrySettings(aperture=3.0)
    again = tmp_path / "again.yaml"
    again.write_text(dump_spec(spec))
    assert resolve_spec(config=again) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: taonet\ncache: C\nout: D\nepochs: 3\n", "unknown key 'epochs'"),
        ("model: taonet\ncache: C\nout: D\nparams: {depth: 3}\n", "taonet has no parameter 'depth'"),
        ("model: taonet\ncache: C\nout: D\nparams: {lr: fast}\n", "lr must be float"),
        ("model: taonet\ncache: C\nout: D\nparams: {devices: 0}\n", "devices must be a positive int"),
        ("model: taonet\ncache: C\nout: D\nparams: {logger: wandb}\n", "logger must be one of csv, tensorboard"),
        ("model: nonet\ncache: C\nout: D\n", "unknown model 'nonet'"),
        ("model: taonet\ncache: C\nout: D\ntask: 7class\n", "unknown task '7class'"),
        ("model: taonet\nout: D\n", "no cache"),
        ("model: [taonet\n", "not valid YAML (line 2"),
        ("- taonet\n", "a configuration is a mapping"),
        ("", "no model: give --model or 'model:' in "),  # an empty file
    ],
)
def test_bad_configurations_are_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        resolve_spec(config=path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the output folder


def test_train_folder_is_read_by_predict_and_evaluate(trained, survey, tmp_path, capsys):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "split.csv", "model.pt", "predictions.parquet", "last.ckpt", "metrics.json"} <= names
    assert (trained / "logs" / "version_0" / "metrics.csv").is_file()
    split = pd.read_csv(trained / "split.csv")
    predictions = pd.read_parquet(trained / "predictions.parquet")
    test_ids = set(split.loc[split["split"] == "test", "object_id"])
    assert set(predictions["item"]) == test_ids  # the test objects, and only they, are scored
    files = sorted(str(p) for p in (survey / "release").rglob("*.fits"))[:3]
    out = tmp_path / "p.csv"
    assert main(["predict", str(trained), *files, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 3
    capsys.readouterr()
    assert main(["evaluate", str(trained)]) == 0
    assert "taonet" in capsys.readouterr().out


def test_same_command_resumes_and_another_configuration_is_refused(trained, survey, capsys):
    args = ["train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(trained)]
    (trained / "model.pt").unlink()  # as if killed after the last checkpoint
    assert main([*args, *TINY]) == 0
    assert (trained / "model.pt").is_file()
    # the training had run to its end: it is loaded from its checkpoint, not trained again
    assert (trained / "finished.json").is_file() and not (trained / "logs" / "version_1").exists()
    capsys.readouterr()
    assert main([*args, *TINY, "--lr", "0.1"]) == 1
    assert "holds another training (config.yaml differs)" in capsys.readouterr().err


def test_a_given_split_file_is_used_and_kept(trained, survey, tmp_path):
    split = pd.read_csv(trained / "split.csv")
    split["split"] = np.where(split["split"] == "test", "train", np.where(split["split"] == "train", "test", split["split"]))
    path = tmp_path / "mine.csv"
    split.to_csv(path, index=False)
    out = tmp_path / "rf"
    assert main(["train", "--cache", str(survey / "cache"), "--model", "lc-rf", "--out", str(out), "--split", str(path), "--param", "n_estimators=20"]) == 0
    assert (out / "model.joblib").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(out / "split.csv"), split)
    scored = set(pd.read_parquet(out / "predictions.parquet")["item"])
    assert scored == set(split.loc[split["split"] == "test", "object_id"])


def test_tensorboard_logger_writes_event_files(survey, tmp_path):
    out = tmp_path / "tb"
    assert main(["train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(out), *TINY, "--logger", "tensorboard"]) == 0
    version = out / "logs" / "version_0"
    assert (version / "metrics.csv").is_file()
    assert list(version.glob("events.out.tfevents.*"))


def _foreign_split(survey, tmp_path):
    """A split of every object of the cache and one that is not in it."""
    ids = pd.read_parquet(Path(survey) / "cache" / "objects.parquet")["object_id"]
    path = tmp_path / "foreign.csv"
    pd.DataFrame({"object_id": [*ids, "CSS000000:000000+000000"], "split": "train"}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nonet"], "unknown model 'nonet'"),
        (["--model", "lc-rf", "--devices", "2"], "--devices: lc-rf has no parameter 'devices'"),
        (["--model", "taonet", "--accelerator", "cpu", "--devices", "100000"], "devices 100000: this machine has"),
        (["--model", "taonet", "--accelerator", "gpu"] if not torch.cuda.is_available() else ["--model", "taonet", "--devices", "100000"], "this machine has"),
        (["--model", "taonet", "--logger", "wandb"], "logger must be one of"),
        (["--model", "taonet", "--param", "depth=3"], "--param depth: taonet has no parameter 'depth'"),
        (["--model", "taonet", "--param", "depth"], "expected NAME=VALUE"),
        (["--model", "taonet", "--cache", "NOTACACHE"], "NOTACACHE"),
        (["--model", "taonet", "--split", "FOREIGN"], "1 objects are not in the cache"),
        (["--model", "taonet", "--split", "MISSING.csv"], "no such split file"),
        (["--model", "taonet", "--split", "EMPTY.csv"], "EMPTY.csv: not a readable split table"),
        (["--model", "taonet", "--split", "NOTRAIN"], "the split leaves no training object"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_folder(survey, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    (tmp_path / "EMPTY.csv").write_text("")
    ids = pd.read_parquet(Path(survey) / "cache" / "objects.parquet")["object_id"]
    pd.DataFrame({"object_id": ids, "split": "val"}).to_csv(tmp_path / "NOTRAIN", index=False)
    extra = [str(_foreign_split(survey, tmp_path)) if e == "FOREIGN" else str(tmp_path / e) if e == "NOTRAIN" else str(tmp_path / e) if e in ("NOTACACHE", "MISSING.csv", "EMPTY.csv") else e for e in extra]
    args = ["train", "--cache", str(survey / "cache"), "--out", str(out), *TINY[:2]]
    if "--cache" in extra:
        args = ["train", "--out", str(out), *TINY[:2]]
    assert main([*args, *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("deeptao train: error:")
    assert not out.exists()


def test_a_folder_holding_something_else_is_refused(survey, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(out), *TINY]) == 1
    assert "not empty and not a training folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_cpu_processes_with_gloo_train_a_model_predict_reads(survey, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "deeptao", "train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(out),
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--batch-size", "4", "--max-epochs", "2",
        "--param", "embed=16", "--param", "hidden=8", "--param", "views=1", "--param", "threads=1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained taonet") == 1  # only the main process reports and writes
    metrics = pd.read_csv(out / "logs" / "version_0" / "metrics.csv")
    n_train = int((pd.read_csv(out / "split.csv")["split"] == "train").sum())
    # each process took ceil(ceil(n / 2) / 4) steps an epoch: the batches were sharded
    assert metrics["step"].max() + 1 == 2 * math.ceil(math.ceil(n_train / 2) / 4)
    assert np.isfinite(metrics["val_loss"].dropna()).all() and len(metrics["val_f1"].dropna()) == 2
    files = sorted(str(p) for p in (survey / "release").rglob("*.fits"))[:2]
    assert main(["predict", str(out), *files, "--out", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2


def test_the_inputs_lock_lets_one_process_build_while_the_others_wait(tmp_path):
    import threading
    import time

    from deeptao.experiment import _inputs_lock

    events = []

    def build(name, hold):
        with _inputs_lock(tmp_path):
            events.append((name, "in", time.perf_counter()))
            time.sleep(hold)
            events.append((name, "out", time.perf_counter()))

    first = threading.Thread(target=build, args=("first", 0.3))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=build, args=("second", 0.0))
    second.start()
    first.join()
    second.join()
    assert [(n, e) for n, e, _ in events] == [("first", "in"), ("first", "out"), ("second", "in"), ("second", "out")]
    assert (tmp_path / ".inputs.lock").exists()


@pytest.mark.parametrize(
    ("env", "main_process"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),  # torchrun
        ({"LOCAL_RANK": "1"}, False),  # a process Lightning started
        ({"NODE_RANK": "1"}, False),  # the first process of the second machine
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "4"}, False),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "LOCAL_RANK": "0"}, True),  # a one-task job
    ],
)
def test_the_main_process_is_told_from_the_launchers_environment(monkeypatch, env, main_process):
    from deeptao.training import is_main_process

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_main_process() is main_process


def test_a_run_without_a_terminal_reports_each_epoch_on_one_line(survey, tmp_path, capsys):
    out = tmp_path / "epochs"
    args = ["train", "--cache", str(survey / "cache"), "--model", "taonet", "--out", str(out), *TINY[2:], "--max-epochs", "2"]
    assert main(args) == 0  # pytest's standard error is no terminal: no bar, one line per epoch
    lines = [line for line in capsys.readouterr().err.splitlines() if "] epoch " in line]
    assert [line.split("] ", 1)[1].split(",")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in line and "validation loss" in line and line.endswith(" s)") for line in lines)
