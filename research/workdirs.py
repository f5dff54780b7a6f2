"""A run's workdir: claimed for one config, refused for another, checked writable early.

A workdir's ``config.json`` holds the config as it defines the run's numbers; a
rerun with the same one resumes, and one with another is refused unless told
to overwrite. The paths a command writes are checked before its work, so a
user finds out in one line, not at the end of a run.
"""

from __future__ import annotations

import json
import os
import shutil

from research import distributed, report

# Config fields added after runs were already written, at the value that reproduces
# what those runs did: a stored config without one is the same run.
FIELDS_ADDED_LATER = {"shard_data": False, "shard_runs": False, "stream_chunk_steps": 0,
                      # read only by pacing='threshold', so any value reproduces older runs
                      "stage_thresholds": "0.5,0.55,0.6", "num_stages": 0,
                      "validation_fraction": 0.1, "max_epochs_per_stage": 0,
                      "self_paced_weights": "hard", "prompt_init": "random"}


class WorkdirError(ValueError):
    """The workdir cannot be used for this run."""


# What a run shows and keeps, not what it computes: a resume may change them.
OPERATIONAL = ("progress", "plots", "tensorboard", "keep_checkpoints")


def prepare(workdir: str, identity: dict, overwrite: bool, flag: str = "--workdir") -> None:
    """Creates the workdir, or refuses one that holds a run of another ``identity`` (the
    config as it defines the run's numbers, written to ``config.json``); the refusal
    asks for another ``flag``, the command's option that names where runs go.

    With many processes only process 0 clears and creates it; the others wait
    for its verdict, so ``--overwrite`` never removes another's files, and a
    refusal reaches every process as the same one-line error.
    """
    refusal = ""
    if distributed.is_primary():
        try:
            _claim_workdir(workdir, identity, overwrite, flag)
        except WorkdirError as err:
            refusal = str(err)
    refusal = distributed.text_of_process_0(refusal)
    if refusal:
        raise WorkdirError(refusal)


def writable_directory(path: str, name: str = "workdir") -> str:
    """``path``, created if need be; WorkdirError (``name`` and why) when it cannot be
    created or written, so a run finds out before its work rather than at its end."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise WorkdirError(f"cannot create {name} {path!r}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkdirError(f"{name} {path!r} is not writable")
    return path


def writable_file(path: str, name: str) -> str:
    """``path``, once its folder can be written and it is no directory: a report's path,
    checked before the work whose result it holds (WorkdirError naming ``name``)."""
    if os.path.isdir(path):
        raise WorkdirError(f"{name} {path!r} is a directory; give a file name")
    writable_directory(os.path.dirname(os.path.abspath(path)), f"{name} folder")
    return path


# What a start writes before its run writes anything: a start that failed there (a
# missing data file, a mesh that does not fit) leaves no run to protect. A start killed
# while writing config.json leaves report.atomic_write's temporary file of it too.
_BEFORE_ANY_RUN = ("config.json", "xla_cache")


def _before_any_run(name: str) -> bool:
    return name in _BEFORE_ANY_RUN or name.startswith(".tmp-config.json")


def _claim_workdir(workdir: str, wanted: dict, overwrite: bool, flag: str) -> None:
    config_path = os.path.join(workdir, "config.json")
    if overwrite and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    writable_directory(workdir)
    if os.path.exists(config_path):
        with open(config_path) as f:
            later = {k: v for k, v in FIELDS_ADDED_LATER.items() if k in wanted}
            found = {**later, **json.load(f)}
        diff = sorted(k for k in set(found) | set(wanted)
                      if k not in OPERATIONAL and found.get(k) != wanted.get(k))
        if not diff:
            return
        if not all(_before_any_run(name) for name in os.listdir(workdir)):
            raise WorkdirError(
                f"workdir {workdir!r} holds a run of a different config (fields differ: "
                f"{', '.join(diff)}); use another {flag} or pass --overwrite")
    report.write_json(config_path, wanted)
