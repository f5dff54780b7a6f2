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


def test_mlp_step_flops_counts_the_products_the_step_computes():
    # 64 -> 400 -> 10, batch 2: forward and weight gradient of both layers, input
    # gradient of the second only (the data needs none).
    first, second = 2 * 2 * 64 * 400, 2 * 2 * 400 * 10
    assert measure.mlp_step_flops(64, (400,), 10, 2) == 2 * first + 3 * second


def test_round_ratios_pair_each_turn_with_the_peer_run_after_it():
    turns = [2000.0, 1000.0, 3000.0, 2500.0, 2400.0]  # our steps/s, turn by turn
    peer = [{"seed": 1, "later": 500.0, "all": 250.0},
            {"seed": 0, "later": 400.0, "all": 200.0},
            {"seed": 7, "later": 100.0, "all": 50.0}]  # no turn 7: left out
    assert measure.round_ratios(turns, peer, "later") == [2.0, 5.0]
    assert measure.round_ratios(turns, peer, "all") == [4.0, 10.0]


def test_workloads_take_turns_with_the_peer_between_turns():
    calls = []

    def workload(name, rate):
        return lambda: calls.append(name) or rate

    turns = measure.steady_rates_by_turn(
        {"naive": workload("naive", 3.0), "handwritten": workload("handwritten", 4.0)},
        repeats=2, between_turns=lambda i: calls.append(f"peer {i}"))
    assert calls == ["naive", "handwritten", "peer 0", "naive", "handwritten", "peer 1"]
    assert turns == {"naive": [3.0, 3.0], "handwritten": [4.0, 4.0]}


def test_median_run_is_the_middle_wall_time_and_the_slower_of_two():
    runs = [({"name": w}, {"wall_seconds": w}) for w in (30.0, 26.0, 34.0)]
    assert measure.median_run(runs)[0] == {"name": 30.0}
    assert measure.median_run(runs[1:])[1]["wall_seconds"] == 34.0
