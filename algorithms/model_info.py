"""What a method needs to know about the model, read from its parameters alone.

``init(params, rng)`` sees no data, so buffers and class masks size themselves
from the parameters: the output layer is the module named ``head`` (every model
of ours names it so) and the input size comes from the first dense kernel.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from algorithms.base import ApplyFn, Params


def _head(params: Params) -> dict:
    if not isinstance(params, dict) or "head" not in params:
        raise ValueError("this method needs the model's output layer to be a module named "
                         f"'head'; top-level parameters are {list(params)}")
    return params["head"]


def num_classes(params: Params) -> int:
    """Width of the output layer: the last axis of the head's last kernel or bias."""
    leaves = jax.tree_util.tree_leaves(_head(params))
    return int(leaves[-1].shape[-1])


def input_size(params: Params, override: int = 0) -> int:
    """Flattened input size: ``override`` if positive, else rows of the first dense kernel."""
    if override > 0:
        return override
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", None) == "kernel":
            if leaf.ndim != 2:
                raise ValueError("cannot infer the input size from a convolutional first layer; "
                                 "set config.hp.buffer_input_size to the flattened input size")
            return int(leaf.shape[0])
    raise ValueError("no dense kernel in the parameters; set config.hp.buffer_input_size")


def flatten_inputs(x: jax.Array) -> jax.Array:
    """[B, ...] -> [B, D] float rows, the layout replay buffers store."""
    if not hasattr(x, "shape"):
        raise ValueError("replay buffers store array inputs only, not pytrees (text batches)")
    return x.reshape((x.shape[0], math.prod(x.shape[1:]))).astype(jnp.float32)


def head_features(params: Params, x: jax.Array, apply_fn: ApplyFn) -> jax.Array:
    """[B, D] penultimate features, the input of the dense ``head``, for any model.

    logit_0 = h . w_0 + b_0, so h is the gradient of the first logit with
    respect to the head's first kernel column: one per-example backward pass
    that XLA prunes to the forward pass, needing no feature hook in the model.
    """
    head = _head(params)
    if "kernel" not in head or head["kernel"].ndim != 2:
        raise ValueError("head_features needs a dense 'head' with a 2-D kernel")

    def first_logit(column: jax.Array, row: jax.Array) -> jax.Array:
        kernel = head["kernel"].at[:, 0].set(column)
        return apply_fn({**params, "head": {**head, "kernel": kernel}}, row[None])[0, 0]

    return jax.vmap(jax.grad(first_logit), in_axes=(None, 0))(head["kernel"][:, 0], x)
