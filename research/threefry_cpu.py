"""The threefry hash on the CPU as straight-line code instead of JAX's rolled loop.

JAX lowers threefry-2x32 for the CPU as a five-trip ``fori_loop`` (it compiles
faster), and XLA's CPU runtime then runs each random draw as a while loop of
small kernels, about 10-15 us a draw. A train step draws a few times (its key
split, a replay buffer's sampling and insertion) in 0.4-0.8 ms. Unrolled, the
20 rounds fuse into one elementwise kernel. It is the same function (Salmon et
al. 2011, "Parallel random numbers: as easy as 1, 2, 3"), so every key and
every draw comes out the same bits (tests/test_threefry_cpu.py).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(v: jax.Array, bits: int) -> jax.Array:
    return (v << np.uint32(bits)) | (v >> np.uint32(32 - bits))


def threefry2x32(key1: jax.Array, key2: jax.Array, x1: jax.Array, x2: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds: five blocks of four, a key injection after each."""
    keys = (key1, key2, key1 ^ key2 ^ _PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for block in range(5):
        for bits in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, bits) ^ x1
        x1 = x1 + keys[(block + 1) % 3]
        x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def use_unrolled_threefry() -> None:
    """Lowers every later-compiled threefry on the CPU through ``threefry2x32``."""
    mlir.register_lowering(threefry2x32_p, mlir.lower_fun(threefry2x32, multiple_results=True),
                           platform="cpu")
