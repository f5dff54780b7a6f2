"""Config validation: every mistake becomes one ConfigError naming the field and the choices.

Runs before anything is built, so a bad value never surfaces as a shape error
from inside JAX.
"""

from __future__ import annotations

import itertools
import math

import ml_collections

import algorithms
import models
from research.data import load as data_load
from research.optim import OPTIMIZERS

SCENARIOS = ("class", "task", "domain")


class ConfigError(ValueError):
    """A config value that cannot run."""


def _choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {field} {value!r}; choices: {', '.join(map(str, choices))}")


def _positive(config, *fields: str) -> None:
    for field in fields:
        value = config[field]
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or value <= 0):
            raise ConfigError(f"config.{field} must be a positive number, got {value!r}")


def check_names(values: list[str], choices: tuple[str, ...], flag: str, what: str,
                among: str = "") -> None:
    """ConfigError naming ``flag`` (a comma-separated list of ``what``s to run) when it is
    empty, names one outside ``choices`` (``among`` says where they come from), or names
    one twice (it would run twice, or read the first run back)."""
    listed = f"; choices: {', '.join(choices)}"
    if not values:
        raise ConfigError(f"{flag}: name at least one {what}{listed}")
    unknown = list(dict.fromkeys(v for v in values if v not in choices))
    if unknown:
        raise ConfigError(f"unknown {flag} value(s) {', '.join(map(repr, unknown))}"
                          f"{f' ({among})' if among else ''}{listed}")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"{flag}: {what}(s) named more than once: {', '.join(twice)}")


def check_widths(value, field: str, at_least_one: bool = False) -> None:
    """ConfigError naming ``field`` unless ``value`` is a tuple of positive integers (layer
    widths or channels): 'abc', 0 or -5 would otherwise fail inside a Flax init, as a
    shape error or a ZeroDivisionError."""
    widths = value if isinstance(value, (tuple, list)) else (value,)
    if (any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths)
            or (at_least_one and not widths)):
        kind = "positive integers" if widths is value else "a positive integer"
        need = "; the model needs at least one" if at_least_one and not widths else ""
        raise ConfigError(f"{field} must be {kind}, got {value!r}{need}")


# The width fields each model reads: (field, whether it may be empty).
_MODEL_WIDTHS = {"mlp": [("hidden", True)], "progressive": [("hidden", False)],
                 "expansion": [("hidden", False)],
                 "cnn": [("channels", True), ("cnn_hidden", False)]}


def parse_sweep(config: ml_collections.ConfigDict) -> dict[str, list[float]]:
    """{name: [values]} for every non-empty ``config.sweep.NAME = "v1,v2,..."``."""
    sweep = {}
    for name, text in config.sweep.items():
        if str(text).strip():
            try:
                sweep[name] = [float(v) for v in str(text).split(",")]
            except ValueError:
                raise ConfigError(
                    f"config.sweep.{name}={text!r} must be comma-separated numbers") from None
    return sweep


def run_grid(config: ml_collections.ConfigDict) -> list[tuple[int, dict]]:
    """(seed, hyper-parameters) of each vmapped run: seeds x every sweep combination."""
    sweep = parse_sweep(config)
    combos = [dict(zip(sweep, values, strict=True))
              for values in itertools.product(*sweep.values())]
    return [(config.seed + i, {**config.hp.to_dict(), **combo})
            for combo in combos for i in range(config.num_seeds)]


def _check_streaming(config: ml_collections.ConfigDict) -> None:
    """``stream_chunk_steps`` (host-streamed epochs) is >= 0 and excludes what needs the pool
    on the device."""
    chunk = config.get("stream_chunk_steps", 0)
    if not isinstance(chunk, int) or chunk < 0:
        raise ConfigError(f"config.stream_chunk_steps must be an integer >= 0 (0: the pool on "
                          f"the device), got {chunk!r}")
    if chunk and config.get("shard_data", False):
        raise ConfigError("config.stream_chunk_steps and config.shard_data exclude each other: "
                          "a streamed pool stays on the host")
    if chunk and config.get("curriculum", ""):
        raise ConfigError("config.stream_chunk_steps does not support config.curriculum "
                          "(its masks act on the pool on the device)")


def _check_shard_runs(config: ml_collections.ConfigDict) -> None:
    """``shard_runs`` excludes what reads every run's arrays on each host."""
    if config.get("shard_runs", False) and config.get("curriculum", ""):
        raise ConfigError("config.shard_runs does not support config.curriculum (its pacer "
                          "scores every run's examples on the host)")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first thing in ``config`` that cannot run."""
    _choice("dataset", config.dataset, data_load.DATASETS)
    _choice("scenario", config.scenario, SCENARIOS)
    _choice("model", config.model, models.CHOICES)
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("algorithm", config.algorithm, algorithms.available())
    _positive(config, "num_tasks", "batch_size", "num_epochs", "num_seeds", "learning_rate",
              "checkpoint_every_epochs", "keep_checkpoints", "eval_batch_size")
    for field, may_be_empty in _MODEL_WIDTHS.get(config.model, []):
        check_widths(config.get(field), f"config.{field}", at_least_one=not may_be_empty)
    domain = config.dataset in data_load.DOMAIN_DATASETS
    if domain != (config.scenario == "domain"):
        raise ConfigError(
            f"scenario {config.scenario!r} does not fit dataset {config.dataset!r}: "
            + ("permuted/rotated streams are domain-incremental, use scenario='domain'"
               if domain else "use scenario 'class' or 'task' for a class-split stream"))
    method = algorithms.load(config.algorithm)
    if config.scenario not in method.COMPATIBILITY:
        raise ConfigError(
            f"algorithm {config.algorithm!r} does not support scenario {config.scenario!r}; "
            f"it supports: {', '.join(method.COMPATIBILITY)}")
    if getattr(method, "INPUTS_IN_UNIT_RANGE", False) and (
            config.dataset not in data_load.UNIT_RANGE_DATASETS):
        raise ConfigError(
            f"algorithm {config.algorithm!r} models inputs in [0, 1] and dataset "
            f"{config.dataset!r} is not scaled to it; use one of: "
            f"{', '.join(data_load.UNIT_RANGE_DATASETS)}")
    _check_streaming(config)
    _check_shard_runs(config)
    for name, value in config.hp.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value >= 0:
            raise ConfigError(f"config.hp.{name} must not be negative, got {value!r}")
    for name, values in parse_sweep(config).items():
        if any(v < 0 for v in values):
            raise ConfigError(f"config.sweep.{name} must not hold negative values: {values}")
    if config.dataset == "tfds" and not str(config.get("tfds_name", "")).strip():
        raise ConfigError("config.tfds_name is required with dataset='tfds' "
                          "(e.g. --config.tfds_name=mnist)")
    if config.dataset in data_load.DOMAIN_DATASETS:
        # every task holds every class: nothing to order, and any number of tasks
        if str(config.class_order).strip():
            raise ConfigError(
                f"config.class_order orders the classes of a class-split stream; dataset "
                f"{config.dataset!r} gives every task every class: leave it empty")
    elif config.dataset != "tfds":
        try:
            from research.data.stream import check_class_order
            check_class_order(data_load.parse_class_order(config.class_order) or [], 10,
                              config.num_tasks)
        except ValueError as err:
            raise ConfigError(str(err)) from None
