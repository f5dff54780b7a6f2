"""Whole-run checkpoints with orbax: the run state pytree plus a JSON progress record.

Orbax writes each step into a temporary directory and renames it when
complete, so a kill mid-save leaves the previous checkpoint intact. Saves are
asynchronous: the state is copied to host memory at once and written on a
background thread while training goes on; the next save, and ``close``, wait
for it and report its failure. Restore walks back from the newest step and
skips any that fail to read (reported by name), so a corrupt checkpoint costs
progress, never the run. A step that reads but holds a state of another shape
(the code's state layout changed) is refused, never moved aside: the run would
otherwise start over without a word.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from research import distributed

LAYOUT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot serve this run."""


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                           create=True)
    # handlers named up front, so a step's metadata reads before anything is restored
    handlers = {"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options, item_handlers=handlers)


@contextlib.contextmanager
def _write_errors(mngr: ocp.CheckpointManager):
    """A failed write (full disk) as a CheckpointError; earlier steps stay intact."""
    try:
        yield
    except OSError as err:
        raise CheckpointError(
            f"could not write a checkpoint in {mngr.directory}: {err.strerror or err}; "
            "earlier checkpoints are intact, rerun to resume") from None


def save(mngr: ocp.CheckpointManager, step: int, state: Any, progress: dict) -> None:
    """Starts saving step (after the previous save has finished) and returns. The
    progress record is copied first: the caller goes on appending to its lists."""
    progress = copy.deepcopy({**progress, "layout_version": LAYOUT_VERSION})
    with _write_errors(mngr):
        mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                progress=ocp.args.JsonSave(progress)), force=True)


def close(mngr: ocp.CheckpointManager) -> None:
    """Waits for the last save to be written, then closes the manager."""
    with _write_errors(mngr):
        mngr.wait_until_finished()
        mngr.close()


@contextlib.contextmanager
def opened(workdir: str, keep: int) -> Iterator[ocp.CheckpointManager]:
    """The workdir's manager, closed on the way out, an error included: a save still
    being written when a run fails lands before the error is raised."""
    mngr = manager(workdir, keep)
    try:
        yield mngr
    finally:
        close(mngr)


def _quarantine(mngr: ocp.CheckpointManager, step: int, why: str) -> None:
    """Moves an unreadable step aside (kept for inspection) so the run can rewrite it;
    process 0 moves it, every process then reads the directory anew."""
    directory = os.fspath(mngr.directory)
    if distributed.is_primary():
        aside = os.path.join(os.path.dirname(directory), "checkpoints_unreadable")
        os.makedirs(aside, exist_ok=True)
        target = os.path.join(aside, f"{step}-{int(time.time())}")
        os.replace(os.path.join(directory, str(step)), target)
        logging.warning("checkpoint step %d in %s is unreadable (%s); moved to %s, "
                        "trying an older one", step, directory, why, target)
    distributed.wait_for_all(f"quarantine {directory} {step}")  # until it has moved
    mngr.reload()


def _read(restore: Callable[[], Any]) -> tuple[Any, str]:
    """(what ``restore`` read, "") or (None, why not), agreed by every process: a step
    that one of them cannot read is unreadable for all, so they restore the same step."""
    try:
        got, why = restore(), ""
    except Exception as err:  # noqa: BLE001 - any failure means this step is unusable
        got, why = None, type(err).__name__
    if distributed.on_any_process(bool(why)):
        return None, why or "unreadable on another process"
    return got, ""


def _spec(leaf: Any) -> str:
    """``float32[4, 6]``: a leaf's dtype and shape (a Python scalar's as numpy sees it)."""
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
    shape = leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)
    return f"{np.dtype(dtype)}[{', '.join(map(str, shape))}]"


def first_mismatch(expected: Any, found: Any) -> str:
    """Where the tree ``found`` in a checkpoint (orbax metadata) first differs from the
    ``expected`` abstract state, in words; "" when every leaf's path, shape and dtype agree.
    Orbax would fail on a shape and silently cast a dtype, so both are checked here."""
    want, have = ocp.tree.to_flat_dict(expected), ocp.tree.to_flat_dict(found)
    for path, leaf in want.items():
        name = ".".join(map(str, path))
        if path not in have:
            return f"{name} ({_spec(leaf)}) is missing from it"
        if _spec(have[path]) != _spec(leaf):
            return f"{name} is {_spec(have[path])} there, this run expects {_spec(leaf)}"
    extra = next((path for path in have if path not in want), None)
    return "" if extra is None else f"{'.'.join(map(str, extra))} is in it but not in this run"


def _state_metadata(mngr: ocp.CheckpointManager, step: int) -> Any:
    """The state tree's metadata of ``step``; an error when the step has none (unreadable)."""
    found = mngr.item_metadata(step)["state"]
    if found is None:
        raise FileNotFoundError(f"no state metadata in step {step}")
    return found


def restore_latest(mngr: ocp.CheckpointManager, like: Any) -> tuple[Any, dict] | None:
    """(state, progress) of the newest readable checkpoint, or None if there is none.
    Unreadable steps are moved aside; a readable one whose state does not fit ``like``
    raises a CheckpointError, since falling back would quietly restart the run."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    for step in sorted(mngr.all_steps(), reverse=True):
        progress, why = _read(lambda step=step: mngr.restore(step, args=ocp.args.Composite(
            progress=ocp.args.JsonRestore()))["progress"])
        if why:
            _quarantine(mngr, step, why)
            continue
        if progress.get("layout_version") != LAYOUT_VERSION:
            raise CheckpointError(
                f"checkpoint step {step} in {mngr.directory} has state layout version "
                f"{progress.get('layout_version')}, this code writes {LAYOUT_VERSION}; "
                "start a new --workdir or pass --overwrite")
        found, why = _read(lambda step=step: _state_metadata(mngr, step))
        if why:
            _quarantine(mngr, step, why)
            continue
        if mismatch := first_mismatch(abstract, found):
            raise CheckpointError(
                f"checkpoint step {step} in {mngr.directory} does not fit this run's state: "
                f"{mismatch}; start a new --workdir or pass --overwrite")
        state, why = _read(lambda step=step: mngr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))["state"])
        if why:
            _quarantine(mngr, step, why)
            continue
        return state, progress
    return None
