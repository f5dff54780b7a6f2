"""This process's peak resident memory, as results.json reports it.

``getrusage``'s ``ru_maxrss`` keeps its high-water mark across ``exec``: a process
spawned by a large one (a benchmark, a test runner) reports its parent's
resident memory at the spawn if that was higher than its own peak. Linux's
``VmHWM`` counts this program's memory alone, and can be reset, so a process
that runs several methods one after another can report each one's peak.
"""

from __future__ import annotations

import resource
import sys


def peak_bytes() -> int:
    """The peak resident set size since the process started (or since ``reset_peak``)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere


def reset_peak() -> None:
    """Sets the peak to the current resident size (Linux; elsewhere nothing changes)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
