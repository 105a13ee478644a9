"""Figures are written, readable, and survive the awkward cutouts the release contains."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from astropy.visualization import ZScaleInterval
from matplotlib.figure import Figure

from deeptao.evaluation import CONFUSION_FILE, TASK_CLASSES, aggregate, evaluate_run, save_predictions, score
from deeptao.plotting import (
    _epoch_series,
    plot_confusion_matrices,
    plot_object,
    plot_run_figures,
    plot_sample_images,
    plot_training_curves,
    show_object,
    zscale_limits,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_px=(150, 150)):
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = mpimg.imread(path)
    assert pixels.shape[0] >= min_px[0] and pixels.shape[1] >= min_px[1]
    assert pixels[..., :3].std() > 0.01  # something was drawn, not a blank canvas


def sky(rng, n, level=2000.0):
    """uint16 cutouts: sky noise plus a faint star, as CRTS images look."""
    yy, xx = np.mgrid[:64, :64]
    star = 400.0 * np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 8.0)
    return np.clip(rng.normal(level, 30.0, size=(n, 64, 64)) + star, 0, 65535).astype(np.uint16)


def test_zscale_limits_match_astropy_and_survive_flat_images():
    rng = np.random.default_rng(0)
    image = sky(rng, 1)[0]
    assert zscale_limits(image) == pytest.approx(ZScaleInterval().get_limits(image.astype(np.float32)))
    for flat in (np.zeros((64, 64), np.uint16), np.full((64, 64), 65535, np.uint16), np.full((64, 64), np.nan)):
        lo, hi = zscale_limits(flat)
        assert np.isfinite([lo, hi]).all() and hi > lo


def test_plot_object_orders_by_mjd_and_handles_blank_images():
    rng = np.random.default_rng(1)
    images = sky(rng, 10)
    images[3] = 0  # blank
    images[7] = 2000  # constant
    mjd = rng.permutation(53500.0 + np.arange(10) * 1.25)
    fig = plot_object(images, mjd, title="CSS080101:000000+000000 SN", ncols=4)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"{m:.3f}" for m in np.sort(mjd)]
    assert "CSS080101:000000+000000 SN" in fig._suptitle.get_text()

    few = plot_object(images, mjd, title="x", max_images=4)
    shown = [float(ax.get_title()) for ax in few.axes if ax.get_title()]
    assert len(shown) == 4 and shown[0] == mjd.min() and shown[-1] == mjd.max()


def test_show_object_default_name_replaces_colons(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    images = sky(rng, 6)
    images[0] = 0
    obj = SimpleNamespace(
        object_id="CSS071204:100029+071116",
        crts_id="CSS071204:100029+071116",
        label="AGN",
        mjd=np.sort(53000 + rng.random(6) * 900),
        images=images,
        blank=np.array([True, False, False, False, False, False]),
    )
    monkeypatch.chdir(tmp_path)
    out = show_object(obj)
    assert out == tmp_path / "CSS071204_100029+071116.png"
    fig = plot_object(obj.images, obj.mjd, title="t", blank=obj.blank)
    assert [ax.get_title().endswith("blank") for ax in fig.axes] == list(obj.blank)
    assert_png(out)
    explicit = show_object(obj, tmp_path / "sub" / "obj.png", max_images=2)
    assert_png(explicit, min_px=(100, 100))


def test_plot_sample_images(tmp_path):
    rng = np.random.default_rng(3)
    objects = {
        "SN": ("CSS080101:000000+000000", sky(rng, 12), 53000 + np.arange(12.0)),
        "NON": ("nonCSS:150.12+7.1899", np.zeros((2, 64, 64), np.uint16), np.array([53001.0, 53000.0])),
        "BZ": ("CSS090101:000000+000000", sky(rng, 5, level=5000.0), 54000 + np.arange(5.0)),
    }
    out = plot_sample_images(objects, tmp_path / "sample_images.png", n_per_object=4)
    assert_png(out, min_px=(400, 500))


def _confusion_table(rng):
    parts = []
    for model, task in (("seed-cnn", "6class"), ("lc-rf", "binary")):
        labels = list(TASK_CLASSES[task])
        for seed in (0, 1):
            n = 40
            probs = rng.dirichlet(np.ones(len(labels)), size=n)
            parts.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "split": "object",
                        "task": task,
                        "seed": seed,
                        "level": "object",
                        "item": [f"o{i}" for i in range(n)],
                        "y_true": rng.choice(labels[:-1], size=n),  # last class absent: an empty row
                        "y_pred": rng.choice(labels, size=n),
                    }
                    | {f"prob_{c}": probs[:, j] for j, c in enumerate(labels)}
                )
            )
    return pd.concat(parts, ignore_index=True)


def test_plot_confusion_matrices(tmp_path):
    summary = aggregate(score(_confusion_table(np.random.default_rng(4))))
    out = plot_confusion_matrices(summary, tmp_path / "cm.png")
    assert_png(out, min_px=(300, 600))
    with pytest.raises(ValueError):
        plot_confusion_matrices([], tmp_path / "none.png")


def test_plot_run_figures_draws_what_evaluate_run_no_longer_does(tmp_path):
    save_predictions(_confusion_table(np.random.default_rng(5)), tmp_path)
    evaluation = evaluate_run(tmp_path)
    assert not (tmp_path / CONFUSION_FILE).exists()
    files = plot_run_figures(evaluation, tmp_path)
    # no early-classification table in this run, so no early figure
    assert files == {"confusion_matrix": tmp_path / CONFUSION_FILE, "reliability": tmp_path / "reliability.png"}
    assert not set(files) & set(evaluation.files)  # merging the two dicts loses nothing
    assert_png(files["confusion_matrix"], min_px=(300, 600))
    assert_png(files["reliability"], min_px=(200, 200))


def test_reliability_and_early_figures_are_drawn_from_their_tables(tmp_path):
    from deeptao.evaluation import EARLY_PREDICTIONS_FILE, make_predictions
    from deeptao.plotting import plot_early_classification, plot_reliability

    rng = np.random.default_rng(8)
    parts = []
    for seed in (0, 1):
        y = rng.integers(0, 6, 40)
        for k in (1, 4, 0):
            proba = rng.dirichlet(np.ones(6), 40)
            frame = make_predictions(model="taonet", split="object", task="6class", seed=seed, level="object",
                                     items=[f"o{i}" for i in range(40)], y_true=y, proba=proba, temperature=1.5)  # fmt: skip
            parts.append(frame.assign(nights=k))
    early = pd.concat(parts, ignore_index=True)
    early.to_parquet(tmp_path / EARLY_PREDICTIONS_FILE)
    save_predictions(early[early.nights == 0].drop(columns="nights"), tmp_path)
    evaluation = evaluate_run(tmp_path)
    files = plot_run_figures(evaluation, tmp_path)
    assert set(files) == {"confusion_matrix", "reliability", "early_classification"}
    assert_png(files["early_classification"], min_px=(200, 300))
    with pytest.raises(ValueError, match="no early"):
        plot_early_classification({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="object-level"):
        plot_reliability(early[early.split == "image"], tmp_path / "y.png")


def _lightning_log(tmp_path, epochs=3):
    """A metrics.csv written by Lightning's own CSVLogger during a real (tiny) fit."""
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def _loss(self, batch):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.layer(x), y)

        def training_step(self, batch, _):
            loss = self._loss(batch)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            self.log("val_loss", self._loss(batch))
            self.log("val_macro_f1", torch.rand(()))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4, generator=gen), torch.randint(0, 2, (32,), generator=gen))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    logger = CSVLogger(tmp_path, name="log")
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), loader, loader)
    return tmp_path / "log" / "version_0" / "metrics.csv"


def test_training_curves_from_a_real_lightning_log(tmp_path):
    path = _lightning_log(tmp_path, epochs=3)
    frame = pd.read_csv(path)
    assert frame.isna().any().any()  # CSVLogger interleaves NaN rows: the case to survive
    for cols in (("train_loss_epoch", "train_loss"), ("val_loss",), ("val_macro_f1", "val_f1")):
        series = _epoch_series(frame, cols, "epoch")
        assert series is not None and list(series.index) == [0, 1, 2]
        expected = frame[["epoch", cols[0]]].dropna().groupby("epoch")[cols[0]].last()
        np.testing.assert_allclose(series.to_numpy(), expected.to_numpy())

    only_loss = tmp_path / "only_loss.csv"
    frame[["epoch", "step", "train_loss_step"]].rename(columns={"train_loss_step": "train_loss"}).to_csv(
        only_loss, index=False
    )
    with pytest.warns(UserWarning, match="missing.csv"):
        out = plot_training_curves(
            {"seed-cnn": path, "taonet": [only_loss, only_loss], "ghost": tmp_path / "missing.csv"},
            tmp_path / "training_curves.png",
        )
    assert_png(out, min_px=(300, 800))
    with pytest.warns(UserWarning, match="no loss or macro F1"):
        frame[["epoch", "step"]].to_csv(tmp_path / "nothing.csv", index=False)
        plot_training_curves({"x": tmp_path / "nothing.csv"}, tmp_path / "empty.png")
