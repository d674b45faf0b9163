"""Benchmark: ``algo montecarlo``'s simulations on a real backtest's trades and equity curve.

Backtests the SMA(10/20) crossover of ``bench_sma.py`` on a generated series of one-minute
bars (``--bars``, default 20,000: some 550 closed trades), then times ``simulate`` with
``--n`` simulations (default 10,000) for each method: ``trades`` (reshuffled, and drawn with
replacement), ``bootstrap`` and ``block`` (bar returns). Each figure is the best of
``--repeat`` runs. Usage::

    python benchmarks/bench_montecarlo.py [--bars 20000] [--n 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "data"))


def _run_folder(tmp: Path, bars: int) -> Path:
    """A finished backtest's artifact folder, written by the ``algo backtest`` command."""
    import yaml

    from bench_sma import _setup

    _, config = _setup(tmp, bars, 1)
    out = tmp / "run"
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["output"]["dir"] = str(out)
    config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    algo = str(Path(sys.executable).with_name("algo"))  # the command beside this interpreter
    done = subprocess.run([algo, "backtest", str(config), "--no-report", "-q"], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"algo backtest {config} failed:\n{done.stderr}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000, help="one-minute bars of the backtest")
    parser.add_argument("--n", type=int, default=10_000, help="simulations per method")
    parser.add_argument("--repeat", type=int, default=5, help="runs per method; the best is kept")
    args = parser.parse_args()

    from algocli.research import montecarlo as mc

    with tempfile.TemporaryDirectory() as tmp:
        run = mc.load_run(_run_folder(Path(tmp), args.bars))
        print(f"{len(run.trade_returns):,} trades, {len(run.ts):,} bars, {args.n:,} simulations each")
        for label, kwargs in (("trades", {"method": "trades"}),
                              ("trades --replace", {"method": "trades", "replace": True}),
                              ("bootstrap", {"method": "bootstrap"}), ("block", {"method": "block"})):
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                mc.simulate(run, args.n, seed=1, **kwargs)
                best = min(best, time.perf_counter() - started)
            print(f"  {label:<17} {best:7.3f} s")


if __name__ == "__main__":
    main()
