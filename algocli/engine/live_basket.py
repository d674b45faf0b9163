"""Baskets in live runs: every leg checked before any is sent, then placed, and never left in part.

A real broker has no atomic basket: its legs are separate orders. So ``submit_basket``:

1. creates every leg's order (journaled) and checks each as a single live order is checked
   (``LiveRouter._plan``: lots, ticks, the product's shorts, the freeze quantity). A leg that
   fails rejects the whole basket, the reason naming the leg; nothing is sent. Risk limits were
   checked before (``StrategyContext.basket``);
2. journals the basket (``basket``: its tag and legs) and every leg's client id before anything
   is sent, so a restart finds the legs by client id and never sends one again;
3. reads the broker's available funds (``get_balance``) and checks the margin and charges of
   all the legs at once against them (``algocli.broker.basket.basket_need``); short of funds,
   every leg is REJECTED and nothing is sent;
4. sends the legs one after the other, buys first (``algocli.broker.basket.send_order``: the
   hedge before the short it hedges needs less margin), and stops at a leg the broker refuses.

Then it watches the legs. A leg that ends unfilled without the strategy cancelling it (the
broker's risk check rejected it, the exchange expired or cancelled it) fails the basket: the
legs not sent are not sent, those still working are cancelled, and once they are all final
what the legs filled is flattened with market orders tagged ``<tag>-unwind``, per instrument.
Every leg's reason in orders.csv says so, and a warning goes to the operator's screen (and
the log): a basket is never left standing in part.

After a restart (``resume_baskets``) a basket whose failure was journaled (``basket_failed``)
or which has a REJECTED leg (refused, or journaled but never sent before the crash) is unwound
for what its legs filled beyond the unwind orders already placed; a basket still working is
watched again. A leg CANCELLED before the restart counts as the strategy's cancel (the journal
does not say who cancelled it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from algocli.broker.basket import BasketLeg, basket_need, describe_leg, send_order, unwind_tag
from algocli.domain.models import Order, OrderSide, OrderStatus, Signal, SignalAction
from algocli.persistence.journal import crash_point

if TYPE_CHECKING:
    from algocli.engine.live import LiveRouter

__all__ = ["LiveBasket", "resume_baskets", "submit_basket"]

log = logging.getLogger(__name__)

WATCH_S = 0.05  # how often a basket in flight looks at its legs (no I/O: the router's own state)
SETTLE_S = 30.0  # how long cancels of a failed basket's legs may take before its fills are flattened anyway
UNWIND_S = 60.0  # how long the unwind orders may take to fill before the operator is told they did not
_EPS = 1e-6
_UNFILLED_END = (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELLED)


def submit_basket(router: LiveRouter, strategy_id: str, signals: list[Signal], ts: int, timeline_bar: int,
                  tag: str) -> list[Order]:
    """Check the legs together and start placing them (see the module docstring); ``LiveRouter.submit_basket``.

    Args:
        router: The live router.
        strategy_id: The strategy placing the basket.
        signals: The legs, in the strategy's order (each tagged ``tag``).
        ts: The time of the bar that placed it (UTC ns).
        timeline_bar: The run's timeline position (unused live: legs are matched by the broker).
        tag: The basket's common tag.

    Returns:
        The legs' orders in the strategy's order: REJECTED at once when a leg fails a check,
        else PENDING while the funds are checked and the legs sent.
    """
    orders = []
    for signal in signals:
        h = router.histories.get(signal.instrument)
        orders.append(router.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1))
    plans, quotes, reason = [], [], ""
    for k, order in enumerate(orders, 1):
        plan = router._plan(order, ts)
        price = order.limit_price if order.limit_price is not None else _last_close(router, order.instrument)
        if isinstance(plan, str):
            reason = f"{describe_leg(k, order)}: {plan}"
        elif price is None:
            reason = (f"{describe_leg(k, order)}: no price yet to check its margin against; place it from its "
                      "first bar on")
        if reason:
            break
        plans.append(plan)
        quotes.append(BasketLeg(order.instrument, router._instrument(order.instrument), plan[0].request.product,
                                order.side is OrderSide.BUY, order.quantity, price, ts))
    if reason:
        for order in orders:
            router.book.set_status(order, OrderStatus.REJECTED, f"basket {tag}: {reason}; no leg was placed", ts)
        return orders
    send = send_order(orders)
    router.journal.append("basket", tag=tag, strategy_id=strategy_id, orders=[o.order_id for o in orders], send=send)
    for plan in plans:
        router._journal_plan(plan)
    crash_point("after_basket_journal")
    for order, plan in zip(orders, plans):
        router._track(order, plan)
    basket = LiveBasket(router, strategy_id, tag, orders, send)
    router._spawn(basket.place([quotes[k] for k in send]))
    return orders


def _last_close(router: LiveRouter, instrument: str) -> float | None:
    h = router.histories.get(instrument)
    return float(h.close_mv[h.cursor]) if h is not None and h.cursor >= 0 else None


@dataclass
class LiveBasket:
    """One basket of a live run, from its funds check until its legs (or its unwind) are final.

    Attributes:
        router: The live router its legs go through.
        strategy_id: The strategy that placed it.
        tag: Its common tag.
        orders: The legs' orders, in the strategy's order (``leg k`` counts in it).
        send: Indices of ``orders`` in the order they are sent.
        resumed: Restored after a restart (a CANCELLED leg is then the strategy's cancel).
    """

    router: LiveRouter
    strategy_id: str
    tag: str
    orders: list[Order]
    send: list[int]
    resumed: bool = False
    failed: str = ""
    unwinds: list[Order] = field(default_factory=list)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """The basket's id in the journal: its first leg's order id (a tag may be used again)."""
        return self.orders[0].order_id

    # --- placing ------------------------------------------------------------------------------

    async def place(self, quotes: list[BasketLeg]) -> None:
        """Check the funds for all legs, then send them in ``send`` order; then watch them."""
        router = self.router
        try:
            funds = await router.broker.get_balance()
        except Exception as exc:  # an unread balance places nothing: the basket cannot be checked
            self._refuse(f"the broker's available funds could not be read ({exc})")
            return
        totals = basket_need(quotes, router.ledger.net, router.rules, router.cost_model)
        over = next((n for n, need in enumerate(totals) if need > funds + _EPS), None)
        if over is not None:
            k = self.send[over]
            self._refuse(f"insufficient funds for the whole basket: with {describe_leg(k + 1, self.orders[k])} "
                         f"it needs {totals[over]:,.2f} (margin and charges of the legs before it too, no spread "
                         f"benefit); available at {router.broker.name or 'the broker'} {funds:,.2f}")
            return
        for n, k in enumerate(self.send):
            if n:
                crash_point("between_basket_legs")
            if self._failure():
                break
            await router._send_all(router.legs[self.orders[k].order_id])
        self.watch()

    def _refuse(self, why: str) -> None:
        """Reject every leg (none was sent) and tell the operator."""
        reason = f"basket {self.tag}: {why}; no leg was placed"
        for order in self.orders:
            for state in self.router.legs.get(order.order_id, []):
                state.final, state.reason = OrderStatus.REJECTED, reason
            self.router.book.set_status(order, OrderStatus.REJECTED, reason, None)
        self._say(reason, warn=False)

    # --- watching -----------------------------------------------------------------------------

    def watch(self) -> None:
        """Follow the legs until they are all final, unwinding the basket if one fails."""
        self.task = asyncio.get_running_loop().create_task(self._watch())
        _running(self.router).add(self.task)
        self.task.add_done_callback(_running(self.router).discard)

    async def _watch(self) -> None:
        while True:
            why = self.failed or self._failure()
            if why:
                await self._unwind(why)
                return
            if all(o.status.is_terminal for o in self.orders):
                return
            await asyncio.sleep(WATCH_S)

    def _failure(self) -> str:
        """What failed the basket (the first leg that ended unfilled, not by the strategy), or ""."""
        cancelled_by_strategy = self.router._cancelling
        for k, order in enumerate(self.orders, 1):
            status = order.status
            if status not in _UNFILLED_END or order.filled_quantity >= order.quantity:
                continue
            if status is OrderStatus.CANCELLED and (self.resumed or order.order_id in cancelled_by_strategy):
                continue
            return f"{describe_leg(k, order)} {status.value}: {order.reason or status.value.lower()}"
        return ""

    # --- unwinding ----------------------------------------------------------------------------

    async def _unwind(self, why: str) -> None:
        """Cancel what works, then flatten what the legs filled (less what earlier unwinds did)."""
        router, sid = self.router, self.strategy_id
        if not self.failed:
            self.failed = why
            router.journal.append("basket_failed", basket=self.key, tag=self.tag, reason=why)
        for order in self.orders:
            for state in router.legs.get(order.order_id, []):
                if state.broker_order_id is None and state.final is None:
                    router._leg_final(state, OrderStatus.CANCELLED, f"not sent: basket {self.tag} failed")
            if not order.status.is_terminal:
                router.cancel(order.order_id, sid, reason=f"basket {self.tag} failed")
        if not await _until(lambda: all(o.status.is_terminal for o in self.orders), SETTLE_S):
            self._say(f"BASKET {self.tag}: cancels not confirmed within {SETTLE_S:g} s; flattening what filled so "
                      "far; check the broker's order book for legs still working", warn=True)
        residual = self._residual()
        filled = [f"{describe_leg(k, o)} filled {o.filled_quantity}" for k, o in enumerate(self.orders, 1)
                  if o.filled_quantity]
        unwinds = [self._flatten(inst, qty) for inst, qty in residual.items() if qty]
        ids = ", ".join(o.order_id for o in unwinds)
        note = f"basket {self.tag} failed ({why})"
        if ids:
            note += f"; filled legs flattened by {unwind_tag(self.tag)} order(s) {ids}"
        for order in self.orders:
            if not order.reason.startswith(f"basket {self.tag} failed"):  # once, also across a restart
                this = order.reason or f"{order.status.value.lower()} {order.filled_quantity}"
                router.book.set_status(order, order.status, f"{note}; this leg: {this}", None)
        if filled:
            self._say(f"BASKET {self.tag} FAILED: {why}. Filled: {'; '.join(filled)}. Flattening with market orders "
                      f"tagged {unwind_tag(self.tag)}: {ids or 'already placed before'}", warn=True)
        else:
            self._say(f"basket {self.tag} not placed whole: {why}; its other legs were cancelled before any "
                      "filled", warn=True)
        if unwinds:
            await _until(lambda: all(o.status.is_terminal for o in unwinds), UNWIND_S)
            left = [o for o in unwinds if o.status is not OrderStatus.FILLED]
            if left:
                self._say(f"BASKET {self.tag} UNWIND INCOMPLETE: " + "; ".join(
                    f"{o.order_id} {o.side.value} {o.quantity} {o.instrument} is {o.status.value} "
                    f"({o.reason or 'no reason given'})" for o in left) + "; square these off at the broker",
                    warn=True)
            else:
                self._say(f"basket {self.tag} unwound: {ids} filled; its legs are flat", warn=False)

    def _residual(self) -> dict[str, int]:
        """Net units per instrument the legs filled and the earlier unwind orders do not cover."""
        net: dict[str, int] = {}
        for order, working_counts in [(o, False) for o in self.orders] + [(o, True) for o in self.unwinds]:
            # an unwind order still working will close its whole quantity; a leg counts what it filled
            qty = order.quantity if working_counts and not order.status.is_terminal else order.filled_quantity
            net[order.instrument] = net.get(order.instrument, 0) + (qty if order.side is OrderSide.BUY else -qty)
        return net

    def _flatten(self, instrument: str, net: int) -> Order:
        """A market order that takes ``net`` units of ``instrument`` back to flat, tagged ``<tag>-unwind``.

        It goes to the router directly, past the risk controller: closing a failed basket's
        position is never refused for a limit (the daily loss, a halt).
        """
        router = self.router
        action = SignalAction.SELL if net > 0 else SignalAction.BUY
        ts = max(max(o.updated_ts, o.created_ts) for o in self.orders)  # the latest exchange time the legs saw
        signal = Signal(instrument, action, abs(net), tag=unwind_tag(self.tag))
        order = router.submit(self.strategy_id, signal, ts, router._timeline_bar())
        # on disk before its send task runs: a restart counts it, and a crash before the send leaves it unsent
        router.journal.append("basket_unwind", basket=self.key, order_id=order.order_id)
        self.unwinds.append(order)
        return order

    def _say(self, line: str, *, warn: bool) -> None:
        (log.warning if warn else log.info)("%s", line)
        events = self.router.events
        if events is not None:
            events.append(line)


def resume_baskets(router: LiveRouter, records: list[dict]) -> list[str]:
    """After a restart: unwind the journal's failed baskets that are not flat yet, watch those still working.

    Args:
        router: The reconciled live router (orders and fills restored, working orders adopted).
        records: The journal's records.

    Returns:
        Notes for the operator, one per basket taken up again.
    """
    failed = {r["basket"]: r["reason"] for r in records if r.get("k") == "basket_failed"}
    unwinds: dict[str, list[Order]] = {}
    for rec in records:
        order = router.book.by_id.get(rec["order_id"]) if rec.get("k") == "basket_unwind" else None
        if order is not None:
            unwinds.setdefault(rec["basket"], []).append(order)
    notes = []
    for rec in records:
        if rec.get("k") != "basket":
            continue
        orders = [router.book.by_id.get(oid) for oid in rec["orders"]]
        if any(o is None for o in orders):
            continue  # a torn journal: the legs' orders were never written
        basket = LiveBasket(router, rec["strategy_id"], rec["tag"], orders, list(rec["send"]), resumed=True)
        basket.failed, basket.unwinds = failed.get(basket.key, ""), unwinds.get(basket.key, [])
        why = basket.failed or basket._failure()
        working = not all(o.status.is_terminal for o in orders)
        if why and (working or any(basket._residual().values())):
            notes.append(f"basket {basket.tag} failed before the restart ({why}); cancelling its working legs "
                         "and flattening its filled ones")
        elif working and not why:
            notes.append(f"basket {basket.tag}: its working legs are watched again")
        else:
            continue  # whole, or already flat
        basket.watch()
    return notes


def _running(router: LiveRouter) -> set[asyncio.Task]:
    """The router's basket watchers (kept referenced; not drained at shutdown: a leg may work all day)."""
    tasks = router.__dict__.get("_basket_tasks")
    if tasks is None:
        tasks = router.__dict__["_basket_tasks"] = set()
    return tasks


async def _until(done: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``done()`` (looked at every ``WATCH_S``) or ``timeout`` seconds; returns ``done()``."""
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        await asyncio.sleep(WATCH_S)
    return done()
