"""Write the SYNTHETIC NIFTY option sample in this folder. These are not real market prices.

    python data/options/generate.py

The NIFTY 50 index and the NIFTY 27 JUN 2024 monthly options (strikes 22,800-24,600, every
50) in 15-minute bars, 2024-06-13 to the expiry, built on the futures sample
(``data/futures/NSE_FNO_53216.csv``, the same contract's future) so that the three agree:

* index = future x exp(-r T) with r = 6.5 % and T to the expiry's 15:30 close (ACT/365);
* options = Black-76 on the future with a volatility smile around an ATM volatility that
  wanders between 10 % and 18 %, discounted at r, rounded to the 0.05 tick (at least 0.05);
* volume in whole lots of 25 (the NIFTY lot from 2024-04-26), peaking at the money;
* open interest in lots: call OI walls above the first spot, put OI walls below, then
  build-up or unwinding with each bar's volume (mostly unwinding on expiry day).

Output depends only on ``SEED`` and the futures file, never on the clock: every run writes
the same bytes. ``instruments.csv`` lists the index and every contract (lot 25, tick 0.05,
expiry 2024-06-27; the exchange tokens are illustrative).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FUTURES = HERE.parent / "futures" / "NSE_FNO_53216.csv"
SEED = 2706_27
EXPIRY = "2024-06-27"
EXPIRY_TEXT = "27 JUN 2024"
RATE = 0.065
LOT = 25
TICK = 0.05
STRIKES = np.arange(22_800, 24_601, 50, dtype=np.float64)
FIRST_TOKEN = 71_001  # illustrative exchange tokens: CE = FIRST_TOKEN + 2i, PE = FIRST_TOKEN + 2i + 1
BAR = "15min"
HEADER = "hrn,exchange,kind,symbol,name,expiry,strike,lot_size,tick_size,isin,token,dhan_id,dhan_instrument,upstox_key"
INDEX_ROW = "NSE:NIFTY 50,NSE,INDEX,NIFTY 50,Nifty 50,,,1,0.05,,26000,IDX_I:13,INDEX,NSE_INDEX|Nifty 50"
YEAR_S = 365.0 * 86_400


def bars_15m(path: Path) -> pd.DataFrame:
    """The 1-minute futures bars as 15-minute bars from 09:15 (25 per session)."""
    minute = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")
    out = minute.resample(BAR, origin="start_day", offset="15min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    return out.dropna()


def _ncdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def black76(call: bool, f: np.ndarray, k: np.ndarray, t: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Discounted Black-76 prices (vectorised)."""
    sd = sigma * np.sqrt(t)
    d1 = (np.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    undiscounted = f * _ncdf(d1) - k * _ncdf(d2) if call else k * _ncdf(-d2) - f * _ncdf(-d1)
    return np.exp(-RATE * t) * undiscounted


def _tick(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(x / TICK) * TICK, TICK)


def generate() -> dict[str, pd.DataFrame]:
    """File name → bars: ``IDX_I_13.csv`` and one ``NSE_FNO_<token>.csv`` per contract."""
    rng = np.random.default_rng(SEED)
    fut = bars_15m(FUTURES)
    ts = fut.index
    expiry_close = pd.Timestamp(f"{EXPIRY} 15:30")
    end = ts + pd.Timedelta(BAR)
    t_end = np.maximum(np.asarray((expiry_close - end).total_seconds()) / YEAR_S, 60 / YEAR_S)
    discount = np.exp(-RATE * t_end)
    frames = {"IDX_I_13.csv": pd.DataFrame({c: np.round(fut[c].to_numpy() * discount / TICK) * TICK
                                            for c in ("open", "high", "low", "close")}, index=ts)}
    frames["IDX_I_13.csv"]["volume"] = 0
    atm_vol = np.clip(0.13 + np.cumsum(rng.normal(0.0, 0.004, len(ts))), 0.10, 0.18)
    minute_of_day = np.asarray(ts.hour * 60 + ts.minute - 555)
    ushape = 1.0 + 1.5 * ((minute_of_day - 180) / 180.0) ** 2
    expiry_day = np.asarray(ts.normalize() == pd.Timestamp(EXPIRY))
    s0 = float(fut["open"].iloc[0])
    close = fut["close"].to_numpy()
    for i, strike in enumerate(STRIKES):
        x = np.clip(np.log(strike / close) / (atm_vol * np.sqrt(t_end)), -2.5, 2.5)
        sigma = atm_vol * (1.0 + 0.08 * x * x - 0.06 * x)
        lots = rng.poisson(400.0 * np.exp(-0.5 * (np.log(strike / close) / 0.015) ** 2) * ushape + 2.0)
        for right, wall in (("CE", s0 + 250.0), ("PE", s0 - 250.0)):
            call = right == "CE"
            price = {c: black76(call, fut[c].to_numpy(), strike, t_end, sigma) for c in ("open", "high", "low", "close")}
            if not call:  # a put is dearest at the future's low
                price["high"], price["low"] = price["low"], price["high"]
            side_lots = rng.binomial(lots, 0.5 if call else 0.55)
            oi0 = 120_000.0 * math.exp(-0.5 * ((strike - wall) / 350.0) ** 2) + 2_000.0
            change = np.round(side_lots * np.where(expiry_day, rng.uniform(-0.8, 0.2, len(ts)),
                                                   rng.uniform(-0.35, 0.55, len(ts))))
            oi = np.maximum(np.round(oi0) + np.cumsum(change), 0.0)
            frame = pd.DataFrame({c: _tick(price[c]) for c in ("open", "high", "low", "close")}, index=ts)
            frame["volume"] = side_lots * LOT
            frame["oi"] = oi * LOT
            frames[f"NSE_FNO_{FIRST_TOKEN + 2 * i + (0 if call else 1)}.csv"] = frame
    return frames


def instrument_rows() -> list[str]:
    rows = [HEADER, INDEX_ROW]
    for i, strike in enumerate(STRIKES):
        for offset, right in enumerate(("CE", "PE")):
            token = FIRST_TOKEN + 2 * i + offset
            rows.append(f"NSE:NIFTY {EXPIRY_TEXT} {strike:.0f} {right},NSE,{right},NIFTY,NIFTY,{EXPIRY},"
                        f"{strike:.0f},{LOT},{TICK},,{token},NSE_FNO:{token},OPTIDX,NSE_FO|{token}")
    return rows


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    tmp.replace(path)


def write_all(out_dir: Path = HERE) -> list[Path]:
    """Write every file into ``out_dir``; return their paths."""
    written = []
    for name, frame in generate().items():
        lines = ["timestamp,open,high,low,close,volume" + (",oi" if "oi" in frame else "")]
        for stamp, row in zip(frame.index.strftime("%Y-%m-%d %H:%M:%S"), frame.itertuples(index=False)):
            values = [f"{v:.2f}" for v in row[:4]] + [f"{int(v)}" for v in row[4:]]
            lines.append(f"{stamp}," + ",".join(values))
        path = out_dir / name
        _write(path, "\n".join(lines) + "\n")
        written.append(path)
    path = out_dir / "instruments.csv"
    _write(path, "\n".join(instrument_rows()) + "\n")
    return [*written, path]


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    print(f"wrote {len(write_all(out))} files to {out}")
