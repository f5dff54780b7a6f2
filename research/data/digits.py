"""scikit-learn's 8x8 digits as continual streams: Split, Permuted and Rotated Digits.

Pixels scaled to [0, 1]; a stratified 70/30 train/test split drawn from the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from research.data import stream as stream_lib


def _digits_split(seed: int, test_fraction: float = 0.3):
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)


def split_digits(seed: int, num_tasks: int = 5,
                 class_order: Sequence[int] | None = None) -> stream_lib.Stream:
    """Split-Digits: the ten classes in ``num_tasks`` groups of consecutive ``class_order``."""
    order = stream_lib.check_class_order(class_order or [], 10, num_tasks)
    x_tr, x_te, y_tr, y_te = _digits_split(seed)
    tasks = stream_lib.split_by_classes(x_tr, y_tr, x_te, y_te, order, num_tasks)
    return stream_lib.from_tasks("split_digits", tasks, 10, shared_labels=False)


def permuted_digits(seed: int, num_tasks: int = 10) -> stream_lib.Stream:
    """Permuted-Digits: task 0 is the original, each later task a fixed pixel permutation."""
    x_tr, x_te, y_tr, y_te = _digits_split(seed)
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(num_tasks):
        perm = np.arange(64) if t == 0 else rng.permutation(64)
        tasks.append((x_tr.reshape(-1, 64)[:, perm].reshape(-1, 8, 8), y_tr,
                      x_te.reshape(-1, 64)[:, perm].reshape(-1, 8, 8), y_te))
    return stream_lib.from_tasks("permuted_digits", tasks, 10, shared_labels=True)


def rotated_digits(seed: int, num_tasks: int = 5, max_angle: float = 180.0) -> stream_lib.Stream:
    """Rotated-Digits: task t rotates every image by t * max_angle / num_tasks degrees."""
    x_tr, x_te, y_tr, y_te = _digits_split(seed)

    def rotate(images: np.ndarray, angle: float) -> np.ndarray:
        out = ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    tasks = []
    for t in range(num_tasks):
        angle = t * max_angle / num_tasks
        tasks.append((rotate(x_tr, angle), y_tr, rotate(x_te, angle), y_te))
    return stream_lib.from_tasks("rotated_digits", tasks, 10, shared_labels=True)
