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

Early sequences need more temperature than whole ones. A model that has seen
one or two nights is far less often right, yet its probabilities are not
correspondingly flatter: on the demo survey taonet said 0.45 on average after
one night and was right 0.27 of the time (expected calibration error 20 %,
against 11 % on whole sequences). A model cannot tell an object cut to its
first nights from one that has only ever had that many, so the temperature
is a function of the number of nights ``n`` the prediction saw
(:func:`deeptao.io.count_nights`),

    T(n) = T * exp(s / sqrt(n)),

``T`` the temperature of a long sequence and ``s`` how much more a short one
needs; ``s = 0`` is one temperature for all. Both are fitted together by
log-loss on the validation objects, whole and cut to each count of
:data:`NIGHTS_LADDER` nights shorter than they are
(:func:`ladder_probabilities`). Two numbers, like one, cannot overfit a few
hundred objects. Fitted on the demo survey's validation objects, this form,
a power law in ``n`` and a free temperature per count interpolated in
``log n`` gave test log-losses within 0.03 of each other at every cut; this
one levels off by itself for long sequences, where a power law keeps falling
(``docs/benchmarks.md``, "Early calibration"). It leaves each object's
arg-max unchanged. Whole sequences pay a little for it: their test log-loss
rose by 0.005 (taonet) to 0.02 (the forest) against one temperature fitted
on whole sequences alone, while after one night it fell by 0.10 (taonet),
0.12 (taonet-lc) and 0.74 (the forest); seed-cnn, which grows no surer with
nights, fits a slope near 0 and is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deeptao.io import first_nights

__all__ = [
    "fit_temperature",
    "apply_temperature",
    "NIGHTS_LADDER",
    "temperature_at",
    "fit_nights_temperature",
    "ladder_probabilities",
    "fit_nights_calibration",
    "temperatures_of",
    "TEMPERATURE_RANGE",
    "PRIOR_POWERS",
    "PRIOR_IMBALANCE",
    "shift_to_prior",
    "choose_prior_power",
    "calibrate_proba",
]

#: the search interval for T; the ends are far beyond anything a trained network needs
TEMPERATURE_RANGE = (0.05, 20.0)
#: the night counts validation objects are cut to when the temperature's dependence on nights is fitted
NIGHTS_LADDER = (1, 2, 4, 8, 16)
#: the bounds of ``s`` in ``T(n) = T * exp(s / sqrt(n))``
SLOPE_RANGE = (-5.0, 5.0)
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


def apply_temperature(proba: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """``proba ** (1 / T)``, renormalised per row; ``T = 1`` gives ``proba`` back (renormalised).

    ``temperature`` is one number, or one per row.
    """
    log_p = _log_proba(proba)
    t = np.asarray(temperature, dtype=np.float64)
    if t.ndim > 1 or (t.ndim == 1 and t.shape != (len(log_p),)):
        raise ValueError(f"temperature must be one number or one per row ({len(log_p)}), got shape {t.shape}")
    if not (t > 0).all() or not np.isfinite(t).all():
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    scaled = log_p / (t[:, None] if t.ndim else float(t))
    scaled -= scaled.max(axis=1, keepdims=True)
    out = np.exp(scaled)
    return out / out.sum(axis=1, keepdims=True)


def _nll(log_proba: np.ndarray, y: np.ndarray, temperature: float | np.ndarray) -> float:
    t = np.asarray(temperature, dtype=np.float64)
    z = log_proba / (t[:, None] if t.ndim else t)
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


def temperature_at(temperature: float, slope: float, nights: np.ndarray | None) -> float | np.ndarray:
    """``T(n) = temperature * exp(slope / sqrt(n))`` per object, within :data:`TEMPERATURE_RANGE`; ``temperature`` itself when ``slope`` is 0.

    ``nights`` below 1 (an object with no usable night) count as 1.

    Raises
    ------
    ValueError
        If ``slope`` is not 0 and ``nights`` is None: the temperature depends on them.
    """
    if slope == 0:
        return float(temperature)
    if nights is None:
        raise ValueError("this model's temperature depends on each object's number of nights; give nights")
    n = np.maximum(np.asarray(nights, dtype=np.float64), 1.0)
    return np.clip(float(temperature) * np.exp(float(slope) / np.sqrt(n)), *TEMPERATURE_RANGE)


def temperatures_of(estimator: Any, nights: np.ndarray) -> np.ndarray | None:
    """The temperature a fitted ``estimator`` applied to objects of ``nights`` nights each; None for a model without one."""
    temperature = getattr(estimator, "temperature_", None)
    if temperature is None:
        return None
    t = temperature_at(temperature, getattr(estimator, "temperature_slope_", 0.0), nights)
    return np.broadcast_to(np.asarray(t, dtype=np.float64), np.shape(nights)).copy()


def fit_nights_temperature(proba: np.ndarray, y: np.ndarray, nights: np.ndarray) -> tuple[float, float]:
    """``(T, s)`` of :func:`temperature_at` that minimise the mean log-loss of ``proba`` on labels ``y``.

    Parameters
    ----------
    proba : (n, n_classes)
        Probabilities of validation sequences, whole and cut (:func:`ladder_probabilities`).
    y : int (n,)
        Their class indices.
    nights : int (n,)
        The nights each sequence holds.

    Returns
    -------
    tuple of float
        ``(1.0, 0.0)`` with nothing to fit; ``(fit_temperature(proba, y), 0.0)``
        when every sequence has the same number of nights.
    """
    from scipy.optimize import minimize

    log_proba = _log_proba(proba)
    y = np.asarray(y, dtype=np.int64)
    n = np.maximum(np.asarray(nights, dtype=np.float64), 1.0)
    if y.shape != (len(log_proba),) or n.shape != (len(log_proba),):
        raise ValueError(f"y {y.shape} and nights {n.shape} must have one value per row of proba ({len(log_proba)})")
    single = fit_temperature(proba, y)
    if len(y) == 0 or len(np.unique(n)) < 2:
        return single, 0.0
    inv_sqrt = 1.0 / np.sqrt(n)
    lo, hi = np.log(TEMPERATURE_RANGE)

    def loss(params: np.ndarray) -> float:
        return _nll(log_proba, y, np.clip(np.exp(params[0] + params[1] * inv_sqrt), *TEMPERATURE_RANGE))

    result = minimize(loss, x0=[np.log(single), 0.0], method="L-BFGS-B", bounds=[(lo, hi), SLOPE_RANGE])
    log_t, slope = (float(v) for v in result.x)
    if not loss(result.x) < _nll(log_proba, y, single):  # never worse than one temperature
        return single, 0.0
    return float(np.exp(log_t)), slope


def ladder_probabilities(
    cache: Any,
    rows: np.ndarray,
    predict: Callable[[Sequence[tuple[np.ndarray, np.ndarray]]], np.ndarray],
    *,
    ladder: Sequence[int] = NIGHTS_LADDER,
    chunk: int = 128,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``predict`` on the objects at ``rows`` of ``cache`` cut to their first k nights, for each k of ``ladder`` below their own count.

    Objects are read ``chunk`` at a time, so the validation set of a
    release-size survey never sits in memory at once.

    Returns
    -------
    proba : (m, n_classes)
        ``predict`` of each cut sequence.
    position : int (m,)
        Which of ``rows`` each was cut from.
    nights : int (m,)
        The nights each holds: its k (an object cut below its own count has exactly k).
    """
    rows = np.asarray(rows, dtype=np.int64)
    probas, positions, counts = [], [], []
    for lo in range(0, len(rows), chunk):
        items, owner, nights = [], [], []
        totals = cache.night_counts(rows[lo : lo + chunk])  # the cache's own flags, not measured again
        for pos, total in zip(range(lo, min(lo + chunk, len(rows))), totals, strict=True):
            images, mjd = cache.object_images(int(rows[pos])), cache.object_mjd(int(rows[pos]))
            for k in ladder:
                if k < total:
                    items.append(first_nights(images, mjd, int(k)))
                    owner.append(pos)
                    nights.append(int(k))
        if items:
            probas.append(np.asarray(predict(items), dtype=np.float64))
            positions.append(np.asarray(owner, dtype=np.int64))
            counts.append(np.asarray(nights, dtype=np.int64))
    if not probas:
        return np.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(probas), np.concatenate(positions), np.concatenate(counts)


def fit_nights_calibration(
    cache: Any,
    rows: np.ndarray,
    y: np.ndarray,
    whole: np.ndarray,
    predict: Callable[[Sequence[tuple[np.ndarray, np.ndarray]]], np.ndarray],
) -> tuple[float, float]:
    """``(T, s)`` fitted on the validation objects at ``rows`` (labels ``y``), whole and cut to :data:`NIGHTS_LADDER`.

    ``whole`` holds the objects' probabilities as they are, ``predict`` gives
    those of cut sequences; both before any temperature, after any prior shift.
    """
    rows = np.asarray(rows, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    cut, position, nights = ladder_probabilities(cache, rows, predict)
    if not len(cut):
        return fit_nights_temperature(whole, y, cache.night_counts(rows))
    return fit_nights_temperature(
        np.concatenate([whole, cut]),
        np.concatenate([y, y[position]]),
        np.concatenate([cache.night_counts(rows), nights]),
    )


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
    proba: np.ndarray,
    *,
    temperature: float = 1.0,
    temperature_slope: float = 0.0,
    nights: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    prior_power: float = 0.0,
) -> np.ndarray:
    """The prior shift, then the temperature (at each object's ``nights``): what a fitted model does to its raw object-level probabilities."""
    shifted = shift_to_prior(proba, prior, prior_power)
    t = temperature_at(temperature, temperature_slope, nights)
    return shifted if np.ndim(t) == 0 and t == 1.0 else apply_temperature(shifted, t)
