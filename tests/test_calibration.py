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


# --------------------------------------------------------------------------- the prior shift


def test_shift_to_prior_is_the_normalised_product_and_a_no_op_at_power_zero_or_uniform_prior():
    from deeptao.models.calibration import shift_to_prior

    rng = np.random.default_rng(2)
    proba = softmax(rng.normal(0, 1.5, (40, 4)), axis=1)
    prior = np.array([0.7, 0.2, 0.08, 0.02])
    expected = proba * prior**0.5
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(shift_to_prior(proba, prior, 0.5), expected, rtol=1e-10)
    np.testing.assert_allclose(shift_to_prior(proba, prior, 0.0), proba)
    np.testing.assert_allclose(shift_to_prior(proba, np.full(4, 0.25), 1.0), proba, rtol=1e-10)
    with pytest.raises(ValueError, match="one positive frequency per class"):
        shift_to_prior(proba, np.array([0.5, 0.5]), 1.0)


def _balanced_view(rng, n, prior):
    """Labels drawn with frequencies ``prior`` and a network's probabilities as if trained class-balanced: p(c|x) / prior(c)."""
    k = len(prior)
    y = rng.choice(k, size=n, p=prior)
    logits = rng.normal(0.0, 1.0, (n, k))
    logits[np.arange(n), y] += 1.5  # evidence for the true class
    posterior = softmax(logits + np.log(prior), axis=1)  # what a model of the natural frequencies says
    balanced = posterior / prior
    return balanced / balanced.sum(axis=1, keepdims=True), y


def test_the_prior_power_chosen_on_validation_lifts_macro_f1_of_an_imbalanced_survey():
    from sklearn.metrics import f1_score

    from deeptao.models.calibration import PRIOR_POWERS, choose_prior_power, shift_to_prior

    rng = np.random.default_rng(5)
    prior = np.array([0.77, 0.08, 0.05, 0.05, 0.04, 0.01])  # NON-heavy, as the release
    val, y_val = _balanced_view(rng, 3000, prior)
    test, y_test = _balanced_view(rng, 3000, prior)
    power = choose_prior_power(val, y_val, prior)
    assert power in PRIOR_POWERS and power > 0

    def macro(p, y):
        return f1_score(y, p.argmax(axis=1), average="macro", labels=np.arange(6))

    assert macro(shift_to_prior(test, prior, power), y_test) > macro(test, y_test) + 0.02
    balanced_prior = np.full(6, 1 / 6)  # a balanced survey: every power ties, the smallest (none) is kept
    assert choose_prior_power(val, y_val, balanced_prior) == 0.0
    nearly = np.array([0.19, 0.17, 0.17, 0.16, 0.16, 0.15])  # a group split of a balanced survey: not shifted
    assert choose_prior_power(val, y_val, nearly) == 0.0


def test_calibrate_proba_shifts_then_tempers():
    from deeptao.models.calibration import calibrate_proba, shift_to_prior

    rng = np.random.default_rng(6)
    proba = softmax(rng.normal(0, 2, (10, 3)), axis=1)
    prior = np.array([0.6, 0.3, 0.1])
    np.testing.assert_allclose(
        calibrate_proba(proba, temperature=2.0, prior=prior, prior_power=0.75),
        apply_temperature(shift_to_prior(proba, prior, 0.75), 2.0),
    )
    np.testing.assert_allclose(calibrate_proba(proba), proba)


# --------------------------------------------------------------------------- the temperature by number of nights


def _overconfident_by_nights(rng, nights, temperature, slope, n_classes=6):
    """Probabilities softmax(z) whose labels are drawn from softmax(z / T(n)), T(n) = temperature exp(slope / sqrt n)."""
    logits = rng.normal(0.0, 3.0, (len(nights), n_classes))
    t = temperature * np.exp(slope / np.sqrt(nights))
    truth = softmax(logits / t[:, None], axis=1)
    y = np.array([rng.choice(n_classes, p=p) for p in truth])
    return softmax(logits, axis=1), y


def test_fit_nights_temperature_recovers_how_the_temperature_falls_with_nights():
    from deeptao.models.calibration import fit_nights_temperature

    rng = np.random.default_rng(11)
    nights = rng.choice([1, 2, 4, 8, 16, 40], size=6000)
    proba, y = _overconfident_by_nights(rng, nights, 0.8, 1.2)
    temperature, slope = fit_nights_temperature(proba, y, nights)
    assert temperature == pytest.approx(0.8, rel=0.15) and slope == pytest.approx(1.2, abs=0.25)


def test_with_one_count_of_nights_or_no_dependence_it_is_one_temperature():
    from deeptao.models.calibration import fit_nights_temperature

    rng = np.random.default_rng(12)
    proba, y = _overconfident(rng, 3000, 2.0)
    # every sequence the same length: the slope cannot be told from the temperature
    assert fit_nights_temperature(proba, y, np.full(len(y), 5)) == (fit_temperature(proba, y), 0.0)
    # lengths that say nothing of the miscalibration: a slope near 0, the same temperature
    temperature, slope = fit_nights_temperature(proba, y, rng.choice([1, 3, 9, 27], size=len(y)))
    assert temperature == pytest.approx(2.0, rel=0.15) and abs(slope) < 0.3
    assert fit_nights_temperature(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)) == (1.0, 0.0)


def test_the_nights_temperature_is_never_worse_than_one_on_the_data_it_was_fitted_to():
    from sklearn.metrics import log_loss

    from deeptao.models.calibration import fit_nights_temperature, temperature_at

    rng = np.random.default_rng(13)
    nights = rng.choice([1, 2, 4, 8, 16], size=800)
    proba, y = _overconfident_by_nights(rng, nights, 1.0, 2.0)
    temperature, slope = fit_nights_temperature(proba, y, nights)
    by_nights = apply_temperature(proba, temperature_at(temperature, slope, nights))
    single = apply_temperature(proba, fit_temperature(proba, y))
    assert log_loss(y, by_nights, labels=range(6)) <= log_loss(y, single, labels=range(6)) + 1e-12
    assert (by_nights.argmax(axis=1) == proba.argmax(axis=1)).all()


def test_temperature_at_follows_its_formula_within_the_range():
    from deeptao.models.calibration import temperature_at

    nights = np.array([0, 1, 4, 100])
    np.testing.assert_allclose(temperature_at(2.0, 1.0, nights), 2.0 * np.exp(1.0 / np.sqrt([1, 1, 4, 100])))
    assert temperature_at(2.0, 0.0, None) == 2.0  # no slope: the nights are not needed
    assert temperature_at(1.0, 5.0, np.array([1]))[0] == TEMPERATURE_RANGE[1]  # clipped
    with pytest.raises(ValueError, match="nights"):
        temperature_at(2.0, 1.0, None)


def test_apply_temperature_takes_one_temperature_per_row():
    rng = np.random.default_rng(14)
    proba = softmax(rng.normal(0, 2, (4, 3)), axis=1)
    t = np.array([0.5, 1.0, 2.0, 4.0])
    expected = np.vstack([apply_temperature(proba[i : i + 1], t[i]) for i in range(4)])
    np.testing.assert_allclose(apply_temperature(proba, t), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="one per row"):
        apply_temperature(proba, t[:3])
    with pytest.raises(ValueError, match="> 0"):
        apply_temperature(proba, np.array([1.0, 0.0, 1.0, 1.0]))


def test_ladder_probabilities_cut_each_object_below_its_own_nights():
    from deeptao.io import first_nights, sequence_nights
    from deeptao.models.calibration import NIGHTS_LADDER, ladder_probabilities

    class Objects:  # two objects: 3 nights of 2 exposures and 20 nights of 1
        def __init__(self):
            rng = np.random.default_rng(0)
            self.mjd = [53000 + np.repeat(np.arange(3) * 10.0, 2) + np.tile([0, 0.01], 3), 53000 + np.arange(20) * 5.0]
            self.images = [rng.integers(100, 200, (len(m), 64, 64)).astype(np.uint16) for m in self.mjd]

        def object_images(self, i):
            return self.images[i]

        def object_mjd(self, i):
            return self.mjd[i]

        def night_counts(self, rows):
            return np.array([sequence_nights(self.images[i], self.mjd[i]) for i in rows])

    objects = Objects()
    seen = []

    def predict(items):
        seen.extend(items)
        return np.tile([0.25, 0.75], (len(items), 1))

    proba, position, nights = ladder_probabilities(objects, np.array([0, 1]), predict, chunk=1)
    expected = [(0, k) for k in NIGHTS_LADDER if k < 3] + [(1, k) for k in NIGHTS_LADDER if k < 20]
    assert list(zip(position.tolist(), nights.tolist(), strict=True)) == expected
    assert proba.shape == (len(expected), 2)
    for (images, mjd), (pos, k) in zip(seen, expected, strict=True):
        assert sequence_nights(images, mjd) == k
        np.testing.assert_array_equal(mjd, first_nights(objects.images[pos], objects.mjd[pos], k)[1])
