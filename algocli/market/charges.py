"""Indian charges on every fill: brokerage, STT/CTT, exchange, IPFT, SEBI, stamp duty, DP and GST.

``IndianCharges`` is a cost model (``algocli.broker.costs.CostModel``): ``charges(ctx)`` returns the
total in rupees for one fill, and ``breakdown(ctx)`` the same total by kind. The rates come from
the dated tables in ``algocli/market/data`` (see ``algocli.market.tables``), looked up by the fill's
segment, exchange, side and trade date (IST), so a futures sell on 2026-03-31 pays 0.02 % STT and
one on 2026-04-01 pays 0.05 %.

**Segment.** From the instrument: an equity is ``equity_intraday`` or ``equity_delivery`` (below), a
future ``futures``, an option ``options``, a currency derivative ``currency_futures`` or
``currency_options``, an MCX contract ``commodity_futures`` or ``commodity_options``.

**Delivery or intraday is decided by what settles**: brokers net a same-day buy and sell of one
stock as intraday (https://qna.tax/t/capital-gains-or-intraday-classifying-your-market-activity-for-income-tax/7591).
An equity fill under ``INTRADAY`` (``MIS``, ``CO``, ``BO``) is intraday. Under ``CNC`` (or ``MTF``,
or no product) the *charges book* keeps, per instrument and trade date, the quantity bought and
sold that is not yet matched. The part of a fill that matches the other side's unmatched quantity
of the same day is intraday (seller-only STT 0.025 %, stamp 0.003 %); the rest is delivery (STT
0.1 % on both sides, stamp 0.015 %). The first fill cannot know that a later one will square it, so
it is charged as delivery; the fill that squares it books the difference back: the earlier
fill's delivery STT and stamp on the matched quantity are reversed and its intraday ones charged,
in that fill's ``stt`` and ``stamp`` (which can be negative). Over the day the totals equal what
intraday treatment gives. Brokerage follows the product of the order (the broker's brokerage is
per order and not re-priced).

**DP** (the depository's fee when shares leave the demat account) is charged once per instrument
per trade date, on the first fill that sells delivery quantity; if buys of the same day later
match all of that day's delivery sells (nothing leaves the account), it is given back.

**Rounding.** ``rounding="paise"`` (default): each charge of each fill is computed on the unrounded
turnover and rounded half-up to paise on its own; GST is 18 % of the *rounded* brokerage +
exchange + IPFT + SEBI + DP, then rounded ("18% on brokerage + transaction charges + SEBI Turnover + IPFT", Dhan's pricing page,
https://dhan.co/pricing/, as copied at https://stockandcommodity.com/?p=1714).
``rounding="contract_note"`` rounds STT and stamp duty per trade date to the rupee, as contract
notes do ("Stamp Duty and STT are rounded off to the nearest rupee", the same page). A per-day rupee total is attributed back to fills by running
totals: a fill's STT is round(day's unrounded STT after it) - round(day's unrounded STT before it),
so each fill carries whole rupees, the fills of a day add up to the contract note's rounded total,
and no later fill changes an earlier one.

**Brokerage** is per executed order; the calculator is called per fill, so a cap (``min(20,
0.03 %)``) applies per fill. The simulated broker fills each order in one fill, where the two agree.

``charges``: ``dhan`` or ``upstox`` (the shipped broker tables), ``none`` (no charges at all: for
comparisons), or the path of a table of your own, read by the same reader: its rows (typically
``brokerage``, ``dp`` and ``auto_squareoff``; any statutory row too) replace the shipped rows of
the same kind, segment, exchange and side, and every other rate comes from the shipped
statutory table. A table without brokerage rows charges zero brokerage.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from algocli.domain.models import CHARGE_FIELDS
from algocli.domain.session import ist_date
from algocli.errors import ConfigError
from algocli.market.tables import ChargeTable, Row

if TYPE_CHECKING:
    from algocli.broker.costs import CostContext
    from algocli.domain.instrument import Instrument

__all__ = ["BROKERS", "FIELDS", "ROUNDINGS", "Breakdown", "ChargesBook", "IndianCharges", "rupee_paise"]

DATA = Path(__file__).with_name("data")
STATUTORY = DATA / "statutory.csv"
BROKERS = {"dhan": DATA / "brokers" / "dhan.csv", "upstox": DATA / "brokers" / "upstox.csv"}
ROUNDINGS = ("paise", "contract_note")
#: The breakdown's charges, in the order of the artifacts' columns.
FIELDS = CHARGE_FIELDS  # the kinds, in the order of ``Fill``'s fields and ``fills.csv``'s columns
_INTRADAY_PRODUCTS = frozenset({"INTRADAY", "MIS", "I", "CO", "BO"})
_TAXABLE = ("brokerage", "exchange_txn", "ipft", "sebi", "dp")


def rupee_paise(rupees: float) -> int:
    """Rupees to whole paise, half-up (half away from zero, so a reversal mirrors its charge).

    The product is rounded to 6 decimals first so that a tie written in decimal (2.675) is not
    lost to binary floating point (267.49999999999997).
    """
    cents = math.floor(round(abs(rupees) * 100.0, 6) + 0.5)
    return cents if rupees >= 0 else -cents


def _whole_rupees(rupees: float) -> int:
    units = math.floor(round(abs(rupees), 6) + 0.5)
    return units if rupees >= 0 else -units


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One fill's charges by kind, in rupees to the paisa; ``total`` is their sum."""

    brokerage: float = 0.0
    stt: float = 0.0
    exchange_txn: float = 0.0
    ipft: float = 0.0
    sebi: float = 0.0
    stamp: float = 0.0
    dp: float = 0.0
    gst: float = 0.0
    total: float = 0.0

    @classmethod
    def from_paise(cls, paise: dict[str, int]) -> Breakdown:
        return cls(*(paise[f] / 100 for f in FIELDS), total=sum(paise[f] for f in FIELDS) / 100)


ZERO = Breakdown()


class _Day:
    """One instrument's CNC fills on one trade date that settlement has not matched yet."""

    __slots__ = ("buys", "day", "dp_charged", "sells")

    def __init__(self, day: date) -> None:
        self.day = day
        self.buys: deque[list] = deque()  # [quantity, price] charged as delivery, oldest first
        self.sells: deque[list] = deque()
        self.dp_charged = False


class ChargesBook:
    """The small per-day state the charges need: unmatched CNC quantity per instrument and the
    contract-note running totals per trade date. One book per run; ``reset`` empties it."""

    def __init__(self) -> None:
        self.days: dict[str, _Day] = {}
        self.notes: dict[date, list] = {}  # day -> [stt unrounded, stt booked paise, stamp unrounded, stamp booked]

    def reset(self) -> None:
        self.days.clear()
        self.notes.clear()

    def day(self, instrument: str, day: date) -> _Day:
        entry = self.days.get(instrument)
        if entry is None or entry.day != day:
            entry = self.days[instrument] = _Day(day)
        return entry

    def note(self, day: date) -> list:
        entry = self.notes.get(day)
        if entry is None:
            if len(self.notes) > 8:  # fills come in time order: only the last days matter
                for old in sorted(self.notes)[:-4]:
                    del self.notes[old]
            entry = self.notes[day] = [0.0, 0, 0.0, 0]
        return entry


def _pop(queue: deque[list], quantity: int) -> list[tuple[int, float]]:
    """Take ``quantity`` units off the front of ``queue`` (oldest first) as (quantity, price) pieces."""
    pieces = []
    while quantity > 0 and queue:
        head = queue[0]
        take = min(quantity, head[0])
        pieces.append((take, head[1]))
        head[0] -= take
        quantity -= take
        if head[0] == 0:
            queue.popleft()
    return pieces


def _segment(instrument: Instrument) -> str:
    """The charges segment of ``instrument``; ``equity`` still needs delivery or intraday."""
    if instrument.exchange == "MCX":
        return "commodity_options" if instrument.option_type else "commodity_futures"
    kind = instrument.kind
    if kind == "EQ":
        return "equity"
    if kind == "FUT":
        return "futures"
    if kind == "OPT":
        return "options"
    if kind == "CUR":
        return "currency_options" if instrument.option_type else "currency_futures"
    raise ValueError(f"{instrument.hrn}: an {kind} is not tradable, so it has no charges")


class IndianCharges:
    """The Indian charges cost model (``algocli.cost_models`` entry point ``indian``).

    Args:
        charges: ``dhan``, ``upstox``, ``none`` or the path of a table of your own (see the module
            docstring).
        rounding: ``paise`` (each charge of each fill to the paisa) or ``contract_note`` (STT and
            stamp duty per trade date to the rupee).
        on_warning: Called with a one-line message, once per rate, when a fill's date is outside
            the dates a table covers. Default: log a warning.

    Raises:
        ConfigError: ``charges`` or ``rounding`` is not one of the values above.
        DataError: A table cannot be read or has an invalid row (file, row, field and fix).
    """

    def __init__(self, charges: str | Path = "dhan", *, rounding: str = "paise",
                 on_warning: Callable[[str], None] | None = None) -> None:
        if rounding not in ROUNDINGS:
            raise ConfigError(f"rounding: {rounding!r} is not one of {', '.join(ROUNDINGS)}")
        self.name = str(charges)
        self.rounding = rounding
        self.book = ChargesBook()
        self._none = self.name == "none"
        key = self.name.lower()
        if key in BROKERS:
            files, shipped = [STATUTORY, BROKERS[key]], 2
        elif self._none:
            files, shipped = [], 0
        elif Path(self.name).suffix.lower() == ".csv" or Path(self.name).exists():
            files, shipped = [STATUTORY, Path(self.name)], 1
        else:
            raise ConfigError(f"charges: {self.name!r} is not dhan, upstox, none or a CSV table of your own; "
                              "use one of them (see algocli/market/tables.py for the table's columns)")
        self.table = ChargeTable.from_files(files, on_warning=on_warning, shipped=shipped)
        self._cache: dict[tuple, Row | None] = {}

    def reset(self) -> None:
        """Forget the per-day state (start of a new run)."""
        self.book.reset()

    def charges(self, ctx: CostContext) -> float:
        """The fill's total charges in rupees (the ``CostModel`` protocol)."""
        return self.breakdown(ctx).total

    def _row(self, kind: str, segment: str, exchange: str, side: str, symbol: str, day: date) -> Row | None:
        key = (kind, segment, exchange, side, symbol, day)
        try:
            return self._cache[key]
        except KeyError:
            if len(self._cache) > 200_000:
                self._cache.clear()
            row = self._cache[key] = self.table.lookup(kind, segment, exchange, side, symbol, day)
            return row

    def _amount(self, kind: str, segment: str, inst: Instrument, side: str, day: date, turnover: float) -> float:
        row = self._row(kind, segment, inst.exchange, side, inst.symbol, day)
        return 0.0 if row is None else row.amount(turnover)

    def breakdown(self, ctx: CostContext) -> Breakdown:
        """One fill's charges by kind.

        Args:
            ctx: The fill: instrument, product, side, quantity, price and time (UTC ns).

        Returns:
            The charges in rupees to the paisa; ``total`` is their sum. CNC equity fills update the
            charges book, so call it once per fill, in time order.
        """
        if self._none or ctx.quantity == 0:
            return ZERO
        inst = ctx.instrument
        day = ist_date(ctx.ts)
        side = "buy" if ctx.buy else "sell"
        turnover = ctx.quantity * ctx.price
        segment = _segment(inst)
        paise = dict.fromkeys(FIELDS, 0)
        if segment == "equity":
            intraday = (ctx.product or "").upper() in _INTRADAY_PRODUCTS
            segment = "equity_intraday" if intraday else "equity_delivery"
            if intraday:
                stt = self._amount("stt", segment, inst, side, day, turnover)
                stamp = self._amount("stamp", segment, inst, side, day, turnover)
                paise["stt"], paise["stamp"] = rupee_paise(stt), rupee_paise(stamp)
            else:
                stt, stamp = self._settle(ctx, inst, day, side, paise)
        else:
            tax = "ctt" if segment.startswith("commodity") else "stt"
            stt = self._amount(tax, segment, inst, side, day, turnover)
            stamp = self._amount("stamp", segment, inst, side, day, turnover)
            paise["stt"], paise["stamp"] = rupee_paise(stt), rupee_paise(stamp)
        for kind in ("brokerage", "exchange_txn", "ipft", "sebi"):
            paise[kind] = rupee_paise(self._amount(kind, segment, inst, side, day, turnover))
        if self.rounding == "contract_note":
            self._contract_note(day, stt, stamp, paise)
        gst = self._row("gst", segment, inst.exchange, side, inst.symbol, day)
        if gst is not None:
            taxable = sum(paise[k] for k in _TAXABLE)
            paise["gst"] = rupee_paise(gst.amount(taxable) / 100)
        return Breakdown.from_paise(paise)

    def _settle(self, ctx: CostContext, inst: Instrument, day: date, side: str, paise: dict) -> tuple[float, float]:
        """STT, stamp and DP of a CNC equity fill, by what settles (see the module docstring).

        Fills ``paise["stt"]``, ``paise["stamp"]`` and ``paise["dp"]``, and returns the fill's
        unrounded STT and stamp (for contract-note rounding).
        """
        entry = self.book.day(inst.hrn, day)
        buy = side == "buy"
        mine, other = (entry.buys, entry.sells) if buy else (entry.sells, entry.buys)
        other_side = "sell" if buy else "buy"
        matched = _pop(other, ctx.quantity)
        intra = sum(q for q, _ in matched)
        own = {"stt": 0.0, "stamp": 0.0}
        adjust = {"stt": 0.0, "stamp": 0.0}
        for kind in own:
            own[kind] = (self._amount(kind, "equity_intraday", inst, side, day, intra * ctx.price)
                         + self._amount(kind, "equity_delivery", inst, side, day, (ctx.quantity - intra) * ctx.price))
            paise[kind] = rupee_paise(own[kind])
            for qty, price in matched:  # the earlier fill's delivery charge becomes intraday
                back = -self._amount(kind, "equity_delivery", inst, other_side, day, qty * price)
                now = self._amount(kind, "equity_intraday", inst, other_side, day, qty * price)
                adjust[kind] += back + now
                paise[kind] += rupee_paise(back) + rupee_paise(now)
        if ctx.quantity > intra:
            mine.append([ctx.quantity - intra, ctx.price])
        dp = self._row("dp", "equity_delivery", inst.exchange, "sell", inst.symbol, day)
        if dp is not None:
            if not buy and ctx.quantity > intra and not entry.dp_charged:
                entry.dp_charged = True
                paise["dp"] = rupee_paise(dp.amount(0.0))
            elif buy and entry.dp_charged and not entry.sells:
                entry.dp_charged = False  # the day's delivery sells were all bought back: nothing left the account
                paise["dp"] = -rupee_paise(dp.amount(0.0))
        return own["stt"] + adjust["stt"], own["stamp"] + adjust["stamp"]

    def _contract_note(self, day: date, stt: float, stamp: float, paise: dict) -> None:
        """Replace the fill's STT and stamp by its share of the day's rupee-rounded totals."""
        note = self.book.note(day)
        note[0] += stt
        paise["stt"] = _whole_rupees(note[0]) * 100 - note[1]
        note[1] += paise["stt"]
        note[2] += stamp
        paise["stamp"] = _whole_rupees(note[2]) * 100 - note[3]
        note[3] += paise["stamp"]

    def exercise_stt(self, instrument: Instrument, quantity: int, intrinsic: float, ts: int) -> float:
        """STT on an option that expires in the money, paid by its holder on the intrinsic value.

        Args:
            instrument: The option.
            quantity: Units exercised.
            intrinsic: Intrinsic value per unit at expiry (settlement price minus strike for a call).
            ts: Expiry time (UTC ns); its IST date picks the rate (0.125 %, 0.15 % from 2026-04-01).

        Returns:
            The STT in rupees to the paisa; 0 for an option out of the money.
        """
        if self._none or intrinsic <= 0:
            return 0.0
        return rupee_paise(self._amount("stt_exercise", _segment(instrument), instrument, "buy", ist_date(ts),
                                        quantity * intrinsic)) / 100

    def squareoff_fee(self, instrument: Instrument, ts: int) -> Breakdown:
        """The broker's fee for an order it squares off itself (MIS auto square-off), plus GST.

        Booked as ``brokerage`` (a broker's charge that GST applies to); add it to the square-off
        fill's charges. Zero when the table has no ``auto_squareoff`` row.
        """
        if self._none:
            return ZERO
        day = ist_date(ts)
        segment = _segment(instrument)
        segment = "equity_intraday" if segment == "equity" else segment
        paise = dict.fromkeys(FIELDS, 0)
        paise["brokerage"] = rupee_paise(self._amount("auto_squareoff", segment, instrument, "sell", day, 0.0))
        gst = self._row("gst", segment, instrument.exchange, "sell", instrument.symbol, day)
        if gst is not None:
            paise["gst"] = rupee_paise(gst.amount(paise["brokerage"]) / 100)
        return Breakdown.from_paise(paise)
