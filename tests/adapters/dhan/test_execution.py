"""DhanBroker against the sandbox (``build_app``) over real sockets: orders, fills, account state."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import SecretStr

from adapters.dhan.dhan_support import run, wait_until
from adapters.dhan.test_execution_support import (
    HDFC, RELIANCE, TOKEN, OrderSandbox, Recorder, assert_books_agree, new_account, request,
)
from algocli.adapters.dhan.execution import DhanBroker, order_from_book, positions_from_book, trades_from_book
from algocli.adapters.dhan.http import DhanApiError, DhanTransientError
from algocli.adapters.dhan.order_stream import order_from_alert
from algocli.broker.protocol import AmbiguousOutcome, Broker
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.feed import FeedAuthError
from algocli.domain.models import OrderSide, OrderType


def test_the_broker_satisfies_the_protocol():
    assert isinstance(DhanBroker(), Broker)
    assert DhanBroker.name == "dhan"


def test_market_order_fills_through_the_stream_and_moves_positions_and_funds():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account), what="order-update login")
                box.publish(RELIANCE, 2500.0)
                placed = await broker.place_order(request("r1-sma-000001", quantity=10))
                assert placed.status == "OPEN" and placed.broker_order_id and placed.client_id == "r1-sma-000001"
                assert (placed.instrument, placed.side, placed.quantity) == (RELIANCE, OrderSide.BUY, 10)
                (sim,) = box.orders_of(account, "r1-sma-000001")
                assert sim.order_id == placed.broker_order_id

                box.publish(RELIANCE, 2501.5)
                await wait_until(lambda: rec.fills, what="the fill")
                (fill,) = rec.fills
                assert (fill.broker_order_id, fill.quantity, fill.price, fill.side) == (
                    placed.broker_order_id, 10, 2501.5, OrderSide.BUY)
                assert fill.trade_id == box.exchange.account(account).trades[0].trade_id  # exchangeTradeId
                assert broker.stats.fills_by_source == {"stream": 1}
                await wait_until(lambda: rec.updates and rec.updates[-1].status == "FILLED", what="FILLED")
                last = rec.updates[-1]
                assert (last.filled_quantity, last.average_price, last.client_id) == (10, 2501.5, "r1-sma-000001")

                positions = await broker.get_positions()
                assert [(p.instrument, p.quantity, p.average_price) for p in positions] == [(RELIANCE, 10, 2501.5)]
                assert (await broker.get_position(RELIANCE)).quantity == 10
                assert await broker.get_position(HDFC) is None
                opening = box.exchange.opening_cash
                assert await broker.get_balance() == pytest.approx(opening - 25_015.0)
                assert await broker.get_margin_used() == pytest.approx(25_015.0)
                box.publish(RELIANCE, 2510.0)
                assert await broker.get_margin_used() == pytest.approx(25_100.0)
                assert (await broker.get_position(RELIANCE)).last_price == pytest.approx(2510.0)
                assert [t.trade_id for t in await broker.get_trades()] == [fill.trade_id]
                assert (await broker.get_order(placed.broker_order_id)).status == "FILLED"
                assert_books_agree(box, account, rec, positions)
            finally:
                await broker.disconnect()

    run(main())


def test_limit_order_rests_is_modified_and_fills_at_its_limit():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.publish(HDFC, 1700.0)
                placed = await broker.place_order(request("lim-1", HDFC, quantity=5, order_type=OrderType.LIMIT,
                                                          limit_price=1650.0))
                assert (placed.status, placed.limit_price) == ("OPEN", 1650.0)
                box.publish(HDFC, 1690.0)  # not marketable
                changed = await broker.modify_order(placed.broker_order_id, quantity=8, price=1680.0)
                assert (changed.quantity, changed.limit_price, changed.status) == (8, 1680.0, "OPEN")
                (sim,) = box.orders_of(account, "lim-1")
                assert (sim.quantity, sim.price, sim.modifications) == (8, 1680.0, 1)
                box.publish(HDFC, 1685.0)  # still above the limit
                assert rec.fills == []
                box.publish(HDFC, 1670.0)  # trades through it: filled at the limit
                await wait_until(lambda: rec.fills, what="the limit fill")
                assert [(f.quantity, f.price) for f in rec.fills] == [(8, 1680.0)]
                await wait_until(lambda: rec.updates and rec.updates[-1].status == "FILLED")
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_cancel_then_refused_cancel_and_refused_modify():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            await broker.connect()
            try:
                placed = await broker.place_order(request("c-1", side=OrderSide.SELL, quantity=3,
                                                          order_type=OrderType.LIMIT, limit_price=9999.0))
                cancelled = await broker.cancel_order(placed.broker_order_id)
                assert cancelled.status == "CANCELLED" and cancelled.client_id == "c-1"
                assert box.orders_of(account, "c-1")[0].status == "CANCELLED"
                again = await broker.cancel_order(placed.broker_order_id)
                assert again.status == "CANCELLED" and "cancel refused" in again.reason and "DH-906" in again.reason
                with pytest.raises(DhanApiError, match="DH-906") as info:
                    await broker.modify_order(placed.broker_order_id, price=9000.0)
                assert info.value.status == 400
                assert (await broker.get_order(placed.broker_order_id)).status == "CANCELLED"
                assert not broker.needs_poll()  # nothing left to follow
            finally:
                await broker.disconnect()

    run(main())


def test_rejections_come_back_as_rejected_orders():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            await broker.connect()
            try:
                local = await broker.place_order(request("bad-1", order_type=OrderType.LIMIT, limit_price=None))
                assert (local.status, local.broker_order_id) == ("REJECTED", "")
                assert "positive limit price" in local.reason
                too_long = await broker.place_order(request("x" * 31))
                assert too_long.status == "REJECTED" and "30 characters" in too_long.reason
                assert ("POST", "/v2/orders") not in box.state.requests  # nothing was sent

                box.state.faults.reject_orders = 1
                refused = await broker.place_order(request("bad-2"))
                assert (refused.status, refused.broker_order_id) == ("REJECTED", "")
                assert "DH-906" in refused.reason and "reject_orders" in refused.reason
                assert box.orders_of(account, "bad-2") == []

                box.publish(RELIANCE, 2500.0)
                broke = await broker.place_order(request("bad-3", quantity=100_000))  # more than the cash
                assert broke.status == "REJECTED" and broke.broker_order_id
                assert "insufficient funds" in broke.reason
                assert box.orders_of(account, "bad-3")[0].status == "REJECTED"
                assert broker.stats.rejected == 3 and broker.stats.placed == 1
            finally:
                await broker.disconnect()

    run(main())


def test_find_order_by_client_id_falls_back_to_the_order_book():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, poll_interval=60.0)  # no poll in between
            await broker.connect()
            try:
                await wait_until(lambda: broker.stream.status.connected)  # its login wakes the poll once
                await asyncio.sleep(0.05)
                placed = await broker.place_order(request("find-1", order_type=OrderType.LIMIT, limit_price=10.0))
                found = await broker.find_order("find-1")
                assert found.broker_order_id == placed.broker_order_id and found.client_id == "find-1"
                assert found.limit_price == 10.0 and found.status == "OPEN"
                box.state.requests.clear()
                assert await broker.find_order("never-sent") is None
                assert box.state.requests == [("GET", "/v2/orders/external/never-sent"), ("GET", "/v2/orders")]
                assert [o.broker_order_id for o in await broker.get_orders()] == [placed.broker_order_id]
            finally:
                await broker.disconnect()

    run(main())


def test_reads_retry_transient_errors_then_give_up():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, read_retries=3, stream=False, poll_interval=60.0)  # only our reads
            await broker.connect()
            try:
                await broker.place_order(request("read-1", order_type=OrderType.LIMIT, limit_price=10.0))
                box.state.requests.clear()
                box.state.faults.read_errors = 2
                assert len(await broker.get_orders()) == 1
                assert box.state.requests.count(("GET", "/v2/orders")) == 3
                box.state.faults.read_errors = 10
                with pytest.raises(DhanTransientError, match="failed 4 times"):
                    await broker.get_positions()
                box.state.faults.read_errors = 10
                with pytest.raises(AmbiguousOutcome, match="looking up 'read-1' failed"):
                    await broker.find_order("read-1")
            finally:
                await broker.disconnect()

    run(main())


def test_a_refused_or_missing_token_is_fatal_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            wrong = DhanBroker(box.settings(account, token="SENTINEL-abc123"), poll_interval=0.2, timeout=2.0)
            with pytest.raises(FeedAuthError, match="DHAN_ACCESS_TOKEN") as info:
                await wrong.connect()
            assert "SENTINEL-abc123" not in str(info.value) and "DH-901" in str(info.value)
            await wrong.disconnect()

            empty = DhanBroker(lambda: DhanSettings(client_id="", access_token=SecretStr(""), api_base_url=box.rest))
            with pytest.raises(FeedAuthError, match="DHAN_CLIENT_ID"):
                await empty.connect()
            assert box.state.requests == [("GET", "/v2/trades")]  # only the refused one

            good = box.broker(account)
            await good.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.publish(RELIANCE, 100.0)
                await good.place_order(request("tok-1", quantity=1))
                box.publish(RELIANCE, 101.0)
                await wait_until(lambda: good.stats.fills == 1)
            finally:
                await good.disconnect()

    run(main())
    assert "SENTINEL-abc123" not in caplog.text and TOKEN not in caplog.text


def test_the_stream_refusing_a_login_is_fatal_for_the_stream_only():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.state.faults.drop_order_stream = 1
                box.hub.faults.reject_tokens = True  # the next login is refused
                box.exchange.place(account, instrument=RELIANCE, side="BUY", quantity=1, order_type="LIMIT",
                                   price=10.0, client_id="elsewhere-1")  # an alert, then the drop
                await wait_until(lambda: broker.stream.status.fatal is not None, what="the refused re-login")
                fatal = broker.stream.status.fatal
                assert isinstance(fatal, FeedAuthError) and "DHAN_ACCESS_TOKEN" in str(fatal)
                assert box.state.sessions[0].dropped and box.state.sessions[-1].rejected == "authentication failed"
                sessions = len(box.state.sessions)
                await asyncio.sleep(0.3)
                assert len(box.state.sessions) == sessions  # no reconnection storm
            finally:
                await broker.disconnect()

    run(main())


def test_alert_and_book_parsing():
    alert = {"Exchange": "NSE", "Segment": "D", "SecurityId": "35001", "OrderNo": "42", "TxnType": "S",
             "OrderType": "LMT", "Product": "M", "Quantity": "75", "TradedQty": 25, "Price": "101.5",
             "AvgTradedPrice": 101.6, "Status": "Pending", "ReasonDescription": "CONFIRMED",
             "LastUpdatedTime": "2026-03-04 11:00:05", "CorrelationId": "c-9"}
    order = order_from_alert(alert)
    assert (order.instrument, order.side, order.order_type, order.product) == (
        "NSE_FNO:35001", OrderSide.SELL, OrderType.LIMIT, "MARGIN")
    assert (order.quantity, order.filled_quantity, order.limit_price, order.status) == (75, 25, 101.5,
                                                                                       "PARTIALLY_FILLED")
    assert order.updated_ts == 1_772_602_205 * 10**9 and order.reason == "" and order.client_id == "c-9"
    for word, ours in (("TRANSIT", "PENDING"), ("Cancelled", "CANCELLED"), ("TRADED", "FILLED"),
                       ("expired", "EXPIRED"), ("REJECTED", "REJECTED"), ("PART_TRADED", "PARTIALLY_FILLED")):
        assert order_from_alert({**alert, "Status": word, "TradedQty": 0}).status == ours
    assert order_from_alert({**alert, "OrderType": "SLM"}).order_type is OrderType.MARKET

    row = {"orderId": "7", "correlationId": "", "orderStatus": "REJECTED", "transactionType": "BUY",
           "exchangeSegment": "NSE_EQ", "securityId": "1333", "quantity": 4, "orderType": "MARKET", "price": 0,
           "filledQty": 0, "omsErrorDescription": "RMS: margin", "productType": "CNC"}
    booked = order_from_book(row)
    assert (booked.client_id, booked.status, booked.reason, booked.limit_price) == (None, "REJECTED", "RMS: margin",
                                                                                   None)
    trades = trades_from_book([{"orderId": "7", "exchangeTradeId": "", "tradedQuantity": 2, "tradedPrice": 5},
                               {"orderId": "7", "exchangeTradeId": "", "tradedQuantity": 3, "tradedPrice": 6},
                               {"orderId": "8", "exchangeTradeId": "EX1", "tradedQuantity": 1, "tradedPrice": 7}])
    assert [t.trade_id for t in trades] == ["7-2", "7-5", "EX1"]
    merged = positions_from_book([
        {"exchangeSegment": "NSE_EQ", "securityId": "1", "netQty": 10, "costPrice": 100.0, "unrealizedProfit": 50.0,
         "realizedProfit": 5.0},
        {"exchangeSegment": "NSE_EQ", "securityId": "1", "netQty": 30, "costPrice": 110.0, "unrealizedProfit": -60.0,
         "realizedProfit": 0.0}])
    (pos,) = merged
    assert (pos.quantity, pos.average_price, pos.realized_pnl, pos.last_price) == (40, 107.5, 5.0, 108.0)
