"""The brokers' INTRADAY auto square-off on the sandbox's exchange, and what its routes show of it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import aiohttp
from aiohttp import web

from algocli.domain.models import Tick
from algocli.sandbox.app import build_app
from algocli.sandbox.dhan_orders import DHAN_ORDERS_KEY
from algocli.sandbox.exchange import Exchange
from algocli.sandbox.hub import TickHub
from algocli.sandbox.squareoff import AUTO_SQUAREOFF_REASON, group_of_id
from algocli.sandbox.upstox_orders import UPSTOX_ORDERS

IST = timezone(timedelta(hours=5, minutes=30))
EQ = "NSE_EQ:2885"
FUT = "NSE_FNO:35001"


def at(hhmm: str, day: int = 11, seconds: int = 0) -> int:
    """UTC ns of ``hhmm`` IST on 2024-06-``day`` (a Tuesday for 11)."""
    h, m = map(int, hhmm.split(":"))
    return int(datetime(2024, 6, day, h, m, seconds, tzinfo=IST).timestamp()) * 10**9


def tick(inst: str, ts: int, price: float = 100.0) -> Tick:
    return Tick(inst, ts, price, 1, 100)


def buy(ex, account: str, venue: str, qty: int = 10, product: str = "INTRADAY", inst: str = EQ, cid: str = "c1"):
    return ex.place(account, instrument=inst, side="BUY", quantity=qty, order_type="MARKET", product=product,
                    client_id=cid, venue=venue)


def test_segments_map_to_square_off_groups():
    assert [group_of_id(i) for i in (EQ, "BSE_EQ:500325", FUT, "NSE_FO|35001", "NSE_CURRENCY:1", "MCX_COMM:2",
                                       "IDX_I:13")] == ["equity", "equity", "fno", "fno", "currency", "commodity",
                                                        None]


def test_dhan_squares_off_intraday_at_15_20_with_its_own_market_order_and_leaves_cnc_alone():
    ex = Exchange()
    ex.on_tick(tick(EQ, at("14:00")))
    buy(ex, "A", "dhan", 10)
    buy(ex, "A", "dhan", 4, product="CNC", cid="c2")
    ex.on_tick(tick(EQ, at("14:01"), 101.0))  # both fill
    resting = ex.place("A", instrument=EQ, side="BUY", quantity=3, order_type="LIMIT", price=95.0, client_id="c3",
                       venue="dhan")
    acct = ex.account("A", "dhan")
    assert acct.positions[EQ][0] == 14
    ex.on_tick(tick(EQ, at("15:19", seconds=59), 102.0))
    assert acct.positions[EQ][0] == 14 and resting.is_open  # not yet
    ex.on_tick(tick(EQ, at("15:20", seconds=20), 103.0))  # the first tick at or after 15:20
    squared = ex.squareoff.orders
    assert [(o.side, o.quantity, o.product, o.client_id, o.placed_by, o.status, o.average_price) for o in squared] == [
        ("SELL", 10, "INTRADAY", None, "broker", "FILLED", 103.0)]
    assert squared[0].created_ns == at("15:20", seconds=20) and squared[0].reason == AUTO_SQUAREOFF_REASON
    assert acct.positions[EQ][0] == 4  # the CNC part stays
    assert resting.status == "CANCELLED" and "auto square-off" in resting.reason
    ex.on_tick(tick(EQ, at("15:25"), 104.0))
    assert len(ex.squareoff.orders) == 1  # once a day


def test_upstox_squares_off_equity_at_15_15_and_fno_at_15_20_each_venue_on_its_own_clock():
    ex = Exchange()
    for inst in (EQ, FUT):
        ex.on_tick(tick(inst, at("15:00")))
        buy(ex, "U", "upstox", 5, inst=inst, cid=f"u-{inst}")
    buy(ex, "D", "dhan", 7)
    for inst in (EQ, FUT):
        ex.on_tick(tick(inst, at("15:01")))
    ex.on_tick(tick(EQ, at("15:15")))
    ex.on_tick(tick(FUT, at("15:15")))
    assert [(o.venue, o.instrument, o.quantity) for o in ex.squareoff.orders] == [("upstox", EQ, 5)]
    ex.on_tick(tick(FUT, at("15:20")))
    ex.on_tick(tick(EQ, at("15:20")))
    assert [(o.venue, o.instrument, o.quantity) for o in ex.squareoff.orders] == [
        ("upstox", EQ, 5), ("upstox", FUT, 5), ("dhan", EQ, 7)]
    assert ex.account("U", "upstox").positions[EQ][0] == ex.account("U", "upstox").positions[FUT][0] == 0
    assert ex.account("D", "dhan").positions[EQ][0] == 0


def test_a_short_is_bought_back_and_a_replay_that_jumps_over_the_time_squares_off_at_the_next_tick():
    ex = Exchange(opening_cash=1.0)  # the broker's own order is not held to the account's funds
    ex.on_tick(tick(EQ, at("13:00")))
    ex.place("A", instrument=EQ, side="SELL", quantity=6, order_type="MARKET", client_id="s", venue="dhan")
    ex.on_tick(tick(EQ, at("13:01")))
    ex.on_tick(tick(EQ, at("14:00")))  # the data of the 11th stop here
    assert not ex.squareoff.orders
    ex.on_tick(tick(EQ, at("09:15", day=12), 99.0))
    assert [(o.side, o.quantity, o.status, o.average_price) for o in ex.squareoff.orders] == [
        ("BUY", 6, "FILLED", 99.0)]
    assert ex.account("A", "dhan").positions[EQ][0] == 0


def test_the_unnamed_venue_and_a_first_tick_after_the_time_square_nothing_off():
    ex = Exchange()
    ex.on_tick(tick(EQ, at("15:25")))  # the replay starts after the time: nothing was held before it
    buy(ex, "A", "")  # the unnamed venue (tests, no broker) has no square-off
    buy(ex, "B", "dhan")
    ex.on_tick(tick(EQ, at("15:26")))
    assert not ex.squareoff.orders
    ex.on_tick(tick(EQ, at("15:20", day=12)))  # the next session's time
    assert [(o.account, o.venue) for o in ex.squareoff.orders] == [("B", "dhan")]
    assert Exchange(squareoff={}).squareoff.rules == {}


def test_the_square_off_shows_in_both_brokers_orders_trades_and_positions_routes():
    async def main():
        hub = TickHub(valid_tokens={"tok"})
        app = build_app(hub)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        dhan = {"access-token": "tok", "client-id": "1100001"}
        upstox = {"Authorization": "Bearer tok"}
        try:
            async with aiohttp.ClientSession() as http:
                async def call(method, path, headers, body=None):
                    async with http.request(method, base + path, headers=headers,
                                            data=json.dumps(body) if body is not None else None) as resp:
                        return await resp.json(content_type=None)

                hub.publish(tick(EQ, at("15:00")))
                await call("POST", "/v2/orders", dhan, {
                    "transactionType": "BUY", "exchangeSegment": "NSE_EQ", "productType": "INTRADAY",
                    "orderType": "MARKET", "validity": "DAY", "securityId": "2885", "quantity": 10,
                    "correlationId": "mine-1"})
                await call("POST", "/v2/order/place", upstox, {
                    "quantity": 3, "product": "I", "validity": "DAY", "price": 0, "tag": "mine-2",
                    "instrument_token": "NSE_EQ|2885", "order_type": "MARKET", "transaction_type": "SELL"})
                hub.publish(tick(EQ, at("15:01")))
                hub.publish(tick(EQ, at("15:16"), 101.0))  # Upstox's equity time has passed, Dhan's not yet
                hub.publish(tick(EQ, at("15:21"), 102.0))

                orders = await call("GET", "/v2/orders", dhan)
                assert [(o["transactionType"], o["quantity"], o["orderStatus"], o["correlationId"], o["createTime"])
                        for o in orders] == [("BUY", 10, "TRADED", "mine-1", "2024-06-11 15:00:00"),
                                             ("SELL", 10, "TRADED", "", "2024-06-11 15:21:00")]
                trades = await call("GET", "/v2/trades", dhan)
                assert [(t["transactionType"], t["tradedQuantity"], t["tradedPrice"]) for t in trades][-1] == (
                    "SELL", 10, 102.0)
                positions = await call("GET", "/v2/positions", dhan)
                assert [(p["netQty"], p["positionType"], p["productType"]) for p in positions] == [
                    (0, "CLOSED", "INTRADAY")]

                book = (await call("GET", "/v2/order/retrieve-all", upstox))["data"]
                assert [(o["transaction_type"], o["quantity"], o["status"], o["tag"], o["product"],
                         o["instrument_token"], o["order_timestamp"]) for o in book] == [
                    ("SELL", 3, "complete", "mine-2", "I", "NSE_EQ|2885", "2024-06-11 15:00:00"),
                    ("BUY", 3, "complete", None, "I", "NSE_EQ|2885", "2024-06-11 15:16:00")]
                assert book[1]["status_message"] == AUTO_SQUAREOFF_REASON
                held = (await call("GET", "/v2/portfolio/short-term-positions", upstox))["data"]
                assert [(p["quantity"], p["product"]) for p in held] == [(0, "I")]
            assert app[DHAN_ORDERS_KEY].exchange.exchange is app[UPSTOX_ORDERS].exchange.exchange
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 10))
