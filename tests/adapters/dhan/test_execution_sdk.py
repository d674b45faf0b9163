"""The official ``dhanhq`` SDK (2.3.0, a test-only peer) trades against the sandbox's Dhan order routes.

The SDK's HTTP client is blocking (``requests``), so its calls run in a worker thread while the
sandbox serves from the test's event loop. Its base URL is pointed at the sandbox the way
the dhanhq SDK reads (``dhan_http.base_url``); its ``OrderUpdate`` client at ``order_feed_wss``.
"""

from __future__ import annotations

import asyncio

from dhanhq import DhanContext, OrderUpdate, dhanhq

from adapters.dhan.dhan_support import run, wait_until
from adapters.dhan.test_execution_support import TOKEN, OrderSandbox, new_account

BOOK_FIELDS = {
    "dhanClientId", "orderId", "correlationId", "orderStatus", "transactionType", "exchangeSegment", "productType",
    "orderType", "validity", "tradingSymbol", "securityId", "quantity", "disclosedQuantity", "price", "triggerPrice",
    "afterMarketOrder", "boProfitValue", "boStopLossValue", "legName", "createTime", "updateTime", "exchangeTime",
    "drvExpiryDate", "drvOptionType", "drvStrikePrice", "omsErrorCode", "omsErrorDescription", "algoId",
    "remainingQuantity", "averageTradedPrice", "filledQty",
}
TRADE_FIELDS = {
    "dhanClientId", "orderId", "exchangeOrderId", "exchangeTradeId", "transactionType", "exchangeSegment",
    "productType", "orderType", "tradingSymbol", "securityId", "tradedQuantity", "tradedPrice", "createTime",
    "updateTime", "exchangeTime", "drvExpiryDate", "drvOptionType", "drvStrikePrice",
}
POSITION_FIELDS = {
    "dhanClientId", "tradingSymbol", "securityId", "positionType", "exchangeSegment", "productType", "buyAvg",
    "buyQty", "costPrice", "sellAvg", "sellQty", "netQty", "realizedProfit", "unrealizedProfit", "rbiReferenceRate",
    "multiplier", "crossCurrency", "carryForwardBuyQty", "carryForwardSellQty", "carryForwardBuyValue",
    "carryForwardSellValue", "dayBuyQty", "daySellQty", "dayBuyValue", "daySellValue", "drvExpiryDate",
    "drvOptionType", "drvStrikePrice",
}
FUND_FIELDS = {"dhanClientId", "availabelBalance", "sodLimit", "collateralAmount", "receiveableAmount",
               "utilizedAmount", "blockedPayoutAmount", "withdrawableBalance"}
ALERT_FIELDS = {
    "Exchange", "Segment", "Source", "SecurityId", "ClientId", "ExchOrderNo", "OrderNo", "Product", "TxnType",
    "OrderType", "Validity", "DiscQuantity", "DiscQtyRem", "RemainingQuantity", "Quantity", "TradedQty", "Price",
    "TriggerPrice", "TradedPrice", "AvgTradedPrice", "OrderDateTime", "ExchOrderTime", "LastUpdatedTime", "Status",
    "ReasonDescription", "Remarks", "MktType", "LegNo", "OffMktFlag", "AlgoOrdNo", "Instrument", "Symbol",
    "ProductName", "LotSize", "StrikePrice", "ExpiryDate", "OptType", "DisplayName", "Isin", "Series", "TickSize",
    "Multiplier", "GoodTillDaysDate", "RefLtp", "AlgoId", "CorrelationId",
}


def _sdk(box: OrderSandbox, account: str, token: str = TOKEN) -> dhanhq:
    sdk = dhanhq(DhanContext(account, token))
    sdk.dhan_http.base_url = box.rest
    sdk.dhan_http.timeout = 5
    return sdk


def _ok(answer: dict):
    assert answer["status"] == "success", answer
    return answer["data"]


def test_the_sdk_places_modifies_cancels_and_reads_orders():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            sdk = _sdk(box, account)
            call = asyncio.to_thread
            placed = _ok(await call(sdk.place_order, security_id="2885", exchange_segment=sdk.NSE,
                                    transaction_type=sdk.BUY, quantity=10, order_type=sdk.LIMIT,
                                    product_type=sdk.INTRA, price=2400.0, tag="sdk-1"))
            assert set(placed) == {"orderId", "orderStatus"} and placed["orderStatus"] == "PENDING"
            order_id = placed["orderId"]
            (sim,) = box.orders_of(account, "sdk-1")
            assert (sim.order_id, sim.instrument, sim.quantity, sim.price, sim.product) == (
                order_id, "NSE_EQ:2885", 10, 2400.0, "INTRADAY")

            modified = _ok(await call(sdk.modify_order, order_id, sdk.LIMIT, "", 12, 2410.5, 0, 0, sdk.DAY))
            assert modified == {"orderId": order_id, "orderStatus": "PENDING"}
            assert (sim.quantity, sim.price) == (12, 2410.5)

            one = _ok(await call(sdk.get_order_by_id, order_id))
            assert set(one) == BOOK_FIELDS
            assert (one["correlationId"], one["quantity"], one["price"], one["remainingQuantity"]) == (
                "sdk-1", 12, 2410.5, 12)
            assert len(one["createTime"]) == 19 and one["createTime"][10] == " "
            assert _ok(await call(sdk.get_order_by_correlationID, "sdk-1"))["orderId"] == order_id
            book = _ok(await call(sdk.get_order_list))
            assert isinstance(book, list) and [o["orderId"] for o in book] == [order_id]

            cancelled = _ok(await call(sdk.cancel_order, order_id))
            assert cancelled == {"orderId": order_id, "orderStatus": "CANCELLED"}
            refused = await call(sdk.cancel_order, order_id)
            assert refused["status"] == "failure" and refused["remarks"]["error_code"] == "DH-906"

            wrong = await call(_sdk(box, account, token="not-the-token").get_order_list)
            assert wrong["status"] == "failure"
            assert wrong["remarks"]["error_code"] == "DH-901"
            assert wrong["remarks"]["error_type"] == "Invalid_Authentication"

    run(main())


def test_the_sdk_reads_trades_positions_and_funds():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            sdk = _sdk(box, account)
            call = asyncio.to_thread
            box.publish("NSE_EQ:1333", 1700.0)
            placed = _ok(await call(sdk.place_order, security_id="1333", exchange_segment=sdk.NSE,
                                    transaction_type=sdk.BUY, quantity=10, order_type=sdk.MARKET,
                                    product_type=sdk.CNC, price=0))
            box.publish("NSE_EQ:1333", 1710.0)
            assert _ok(await call(sdk.get_order_by_id, placed["orderId"]))["orderStatus"] == "TRADED"

            trades = _ok(await call(sdk.get_trade_book))  # the SDK asks for /trades/
            assert isinstance(trades, list) and len(trades) == 1 and set(trades[0]) == TRADE_FIELDS
            trade = trades[0]
            sim = box.exchange.account(account).trades[0]
            assert (trade["orderId"], trade["exchangeTradeId"], trade["tradedQuantity"], trade["tradedPrice"]) == (
                placed["orderId"], sim.trade_id, 10, 1710.0)
            assert _ok(await call(sdk.get_trade_book, placed["orderId"])) == trades

            (position,) = _ok(await call(sdk.get_positions))
            assert set(position) == POSITION_FIELDS
            assert (position["netQty"], position["buyQty"], position["buyAvg"], position["positionType"],
                    position["productType"], position["securityId"]) == (10, 10, 1710.0, "LONG", "CNC", "1333")

            funds = _ok(await call(sdk.get_fund_limits))
            assert set(funds) == FUND_FIELDS  # Dhan's spellings, typos included
            assert funds["availabelBalance"] == box.exchange.opening_cash - 17_100.0
            assert funds["utilizedAmount"] == 17_100.0 and funds["sodLimit"] == box.exchange.opening_cash

    run(main())


def test_the_sdk_order_update_client_receives_order_alerts():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            sdk = _sdk(box, account)
            listener = OrderUpdate(DhanContext(account, TOKEN))
            listener.order_feed_wss = box.ws
            received: list[dict] = []
            listener.on_update = received.append
            task = asyncio.get_running_loop().create_task(listener.connect_order_update())
            try:
                await wait_until(lambda: box.stream_ready(account), what="the SDK's login")
                session = box.state.sessions[-1]
                assert (session.client_id, session.token) == (account, TOKEN)
                box.publish("NSE_EQ:2885", 2500.0)
                placed = _ok(await asyncio.to_thread(
                    sdk.place_order, security_id="2885", exchange_segment=sdk.NSE, transaction_type=sdk.SELL,
                    quantity=4, order_type=sdk.MARKET, product_type=sdk.INTRA, price=0, tag="ou-1"))
                box.publish("NSE_EQ:2885", 2499.0)
                await wait_until(lambda: len(received) >= 3, what="PENDING, TRADED (trade) and TRADED (order)")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert all(m["Type"] == "order_alert" and set(m["Data"]) == ALERT_FIELDS for m in received)
            first, *rest = [m["Data"] for m in received]
            assert (first["OrderNo"], first["Status"], first["TradedQty"], first["CorrelationId"]) == (
                placed["orderId"], "PENDING", 0, "ou-1")
            assert (first["Exchange"], first["Segment"], first["TxnType"], first["OrderType"], first["Product"]) == (
                "NSE", "E", "S", "MKT", "I")
            assert {(d["Status"], d["TradedQty"], d["TradedPrice"]) for d in rest} == {("TRADED", 4, 2499.0)}

    run(main())
