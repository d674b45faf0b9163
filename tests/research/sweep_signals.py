"""Ctrl-C at a sweep run in a child process, as a terminal sends it: to the whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ALGO = Path(sys.executable).parent / "algo"


def ctrl_c_once_journalled(args: list, journal: Path, rows: int = 3, slow: float = 0.1,
                           timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``algo *args`` with ``research.objectives:slow_sharpe`` taking ``slow`` seconds a trial; press
    Ctrl-C once ``journal`` holds ``rows`` trials (the pool's workers are up by then).

    Returns:
        The exit code, stdout and stderr.
    """
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SLOW_OBJECTIVE": str(slow), "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.Popen([str(ALGO), *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not (journal.is_file() and len(journal.read_text().splitlines()) >= rows):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep never got going"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
