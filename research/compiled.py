"""Programs compiled ahead of time, once per input signature, shared within a process.

Compiling explicitly lets the engine report compile time apart from train
time and count compiles, start a compile in the background while the caller
trains, and hand an identical program (another method's parameter init or
evaluation) the executable compiled before.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import jax

from research import distributed


def compiler_options() -> dict | None:
    """XLA options for the engine's programs. On CPU, backend optimisation level 1:
    compiling takes about half as long (the threefry kernels of the initialisers
    most of all), the programs ran as fast, since their time is in the library
    matmuls (measured on the MLP and MiniLM steps, docs/benchmarks.md), and an epoch
    comes out bit-identical (tests/test_engine.py). And copy insertion by region
    analysis, which drops some of the per-step copies of loop-carried weights (the
    MLP step 3-8% faster, the numbers unchanged)."""
    if jax.default_backend() != "cpu":
        return None
    return {"xla_backend_optimization_level": 1,
            "xla_cpu_copy_insertion_use_region_analysis": True}


_PROGRAMS: dict[tuple, futures.Future] = {}  # this process's executables, least recent first
_MAX_PROGRAMS = 64
_PROGRAMS_LOCK = threading.Lock()
_BACKGROUND = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile")


def forget_compiled() -> None:
    """Empties the process's program cache (for timing a run's compiles from cold)."""
    with _PROGRAMS_LOCK:
        _PROGRAMS.clear()


def _compile(lowered: jax.stages.Lowered, signature: tuple,
             devices: tuple[int, ...]) -> jax.stages.Compiled:
    """The lowered program compiled, or the executable of the identical program compiled
    earlier in this process: the same text, result tree and devices, and the same
    argument tree, shapes and dtypes (``Compiled`` keeps unused arguments in the
    text, so the same text reads the same arguments). The methods of a comparison
    on one model share their parameter init and, where they predict from the
    parameters alone, their evaluation. A program another thread is compiling is
    waited for, not compiled twice."""
    text = hashlib.sha256(lowered.as_text().encode()).hexdigest()
    key = (text, signature, lowered.out_tree, devices)
    with _PROGRAMS_LOCK:
        program = _PROGRAMS.pop(key, None)
        mine = program is None
        if mine:
            program = futures.Future()
            if len(_PROGRAMS) >= _MAX_PROGRAMS:
                del _PROGRAMS[next(iter(_PROGRAMS))]
        _PROGRAMS[key] = program  # most recently used last
    if mine:
        try:
            program.set_result(lowered.compile(compiler_options()))
        except BaseException as error:
            program.set_exception(error)
            with _PROGRAMS_LOCK:
                _PROGRAMS.pop(key, None)
    return program.result()


def _signature(args: tuple) -> tuple:
    return jax.tree_util.tree_structure(args), tuple(
        (leaf.shape, leaf.dtype) for leaf in jax.tree_util.tree_leaves(args))


def _abstract(leaf: Any) -> jax.ShapeDtypeStruct:
    """What lowering needs of an argument; the array itself may be donated meanwhile."""
    aval = jax.typeof(leaf)
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type,
                                sharding=getattr(leaf, "sharding", None))


class Compiled:
    """A jitted function compiled ahead of time, once per input signature.

    Compiling explicitly lets the engine report compile time apart from
    train time and count compiles, which must not grow with the task count.
    ``precompile`` starts a compile on a background thread, so it overlaps
    with whatever the caller runs meanwhile (the first task's training).
    """

    def __init__(self, fn: Callable, name: str, placement: distributed.Placement | None = None,
                 run_axes: tuple | None = None, **jit_kwargs):
        # Every argument stays in the program (keep_unused): a program pruned of the
        # arguments it does not read would read its kept ones by position, so another
        # function lowering to the same text but reading another argument (one method's
        # penalty strength for another's) would be handed the wrong one from the cache.
        jit_kwargs = {"keep_unused": True, **jit_kwargs}
        self._fn, self._placement, self._jit_kwargs = fn, placement, jit_kwargs
        self._run_axes = run_axes  # per argument, 0 where it leads with the run axis
        self._jitted = jax.jit(fn, **jit_kwargs)
        self._cache: dict[tuple, futures.Future] = {}
        self.name = name
        self.compile_seconds = 0.0  # time callers waited for this function's compiles

    def __call__(self, *args):
        args = self._placed(args)
        key = _signature(args)
        start = time.perf_counter()
        if key not in self._cache:
            self._cache[key] = self._built_now(args, key)
        executable = self._cache[key].result()
        self.compile_seconds += time.perf_counter() - start
        return executable(*args)

    def _built_now(self, args: tuple, key: tuple) -> futures.Future:
        """The program compiled in this thread. A failed compile is not kept: a pending
        future left in the cache made every later call with these shapes wait forever."""
        program: futures.Future = futures.Future()
        program.set_result(self._build(tuple(map(_abstract_tree, args)), key))
        return program

    def precompile(self, *args) -> None:
        """Starts compiling for these arguments' shapes and placement in the background;
        the call that needs the program waits for it (an error surfaces there)."""
        args = self._placed(args)
        key = _signature(args)
        if key not in self._cache:
            self._cache[key] = _BACKGROUND.submit(
                self._build, tuple(map(_abstract_tree, args)), key)

    def _placed(self, args: tuple) -> tuple:
        if self._placement is None:
            return args
        return self._placement.place_args(args, self._run_axes)

    def _build(self, args: tuple, key: tuple) -> jax.stages.Compiled:
        if self._placement is None:
            jitted, devices = self._jitted, (jax.devices()[0].id,)
        else:
            jitted = self._placement.jit(self._fn, args, self._run_axes, **self._jit_kwargs)
            devices = tuple(d.id for d in self._placement.mesh.devices.flat)
        return _compile(jitted.lower(*args), key, devices)

    @property
    def num_compiles(self) -> int:
        return len(self._cache)

    def executables(self) -> list[jax.stages.Compiled]:
        """The programs compiled so far (waiting for any still compiling), for inspecting
        what XLA made of them: their text, cost and memory analyses."""
        return [program.result() for program in self._cache.values()]


def _abstract_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(_abstract, tree)
