"""Any TFDS image-classification dataset as a class-split stream, via ``tfds.data_source``.

``data_source`` reads the prepared array_record files directly: no TensorFlow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
from absl import logging

from research.data import stream as stream_lib

READABLE_FORMATS = ("array_record", "parquet")  # what tfds.data_source reads


def _to_arrays(source, max_examples: int | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    count = len(source) if max_examples is None else min(len(source), max_examples)
    records = [source[i] for i in range(count)]
    shapes = sorted({np.shape(r["image"]) for r in records})
    if len(shapes) > 1:
        raise ValueError(f"TFDS dataset {name!r} has images of {len(shapes)} shapes "
                         f"({', '.join(map(str, shapes[:3]))}, ...); this stream needs one "
                         "size (a dataset of resized images, e.g. 'cifar10' or 'mnist')")
    x = np.stack([np.asarray(r["image"], np.float32) / 255.0 for r in records])
    y = np.asarray([int(r["label"]) for r in records], np.int32)
    return x, y


def _unreadable(name: str, builder, data_dir: str | None, err: Exception) -> str:
    """Why ``data_source`` could not read a dataset TFDS knows, in the user's terms."""
    where = f", data_dir={data_dir!r}" if data_dir else ""
    prepare = ("python -c \"import tensorflow_datasets as tfds; "
               f"tfds.builder({name!r}{where}).download_and_prepare(file_format='array_record')\"")
    if not builder.is_prepared():
        return (f"TFDS dataset {name!r} is not prepared in {data_dir or 'the default data_dir'}; "
                f"prepare it once with: {prepare}")
    file_format = str(getattr(getattr(builder.info, "file_format", None), "value", ""))
    if file_format and file_format not in READABLE_FORMATS:
        return (f"TFDS dataset {name!r} is prepared as {file_format}, which tfds.data_source "
                f"cannot read ({' or '.join(READABLE_FORMATS)}); prepare it again with: {prepare}")
    splits = sorted(builder.info.splits)
    if not {"train", "test"} <= set(splits):
        return (f"TFDS dataset {name!r} has splits {splits}; this stream reads 'train' "
                "and 'test'")
    return f"TFDS dataset {name!r} could not be read: {err}"


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """TFDS's absl warnings off: an unprepared dataset logs 'Variant folder ... has no
    dataset_info.json' for a folder that does not exist, before our one-line reason."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


def split_tfds(name: str, seed: int, num_tasks: int = 5,
               class_order: Sequence[int] | None = None, data_dir: str | None = None,
               max_examples: int | None = None) -> stream_lib.Stream:
    """Class-incremental stream over a prepared TFDS dataset's train and test splits."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.registered import DatasetNotFoundError

    with _quiet_tfds():
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except DatasetNotFoundError:
            raise ValueError(f"unknown TFDS dataset {name!r}") from None
        try:
            # download=False: an unprepared dataset is reported below, without TFDS first
            # printing 'Downloading and preparing dataset' (this runs with no network)
            sources = tfds.data_source(name, split=["train", "test"], data_dir=data_dir,
                                       download=False)
        except Exception as err:  # noqa: BLE001 - an unprepared dataset fails in many ways
            raise ValueError(_unreadable(name, builder, data_dir, err)) from None
    num_classes = builder.info.features["label"].num_classes
    order = stream_lib.check_class_order(class_order or [], num_classes, num_tasks)
    x_tr, y_tr = _to_arrays(sources[0], max_examples, name)
    x_te, y_te = _to_arrays(sources[1], max_examples, name)
    del seed  # TFDS splits are fixed; the seed still drives the data order in training
    tasks = stream_lib.split_by_classes(x_tr, y_tr, x_te, y_te, order, num_tasks)
    return stream_lib.from_tasks(f"tfds_{name}", tasks, num_classes, shared_labels=False)
