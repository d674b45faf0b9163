"""Benchmark: ``run_trials`` throughput on one and two local workers, and per-trial overhead.

Runs an SMA-crossover grid on the bundled daily data (``configs/sma.yaml``) and on a
generated series of one-minute bars (``data/generate_sample.py``, as ``bench_sma.py``), each
once in this process (1 worker) and once on a pool of 2 processes, with no journal. Usage::

    python benchmarks/bench_optimize.py [--bars 1000000] [--points 200] [--daily-only]

Reported per case: trials/s per worker; speed-up of 2 workers over 1 and parallel
efficiency (speed-up / 2); overhead per trial = (workers x wall - time inside the
backtests) / trials, counted from when the batches went out (dispatch, pickling, memory
checks, idle tails), and beside it the same with the sweep's setup (checking the points,
the pilot trial, which the pool's processes start beside; the data's load is left out of
both); peak RSS of each worker. Batches shrink towards the end of a sweep
(``trials.guided``), so that the workers finish together. The figures vary with the host's load: on a shared 2-core machine other
processes take the second core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))

from bench_sma import CONFIG  # noqa: E402  (the same run definition, SMA 10/20 on NSE_EQ:1333)

# bench_sma's run definition (the generated series has bars on weekdays that are NSE holidays, which it allows)
MINUTE_CONFIG = CONFIG


def _grid(points: int) -> tuple[list[str], list[str]]:
    """About ``points`` admissible (fast < slow) SMA pairs: 10 fast periods x n slow ones."""
    slow = max(1, points // 10)
    return ["fast_period=2:20:2", f"slow_period=25:{25 + 5 * (slow - 1)}:5"], ["fast_period < slow_period"]


def _sweep(config: Path, params: list[str], constraints: list[str], workers: int) -> dict:
    from algocli.research import Space, run_trials
    from algocli.research.executors import make_executor

    executor = make_executor(workers=workers)
    try:
        result = run_trials(config, Space.parse(params, constraints), executor=executor)
    finally:
        executor.close()
    n = len(result.trials)
    wall = result.wall_seconds - result.load_seconds  # the client's load is the same for both
    # Per trial: what the workers spent beyond the trials once the batches went out (dispatch,
    # pickling, memory checks, idle tails). The setup before (the points' checks, the pilot trial)
    # is a fixed cost of the sweep, shown on its own; the whole is the overhead of the sweep.
    batched = max(1, n - 1)  # all but the pilot
    after = max(0.0, workers * (result.wall_seconds - result.setup_seconds) - (result.busy_seconds
                                                                               - result.pilot_seconds)) / batched
    whole = max(0.0, workers * wall - result.busy_seconds) / n
    trial = result.busy_seconds / n
    return {"trials": n, "wall": wall, "per_worker": n / wall / workers, "overhead_ms": after * 1e3,
            "overhead_pct": 100 * after / trial, "whole_pct": 100 * whole / trial,
            "setup": result.setup_seconds - result.load_seconds, "batch": result.batch_size,
            "rss": max(result.workers.values(), default=0.0), "best": result.best.params if result.best else None}


def _case(label: str, config: Path, grid: tuple, baseline_grid: tuple) -> None:
    """Time ``grid`` on 2 workers and ``baseline_grid`` (the same or a part of it) on 1; the
    speed-up compares throughputs (trials/s)."""
    one = _sweep(config, *baseline_grid, 1)
    two = _sweep(config, *grid, 2)
    speedup = 2 * two["per_worker"] / one["per_worker"]
    print(label)
    for name, r in (("1 worker ", one), ("2 workers", two)):
        print(f"  {name}  {r['trials']:4d} trials {r['wall']:8.2f} s  {r['per_worker']:8.2f} trials/s/worker  "
              f"batch {r['batch']:4d}  "
              f"overhead {r['overhead_ms']:7.2f} ms/trial ({r['overhead_pct']:4.1f} %; with the "
              f"{r['setup'] * 1e3:.0f} ms setup {r['whole_pct']:4.1f} %)"
              + (f"  peak RSS/worker {r['rss']:.0f} MiB" if r["rss"] else ""))
    print(f"  speed-up {speedup:.2f}x   parallel efficiency {100 * speedup / 2:.0f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=200, help="grid points on the minute series")
    parser.add_argument("--baseline", type=int, default=20,
                        help="grid points of the 1-worker run on the minute series (it is long)")
    parser.add_argument("--daily-only", action="store_true", help="skip the minute series")
    args = parser.parse_args(argv)
    # One trial first, so that importing the engine (once per process) is not counted as per-trial overhead.
    _sweep(ROOT / "configs" / "sma.yaml", ["fast_period=10", "slow_period=30"], [], 1)
    daily = _grid(400)
    _case("bundled daily data (configs/sma.yaml)", ROOT / "configs" / "sma.yaml", daily, daily)
    if args.daily_only:
        return 0
    from generate_sample import generate_minute_bars, write_csv

    with tempfile.TemporaryDirectory(prefix="algo-bench-") as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "data"
        data.mkdir()
        write_csv(generate_minute_bars(args.bars, seed=7), data / "NSE_EQ_1333.csv")
        config = tmp_path / "bench.yaml"
        config.write_text(MINUTE_CONFIG.format(data=data, out=tmp_path / "out", capital=1_000_000,
                                               instruments='["NSE_EQ:1333"]'))
        _case(f"{args.bars:,} one-minute bars", config, _grid(args.points), _grid(args.baseline))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
