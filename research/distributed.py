"""Devices and hosts: one mesh, the batch sharded over 'data', the state replicated.

The same code path runs on 1 CPU device, N GPUs, a TPU slice, or several
processes joined by ``jax.distributed``: a ``jax.make_mesh`` with axes
('data', 'model'), every input placed by ``Placement.place`` (replicated,
except large float arrays optionally split over 'model'), and the step's
batch constrained to ``P('data')`` inside the compiled scan. XLA inserts the
gradient all-reduce, so a sharded run computes the same numbers as a
1-device one up to float summation order.

Many hosts: ``initialize`` (flags or the environment) joins the processes
before any device is touched; each host builds the (small, seeded) stream
itself and contributes its addressable shards of every global array, and only
process 0 writes reports. On CPU the processes exchange through gloo.

``config.shard_data`` splits the training pool's rows over 'data' instead of
replicating it: each device holds 1/N of the rows, and each process builds
only the shards of its own devices (``Placement.place_rows``). The step still
draws its batch from the whole pool (XLA gathers across devices), so results
match the replicated run.

``config.shard_runs`` splits the leading run axis (seeds x sweep values) over
'data' instead of the batch: each device trains its own runs (the programs run
under ``shard_map`` over 'data') and no program has a collective, so a sweep
spreads over devices at no per-step cost.

Batches streamed from host memory (``config.stream_chunk_steps``) are built
as global arrays split like the step reads them (``Placement.place_streamed``):
each device is sent only its slice of every batch, or only its runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "model")
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODEL_SHARD_MIN_SIZE = 1 << 16  # float leaves smaller than this stay replicated


class MeshError(ValueError):
    """The devices cannot be arranged as the config asks."""


def parse_mesh_shape(text: str, num_devices: int) -> tuple[int, int]:
    """'' -> (all devices, 1); 'D,M' -> (D, M); '-1,M' fills D from the device count."""
    if not text.strip():
        return num_devices, 1
    try:
        data, model = (int(p) for p in text.split(","))
    except ValueError:
        raise MeshError(f"config.mesh_shape={text!r} must be 'DATA,MODEL' (e.g. '4,2' or "
                        "'-1,2') or empty for all devices on 'data'") from None
    if data == -1 and model > 0 and num_devices % model == 0:
        data = num_devices // model
    if data < 1 or model < 1 or data * model != num_devices:
        raise MeshError(f"config.mesh_shape={text!r} needs {data}x{model} devices but "
                        f"{num_devices} are visible")
    return data, model


def make_mesh(mesh_shape: str = "", devices: list | None = None) -> Mesh:
    """A ('data', 'model') mesh over every device (every process's, when distributed)."""
    devices = jax.devices() if devices is None else devices
    shape = parse_mesh_shape(mesh_shape, len(devices))
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def _pad_rows(value: np.ndarray, multiple: int) -> np.ndarray:
    """Zero rows (so invalid, padding-like) appended to axis 1 up to a multiple."""
    extra = -value.shape[1] % multiple
    return np.pad(value, [(0, 0), (0, extra)] + [(0, 0)] * (value.ndim - 2)) if extra else value


def _full_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from host data every process holds in full (it slices its own shards)."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


class Placement:
    """Where each array of a run lives on the mesh; the engine's only view of devices."""

    def __init__(self, mesh: Mesh, batch_size: int, shard_model: bool = True,
                 shard_data: bool = False, shard_runs: bool = False):
        data = mesh.shape["data"]
        if shard_runs and shard_data:
            raise MeshError("config.shard_runs and config.shard_data exclude each other: "
                            "the 'data' axis splits either the runs or the pool's rows")
        if batch_size % data and not shard_runs:
            raise MeshError(f"config.batch_size={batch_size} is not divisible by the 'data' "
                            f"mesh axis ({data} devices); change the batch size or "
                            "config.mesh_shape")
        self.mesh = mesh
        self.shard_model = shard_model and mesh.shape["model"] > 1
        self.shard_data = shard_data and data > 1
        self.shard_runs = shard_runs and data > 1
        self.replicated = NamedSharding(mesh, P())

    def sharding_for(self, leaf: Any, runs: bool = False) -> NamedSharding:
        """Replicated, or the last axis split over 'model' for a large float leaf; with
        ``shard_runs``, a leaf of the run axis (``runs``) also has it split over 'data'.

        The rule is by shape alone, so parameters and their Adam moments (same
        shapes) land alike.
        """
        model = self.mesh.shape["model"]
        shape, dtype = np.shape(leaf), getattr(leaf, "dtype", None)
        spec: list[str | None] = [None] * len(shape)
        if self.shard_runs and runs and shape:
            data = self.mesh.shape["data"]
            if shape[0] % data:
                raise MeshError(f"config.shard_runs: {shape[0]} runs (num_seeds x sweep "
                                f"values) do not split evenly over the {data} devices on "
                                "'data'; change config.num_seeds or config.mesh_shape")
            spec[0] = "data"
        if (self.shard_model and len(shape) >= 3 and shape[-1] % model == 0
                and dtype is not None and jnp.issubdtype(dtype, jnp.floating)
                and int(np.prod(shape)) >= MODEL_SHARD_MIN_SIZE):
            spec[-1] = "model"
        return NamedSharding(self.mesh, P(*spec)) if any(spec) else self.replicated

    def shardings(self, tree: Any, runs: bool = False) -> Any:
        return jax.tree_util.tree_map(lambda leaf: self.sharding_for(leaf, runs), tree)

    def place(self, tree: Any, runs: bool = False) -> Any:
        """Every leaf as a global array with its sharding (a no-op for ones already there);
        ``runs``: the leaves lead with the run axis."""
        def put(leaf):
            sharding = self.sharding_for(leaf, runs)
            split_runs = self.shard_runs and runs
            if self.on_mesh(leaf) and not split_runs or isinstance(leaf, jax.Array) and (
                    leaf.sharding.is_equivalent_to(sharding, leaf.ndim)):
                return leaf
            if jax.process_count() == 1 or self.on_mesh(leaf):  # on the mesh: a reshard
                return jax.device_put(leaf, sharding)
            return _full_array(jax.device_get(leaf) if isinstance(leaf, jax.Array) else leaf,
                               sharding)
        return jax.tree_util.tree_map(put, tree)

    def place_args(self, args: tuple, run_axes: tuple | None) -> tuple:
        """``place`` of each argument; ``run_axes`` as in ``jit``."""
        return tuple(self.place(arg, runs) for arg, runs in zip(
            args, _leads_with_runs(args, run_axes), strict=True))

    def on_mesh(self, leaf: Any) -> bool:
        """Already a global array (or its abstract shape) laid out on this mesh: kept as it
        is, e.g. sharded rows."""
        sharding = getattr(leaf, "sharding", None)
        return isinstance(sharding, NamedSharding) and sharding.mesh == self.mesh

    def place_rows(self, pool: Any) -> Any:
        """A pool ``[runs, rows, ...]`` (host or device arrays) on the devices: with
        ``shard_data`` its rows split over 'data' (padded with invalid rows to a multiple
        of the axis), each device sent only its rows; else whole on the default device."""
        if not self.shard_data:
            return jax.tree_util.tree_map(jnp.asarray, pool)
        devices = self.mesh.shape["data"]
        rows = NamedSharding(self.mesh, P(None, "data"))
        return jax.tree_util.tree_map(lambda a: _full_array(
            _pad_rows(np.asarray(jax.device_get(a)), devices), rows), pool)

    def place_streamed(self, batches: Any) -> Any:
        """Host batches ``[runs, steps, batch, ...]`` as global arrays split where the steps
        read them: over 'data' along the batch (or along the runs with ``shard_runs``).
        Each device is sent its own slice from host memory, no whole copy per device."""
        spec = P("data") if self.shard_runs else P(None, None, "data")
        sharding = NamedSharding(self.mesh, spec)
        return jax.tree_util.tree_map(lambda a: _full_array(a, sharding), batches)

    def constrain_batch(self, batch: Any) -> Any:
        """One run's step batch [B, ...] split along B over 'data' (inside jit and vmap);
        left whole when 'data' splits the runs instead."""
        if self.shard_runs:
            return batch
        sharding = NamedSharding(self.mesh, P("data"))
        return jax.tree_util.tree_map(
            lambda a: jax.lax.with_sharding_constraint(a, sharding), batch)

    def jit(self, fn: Callable, args: tuple, run_axes: tuple | None = None,
            **jit_kwargs) -> Callable:
        """``jax.jit`` with in/out shardings from the rule (outputs' shapes by eval_shape).
        ``run_axes``: per argument, 0 where it leads with the run axis (as ``jax.vmap``'s
        ``in_axes``); the outputs then lead with it too."""
        leads = _leads_with_runs(args, run_axes)
        out = jax.eval_shape(fn, *args)
        given = tuple(jax.tree_util.tree_map(
            lambda a, runs=runs: a.sharding if self.on_mesh(a) else self.sharding_for(a, runs),
            arg) for arg, runs in zip(args, leads, strict=True))
        if self.shard_runs and any(leads):
            fn = self._runs_per_device(fn, args, leads, out)
        return jax.jit(fn, in_shardings=given,
                       out_shardings=self.shardings(out, runs=any(leads)), **jit_kwargs)

    def _runs_per_device(self, fn: Callable, args: tuple, leads: tuple[bool, ...],
                         out: Any) -> Callable:
        """``fn`` under ``shard_map`` over 'data': each device runs it on its own runs, so
        no operation in it is partitioned across devices (XLA's partitioner would gather
        the run axis for one it has no rule for, a top-k among them). 'model' stays
        automatic."""
        in_specs = tuple(jax.tree_util.tree_map(lambda _, runs=runs: P("data") if runs else P(),
                                                arg) for arg, runs in zip(args, leads, strict=True))
        out_specs = jax.tree_util.tree_map(lambda _: P("data"), out)
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs,
                             axis_names={"data"}, check_vma=False)


def _leads_with_runs(args: tuple, run_axes: tuple | None) -> tuple[bool, ...]:
    """Per argument, whether it leads with the run axis (``run_axes`` None: none does)."""
    if run_axes is None:
        return (False,) * len(args)
    return tuple(axis == 0 for axis in run_axes)


def cast_floats(tree: Any, dtype) -> Any:
    """Float leaves cast to dtype (integer token ids and masks untouched)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def apply_in(dtype: Any, apply: Callable, params: Any, x: Any) -> Any:
    """``apply(params, x)`` computed in ``dtype``: with bfloat16, params and inputs are
    cast inside and the outputs come back as float32, so the float32 master weights
    and optimizer state are what a step updates (mixed precision)."""
    if dtype == jnp.float32:
        return apply(params, x)
    return cast_floats(apply(cast_floats(params, dtype), cast_floats(x, dtype)), jnp.float32)


def compute_dtype(config: ml_collections.ConfigDict):
    name = config.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise MeshError(f"config.compute_dtype={name!r} is not one of "
                        f"{', '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def engine_options(config: ml_collections.ConfigDict) -> dict:
    """The Engine keyword arguments that place a run on this config's mesh."""
    mesh = make_mesh(config.get("mesh_shape", ""))
    return {"placement": Placement(mesh, config.batch_size,
                                   shard_data=config.get("shard_data", False),
                                   shard_runs=config.get("shard_runs", False)),
            "compute_dtype": compute_dtype(config)}


def fetch(tree: Any) -> Any:
    """``jax.device_get``, except that an array split over processes (its runs, with
    ``shard_runs``) is first gathered from all of them; every process must call it."""
    def whole(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return multihost_utils.process_allgather(leaf, tiled=True)
        return leaf
    return jax.device_get(jax.tree_util.tree_map(whole, tree))


def is_primary() -> bool:
    """Whether this process writes reports (process 0; always true on one host)."""
    return jax.process_index() == 0


def text_of_process_0(text: str, size: int = 4096) -> str:
    """Process 0's ``text`` (its first ``size`` bytes) on every process, for a verdict all
    of them must act on, such as a refusal only process 0 could check; a barrier too."""
    if jax.process_count() == 1:
        return text
    raw = np.zeros(size, np.uint8)
    encoded = np.frombuffer(text.encode()[:size], np.uint8)
    raw[:encoded.size] = encoded
    got = np.asarray(multihost_utils.broadcast_one_to_all(raw))
    return got.tobytes().rstrip(b"\0").decode(errors="replace")


def on_any_process(flag: bool) -> bool:
    """Whether ``flag`` holds on any process (a barrier too)."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def wait_for_all(name: str) -> None:
    """A barrier of every process (nothing on one)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


# -- many hosts ----------------------------------------------------------------
_COORDINATOR = "coordinator_address"
_NUM_PROCESSES = "num_processes"
_PROCESS_ID = "process_id"
_DISTRIBUTED = "distributed"


def define_flags() -> None:
    """Flags that join this process to others (scripts call this once at import)."""
    flags.DEFINE_bool(_DISTRIBUTED, False, "Join other processes with jax.distributed "
                      "(cluster environments such as SLURM or a TPU pod fill in the rest).")
    flags.DEFINE_string(_COORDINATOR, None, "host:port of process 0 (env "
                        "JAX_COORDINATOR_ADDRESS); implies --distributed.")
    flags.DEFINE_integer(_NUM_PROCESSES, None, "Number of processes (env JAX_NUM_PROCESSES).")
    flags.DEFINE_integer(_PROCESS_ID, None, "This process's index (env JAX_PROCESS_ID).")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` with CPU collectives over gloo; call before any device use.

    Arguments left None come from the environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID) or the cluster's own auto-detection.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = num_processes if num_processes is not None else _env_int(
        "JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    except ValueError as err:  # what is missing, where no cluster environment says it
        raise ValueError(f"cannot join the processes: {err} (give --coordinator_address, "
                         "--num_processes and --process_id, or JAX_COORDINATOR_ADDRESS, "
                         "JAX_NUM_PROCESSES and JAX_PROCESS_ID)") from None


def initialize_from_flags() -> None:
    """Joins the processes when any of the flags (or their environment variables) is
    given; otherwise nothing. ``--num_processes`` or ``--process_id`` alone count too:
    ignored, each process would run the whole config alone and write the reports."""
    values = flags.FLAGS
    wanted = (values[_DISTRIBUTED].value
              or any(values[name].value is not None
                     for name in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID))
              or any(os.environ.get(name) for name in (
                  "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")))
    if wanted:
        initialize(values[_COORDINATOR].value, values[_NUM_PROCESSES].value,
                   values[_PROCESS_ID].value)
