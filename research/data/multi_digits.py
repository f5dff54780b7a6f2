"""Multi-Digits: two of sklearn's 8x8 digits side by side, three tasks on one image.

An example is an 8x16 image (pixels in [0, 1]) made of a left and a right
digit. Tasks:

* ``left``: the left digit, 10-way classification (accuracy, higher is better);
* ``right``: the right digit, 10-way classification (accuracy);
* ``sum``: the sum of the two digits, regression on the raw 0..18 scale
  (MSE loss, MAE metric, lower is better).

The regression task is chosen over sum parity on purpose: its loss lives on a
different scale from the two cross-entropies, which is the situation loss
weighting (UW, GradNorm, DWA) exists for, and it gives Delta_m a
lower-is-better term. The source images are split into train and test before
pairing (seeded), so no test pair reuses a training image.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
from sklearn.datasets import load_digits

TASK_NAMES = ("left", "right", "sum")
TASK_OUTPUTS = (10, 10, 1)
REGRESSION = (False, False, True)
METRICS = ("accuracy", "accuracy", "mae")
LOWER_IS_BETTER = (False, False, True)


@dataclasses.dataclass(frozen=True)
class Split:
    """``x``: float32 ``[N, 8, 16]``; ``y``: float32 ``[N, 3]`` (left, right, sum);
    ``valid``: bool ``[N]``, False on the rows that pad a seed's shorter test split."""

    x: np.ndarray
    y: np.ndarray
    valid: np.ndarray | None = None


def _pairs(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> Split:
    left = rng.integers(0, len(images), size=n)
    right = rng.integers(0, len(images), size=n)
    x = np.concatenate([images[left], images[right]], axis=2)
    y = np.stack([labels[left], labels[right], labels[left] + labels[right]], axis=1)
    return Split(x=x.astype(np.float32), y=y.astype(np.float32))


def load(
    seed: int = 0, n_train: int = 6000, n_test: int = 2000, test_fraction: float = 0.3
) -> tuple[Split, Split]:
    """Seeded (train, test) Multi-Digits splits built from disjoint source images."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"multi_digits: test_fraction must be in (0, 1), got {test_fraction}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(
            f"multi_digits: n_train and n_test must be positive, got {n_train}, {n_test}"
        )
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_test_images = int(round(test_fraction * len(images)))
    test_idx, train_idx = order[:n_test_images], order[n_test_images:]
    train = _pairs(images[train_idx], labels[train_idx], n_train, rng)
    test = _pairs(images[test_idx], labels[test_idx], n_test, rng)
    return train, test


def load_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    """``load`` with the config's seed and sizes (the multi-task trainer's entry point)."""
    return load(config.seed, config.n_train, config.n_test)
