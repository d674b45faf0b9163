"""Product rules: the broker's INTRADAY (MIS) square-off and the margin each position blocks.

**Square-off.** A broker closes every open INTRADAY position of a segment at its own time of
day, with a market order and a fee (``IndianCharges.squareoff_fee``). The times per broker and
segment (equity, fno, currency, commodity) ship in ``data/squareoff.csv`` with their sources
(Dhan 15:20/15:20, Upstox 15:15/15:20, Zerodha 15:20/15:25). After that time the broker takes no
INTRADAY order that opens or adds to a position; orders that reduce one still go.

On bars, the square-off happens at the first bar of the day that starts at or after the time,
at its open (the broker's market order at that time; in paper: the first tick at or after it).
A day with no such bar (bars too coarse, e.g. daily bars or a 25-minute bar from 15:05, or data
that stop earlier) is squared off at the close of its last bar, the first price known after the
time. So an INTRADAY position on daily bars lives from the open it was bought at to that day's
close: MIS is never carried overnight.

**Margin.** A position blocks a share of its notional (``data/margin.csv``): INTRADAY equity 20 %
(SEBI's peak-margin rules: at most 5x), CNC equity 100 %, futures 15 % of price x quantity, a short
option 15 % of strike x quantity, a bought option its whole premium. Available margin is equity
(cash plus positions at the last price) minus what the open positions block; an order that opens
exposure needs its own margin plus its charges out of it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from algocli.errors import ConfigError

if TYPE_CHECKING:
    from algocli.domain.instrument import Instrument

__all__ = ["AUTO_SQUAREOFF_TAG", "GROUPS", "INTRADAY_PRODUCTS", "MARGIN_KINDS", "ProductRules", "expiry_bar", "segment_group",
           "squareoff_bars"]

DATA = Path(__file__).with_name("data")
#: Segments with a square-off time of their own.
GROUPS = ("equity", "fno", "currency", "commodity")
#: What a position's margin is a percent of, per kind (``data/margin.csv``).
MARGIN_KINDS = ("equity_intraday", "equity_delivery", "futures", "options_short", "currency", "commodity")
#: Products the broker squares off the same day (Dhan ``INTRADAY``, Upstox ``I``; ``MIS``/``CO``/``BO``
#: are the same product under other brokers' names).
INTRADAY_PRODUCTS = frozenset({"INTRADAY", "MIS", "I", "CO", "BO"})
#: The tag of the orders a broker's INTRADAY square-off closes positions with (simulated and real).
AUTO_SQUAREOFF_TAG = "auto-squareoff"
_IST_NS = 19_800_000_000_000
_DAY_NS = 86_400 * 10**9
_MINUTE_NS = 60 * 10**9


def segment_group(instrument: Instrument) -> str:
    """``equity``, ``fno``, ``currency`` or ``commodity``: the square-off segment of ``instrument``."""
    if instrument.exchange == "MCX":
        return "commodity"
    if instrument.kind == "CUR":
        return "currency"
    return "fno" if instrument.is_derivative else "equity"


def minutes_of(text: str, where: str = "squareoff") -> int:
    """``HH:MM`` (IST) as minutes after midnight.

    Raises:
        ConfigError: Not a time of day.
    """
    try:
        hh, mm = str(text).strip().split(":")
        h, m = int(hh), int(mm)
        if not (0 <= h < 24 and 0 <= m < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a time of day; write HH:MM in IST, e.g. \"15:15\"") from None
    return h * 60 + m


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def squareoff_table() -> dict[str, dict[str, int]]:
    """Shipped square-off minutes: broker -> segment group -> minutes after IST midnight."""
    out: dict[str, dict[str, int]] = {}
    for row in _rows("squareoff.csv"):
        out.setdefault(row["broker"], {})[row["segment"]] = minutes_of(row["time"], "squareoff.csv")
    return out


@lru_cache(maxsize=1)
def margin_table() -> dict[str, float]:
    """Shipped margin percentages of notional, by kind (``MARGIN_KINDS``)."""
    return {row["kind"]: float(row["percent"]) for row in _rows("margin.csv")}


@dataclass(frozen=True)
class ProductRules:
    """A run's square-off times and margin rates (see the module docstring).

    Attributes:
        broker: Whose square-off times are the defaults (``dhan``, ``upstox``, ``zerodha``).
        squareoff: Segment group -> minutes after IST midnight; a group without one is never
            squared off.
        margin: Kind -> percent of notional.
    """

    broker: str = "dhan"
    squareoff: dict[str, int] = field(default_factory=dict)
    margin: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, broker: str = "dhan", squareoff: str | dict[str, str] | None = None,
              margin: dict[str, float] | None = None) -> ProductRules:
        """Rules from the shipped tables, with a run's overrides.

        Args:
            broker: Whose square-off times apply (an unknown broker gets Dhan's).
            squareoff: None (the broker's times), ``off`` (no square-off), a broker name, one
                ``HH:MM`` for every segment, or ``{equity|fno|currency|commodity: HH:MM}`` over
                the broker's times.
            margin: ``{kind: percent}`` over the shipped percentages (``MARGIN_KINDS``).

        Raises:
            ConfigError: An unknown segment or kind, a bad time, a percent outside (0, 100].
        """
        table = squareoff_table()
        broker = broker if broker in table else "dhan"
        times = dict(table[broker])
        if isinstance(squareoff, str):
            key = squareoff.strip().lower()
            if key == "off":
                times = {}
            elif key in table:
                broker, times = key, dict(table[key])
            else:
                times = dict.fromkeys(GROUPS, minutes_of(squareoff, "broker.squareoff"))
        elif squareoff:
            for group, text in squareoff.items():
                if group not in GROUPS:
                    raise ConfigError(f"broker.squareoff.{group}: unknown segment; use {', '.join(GROUPS)}")
                times[group] = minutes_of(text, f"broker.squareoff.{group}")
        rates = dict(margin_table())
        for kind, pct in (margin or {}).items():
            if kind not in MARGIN_KINDS:
                raise ConfigError(f"broker.margin.{kind}: unknown kind; use {', '.join(MARGIN_KINDS)}")
            if not 0 < float(pct) <= 100:
                raise ConfigError(f"broker.margin.{kind}: {pct} is not a percent in (0, 100]; e.g. 20 for 5x")
            rates[kind] = float(pct)
        return cls(broker, times, rates)

    def squareoff_minute(self, instrument: Instrument, product: str | None) -> int | None:
        """Minutes after IST midnight at which ``instrument`` under ``product`` is squared off, or None."""
        if (product or "").upper() not in INTRADAY_PRODUCTS:
            return None
        return self.squareoff.get(segment_group(instrument))

    def margin_basis(self, instrument: Instrument, product: str | None, short: bool,
                     price: float) -> tuple[float, str, float]:
        """(percent, what it is of, the per-unit notional) for a position in ``instrument``.

        A bought option (and anything without a kind of its own) blocks 100 % of its price.
        """
        kind = instrument.kind
        if instrument.exchange == "MCX":
            key = "commodity"
        elif kind == "CUR":
            key = "currency"
        elif kind == "FUT":
            key = "futures"
        elif kind == "OPT":
            if not short:
                return 100.0, "premium", price
            strike = instrument.strike or price
            return self.margin["options_short"], "strike notional", strike
        elif (product or "").upper() in INTRADAY_PRODUCTS:
            key = "equity_intraday"
        else:
            key = "equity_delivery"
        return self.margin[key], "notional", price

    def blocked(self, instrument: Instrument, product: str | None, signed_qty: int, price: float) -> float:
        """Rupees a position of ``signed_qty`` at ``price`` blocks."""
        if not signed_qty:
            return 0.0
        pct, _, unit = self.margin_basis(instrument, product, signed_qty < 0, price)
        return abs(signed_qty) * unit * pct / 100.0


def squareoff_bars(ts: np.ndarray, minute: int) -> list[tuple[int, bool, int]]:
    """Where a day's square-off falls in bars starting at ``ts`` (UTC ns, ascending).

    Returns:
        Per IST day with bars, ``(bar, at_open, fill_ts)``: the first bar starting at or after
        the time, at its open; or, when there is none, the day's last bar, at its close, with
        ``fill_ts`` the square-off time.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if not len(ts):
        return []
    local = ts + _IST_NS
    days = local // _DAY_NS
    due = days * _DAY_NS + minute * _MINUTE_NS  # the square-off instant of each bar's day, local
    firsts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    ends = np.r_[firsts[1:], len(ts)]
    out = []
    for a, b in zip(firsts.tolist(), ends.tolist()):
        k = a + int(np.searchsorted(local[a:b], due[a]))
        if k < b:
            out.append((k, True, int(ts[k])))
        else:
            out.append((b - 1, False, int(due[a] - _IST_NS)))
    return out


def expiry_bar(ts: np.ndarray, expiry: date) -> int | None:
    """The bar whose close settles a future expiring on ``expiry``: the last bar of that IST date
    (or of the last trading day before it, when the data go on past it); None if the data end earlier."""
    ts = np.asarray(ts, dtype=np.int64)
    day = np.int64((np.datetime64(expiry, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64))
    days = (ts + _IST_NS) // _DAY_NS
    k = int(np.searchsorted(days, day, side="right")) - 1
    if k < 0 or (days[k] != day and k == len(ts) - 1):
        return None
    return k
