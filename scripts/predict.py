"""Classifies texts with a trained text run: one text per line, from a file or stdin.

  python -m scripts.predict --from=W --input=texts.txt
  echo "what a lovely film" | python -m scripts.predict --from=W

Writes a header line, then one line per text: the label, the probability of
each class and the text, tab-separated. The header names the columns:
``label``, ``p_<class>`` for each class in the run's label order (its
``config.label_set``; negative, neutral, positive for the sentiment runs) and
``text``. ``--format=jsonl`` writes JSON lines instead, the probabilities keyed
by class. Texts go through the model in fixed-size batches, so the program
compiles once.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from research import deploy
from scripts import cli

_FROM = flags.DEFINE_string("from", None, "Workdir of a scripts.finetune/update run.")
_INPUT = flags.DEFINE_string("input", "", "Text file, one text per line (default: stdin).")
_FORMAT = flags.DEFINE_enum("format", "tsv", ["tsv", "jsonl"], "Output format.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Texts per model call.", lower_bound=1)
flags.mark_flags_as_required(["from"])


def read_texts(path: str) -> list[str]:
    """Non-blank lines of ``path`` (stdin when empty); FileNotFoundError naming a missing file.
    A byte-order mark (Windows editors write one) is dropped, not echoed with the first text."""
    if path:
        try:
            with open(path, encoding="utf-8-sig") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise FileNotFoundError(f"input file {path!r} does not exist") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except OSError as err:  # a directory, a file it may not read
            raise ValueError(f"input file {path!r} cannot be read: {err.strerror}") from None
    else:
        lines = sys.stdin.read().splitlines()
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ValueError(f"no texts in {path or 'stdin'}")
    return texts


def run() -> None:
    texts = read_texts(_INPUT.value)  # bad input fails before the model loads
    predictor = deploy.Predictor.from_workdir(_FROM.value, _BATCH.value, progress=True)
    labels, probs = predictor.predict(texts)
    names = predictor.label_names
    if _FORMAT.value == "tsv":
        print("\n".join(deploy.tsv_lines(names, texts, labels, probs)))
        return
    for text, label, p in zip(texts, labels, probs, strict=True):
        scores = {n: round(float(v), 4) for n, v in zip(names, p, strict=True)}
        print(json.dumps({"text": text, "label": label, "probabilities": scores}))


def main(argv):
    cli.no_arguments(argv)
    cli.run_guarded(run)


if __name__ == "__main__":
    cli.main(main)
