"""TensorBoard event files from the per-epoch metric rows (``config.tensorboard=True``).

Uses the ``tensorboard`` package's own event writer, so TensorFlow is not needed.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def write(rows: list[dict], workdir: str) -> None:
    """One run directory per (run, seed); step = task * epochs + epoch.

    ``rows`` is the whole history, so the files are written afresh and put in place
    of any earlier ones: a rerun must not add a second event file of the same steps.
    """
    epochs = 1 + max((r["epoch"] for r in rows), default=0)
    staging = tempfile.mkdtemp(prefix=".tensorboard-", dir=workdir)
    writers: dict[int, EventFileWriter] = {}
    for row in rows:
        run = row["run"]
        if run not in writers:
            writers[run] = EventFileWriter(os.path.join(staging, f"run{run}_seed{row['seed']}"))
        values = [Summary.Value(tag=k, simple_value=v) for k, v in row.items()
                  if isinstance(v, float)]
        writers[run].add_event(Event(step=row["task"] * epochs + row["epoch"],
                                     summary=Summary(value=values)))
    for writer in writers.values():
        writer.close()
    final = os.path.join(workdir, "tensorboard")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
