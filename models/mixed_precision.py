"""A Dense layer's matmul for bfloat16 compute: bfloat16 operands, float32 accumulation.

``config.compute_dtype=bfloat16`` casts parameters and inputs to bfloat16 inside
the step (research/distributed.apply_in). A plain bfloat16 ``dot_general``
then rounds its result to bfloat16, and its gradient, as JAX transposes it,
casts both operands up to float32. On CPUs with bfloat16 matrix units (Intel's
AMX) XLA's fast matmul library takes only bfloat16 operands with a float32
result, so both forms fall back to a kernel several times slower than the
float32 one (docs/benchmarks.md). ``dot_general`` here keeps every product of a
Dense layer, forward and backward, in the fast form: bfloat16 operands, float32
accumulation, the result rounded once to bfloat16. On any other dtype it is
``lax.dot_general`` itself, so float32 runs are unchanged bit for bit.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _product(lhs: jax.Array, rhs: jax.Array, dims: tuple) -> jax.Array:
    return lax.dot_general(lhs, rhs, (dims, ((), ())),
                           preferred_element_type=jnp.float32).astype(lhs.dtype)


@jax.custom_vjp
def dense_bf16(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x @ kernel`` over x's last axis, accumulated in float32."""
    return _product(x, kernel, ((x.ndim - 1,), (0,)))


def _forward(x: jax.Array, kernel: jax.Array) -> tuple[jax.Array, tuple]:
    return dense_bf16(x, kernel), (x, kernel)


def _backward(residuals: tuple, grad: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    grad = grad.astype(x.dtype)
    dx = _product(grad, kernel, ((grad.ndim - 1,), (1,)))
    # The kernel's gradient contracts the rows of both operands. Contracted as one
    # axis, XLA hands it to a slow kernel; as two (a unit axis added), it transposes
    # the operands first and takes the fast one.
    rows = lambda a: a.reshape(-1, 1, a.shape[-1])
    dkernel = _product(rows(x), rows(grad), ((0, 1), (0, 1)))
    return dx, dkernel.astype(kernel.dtype)


dense_bf16.defvjp(_forward, _backward)


def dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers: tuple,
                precision: Any = None, **kwargs) -> jax.Array:
    """``lax.dot_general``, except a Dense layer's bfloat16 product goes to ``dense_bf16``."""
    dense = (((lhs.ndim - 1,), (0,)), ((), ()))
    if (lhs.dtype == rhs.dtype == jnp.bfloat16 and rhs.ndim == 2 and precision is None
            and not kwargs and dimension_numbers == dense):
        return dense_bf16(lhs, rhs)
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision, **kwargs)


Dense = functools.partial(nn.Dense, dot_general=dot_general)
