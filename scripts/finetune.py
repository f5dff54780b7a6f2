"""Fine-tunes a text classifier (the initial model of a deployment) and reports it.

  python -m scripts.finetune --config=research/configs/sentiment_finetune.py --workdir=W \
      [--config.finetune=lora] [--config.finetune=linear_probe --config.cached_features=True]

Prints test accuracy per task and the share of parameters the mode trains;
``scripts.update --from=W`` continues from the run, ``scripts.predict --from=W``
classifies texts with it.
"""

from __future__ import annotations

import json

import jax
from absl import flags
from ml_collections import config_flags

from research import distributed, finetune, train
from research.data import load as data_load
from scripts import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the run writes everything.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard a run of another config in workdir.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()  # a pod or several hosts fine-tune as scripts.run trains


def _trainable(config) -> float:
    """Trainable share of the text model's parameters (1.0 for the cached-features probe)."""
    if config.model != "text":
        return 1.0
    import models
    from research.data import text_stream
    model = models.load("text").build(config, len(text_stream.label_names(config)))
    x = jax.numpy.zeros((1, 3, int(config.max_length)), jax.numpy.int32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    return finetune.trainable_fraction(shapes, config)


def check_text_run(config) -> None:
    """ValueError for a config whose stream holds no texts: its run would train, then
    find no domain-IL figures to report."""
    if config.dataset not in data_load.TEXT_DATASETS:
        raise ValueError(
            f"scripts.finetune fine-tunes a text classifier: config.dataset "
            f"{config.dataset!r} is no text dataset; it takes "
            f"{' or '.join(data_load.TEXT_DATASETS)} (e.g. "
            "--config=research/configs/sentiment_finetune.py)")


def run(config, workdir: str, overwrite: bool) -> dict:
    check_text_run(config)
    finetune.check_mode(config)
    if config.cached_features:
        config = finetune.cached_features_config(config)
    results = train.train_and_evaluate(config, workdir, overwrite)
    row = results["domain_il"]["accuracy_matrix"][-1]
    return {"test_accuracy": [round(float(a), 4) for a in row],
            "trainable_fraction": _trainable(config),
            "train_seconds": round(results["train_seconds"], 1)}


def main(argv):
    cli.no_arguments(argv)
    cli.run_guarded(distributed.initialize_from_flags)  # before anything touches a device
    cli.run_guarded(lambda: print(json.dumps(
        run(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value))), _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main)
