"""Sentence embeddings of a text file, one row per input line, saved as .npy.

    python -m scripts.embed --model=minilm --input=FILE --output=OUT.npy [--batch_size=64]

Every batch has the same shape (the last one is padded with empty texts and
cut off again), so the jitted encoder compiles once.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from absl import flags
from tqdm import tqdm

from models.text.load import MINILM, load_encoder, tokenize
from models.text.sentence import MAX_LENGTH, embed
from research import report, workdirs
from scripts import cli

_MODEL = flags.DEFINE_string("model", MINILM, f"{MINILM!r} or a local Hugging Face BERT directory.")
_INPUT = flags.DEFINE_string("input", None, "Text file, one text per line.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the [N, H] float32 .npy.",
                              required=True)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Texts per jitted call.", lower_bound=1)
_MAX_LENGTH = flags.DEFINE_integer("max_length", MAX_LENGTH, "Tokens per text (longer are cut).",
                                   lower_bound=2)


def read_lines(path: str) -> list[str]:
    """The lines of ``path`` (without newlines); an error if it is missing or empty."""
    if not os.path.isfile(path):
        raise ValueError(f"--input file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"--input file {path!r} is not UTF-8 text "
                         f"({err.reason} at byte {err.start})") from None
    if not lines:
        raise ValueError(f"--input file {path!r} is empty")
    return lines


def embed_texts(texts: Sequence[str], model: str = MINILM, batch_size: int = 64,
                max_length: int = MAX_LENGTH, progress: bool = True) -> np.ndarray:
    """``[len(texts), H]`` unit-length embeddings, computed in fixed-shape batches."""
    cfg, params, tokenizer = load_encoder(model)
    rows = []
    for start in tqdm(range(0, len(texts), batch_size), desc="embed", unit="batch",
                      disable=not progress):
        chunk = list(texts[start:start + batch_size])
        padded = chunk + [""] * (batch_size - len(chunk))
        vectors = embed(params, cfg, tokenize(tokenizer, padded, max_length))
        rows.append(np.asarray(vectors)[: len(chunk)])
    return np.concatenate(rows).astype(np.float32)


def save(path: str, vectors: np.ndarray) -> None:
    """Writes ``vectors`` to exactly ``path`` (np.save would add a missing .npy), through a
    temporary file renamed at the end, so a crash never leaves half an array there."""
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    report.atomic_write(path, buffer.getvalue())


def _run() -> None:
    # The path is checked before the texts are encoded, not when the result is saved.
    workdirs.writable_file(_OUTPUT.value, "--output")
    texts = read_lines(_INPUT.value)
    vectors = embed_texts(texts, _MODEL.value, _BATCH_SIZE.value, _MAX_LENGTH.value)
    save(_OUTPUT.value, vectors)
    print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {_OUTPUT.value}")


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    cli.run_guarded(_run)  # bad input or model: one line, exit status 2


if __name__ == "__main__":
    cli.main(main)
