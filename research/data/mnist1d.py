"""Split-MNIST-1D: the procedural 1-D digits of the ``mnist1d`` package, split by class.

Generated locally from the package's templates (no download); harder than the
8x8 digits for a small MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from research.data import stream as stream_lib


def split_mnist1d(seed: int, num_tasks: int = 5, class_order: Sequence[int] | None = None,
                  num_samples: int = 5000) -> stream_lib.Stream:
    """Split-MNIST-1D; the seed drives the procedural generation and so the split."""
    order = stream_lib.check_class_order(class_order or [], 10, num_tasks)
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    data = make_dataset(args)
    x_tr, x_te = (np.asarray(data[k], np.float32) for k in ("x", "x_test"))
    y_tr, y_te = (np.asarray(data[k], np.int32) for k in ("y", "y_test"))
    tasks = stream_lib.split_by_classes(x_tr, y_tr, x_te, y_te, order, num_tasks)
    return stream_lib.from_tasks("split_mnist1d", tasks, 10, shared_labels=False)
