"""Shared test set-up: quiet logs, a persistent XLA cache so repeated programs compile once."""

import os
import tempfile

import jax
import pytest
from absl import logging

logging.set_verbosity(logging.WARNING)
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(tempfile.gettempdir(), "continual_jax_test_xla_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture
def digits_config():
    """Split-Digits, shrunk so an end-to-end run takes seconds."""
    from research.configs import split_digits

    config = split_digits.get_config()
    config.num_epochs = 2
    config.hidden = (64,)
    config.checkpoint_every_epochs = 1
    config.progress = False
    config.plots = False
    return config


@pytest.fixture
def crash_and_resume(monkeypatch):
    """``run(config, workdir)``: a run killed at its third checkpoint save, then rerun."""
    from research import checkpoint, train

    def run(config, workdir: str) -> dict:
        saves, real_save = [], checkpoint.save

        def crash_on_the_third_save(*args, **kwargs):
            saves.append(1)
            if len(saves) == 3:
                raise KeyboardInterrupt("simulated crash")
            return real_save(*args, **kwargs)

        monkeypatch.setattr(checkpoint, "save", crash_on_the_third_save)
        with pytest.raises(KeyboardInterrupt):
            train.train_and_evaluate(config, workdir)
        monkeypatch.setattr(checkpoint, "save", real_save)
        return train.train_and_evaluate(config, workdir)

    return run
