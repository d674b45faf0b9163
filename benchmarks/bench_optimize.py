"""Benchmark: ``run_trials`` throughput on one and two local workers, and per-trial overhead.

Runs an SMA-crossover grid on the bundled daily data (``configs/sma.yaml``, ``--repeat``
sweeps per case, medians shown) and on a generated series of one-minute bars
(``data/generate_sample.py``, as ``bench_sma.py``, one sweep), each in this process (1 worker)
and on a pool of 2 processes, with no journal. Usage::

    python benchmarks/bench_optimize.py [--bars 1000000] [--points 200] [--daily-only] [--repeat 5]

Reported per case: trials/s per worker; speed-up of 2 workers over 1 and parallel
efficiency (speed-up / 2). The workers' time beyond their backtests, once the batches went
out, is split (``trials.overhead``, from each batch's start and end in the worker) into:

- per-trial overhead: what grows with the trials, the cost of batching them (bookkeeping
  between a batch's trials; results going back and the next batch coming in between batches);
- once a sweep: the first batches reaching the workers and the tail (each worker's last
  batch to the last result back), and before the batches the setup (checking the points,
  the pilot trials, starting the pool's processes; the data's load is left out);
- all told: workers x wall - time inside the backtests, per trial, from when the batches
  went out, and with the setup.

Batches shrink towards the end of a sweep (``trials.guided``), so that the workers finish
together. Peak RSS of each worker is shown. The figures vary with the host's load: on a
shared 2-core machine the client process and other processes take time from the workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    from algocli.research.trials import overhead

    executor = make_executor(workers=workers)
    try:
        result = run_trials(config, Space.parse(params, constraints), executor=executor)
    finally:
        executor.close()
    n = len(result.trials)
    wall = result.wall_seconds - result.load_seconds  # the client's load is the same for both
    trial = result.busy_seconds / n
    # Once the batches went out: what the workers spent beyond their trials, and of that what grows
    # with the trials (batching: bookkeeping inside batches, results going back and batches coming
    # in between them) against what a sweep pays once (the first batches arriving, the tail).
    batched = max(1, n - int(round(result.pilot_seconds / trial)) if trial else n)  # all but the pilots
    after = max(0.0, workers * (result.wall_seconds - result.setup_seconds) - (result.busy_seconds
                                                                               - result.pilot_seconds))
    split = overhead(result)
    per_trial = (split["in_batch"] + split["between"]) / batched
    whole = max(0.0, workers * wall - result.busy_seconds) / n
    return {"trials": n, "wall": wall, "per_worker": n / wall / workers, "per_trial_ms": per_trial * 1e3,
            "per_trial_pct": 100 * per_trial / trial, "once_ms": 1e3 * (split["start"] + split["tail"]),
            "after_pct": 100 * after / batched / trial, "whole_pct": 100 * whole / trial,
            "setup": result.setup_seconds - result.load_seconds, "batch": result.batch_size,
            "rss": max(result.workers.values(), default=0.0)}


def _median(runs: list[dict]) -> dict:
    """Each figure's median over repeated sweeps (the host's load moves single runs by a few %)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _case(label: str, config: Path, grid: tuple, baseline_grid: tuple, repeat: int) -> None:
    """Time ``grid`` on 2 workers and ``baseline_grid`` (the same or a part of it) on 1, ``repeat``
    times each, alternating; the speed-up compares throughputs (trials/s)."""
    ones, twos = [], []
    for _ in range(repeat):
        ones.append(_sweep(config, *baseline_grid, 1))
        twos.append(_sweep(config, *grid, 2))
    one, two = _median(ones), _median(twos)
    speedup = 2 * two["per_worker"] / one["per_worker"]
    print(label + (f" (medians of {repeat} sweeps)" if repeat > 1 else ""))
    for name, r in (("1 worker ", one), ("2 workers", two)):
        print(f"  {name}  {r['trials']:4.0f} trials {r['wall']:8.2f} s  {r['per_worker']:8.2f} trials/s/worker  "
              f"batch {r['batch']:4.0f}  per-trial overhead {r['per_trial_ms']:6.3f} ms ({r['per_trial_pct']:4.1f} %)"
              f"  once a sweep: {r['once_ms']:4.1f} ms start and tail, {r['setup'] * 1e3:.0f} ms setup"
              f"  all told {r['after_pct']:4.1f} % ({r['whole_pct']:4.1f} % with the setup)"
              + (f"  peak RSS/worker {r['rss']:.0f} MiB" if r["rss"] else ""))
    print(f"  speed-up {speedup:.2f}x   parallel efficiency {100 * speedup / 2:.0f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=200, help="grid points on the minute series")
    parser.add_argument("--baseline", type=int, default=20,
                        help="grid points of the 1-worker run on the minute series (it is long)")
    parser.add_argument("--daily-only", action="store_true", help="skip the minute series")
    parser.add_argument("--repeat", type=int, default=5, help="sweeps of the daily data per case (medians shown)")
    args = parser.parse_args(argv)
    # One trial first, so that importing the engine (once per process) is not counted as per-trial overhead.
    _sweep(ROOT / "configs" / "sma.yaml", ["fast_period=10", "slow_period=30"], [], 1)
    daily = _grid(400)
    _case("bundled daily data (configs/sma.yaml)", ROOT / "configs" / "sma.yaml", daily, daily, args.repeat)
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
        _case(f"{args.bars:,} one-minute bars", config, _grid(args.points), _grid(args.baseline), 1)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
