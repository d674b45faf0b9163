"""Benchmark: wall-clock start-up of ``algo --help``, ``algo --version`` and the bundled backtest.

Each command runs in a fresh child process, as a user types it; the figure is the best of
``--repeat`` runs (the least disturbed by other load on the machine). The backtest is
``algo backtest configs/sma.yaml`` with its HTML report, written to a temporary folder.
Usage::

    python benchmarks/bench_startup.py [--repeat 5]

Targets (issue 10, on a 2-core machine): help and version at most 0.25 s, the sample
backtest with its report at most 0.5 s. To see where the time goes::

    python -X importtime -m algocli.cli.main --help 2> imports.txt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALGO = Path(sys.executable).parent / "algo"
TARGETS = {"algo --help": 0.25, "algo --version": 0.25, "algo backtest configs/sma.yaml": 0.5}


def best_of(argv: list[str], repeat: int) -> float | str:
    """The shortest wall-clock time of ``repeat`` runs of ``argv`` from the project folder.

    Args:
        argv: The command line.
        repeat: How many runs.

    Returns:
        Seconds, or ``"exit N"`` when the command failed (an older version may lack the command).
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            return f"exit {done.returncode}"
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="algo-bench-") as out:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "algo --help": [str(ALGO), "--help"],
            "algo --version": [str(ALGO), "--version"],
            "algo backtest configs/sma.yaml": [str(ALGO), "backtest", "configs/sma.yaml", "--output", out],
        }
        rows = [(label, best_of(argv, args.repeat)) for label, argv in commands.items()]
    width = max(len(label) for label, _ in rows)
    print(f"{'command':<{width}}  best of {args.repeat:<3}  target")
    for label, seconds in rows:
        target = TARGETS.get(label)
        if isinstance(seconds, str):
            print(f"{label:<{width}}  {seconds:>10}")
            continue
        mark = "" if target is None else f"{target:.2f} s  {'ok' if seconds <= target else 'SLOW'}"
        print(f"{label:<{width}}  {seconds:8.3f} s  {mark}")


if __name__ == "__main__":
    main()
