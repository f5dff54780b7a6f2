"""``config.dataset`` -> a Stream for one seed."""

from __future__ import annotations

from research.data import stream as stream_lib

DATASETS = ("split_digits", "permuted_digits", "rotated_digits", "split_mnist1d", "tfds",
            "sentiment", "text_file")
DOMAIN_DATASETS = ("permuted_digits", "rotated_digits", "sentiment", "text_file")
# Inputs scaled to [0, 1] (pixel intensities), what a Bernoulli generator models.
UNIT_RANGE_DATASETS = ("split_digits", "permuted_digits", "rotated_digits", "tfds")
TEXT_DATASETS = ("sentiment", "text_file")  # streams of texts, for the text model


def parse_class_order(text: str) -> list[int] | None:
    """'9,8,7' -> [9, 8, 7]; '' -> None (the natural order)."""
    if not str(text).strip():
        return None
    try:
        return [int(v) for v in str(text).replace(" ", "").strip("()[]").split(",")]
    except ValueError:
        raise ValueError(f"class_order {text!r} must be comma-separated integers") from None


def make_stream(config, seed: int) -> stream_lib.Stream:
    """The stream ``config.dataset`` names, split and ordered by ``seed``."""
    name = config.dataset
    order = parse_class_order(config.class_order)
    if name == "split_digits":
        from research.data.digits import split_digits
        return split_digits(seed, config.num_tasks, order)
    if name == "permuted_digits":
        from research.data.digits import permuted_digits
        return permuted_digits(seed, config.num_tasks)
    if name == "rotated_digits":
        from research.data.digits import rotated_digits
        return rotated_digits(seed, config.num_tasks)
    if name == "split_mnist1d":
        from research.data.mnist1d import split_mnist1d
        return split_mnist1d(seed, config.num_tasks, order)
    if name == "tfds":
        from research.data.tfds_source import split_tfds
        return split_tfds(config.tfds_name, seed, config.num_tasks, order,
                          config.data_dir or None)
    if name in TEXT_DATASETS:
        from research.data.text_stream import make_text_stream
        return make_text_stream(config, seed)
    raise ValueError(f"unknown dataset {name!r}; choices: {', '.join(DATASETS)}")
