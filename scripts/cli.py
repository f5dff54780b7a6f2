"""Shared command-line plumbing: known user errors become one line on stderr and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import logging

from research.checkpoint import CheckpointError
from research.config_check import ConfigError
from research.train import NonFiniteError, WorkdirError

USER_ERRORS = (ConfigError, WorkdirError, CheckpointError, NonFiniteError, FileNotFoundError,
               ValueError)


def run_guarded(fn: Callable[[], None]) -> None:
    """Calls ``fn``; a user error prints ``error: ...`` and exits 2, with no traceback."""
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
        fn()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
