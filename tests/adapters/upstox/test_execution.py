"""UpstoxBroker against the sandbox (``build_app``) on 127.0.0.1: orders, fills, positions, funds.

Ticks are published by the test through the hub; the sandbox's matching engine fills the
orders and its Upstox routes report them over REST and the portfolio stream.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from adapters.upstox.upstox_support import until
from aiohttp import web

from algocli.adapters.upstox.execution import UpstoxBroker
from algocli.broker.protocol import Broker, BrokerOrder, BrokerTrade, OrderRequest
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderSide, OrderType, Tick
from algocli.sandbox.app import EXCHANGE, build_app
from algocli.sandbox.exchange import Venue
from algocli.sandbox.hub import TickHub
from algocli.sandbox.upstox_orders import UPSTOX_ORDERS, UpstoxOrders

INST = "NSE_EQ:1333"
LIMIT_S = 15.0  # every test's ceiling


@dataclass
class Sandbox:
    hub: TickHub
    app: web.Application
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchange(self) -> Venue:
        """The Upstox venue of the sandbox's exchange (its accounts, faults and prices)."""
        return self.app[EXCHANGE].venue("upstox")

    @property
    def orders(self) -> UpstoxOrders:
        return self.app[UPSTOX_ORDERS]

    def tick(self, price: float, instrument: str = INST) -> None:
        self.hub.publish(Tick(instrument, time.time_ns(), price, 1))


@asynccontextmanager
async def sandbox(tokens: tuple[str, ...] = ()):
    hub = TickHub(valid_tokens=set(tokens))
    app = build_app(hub, dhan=False)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Sandbox(hub, app, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def settings_for(box: Sandbox, token: str):
    return lambda: UpstoxSettings(access_token=token, api_base_url=box.url, order_base_url=box.url)


class Recorder:
    def __init__(self, broker: UpstoxBroker) -> None:
        self.updates: list[BrokerOrder] = []
        self.fills: list[BrokerTrade] = []
        self.events: list[tuple[str, str]] = []  # ("fill", trade id) / ("update", status), in delivery order
        broker.on_order_update(self._update)
        broker.on_fill(self._fill)

    def _update(self, order: BrokerOrder) -> None:
        self.updates.append(order)
        self.events.append(("update", order.status))

    def _fill(self, trade: BrokerTrade) -> None:
        self.fills.append(trade)
        self.events.append(("fill", trade.trade_id))

    def statuses(self, order_id: str) -> list[str]:
        return [u.status for u in self.updates if u.broker_order_id == order_id]


@asynccontextmanager
async def connected(box: Sandbox, token: str, **options):
    options.setdefault("backoff", Backoff(0.05, 0.2))
    broker = UpstoxBroker(settings_for(box, token), **options)
    record = Recorder(broker)
    await broker.connect()
    try:
        await until(lambda: broker.stream is None or broker.stream.connected, timeout=3, what="the order stream")
        yield broker, record
    finally:
        await broker.disconnect()


def run(main) -> None:
    asyncio.run(asyncio.wait_for(main(), LIMIT_S))


def new_token() -> str:
    return f"tok-{uuid.uuid4().hex[:12]}"  # one rate-limit account per test


def request(cid: str, side: str = "BUY", qty: int = 10, limit: float | None = None, **extra) -> OrderRequest:
    kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
    return OrderRequest(cid, "s1", INST, OrderSide(side), qty, kind, limit, **extra)


def test_market_order_fills_through_the_stream_and_positions_match():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            assert isinstance(broker, Broker)
            box.tick(100.0)
            placed = await broker.place_order(request("r1-s1-000001"))
            assert placed.status == "PENDING" and placed.broker_order_id and placed.client_id == "r1-s1-000001"
            await until(lambda: "OPEN" in rec.statuses(placed.broker_order_id), what="the open update")
            box.tick(101.5)
            await until(lambda: rec.fills, what="the fill")
            await until(lambda: rec.statuses(placed.broker_order_id)[-1:] == ["FILLED"], what="FILLED")
            acct = box.exchange.account(token)
            assert broker.stats.polls == 0  # the stream alone delivered it
            fill = rec.fills[0]
            assert (fill.trade_id, fill.broker_order_id) == (acct.trades[0].trade_id, placed.broker_order_id)
            assert (fill.instrument, fill.side, fill.quantity, fill.price) == (INST, OrderSide.BUY, 10, 101.5)
            final = [u for u in rec.updates if u.status == "FILLED"][-1]
            assert final.filled_quantity == 10 and final.average_price == 101.5
            assert rec.events.index(("fill", fill.trade_id)) < rec.events.index(("update", "FILLED"))
            positions = await broker.get_positions()
            assert [(p.instrument, p.quantity, p.average_price) for p in positions] == [(INST, 10, 101.5)]
            assert (await broker.get_position(INST)).last_price == 101.5
            assert await broker.get_position("NSE_EQ:9") is None
            assert await broker.get_balance() == pytest.approx(acct.cash)
            assert await broker.get_margin_used() == pytest.approx(acct.used_margin(box.exchange.last))
            trades = await broker.get_trades()
            assert [t.trade_id for t in trades] == [fill.trade_id]
            orders = await broker.get_orders()
            assert [(o.broker_order_id, o.status, o.client_id) for o in orders] == [
                (placed.broker_order_id, "FILLED", "r1-s1-000001")]
            assert len(rec.fills) == 1

    run(main)


def test_limit_order_rests_then_fills_at_its_limit_and_a_sell_closes_the_position():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            box.tick(100.0)
            buy = await broker.place_order(request("r1-s1-000002", limit=99.0, product="CNC"))
            await until(lambda: "OPEN" in rec.statuses(buy.broker_order_id), what="open")
            box.tick(99.5)  # above the limit: still working
            await asyncio.sleep(0.2)
            assert rec.fills == [] and (await broker.get_order(buy.broker_order_id)).status == "OPEN"
            box.tick(98.0)  # trades through the limit: fills at 99
            await until(lambda: rec.fills, what="the limit fill")
            assert (rec.fills[0].quantity, rec.fills[0].price) == (10, 99.0)
            got = await broker.get_order(buy.broker_order_id)
            assert (got.status, got.order_type, got.limit_price, got.product) == (
                "FILLED", OrderType.LIMIT, 99.0, "CNC")
            sell = await broker.place_order(request("r1-s1-000003", side="SELL", qty=10))
            box.tick(103.0)
            await until(lambda: len(rec.fills) == 2, what="the sell fill")
            assert rec.fills[1].side == OrderSide.SELL and rec.fills[1].broker_order_id == sell.broker_order_id
            pos = await broker.get_position(INST)
            qty, _, realised = box.exchange.account(token).positions[INST]
            assert (pos.quantity, pos.realized_pnl) == (qty, realised) == (0, pytest.approx(40.0))

    run(main)


def test_modify_then_cancel_a_working_order():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            box.tick(100.0)
            placed = await broker.place_order(request("r1-s1-000004", qty=5, limit=90.0))
            await until(lambda: "OPEN" in rec.statuses(placed.broker_order_id), what="open")
            modified = await broker.modify_order(placed.broker_order_id, quantity=7, price=91.5)
            assert (modified.status, modified.quantity, modified.limit_price) == ("OPEN", 7, 91.5)
            sim = box.exchange.account(token).orders[placed.broker_order_id]
            assert (sim.quantity, sim.price, sim.modifications) == (7, 91.5, 1)
            await until(lambda: any(u.quantity == 7 for u in rec.updates), what="the modify update")
            only_price = await broker.modify_order(placed.broker_order_id, price=92.0)
            assert (only_price.quantity, only_price.limit_price) == (7, 92.0)
            cancelled = await broker.cancel_order(placed.broker_order_id)
            assert cancelled.status == "CANCELLED" and sim.status == "CANCELLED"
            await until(lambda: rec.statuses(placed.broker_order_id)[-1:] == ["CANCELLED"], what="cancel update")
            with pytest.raises(Exception, match="UDAPI100038|not open"):
                await broker.cancel_order(placed.broker_order_id)
            box.tick(80.0)
            await asyncio.sleep(0.1)
            assert rec.fills == [] and await broker.get_positions() == []

    run(main)


def test_rejections_definitive_and_from_the_exchange():
    token = new_token()

    async def main():
        keys = {"NSE_EQ:BAD": "not-a-key"}
        async with sandbox() as box, connected(box, token, poll_interval=30.0, instrument_keys=keys) as (broker, rec):
            refused = await broker.place_order(OrderRequest("r1-s1-000005", "s1", "NSE_EQ:BAD", OrderSide.BUY, 1,
                                                            OrderType.MARKET))
            assert refused.status == "REJECTED" and refused.broker_order_id == ""
            assert "UDAPI100011" in refused.reason and "HTTP 400" in refused.reason
            assert box.exchange.account(token).orders == {}
            local = await broker.place_order(request("r1-s1-000006", limit=-1.0))
            assert local.status == "REJECTED" and "positive limit_price" in local.reason
            box.tick(100.0)
            broke = await broker.place_order(request("r1-s1-000007", qty=10**7))  # more than the cash
            assert broke.status == "PENDING"
            await until(lambda: rec.statuses(broke.broker_order_id)[-1:] == ["REJECTED"], what="the rejection")
            last = [u for u in rec.updates if u.broker_order_id == broke.broker_order_id][-1]
            assert "insufficient funds" in last.reason
            assert len(box.exchange.account(token).orders) == 1

    run(main)


def test_find_order_by_tag_and_place_is_idempotent_per_client_id():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            box.tick(100.0)
            first = await broker.place_order(request("r1-s1-000008", limit=95.0))
            again = await broker.place_order(request("r1-s1-000008", limit=95.0))
            assert again.broker_order_id == first.broker_order_id
            assert len(box.exchange.account(token).orders) == 1
            assert (await broker.find_order("r1-s1-000008")).broker_order_id == first.broker_order_id
            assert await broker.find_order("r1-s1-999999") is None
            # a second broker on the same account (a restart) finds it through order history by tag
            async with connected(box, token, poll_interval=30.0, stream=False) as (other, _):
                found = await other.find_order("r1-s1-000008")
                assert (found.broker_order_id, found.status, found.limit_price) == (first.broker_order_id, "OPEN", 95.0)

    run(main)


def test_fills_before_connect_are_not_redelivered_and_working_orders_are_tracked():
    token = new_token()

    async def main():
        async with sandbox() as box:
            box.tick(100.0)
            async with connected(box, token, poll_interval=30.0) as (broker, rec):
                await broker.place_order(request("r1-s1-000009"))
                box.tick(100.5)
                await until(lambda: rec.fills, what="first fill")
                resting = await broker.place_order(request("r1-s1-000010", limit=97.0))
            async with connected(box, token, poll_interval=0.2) as (broker, rec):
                await asyncio.sleep(0.3)
                assert rec.fills == []  # the earlier trade is known, not delivered again
                box.tick(96.0)
                await until(lambda: rec.fills, what="the resting order's fill")
                assert [f.broker_order_id for f in rec.fills] == [resting.broker_order_id]
                assert rec.fills[0].price == 96.0  # first tick after arrival, already through the limit

    run(main)


def test_a_refused_token_is_fatal_and_never_printed():
    async def main():
        async with sandbox(tokens=("good",)) as box:
            broker = UpstoxBroker(settings_for(box, "s3cret-token-value"))
            with pytest.raises(FeedAuthError) as err:
                await broker.connect()
            assert "UPSTOX_ACCESS_TOKEN" in str(err.value) and "UDAPI100050" in str(err.value)
            assert "s3cret" not in str(err.value)
            with pytest.raises(FeedAuthError, match="empty"):
                await UpstoxBroker(settings_for(box, "")).connect()
            with pytest.raises(Exception, match="connect"):
                await broker.place_order(request("r1-s1-000011"))

    run(main)
