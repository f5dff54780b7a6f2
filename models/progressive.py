"""Progressive networks (Rusu et al. 2016): one MLP column per task, lateral adapters.

Column k is an MLP whose layer i (i >= 1, the head included) also reads layer
i-1 of every earlier column j < k through one non-linear adapter
``U relu(V [alpha_j h_j]_{j<k})`` (the paper's eq. 2): each source scaled by a
learned scalar initialised to a small random value, the k sources concatenated
and projected by ``V`` onto one layer's width, so the lateral's hidden layer
does not widen as columns accumulate. Column k's head outputs the logits of
task k's classes only, so the model fits the engine's ``apply_fn(params, x) ->
[B, C]`` with no task id: the logit of class c comes from the column that owns
c's task, and task-IL evaluation (logits masked to the task's classes) reads
exactly that column. Task k's logits depend on columns 0..k alone, so training
a later column with earlier ones frozen (``algorithms/progressive.py``) leaves
every earlier task's predictions bit-identical.

The class -> task assignment is static: ``np.array_split`` of
``config.class_order`` into ``config.num_tasks`` groups, the split the data
streams use (``research/data/stream.split_by_classes``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

COLUMN = "column_"


def class_groups(class_order: str | Sequence[int], num_classes: int,
                 num_tasks: int) -> tuple[tuple[int, ...], ...]:
    """The classes of each task: consecutive groups of the class order, as the streams split.

    ``class_order`` is the config's string ('' = natural order, '9,8,...') or a sequence.
    """
    if isinstance(class_order, str):
        text = class_order.replace(" ", "").strip("()[]")
        try:
            order = [int(v) for v in text.split(",")] if text else list(range(num_classes))
        except ValueError:
            raise ValueError(f"config.class_order {class_order!r} must be comma-separated "
                             "integers") from None
    else:
        order = list(class_order) or list(range(num_classes))
    if sorted(order) != list(range(num_classes)):
        raise ValueError(f"config.class_order {order} must be a permutation of "
                         f"0..{num_classes - 1}")
    if not 1 <= num_tasks <= num_classes:
        raise ValueError(f"config.num_tasks={num_tasks} must be in 1..{num_classes} "
                         f"to split {num_classes} classes")
    return tuple(tuple(int(c) for c in g) for g in np.array_split(np.asarray(order), num_tasks))


def scatter_task_logits(per_task: Sequence[jax.Array],
                        groups: Sequence[Sequence[int]]) -> jax.Array:
    """[B, C] logits from each task's [B, |classes|] block, placed at its classes (exact)."""
    stacked = jnp.concatenate(list(per_task), axis=-1)
    order = np.concatenate([np.asarray(g, int) for g in groups])
    return stacked[:, np.argsort(order)]


def task_columns(model: str, x: jax.Array, groups: Sequence[Sequence[int]],
                 hidden: Sequence[int], make_column: Callable[[int, int], nn.Module]
                 ) -> jax.Array:
    """[B, C] logits of one column per task: column k (``make_column(k, |classes_k|)``)
    reads the input and every earlier column's hidden activations, and outputs its
    task's logits, placed at their classes. Call from a module's compact method."""
    if not hidden:
        raise ValueError(f"model {model!r} needs at least one hidden layer "
                         "(config.hidden is empty)")
    x = x.reshape((x.shape[0], -1))
    outputs, acts = [], []
    for k, classes in enumerate(groups):
        out, column_acts = make_column(k, len(classes))(x, acts)
        outputs.append(out)
        acts.append(column_acts)
    return scatter_task_logits(outputs, groups)


def parameter_growth(params, prefix: str = COLUMN) -> list[int]:
    """Parameters in use after each task: the sizes of subtrees ``prefix0..prefixk``, summed.

    Entry t counts what task t's predictions depend on (columns or blocks 0..t).
    """
    names = sorted((n for n in params if n.startswith(prefix)),
                   key=lambda n: int(n[len(prefix):]))
    if not names:
        raise ValueError(f"no parameter subtrees named {prefix}<k>; top level: {list(params)}")
    sizes = [sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params[n]))
             for n in names]
    return np.cumsum(sizes).tolist()


class Adapter(nn.Module):
    """The lateral ``U relu(V [alpha_j h_j]_j)`` from every earlier column into one layer.

    ``V`` is Rusu et al.'s dimensionality-reducing projection: it maps the
    concatenated sources onto ``width`` units (one source layer's width), so the
    adapter stays one column wide whatever the number of earlier columns. One
    ``alpha_j`` per source adjusts for the sources' different scales.
    """

    features: int
    width: int

    @nn.compact
    def __call__(self, sources: Sequence[jax.Array]) -> jax.Array:
        alpha = self.param("alpha", nn.initializers.uniform(scale=0.1), (len(sources),))
        scaled = jnp.concatenate([alpha[j] * h for j, h in enumerate(sources)], axis=-1)
        hidden = nn.relu(nn.Dense(self.width, name="V")(scaled))
        return nn.Dense(self.features, use_bias=False, name="U")(hidden)


class Column(nn.Module):
    """One task's MLP; ``laterals[j][i]`` is earlier column j's layer-i activation."""

    hidden: Sequence[int]
    num_outputs: int
    adapter_dim: int = 0  # 0: the source layer's width (the paper's projection size)

    @nn.compact
    def __call__(self, x: jax.Array,
                 laterals: Sequence[Sequence[jax.Array]]) -> tuple[jax.Array, list[jax.Array]]:
        widths = list(self.hidden) + [self.num_outputs]
        h, acts = x, []
        for i, width in enumerate(widths):
            name = "head" if i == len(self.hidden) else f"dense_{i}"
            z = nn.Dense(width, name=name)(h)
            if i > 0 and laterals:
                sources = [earlier[i - 1] for earlier in laterals]
                z = z + Adapter(width, self.adapter_dim or sources[0].shape[-1],
                                name=f"lateral_{i}")(sources)
            if i < len(self.hidden):
                h = nn.relu(z)
                acts.append(h)
            else:
                h = z
        return h, acts


class ProgressiveNet(nn.Module):
    """``num_tasks`` columns; logits of task k's classes come from column k's head."""

    groups: tuple[tuple[int, ...], ...]
    hidden: Sequence[int] = (400, 400)
    adapter_dim: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return task_columns(
            "progressive", x, self.groups, self.hidden,
            lambda k, outputs: Column(tuple(self.hidden), outputs, self.adapter_dim,
                                      name=f"{COLUMN}{k}"))


def build(config, num_classes: int) -> nn.Module:
    groups = class_groups(config.class_order, num_classes, int(config.num_tasks))
    return ProgressiveNet(groups=groups, hidden=tuple(config.hidden),
                          adapter_dim=int(config.get("adapter_dim", 0)))
