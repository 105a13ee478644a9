"""taonet+rf: the fusion rule, the weight chosen on validation, and the fitted model's file."""

from __future__ import annotations

import numpy as np
import pytest

from deeptao.models import create_model, load_model
from deeptao.models.fusion import choose_weight, fuse_probabilities
from tests._simulated import simulated_cache

TINY_NET = dict(crop=16, embed=16, hidden=8, max_epochs=1, views=1, progress=False, precision="32")


def _random_proba(rng, n, k):
    p = rng.random((n, k)) + 0.05
    return p / p.sum(axis=1, keepdims=True)


def test_fusion_is_the_normalised_weighted_product():
    rng = np.random.default_rng(0)
    net, forest = _random_proba(rng, 7, 4), _random_proba(rng, 7, 4)
    for w in (0.0, 0.5, 1.7):
        expected = net * forest**w
        expected /= expected.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(fuse_probabilities(net, forest, w), expected, rtol=1e-12)
    np.testing.assert_allclose(fuse_probabilities(net, forest, 0.0), net, rtol=1e-12)


def test_a_forest_zero_is_a_strong_veto_not_an_infinite_one():
    net = np.array([[0.9, 0.1]])
    forest = np.array([[0.0, 1.0]])
    fused = fuse_probabilities(net, forest, 1.0)
    assert np.isfinite(fused).all() and fused[0, 1] > 0.99


def test_the_weight_follows_the_member_that_is_right_on_validation():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    uniform = np.full((200, 3), 1 / 3)
    right = np.full((200, 3), 0.1)
    right[np.arange(200), y] = 0.8
    wrong = np.roll(right, 1, axis=1)
    assert choose_weight(uniform, right, y) > 0.0  # the forest alone knows: taken in (any weight, after the temperature)
    assert choose_weight(right, wrong, y) == 0.0  # the forest misleads: left out


def _gaussian_posteriors(rng, y, n_classes=3, separation=1.5):
    """Exact class posteriors of one noisy look at each object: x = separation * onehot(y) + N(0, 1)."""
    x = separation * np.eye(n_classes)[y] + rng.standard_normal((len(y), n_classes))
    z = separation * x
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_two_independent_exact_members_are_weighed_alike():
    # With two independent looks, the posterior given both is the normalised product of the two: weight 1.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 6000)
    first, second = _gaussian_posteriors(rng, y), _gaussian_posteriors(rng, y)
    assert abs(choose_weight(first, second, y) - 1.0) <= 0.2


def test_the_weight_does_not_depend_on_the_members_sharpness():
    # The fused model is calibrated after fusion: members both sharpened (or both softened) alike must get
    # the same weight, which a log-loss taken before the temperature would not give.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 3000)
    first, second = _gaussian_posteriors(rng, y), _gaussian_posteriors(rng, y)
    chosen = choose_weight(first, second, y)

    def sharpened(p, power):
        q = p**power
        return q / q.sum(axis=1, keepdims=True)

    for power in (0.5, 3.0):
        assert choose_weight(sharpened(first, power), sharpened(second, power), y) == chosen


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from deeptao.data.tasks import select_task

    root = tmp_path_factory.mktemp("fusion")
    cache = simulated_cache(root, objects_per_class=5, seed=8)
    task = select_task("6class", cache.labels_array())
    # Training frequencies 4:1 between the first three classes and the last
    # three, so the prior shift is searched (it is skipped on a balanced survey).
    rng = np.random.default_rng(0)
    order = task.rows[rng.permutation(len(task.rows))]
    y_all = np.full(len(cache), -1)
    y_all[task.rows] = task.y
    by_class = [order[y_all[order] == c] for c in range(6)]
    train = np.concatenate([rows[:4] if c < 3 else rows[:1] for c, rows in enumerate(by_class)])
    val = np.setdiff1d(task.rows, train)
    # members asked for their own shift: the fused model turns it off and shifts once
    model = create_model(
        "taonet+rf", network_params={**TINY_NET, "prior_shift": True}, forest_params={"n_estimators": 30, "prior_shift": True}
    )
    model.fit(cache, train, y_all[train], classes=task.classes, val_rows=val, y_val=y_all[val], seed=0, workdir=root / "work")
    return root, cache, model, val, y_all[val]


def test_fit_chooses_weight_and_temperature_on_validation(fitted):
    root, cache, model, val, y_val = fitted
    p_net = model.network_.predict_proba(cache, val)
    p_forest = model.forest_.predict_proba(cache, val)
    assert model.weight_ == choose_weight(p_net, p_forest, y_val)
    assert model.temperature_ > 0
    proba = model.predict_proba(cache, val)
    assert proba.shape == (len(val), 6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (root / "work" / "network" / "last.ckpt").is_file()


def test_the_prior_is_shifted_once_after_fusion(fitted):
    from deeptao.io import first_nights, sequence_nights
    from deeptao.models.calibration import (
        NIGHTS_LADDER,
        calibrate_proba,
        choose_prior_power,
        fit_nights_temperature,
        shift_to_prior,
    )

    _, cache, model, val, y_val = fitted
    assert model.network_.prior_power_ == 0.0 and model.forest_.prior_power_ == 0.0
    assert not model.network_.prior_shift and not model.forest_.prior_shift
    prior = np.asarray(model.class_prior_)
    assert prior.max() / prior.min() > 2  # the fixture's 4:1 training frequencies
    fused = fuse_probabilities(model.network_.predict_proba(cache, val), model.forest_.predict_proba(cache, val), model.weight_)
    assert model.prior_power_ == choose_prior_power(fused, y_val, prior)
    # the temperature is fitted after the shift, on the fused validation objects whole and cut to the ladder's nights
    whole = [(cache.object_images(int(r)), cache.object_mjd(int(r))) for r in val]
    nights = np.array([sequence_nights(*item) for item in whole])
    cuts = [(first_nights(*item, k), k, label) for item, n, label in zip(whole, nights, y_val, strict=True) for k in NIGHTS_LADDER if k < n]
    assert cuts, "the fixture's objects must have more than one night"
    cut_items = [c[0] for c in cuts]
    fused_cuts = fuse_probabilities(model.network_.predict_proba_arrays(cut_items), model.forest_.predict_proba_arrays(cut_items), model.weight_)
    expected_t, expected_slope = fit_nights_temperature(
        shift_to_prior(np.concatenate([fused, fused_cuts]), prior, model.prior_power_),
        np.concatenate([y_val, [c[2] for c in cuts]]),
        np.concatenate([nights, [c[1] for c in cuts]]),
    )
    assert (model.temperature_, model.temperature_slope_) == pytest.approx((expected_t, expected_slope), rel=1e-6, abs=1e-9)
    expected = calibrate_proba(
        fused, temperature=model.temperature_, temperature_slope=model.temperature_slope_, nights=nights, prior=prior, prior_power=model.prior_power_
    )
    np.testing.assert_allclose(model.predict_proba(cache, val), expected, rtol=1e-6)


def test_saved_model_predicts_alike_from_the_cache_and_from_arrays(fitted, tmp_path):
    _, cache, model, val, _ = fitted
    path = model.save(tmp_path / "model.joblib")
    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and loaded.weight_ == model.weight_
    np.testing.assert_allclose(loaded.predict_proba(cache, val), model.predict_proba(cache, val), rtol=1e-6)
    items = [(cache.object_images(int(r)), cache.object_mjd(int(r))) for r in val[:3]]
    np.testing.assert_allclose(loaded.predict_proba_arrays(items), model.predict_proba(cache, val[:3]), rtol=1e-4, atol=1e-5)
    assert path.stat().st_size > 0


def test_bad_members_are_refused():
    with pytest.raises(ValueError, match="network must be taonet, taonet-lc or seed-cnn"):
        create_model("taonet+rf", network="lc-rf").prepare_inputs(None)
    with pytest.raises(ValueError, match="forest_params must be a mapping"):
        create_model("taonet+rf", forest_params=3)._check_params()
