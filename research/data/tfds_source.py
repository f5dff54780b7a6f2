"""Any TFDS image-classification dataset as a class-split stream, via ``tfds.data_source``.

``data_source`` reads the prepared array_record files directly: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from research.data import stream as stream_lib


def _to_arrays(source, max_examples: int | None) -> tuple[np.ndarray, np.ndarray]:
    count = len(source) if max_examples is None else min(len(source), max_examples)
    records = [source[i] for i in range(count)]
    x = np.stack([np.asarray(r["image"], np.float32) / 255.0 for r in records])
    y = np.asarray([int(r["label"]) for r in records], np.int32)
    return x, y


def split_tfds(name: str, seed: int, num_tasks: int = 5,
               class_order: Sequence[int] | None = None, data_dir: str | None = None,
               max_examples: int | None = None) -> stream_lib.Stream:
    """Class-incremental stream over a prepared TFDS dataset's train and test splits."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.registered import DatasetNotFoundError

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        sources = tfds.data_source(name, split=["train", "test"], data_dir=data_dir)
    except DatasetNotFoundError:
        raise ValueError(f"unknown TFDS dataset {name!r}") from None
    except Exception:  # noqa: BLE001 - an unprepared dataset fails in many ways
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in {data_dir or 'the default data_dir'}; "
            "prepare it once with: python -c \"import tensorflow_datasets as tfds; "
            f"tfds.builder('{name}').download_and_prepare()\"") from None
    num_classes = builder.info.features["label"].num_classes
    order = stream_lib.check_class_order(class_order or [], num_classes, num_tasks)
    x_tr, y_tr = _to_arrays(sources[0], max_examples)
    x_te, y_te = _to_arrays(sources[1], max_examples)
    del seed  # TFDS splits are fixed; the seed still drives the data order in training
    tasks = stream_lib.split_by_classes(x_tr, y_tr, x_te, y_te, order, num_tasks)
    return stream_lib.from_tasks(f"tfds_{name}", tasks, num_classes, shared_labels=False)
