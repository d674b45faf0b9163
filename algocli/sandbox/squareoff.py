"""The brokers' INTRADAY auto square-off on the sandbox's exchange.

Dhan and Upstox close every INTRADAY position still open shortly before the close with a
market order of their own (and charge a fee for it):

* Dhan: NSE/BSE cash and derivatives at 15:20 IST, currency at 16:45, commodity 23:15
  (https://knowledge.dhan.co/support/solutions/articles/82000832236);
* Upstox: equity at 15:15, F&O at 15:20, currency at 16:30, commodity 40 minutes before
  the close (https://help.upstox.com/support/solutions/articles/248671).

The times are the shipped table ``algocli/market/data/squareoff.csv`` (``ProductRules``), per
venue: the Dhan protocol's accounts follow Dhan's times, the Upstox protocol's Upstox's. A
special session (Muhurat) keeps the time's distance from its close, as ``risk.square_off`` does.

On the exchange clock (the replayed ticks), at the first tick of an instrument at or after its
square-off time, for every account of each venue: working INTRADAY orders in the instrument are
cancelled, and the account's INTRADAY net position in it (its INTRADAY trades, buys minus sells)
is closed by a MARKET order placed by the "broker": no client id (Dhan's ``correlationId`` and
Upstox's ``tag`` are empty), product INTRADAY. It goes in before the tick is matched, so it fills
at that tick's price. Brokers place these as market orders and cancel pending intraday orders
first (https://support.geojit.com/support/solutions/articles/89000007438 describes the usual
procedure; Dhan's and Upstox's pages above give only the times). The order and its trade show in
the venue's order, trade and position endpoints and on its order-update streams like any other.

A replay that jumps over the time (its data stop earlier that day) squares off at the
instrument's next tick, a later day's. The sandbox neither charges the fee nor refuses new
INTRADAY orders after the time; an INTRADAY position opened after it is squared off at the next
session's time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING

from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.session import DAY_NS, MINUTE_NS, ist_date, ist_midnight_ns
from algocli.market.products import INTRADAY_PRODUCTS, ProductRules

if TYPE_CHECKING:
    from algocli.sandbox.exchange import Exchange, SimOrder

__all__ = ["AUTO_SQUAREOFF_REASON", "AutoSquareOff", "BROKER_VENUES", "group_of_id"]

_log = logging.getLogger(__name__)

BROKER_VENUES = ("dhan", "upstox")  # the order servers' venues (``OrderServer.VENUE``), named after their broker
AUTO_SQUAREOFF_REASON = "auto square-off of INTRADAY positions by the broker"

# Dhan's segment names (the sandbox's instrument ids) and Upstox's (its instrument keys) → square-off group
_GROUPS = {"NSE_EQ": "equity", "BSE_EQ": "equity",
           "NSE_FNO": "fno", "BSE_FNO": "fno", "NSE_FO": "fno", "BSE_FO": "fno",
           "NSE_CURRENCY": "currency", "BSE_CURRENCY": "currency", "NCD_FO": "currency", "BCD_FO": "currency",
           "MCX_COMM": "commodity", "MCX_FO": "commodity", "NSE_COM": "commodity"}


def group_of_id(instrument: str) -> str | None:
    """``NSE_EQ:2885`` → ``equity``: the square-off group of a sandbox instrument id (None: an index),
    read from its segment as ``market.products.segment_group`` reads an ``Instrument``'s metadata."""
    return _GROUPS.get(instrument.partition(":")[0].partition("|")[0])


def broker_rules() -> dict[str, ProductRules]:
    """Each broker venue's square-off times (the shipped table)."""
    return {venue: ProductRules.build(venue) for venue in BROKER_VENUES}


class AutoSquareOff:
    """Squares off the INTRADAY positions of every account of each venue at its broker's time.

    Args:
        exchange: The matching engine whose accounts it closes.
        rules: Venue → its broker's ``ProductRules``; a venue not named is never squared off.

    Attributes:
        orders: Every square-off order placed, oldest first.
    """

    def __init__(self, exchange: Exchange, rules: Mapping[str, ProductRules]) -> None:
        self.exchange = exchange
        self.rules = dict(rules)
        self.orders: list[SimOrder] = []
        self._due: dict[str, int] = {}  # instrument -> the next instant some venue squares it off
        self._next: dict[tuple[str, str], int] = {}  # (venue, instrument) -> its next square-off instant

    def on_tick(self, instrument: str, ts: int) -> None:
        """A tick of ``instrument`` at exchange time ``ts``, before it is matched."""
        due = self._due.get(instrument)
        if due is None:
            self._schedule(instrument, ts, first=True)
        elif ts >= due:
            for venue in self.rules:
                at = self._next.get((venue, instrument))
                if at is not None and ts >= at:
                    self._square_off(venue, instrument, at)
            self._schedule(instrument, ts)

    # --- when --------------------------------------------------------------------------------

    def _schedule(self, instrument: str, ts: int, first: bool = False) -> None:
        """The next square-off instant of each venue for ``instrument`` after ``ts``.

        The first tick of an instrument schedules today's time if it is still ahead, else the
        next session's: nothing can be held before the first price.
        """
        group = group_of_id(instrument)
        today = ist_date(ts)
        dues = []
        for venue, rules in self.rules.items():
            minute = rules.squareoff.get(group) if group is not None else None
            if minute is None:
                continue
            at = _instant(today, minute)
            if ts >= at:
                at = _instant(_next_session(today), minute)
            self._next[(venue, instrument)] = at
            dues.append(at)
        self._due[instrument] = min(dues) if dues else 1 << 62

    # --- what --------------------------------------------------------------------------------

    def _square_off(self, venue: str, instrument: str, at: int) -> None:
        exchange = self.exchange
        for account in list(exchange._venues.get(venue, {}).values()):
            for order in list(account.orders.values()):
                if (order.is_open and order.instrument == instrument and order.product in INTRADAY_PRODUCTS
                        and order not in self.orders):
                    exchange._close(order, "CANCELLED", "cancelled by the broker's INTRADAY auto square-off")
            net = intraday_net(account, instrument)
            if not net:
                continue
            order = exchange.place_internal(account.account_id, venue=venue, instrument=instrument,
                                            side="SELL" if net > 0 else "BUY", quantity=abs(net),
                                            product="INTRADAY", reason=AUTO_SQUAREOFF_REASON)
            self.orders.append(order)
            _log.info("%s auto square-off (%s IST): account %s %s %d %s", venue, _hhmm(at), account.account_id,
                      order.side, order.quantity, instrument)


def intraday_net(account, instrument: str) -> int:
    """The account's INTRADAY net position in ``instrument``: its INTRADAY trades, buys minus sells."""
    net = 0
    orders = account.orders
    for trade in account.trades:
        if trade.instrument == instrument and orders[trade.order_id].product in INTRADAY_PRODUCTS:
            net += trade.quantity if trade.side == "BUY" else -trade.quantity
    return net


def _instant(day: date, minute: int) -> int:
    """UTC ns of ``minute`` after IST midnight on ``day``, kept at its distance from a special session's close."""
    from algocli.risk.catchup import special_shift

    return ist_midnight_ns(day) + minute * MINUTE_NS + special_shift(day)


def _next_session(day: date) -> date:
    """The next NSE session day after ``day`` (the next day when the calendar knows none within 20 days)."""
    from algocli.market.calendar import default_calendar

    calendar = default_calendar()
    for ahead in range(1, 21):
        later = day + timedelta(days=ahead)
        if calendar.session(later, "EQ") is not None:
            return later
    return day + timedelta(days=1)


def _hhmm(ns: int) -> str:
    minutes = (ns + IST_OFFSET_NS) % DAY_NS // MINUTE_NS
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
