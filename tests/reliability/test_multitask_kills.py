"""SIGKILL a real ``scripts.multitask`` run: the rerun ends with exactly the same figures.

The default test kills once, right after a checkpoint appears (a fixed, cheap
kill point). The slow one reuses the continual path's random kill loop
(``test_kills._kill_and_resume``) on the command with its single-task
baselines, so kills land in start-up, in epochs, in orbax saves of either
model, and in the writing of results.json and the plots.
"""

import json
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from research import multitask
from research.configs import multi_digits
from tests.reliability import helpers, test_kills

SMALL = ["--config=research/configs/multi_digits.py:runlocal", "--config.epochs=6",
         "--config.checkpoint_every_epochs=1", "--config.progress=False",
         "--config.arch=task_bn", "--config.weighting=uw"]  # batch stats, log-variances
FIGURES = ("per_task", "single_task", "delta_m", "per_seed", "history", "steps", "sigmas")


def multitask_cmd(workdir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scripts.multitask", *SMALL, f"--workdir={workdir}", *extra]


def figures(workdir) -> dict:
    """Everything in results.json that must not depend on being killed (not the wall time)."""
    results = json.loads((pathlib.Path(workdir) / "results.json").read_text())
    return {k: results[k] for k in FIGURES}


def reference(workdir, *extra: str) -> tuple[dict, float]:
    """The uninterrupted figures, and the time of a run whose programs are in the XLA cache."""
    for _ in range(2):  # the first run may compile; the second is the one timed
        tic = time.monotonic()
        proc = helpers.run(multitask_cmd(workdir, "--overwrite", *extra))
        assert proc.returncode == 0, proc.stderr[-2000:]
    return figures(workdir), time.monotonic() - tic


def test_run_killed_after_a_checkpoint_resumes_to_identical_figures(tmp_path):
    no_baselines = "--config.single_task=False"
    config = multi_digits.get_config("runlocal")  # what SMALL + no_baselines say, in-process
    config.update(epochs=6, checkpoint_every_epochs=1, arch="task_bn", weighting="uw",
                  single_task=False)
    multitask.train_and_evaluate(config, str(tmp_path / "reference"), progress=False)
    expected = figures(tmp_path / "reference")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(multitask_cmd(killed, no_baselines), cwd=helpers.ROOT,
                            env=helpers.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (killed / "checkpoints" / "2").exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "results.json").exists()
    proc = helpers.run(multitask_cmd(killed, no_baselines))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert figures(killed) == expected


@pytest.mark.slow
def test_many_random_kill_points_multitask(tmp_path):
    expected, duration = reference(tmp_path / "reference")
    survived = 0
    for trial in range(3):
        workdir = tmp_path / f"killed{trial}"
        survived += test_kills._kill_and_resume(workdir, kills=4, rng=random.Random(200 + trial),
                                                duration=duration, command=multitask_cmd)
        assert figures(workdir) == expected
    print(f"survived {survived} kills")
    assert survived >= 6
