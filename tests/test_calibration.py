"""Temperature scaling recovers a known miscalibration, keeps every arg-max, and refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from deeptao.models.calibration import TEMPERATURE_RANGE, apply_temperature, fit_temperature


def _overconfident(rng, n, true_temperature, n_classes=6):
    """Probabilities softmax(z) whose labels are really drawn from softmax(z / T)."""
    logits = rng.normal(0.0, 3.0, (n, n_classes))
    truth = softmax(logits / true_temperature, axis=1)
    y = np.array([rng.choice(n_classes, p=p) for p in truth])
    return softmax(logits, axis=1), y


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(true_temperature):
    proba, y = _overconfident(np.random.default_rng(3), 4000, true_temperature)
    fitted = fit_temperature(proba, y)
    assert fitted == pytest.approx(true_temperature, rel=0.1)


def test_apply_temperature_is_softmax_of_scaled_log_probabilities_and_keeps_the_argmax():
    rng = np.random.default_rng(1)
    proba = softmax(rng.normal(0, 2, (50, 5)), axis=1)
    for t in (0.3, 1.0, 4.0):
        out = apply_temperature(proba, t)
        np.testing.assert_allclose(out, softmax(np.log(proba) / t, axis=1), rtol=1e-9, atol=1e-12)
        assert (out.argmax(axis=1) == proba.argmax(axis=1)).all()
    # a higher temperature flattens: the top probability falls
    assert (apply_temperature(proba, 3.0).max(axis=1) <= proba.max(axis=1) + 1e-12).all()


def test_calibrated_log_loss_is_no_worse_than_uncalibrated():
    from sklearn.metrics import log_loss

    proba, y = _overconfident(np.random.default_rng(7), 1000, 2.5)
    t = fit_temperature(proba, y)
    assert TEMPERATURE_RANGE[0] <= t <= TEMPERATURE_RANGE[1]
    assert log_loss(y, apply_temperature(proba, t), labels=range(6)) < log_loss(y, proba, labels=range(6))


def test_zero_probabilities_and_no_objects_are_handled():
    proba = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    out = apply_temperature(proba, 2.0)
    assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1.0)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, np.int64)) == 1.0


@pytest.mark.parametrize(
    ("proba", "y", "message"),
    [
        (np.full((2, 1), 1.0), [0, 0], "n_classes >= 2"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), [0, 1], "finite"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), [0, 2], "class indices"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), [0], "y has shape"),
    ],
)
def test_bad_input_is_refused(proba, y, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(proba, np.asarray(y))


def test_a_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.full((1, 2), 0.5), 0.0)
