"""Benchmark: SMA(10/20) crossover, 100 units, next-open fills, on 1,000,000 one-minute bars.

Runs the same strategy through our engine and through backtesting.py 0.6 in one process,
then times the whole ``algo backtest`` command on the generated CSV in a subprocess and
reads its peak RSS. Usage::

    python benchmarks/bench_sma.py [--bars 1000000] [--repeat 3]

Both engine timings exclude loading the data and include computing the statistics. Each
timing is the best of ``--repeat`` runs; the figures still vary with the host's load, so
compare the ratio, which both engines share.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))

CONFIG = """\
name: bench-sma
interval: 1m
initial_capital: 1000000
data: {{feed: csv, path: {data}, allow_off_session: true}}  # a weekday series, holidays included
broker: {{name: simulated, commission_rate: 0.0}}
fill_model: {{name: next_open}}
strategies:
  - class: sma_crossover
    instruments: ["NSE_EQ:1333"]
    params: {{fast_period: 10, slow_period: 20, quantity: 100}}
output: {{dir: {out}}}
"""


def _ours(csv: Path, repeat: int) -> tuple[float, int]:
    from algocli.broker.fill_models import NextOpen
    from algocli.data.csv_feed import load_csv
    from algocli.engine.backtest import Backtest
    from strategies.sma_crossover import SmaCrossover

    bars = load_csv(csv, "NSE_EQ:1333")
    best, trades = float("inf"), 0
    for _ in range(repeat):
        bt = Backtest({"NSE_EQ:1333": bars}, initial_capital=1_000_000, fill_model=NextOpen())
        bt.add_strategy(SmaCrossover(fast_period=10, slow_period=20, quantity=100), ["NSE_EQ:1333"])
        gc.collect()
        t = time.perf_counter()
        result = bt.run()
        best = min(best, time.perf_counter() - t)
        trades = int(result.metrics["total_trades"])
    return best, trades


def _theirs(csv: Path, repeat: int) -> tuple[float, int]:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self):
            f, s = self.fast, self.slow
            if f[-2] <= s[-2] and f[-1] > s[-1] and self.position.size <= 0:
                self.buy(size=100)
            elif f[-2] >= s[-2] and f[-1] < s[-1] and self.position.size > 0:
                self.position.close()

    df = pd.read_csv(csv, index_col="timestamp", parse_dates=True).rename(columns=str.capitalize)
    best, trades = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(df, SmaCross, cash=1_000_000, finalize_trades=True).run()
        best = min(best, time.perf_counter() - t)
        trades = int(stats["# Trades"])
    return best, trades


def _command(config: Path, repeat: int) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs of the real command, and the largest peak RSS."""
    algo = Path(sys.executable).with_name("algo")
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([str(algo), "backtest", str(config), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over all children
    return best, peak_kib / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best time is kept")
    args = parser.parse_args(argv)
    from generate_sample import generate_minute_bars, write_csv

    with tempfile.TemporaryDirectory(prefix="algo-bench-") as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "data"
        data.mkdir()
        csv = data / "NSE_EQ_1333.csv"
        write_csv(generate_minute_bars(args.bars, seed=7), csv)
        config = tmp_path / "bench.yaml"
        config.write_text(CONFIG.format(data=data, out=tmp_path / "out"))
        cmd_s, peak_mib = _command(config, args.repeat)  # first, so its RSS is not mixed with ours
        ours_s, ours_trades = _ours(csv, args.repeat)
        theirs_s, theirs_trades = _theirs(csv, args.repeat)
    n = args.bars
    print(f"bars                         {n:,}")
    print(f"algocli engine               {ours_s:8.3f} s   {n / ours_s:12,.0f} bars/s   {ours_trades:,} trades")
    print(f"backtesting.py 0.6           {theirs_s:8.3f} s   {n / theirs_s:12,.0f} bars/s   {theirs_trades:,} trades")
    print(f"speed-up                     {theirs_s / ours_s:8.2f} x   (bar: >= 5x)")
    print(f"`algo backtest` command      {cmd_s:8.3f} s   (bar: < 5 s; load, run, all artifacts and report)")
    print(f"`algo backtest` peak RSS     {peak_mib:8.1f} MiB (bar: < 400 MiB)")
    if ours_trades != theirs_trades:
        print("note: trade counts differ because TA-Lib's running-sum SMA and pandas' rolling mean round"
              " differently at exact crossover ties")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
