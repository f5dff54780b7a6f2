"""research/host_memory.py: a run's peak memory is its own, not the process that spawned it."""

import subprocess
import sys

import numpy as np
import pytest

from research import host_memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="VmHWM and clear_refs are Linux's")
MiB = 2 ** 20


@linux_only
def test_a_spawned_process_reports_its_own_peak_not_its_parents():
    held = np.ones(768 * MiB // 8)  # the parent's resident memory grows by 768 MiB
    child = ("import resource; from research import host_memory; "
             "print(host_memory.peak_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    ours, maxrss_kb = map(int, subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout.split())
    assert held.sum() > 0
    assert maxrss_kb * 1024 > 768 * MiB  # getrusage counts the parent's memory at the spawn
    assert ours < 256 * MiB  # a bare interpreter's own peak


@linux_only
def test_reset_peak_forgets_memory_already_freed():
    host_memory.reset_peak()  # whatever earlier tests held
    before = host_memory.peak_bytes()
    held = np.ones(512 * MiB // 8)
    assert held.sum() > 0
    assert host_memory.peak_bytes() >= before + 500 * MiB
    del held
    host_memory.reset_peak()
    assert host_memory.peak_bytes() < before + 256 * MiB
