"""Live trading: the paper engine's candle path with a real broker behind the order path.

``LiveRouter`` gives strategies the same synchronous order interface as the simulated
broker (``submit``, ``cancel``, ``modify``, ``open_orders``) and forwards each call to an
async ``Broker``. The rules that keep money safe:

- every order gets a deterministic client id (run, strategy, sequence) and is journaled
  (fsync) before it is sent; the id goes to Dhan as ``correlationId``, to Upstox as ``tag``;
- an ambiguous outcome (timeout, 5xx, 429, dropped connection) is never resent: the order
  becomes UNKNOWN and is resolved by looking it up by client id;
- every broker fill is journaled, then booked, exactly once, keyed by the broker's trade
  id, whatever order acknowledgements, fills and duplicates arrive in;
- an order above its instrument's freeze quantity (``Instrument.freeze_quantity``) is sent
  as child orders none above it (``split_quantity``), one after the other, every child's
  client id journaled (one ``children`` record) before the first is sent. The strategy sees
  one order: its fills are the children's, it is FILLED when they all are, a cancel or a
  price change goes to the children still working (a quantity change is refused: cancel and
  place again). Children that never reached the broker (a crash, a refusal of an earlier
  child, a cancel) are not sent later: the order ends CANCELLED (REJECTED when nothing
  filled and every child was refused) with what its sent children filled;
- startup takes one path after a clean stop and after a crash (``reconcile``): load the
  journal, fetch the broker's orders, trades and positions, adopt what the broker did while
  we were away, and refuse to trade if a position difference cannot be explained.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace

from algocli.broker.protocol import (
    AmbiguousOutcome, Broker, BrokerOrder, BrokerTrade, OrderRequest, client_order_id,
)
from algocli.broker.costs import CostContext, CostModel, PercentCommission, price_fill, replay_charges
from algocli.broker.orderbook import OrderBook, check_modify, late_entry_refusal, order_refusal
from algocli.domain.models import (
    Fill, Instrument, Order, OrderSide, OrderStatus, OrderType, Signal, SignalAction,
)
from algocli.domain.session import decision_lag_ns
from algocli.engine.live_basket import resume_baskets, submit_basket
from algocli.engine.resume import position_gaps
from algocli.errors import AlgoError, BrokerError
from algocli.market.ticks import split_quantity
from algocli.persistence.journal import Journal, crash_point
from algocli.portfolio.ledger import Ledger
from algocli.risk.broker_squareoff import BrokerSquareOffs

_TERMINAL_BROKER = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


class ReconciliationError(AlgoError):
    """The broker's positions differ from what the journal explains. Trading is refused:
    check the report, square off or adjust at the broker, then start again."""


@dataclass
class LiveOrderState:
    """One broker order of ours: a strategy's order, or one child of an order above the freeze
    quantity (``child`` k of ``of``); ``order`` is the strategy's order either way."""

    order: Order
    client_id: str
    request: OrderRequest
    broker_order_id: str | None = None
    lookups: int = 0
    modifying: int = 0  # modify requests in flight
    child: int = 0  # 0: the order was sent whole
    of: int = 1
    filled: int = 0  # units of this broker order booked
    final: OrderStatus | None = None  # the broker closed it without filling it all (or it was never sent)
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.final is not None or self.filled >= self.request.quantity


@dataclass
class RouterStats:
    sent: int = 0
    ambiguous: int = 0
    resolved: int = 0
    duplicate_fills: int = 0
    held_fills: int = 0


class LiveRouter:
    """The simulated broker's synchronous interface, backed by a real broker."""

    def __init__(self, broker: Broker, ledger: Ledger, histories: dict, *, run: str, journal: Journal,
                 on_fill, products: dict[str, str] | None = None, default_product: str = "INTRADAY",
                 validity: str = "DAY", lookup_attempts: int = 5, lookup_delay: float = 1.0,
                 cost_model: CostModel | None = None, instruments: Mapping[str, Instrument] | None = None) -> None:
        self.broker = broker
        self.ledger = ledger
        self.histories = histories
        self.run = run
        self.journal = journal
        self.book = OrderBook(ledger, histories, on_fill, journal)
        self.orders = self.book.orders
        self.fills = self.book.fills
        self.pending = self.book.pending
        self.products = products or {}
        self.default_product = default_product
        self.validity = validity
        # A live fill books the charge the cost model estimates, as a paper fill would.
        self.cost_model = cost_model if cost_model is not None else PercentCommission(0.0)
        self.instruments = dict(instruments or {})
        self.states: dict[str, LiveOrderState] = {}  # client id -> one broker order of ours
        self.legs: dict[str, list[LiveOrderState]] = {}  # our order id -> its broker orders (children)
        self._counted: set[str] = set()  # fill ids counted in their broker order's ``filled``
        self._cancelling: set[str] = set()  # our order ids the strategy cancelled
        self._by_broker_id: dict[str, LiveOrderState] = {}
        self._by_client_id: dict[str, LiveOrderState] = {}
        self._held: dict[str, list[BrokerTrade]] = {}  # broker order id -> fills that came before the ack
        self._tasks: set[asyncio.Task] = set()
        self.stats = RouterStats()
        self.restored: dict[str, int] = {}  # orders and fills replayed from the journal by ``reconcile``
        self.squareoffs = BrokerSquareOffs(self)  # the broker's own INTRADAY square-off orders, booked as ours
        self.lookup_attempts = lookup_attempts
        self.lookup_delay = lookup_delay
        broker.on_fill(self.on_broker_fill)
        broker.on_order_update(self.on_broker_order)

    # --- the strategies' side (synchronous) -----------------------------------------------

    def submit(self, strategy_id: str, signal: Signal, ts: int, timeline_bar: int) -> Order | None:
        if signal.action is SignalAction.HOLD:
            return None
        h = self.histories.get(signal.instrument)
        order = self.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1)  # fsync'd
        legs = self._plan(order, ts)
        if isinstance(legs, str):  # the exchange would refuse it (lots, ticks) or the broker (a short in CNC)
            self.book.set_status(order, OrderStatus.REJECTED, legs, ts)  # never sent
            return order
        self._journal_plan(legs)
        crash_point("after_intent_journal")
        self._track(order, legs)
        self._spawn(self._send_all(legs))
        return order

    submit_basket = submit_basket  # several legs placed whole or not at all (``algocli.engine.live_basket``)

    def _plan(self, order: Order, ts: int) -> list[LiveOrderState] | str:
        """The broker orders ``order`` goes out as (one, or children at the freeze quantity), or why the
        exchange or the broker would refuse it."""
        name = order.instrument
        product, inst = self.products.get(name, self.default_product), self._instrument(name)
        pos = self.ledger.position(order.strategy_id, name)
        held = pos.quantity if pos is not None else 0
        reason = order_refusal(inst, product, order.side is OrderSide.BUY, order.quantity, order.limit_price, held, ts)
        if not reason and self.rules is not None:  # as the simulated broker: judged at the candle's close
            h = self.histories.get(name)
            reason = late_entry_refusal(self.rules, inst, product, order.side is OrderSide.BUY, order.quantity, held,
                                        ts + decision_lag_ns(h.interval if h is not None else None))
        if reason:
            return reason
        try:
            sizes = split_quantity(inst, order.quantity)
        except ValueError as exc:  # a freeze quantity below one lot: no child could be valid
            return str(exc)
        strategy_id, seq = order.strategy_id, int(order.order_id.rpartition("-")[2])
        request = OrderRequest(client_order_id(self.run, strategy_id, seq), strategy_id, name, order.side,
                               order.quantity, order.order_type, order.limit_price, product, self.validity)
        if len(sizes) == 1:
            return [LiveOrderState(order, request.client_id, request)]
        cids = [child_client_id(self.run, strategy_id, seq, k) for k in range(1, len(sizes) + 1)]
        return [LiveOrderState(order, cid, replace(request, client_id=cid, quantity=qty), child=k, of=len(sizes))
                for k, (cid, qty) in enumerate(zip(cids, sizes), 1)]

    def _journal_plan(self, legs: list[LiveOrderState]) -> None:
        """Journal an order's client id, or every child's (one record) before the first is sent."""
        first = legs[0]
        common = {"order_id": first.order.order_id, "product": first.request.product,
                  "validity": first.request.validity}
        if first.of == 1:
            self.journal.append("client_id", client_id=first.client_id, **common)
        else:
            self.journal.append("children", children=[{"client_id": leg.client_id, "quantity": leg.request.quantity}
                                                      for leg in legs], **common)

    def deny(self, strategy_id: str, signal: Signal, ts: int, reason: str) -> Order:
        """Record an order the risk controller refused: journaled as REJECTED, never sent."""
        h = self.histories.get(signal.instrument)
        order = self.book.create(strategy_id, signal, ts, h.cursor if h is not None else -1)
        self.book.set_status(order, OrderStatus.REJECTED, reason, ts)
        return order

    def cancel(self, order_id: str, strategy_id: str, ts: int | None = None,
               reason: str = "cancelled by strategy") -> bool:
        legs = self._working_legs(order_id, strategy_id)
        if legs is None:
            return False
        self._cancelling.add(order_id)
        for leg in legs:
            if leg.broker_order_id is not None:
                self._spawn(self._cancel(leg))
        return True

    def modify(self, order_id: str, strategy_id: str, quantity: int | None, price: float | None) -> bool:
        """Change a working order's quantity or limit price (the price of every child still working).

        Raises:
            ValueError: The exchange would refuse it (lot, tick), or a quantity change of an
                order sent as children or one that would need splitting.
        """
        legs = self._working_legs(order_id, strategy_id)
        if legs is None:
            return False
        order = legs[0].order
        inst = self._instrument(order.instrument)
        check_modify(inst, quantity, price, order.updated_ts)
        if quantity is not None and (legs[0].of > 1 or len(split_quantity(inst, quantity)) > 1):
            raise ValueError(f"modify refused: {order.order_id} would be (or was sent as) several orders at the "
                             f"freeze quantity {inst.freeze_quantity} of {inst.hrn}; cancel it and place a new order")
        for leg in legs:
            if leg.broker_order_id is not None:
                self._spawn(self._modify(leg, quantity, price))
        return True

    def _working_legs(self, order_id: str, strategy_id: str) -> list[LiveOrderState] | None:
        """The broker orders of ``strategy_id``'s order still working, or None when it is final or not its."""
        legs = self.legs.get(order_id)
        if not legs or legs[0].order.strategy_id != strategy_id or legs[0].order.status.is_terminal:
            return None
        return [leg for leg in legs if not leg.done]

    def open_orders(self, strategy_id: str | None = None, instrument: str | None = None) -> list[Order]:
        return self.book.open_orders(strategy_id, instrument)

    def on_tick(self, instrument: str, price: float, ts: int, timeline_bar: int) -> None:
        """Live fills come from the broker, not from ticks."""

    # --- the broker's side (async) ----------------------------------------------------------

    async def _send_all(self, legs: list[LiveOrderState]) -> None:
        """Send an order's broker orders one after the other; stop at a refusal or a cancel."""
        for k, leg in enumerate(legs):
            if k:
                crash_point("between_children")
            stop = legs[k - 1].final if k else None
            if stop is OrderStatus.REJECTED or leg.order.order_id in self._cancelling:
                why = ("not sent: the order was cancelled" if stop is not OrderStatus.REJECTED
                       else f"not sent: child {k} was refused")
                for rest in legs[k:]:
                    self._leg_final(rest, OrderStatus.CANCELLED, why)
                return
            await self._send(leg)

    async def _send(self, state: LiveOrderState) -> None:
        self.stats.sent += 1
        try:
            reply = await self.broker.place_order(state.request)
        except AmbiguousOutcome as exc:
            self.stats.ambiguous += 1
            self._set_status(state, OrderStatus.UNKNOWN, f"outcome unknown ({exc}); looking it up")
            await self.resolve(state)
            return
        crash_point("after_broker_ack")
        self._adopt(state, reply)

    async def resolve(self, state: LiveOrderState) -> None:
        """Find an UNKNOWN order by client id; after enough misses it never reached the broker."""
        for attempt in range(self.lookup_attempts):
            state.lookups += 1
            try:
                found = await self.broker.find_order(state.client_id)
            except AmbiguousOutcome:
                found = None
            if found is not None:
                self.stats.resolved += 1
                self._adopt(state, found)
                return
            await asyncio.sleep(self.lookup_delay * (attempt + 1))
        self._leg_final(state, OrderStatus.REJECTED,
                        f"not found at the broker by client id {state.client_id} after {state.lookups} "
                        "lookups; it was not resent")

    def _adopt(self, state: LiveOrderState, reply: BrokerOrder) -> None:
        if not reply.broker_order_id:  # refused before the broker gave it an id
            self._leg_final(state, OrderStatus.REJECTED, reply.reason or "rejected by the broker")
            return
        self._link(state, reply.broker_order_id)
        self.on_broker_order(reply)

    def _link(self, state: LiveOrderState, broker_order_id: str) -> None:
        """Tie ``state`` to the broker's order id (journaled once, whichever answer came
        first: the placement's reply, a lookup, or the order stream), then book the fills
        that arrived before it."""
        if state.broker_order_id is not None:
            return
        state.broker_order_id = broker_order_id
        self._by_broker_id[broker_order_id] = state
        child = {"client_id": state.client_id} if state.child else {}  # which child; a whole order has one
        self.journal.append("ack", order_id=state.order.order_id, broker_order_id=broker_order_id, **child)
        for trade in self._held.pop(broker_order_id, []):
            self.on_broker_fill(trade)
        if state.order.order_id in self._cancelling and not state.done:  # cancelled while it was being placed
            self._spawn(self._cancel(state))

    async def _cancel(self, state: LiveOrderState) -> None:
        try:
            reply = await self.broker.cancel_order(state.broker_order_id)
        except (AmbiguousOutcome, BrokerError) as exc:  # the order stream or the poll will tell
            state.order.reason = f"cancel not confirmed: {exc}"
            return
        self.on_broker_order(reply)

    async def _modify(self, state: LiveOrderState, quantity: int | None, price: float | None) -> None:
        state.modifying += 1
        try:
            try:
                reply = await self.broker.modify_order(state.broker_order_id, quantity, price)
            except (AmbiguousOutcome, BrokerError) as exc:  # a refused modify leaves the order as it was
                state.order.reason = f"modify not applied: {exc}"
                return
            if state.child <= 1 or state.order.limit_price != price:  # once for an order's children
                self.book.modify(state.order, quantity, price)
            if quantity is not None:
                state.request = replace(state.request, quantity=quantity)
            if price is not None:
                state.request = replace(state.request, limit_price=price)
            self.on_broker_order(reply)
        finally:
            state.modifying -= 1
            if not state.modifying:  # fills beyond the old quantity waited for the new one
                for trade in self._held.pop(state.broker_order_id, []):
                    self.on_broker_fill(trade)

    def on_broker_order(self, update: BrokerOrder) -> None:
        state = self._by_broker_id.get(update.broker_order_id)
        if state is None and update.client_id:
            state = self._by_client_id.get(update.client_id)
            if state is not None:
                self._link(state, update.broker_order_id)
        if state is None:
            self.squareoffs.order(update)  # the broker's INTRADAY square-off is booked; others are not ours
            return
        status = update.status
        if status in ("CANCELLED", "REJECTED", "EXPIRED"):
            self._leg_final(state, OrderStatus(status), update.reason or status.lower(), update.updated_ts)
        elif status in ("PENDING", "OPEN") and state.order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING):
            # the broker works it: a limit rests (OPEN), as the simulated broker and a restart show it
            order = state.order
            working = (OrderStatus.PARTIALLY_FILLED if order.filled_quantity else
                       OrderStatus.OPEN if order.order_type is OrderType.LIMIT else OrderStatus.PENDING)
            if working is not order.status:  # not stamped: an acknowledgement's time is no change of the order
                self._set_status(state, working, "")  # (Upstox's placement reply has none: it would be the wall clock)

    def on_broker_fill(self, trade: BrokerTrade) -> None:
        """Book a broker fill once, keyed by its trade id."""
        fill_id = f"T:{trade.trade_id}"
        state = self._by_broker_id.get(trade.broker_order_id)
        if fill_id in self.ledger.booked:
            if state is not None and fill_id not in self._counted:  # booked before a restart: count it
                self._counted.add(fill_id)
                state.filled += trade.quantity
            self.stats.duplicate_fills += 1
            return
        if state is None:
            if self.squareoffs.fill(trade):
                return
            self.stats.held_fills += 1
            self._held.setdefault(trade.broker_order_id, []).append(trade)  # fill before the ack
            return
        order = state.order
        if state.modifying and trade.quantity > state.request.quantity - state.filled:
            # the broker already works the raised quantity; book it once the modify is applied here
            self.stats.held_fills += 1
            self._held.setdefault(trade.broker_order_id, []).append(trade)
            return
        qty = min(trade.quantity, state.request.quantity - state.filled, order.quantity - order.filled_quantity)
        if qty <= 0:
            return  # an overfill would double a position: ignore it (the reconciliation will report)
        self._counted.add(fill_id)
        state.filled += qty
        inst = order.instrument
        # The broker's contract note comes the next day: book the cost model's estimate, marked so.
        charges = price_fill(self.cost_model, CostContext(
            self._instrument(inst), state.request.product, order.side is OrderSide.BUY, qty, trade.price, trade.ts))
        fill = Fill(fill_id, order.order_id, order.strategy_id, inst, order.side, qty, trade.price,
                    charges[0], trade.ts, self._timeline_bar(), *charges[1:], estimated=True)
        self.book.apply_fill(order, fill)
        if order.status is OrderStatus.FILLED:
            self.journal.status(order)
        elif state.of > 1 and state.done:  # the last child working filled, after another closed unfilled
            self._settle(state, trade.ts)

    # --- bookkeeping --------------------------------------------------------------------------

    timeline_bar_fn = None
    rules = None  # the run's ProductRules: the margin a basket's legs need together
    events: list[str] | None = None  # lines for the operator (a basket that failed and was unwound)

    def _instrument(self, name: str) -> Instrument:
        return self.instruments.get(name) or Instrument(name)

    def _timeline_bar(self) -> int:
        return self.timeline_bar_fn() if self.timeline_bar_fn is not None else 0

    def _track(self, order: Order, legs: list[LiveOrderState], work: bool = True) -> None:
        self.legs[order.order_id] = legs
        for leg in legs:
            self.states[leg.client_id] = leg
            self._by_client_id[leg.client_id] = leg
        if work:
            self.book.work(order)

    def _set_status(self, state: LiveOrderState, status: OrderStatus, reason: str, ts: int | None = None) -> None:
        self.book.set_status(state.order, status, reason, ts or None)

    def _leg_final(self, leg: LiveOrderState, status: OrderStatus, reason: str, ts: int | None = None) -> None:
        """One broker order closed unfilled (or was never sent): the order ends once all of its have.

        An order sent whole takes the broker's status and reason. An order sent as children
        ends CANCELLED (REJECTED when nothing filled and every child was refused), its reason
        naming each child that did not fill; FILLED comes from the fills.
        """
        if leg.final is not None:
            return
        leg.final, leg.reason = status, reason
        if leg.of == 1:
            if not leg.order.status.is_terminal:
                self._set_status(leg, status, reason, ts)
            return
        self._settle(leg, ts)

    def _settle(self, leg: LiveOrderState, ts: int | None = None) -> None:
        """End an order sent as children once none of them works any more (see ``_leg_final``)."""
        order = leg.order
        legs = self.legs.get(order.order_id, [leg])
        unfilled = [x for x in legs if x.final is not None]
        if order.status.is_terminal or not unfilled:
            return
        why = "; ".join(f"child {x.child}/{x.of} {x.client_id}: {x.reason}" for x in unfilled)
        if not all(x.done for x in legs):
            order.reason = why  # the others still work
            return
        refused = not order.filled_quantity and all(x.final is OrderStatus.REJECTED for x in unfilled)
        self._set_status(leg, OrderStatus.REJECTED if refused else OrderStatus.CANCELLED, why, ts)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-flight broker calls (used on shutdown and in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # --- startup ------------------------------------------------------------------------------

    async def reconcile(self, journal_records: list[dict], instruments: list[str]) -> list[str]:
        """Rebuild from the journal, adopt what the broker did meanwhile, refuse on a position gap.

        Returns human-readable notes about what was adopted; raises ``ReconciliationError``.
        """
        notes: list[str] = []
        self._restore(journal_records)
        for state in list(self.states.values()):
            if state.broker_order_id is None and state.final is None and not state.order.status.is_terminal:
                name = state.order.order_id + (f" child {state.child}/{state.of}" if state.child else "")
                found = await self.broker.find_order(state.client_id)
                if found is None:
                    self._leg_final(state, OrderStatus.REJECTED, "journaled but never reached the broker (not resent)")
                    notes.append(f"{name}: never reached the broker; " +
                                 ("not sent after the restart" if state.child else "marked rejected"))
                else:
                    self._adopt(state, found)
                    notes.append(f"{name}: found at the broker as {found.broker_order_id}")
        baseline = next((r["positions"] for r in journal_records if r.get("k") == "baseline"), None)
        before = len(self.fills)
        for _ in range(3):  # an order still working may fill between the reads of trades and positions
            for order in await self.broker.get_orders():
                self.on_broker_order(order)
            for trade in await self.broker.get_trades():
                if trade.broker_order_id in self._by_broker_id or self.squareoffs.knows(trade.broker_order_id):
                    self.on_broker_fill(trade)
            theirs = {p.instrument: p.quantity for p in await self.broker.get_positions()}
            if baseline is None or not position_gaps(instruments, self.ledger.net, theirs, baseline):
                break
            await asyncio.sleep(0.5)
        if len(self.fills) > before:
            notes.append(f"booked {len(self.fills) - before} fill(s) the broker made while this run was down")
        if baseline is None:  # a new run: what the account already holds is not this run's
            baseline = {inst: theirs[inst] for inst in instruments if theirs.get(inst)}
            self.journal.append("baseline", positions=baseline)
            if baseline:
                notes.append(f"positions held before this run are left alone: {baseline}")
        gaps = position_gaps(instruments, self.ledger.net, theirs, baseline)
        if gaps:
            lines = "; ".join(f"{inst}: expected {mine:+d} (start + journal), broker {brk:+d}"
                              for inst, mine, brk in gaps)
            raise ReconciliationError(
                f"positions differ from the broker and the journal cannot explain it ({lines}); "
                "trading refused. Square off or adjust the position at the broker, or start with a fresh "
                "journal if the broker's positions are the truth (--fresh), then run again")
        return notes + resume_baskets(self, journal_records)

    def _restore(self, records: list[dict]) -> None:
        """Orders, fills, statuses and modifications from the journal (``OrderBook.replay``; its
        counts in ``restored``), then each order's client id, request and broker order id."""
        self.restored = self.book.replay(records)
        ids = {rec["order_id"]: rec for rec in records if rec.get("k") in ("client_id", "children")}
        for order in self.book.orders:
            sid, _, seq = order.order_id.rpartition("-")
            rec = ids.get(order.order_id) or {}
            cid = rec.get("client_id") or client_order_id(self.run, sid, int(seq))
            request = OrderRequest(cid, sid, order.instrument, order.side, order.quantity, order.order_type,
                                   order.limit_price, rec.get("product", self.default_product),
                                   rec.get("validity", self.validity))
            children = rec.get("children") or []
            legs = [LiveOrderState(order, c["client_id"], replace(request, client_id=c["client_id"],
                                                                  quantity=c["quantity"]), child=k, of=len(children))
                    for k, c in enumerate(children, 1)] or [LiveOrderState(order, cid, request)]
            self._track(order, legs, work=False)
        for rec in records:
            if rec.get("k") == "ack":
                legs = self.legs.get(rec["order_id"]) or []
                state = self._by_client_id.get(rec.get("client_id", "")) or (legs[0] if legs else None)
                if state is not None:
                    state.broker_order_id = rec["broker_order_id"]
                    self._by_broker_id[rec["broker_order_id"]] = state
        products = {oid: legs[0].request.product for oid, legs in self.legs.items()}
        replay_charges(self.cost_model, (CostContext(
            self._instrument(f.instrument), products.get(f.order_id, self.default_product), f.side is OrderSide.BUY,
            f.quantity, f.price, f.ts) for f in self.fills))


def child_client_id(run: str, strategy_id: str, seq: int, child: int) -> str:
    """The client id of the ``child``-th broker order of an order above the freeze quantity.

    The order's own client id (shortened to leave room) and ``c<child>``: a whole order's id
    ends in six digits, so the two can never be the same.
    """
    suffix = f"c{child}"
    return client_order_id(run, strategy_id, seq, max_len=30 - len(suffix)) + suffix


def build_live_engine(instruments: list[str], *, broker: Broker, run_id: str, products: dict[str, str],
                      default_product: str, validity: str, cost_model: CostModel | None = None, **kwargs):
    """A ``PaperEngine`` built with a ``LiveRouter`` to ``broker`` as its order path.

    The candle path, journal, dashboard and artifacts are the paper engine's; history is
    restored from the journal there, while orders and fills are restored by
    ``engine.router.reconcile`` against the broker (async, before trading starts).

    Args:
        instruments: The run's instrument names.
        broker: The connected-on-start real broker.
        run_id: The run's name (the start of its run key).
        products: Product per instrument; ``default_product`` for the others.
        validity: ``DAY`` or ``IOC``.
        cost_model: Prices each broker fill's charges, as the simulated broker would
            (none when omitted).
        **kwargs: ``PaperEngine`` arguments (interval, initial_capital, journal_path, name,
            metadata).
    """
    from algocli.broker.fill_models import NextOpen
    from algocli.engine.paper import PaperEngine

    cost_model = cost_model if cost_model is not None else PercentCommission(0.0)

    def make_router(engine) -> LiveRouter:
        router = LiveRouter(broker, engine.core.ledger, engine.core.histories, run=_run_key(engine, run_id),
                            journal=engine.journal, on_fill=engine.core.on_fill, products=products,
                            default_product=default_product, validity=validity, cost_model=cost_model,
                            instruments=engine.core.instruments)
        router.timeline_bar_fn = lambda: len(engine.clock.ts_mv)
        router.rules, router.events = kwargs.get("rules"), engine.events
        engine.router = router
        return router

    return PaperEngine(instruments, fill_model=NextOpen(), cost_model=cost_model, router_factory=make_router,
                       **kwargs)


def _run_key(engine, name: str) -> str:
    """The id that makes client order ids unique to this run, kept in the journal.

    A resumed run reads it back, so its client ids stay the same across restarts (they are
    how an ambiguous order is looked up). A new run (a new journal) draws a new one, so it can
    never adopt an earlier run's orders that reused the same strategy name and sequence.
    """
    for rec in engine.journal_records:
        if rec.get("k") == "run":
            return rec["run_key"]
    key = f"{name[:10]}{secrets.token_hex(3)}"
    engine.journal.append("run", run_key=key, name=name)
    return key
