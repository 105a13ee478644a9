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
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_temperature", "apply_temperature", "TEMPERATURE_RANGE"]

#: the search interval for T; the ends are far beyond anything a trained network needs
TEMPERATURE_RANGE = (0.05, 20.0)
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
