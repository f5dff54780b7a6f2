"""User text-classification data from CSV/TSV or JSONL files.

A file holds one example per row: a text column and a label column (names
configurable). Labels map to ints by a declared label set, or by the sorted
set of labels found (numerically when they are all integers). Every bad row
(undecodable bytes, malformed JSON, missing column, empty text, unknown label)
is collected and reported together, with line numbers, in one
``DataFileError``: a row is never dropped silently. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_LISTED = 20
# GLUE-style TSV leaves quotes bare; read as RFC 4180, a field opening with one fails.
QUOTING_RULE = ("a field that starts with '\"' is read as quoted (RFC 4180: the field "
                "closes at the next lone '\"', a quote inside is written '\"\"'); write the "
                "file with Python's csv.writer or pandas' to_csv, or as JSONL")


class DataFileError(ValueError):
    """A data file with bad rows; ``problems`` holds ``(line, message)`` pairs. With
    ``whole_file``, what is wrong with the file as a whole (no examples, a key no row
    has), said once on one line instead of per row."""

    def __init__(self, path: str, problems: Sequence[tuple[int, str]], expected: str,
                 whole_file: str = "") -> None:
        self.path = path
        self.problems = sorted(problems)
        self.line_numbers = sorted({line for line, _ in self.problems})
        if whole_file:
            super().__init__(f"{path}: {whole_file} (expected {expected})")
            return
        listed = "\n".join(f"  line {line}: {msg}" for line, msg in self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{path}: {len(self.line_numbers)} bad row{'s' * (len(self.line_numbers) != 1)} "
            f"(expected {expected}):\n{listed}{tail}"
        )


class LabeledTexts(NamedTuple):
    """Texts with int labels; ``label_names[labels[i]]`` is the label as written."""

    texts: list[str]
    labels: np.ndarray  # int32 [N]
    label_names: tuple[str, ...]
    line_numbers: np.ndarray  # int64 [N]: where each example starts in the file


def _decode_lines(data: bytes, encoding: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Splits on b'\\n' only (so U+2028 and lone CRs stay inside rows) and decodes each line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, problems = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode(encoding))
        except UnicodeDecodeError as err:
            problems.append(
                (number, f"cannot decode as {encoding} ({err.reason} at byte {err.start})")
            )
            lines.append(raw.decode(encoding, errors="replace"))
    return lines, problems


def _label_key(value: Any) -> str | None:
    """Labels compare as strings: 'pos', 3 and '3' are fine; floats, bools, nulls are not."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _check_row(
    line: int, text: Any, label: Any, problems: list[tuple[int, str]]
) -> tuple[str, str] | None:
    bad = len(problems)
    if not isinstance(text, str):
        problems.append((line, f"text must be a string, got {type(text).__name__}"))
    elif not text.strip():
        problems.append((line, "empty text"))
    key = _label_key(label)
    if key is None:
        problems.append((line, f"label must be a non-empty string or an integer, got {label!r}"))
    return (text, key) if len(problems) == bad and key is not None else None


def _read_csv(
    lines: list[str], text_column: str, label_column: str, delimiter: str
) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    # Feed our own lines so reader.line_num counts the same b"\n"-separated lines.
    source = (line + "\n" for line in lines)
    name = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(source, delimiter=delimiter, strict=True)
    rows, problems = [], []
    header: list[str] | None = None
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append((start, f"malformed {name} ({err}): {QUOTING_RULE}"))
            break  # the reader cannot resynchronise after a quoting error
        line, start = start, reader.line_num + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            missing = [c for c in (text_column, label_column) if c not in header]
            if missing:
                problems.append((line, f"header {header} lacks column(s) {missing}"))
                break
            twice = [c for c in (text_column, label_column) if header.count(c) > 1]
            if twice:
                problems.append((line, f"header {header} has column(s) {twice} more than once"))
                break
            t_idx, l_idx = header.index(text_column), header.index(label_column)
            continue
        if len(fields) != len(header):
            problems.append((line, f"expected {len(header)} fields, got {len(fields)}"))
            continue
        checked = _check_row(line, fields[t_idx], fields[l_idx], problems)
        if checked:
            rows.append((line, *checked))
    return rows, problems  # no header and no problem: a blank file, "no examples"


def _read_jsonl(
    lines: list[str], text_column: str, label_column: str
) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], str]:
    """(rows, per-row problems, a key no object has: the file-level problem, or '')."""
    rows, problems = [], []
    keys: dict[str, None] = {}  # every key of the objects read, in first-seen order
    objects = 0
    for number, content in enumerate(lines, start=1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError as err:
            problems.append((number, f"malformed JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append((number, f"expected a JSON object, got {type(record).__name__}"))
            continue
        objects += 1
        keys.update(dict.fromkeys(record))
        missing = [c for c in (text_column, label_column) if c not in record]
        if missing:
            problems.append((number, f"missing key(s) {missing}"))
            continue
        checked = _check_row(number, record[text_column], record[label_column], problems)
        if checked:
            rows.append((number, *checked))
    absent = [c for c in (text_column, label_column) if objects and c not in keys]
    if not absent:
        return rows, problems, ""
    found = ", ".join(map(repr, list(keys)[:MAX_LISTED])) + (
        ", ..." if len(keys) > MAX_LISTED else "")
    return rows, problems, f"no row has the key(s) {absent}; keys found: [{found}]"


def _as_int(key: str) -> int | None:
    try:
        return int(key)
    except ValueError:
        return None


def _sorted_labels(keys: set[str]) -> tuple[str, ...]:
    """Integer labels in numeric order, others in text order. Ties such as '1' and '01'
    go by their text: the set's own order changes with PYTHONHASHSEED, and so would the
    label ids."""
    if all(_as_int(k) is not None for k in keys):
        return tuple(sorted(keys, key=lambda k: (int(k), k)))
    return tuple(sorted(keys))


def load_text_file(
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "label",
    label_set: Sequence[str | int] | None = None,
    file_format: str | None = None,
    encoding: str = "utf-8",
) -> LabeledTexts:
    """Reads a CSV/TSV (header row) or JSONL file of labelled texts.

    ``file_format`` is 'csv', 'tsv' or 'jsonl' (default: from the suffix).
    With ``label_set`` the label ids follow its order and any other label is
    an error; without it they follow the sorted labels found.
    """
    path = pathlib.Path(path)
    fmt = file_format or FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise ValueError(
            f"{path}: unknown format {fmt or path.suffix!r}; pass file_format='csv', 'tsv' "
            f"or 'jsonl', or use a suffix in {sorted(FORMATS)}"
        )
    names = tuple(str(k) for k in label_set) if label_set is not None else None
    if names is not None and (not names or len(set(names)) != len(names)):
        raise ValueError(f"label_set must be non-empty without repeats, got {list(label_set)}")
    lines, problems = _decode_lines(path.read_bytes(), encoding)
    whole_file = ""
    if fmt == "jsonl":
        rows, more, whole_file = _read_jsonl(lines, text_column, label_column)
    else:
        rows, more = _read_csv(lines, text_column, label_column, "\t" if fmt == "tsv" else ",")
    problems += more
    if names is not None:
        allowed = set(names)
        problems += [
            (ln, f"label {lab!r} not in {list(names)}") for ln, _, lab in rows if lab not in allowed
        ]
    expected = f"{fmt} rows with a non-empty {text_column!r} and a {label_column!r}" + (
        f" in {list(names)}" if names is not None else ""
    )
    if whole_file:  # one line for the file, not one per row missing the same key
        raise DataFileError(str(path), problems, expected, whole_file)
    if problems:
        raise DataFileError(str(path), problems, expected)
    if not rows:
        raise DataFileError(str(path), [], expected, "no examples")
    names = names or _sorted_labels({lab for _, _, lab in rows})
    index = {name: i for i, name in enumerate(names)}
    return LabeledTexts(
        texts=[text for _, text, _ in rows],
        labels=np.array([index[lab] for _, _, lab in rows], np.int32),
        label_names=names,
        line_numbers=np.array([ln for ln, _, _ in rows], np.int64),
    )
