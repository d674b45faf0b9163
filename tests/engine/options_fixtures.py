"""A small synthetic NIFTY option chain around one expiry, for the options tests.

Daily bars at 00:00 IST (the engines' daily grid). Prices are made up; the settlement tests work
their expectations out by hand from the underlying's close on the expiry day.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from algocli import BaseStrategy
from algocli.data.history import Bars
from algocli.domain.instrument import Instrument
from algocli.domain.session import ist_midnight_ns

UNDER = "NSE:NIFTY 50"
LOT = 50


def option_name(expiry: date, strike: int, right: str) -> str:
    return f"NSE:NIFTY {expiry:%d} {expiry:%b}".upper() + f" {expiry.year} {strike} {right}"


def option(expiry: date, strike: int, right: str, lot: int = LOT) -> Instrument:
    return Instrument(option_name(expiry, strike, right), exchange="NSE", kind=right, symbol="NIFTY",
                      expiry=expiry, strike=float(strike), lot_size=lot, tick_size=0.05)


def index() -> Instrument:
    return Instrument(UNDER, exchange="NSE", kind="INDEX", symbol="NIFTY 50", tick_size=0.05)


def daily(name: str, first: date, closes: list[float]) -> Bars:
    """Bars whose open is the previous close (the first: its own close), high/low around them."""
    c = np.array(closes, dtype=float)
    o = np.r_[c[0], c[:-1]]
    ts = np.array([ist_midnight_ns(first + timedelta(days=k)) for k in range(len(c))], dtype=np.int64)
    return Bars(name, ts, o, np.maximum(o, c) + 1.0, np.maximum(np.minimum(o, c) - 1.0, 0.05), c,
                np.full(len(c), 1000.0))


def chain(first: date, expiry: date, strikes=(21000, 21100, 21200), days: int = 3,
          under: list[float] | None = None) -> tuple[dict[str, Bars], list[Instrument]]:
    """The underlying's bars (``days`` + 1 days, the last after expiry) and CE/PE bars per strike up to expiry."""
    under = under or [21040.0, 21090.0, 21234.55, 21300.0][: days + 1]
    bars = {UNDER: daily(UNDER, first, under)}
    rows = []
    for strike in strikes:
        for right in ("CE", "PE"):
            inst = option(expiry, strike, right)
            rows.append(inst)
            prem = [max(5.0, (u - strike if right == "CE" else strike - u)) + 40.0 * (days - k) / days
                    for k, u in enumerate(under[:days])]
            bars[inst.hrn] = daily(inst.hrn, first, [round(p * 20) / 20 for p in prem])
    return bars, rows


class BuyAtmCall(BaseStrategy):
    """Buys one lot of the current ATM call on its first candle (for end-to-end runs)."""

    def on_candle(self, candle):
        if candle.index == 0:
            pick = self.context.option(UNDER, expiry="current", strike="ATM", right="CE")
            self.context.buy(pick.name, pick.lot_size)


def write_folder(folder, first: date, expiry: date) -> None:
    """A data folder: the underlying's CSV and instruments.csv, and an ``options/`` folder with the chain."""
    from algocli.instruments.table import write_instruments

    bars, rows = chain(first, expiry)
    (folder / "options").mkdir(parents=True)
    write_instruments(folder / "instruments.csv", [index()])
    write_instruments(folder / "options" / "instruments.csv", rows)
    for name, b in bars.items():
        where = folder if name == UNDER else folder / "options"
        lines = ["timestamp,open,high,low,close,volume"] + [
            f"{np.datetime64(int(t) + 19_800_000_000_000, 'ns').astype('datetime64[D]')},{o},{h},{lo},{c},{v}"
            for t, o, h, lo, c, v in zip(b.ts, b.open, b.high, b.low, b.close, b.volume)]
        (where / (name.replace(":", "_").replace(" ", "_") + ".csv")).write_text("\n".join(lines) + "\n")
