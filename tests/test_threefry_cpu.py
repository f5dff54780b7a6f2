"""research/threefry_cpu.py: the unrolled threefry is JAX's hash, draw for draw."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from research import engine, threefry_cpu  # noqa: F401  (engine registers the lowering)

# Known answers of Threefry-2x32, 20 rounds (Random123's kat_vectors).
KNOWN = [((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
         ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
         ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]


@pytest.mark.parametrize("key,count,expected", KNOWN)
def test_known_answers(key, count, expected):
    u32 = lambda v: jnp.asarray(v, jnp.uint32)
    out = jax.jit(threefry_cpu.threefry2x32)(u32(key[0]), u32(key[1]), u32(count[0]),
                                             u32(count[1]))
    assert tuple(int(o) for o in out) == expected


_DRAWS = """
import json, jax, numpy as np
def draws():
    key = jax.random.PRNGKey(7)
    bits = jax.vmap(lambda s: jax.random.bits(s, (2,)))
    out = jax.jit(lambda k: (jax.random.split(k, 3), jax.random.uniform(k, (5, 3)),
                             jax.random.randint(k, (9,), 0, 1000), jax.random.normal(k, (4,)),
                             bits(jax.random.split(k, 4))))(key)
    return json.dumps([np.asarray(a).view(np.uint32).tolist() for a in out])
"""


def test_same_bits_as_jax_rolled_lowering():
    """A fresh process that never imports the engine draws with JAX's own CPU lowering."""
    theirs = subprocess.run([sys.executable, "-c", _DRAWS + "print(draws())"], check=True,
                            capture_output=True, text=True).stdout
    here: dict = {}
    exec(_DRAWS, here)  # noqa: S102  (the text the fresh process runs)
    assert json.loads(here["draws"]()) == json.loads(theirs)


def test_a_key_split_compiles_without_a_loop():
    split = jax.jit(lambda k: jax.random.split(k, 3)).lower(jax.random.PRNGKey(0)).compile()
    assert "while" not in split.as_text()
