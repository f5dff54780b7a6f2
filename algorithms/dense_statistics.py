"""Sums over examples of a function of each example's own gradient, for dense layers,
without forming the per-example gradients.

For a dense layer z = x W + b, the gradient of one example's scalar s with respect to
W is the outer product x^T g, g = ds/dz. A function that factors over products
(the square of the Fisher, the absolute value of MAS) gives f(x)^T f(g), so the
weighted sum over a batch is one matrix product, f(X)^T diag(w) f(G) (Goodfellow
2015, "Efficient per-example gradient computations"). It costs a forward and
backward pass of the batch and a product per layer, where per-example gradients
cost a copy of every parameter per example: on the Split-Digits MLP, 2.7 against
35 ms for a 254-row task (one seed, docs/benchmarks.md).

The identity holds when every parameter belongs to a flax ``nn.Dense`` applied once
per example to one vector: no weight shared across positions (a token sequence)
or calls. ``plan`` checks that on the model as traced and returns None otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from algorithms.base import Params

# scalar(params, example, key) -> one example's scalar (its log-likelihood, say).
ScalarFn = Callable[[Params, dict, jax.Array], jax.Array]


class DenseCall(NamedTuple):
    path: tuple[str, ...]  # the layer's place in the parameter tree
    features: int
    use_bias: bool


def _is_dense_call(context: Any) -> bool:
    return isinstance(context.module, nn.Dense) and context.method_name == "__call__"


def _names(path: tuple) -> tuple[str, ...]:
    """A parameter's key path as the names of its dicts' keys."""
    return tuple(getattr(k, "key", k) for k in path)


def _leaf_paths(params: Params) -> set[tuple[str, ...]]:
    return {_names(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}


def plan(scalar: ScalarFn, params: Params, example: dict, key: jax.Array
         ) -> tuple[DenseCall, ...] | None:
    """The dense layers one example's ``scalar`` calls, in order, when they hold every
    parameter and each sees one vector once; None when the identity does not apply."""
    calls: list[DenseCall] = []
    vectors = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if _is_dense_call(context):
            vectors.append(args[0].ndim == 2 and args[0].shape[0] == 1)
            calls.append(DenseCall(tuple(context.module.path), out.shape[-1],
                                   context.module.use_bias))
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(scalar, params, example, key)
    covered = {c.path + ("kernel",) for c in calls} | {c.path + ("bias",) for c in calls
                                                       if c.use_bias}
    once = len({c.path for c in calls}) == len(calls)
    if not calls or not all(vectors) or not once or covered != _leaf_paths(params):
        return None
    return tuple(calls)


def weighted_sums(scalar: ScalarFn, transform: Callable[[jax.Array], jax.Array],
                  layers: tuple[DenseCall, ...], params: Params, examples: dict,
                  keys: jax.Array, weight: jax.Array) -> Params:
    """sum_i weight_i transform(d scalar_i / d params), shaped like ``params``, for a
    ``transform`` with f(a b) = f(a) f(b) (square, abs) and ``layers`` from ``plan``."""

    def one(offsets, example, key):
        """The scalar with each dense output shifted by its offset (zero): its gradient
        in the offsets is the layer's output gradient; the layers' inputs come out too."""
        inputs = []

        def shift(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if not _is_dense_call(context):
                return out
            inputs.append(args[0])
            return out + offsets[len(inputs) - 1].astype(out.dtype)

        with nn.intercept_methods(shift):
            value = scalar(params, example, key)
        return value, inputs

    count = weight.shape[0]
    zeros = [jnp.zeros((count, 1, layer.features), jnp.float32) for layer in layers]
    out_grads, inputs = jax.vmap(jax.grad(one, has_aux=True))(zeros, examples, keys)
    sums = {}
    for layer, x, g in zip(layers, inputs, out_grads, strict=True):
        fx = transform(x.reshape(count, -1).astype(jnp.float32))
        fg = transform(g.reshape(count, -1)) * weight[:, None]
        sums[layer.path + ("kernel",)] = fx.T @ fg
        if layer.use_bias:
            sums[layer.path + ("bias",)] = jnp.sum(fg, 0)
    return jax.tree_util.tree_map_with_path(lambda path, _: sums[_names(path)], params)
