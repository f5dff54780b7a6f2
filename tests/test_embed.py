"""scripts/embed.py: one unit vector per input line, clear errors for bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from models.text.load import resolve_model_dir  # noqa: E402
from scripts.embed import read_lines  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference.npz"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.embed", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def minilm():
    try:
        resolve_model_dir("minilm")
    except ValueError as e:
        pytest.skip(str(e))


def test_embeds_every_line_like_pytorch(minilm, tmp_path):
    sentences = [str(s) for s in np.load(REFERENCE)["sentences"]]
    lines = sentences + ["", sentences[0]]  # an empty line still gets a row
    source, target = tmp_path / "in.txt", tmp_path / "out.npy"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = _run(f"--input={source}", f"--output={target}", "--batch_size=2",
                "--max_length=16")
    assert done.returncode == 0, done.stderr
    vectors = np.load(target)
    assert vectors.shape == (len(lines), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batches of 2 pad the last one; padding must not leak into the real rows.
    np.testing.assert_allclose(vectors[:3], np.load(REFERENCE)["embeddings"], atol=1e-4)
    np.testing.assert_allclose(vectors[4], vectors[0], atol=1e-6)


@pytest.mark.parametrize("name, text, message", [
    ("nope.txt", None, "nope.txt' does not exist"),
    ("empty.txt", "", "empty.txt' is empty"),
    ("latin1.txt", b"caf\xe9\n", "latin1.txt' is not UTF-8 text (invalid continuation byte"),
])
def test_bad_input_exits_2_with_one_line_error(tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_bytes(text.encode() if isinstance(text, str) else text)
    done = _run(f"--input={tmp_path / name}", f"--output={tmp_path / 'o.npy'}")
    assert done.returncode == 2, done.stderr[-500:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_unwritable_output_is_refused_before_the_texts_are_encoded(tmp_path):
    source = _write(tmp_path / "in.txt", "a\n")
    (tmp_path / "a_file").write_text("")
    done = _run(f"--input={source}", f"--output={tmp_path / 'a_file' / 'sub' / 'o.npy'}",
                "--model=/nonexistent/model")  # the model would fail only after the check
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.strip().splitlines() == [
        f"error: cannot create --output folder '{tmp_path / 'a_file' / 'sub'}': Not a directory"]


def test_empty_input_is_an_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        read_lines(str(empty))
    assert read_lines(_write(tmp_path / "two.txt", "a\n\nb")) == ["a", "", "b"]
