"""Shared command-line plumbing: user errors become one line on stderr and exit 2.

Covers both flag parsing (an unknown config field, a value of the wrong type)
and the run itself (bad config values, workdirs, checkpoints, data files).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence

import jax
from absl import app, flags, logging

from research.checkpoint import CheckpointError
from research.config_check import ConfigError
from research.train import NonFiniteError
from research.workdirs import WorkdirError

USER_ERRORS = (ConfigError, WorkdirError, CheckpointError, NonFiniteError, FileNotFoundError,
               ValueError)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def no_arguments(argv: Sequence[str]) -> None:
    """Refuses words after the flags (absl passes them on): a flag typed without its
    dashes, ``config.num_seeds=5``, would otherwise be ignored without a word."""
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value)")


def _config_path(argv: Sequence[str]) -> str | None:
    """The --config file named on the command line (ml_collections' errors do not say)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _unknown_field(err: Exception) -> tuple[str, str]:
    """The field an ml_collections lookup missed, and its guess if it made one. Its
    messages come quoted, escaped or not: "'nosuch'", or
    '\\'num_epochs\\'\\nDid you mean "epochs" instead of "num_epochs"?'."""
    first, *rest = str(err).replace("\\n", "\n").split("\n")
    guess = " ".join(line.strip("\"'") for line in rest)
    return first.replace("\\'", "'").strip("\"'"), f" {guess}" if guess else ""


def _config_refusal(message: str, argv: Sequence[str]) -> str:
    """One line for a get_config() that refused the word after ':' in --config=FILE:WORD
    (a ValueError it raised, or an argument it does not take); ml_collections reports it
    as a traceback, which would point at the config rather than at the typo."""
    if "Error whilst parsing config file" not in message:
        return message
    last = message.strip().splitlines()[-1]
    kind, _, reason = last.partition(": ")
    if kind == "ValueError":
        return f"--config={_config_path(argv)}: {reason}"
    if kind == "TypeError" and reason.startswith("get_config() takes"):
        return (f"--config={_config_path(argv)}: {reason} (the word after ':' is "
                "get_config()'s argument)")
    return message


CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "research", "configs")


def parse_flags(argv: Sequence[str], default_config: str | None = None) -> list[str]:
    """absl flag parsing with one-line errors: a config file that is missing, does not
    parse or has no get_config(), unknown config fields, wrong types, a word after ':' the
    config refuses. (Any other exception a config's own get_config() raises keeps its
    traceback: it points into the user's code.)"""
    if default_config and _config_path(argv) is None:
        argv = [argv[0], f"--config={os.path.join(CONFIGS, default_config)}", *argv[1:]]
    try:
        remaining = flags.FLAGS(argv)
        if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
            flags.FLAGS["config"].value.get("_")  # a file that failed to load says so when read
        return remaining
    except flags.Error as err:
        _fail(_config_refusal(str(err), argv))
    except OSError as err:  # ml_collections: the config file cannot be read
        reason = str(err).strip().splitlines()[-1].strip()
        _fail(f"--config={_config_path(argv)}: {reason.split('failure to load: ')[-1]}")
    except SyntaxError as err:
        _fail(f"--config={_config_path(argv)}: {err.msg} at line {err.lineno}")
    except (AttributeError, KeyError) as err:
        if "has no attribute 'get_config'" in str(err):
            _fail(f"--config={_config_path(argv)}: the file defines no get_config()")
        field, guess = _unknown_field(err)
        given = " ".join(a for a in argv[1:] if field in a)
        _fail(f"unknown config field {field!r}: {given}{guess}")
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


def main(run: Callable[[list[str]], None], default_config: str | None = None) -> None:
    """``app.run`` with one-line flag errors. ``default_config`` (a file in
    research/configs) is loaded when no --config is given; a config flag defined with a
    default instead would read its --config.* overrides while the script is imported,
    before these errors are caught."""
    app.run(run, flags_parser=functools.partial(parse_flags, default_config=default_config))
