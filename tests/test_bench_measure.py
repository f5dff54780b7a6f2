"""The benchmark's measurement helpers (the figures themselves come from scripts.bench)."""

import os

import jax
import jax.numpy as jnp

from research.bench import measure


def test_persistent_compilation_cache_keeps_programs_then_restores_the_config(tmp_path):
    names = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
             "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    cache = str(tmp_path / "cache")
    with measure.persistent_compilation_cache(cache):
        # A program of its own shape, so no earlier test compiled it; it compiles in
        # milliseconds, which the cache keeps too (as the scripts' workdir cache does).
        jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.ones((3, 7, 11))).block_until_ready()
        assert os.listdir(cache), "the program was not written to the cache"
    assert {name: getattr(jax.config, name) for name in names} == before


def test_mlp_step_flops_counts_three_matmuls_per_layer():
    # 64 -> 400 -> 10, batch 2: forward 2*2*(64*400 + 400*10), backward twice that.
    assert measure.mlp_step_flops(64, (400,), 10, 2) == 3 * 2 * 2 * (64 * 400 + 400 * 10)
