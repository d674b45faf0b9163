"""What charges cost a run: the breakdown by kind, gross against net P&L and the cost drag.

Definitions (the report and the terminal table show these):

- **Net P&L** is what the account made: final equity minus the initial capital, after every charge.
- **Charges** are the sum of every fill's charges (``Fill.commission``), each fill's kinds rounded
  to paise as ``fills.csv`` shows them.
- **Gross P&L** is net P&L plus the charges: what the same trades would have made without them.
- **Cost drag** is the charges in rupees, and as a percent of the gross profit:
  ``charges / gross P&L x 100``. It is defined only when the gross P&L is a profit (above zero);
  100 % or more means the charges ate the whole gross profit, and the run lost money net.
  When the run lost money before charges there is no profit for them to eat, and the percent is
  undefined (shown as "—").

A run is *itemised* when its fills carry charges by kind (``charges: dhan | upstox | PATH``):
statutory kinds besides brokerage, or a fill marked ``estimated``. A flat ``commission_rate``
books everything as brokerage, and such a run shows its commission total as before, without the
breakdown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from algocli.domain.models import CHARGE_FIELDS, Fill

if TYPE_CHECKING:
    from algocli.analytics.result import RunResult

__all__ = ["CHARGE_LABELS", "ChargeSummary", "charge_summary", "cumulative_charges", "is_itemised"]

#: How the report and the terminal name each kind of charge.
CHARGE_LABELS = {
    "brokerage": "Brokerage", "stt": "STT / CTT", "exchange_txn": "Exchange transaction charge",
    "ipft": "IPFT", "sebi": "SEBI turnover fee", "stamp": "Stamp duty", "dp": "DP charges", "gst": "GST",
}


@dataclass(frozen=True, slots=True)
class ChargeSummary:
    """A run's charges and what they did to its P&L (see the module docstring for the definitions).

    Attributes:
        by_kind: Rupees per kind, in ``CHARGE_FIELDS`` order.
        total: All charges, rupees.
        gross_pnl: P&L before charges.
        net_pnl: P&L after charges (final equity minus initial capital).
        drag_pct: Charges as a percent of the gross profit; NaN when the gross P&L is not a profit.
        estimated_fills: Fills whose charges are the cost model's estimate (live), not a contract note.
    """

    by_kind: dict[str, float]
    total: float
    gross_pnl: float
    net_pnl: float
    drag_pct: float
    estimated_fills: int = 0


# What a flat commission leaves at zero (it books all of itself as brokerage).
_ITEMISED = ("estimated", *(kind for kind in CHARGE_FIELDS if kind != "brokerage"))


def is_itemised(fills: Iterable[Fill]) -> bool:
    """Do ``fills`` carry charges by kind (statutory charges, or an estimate), not a flat commission?"""
    fills = fills if isinstance(fills, list) else list(fills)
    # a pass per field: a flat commission's fills are all looked at, and map stays in C
    return any(any(map(attrgetter(name), fills)) for name in _ITEMISED)


def _rupees(values: Iterable[float]) -> float:
    return round(sum(values, 0.0), 2)


def charges_by_kind(fills: Iterable[Fill]) -> tuple[dict[str, float], float]:
    """Each kind of charge summed over ``fills``, and their total, to paise.

    Itemised charges are rounded to paise per fill when they are booked, so these sums equal the
    column sums of ``fills.csv``. A flat commission is booked unrounded (as backtesting.py books
    it): its sums are what the account paid, equal to the ``commissions`` statistic, and
    ``fills.csv`` shows each fill's to paise.
    """
    fills = list(fills)
    by_kind = {kind: _rupees(map(attrgetter(kind), fills)) for kind in CHARGE_FIELDS}
    return by_kind, _rupees(map(attrgetter("commission"), fills))


def charge_summary(result: RunResult) -> ChargeSummary | None:
    """The run's charges by kind, gross and net P&L and the cost drag.

    Args:
        result: The finished run.

    Returns:
        None for a run without itemised charges (a flat commission, or no fills); it shows its
        commission total as the statistics' ``Commissions`` row.
    """
    fills = result.fills
    if not is_itemised(fills):
        return None
    by_kind, total = charges_by_kind(fills)
    net = float(result.equity[-1]) - float(result.initial_capital) if len(result.equity) else 0.0
    gross = net + total
    drag = total / gross * 100.0 if gross > 0 else math.nan
    return ChargeSummary(by_kind, total, gross, net, drag, sum(1 for f in fills if f.estimated))


def cumulative_charges(result: RunResult) -> np.ndarray:
    """Charges booked up to and including each bar of the run's timeline (rupees).

    Args:
        result: The finished run; each fill's ``bar`` indexes the timeline.

    Returns:
        A float array as long as ``result.equity``; ``equity + cumulative_charges`` is the equity
        the run would have had without charges.
    """
    n = len(result.equity)
    if not n or not result.fills:
        return np.zeros(n)
    bars = np.clip(np.fromiter((f.bar for f in result.fills), dtype=np.int64, count=len(result.fills)), 0, n - 1)
    amounts = np.fromiter((f.commission for f in result.fills), dtype=np.float64, count=len(result.fills))
    return np.cumsum(np.bincount(bars, weights=amounts, minlength=n))
