"""Write the SYNTHETIC sample data in this folder. These are not real market prices.

    python data/generate_sample.py                                  # the sample files
    python data/generate_sample.py --minutes 1000000 --out /tmp/x.csv   # one big 1-minute file

Output depends only on the seeds below, never on the clock, so every run writes the same
bytes. Files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TICK = 0.05
BARS_PER_DAY = 375  # NSE cash session 09:15-15:30 IST in 1-minute bars
SESSION_OPEN = pd.Timedelta(hours=9, minutes=15)
HOLIDAYS = ("01-26", "05-01", "08-15", "10-02", "12-25")  # fixed-date NSE holidays
DAILY_START, DAILY_END = "2019-01-01", "2024-12-31"

# file name -> (seed, start price); the ids stand in for HDFC Bank, Infosys and Reliance
DAILY_FILES = {"NSE_EQ_1333.csv": (1370, 700.0), "NSE_EQ_1594.csv": (1626, 650.0)}
MINUTE_FILE = ("NSE_EQ_2885.csv", 2885, 2900.0, "2024-06-10", 5)
# NIFTY 27 JUN 2024 FUT (Dhan id NSE_FNO:53216 in instruments.csv): every F&O session from
# 2024-06-13 to its expiry, a Thursday. Lot 25 units (NSE lot revision effective 2024-04-26),
# tick 0.05; the index stood near 23,400 then. It has a folder of its own, so `algo sandbox`
# replaying data/ keeps replaying the five RELIANCE sessions only.
# (folder, file, seed, start price, first day, expiry, lot)
FUTURES_FILE = ("futures", "NSE_FNO_53216.csv", 2706, 23450.0, "2024-06-13", "2024-06-27", 25)


def trading_days(start: str = DAILY_START, end: str = DAILY_END) -> pd.DatetimeIndex:
    """NSE's trading days between ``start`` and ``end``: the shipped calendar's (holidays out, special
    sessions such as the Saturday of 2024-01-20 in) for the years it covers; weekdays minus the
    fixed-date holidays for the years before it."""
    from algocli.market.calendar import DATA, NseCalendar  # the package, only for this file

    calendar = NseCalendar(user_dir=DATA)  # shipped years only: a user's calendar cannot change the sample
    covered = set(calendar.covered_years)
    days = pd.bdate_range(start, end)
    old = days[~days.strftime("%m-%d").isin(HOLIDAYS) & ~days.year.isin(covered)]
    first, last = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    new = [d for d in calendar.trading_days(first, last) if d.year in covered]
    return old.append(pd.DatetimeIndex(new)).sort_values()


def generate_daily_bars(days: pd.DatetimeIndex, seed: int, start_price: float) -> pd.DataFrame:
    """Daily OHLCV from a geometric random walk whose drift and volatility switch by regime.

    Args:
        days: Session dates.
        seed: Seed for ``numpy.random.default_rng``.
        start_price: Approximate first open.

    Returns:
        Columns ``timestamp`` (``YYYY-MM-DD`` strings), open, high, low, close, volume.
    """
    rng = np.random.default_rng(seed)
    n = len(days)
    drift, vol = _regimes(rng, n)
    # Trending regimes are what give a moving-average crossover something to follow.
    returns = drift + vol * rng.standard_normal(n)
    close = start_price * np.exp(np.cumsum(returns))
    gap = np.exp(rng.normal(0.0, 0.004, n))  # overnight news moves the open off the last close
    open_ = np.concatenate(([start_price], close[:-1])) * gap
    volume = np.rint(rng.lognormal(np.log(4e6), 0.35, n) * (1 + 25 * np.abs(returns)))
    frame = _ohlc_frame(rng, open_, close, 0.35 * vol, volume)
    frame.insert(0, "timestamp", days.strftime("%Y-%m-%d"))
    return frame


def _regimes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-day drift and volatility, constant within regimes lasting 2-6 months."""
    lengths = rng.integers(40, 130, size=n // 40 + 1)
    regime = np.repeat(np.arange(len(lengths)), lengths)[:n]
    # A slight upward bias, as equity indices have had over the long run.
    drifts = rng.choice([-0.002, -0.001, 0.0005, 0.0015, 0.0025], size=len(lengths))
    vols = rng.uniform(0.011, 0.019, size=len(lengths))
    return drifts[regime], vols[regime]


def _ohlc_frame(rng, open_, close, wick_vol, volume) -> pd.DataFrame:
    """Round to the tick and add wicks so high >= max(open, close) and low <= min(open, close)."""
    n = len(close)
    o = np.rint(open_ / TICK).astype(np.int64)
    c = np.rint(close / TICK).astype(np.int64)
    up = np.abs(rng.standard_normal(n)) * wick_vol
    down = np.abs(rng.standard_normal(n)) * wick_vol
    h = np.maximum(np.ceil(np.maximum(open_, close) * np.exp(up) / TICK).astype(np.int64), np.maximum(o, c))
    lo = np.minimum(np.floor(np.minimum(open_, close) * np.exp(-down) / TICK).astype(np.int64),
                    np.minimum(o, c))
    lo = np.maximum(lo, 1)  # prices stay positive however long the walk
    # Integer ticks divided by 20 format exactly to two decimals.
    return pd.DataFrame({"open": o / 20, "high": h / 20, "low": lo / 20, "close": c / 20,
                         "volume": volume.astype(np.int64)})


def generate_minute_bars(n_bars: int, seed: int, start: str = "2020-01-01",
                         start_price: float = 1000.0) -> pd.DataFrame:
    """1-minute bars, 375 per weekday session from 09:15 IST, fully vectorised.

    Args:
        n_bars: Number of bars; the last session may be partial.
        seed: Seed for ``numpy.random.default_rng``.
        start: First session date (moved forward to a weekday).
        start_price: Approximate first open.

    Returns:
        Columns ``timestamp`` (naive ``datetime64`` IST wall clock), open, high, low,
        close, volume.
    """
    rng = np.random.default_rng(seed)
    n_days = -(-n_bars // BARS_PER_DAY)
    days = pd.bdate_range(start, periods=n_days).values
    minute = np.tile(np.arange(BARS_PER_DAY), n_days)[:n_bars]
    ts = days.repeat(BARS_PER_DAY)[:n_bars] + SESSION_OPEN.to_timedelta64() + minute * np.timedelta64(1, "m")
    return _minute_walk(rng, ts, minute, start_price)


def _minute_walk(rng: np.random.Generator, ts: np.ndarray, minute: np.ndarray, start_price: float,
                 daily_vol: float = 0.015, volume_median: float = 8000.0, lot: int = 1) -> pd.DataFrame:
    """OHLCV for the bar starts ``ts``; ``minute`` is each bar's minute of its session (0 = the open).

    Volume is drawn in lots of ``lot`` units (a derivative trades whole lots only). The draws
    come in a fixed order, so the defaults reproduce the equity minute file byte for byte.
    """
    n_bars = len(ts)
    returns = rng.normal(0.0, daily_vol / np.sqrt(BARS_PER_DAY), n_bars)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([start_price], close[:-1]))
    first = minute == 0
    open_[first] *= np.exp(rng.normal(0.0, 0.004, int(first.sum())))  # overnight gap
    # Volume is U-shaped through the session, heavy at the open and the close.
    shape = 1.0 + 2.0 * ((minute - BARS_PER_DAY / 2) / (BARS_PER_DAY / 2)) ** 2
    volume = np.rint(rng.lognormal(np.log(volume_median / lot), 0.5, n_bars) * shape) * lot
    frame = _ohlc_frame(rng, open_, close, 0.0004, volume)
    frame.insert(0, "timestamp", ts)
    return frame


def generate_futures_bars(seed: int, start_price: float, first: str, expiry: str, lot: int) -> pd.DataFrame:
    """1-minute bars of an index future on every F&O session of the NSE calendar, expiry day included.

    Args:
        seed: Seed for ``numpy.random.default_rng``.
        start_price: Approximate first open.
        first: First date (ISO); holidays and weekends are skipped by ``NseCalendar``.
        expiry: The contract's expiry (ISO), the last session written.
        lot: Lot size; every bar's volume is a whole number of lots.

    Returns:
        Columns ``timestamp`` (naive ``datetime64`` IST wall clock), open, high, low, close, volume.
    """
    from algocli.market.calendar import DATA, NseCalendar  # the package, only for this file

    # The shipped calendar only: a user's calendar folder must not change the bytes written.
    calendar = NseCalendar(user_dir=DATA)
    stamps, minutes = [], []
    for day in calendar.trading_days(pd.Timestamp(first).date(), pd.Timestamp(expiry).date(), "FNO"):
        session_minute = 0
        for open_at, close_at in calendar.session(day, "FNO").windows:
            start = pd.Timestamp.combine(day, open_at)
            count = int((pd.Timestamp.combine(day, close_at) - start) / pd.Timedelta(minutes=1))
            stamps.append(pd.date_range(start, periods=count, freq="min").values)
            minutes.append(session_minute + np.arange(count))
            session_minute += count
    rng = np.random.default_rng(seed)
    # An index moves less than one stock: about 0.9 % a day; NIFTY futures trade ~50,000 units a minute.
    return _minute_walk(rng, np.concatenate(stamps), np.concatenate(minutes), start_price,
                        daily_vol=0.009, volume_median=50_000.0, lot=lot)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            frame.to_csv(fh, index=False, float_format="%.2f", lineterminator="\n",
                         date_format="%Y-%m-%d %H:%M:%S")
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; data files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_futures_sample(out_dir: Path) -> Path:
    """Write the NIFTY futures sample (``FUTURES_FILE``) into its folder under ``out_dir``; return its path."""
    folder, name, seed, price, first, expiry, lot = FUTURES_FILE
    path = Path(out_dir) / folder / name
    write_csv(generate_futures_bars(seed, price, first, expiry, lot), path)
    return path


def write_samples(out_dir: Path) -> list[Path]:
    """Write the three sample files into ``out_dir`` and return their paths."""
    out_dir = Path(out_dir)
    written = []
    days = trading_days()
    for name, (seed, price) in DAILY_FILES.items():
        write_csv(generate_daily_bars(days, seed, price), out_dir / name)
        written.append(out_dir / name)
    name, seed, price, start, n_days = MINUTE_FILE
    write_csv(generate_minute_bars(n_days * BARS_PER_DAY, seed, start, price), out_dir / name)
    written.append(out_dir / name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write synthetic (not real) NSE sample bars.")
    parser.add_argument("--minutes", type=int, help="write this many 1-minute bars to --out instead")
    parser.add_argument("--out", type=Path, help="output file for --minutes")
    parser.add_argument("--seed", type=int, default=7, help="seed for --minutes (default 7)")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent,
                        help="folder for the sample files (default: this script's folder)")
    args = parser.parse_args(argv)
    if args.minutes is not None:
        if args.out is None:
            parser.error("--minutes needs --out FILE")
        write_csv(generate_minute_bars(args.minutes, args.seed), args.out)
        print(f"wrote {args.minutes} synthetic 1-minute bars to {args.out}")
        return
    for path in [*write_samples(args.dir), write_futures_sample(args.dir)]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
