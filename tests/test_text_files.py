"""Tests for user CSV/TSV/JSONL text files: round trips and every kind of bad row."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.data.text_files import DataFileError, load_text_file

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Any printable text with something visible in it (NUL is not valid in CSV).
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda t: t.strip())
labels = st.sampled_from(["neg", "neu", "pos"])
rows = st.lists(st.tuples(texts, labels), min_size=1, max_size=20)
hyp_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _write_csv(path, rows, delimiter=","):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["id", "text", "label"])
    writer.writerows([(i, t, lab) for i, (t, lab) in enumerate(rows)])
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def _write_jsonl(path, records, ensure_ascii=True):
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in records), "utf-8"
    )


@hyp_settings
@given(rows=rows)
def test_csv_round_trip(tmp_path, rows):
    path = tmp_path / "data.csv"
    _write_csv(path, rows)
    data = load_text_file(path, label_set=["neg", "neu", "pos"])
    assert data.texts == [t for t, _ in rows]
    assert [data.label_names[i] for i in data.labels] == [lab for _, lab in rows]
    assert data.labels.dtype == np.int32


@hyp_settings
@given(rows=rows)
def test_tsv_round_trip(tmp_path, rows):
    path = tmp_path / "data.tsv"
    _write_csv(path, rows, delimiter="\t")
    assert load_text_file(path).texts == [t for t, _ in rows]


@hyp_settings
@given(rows=rows, ensure_ascii=st.booleans())
def test_jsonl_round_trip_infers_sorted_labels(tmp_path, rows, ensure_ascii):
    path = tmp_path / "data.jsonl"
    _write_jsonl(path, [{"sentence": t, "y": lab} for t, lab in rows], ensure_ascii)
    data = load_text_file(path, text_column="sentence", label_column="y")
    assert data.texts == [t for t, _ in rows]
    assert data.label_names == tuple(sorted({lab for _, lab in rows}))
    assert [data.label_names[i] for i in data.labels] == [lab for _, lab in rows]
    np.testing.assert_array_equal(data.line_numbers, np.arange(1, len(rows) + 1))


@hyp_settings
@given(rows=rows, where=st.integers(min_value=0, max_value=20))
def test_one_bad_jsonl_row_is_reported_at_its_line(tmp_path, rows, where):
    where = min(where, len(rows))
    lines = [json.dumps({"text": t, "label": lab}) for t, lab in rows]
    lines.insert(where, '{"text": "unterminated')
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    assert err.value.line_numbers == [where + 1]


def test_integer_labels_sort_numerically(tmp_path):
    path = tmp_path / "data.jsonl"
    _write_jsonl(
        path, [{"text": "a", "label": 10}, {"text": "b", "label": 2}, {"text": "c", "label": "2"}]
    )
    data = load_text_file(path)
    assert data.label_names == ("2", "10")
    np.testing.assert_array_equal(data.labels, [1, 0, 0])


def test_integer_labels_equal_as_ints_keep_one_order_under_any_hash_seed(tmp_path):
    """'1' and '01' tie as ints; their order came from set iteration, so the label ids
    changed with PYTHONHASHSEED."""
    path = tmp_path / "data.csv"
    _write_csv(path, [("a", "1"), ("b", "01"), ("c", "2"), ("d", "002"), ("e", "10")])
    script = ("import sys; from research.data.text_files import load_text_file; "
              "print(load_text_file(sys.argv[1]).label_names)")
    orders = set()
    for seed in range(6):
        proc = subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                              capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)})
        orders.add(proc.stdout.strip())
    assert orders == {"('01', '1', '002', '2', '10')"}


def test_labels_that_only_look_like_ints_sort_as_text(tmp_path):
    """'--1' passed the old digits-after-the-minus test, then failed int()."""
    path = tmp_path / "data.csv"
    _write_csv(path, [("a", "1"), ("b", "--1"), ("c", "-3")])
    assert load_text_file(path).label_names == ("--1", "-3", "1")
    _write_csv(path, [("a", "1"), ("b", "-3")])
    assert load_text_file(path).label_names == ("-3", "1")


def test_declared_label_set_fixes_the_ids(tmp_path):
    path = tmp_path / "data.csv"
    _write_csv(path, [("good", "pos"), ("bad", "neg")])
    data = load_text_file(path, label_set=["pos", "neg", "neu"])
    assert data.label_names == ("pos", "neg", "neu")
    np.testing.assert_array_equal(data.labels, [0, 1])


def test_malformed_jsonl_reports_every_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"text": "fine", "label": "pos"}\n'  # 1 ok
        b'{"text": "no label"}\n'  # 2 missing key
        b'{"text": "   ", "label": "pos"}\n'  # 3 empty text
        b"\n"  # 4 blank: skipped
        b'{"text": "x", "label": "meh"}\n'  # 5 label outside the set
        b'{"text": "caf\xe9", "label": "pos"}\n'  # 6 latin-1 byte, not UTF-8
        b"[1, 2]\n"  # 7 not an object
        b'{"text": 3, "label": 1.5}\n'  # 8 wrong types
        b"{oops\n"  # 9 malformed JSON
    )
    with pytest.raises(DataFileError) as err:
        load_text_file(path, label_set=["neg", "pos"])
    e = err.value
    assert isinstance(e, ValueError)
    assert e.line_numbers == [2, 3, 5, 6, 7, 8, 9]
    message = str(e)
    assert message.splitlines()[0].startswith(f"{path}: 7 bad rows (expected jsonl rows")
    for needle in [
        "line 2: missing key(s) ['label']",
        "line 3: empty text",
        "line 5: label 'meh' not in ['neg', 'pos']",
        "line 6: cannot decode as utf-8",
        "line 7: expected a JSON object, got list",
        "line 8: text must be a string, got int",
        "line 8: label must be a non-empty string or an integer, got 1.5",
        "line 9: malformed JSON",
    ]:
        assert needle in message


def test_malformed_csv_reports_every_bad_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"text,label\r\n"  # 1 header
        b"fine,pos\r\n"  # 2
        b"only one field\r\n"  # 3 missing column
        b'"multi\nline",neg\r\n'  # 4-5 one row over two lines, fine
        b",pos\r\n"  # 6 empty text
        b"ok,\r\n"  # 7 empty label
        b"\xff\xfe,pos\r\n"  # 8 undecodable
    )
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    assert err.value.line_numbers == [3, 6, 7, 8]
    assert "line 3: expected 2 fields, got 1" in str(err.value)


def test_csv_row_numbers_follow_multiline_rows(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_bytes(b'text,label\n"a\nb\nc",x\nd,y\n')
    data = load_text_file(path)
    assert data.texts == ["a\nb\nc", "d"]
    np.testing.assert_array_equal(data.line_numbers, [2, 5])


def test_csv_header_without_the_columns(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("sentence,y\nhello,1\n")
    with pytest.raises(DataFileError, match=r"line 1: header \['sentence', 'y'\] lacks column"):
        load_text_file(path)
    assert load_text_file(path, text_column="sentence", label_column="y").texts == ["hello"]


def test_csv_header_naming_a_column_twice(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("label,text,text\npos,hello,there\n")
    with pytest.raises(DataFileError, match=r"line 1: header .* has column\(s\) \['text'\] more"):
        load_text_file(path)


def test_unterminated_quote_is_reported(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('text,label\nfine,a\n"never closed,b\n')
    with pytest.raises(DataFileError, match="line 3: malformed CSV"):
        load_text_file(path)


def test_bare_quotes_of_a_glue_style_tsv_say_how_to_write_the_file(tmp_path):
    """GLUE's TSVs leave quotes bare; read as RFC 4180 the row fails, and the message
    says the rule and the remedy, once, as one bad row."""
    path = tmp_path / "glue.tsv"
    path.write_text('sentence\tlabel\nfine film\t1\n"Hello," she said.\t0\n')
    with pytest.raises(DataFileError) as err:
        load_text_file(path, text_column="sentence")
    first, second = str(err.value).splitlines()
    assert first.startswith(f"{path}: 1 bad row (expected tsv rows")
    assert second.startswith("  line 3: malformed TSV")
    assert "read as quoted (RFC 4180" in second and "csv.writer" in second


def test_many_bad_rows_are_summarised(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("not json\n" * 50)
    with pytest.raises(DataFileError, match=r"50 bad rows[\s\S]*and 30 more"):
        load_text_file(path)


def test_empty_file_and_unknown_format(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataFileError, match="no examples"):
        load_text_file(empty)
    other = tmp_path / "data.xml"
    other.write_text("<a/>")
    with pytest.raises(ValueError, match=r"unknown format '.xml'.*'jsonl'"):
        load_text_file(other)
    with pytest.raises(ValueError, match="without repeats"):
        load_text_file(empty, label_set=["a", "a"])


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nhi,a\n")
    assert load_text_file(path).texts == ["hi"]


def test_a_key_no_jsonl_row_has_is_said_once(tmp_path):
    """Every row lacking 'label' listed 20 rows of the same error, then '... and 40
    more' (a CSV without the column gets one header-level line)."""
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(f'{{"text": "t{i}", "sentiment": "pos"}}\n' for i in range(60)))
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    assert str(err.value) == (
        f"{path}: no row has the key(s) ['label']; keys found: ['text', 'sentiment'] "
        "(expected jsonl rows with a non-empty 'text' and a 'label')")
    assert load_text_file(path, label_column="sentiment").label_names == ("pos",)


@pytest.mark.parametrize("name, content", [
    ("empty.csv", ""), ("header_only.csv", "text,label\n"), ("blank.jsonl", "\n\n"),
    ("empty.jsonl", "")])
def test_a_file_without_examples_says_so_in_one_line(tmp_path, name, content):
    """It read '1 bad rows ... line 1: no examples' (an empty CSV: 'no header row')."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    fmt = name.rsplit(".", 1)[1]
    assert str(err.value) == (
        f"{path}: no examples (expected {fmt} rows with a non-empty 'text' and a 'label')")
