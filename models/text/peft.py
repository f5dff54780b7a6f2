"""Which parameters a PEFT mode trains: labels for ``optax.multi_transform``.

LoRA factors are the leaves named ``lora_a``/``lora_b``, soft prompts the
leaf ``prompt``, the task head everything under the top-level ``head`` key
(see ``models/text/bert.py`` and ``models/text/heads.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

GROUPS = ("lora", "prompt", "head")
TRAIN, FREEZE = "train", "freeze"


def _group(path: tuple[Any, ...]) -> str | None:
    keys = [str(getattr(k, "key", k)) for k in path]
    if keys and keys[-1] in ("lora_a", "lora_b"):
        return "lora"
    if keys and keys[-1] == "prompt":
        return "prompt"
    if keys and keys[0] == "head":
        return "head"
    return None


def param_labels(params: Any, trainable: Sequence[str] = GROUPS) -> Any:
    """A pytree like ``params`` of ``'train'``/``'freeze'``: train only the named groups.

    Use as ``optax.multi_transform({'train': opt, 'freeze': optax.set_to_zero()},
    param_labels(params, ('lora', 'head')))``.
    """
    unknown = [g for g in trainable if g not in GROUPS]
    if unknown:
        raise ValueError(f"trainable groups {unknown}; choices: {GROUPS}")
    wanted = set(trainable)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: TRAIN if _group(path) in wanted else FREEZE, params)
