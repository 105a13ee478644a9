"""Lightning training: resumption, best weights, determinism, the validation metric."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight

from deeptao.data.datasets import ImageBatchSampler, ImageDataset
from deeptao.models import create_model
from deeptao.models._torch import make_loader
from deeptao.models.pooling import choose_pooling, pool, pool_log_proba
from deeptao.models.seed_cnn import SeedCNN
from deeptao.training import (
    ClassifierModule,
    TrainConfig,
    TrainingResumeWarning,
    balanced_class_weights,
    fit_module,
    read_metrics,
)
from tests._fake_cache import blob_survey

CLASSES2 = ("source", "sky")


@pytest.fixture(scope="module")
def blob():
    cache, y = blob_survey(n_per_class=8, n_images=5, seed=0)
    rows = np.arange(len(y))
    return cache, y, rows[rows % 4 != 0], rows[rows % 4 == 0]


def _fit(blob, workdir, max_epochs, seed=0, **kw):
    cache, y, train, val = blob
    model = create_model("seed-cnn", max_epochs=max_epochs, batch_size=8, patience=50, progress=False, **kw)
    return model.fit(cache, train, y[train], classes=CLASSES2, val_rows=val, y_val=y[val], seed=seed, workdir=workdir)


@pytest.mark.slow
def test_a_finished_fit_resumes_without_steps_and_a_longer_one_starts_afresh(blob, tmp_path):
    first = _fit(blob, tmp_path, max_epochs=2)
    steps = first.fit_result_.global_step
    assert steps > 0 and not first.fit_result_.resumed
    assert (tmp_path / "last.ckpt").is_file() and (tmp_path / "best.ckpt").is_file()

    again = _fit(blob, tmp_path, max_epochs=2)
    assert again.fit_result_.resumed and again.fit_result_.global_step == steps  # nothing left to do
    curves = read_metrics(tmp_path)
    assert sorted(curves.dropna(subset=["val_f1"]).epoch) == [0, 1]  # the first run's epochs are kept

    # the learning-rate schedule spans max_epochs: a longer run is another training
    with pytest.warns(TrainingResumeWarning, match="different training"):
        longer = _fit(blob, tmp_path, max_epochs=3)
    assert not longer.fit_result_.resumed and longer.fit_result_.global_step == 3 * steps // 2


@pytest.mark.slow
def test_other_training_in_workdir_is_not_resumed(blob, tmp_path):
    _fit(blob, tmp_path, max_epochs=1)
    with pytest.warns(TrainingResumeWarning, match="different training"):
        other = _fit(blob, tmp_path, max_epochs=1, lr=5e-4)
    assert not other.fit_result_.resumed and other.fit_result_.epochs == 1


class _Crash(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise RuntimeError("power cut")


def _module_and_loaders(blob, seed=0):
    cache, y, train, val = blob
    owner_rows = cache.images.object.to_numpy()
    train_img = np.flatnonzero(np.isin(owner_rows, train))
    val_img = np.flatnonzero(np.isin(owner_rows, val))
    train_set = ImageDataset(cache, train_img, y[owner_rows[train_img]])
    val_set = ImageDataset(cache, val_img, y[owner_rows[val_img]], owner_rows[val_img])
    train_loader = make_loader(train_set, ImageBatchSampler(len(train_set), 16, shuffle=True, seed=seed), 0, seed)
    val_loader = make_loader(val_set, ImageBatchSampler(len(val_set), 64), 0, seed)
    torch.manual_seed(seed)
    return ClassifierModule(SeedCNN(2), 2), train_loader, val_loader


@pytest.mark.slow
def test_an_interrupted_fit_continues_where_it_stopped(blob, tmp_path):
    config = TrainConfig(max_epochs=4, patience=50, progress=False)
    module, train_loader, val_loader = _module_and_loaders(blob)
    with pytest.raises(RuntimeError, match="power cut"):
        fit_module(module, train_loader, val_loader, config=config, workdir=tmp_path, callbacks=[_Crash()])
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 1  # two epochs finished before the crash

    module, train_loader, val_loader = _module_and_loaders(blob)
    result = fit_module(module, train_loader, val_loader, config=config, workdir=tmp_path)
    assert result.resumed and result.epochs == 4
    assert result.global_step == 4 * len(train_loader)


@pytest.mark.slow
def test_network_keeps_the_best_validation_weights(blob, tmp_path):
    model = _fit(blob, tmp_path, max_epochs=3)
    best = torch.load(tmp_path / "best.ckpt", weights_only=True)
    assert best["state_dict"].keys() == {f"network.{k}" for k in model.network_.state_dict()}
    for name, value in model.network_.state_dict().items():
        torch.testing.assert_close(value, best["state_dict"][f"network.{name}"], rtol=0, atol=0)
    scores = read_metrics(tmp_path).dropna(subset=["val_loss"]).val_loss  # the default monitor
    assert model.fit_result_.best_score == pytest.approx(scores.min())


@pytest.mark.slow
def test_same_seed_same_model(blob):
    cache, y, _, val = blob
    a = _fit(blob, None, max_epochs=1, seed=3).predict_proba(cache, val)
    b = _fit(blob, None, max_epochs=1, seed=3).predict_proba(cache, val)
    c = _fit(blob, None, max_epochs=1, seed=4).predict_proba(cache, val)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_balanced_weights_match_scikit_learn():
    y = np.array([0, 0, 0, 1, 2, 2, 0, 0])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 3), expected)
    assert balanced_class_weights(y, 4)[3] == 0  # absent class


def test_pooling_is_the_renormalised_mean_log_probability():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=7)
    owner = np.array([0, 0, 1, 1, 1, 3, 3])
    pooled = pool_log_proba(np.log(proba), owner, 4)
    for k in (0, 1, 3):
        geometric = np.exp(np.log(proba[owner == k]).mean(axis=0))
        np.testing.assert_allclose(pooled[k], geometric / geometric.sum())
    np.testing.assert_allclose(pooled[2], np.full(3, 1 / 3))  # no items: uniform


class _Logits(torch.nn.Module):
    def forward(self, x):
        return x


def test_mean_and_topk_pooling_follow_their_definitions():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=12)
    owner = np.r_[np.zeros(9, int), np.ones(3, int)]
    mean = pool(np.log(proba), owner, 3, "mean")
    np.testing.assert_allclose(mean[0], proba[:9].mean(axis=0) / proba[:9].mean(axis=0).sum())
    np.testing.assert_allclose(mean[2], np.full(3, 1 / 3))
    top = pool(np.log(proba), owner, 3, "topk")
    k = 3  # a quarter of 9 images, rounded up
    expected = np.sort(proba[:9], axis=0)[-k:].mean(axis=0)
    np.testing.assert_allclose(top[0], expected / expected.sum())
    # one image that shows the event among images sure there is none: the geometric mean all but
    # ignores it, the mean counts it by its share, the top-k by its rank
    quiet = np.tile([0.02, 0.98], (9, 1))
    event = np.array([[0.999, 0.001]])
    log_p = np.log(np.vstack([quiet, event]))
    owner = np.zeros(10, int)
    assert pool(log_p, owner, 1, "geometric")[0, 0] < pool(log_p, owner, 1, "mean")[0, 0] < pool(log_p, owner, 1, "topk")[0, 0]
    with pytest.raises(ValueError, match="pooling rule"):
        pool(log_p, owner, 1, "median")


def test_pooling_is_chosen_by_validation_macro_f1():
    # class 0 objects: seven images leaning to class 0 and one glitch sure of class 1, which vetoes
    # class 0 under the geometric mean and tops class 1 under the top-k; the mean alone gets it right
    items, owner = [], []
    for k in range(6):
        rows = [[0.6, 0.4]] * 7 + [[1e-4, 1 - 1e-4]] if k < 3 else [[0.4, 0.6]] * 8
        items += rows
        owner += [k] * len(rows)
    rule, table = choose_pooling(np.log(np.array(items)), np.array(owner), np.array([0, 0, 0, 1, 1, 1]))
    assert rule == "mean" and table["mean"]["macro_f1"] == 1.0
    assert table["geometric"]["macro_f1"] < 1.0 and table["topk"]["macro_f1"] < 1.0


def test_warmup_then_cosine_schedule_and_smoothing_in_training_only():
    net = torch.nn.Linear(3, 3)
    module = ClassifierModule(net, 3, lr=0.1, warmup=0.1, label_smoothing=0.2)

    class _Trainer:
        estimated_stepping_batches = 100

    module._trainer = _Trainer()  # what configure_optimizers reads
    config = ClassifierModule.configure_optimizers(module)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)
    assert rates[10] == pytest.approx(0.1) and rates[55] == pytest.approx(0.05, rel=0.05) and rates[99] < 1e-3
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    logits = torch.tensor([[4.0, 0, 0]])
    batch = {"x": logits, "y": torch.tensor([0])}
    module.network = _Logits()
    module.log = lambda *a, **k: None
    train_loss = module._common_step(batch, "train")[0]
    val_loss = module._common_step(batch, "val")[0]
    assert val_loss == pytest.approx(torch.nn.functional.cross_entropy(logits, batch["y"]).item())
    assert train_loss > val_loss  # smoothing penalises the confident right answer
    with pytest.raises(ValueError):
        ClassifierModule(net, 3, schedule="step")


def test_validation_f1_is_object_level_macro_f1():
    module = ClassifierModule(_Logits(), 3, pool_items=pool_log_proba)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    logits = torch.tensor([[3.0, 0, 0], [0, 3, 0], [2, 0, 0], [0, 0, 3], [0, 0.5, 0], [0, 2, 0]])
    batch = {"x": logits, "y": torch.tensor([0, 0, 1, 1, 2, 2]), "owner": torch.tensor([7, 7, 8, 8, 9, 9])}
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    pooled = pool_log_proba(torch.log_softmax(logits, 1).numpy(), np.array([0, 0, 1, 1, 2, 2]), 3)
    expected = f1_score([0, 1, 2], pooled.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    assert logged["val_f1"] == pytest.approx(expected)
    assert "val_loss" in logged


def test_bad_config_and_empty_logs(tmp_path):
    with pytest.raises(ValueError, match="monitor"):
        fit_module(None, None, config=TrainConfig(monitor="accuracy"))
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path)


class _Steps(L.Callback):
    """Records the network's own weights after every optimiser step (the averaging runs before it)."""

    def __init__(self):
        self.weights = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(pl_module.network.weight.detach().clone())


class _Linear(torch.nn.Linear):
    def forward(self, x):  # the batch's inputs come as keywords
        return super().forward(x)


def _linear_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.normal(size=(48, 4)), dtype=torch.float32)
    y = torch.as_tensor((x[:, 0] > 0).long())
    batches = [{"x": x[i : i + 8], "y": y[i : i + 8]} for i in range(0, 48, 8)]
    torch.manual_seed(seed)
    return ClassifierModule(_Linear(4, 2), 2, lr=0.05), torch.utils.data.DataLoader(batches, batch_size=None)


@pytest.mark.parametrize("decay", [0.0, 0.8])
def test_weight_averaging_keeps_the_exponential_average_of_the_steps(decay, tmp_path):
    module, loader = _linear_problem()
    steps = _Steps()
    config = TrainConfig(max_epochs=3, progress=False, average_decay=decay)
    result = fit_module(module, loader, config=config, workdir=tmp_path, callbacks=[steps])
    assert result.global_step == len(steps.weights) == 18
    expected = steps.weights[0]
    for w in steps.weights[1:]:
        expected = decay * expected + (1 - decay) * w
    torch.testing.assert_close(module.network.weight.detach(), expected if decay else steps.weights[-1])
    if decay:
        assert not torch.allclose(steps.weights[-1], expected)  # the average is not the last step
        saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
        torch.testing.assert_close(saved["state_dict"]["network.weight"], expected)
        torch.testing.assert_close(saved["current_model_state"]["network.weight"], steps.weights[-1])


def test_an_interrupted_weight_averaging_fit_resumes_to_the_same_average(tmp_path):
    config = TrainConfig(max_epochs=4, progress=False, average_decay=0.8)
    module, loader = _linear_problem()
    fit_module(module, loader, config=config, workdir=tmp_path / "whole")
    whole = module.network.weight.detach().clone()

    module, loader = _linear_problem()
    with pytest.raises(RuntimeError, match="power cut"):
        fit_module(module, loader, config=config, workdir=tmp_path / "cut", callbacks=[_Crash()])
    module, loader = _linear_problem()
    result = fit_module(module, loader, config=config, workdir=tmp_path / "cut")
    assert result.resumed and result.global_step == 4 * len(loader)
    # the average carries on from the checkpoint: not restarted from the resumed step's weights
    torch.testing.assert_close(module.network.weight.detach(), whole)


def test_a_deterministic_fit_leaves_the_callers_torch_settings_alone(tmp_path):
    module, loader = _linear_problem()
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.backends.cudnn.benchmark
    config = TrainConfig(max_epochs=1, progress=False, deterministic=True, threads=1)
    fit_module(module, loader, config=config, workdir=tmp_path)
    after = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.backends.cudnn.benchmark
    assert after == before


def test_a_fit_leaves_the_callers_random_streams_and_environment_alone(tmp_path, monkeypatch):
    import os
    import random

    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    module, loader = _linear_problem()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = random.random(), np.random.random(), torch.rand(1).item()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    fit_module(module, loader, config=TrainConfig(max_epochs=1, progress=False, deterministic=True), workdir=tmp_path, seed=123)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert not {"PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"} & set(os.environ)


def _rising_validation():
    """A validation set labelled by the opposite rule: its loss rises from the first epoch, so training stops early."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(16, 4)), dtype=torch.float32)
    batch = {"x": x, "y": torch.as_tensor((x[:, 0] <= 0).long()), "owner": torch.arange(16)}
    return torch.utils.data.DataLoader([batch], batch_size=None)


def test_a_training_that_stopped_early_is_not_trained_further_when_started_again(tmp_path):
    config = TrainConfig(max_epochs=20, patience=2, progress=False, monitor="val_loss")
    module, loader = _linear_problem()
    first = fit_module(module, loader, _rising_validation(), config=config, workdir=tmp_path)
    weights = module.network.weight.detach().clone()
    assert first.epochs < 20 and (tmp_path / "finished.json").is_file()

    module, loader = _linear_problem()  # fresh weights: only the checkpoint can give the first run's back
    again = fit_module(module, loader, _rising_validation(), config=config, workdir=tmp_path)
    assert again.resumed and (again.epochs, again.global_step, again.best_score) == (first.epochs, first.global_step, first.best_score)
    torch.testing.assert_close(module.network.weight.detach(), weights)
    assert sorted(read_metrics(tmp_path).dropna(subset=["val_loss"]).epoch) == list(range(first.epochs))


def test_an_interrupted_training_is_not_recorded_as_finished(tmp_path):
    config = TrainConfig(max_epochs=4, progress=False)
    module, loader = _linear_problem()
    with pytest.raises(RuntimeError, match="power cut"):
        fit_module(module, loader, config=config, workdir=tmp_path, callbacks=[_Crash()])
    assert (tmp_path / "last.ckpt").is_file() and not (tmp_path / "finished.json").exists()
    module, loader = _linear_problem()
    result = fit_module(module, loader, config=config, workdir=tmp_path)
    assert result.resumed and result.global_step == 4 * len(loader) and (tmp_path / "finished.json").is_file()
