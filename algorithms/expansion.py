"""Dynamic expansion: each task trains its own block of new units; old units stay frozen.

Pairs with ``config.model = 'expansion'`` (``models/expansion.py``): every
hidden layer holds ``num_tasks`` blocks of units (the base width, then
``expansion_units`` per later task). Task t trains block t only; the incoming
weights of older blocks' units are frozen bit-identically (the same exact
freezing as progressive networks: zeroed gradients and an optimizer that
neither updates nor advances the state of an idle block). New units read old
ones, so features are reused, and old tasks' logits never change.

Class-IL and task-IL: all classes share one output layer, the logit of a class
coming from its task's block. Without replay, class-IL still suffers from the
usual bias towards the newest classes (old logits are frozen, new ones are
trained against them).

  python -m scripts.run --config=research/configs/split_digits.py \
      --config.algorithm=expansion --config.model=expansion --config.scenario=task \
      --workdir=runs/split_digits_expansion
"""

from __future__ import annotations

from algorithms.base import Algorithm
from algorithms.progressive import train_one_subtree_per_task

NAME = "expansion"
COMPATIBILITY = ("class", "task")
# Read by models/expansion.py when it is built: the units each later task adds per layer.
HPARAMS = {"expansion_units": 32}

BLOCK = "block_"


def make(hp: dict) -> Algorithm:
    del hp
    return train_one_subtree_per_task(BLOCK, "expansion")
