"""A continual stream as fixed-shape arrays: every task padded to the same size.

Fixed shapes are what lets the engine compile its train step once for the
whole stream. ``n_train[t]`` / ``n_test[t]`` say how many rows of task t are
real; the rest is zero padding that is never sampled and never scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Stream:
    """Train and test sets of T tasks, padded; labels index one shared head."""

    name: str
    train_x: np.ndarray  # [T, N, ...] float32
    train_y: np.ndarray  # [T, N] int32
    n_train: np.ndarray  # [T] int32
    test_x: np.ndarray  # [T, M, ...] float32
    test_y: np.ndarray  # [T, M] int32
    n_test: np.ndarray  # [T] int32
    task_classes: np.ndarray  # [T, C] bool: the classes each task holds
    shared_labels: bool  # domain-incremental: every task uses every class

    @property
    def num_tasks(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.task_classes.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[2:])


def _pad_stack(arrays: Sequence[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    size = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), size) + arrays[0].shape[1:], dtype)
    for t, a in enumerate(arrays):
        out[t, : len(a)] = a
    return out, np.array([len(a) for a in arrays], np.int32)


def from_tasks(
    name: str,
    tasks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    shared_labels: bool,
) -> Stream:
    """Builds a Stream from per-task (x_train, y_train, x_test, y_test)."""
    train_x, n_train = _pad_stack([t[0] for t in tasks], np.float32)
    train_y, _ = _pad_stack([t[1] for t in tasks], np.int32)
    test_x, n_test = _pad_stack([t[2] for t in tasks], np.float32)
    test_y, _ = _pad_stack([t[3] for t in tasks], np.int32)
    task_classes = np.zeros((len(tasks), num_classes), bool)
    for t, task in enumerate(tasks):
        task_classes[t, np.unique(np.concatenate([task[1], task[3]]))] = True
    if shared_labels:
        task_classes[:] = True
    return Stream(name, train_x, train_y, n_train, test_x, test_y, n_test,
                  task_classes, shared_labels)


def split_by_classes(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    class_order: Sequence[int], num_tasks: int,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Class-incremental split: task t holds the t-th consecutive group of ``class_order``."""
    groups = np.array_split(np.asarray(class_order), num_tasks)
    tasks = []
    for group in groups:
        tr, te = np.isin(y_train, group), np.isin(y_test, group)
        tasks.append((x_train[tr], y_train[tr], x_test[te], y_test[te]))
    return tasks


def check_class_order(class_order: Sequence[int], num_classes: int, num_tasks: int) -> list[int]:
    """The class order as a list, or ValueError saying why it is impossible."""
    order = list(class_order) if class_order else list(range(num_classes))
    if sorted(order) != list(range(num_classes)):
        raise ValueError(
            f"class_order {order} must be a permutation of 0..{num_classes - 1}")
    if not 1 <= num_tasks <= num_classes:
        raise ValueError(f"num_tasks={num_tasks} must be between 1 and {num_classes}")
    return order
