"""Classification tasks: which objects take part and what their classes are.

The same cache and split serve three questions: the full six classes, the five
transient classes TAO-Net was published on (NON objects dropped), and the
binary transient-versus-not question MANTRA answered first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeptao import CLASSES, TRANSIENT_CLASSES

__all__ = ["TASKS", "DEFAULT_TASK", "TaskData", "task_classes", "select_task"]

DEFAULT_TASK = "6class"
TASKS = ("6class", "5class", "binary")
_BINARY = ("transient", "NON")


@dataclass(frozen=True)
class TaskData:
    """The objects a task keeps, in cache order.

    Attributes
    ----------
    rows : numpy.ndarray of int64
        Rows of ``cache.objects`` taking part.
    classes : tuple of str
        Class names; ``y`` indexes into them.
    y : numpy.ndarray of int64
        Class index per kept row.
    """

    rows: np.ndarray
    classes: tuple[str, ...]
    y: np.ndarray


def task_classes(task: str) -> tuple[str, ...]:
    """Class names of ``task`` in the order every table uses."""
    if task == "6class":
        return tuple(CLASSES)
    if task == "5class":
        return tuple(TRANSIENT_CLASSES)
    if task == "binary":
        return _BINARY
    raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def select_task(task: str, labels: Sequence[str | None] | np.ndarray) -> TaskData:
    """Keep the objects ``task`` is about and map their labels to class indices.

    Parameters
    ----------
    task : {"6class", "5class", "binary"}
    labels : array-like, shape (n_objects,)
        Per-object label (``cache.objects.label``); objects whose label is not
        one of :data:`deeptao.CLASSES` (e.g. None) never take part.

    Returns
    -------
    TaskData
    """
    classes = task_classes(task)
    lookup = {name: i for i, name in enumerate(classes)}
    if task == "binary":
        lookup.update({name: 0 for name in TRANSIENT_CLASSES})
    y_all = np.array([lookup.get(v, -1) if isinstance(v, str) else -1 for v in labels], dtype=np.int64)
    rows = np.flatnonzero(y_all >= 0).astype(np.int64)
    return TaskData(rows=rows, classes=classes, y=y_all[rows])
