"""Run notes a backtest adds when its data made a figure less exact than it looks.

* **Early expiry settlement**: an expiring option or future is settled at its (or its
  underlying's) last bar of the expiry day, which is meant to be the day's close. When the data
  of that day end before the F&O session close (a download taken during the expiry session),
  that price is still the best known, but the note says the settlement is not at the close.
* **Late fills**: a market or limit order fills on its contract's next bar. On sparse data (an
  outer strike with holes, a rolling download) that bar can come long after the next bar of the
  run's timeline; the fill rule stays, and the note says how late such fills were.
"""

from __future__ import annotations

from datetime import time

import numpy as np

from algocli.domain.candle import ns_to_ist
from algocli.domain.session import MINUTE_NS, ist_date

__all__ = ["early_close", "early_settlement", "early_settlement_note", "late_fills_note"]


def early_close(bar_ts: int, interval, cal=None) -> tuple[int, time] | None:
    """``(bar end ns, session close)`` when the bar starting at ``bar_ts`` ends before its day's F&O
    session close (``algocli.market.calendar``: 15:30, 15:40 from 2026-08-03); else None.

    A daily bar, a bar without a known interval or a day the calendar does not trade is never early.
    """
    minutes = getattr(interval, "minutes", None)
    if cal is None:
        from algocli.market.calendar import default_calendar

        cal = default_calendar()
    day = ist_date(int(bar_ts))
    session = cal.session(day, "FNO")
    if not minutes or session is None or minutes >= 375:
        return None
    end = int(bar_ts) + minutes * MINUTE_NS
    return (end, session.close) if end < session.bounds_ns()[1] else None


def early_settlement(contract: str, priced_by: str, bar_ts: int, interval) -> tuple | None:
    """``(contract, priced_by, bar_ts, bar end, session close)`` when a settlement priced by the
    bar starting at ``bar_ts`` of ``priced_by`` would be early (``early_close``), else None; with
    the price added, an entry of ``early_settlement_note``."""
    early = early_close(bar_ts, interval)
    return None if early is None else (contract, priced_by, int(bar_ts), *early)


def early_settlement_note(settled: list[tuple]) -> str | None:
    """One note for the positions settled at a price from before the session close, or None.

    Args:
        settled: ``(contract, priced_by, bar_ts, bar_end, close, price)`` per settled contract.
    """
    if not settled:
        return None
    contract, priced_by, bar_ts, bar_end, close, price = settled[0]
    start, end = ns_to_ist(bar_ts), ns_to_ist(bar_end)
    more = f"; {len(settled) - 1} more contract(s) likewise (tag expiry in fills.csv)" if len(settled) > 1 else ""
    return (f"{contract} was settled at expiry against {priced_by} at {price:,.2f}, the close of its last bar on "
            f"{start:%Y-%m-%d} ({start:%H:%M}-{end:%H:%M}), not at the {close:%H:%M} session close: the data of "
            f"that day end early and nothing later is known{more}")


def late_fills_note(fills, orders, histories: dict, timeline_ts: np.ndarray) -> str | None:
    """One note for fills on a contract's next bar that came after the timeline's next bar, or None.

    A fill counts when it is on the first bar of its contract after the order was placed (the
    contract had no bar in between) and that bar is later than the run's next instant.
    """
    placed = {o.order_id: o for o in orders}
    # immediate fills and the broker's own closes (expiry, square-off, end of data) come at their order's time
    pairs = [(f, o) for f in fills if (o := placed.get(f.order_id)) is not None and f.ts > o.created_ts]
    if not pairs:
        return None
    n = len(timeline_ts)
    due = np.searchsorted(timeline_ts, np.array([o.created_ts for _, o in pairs], dtype=np.int64), side="right")
    due_ts = np.asarray(timeline_ts)[np.minimum(due, n - 1)]
    after = (due < n) & (np.array([f.ts for f, _ in pairs], dtype=np.int64) > due_ts)
    late = []
    for k in np.flatnonzero(after).tolist():  # fills after the next instant: a resting limit, or a wait
        fill, order = pairs[k]
        h = histories[fill.instrument]
        if int(np.searchsorted(h.column("ts")[:h.length], fill.ts)) != order.created_bar + 1:
            continue  # the contract had bars in between: a limit order that waited for its price
        late.append((int(fill.ts) - int(due_ts[k]), fill, order, int(due_ts[k])))
    if not late:
        return None
    worst = max(d for d, *_ in late)
    _, fill, order, due = late[0]
    placed_at, due_at, filled_at = ns_to_ist(order.created_ts), ns_to_ist(due), ns_to_ist(fill.ts)
    return (f"{len(late)} order(s) filled later than the run's next bar because their contract had no bar in "
            f"between (worst {_span(worst)} late); first: {fill.instrument} ordered on the {placed_at:%Y-%m-%d %H:%M} "
            f"bar, due at {due_at:%Y-%m-%d %H:%M}, filled at {filled_at:%Y-%m-%d %H:%M} at {fill.price:,.2f}")


def _span(ns: int) -> str:
    minutes = ns // MINUTE_NS
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min" if mins or not minutes else ""]
    return " ".join(p for p in parts if p)
