"""keep_heap: after it, freed temporary arrays are reused instead of being faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each of 30 rounds fills ten 2 MiB arrays and frees them together, as a run's formatting
# of one chunk does; prints the minor page faults that took and what keep_heap returned.
CHURN = """
import resource, sys
import numpy as np
from algocli.engine.heap import keep_heap
kept = keep_heap(int(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(30):
    arrays = [np.full(262_144, float(k)) for _ in range(10)]
    del arrays
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _churn(bars: int, **env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHURN, str(bars)], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, **env})
    kept, faults = out.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; elsewhere keep_heap does nothing")
def test_a_large_run_keeps_its_heap_and_stops_refaulting_freed_arrays():
    small_kept, small_faults = _churn(1_000)
    big_kept, big_faults = _churn(1_000_000)
    off_kept, off_faults = _churn(1_000_000, ALGOCLI_KEEP_HEAP="0")
    assert (small_kept, big_kept, off_kept) == ("False", "True", "False")
    # by default the freed 20 MiB go back to the kernel and each round faults its 5,120 pages in again
    assert small_faults > 25 * 5_120 and off_faults > 25 * 5_120
    assert big_faults < 3 * 5_120  # kept: about the first round's pages only
