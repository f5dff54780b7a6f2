"""scripts.bench as a user runs it: bad flags are refused before minutes of measuring, and
the PyTorch references find their interpreter (each test a process of its own: the
command's flags would clash with other scripts' in this one)."""

import json
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



_TEXT_REFERENCE = """
import importlib.util, json, sys
from absl import flags
from scripts import bench
flags.FLAGS(["bench", "--output=unused", *sys.argv[2:]])
found = importlib.util.find_spec  # torch and transformers installed here, or torch not
importlib.util.find_spec = lambda name, *a: (
    (object() if sys.argv[1] == "installed" else None) if name in ("torch", "transformers")
    else found(name, *a))
print(json.dumps(bench._torch_text_python()))
"""


def _text_reference(here: str, *flags: str) -> list:
    done = subprocess.run([sys.executable, "-c", _TEXT_REFERENCE, here, *flags],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("here, flags, expected", [
    ("installed", [], sys.executable),  # as --torch_python's default: this interpreter
    ("installed", ["--torch_python=python3"], "python3"),
    ("installed", ["--torch_python=python3", "--torch_text_python=sh"], "sh"),
    ("absent", ["--torch_python=python3"], "python3")])
def test_text_reference_interpreter_is_found_as_avalanches(here, flags, expected):
    assert _text_reference(here, *flags) == [expected, ""]


def test_text_reference_without_torch_says_what_to_install():
    python, why = _text_reference("absent")
    assert python is None and "torch/transformers are not installed" in why
