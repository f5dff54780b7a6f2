"""SIGKILL at random moments, also mid-checkpoint: the resumed run ends with the same figures."""

import random
import signal
import subprocess
import time

import pytest

from tests.reliability import helpers


def _kill_and_resume(workdir, kills: int, rng: random.Random, duration: float,
                     command=helpers.run_cmd) -> int:
    """Kills ``command(workdir)`` ``kills`` times at random moments, then lets it finish;
    returns the kills done."""
    done = 0
    while True:
        proc = subprocess.Popen(command(workdir), cwd=helpers.ROOT, env=helpers.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done < kills:
            # Start-up, training epochs or checkpoint writes; a resumed run has less left to
            # do, so the window stops short of a whole run's time.
            deadline = time.monotonic() + rng.uniform(0.15, 0.7) * duration
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done += 1
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        return done


def _reference(tmp_path) -> tuple[dict, float]:
    ref = tmp_path / "reference"
    tic = time.monotonic()
    assert helpers.run(helpers.run_cmd(ref)).returncode == 0
    return helpers.figures(ref), time.monotonic() - tic


def test_killed_run_resumes_to_identical_figures(tmp_path):
    expected, duration = _reference(tmp_path)
    killed = tmp_path / "killed"
    done = _kill_and_resume(killed, kills=3, rng=random.Random(0), duration=duration)
    assert done >= 1
    assert helpers.figures(killed) == expected


@pytest.mark.slow
def test_many_random_kill_points(tmp_path):
    expected, duration = _reference(tmp_path)
    survived = 0
    for trial in range(4):
        workdir = tmp_path / f"killed{trial}"
        survived += _kill_and_resume(workdir, kills=5, rng=random.Random(100 + trial),
                                     duration=duration)
        assert helpers.figures(workdir) == expected
    print(f"survived {survived} kills")
    assert survived >= 8
