"""Dynamic expansion: hidden layers that grow by one block of units per task.

Every hidden layer has room for ``num_tasks`` blocks: block 0 holds the base
width (``config.hidden``), each later block ``units`` more. A unit belongs to
one block and reads only units of its own or older blocks, so new units may
read old ones and old units never see new ones. The output units of task k's
classes belong to block k in the same way. Block b's parameters are the
subtree ``block_<b>``; ``algorithms/expansion.py`` trains only the current
task's block, so the incoming weights of old units stay bit-identical.

Future blocks are masked out of the forward pass: a later block's output
layer starts at exactly zero and stays frozen until its task, so its units
add nothing to any logit (future classes score exactly 0) until then.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import progressive
from models.progressive import class_groups, task_columns

BLOCK = "block_"


class Block(nn.Module):
    """One task's units in every hidden layer plus its classes' output units."""

    widths: Sequence[int]
    num_outputs: int
    silent: bool  # zero-initialised output layer: no effect until its task trains it

    @nn.compact
    def __call__(self, x: jax.Array,
                 older: Sequence[Sequence[jax.Array]]) -> tuple[jax.Array, list[jax.Array]]:
        acts = []
        for i, width in enumerate(self.widths):
            inputs = x if i == 0 else jnp.concatenate([o[i - 1] for o in older] + [acts[-1]], -1)
            acts.append(nn.relu(nn.Dense(width, name=f"dense_{i}")(inputs)))
        inputs = jnp.concatenate([o[-1] for o in older] + [acts[-1]], -1)
        init = nn.initializers.zeros if self.silent else nn.initializers.lecun_normal()
        return nn.Dense(self.num_outputs, kernel_init=init, name="head")(inputs), acts


class ExpandingMLP(nn.Module):
    """Blocks 0..T-1 of units; the logit of a class comes from its task's block."""

    groups: tuple[tuple[int, ...], ...]
    hidden: Sequence[int] = (400, 400)
    units: int = 32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def block(b: int, outputs: int) -> Block:
            widths = tuple(self.hidden) if b == 0 else (self.units,) * len(self.hidden)
            return Block(widths, outputs, silent=b > 0, name=f"{BLOCK}{b}")
        return task_columns("expansion", x, self.groups, self.hidden, block)


def parameter_growth(params) -> list[int]:
    """Parameters in use after each task: blocks 0..t."""
    return progressive.parameter_growth(params, BLOCK)


def build(config, num_classes: int) -> nn.Module:
    units = int(config.hp.get("expansion_units", 32))
    if units <= 0:
        raise ValueError(f"config.hp.expansion_units must be positive, got {units}")
    groups = class_groups(config.class_order, num_classes, int(config.num_tasks))
    return ExpandingMLP(groups=groups, hidden=tuple(config.hidden), units=units)
