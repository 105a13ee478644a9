"""Rules that turn the predictions of an object's items (images, views) into one prediction.

The choice matters when the evidence is sparse: a supernova or a CV outburst
shows on two or three nights of an object's years of images, a flare on one.

- ``"geometric"``: the mean of the items' log-probabilities, renormalised (a
  product of the items' probabilities, naive-Bayes style). Consistent evidence
  adds up, but one image that shows the event is outvoted by the many that
  do not: it punishes exactly the image that matters.
- ``"mean"``: the mean of the items' probabilities. One striking image moves
  the average by its share, no more, and is never vetoed.
- ``"topk"``: per class, the mean of its ``k`` highest item probabilities
  (``k`` the larger of 1 and a quarter of the items, at most 8), renormalised:
  a class is as likely as the object's best evidence for it.

:func:`pool` applies a rule; :func:`choose_pooling` picks one on validation data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["POOLING_RULES", "pool", "pool_log_proba", "choose_pooling"]

POOLING_RULES = ("geometric", "mean", "topk")


def _normalise(scores: np.ndarray) -> np.ndarray:
    total = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, total, out=np.full_like(scores, 1.0 / scores.shape[1]), where=total > 0)


def pool_log_proba(log_proba: np.ndarray, owner: np.ndarray, n_owners: int) -> np.ndarray:
    """The ``"geometric"`` rule: mean log-probability of each owner's items, renormalised.

    Returns probabilities ``(n_owners, n_classes)``; an owner without items
    gets the uniform distribution.
    """
    return pool(log_proba, owner, n_owners, "geometric")


def pool(log_proba: np.ndarray, owner: np.ndarray, n_owners: int, rule: str = "mean") -> np.ndarray:
    """Pool item log-probabilities ``(n_items, n_classes)`` into ``(n_owners, n_classes)`` probabilities.

    ``owner[i]`` in ``[0, n_owners)`` says whose item ``i`` is; an owner with
    no items gets the uniform distribution.
    """
    if rule not in POOLING_RULES:
        raise ValueError(f"pooling rule must be one of {POOLING_RULES}, got {rule!r}")
    log_proba = np.asarray(log_proba, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    n_classes = log_proba.shape[1]
    counts = np.bincount(owner, minlength=n_owners)
    if rule == "geometric":
        sums = np.zeros((n_owners, n_classes))
        np.add.at(sums, owner, log_proba)
        mean = sums / np.maximum(counts, 1)[:, None]
        mean -= mean.max(axis=1, keepdims=True)
        out = _normalise(np.exp(mean))
    elif rule == "mean":
        sums = np.zeros((n_owners, n_classes))
        np.add.at(sums, owner, np.exp(log_proba))
        out = _normalise(sums / np.maximum(counts, 1)[:, None])
    else:
        proba = np.exp(log_proba)
        order = np.argsort(owner, kind="stable")
        bounds = np.r_[0, np.cumsum(counts)]
        out = np.zeros((n_owners, n_classes))
        for k in np.flatnonzero(counts):
            items = proba[order[bounds[k] : bounds[k + 1]]]
            top = min(len(items), max(1, min(8, math.ceil(len(items) / 4))))
            out[k] = np.sort(items, axis=0)[-top:].mean(axis=0)
        out = _normalise(out)
    out[counts == 0] = 1.0 / n_classes
    return out


def choose_pooling(
    log_proba: np.ndarray, owner: np.ndarray, y_owner: np.ndarray, rules: Sequence[str] = POOLING_RULES
) -> tuple[str, dict[str, dict[str, float]]]:
    """The rule with the best object-level macro F1 on validation items (ties: lower log-loss).

    Returns the rule and, per rule, its validation ``macro_f1`` and ``log_loss``.
    Only validation data may be passed: the choice is part of training.
    """
    from sklearn.metrics import f1_score

    y_owner = np.asarray(y_owner, dtype=np.int64)
    n_classes = np.asarray(log_proba).shape[1]
    table: dict[str, dict[str, float]] = {}
    for rule in rules:
        proba = pool(log_proba, owner, len(y_owner), rule)
        f1 = f1_score(y_owner, proba.argmax(axis=1), labels=np.arange(n_classes), average="macro", zero_division=0)
        nll = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_owner)), y_owner], 1e-12, None))))
        table[rule] = {"macro_f1": float(f1), "log_loss": nll}
    best = min(rules, key=lambda r: (-round(table[r]["macro_f1"], 6), table[r]["log_loss"]))
    return best, table
