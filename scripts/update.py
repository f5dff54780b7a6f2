"""Updates a trained text classifier with new labelled data, without forgetting the old.

  python -m scripts.update --from=W --data=new.csv --method=ewc --workdir=W2

``--data`` is a CSV/TSV (header row) or JSONL file with ``text`` and ``label``
columns, labels named as in the old run (negative/neutral/positive for the
sentiment runs); every row of it is used (the old run's
``max_examples_per_domain`` caps only the old data). ``--method`` is ewc
(Fisher of the old data), replay (a reservoir of old examples) or lwf (the old
model as teacher), or naive. The
old run's data is task 0 and the new file task 1 of one engine run (see
research/deploy.py); accuracy on both before and after the update is printed
and kept in W2/results.json. The old data is tested on the old run's test rows
that the new file does not repeat in its training part, before and after alike.
Rerunning the command resumes; a W2 holding another run is refused unless
``--overwrite``.
"""

from __future__ import annotations

import json

from absl import flags

from research import deploy
from scripts import cli

_FROM = flags.DEFINE_string("from", None, "Workdir of the run to update.")
_DATA = flags.DEFINE_string("data", None, "New labelled data: CSV, TSV or JSONL.")
_METHOD = flags.DEFINE_enum("method", "ewc", list(deploy.UPDATE_METHODS),
                            "How to keep what the model knew.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the updated run writes everything.")
_EPOCHS = flags.DEFINE_integer("num_epochs", 0, "Epochs on the new data (0: as the old run).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard a run of another config in workdir.")
flags.mark_flags_as_required(["from", "data", "workdir"])


def run() -> dict:
    config = deploy.update_config(_FROM.value, _DATA.value, _METHOD.value, _EPOCHS.value)
    results = deploy.update(config, _WORKDIR.value, _OVERWRITE.value)
    return {"method": _METHOD.value, **deploy.before_after(results)}


def main(argv):
    cli.no_arguments(argv)
    cli.run_guarded(lambda: print(json.dumps(run())), _WORKDIR.value)


if __name__ == "__main__":
    cli.main(main)
