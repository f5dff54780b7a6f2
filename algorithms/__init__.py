"""Continual and multi-task methods: one file per method, ``algorithms/<name>.py``."""

import importlib
import pkgutil
from types import ModuleType

_NOT_METHODS = {"base"}


def available() -> list[str]:
    """Names accepted by ``--config.algorithm``: the method files in this package."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_METHODS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "make") and hasattr(module, "NAME"):
            names.append(module.NAME)
    return sorted(names)


def load(name: str) -> ModuleType:
    """The method module ``algorithms/<name>.py``; ValueError naming the choices."""
    if name not in available():
        raise ValueError(f"unknown algorithm {name!r}; choices: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")


def default_hparams() -> dict:
    """Every method's hyper-parameters and defaults, merged (names are unique)."""
    merged: dict = {}
    for name in available():
        for key, value in load(name).HPARAMS.items():
            if key in merged and merged[key] != value:
                raise ValueError(f"hyper-parameter {key!r} has two defaults: "
                                 f"{merged[key]!r} and {value!r} ({name})")
            merged[key] = value
    return merged
