"""Multi-task MLPs: five ways to share (or not) a trunk between T tasks.

Every model maps ``x`` (any shape ``[B, ...]``, flattened) to a tuple of
per-task outputs, ``task_outputs[t]`` wide, and accepts ``train`` (only the
task-specific batch norm uses it). Parameter names follow one convention the
training loop relies on (see ``is_task_specific`` and ``last_shared_kernels``):

* ``head_{t}``: task t's output layer; with ``attention_{t}`` (MTAN),
  ``bn_{t}_{l}`` (task batch norm) and, under soft sharing only, ``column_{t}_*``,
  the parameters only task t's loss depends on;
* ``dense_{l}`` (possibly inside a column ``column_{t}``): hidden layer l; the
  last one is what GradNorm measures gradient norms on;
* ``rep`` / ``rep_{l}`` in the ``perturbations`` collection: the shared
  representation (hard sharing, MTAN trunk). MGDA-UB takes per-task gradients
  with respect to it; it is a no-op unless that collection is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ARCHS = ("hard", "cross_stitch", "mtan", "task_bn", "soft")

Outputs = tuple[jax.Array, ...]


def _flatten(x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0], -1))


def _relu_layers(z: jax.Array, hidden: Sequence[int], prefix: str = "") -> list[jax.Array]:
    """A ReLU MLP's activations over ``z``, ``z`` first (call from a compact method)."""
    acts = [z]
    for layer, width in enumerate(hidden):
        acts.append(nn.relu(nn.Dense(width, name=f"{prefix}dense_{layer}")(acts[-1])))
    return acts


def _heads(features: Sequence[jax.Array], task_outputs: Sequence[int]) -> Outputs:
    return tuple(
        nn.Dense(width, name=f"head_{t}")(feat)
        for t, (width, feat) in enumerate(zip(task_outputs, features, strict=True))
    )


class HardSharing(nn.Module):
    """One shared ReLU trunk, one linear head per task (Caruana 1997)."""

    task_outputs: Sequence[int]
    hidden: Sequence[int] = (128, 128)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> Outputs:
        del train
        z = self.perturb("rep", _relu_layers(_flatten(x), self.hidden)[-1])
        return _heads([z] * len(self.task_outputs), self.task_outputs)


def cross_stitch_init(num_tasks: int, width: int, self_weight: float = 0.9) -> jax.Array:
    """``alpha[t_out, t_in, c]``: ``self_weight`` on the own column, the rest spread evenly."""
    if num_tasks == 1:
        return jnp.ones((1, 1, width))
    other = (1.0 - self_weight) / (num_tasks - 1)
    eye = jnp.eye(num_tasks)[:, :, None]
    return jnp.broadcast_to(eye * self_weight + (1.0 - eye) * other, (num_tasks, num_tasks, width))


class CrossStitch(nn.Module):
    """One column per task; after each hidden layer a per-channel linear mix of the columns.

    ``x_t <- sum_s alpha[t, s, c] * h_s[c]`` (Misra et al. 2016), with alpha
    initialised near the identity (0.9 self / 0.1 others) so training starts
    close to independent networks instead of an all-ones average.
    """

    task_outputs: Sequence[int]
    hidden: Sequence[int] = (128, 128)
    self_weight: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> Outputs:
        del train
        num_tasks = len(self.task_outputs)
        cols = [_flatten(x)] * num_tasks
        for layer, width in enumerate(self.hidden):
            h = jnp.stack(
                [
                    nn.relu(nn.Dense(width, name=f"column_{t}_dense_{layer}")(cols[t]))
                    for t in range(num_tasks)
                ]
            )  # [T, B, C]
            alpha = self.param(
                f"stitch_{layer}",
                lambda _, n=num_tasks, w=width: cross_stitch_init(n, w, self.self_weight),
            )
            mixed = jnp.einsum("tsc,sbc->tbc", alpha, h)
            cols = list(mixed)
        return _heads(cols, self.task_outputs)


class TaskAttention(nn.Module):
    """One task's attention: a sigmoid soft mask over the trunk's features at every layer.

    MTAN's eq. 1 (Liu et al. 2019), for an MLP trunk: layer l's mask
    ``g_l([h_l; f_l(a_{l-1})])`` sees the shared features ``h_l`` and this task's
    attended features from the layer below, passed through ``f_l``; the
    attended features are ``a_l = mask * h_l``. ``g_l`` is this task's own;
    ``f_l`` (``blocks[l-1]``, Dense + ReLU to layer l's width) is one block all
    tasks share, as the paper's shared feature extractor.
    """

    hidden: Sequence[int]
    blocks: Sequence[nn.Module]

    @nn.compact
    def __call__(self, shared: Sequence[jax.Array]) -> jax.Array:
        attended = None
        for layer, (width, feat) in enumerate(zip(self.hidden, shared, strict=True)):
            if attended is None:
                inp = feat
            else:
                inp = jnp.concatenate([feat, nn.relu(self.blocks[layer - 1](attended))], axis=-1)
            gate = nn.relu(nn.Dense(width, name=f"gate_{layer}_in")(inp))
            mask = nn.sigmoid(nn.Dense(width, name=f"gate_{layer}_out")(gate))
            attended = mask * feat
        return attended


class MTAN(nn.Module):
    """Shared trunk; each task reads it through its own ``TaskAttention`` (distinct params).

    The attention modules share the blocks ``att_block_{l}`` that carry attended
    features from layer l to layer l+1 (the paper's ``f``, shared across tasks).
    """

    task_outputs: Sequence[int]
    hidden: Sequence[int] = (128, 128)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> Outputs:
        del train
        trunk = _relu_layers(_flatten(x), self.hidden)[1:]
        shared = [self.perturb(f"rep_{layer}", z) for layer, z in enumerate(trunk)]
        blocks = tuple(nn.Dense(width, name=f"att_block_{layer}")
                       for layer, width in enumerate(self.hidden[1:]))
        features = [
            TaskAttention(tuple(self.hidden), blocks, name=f"attention_{t}")(shared)
            for t in range(len(self.task_outputs))
        ]
        return _heads(features, self.task_outputs)


class TaskBatchNorm(nn.Module):
    """Shared dense weights, per-task batch norm (statistics, scale and shift).

    Each task runs its own pass through the shared layers, normalising with its
    own ``bn_{t}_{l}``. Train with ``train=True, mutable=['batch_stats']``;
    evaluate with ``train=False`` (running averages, nothing mutated).
    """

    task_outputs: Sequence[int]
    hidden: Sequence[int] = (128, 128)
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> Outputs:
        x = _flatten(x)
        denses = [nn.Dense(w, name=f"dense_{layer}") for layer, w in enumerate(self.hidden)]
        features = []
        for t in range(len(self.task_outputs)):
            h = x
            for layer, dense in enumerate(denses):
                bn = nn.BatchNorm(
                    use_running_average=not train, momentum=self.momentum, name=f"bn_{t}_{layer}"
                )
                h = nn.relu(bn(dense(h)))
            features.append(h)
        return _heads(features, self.task_outputs)


class SoftSharing(nn.Module):
    """Independent columns; sharing comes only from ``soft_sharing_penalty`` (Duong et al. 2015).

    With the penalty off this is exactly T single-task networks, which is how
    the training loop gets its single-task baselines in one compiled program.
    """

    task_outputs: Sequence[int]
    hidden: Sequence[int] = (128, 128)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> Outputs:
        del train
        x = _flatten(x)
        features = [_relu_layers(x, self.hidden, f"column_{t}_")[-1]
                    for t in range(len(self.task_outputs))]
        return _heads(features, self.task_outputs)


def soft_sharing_penalty(params: Any, num_tasks: int, depth: int) -> jax.Array:
    """sum_l sum_{s<t} ||W_s^l - W_t^l||^2 over corresponding column kernels and biases."""
    total = jnp.zeros(())
    for layer in range(depth):
        cols = [params[f"column_{t}_dense_{layer}"] for t in range(num_tasks)]
        for s in range(num_tasks):
            for t in range(s + 1, num_tasks):
                sq = jax.tree_util.tree_map(
                    lambda a, b: jnp.sum(jnp.square(a - b)), cols[s], cols[t]
                )
                total = total + sum(jax.tree_util.tree_leaves(sq))
    return total


_CLASSES = {
    "hard": HardSharing,
    "cross_stitch": CrossStitch,
    "mtan": MTAN,
    "task_bn": TaskBatchNorm,
    "soft": SoftSharing,
}


def build(arch: str, task_outputs: Sequence[int], hidden: Sequence[int]) -> nn.Module:
    """The model for ``config.arch``; ValueError naming the choices."""
    if arch not in _CLASSES:
        raise ValueError(f"unknown arch {arch!r}; choices: {', '.join(ARCHS)}")
    return _CLASSES[arch](task_outputs=tuple(task_outputs), hidden=tuple(hidden))


def _key_name(entry: Any) -> str:
    return str(getattr(entry, "key", getattr(entry, "name", entry)))


def is_task_specific(path: Sequence[Any], arch: str) -> bool:
    """Whether only one task's loss depends on a parameter path (from ``tree_map_with_path``).

    A head, an MTAN attention module, a task's batch norm, and under soft
    sharing a whole column (cross-stitch columns feed every task, so they are
    shared). PCGrad and MGDA combine gradients over the other, shared,
    parameters only; these get their own task's gradient.
    """
    owned = ("head_", "attention_", "bn_") + (("column_",) if arch == "soft" else ())
    return any(_key_name(p).startswith(owned) for p in path)


def last_shared_kernels(path: Sequence[Any], depth: int) -> bool:
    """Whether a path is a kernel of the last hidden layer (GradNorm's ``W``)."""
    names = [_key_name(p) for p in path]
    return names[-1] == "kernel" and any(n.endswith(f"dense_{depth - 1}") for n in names)
