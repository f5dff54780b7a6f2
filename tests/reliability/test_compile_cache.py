"""A command keeps its compiled programs in its workdir: rerunning it compiles nothing."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.reliability import helpers


def _run_without_test_cache(workdir) -> None:
    env = {k: v for k, v in helpers.env().items() if not k.startswith("JAX_PERSISTENT_CACHE")
           and k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.run(helpers.run_cmd(workdir), cwd=helpers.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_rerun_loads_every_program_from_the_workdir_cache(tmp_path):
    _run_without_test_cache(tmp_path)
    cached = set(os.listdir(tmp_path / "xla_cache"))
    assert len(cached) >= 6  # at least the engine's six programs
    first = helpers.figures(tmp_path)
    for name in os.listdir(tmp_path):  # the run from scratch again, its cache kept
        if name != "xla_cache":
            path = tmp_path / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    _run_without_test_cache(tmp_path)
    assert set(os.listdir(tmp_path / "xla_cache")) == cached  # nothing compiled anew
    assert helpers.figures(tmp_path) == first
