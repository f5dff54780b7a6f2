"""Shared command-line plumbing: user errors become one line on stderr and exit 2.

Covers both flag parsing (an unknown config field, a value of the wrong type)
and the run itself (bad config values, workdirs, checkpoints, data files).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import jax
from absl import app, flags, logging

from research.checkpoint import CheckpointError
from research.config_check import ConfigError
from research.train import NonFiniteError, WorkdirError

USER_ERRORS = (ConfigError, WorkdirError, CheckpointError, NonFiniteError, FileNotFoundError,
               ValueError)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl flag parsing with one-line errors: unknown config fields, wrong types."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        _fail(str(err))
    except (AttributeError, KeyError) as err:  # ml_collections: no such config field
        field = str(err).strip("\"'")
        _fail(f"unknown config field {field!r}: {' '.join(a for a in argv[1:] if field in a)}")
    except (TypeError, ValueError) as err:
        _fail(str(err))
    return []


def cache_compiles_in(workdir: str) -> None:
    """Keeps this process's compiled programs in ``workdir/xla_cache`` (JAX's persistent
    compilation cache), so rerunning or resuming the command loads them instead of
    compiling. A cache directory the user chose (JAX_COMPILATION_CACHE_DIR) is kept,
    and a multi-process run compiles as usual."""
    if jax.config.jax_compilation_cache_dir or jax.process_count() > 1:
        return
    jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def run_guarded(fn: Callable[[], None], workdir: str | None = None) -> None:
    """Calls ``fn``; a user error prints ``error: ...`` and exits 2, with no traceback.
    With ``workdir``, compiled programs are cached there (``cache_compiles_in``)."""
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if workdir is not None:
        cache_compiles_in(workdir)
    try:
        fn()
    except USER_ERRORS as err:
        _fail(str(err))


def main(run: Callable[[list[str]], None]) -> None:
    """``app.run`` with one-line flag errors."""
    app.run(run, flags_parser=parse_flags)
