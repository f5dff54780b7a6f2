"""scripts.bench as a user runs it: bad flags are refused before minutes of measuring."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("flag, value, says", [
    ("epochs", "1", "--epochs must be at least 2"),
    ("comparison_rounds", "0", "--comparison_rounds=0: 0 is not a positive integer"),
    ("seeds", "0", "--seeds=0: 0 is not a positive integer"),
    ("comparison_seeds", "0", "--comparison_seeds=0: 0 is not a positive integer"),
    ("methods", "nosuch,nor_this", "--methods must name at least one of our algorithms"),
    ("torch_python", "/nowhere/python", "--torch_python must name a Python interpreter"),
    ("torch_text_python", "README.md", "--torch_text_python must name a Python interpreter")])
def test_bench_refuses_bad_flags_before_it_starts(tmp_path, flag, value, says):
    done = subprocess.run([sys.executable, "-m", "scripts.bench", f"--output={tmp_path}",
                           f"--{flag}={value}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_bench_refuses_an_output_it_could_not_write_in_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    output = tmp_path / "a_file" / "bench"
    done = subprocess.run([sys.executable, "-m", "scripts.bench", f"--output={output}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: cannot create --output folder '{output}': Not a directory"]
