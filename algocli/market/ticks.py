"""Lots, ticks and freeze quantities: is an order's quantity and price one the exchange accepts?

**Lots.** A futures or options order (and a currency derivative's) must be a whole number of lots;
the lot belongs to the contract (``Instrument.lot_size``, from the instrument master), since
contracts with the old and the new lot trade side by side after a revision. Equity orders of any
quantity are fine.

**Ticks** (NSE; https://fyers.in/notice-board/tick-size-revision-for-nse-derivatives-cash-segment-effective-april-15-2025):

- Cash market and stock futures, by price band, from 2025-04-15: below 250: 0.01; 250 to 1,000:
  0.05; above 1,000 to 5,000: 0.10; above 5,000 to 10,000: 0.50; above 10,000 to 20,000: 1.00;
  above 20,000: 5.00. Before that, 0.01 below 250 from 2024-06-10 (stock futures from 2024-07-08),
  else 0.05 (https://tradingqna.com/t/tick-size-changed-to-0-01-for-stocks-and-stock-futures-contracts-trading-below-250/166034).
- Index futures by index level, from 2025-04-15: up to 15,000: 0.05; above 15,000 to 30,000: 0.10;
  above 30,000: 0.20; 0.05 before.
- Index options: 0.05. Stock options: 0.05, and 0.01 for underlyings below 250 from 2025-11-03,
  which the option's own price cannot tell: the instrument master's ``tick_size`` is used then.
- BSE, currency and MCX contracts: the instrument master's ``tick_size``.

The exchange sets a stock's band monthly from the last month-end close, not from the order's
price; ``reference_price`` takes that close when the caller knows it (else the price is used, which
differs only for a stock that crossed a band edge during the month).

**Freeze quantity**: the most units one order may carry (``Instrument.freeze_quantity``); a larger
order is split into children none above it, each a whole number of lots
(https://dhanhq.co/docs/v2/orders/#order-slicing slices the same way).
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING

from algocli.domain.session import ist_today

if TYPE_CHECKING:
    from algocli.domain.instrument import Instrument

__all__ = ["INDEX_SYMBOLS", "check_price", "check_quantity", "is_lot_traded", "round_to_tick", "split_quantity",
           "tick_rule", "tick_size"]

#: Underlyings that are indices (their futures tick by index level, their options at 0.05).
INDEX_SYMBOLS = frozenset({"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50", "SENSEX", "BANKEX",
                           "SENSEX50", "INDIA VIX"})
_BANDS_FROM = date(2025, 4, 15)
_PAISA_FROM_EQ = date(2024, 6, 10)
_PAISA_FROM_FUT = date(2024, 7, 8)
_STOCK_OPTION_PAISA_FROM = date(2025, 11, 3)
# (upper bound, upper bound included?, tick): NSE circulars of March 2025, as summarised by Fyers
# (module docstring): "below 250", then "250 - 1,000", "> 1,000 - 5,000" ...
_EQUITY_BANDS = ((250.0, False, 0.01), (1_000.0, True, 0.05), (5_000.0, True, 0.10), (10_000.0, True, 0.50),
                 (20_000.0, True, 1.00), (math.inf, True, 5.00))
_INDEX_BANDS = ((15_000.0, True, 0.05), (30_000.0, True, 0.10), (math.inf, True, 0.20))


def is_lot_traded(instrument: Instrument) -> bool:
    """True for contracts traded in lots: futures, options and currency derivatives."""
    return instrument.kind in ("FUT", "OPT", "CUR")


def _is_index(instrument: Instrument) -> bool:
    if instrument.dhan_instrument:
        return instrument.dhan_instrument.upper().endswith("IDX")
    return instrument.symbol.upper() in INDEX_SYMBOLS


def _band(bands: tuple[tuple[float, bool, float], ...], price: float) -> float:
    for upper, included, tick in bands:
        if price < upper or (included and price == upper):
            return tick
    return bands[-1][2]


def tick_rule(instrument: Instrument, price: float, day: date | None = None,
              reference_price: float | None = None) -> tuple[float, str]:
    """The tick for ``instrument`` at ``price`` on ``day``, and why (for a rejection reason).

    Args:
        instrument: The instrument.
        price: The order's price (the band's reference when ``reference_price`` is None).
        day: The trade date (IST); default today.
        reference_price: The last month-end close that set the band, when known.

    Returns:
        ``(tick in rupees, the rule's description)``.
    """
    day = day or ist_today()
    ref = price if reference_price is None else reference_price
    master = (instrument.tick_size, "the instrument master's tick")
    if instrument.exchange != "NSE":
        return master
    kind = instrument.kind
    if kind == "OPT":
        if _is_index(instrument):
            return 0.05, "NSE index options"
        return master if day >= _STOCK_OPTION_PAISA_FROM else (0.05, "NSE stock options")
    index_future = kind == "FUT" and _is_index(instrument)
    if index_future:
        if day < _BANDS_FROM:
            return 0.05, "NSE index futures before 2025-04-15"
        return _band(_INDEX_BANDS, ref), f"NSE index futures at index level {ref:,.2f} since 2025-04-15"
    if kind not in ("EQ", "FUT"):
        return master
    if day >= _BANDS_FROM:
        return _band(_EQUITY_BANDS, ref), f"NSE price band of {ref:,.2f} since 2025-04-15"
    paisa_from = _PAISA_FROM_EQ if kind == "EQ" else _PAISA_FROM_FUT
    if day >= paisa_from and ref < 250.0:
        return 0.01, f"NSE prices below 250 since {paisa_from}"
    return 0.05, "NSE tick before the price bands"


def tick_size(instrument: Instrument, price: float, day: date | None = None,
              reference_price: float | None = None) -> float:
    """The tick in rupees (see ``tick_rule``)."""
    return tick_rule(instrument, price, day, reference_price)[0]


def _paise(value: float) -> float:
    return round(value * 100.0, 6)


def check_price(instrument: Instrument, price: float, day: date | None = None,
                reference_price: float | None = None) -> str:
    """Why a limit price is off the tick, or "" when it is on it.

    Returns:
        A reason naming the tick and the nearest valid prices, e.g. ``price 1000.03 is not on
        the tick of 0.10 for NSE:INFY (NSE price band ...); use 1000.00 or 1000.10``.
    """
    tick, why = tick_rule(instrument, price, day, reference_price)
    steps = _paise(price) / _paise(tick)
    if abs(steps - round(steps)) < 1e-6:
        return ""
    below, above = math.floor(steps) * tick, math.ceil(steps) * tick
    return (f"price {price:.2f} is not on the tick of {tick:.2f} for {instrument.hrn} ({why}); "
            f"use {below:.2f} or {above:.2f}")


def round_to_tick(instrument: Instrument, price: float, side: object, day: date | None = None,
                  reference_price: float | None = None) -> float:
    """``price`` moved onto the tick against the trader: up for a buy, down for a sell.

    Args:
        instrument: The instrument.
        price: Any price, e.g. a fill price after slippage.
        side: True or ``"BUY"`` (an ``OrderSide``) for a buy; False or ``"SELL"`` for a sell.
        day: The trade date (IST); default today.
        reference_price: The band's month-end close, when known.

    Returns:
        The price on the tick, rounded to the paisa.
    """
    buy = side if isinstance(side, bool) else str(getattr(side, "value", side)).upper() == "BUY"
    tick = tick_size(instrument, price, day, reference_price)
    steps = _paise(price) / _paise(tick)
    near = round(steps)
    if abs(steps - near) < 1e-6:
        steps = near
    else:
        steps = math.ceil(steps) if buy else math.floor(steps)
    return round(steps * _paise(tick) / 100.0, 2)


def check_quantity(instrument: Instrument, quantity: int) -> str:
    """Why ``quantity`` is not tradable, or "" when it is.

    F&O quantities must be a positive whole number of lots; the reason names the lot size and the
    nearest valid quantities. Equity quantities need only be positive.
    """
    if quantity <= 0:
        return f"quantity {quantity} must be positive"
    lot = max(int(instrument.lot_size or 1), 1)
    if not is_lot_traded(instrument) or quantity % lot == 0:
        return ""
    below = quantity // lot * lot
    nearest = f"{below} or {below + lot}" if below else f"{lot}"
    return (f"quantity {quantity} is not a whole number of lots of {lot} for {instrument.hrn}; "
            f"use a multiple of {lot} ({nearest})")


def split_quantity(instrument: Instrument, quantity: int, freeze_quantity: int | None = None) -> list[int]:
    """Child quantities of an order above the freeze quantity: the largest first, none above it.

    Args:
        instrument: The instrument (``freeze_quantity`` and ``lot_size``).
        quantity: The order's quantity (a whole number of lots for F&O).
        freeze_quantity: Overrides the instrument's; None and no instrument value: no split.

    Returns:
        The children's quantities, summing to ``quantity``; ``[quantity]`` when no split is needed.

    Raises:
        ValueError: The freeze quantity is smaller than one lot, so no child could be valid.
    """
    freeze = freeze_quantity if freeze_quantity is not None else instrument.freeze_quantity
    if not freeze or quantity <= freeze:
        return [quantity]
    lot = max(int(instrument.lot_size or 1), 1) if is_lot_traded(instrument) else 1
    largest = freeze // lot * lot
    if largest <= 0:
        raise ValueError(f"{instrument.hrn}: freeze quantity {freeze} is below one lot of {lot}; check the master")
    children = [largest] * (quantity // largest)
    if quantity % largest:
        children.append(quantity % largest)
    return children
