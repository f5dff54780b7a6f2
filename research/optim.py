"""The base optimizer of a run, from the config; a method may wrap it (freezing, rates)."""

from __future__ import annotations

import ml_collections
import optax

from research import adam

OPTIMIZERS = ("adam", "adamw", "sgd", "momentum")


def make(name: str, learning_rate: float, weight_decay: float = 0.0,
         clip_norm: float = 0.0, decay_vectors: bool = False) -> optax.GradientTransformation:
    """The base optimizer; a method may wrap it (freezing, per-layer rates). Adam and
    AdamW are optax's with the bias corrections folded (research/adam.py); AdamW's
    decay skips biases and norms unless ``decay_vectors``."""
    makers = {
        "adam": lambda: adam.adam(learning_rate),
        "adamw": lambda: adam.adamw(learning_rate, weight_decay, decay_vectors),
        "sgd": lambda: optax.sgd(learning_rate),
        "momentum": lambda: optax.sgd(learning_rate, momentum=0.9),
    }
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}; choices: {', '.join(makers)}")
    opt = makers[name]()
    return optax.chain(optax.clip_by_global_norm(clip_norm), opt) if clip_norm > 0 else opt


def from_config(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The base optimizer, restricted/rescaled per parameter by ``config.finetune``
    (which then clips the gradient itself, over all trained parameters at once)."""
    if config.get("finetune", "full") == "full":
        return make(config.optimizer, config.learning_rate, config.weight_decay,
                    config.clip_norm, config.decay_vectors)
    from research import finetune
    opt = make(config.optimizer, config.learning_rate, config.weight_decay,
               decay_vectors=config.decay_vectors)
    return finetune.wrap(opt, config, config.clip_norm)
