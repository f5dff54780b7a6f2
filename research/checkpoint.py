"""Whole-run checkpoints with orbax: the run state pytree plus a JSON progress record.

Orbax writes each step into a temporary directory and renames it when
complete, so a kill mid-save leaves the previous checkpoint intact. Restore
walks back from the newest step and skips any that fail to read (reported by
name), so a corrupt checkpoint costs progress, never the run.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

LAYOUT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot serve this run."""


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False,
                                           create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, progress: dict) -> None:
    """Saves step atomically; a failed write (full disk) leaves earlier steps intact."""
    progress = {**progress, "layout_version": LAYOUT_VERSION}
    try:
        mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                progress=ocp.args.JsonSave(progress)), force=True)
        mngr.wait_until_finished()
    except OSError as err:
        raise CheckpointError(
            f"could not write checkpoint step {step} in {mngr.directory}: "
            f"{err.strerror or err}; earlier checkpoints are intact, rerun to resume") from None


def _quarantine(mngr: ocp.CheckpointManager, step: int, err: Exception) -> None:
    """Moves an unreadable step aside (kept for inspection) so the run can rewrite it."""
    directory = os.fspath(mngr.directory)
    aside = os.path.join(os.path.dirname(directory), "checkpoints_unreadable")
    os.makedirs(aside, exist_ok=True)
    target = os.path.join(aside, f"{step}-{int(time.time())}")
    os.replace(os.path.join(directory, str(step)), target)
    logging.warning("checkpoint step %d in %s is unreadable (%s); moved to %s, "
                    "trying an older one", step, directory, type(err).__name__, target)
    mngr.reload()


def restore_latest(mngr: ocp.CheckpointManager, like: Any) -> tuple[Any, dict] | None:
    """(state, progress) of the newest readable checkpoint, or None if there is none."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            progress = mngr.restore(step, args=ocp.args.Composite(
                progress=ocp.args.JsonRestore()))["progress"]
        except Exception as err:  # noqa: BLE001 - any failure means this step is unusable
            _quarantine(mngr, step, err)
            continue
        if progress.get("layout_version") != LAYOUT_VERSION:
            raise CheckpointError(
                f"checkpoint step {step} in {mngr.directory} has state layout version "
                f"{progress.get('layout_version')}, this code writes {LAYOUT_VERSION}; "
                "start a new --workdir or pass --overwrite")
        try:
            state = mngr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as err:  # noqa: BLE001
            _quarantine(mngr, step, err)
            continue
        return state, progress
    return None
