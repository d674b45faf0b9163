"""A square-off the run missed: what was held through it, found at the next IST day's first candle.

``RiskController`` squares off intraday positions at the first candle starting at or after
``risk.square_off``. A run that was stopped before that time and started again on a later day
(or whose candles stopped before it) never sees such a candle on the day itself, so an
INTRADAY position would be carried from day to day. ``missed_square_off`` looks, once per IST
day, at the last NSE session before the candle's day: if its square-off did not run
(``RiskState.square_off_day`` is older) and some intraday position was held through that
session's square-off time, or a working order in an intraday instrument was placed before it,
the controller closes and cancels them on this candle.

"Held through" is what of the position at the missed time was never closed since: the position
then (now, minus the fills booked after the time) followed fill by fill, keeping its smallest
size on the same side. A position closed since (by the broker's own square-off, say) and opened
again, or opened after the time (a daily bar's next-open fill), is not the missed day's. Special sessions keep
the square-off's distance from their close, as the controller's own square-off does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from algocli.domain.models import OrderSide
from algocli.domain.session import SESSION_CLOSE_NS, ist_midnight_ns

if TYPE_CHECKING:
    from algocli.engine.core import EngineCore

MINUTE_NS = 60 * 10**9
_LOOK_BACK_DAYS = 20  # longer than any run of NSE holidays and weekends
OWN_TAGS = ("risk-flatten", "square-off")  # the controller's own orders (``controller._OWN_TAGS``)

__all__ = ["missed_square_off", "previous_session", "special_shift"]


def missed_square_off(core: EngineCore, square_ns: int, done_day: str | None, today: date,
                      intraday: Callable[[str], bool]) -> tuple[str, set[str], dict[tuple[str, str], int]] | None:
    """What a square-off missed before ``today`` leaves to do, or None when nothing.

    Args:
        core: The engine core (ledger, broker orders and fills).
        square_ns: The configured square-off, ns after IST midnight on a regular day.
        done_day: The last IST day whose square-off ran (``YYYY-MM-DD``), or None.
        today: The IST day of the candle being processed.
        intraday: True for an instrument traded under an INTRADAY product.

    Returns:
        ``(missed day, ids of working orders placed before its square-off, {(strategy,
        instrument): signed quantity held through it})``.
    """
    positions = [(key, pos.quantity) for key, pos in core.ledger.positions.items()
                 if pos.quantity and intraday(key[1])]
    orders = [o for o in core.broker.open_orders() if o.tag not in OWN_TAGS and intraday(o.instrument)]
    if not positions and not orders:
        return None  # the common case, and a cheap one: nothing that a square-off would touch
    day = previous_session(today)
    if day is None or (done_day is not None and done_day >= day.isoformat()):
        return None
    at = ist_midnight_ns(day) + square_ns + special_shift(day)
    since: dict[tuple[str, str], list[int]] = {}  # the signed fills after the time, newest first
    for fill in reversed(core.broker.fills):  # booked in time order: stop at the first one before the time
        if fill.ts <= at:
            break
        since.setdefault((fill.strategy_id, fill.instrument), []).append(
            fill.quantity if fill.side is OrderSide.BUY else -fill.quantity)
    amounts = {}
    for key, qty in positions:
        moves = since.get(key, [])[::-1]
        held = kept = qty - sum(moves)  # the position at the time, then the part of it never closed since
        for move in moves:
            held += move
            kept = max(0, min(kept, held)) if kept > 0 else min(0, max(kept, held))
        if kept and (kept > 0) == (qty > 0):
            amounts[key] = kept if abs(kept) < abs(qty) else qty
    stale = {o.order_id for o in orders if o.created_ts <= at}
    if not amounts and not stale:
        return None
    return day.isoformat(), stale, amounts


@functools.lru_cache(maxsize=64)
def previous_session(day: date) -> date | None:
    """The last NSE equity session day before ``day`` (the NSE calendar), or None within the look-back."""
    calendar = _calendar()
    for back in range(1, _LOOK_BACK_DAYS + 1):
        earlier = day - timedelta(days=back)
        if calendar.session(earlier, "EQ") is not None:
            return earlier
    return None


@functools.lru_cache(maxsize=1)
def _calendar():
    from algocli.market.calendar import NseCalendar

    return NseCalendar(on_warning=lambda _: None)  # the feed says which years are not covered


def special_shift(day: date) -> int:
    """How far (ns) a special session's close on ``day`` is from the regular 15:30 close; 0 otherwise."""
    session = _calendar().session(day, "EQ")
    if session is None or not session.special:
        return 0
    close = session.windows[-1][1]
    return (close.hour * 60 + close.minute) * MINUTE_NS - SESSION_CLOSE_NS
