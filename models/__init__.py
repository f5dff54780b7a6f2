"""Flax linen models; ``config.model = 'mlp'`` is ``models/mlp.py`` ('text': ``text/build.py``)."""

import importlib
from types import ModuleType

CHOICES = ("mlp", "cnn", "text", "progressive", "expansion")
_MODULES = {"text": "text.build"}  # names whose module is not models/<name>.py


def load(name: str) -> ModuleType:
    """The model module ``models/<name>.py``; ValueError naming the choices."""
    if name not in CHOICES:
        raise ValueError(f"unknown model {name!r}; choices: {', '.join(CHOICES)}")
    return importlib.import_module(f"{__name__}.{_MODULES.get(name, name)}")
