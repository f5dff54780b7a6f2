"""Data and run parallelism on CPU devices (subprocesses; this process keeps its 1 device).

The sharded run must compute what the 1-device run computes: same per-epoch
losses up to float summation order, same accuracy matrices.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import distributed

ROOT = Path(__file__).resolve().parent.parent
CACHE = os.path.join(tempfile.gettempdir(), "continual_jax_test_xla_cache")


def subprocess_env(devices: int = 1) -> dict:
    """Environment for a child python: n host devices, the shared compile cache."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=CACHE,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5", PYTHONPATH=str(ROOT))
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def run_args(workdir: Path, epochs: int = 8) -> list[str]:
    """scripts.run on a small Split-Digits (hidden 64) that checkpoints and writes reports."""
    return [sys.executable, "-m", "scripts.run", "--config=research/configs/split_digits.py",
            "--config.hidden=64,", f"--config.num_epochs={epochs}", "--config.progress=False",
            "--config.plots=False", "--config.checkpoint_every_epochs=4",
            f"--workdir={workdir}"]


def assert_runs_agree(a: Path, b: Path, first_steps: int = 100) -> None:
    """Per-epoch losses within 1e-4 over the first steps; accuracy matrices within 0.01."""
    res_a, res_b = (json.loads((d / "results.json").read_text()) for d in (a, b))
    rows_a, rows_b = ([json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
                      for d in (a, b))
    assert len(rows_a) == len(rows_b) > 0
    steps_per_row = res_a["steps"] // (len(rows_a) // res_a["num_runs"])
    early = [(x, y) for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=True))
             if (i + 1) * steps_per_row <= first_steps]
    assert early, "no epoch ends inside the first steps"
    for x, y in early:
        assert (x["task"], x["epoch"]) == (y["task"], y["epoch"])
        assert abs(x["loss"] - y["loss"]) <= 1e-4, (x, y)
    for key in ("class_il", "task_il"):
        np.testing.assert_allclose(res_a[key]["accuracy_matrix"],
                                   res_b[key]["accuracy_matrix"], atol=0.01)


# -- a small sharded step, run on any mesh (8 devices here, 2 processes in
#    tests/test_multiprocess.py) ------------------------------------------------
def sharded_step_program() -> None:
    """Prints the gradient of a run-vmapped least-squares loss, batch split over 'data'."""
    if os.environ.get("CHECK_COORDINATOR"):
        distributed.initialize(os.environ["CHECK_COORDINATOR"], 2,
                               int(os.environ["CHECK_PROCESS_ID"]))
    placement = distributed.Placement(distributed.make_mesh(), batch_size=16)
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 16, 4))

    def loss(w, x):
        x = placement.constrain_batch(x)
        return jnp.mean(jnp.square(x @ w))

    grad = jax.vmap(jax.grad(loss))
    args = placement.place((w.astype(np.float32), x.astype(np.float32)))
    compiled = placement.jit(grad, args).lower(*args).compile()
    out = compiled(*args)
    print(json.dumps({"devices": jax.device_count(), "grad": np.asarray(out).tolist(),
                      "replicated": out.sharding.is_fully_replicated,
                      "all_reduce": "all-reduce" in compiled.as_text()}))


def expected_grad() -> np.ndarray:
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 16, 4))
    return np.einsum("rbi,rbo->rio", x, 2 * np.einsum("rbi,rio->rbo", x, w)) / (16 * 2)


PROGRAM = "from tests.test_distributed import sharded_step_program; sharded_step_program()"


def test_sharded_step_on_8_devices():
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=subprocess_env(8), cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    assert result["replicated"] and result["all_reduce"]  # batch split, gradient summed
    chex.assert_trees_all_close(np.asarray(result["grad"]), expected_grad(), atol=1e-5)


@pytest.mark.parametrize("text,devices,expected", [
    ("", 8, (8, 1)), ("4,2", 8, (4, 2)), ("-1,2", 8, (4, 2)), ("1,1", 1, (1, 1))])
def test_parse_mesh_shape(text, devices, expected):
    assert distributed.parse_mesh_shape(text, devices) == expected


@pytest.mark.parametrize("text", ["3,2", "two", "4", "0,8"])
def test_bad_mesh_shape_is_one_line_error(text):
    with pytest.raises(distributed.MeshError, match="config.mesh_shape"):
        distributed.parse_mesh_shape(text, 8)


def test_placement_replicates_and_splits_large_leaves_over_model():
    mesh = distributed.make_mesh()
    placement = distributed.Placement(mesh, batch_size=32)
    big = jax.ShapeDtypeStruct((2, 512, 512), jnp.float32)
    assert placement.sharding_for(big).spec == jax.sharding.PartitionSpec()  # model axis = 1
    placed = placement.place({"w": np.ones((2, 3), np.float32)})
    assert placed["w"].sharding.is_fully_replicated


def test_bad_compute_dtype_is_one_line_error(digits_config):
    digits_config.compute_dtype = "float16"
    with pytest.raises(distributed.MeshError, match="compute_dtype='float16'"):
        distributed.compute_dtype(digits_config)


def test_bfloat16_compute_keeps_float32_master_weights(digits_config):
    import models
    from research import engine as engine_lib

    model = models.load("mlp").build(digits_config, 10)
    params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 64)))["params"]
    eng = engine_lib.Engine(model, None, {}, None, 32, 1, compute_dtype=jnp.bfloat16)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 64)), jnp.float32)
    logits = eng.apply_fn(params, x)
    grads = jax.grad(lambda p: jnp.sum(eng.apply_fn(p, x)))(params)
    assert logits.dtype == jnp.float32
    chex.assert_trees_all_equal_dtypes(grads, params)
    full = model.apply({"params": params}, x)
    chex.assert_trees_all_close(logits, full, atol=0.1, rtol=0.05)  # bf16 rounding only
    assert not np.allclose(logits, full, atol=1e-6)  # it did compute in bfloat16


@pytest.mark.slow
def test_split_digits_on_8_devices_matches_1_device(tmp_path):
    for devices in (1, 8):
        subprocess.run(run_args(tmp_path / str(devices)), env=subprocess_env(devices),
                       cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    assert_runs_agree(tmp_path / "1", tmp_path / "8")
    sharded = run_args(tmp_path / "rows") + ["--config.shard_data=True"]
    subprocess.run(sharded, env=subprocess_env(8), cwd=ROOT, capture_output=True, text=True,
                   timeout=600, check=True)
    assert_runs_agree(tmp_path / "1", tmp_path / "rows")


@pytest.mark.slow
def test_split_digits_runs_sharded_on_2_devices_matches_1_device(tmp_path):
    """scripts.run end to end (checkpoints, reports) with 2 seeds split over 2 devices."""
    seeds = ["--config.num_seeds=2"]
    subprocess.run(run_args(tmp_path / "one") + seeds, env=subprocess_env(1), cwd=ROOT,
                   capture_output=True, text=True, timeout=600, check=True)
    sharded = run_args(tmp_path / "runs") + seeds + ["--config.shard_runs=True"]
    subprocess.run(sharded, env=subprocess_env(2), cwd=ROOT, capture_output=True, text=True,
                   timeout=600, check=True)
    assert_runs_agree(tmp_path / "one", tmp_path / "runs")
    # Resuming restores the sharded state: drop the last checkpoint and rerun.
    finished = json.loads((tmp_path / "runs" / "results.json").read_text())
    checkpoints = tmp_path / "runs" / "checkpoints"
    shutil.rmtree(max(checkpoints.iterdir(), key=lambda d: int(d.name)))
    subprocess.run(sharded, env=subprocess_env(2), cwd=ROOT, capture_output=True, text=True,
                   timeout=600, check=True)
    resumed = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert resumed["class_il"]["accuracy_matrix"] == finished["class_il"]["accuracy_matrix"]


ROWS_PROGRAM = """
import json, jax, numpy as np
from research import distributed
placement = distributed.Placement(distributed.make_mesh(), batch_size=8, shard_data=True)
pool = {"x": np.arange(2 * 13 * 3, dtype=np.float32).reshape(2, 13, 3),
        "valid": np.ones((2, 13), bool)}
placed = placement.place_rows(pool)
shards = [s.data.shape for s in placed["x"].addressable_shards]
as_list = lambda a: np.asarray(a).tolist()
print(json.dumps({"shape": placed["x"].shape, "shards": shards, "x": as_list(placed["x"]),
                  "valid": as_list(placed["valid"]),
                  "kept": placement.place(placed)["x"] is placed["x"]}))
"""


def test_shard_data_splits_pool_rows_over_devices():
    out = subprocess.run([sys.executable, "-c", ROWS_PROGRAM], env=subprocess_env(8), cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [2, 16, 3]  # 13 rows padded to a multiple of 8 devices
    assert {tuple(s) for s in result["shards"]} == {(2, 2, 3)}  # each device: 1/8 of the rows
    x = np.asarray(result["x"])
    np.testing.assert_array_equal(x[:, :13], np.arange(78).reshape(2, 13, 3))
    assert not np.any(np.asarray(result["valid"])[:, 13:]) and x[:, 13:].sum() == 0
    assert result["kept"]  # the engine's placement leaves sharded rows as they are


WHOLE_POOL_PROGRAM = """
import json, sys, jax
from research import train
from research.configs import split_digits
config = split_digits.get_config()
config.update(num_epochs=1, shard_data=True, progress=False)
run = train.build_run(config)
epochs, whole = run.eng.epochs, []
class Watched:  # the engine's epochs, noting each image pool [runs, rows, 8, 8] on one device
    def __getattr__(self, name):
        return getattr(epochs, name)
    def __call__(self, state, pool, hp):
        whole.extend(a.shape for a in jax.live_arrays()
                     if len(a.devices()) == 1 and a.ndim == 4 and a.shape[1] > 100)
        return epochs(state, pool, hp)
run.eng.epochs = Watched()
train.train_and_evaluate(config, sys.argv[1], overwrite=True, run=run)
print(json.dumps(whole))
"""


def test_a_sharded_pool_never_sits_whole_on_one_device(tmp_path):
    """With shard_data each device gets its rows from the host: the pool used to go to
    device 0 whole first (two copies of each task's rows lived there while it trained)."""
    out = subprocess.run([sys.executable, "-c", WHOLE_POOL_PROGRAM, str(tmp_path / "w")],
                         env=subprocess_env(8), cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


STREAM_PROGRAM = """
import json, sys, jax, numpy as np
from research import distributed
chunk = {"x": np.arange(2 * 3 * 8 * 5, dtype=np.float32).reshape(2, 3, 8, 5)}
placement = distributed.Placement(distributed.make_mesh(), batch_size=8,
                                  shard_runs=sys.argv[1] == "runs")
placed = placement.place_streamed(chunk)["x"]
assert np.array_equal(np.asarray(placed), chunk["x"])
print(json.dumps(sorted({s.data.shape for s in placed.addressable_shards})))
"""


@pytest.mark.parametrize("devices, split, shard", [(8, "batch", [2, 3, 1, 5]),
                                                   (2, "runs", [1, 3, 8, 5])])
def test_streamed_batches_reach_each_device_as_its_slice(devices, split, shard):
    """A host-streamed chunk [runs, steps, batch, ...]: each device holds only the rows of
    every batch it computes (or only its runs), not a copy of the whole chunk."""
    out = subprocess.run([sys.executable, "-c", STREAM_PROGRAM, split],
                         env=subprocess_env(devices), cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [shard]


@pytest.mark.slow
def test_streamed_run_on_8_devices_matches_1_device(tmp_path):
    streamed = ["--config.stream_chunk_steps=4"]
    for devices in (1, 8):
        subprocess.run(run_args(tmp_path / str(devices)) + streamed,
                       env=subprocess_env(devices), cwd=ROOT, capture_output=True, text=True,
                       timeout=600, check=True)
    assert_runs_agree(tmp_path / "1", tmp_path / "8")


RUNS_PROGRAM = """
import json, sys, jax, jax.numpy as jnp
from research import distributed, train
from research.configs import split_digits

def first_task(seeds, shard_runs):
    config = split_digits.get_config()
    config.update(algorithm="ewc", num_tasks=2, num_seeds=seeds, hidden=(64,),
                  shard_runs=shard_runs)
    run = train.build_run(config)
    pool = jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(0))
    state, metrics = run.eng.epochs(run.state, pool, run.hp)
    state = run.eng.end_task(state, pool, run.hp)
    state, metrics = run.eng.epochs(state, pool, run.hp)  # the EWC penalty is live
    accuracy = run.eng.evaluate(state, run.test, run.task_classes, run.hp)["class_il"]
    return run, state, metrics, accuracy

run, state, metrics, accuracy = first_task(4, jax.device_count() > 1)
weights = jax.tree_util.tree_leaves(state.params)[0]
programs = [program.as_text() for f in run.eng.functions for program in f.executables()]
try:
    first_task(3, True)
    error = ""
except distributed.MeshError as err:
    error = str(err)
print(json.dumps({"devices": jax.device_count(), "spec": str(weights.sharding.spec),
                  "shard_runs": [s.data.shape[0] for s in weights.addressable_shards],
                  "collectives": sum(c in t for t in programs for c in (
                      "all-reduce", "all-gather", "collective-permute", "all-to-all")),
                  "loss": jax.device_get(metrics["loss"]).tolist(),
                  "accuracy": jax.device_get(accuracy).tolist(), "error": error}))
"""


def run_runs_program(devices: int) -> dict:
    out = subprocess.run([sys.executable, "-c", RUNS_PROGRAM], env=subprocess_env(devices),
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_shard_runs_splits_seeds_over_devices_without_collectives():
    """4 EWC seeds on 2 devices: 2 runs each, no cross-device traffic in any program, and
    the numbers of the 1-device run (each device vmaps its own runs)."""
    one, two = run_runs_program(1), run_runs_program(2)
    assert two["devices"] == 2 and two["spec"] == "P('data', None)"
    assert two["shard_runs"] == [2, 2] and two["collectives"] == 0
    np.testing.assert_allclose(two["loss"], one["loss"], atol=1e-4)
    np.testing.assert_allclose(two["accuracy"], one["accuracy"], atol=0.01)
    assert "3 runs (num_seeds x sweep values) do not split evenly over the 2 devices" in (
        two["error"])


def test_shard_runs_with_a_curriculum_is_one_clear_error(digits_config):
    from research import config_check

    digits_config.update({"shard_runs": True, "curriculum": "length"})
    with pytest.raises(config_check.ConfigError, match="shard_runs does not support"):
        config_check.validate(digits_config)


def test_shard_runs_and_shard_data_exclude_each_other():
    with pytest.raises(distributed.MeshError, match="shard_runs and config.shard_data"):
        distributed.Placement(distributed.make_mesh(), 32, shard_data=True, shard_runs=True)


@pytest.mark.slow
def test_bfloat16_run_close_to_float32(digits_config, tmp_path):
    from research import train

    digits_config.num_tasks = 2
    f32 = train.train_and_evaluate(digits_config, str(tmp_path / "f32"))
    digits_config.compute_dtype = "bfloat16"
    bf16 = train.train_and_evaluate(digits_config, str(tmp_path / "bf16"))
    assert abs(f32["task_il"]["ACC"] - bf16["task_il"]["ACC"]) < 0.05
