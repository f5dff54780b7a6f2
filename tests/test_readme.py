"""The README's example method is real code: load it from the README and run it."""

import pathlib
import re
import sys
import types

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _example_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (source,) = [b for b in blocks if "def make(" in b]
    assert len(source.splitlines()) < 40
    module = types.ModuleType("algorithms.my_l2")
    exec(compile(source, "README.md", "exec"), module.__dict__)  # noqa: S102
    return module


def test_readme_method_runs_and_pulls_toward_anchor(digits_config, tmp_path, monkeypatch):
    import algorithms
    from research import train

    module = _example_module()
    monkeypatch.setitem(sys.modules, "algorithms.my_l2", module)
    monkeypatch.setattr(algorithms, "available", lambda: ["my_l2", "naive"])
    digits_config.algorithm = "my_l2"
    digits_config.hp.my_l2_strength = 1.0
    digits_config.sweep.my_l2_strength = "0.0,100.0"
    results = train.train_and_evaluate(digits_config, str(tmp_path))
    runs = results["class_il"]["runs"]
    assert [r["hp"]["my_l2_strength"] for r in runs] == [0.0, 100.0]
    # A strong pull toward the old parameters keeps more of the first task.
    first_task = [np.asarray(r["accuracy_matrix"])[-1, 0] for r in runs]
    diag = [np.asarray(r["accuracy_matrix"])[1, 1] for r in runs]
    assert first_task[1] >= first_task[0]
    assert diag[1] <= diag[0] + 1e-6  # ... at the price of plasticity
