"""Temperature scaling: one number per model, fitted on validation, that makes its probabilities honest.

A network trained with class weights, label smoothing and heavy dropout is
rarely calibrated: its top probability says 0.6 where it is right 0.8 of the
time, or the reverse. Brokers and follow-up teams act on those numbers, so
every network fits a temperature ``T`` after training, on the validation
objects it already holds out (never the test set), and predicts

    p_calibrated ∝ p ** (1 / T)

which is softmax(logits / T) when ``p`` is a softmax, and the same operation
on pooled or view-averaged probabilities. One parameter cannot overfit a
validation set of a few hundred objects and leaves the arg-max, hence every F1,
unchanged; a per-class (vector or matrix) calibrator could do more but needs
far more validation objects than a survey of this size gives per class.

The prior shift comes first. A network trained with class-balanced loss
weights learns as if every class were equally common: its probabilities are
roughly ``p(c | x) / prior(c)``, renormalised. On a balanced survey that is
the posterior itself; on the release, where NON outnumbers BZ 52 to 1, it
calls rare classes far too often (at release size, before the shift, taonet's
BZ recall was 0.75 at a precision of 0.08). Multiplying by the training
class frequencies to a power ``a``,

    p_shifted ∝ p * prior ** a,

moves the probabilities back: ``a = 0`` keeps the balanced view, ``a = 1``
gives the posterior under the training frequencies. Macro F1 usually peaks in
between. A negative ``a`` moves the other way, for a learner whose balancing
falls short (the forest at release size, before the shift, found a tenth of
the blazars). ``a`` is chosen from :data:`PRIOR_POWERS` on the validation
objects' macro F1, ties going to the power nearest 0. On a survey balanced
by construction (no class twice as frequent as another in training,
:data:`PRIOR_IMBALANCE`) there is nothing to undo, and choosing ``a`` would
only fit the noise of a small validation set: the power stays 0.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "fit_temperature",
    "apply_temperature",
    "TEMPERATURE_RANGE",
    "PRIOR_POWERS",
    "PRIOR_IMBALANCE",
    "shift_to_prior",
    "choose_prior_power",
    "calibrate_proba",
]

#: the search interval for T; the ends are far beyond anything a trained network needs
TEMPERATURE_RANGE = (0.05, 20.0)
#: the powers of the training class frequencies validation chooses among
PRIOR_POWERS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
#: the ratio of the most to the least frequent training class below which no shift is chosen
PRIOR_IMBALANCE = 2.0
_FLOOR = 1e-12


def _log_proba(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"need probabilities of shape (n, n_classes >= 2), got {proba.shape}")
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    return np.log(np.clip(proba, _FLOOR, None))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba ** (1 / T)``, renormalised per row; ``T = 1`` gives ``proba`` back (renormalised)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    scaled = _log_proba(proba) / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=1, keepdims=True)


def _nll(log_proba: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = log_proba / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The ``T`` in :data:`TEMPERATURE_RANGE` that minimises the mean log-loss of ``proba`` on labels ``y``.

    Parameters
    ----------
    proba : (n, n_classes)
        Probabilities of the validation objects.
    y : int (n,)
        Their class indices.

    Returns
    -------
    float
        1.0 when there is nothing to fit (no objects).
    """
    from scipy.optimize import minimize_scalar

    log_proba = _log_proba(proba)
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (len(log_proba),):
        raise ValueError(f"y has shape {y.shape} for {len(log_proba)} objects")
    if len(y) == 0:
        return 1.0
    if y.min() < 0 or y.max() >= log_proba.shape[1]:
        raise ValueError(f"class indices must lie in [0, {log_proba.shape[1]})")
    lo, hi = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda u: _nll(log_proba, y, float(np.exp(u))), bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def shift_to_prior(proba: np.ndarray, prior: np.ndarray | None, power: float) -> np.ndarray:
    """``proba * prior ** power``, renormalised per row; ``power = 0`` or no prior gives ``proba`` back."""
    if prior is None or power == 0:
        return np.asarray(proba, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    log_p = _log_proba(proba)
    if prior.shape != (log_p.shape[1],) or not (prior > 0).all():
        raise ValueError(f"prior must hold one positive frequency per class, got {prior!r}")
    log_p = log_p + float(power) * np.log(prior)
    out = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def choose_prior_power(proba: np.ndarray, y: np.ndarray, prior: np.ndarray, powers: tuple[float, ...] = PRIOR_POWERS) -> float:
    """The power of ``powers`` whose :func:`shift_to_prior` has the best macro F1 on labels ``y`` (of ties, the nearest 0)."""
    from sklearn.metrics import f1_score

    y = np.asarray(y, dtype=np.int64)
    prior = np.asarray(prior, dtype=np.float64)
    if len(y) == 0 or prior.max() < PRIOR_IMBALANCE * prior.min():
        return 0.0
    labels = np.arange(np.asarray(proba).shape[1])
    nearest_first = sorted(powers, key=lambda a: (abs(a), a))
    scores = [
        f1_score(y, shift_to_prior(proba, prior, a).argmax(axis=1), labels=labels, average="macro", zero_division=0)
        for a in nearest_first
    ]
    return float(nearest_first[int(np.argmax(scores))])


def calibrate_proba(
    proba: np.ndarray, *, temperature: float = 1.0, prior: np.ndarray | None = None, prior_power: float = 0.0
) -> np.ndarray:
    """The prior shift, then the temperature: what a fitted model does to its raw object-level probabilities."""
    shifted = shift_to_prior(proba, prior, prior_power)
    return shifted if temperature == 1.0 else apply_temperature(shifted, temperature)
