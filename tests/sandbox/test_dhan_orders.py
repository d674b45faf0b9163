"""The sandbox's Dhan order routes and order-update stream, spoken to with plain aiohttp on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from algocli.domain.models import Tick
from algocli.sandbox.app import build_app
from algocli.sandbox.dhan_orders import DHAN_ORDERS_KEY, MAX_MODIFICATIONS
from algocli.sandbox.hub import TickHub

TOKEN = "tok-sandbox"
ACCOUNT = "1100009999"
HEADERS = {"access-token": TOKEN, "client-id": ACCOUNT}


def _tick(instrument: str, ltp: float) -> Tick:
    return Tick(instrument, 1_772_602_200 * 10**9, ltp, 1, 100, None, None, None, None, None)


class Box:
    def __init__(self) -> None:
        self.hub = TickHub(valid_tokens={TOKEN})
        self.app = build_app(self.hub, upstox=False)
        self.runner = web.AppRunner(self.app, shutdown_timeout=1.0)

    @property
    def exchange(self):
        """The Dhan venue of the sandbox's exchange: the accounts these routes serve."""
        return self.app[DHAN_ORDERS_KEY].exchange

    async def __aenter__(self) -> Box:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await self.runner.cleanup()

    async def call(self, method: str, path: str, body=None, headers=HEADERS) -> tuple[int, object]:
        data = body if isinstance(body, str) else (json.dumps(body) if body is not None else None)
        async with self.http.request(method, self.base + path, data=data, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def run(coro, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


ORDER = {"dhanClientId": ACCOUNT, "transactionType": "BUY", "exchangeSegment": "NSE_EQ", "productType": "INTRADAY",
         "orderType": "LIMIT", "validity": "DAY", "securityId": "1333", "quantity": 5, "price": 1650.0}


def test_place_coerces_numeric_strings_and_answers_dhans_shape():
    async def main():
        async with Box() as box:
            body = {**ORDER, "quantity": "5", "price": "1650.5", "triggerPrice": "", "disclosedQuantity": "",
                    "correlationId": "docs-style", "orderType": "limit"}
            status, answer = await box.call("POST", "/v2/orders", body)
            assert status == 200 and set(answer) == {"orderId", "orderStatus"} and answer["orderStatus"] == "PENDING"
            sim = box.exchange.account(ACCOUNT).orders[answer["orderId"]]
            assert (sim.quantity, sim.price, sim.order_type, sim.client_id, sim.instrument) == (
                5, 1650.5, "LIMIT", "docs-style", "NSE_EQ:1333")
            status, row = await box.call("GET", f"/v2/orders/{answer['orderId']}")
            assert status == 200 and (row["triggerPrice"], row["disclosedQuantity"], row["orderType"]) == (0.0, 0,
                                                                                                         "LIMIT")
            status, rows = await box.call("GET", "/v2/orders")
            assert isinstance(rows, list) and rows == [row]

    run(main())


@pytest.mark.parametrize(("change", "message"), [
    ({"quantity": "five"}, "quantity must be a number"),
    ({"quantity": 2.5}, "whole number"),
    ({"transactionType": "HOLD"}, "transactionType"),
    ({"exchangeSegment": "NYSE"}, "exchangeSegment"),
    ({"securityId": ""}, "securityId is missing"),
    ({"correlationId": "c" * 31}, "longer than 30"),
])
def test_bad_input_is_refused_with_dh_905_and_places_nothing(change, message):
    async def main():
        async with Box() as box:
            status, answer = await box.call("POST", "/v2/orders", {**ORDER, **change})
            assert status == 400 and answer["errorCode"] == "DH-905" and answer["errorType"] == "Input_Exception"
            assert message in answer["errorMessage"]
            assert box.exchange.account(ACCOUNT).orders == {}

    run(main())


def test_authentication_and_account_rules():
    async def main():
        async with Box() as box:
            status, answer = await box.call("GET", "/v2/orders", headers={"access-token": "nope", "client-id": ACCOUNT})
            assert status == 401 and answer["errorCode"] == "DH-901"
            status, answer = await box.call("GET", "/v2/fundlimit", headers={"client-id": ACCOUNT})
            assert status == 401 and answer["errorCode"] == "DH-901"
            status, answer = await box.call("GET", "/v2/positions", headers={"access-token": TOKEN})
            assert status == 400 and "client-id" in answer["errorMessage"]
            status, answer = await box.call("POST", "/v2/orders", ORDER, headers={"access-token": TOKEN})
            assert status == 200  # the account from the body's dhanClientId
            status, other = await box.call("GET", "/v2/orders", headers={"access-token": TOKEN, "client-id": "other"})
            assert other == []  # accounts do not see each other's orders
            status, mine = await box.call("GET", "/v2/orders")
            assert [o["orderId"] for o in mine] == [answer["orderId"]]

    run(main())


def test_modify_limit_cancel_and_lookups():
    async def main():
        async with Box() as box:
            _, placed = await box.call("POST", "/v2/orders", {**ORDER, "correlationId": "m-1"})
            oid = placed["orderId"]
            for i in range(MAX_MODIFICATIONS):
                status, answer = await box.call("PUT", f"/v2/orders/{oid}", {"orderId": oid, "orderType": "LIMIT",
                                                                             "quantity": 5 + i, "price": 1600 + i})
                assert status == 200 and answer == {"orderId": oid, "orderStatus": "PENDING"}
            status, answer = await box.call("PUT", f"/v2/orders/{oid}", {"orderType": "LIMIT", "price": 1})
            assert status == 400 and answer["errorCode"] == "DH-906" and "25" in answer["errorMessage"]
            status, answer = await box.call("GET", "/v2/orders/external/m-1")
            assert status == 200 and answer["orderId"] == oid and answer["quantity"] == 5 + MAX_MODIFICATIONS - 1
            status, answer = await box.call("GET", "/v2/orders/external/missing")
            assert status == 404 and answer["errorCode"] == "DH-907"
            status, answer = await box.call("DELETE", f"/v2/orders/{oid}")
            assert status == 202 and answer == {"orderId": oid, "orderStatus": "CANCELLED"}
            status, answer = await box.call("DELETE", f"/v2/orders/{oid}")
            assert status == 400 and answer["errorCode"] == "DH-906"
            status, answer = await box.call("GET", "/v2/orders/999")
            assert status == 404

    run(main())


def test_fills_show_in_trades_positions_and_funds():
    async def main():
        async with Box() as box:
            exchange = box.exchange
            box.hub.publish(_tick("NSE_EQ:1333", 1700.0))
            _, buy = await box.call("POST", "/v2/orders", {**ORDER, "orderType": "MARKET", "price": "", "quantity": 10})
            box.hub.publish(_tick("NSE_EQ:1333", 1710.0))
            _, sell = await box.call("POST", "/v2/orders", {**ORDER, "orderType": "MARKET", "price": 0,
                                                            "transactionType": "SELL", "quantity": 4})
            box.hub.publish(_tick("NSE_EQ:1333", 1720.0))
            for path in ("/v2/trades", "/v2/trades/"):
                _, trades = await box.call("GET", path)
                assert [(t["orderId"], t["tradedQuantity"], t["tradedPrice"]) for t in trades] == [
                    (buy["orderId"], 10, 1710.0), (sell["orderId"], 4, 1720.0)]
                assert [t["exchangeTradeId"] for t in trades] == [t.trade_id for t in exchange.account(ACCOUNT).trades]
            _, only = await box.call("GET", f"/v2/trades/{sell['orderId']}")
            assert [t["orderId"] for t in only] == [sell["orderId"]]
            _, (pos,) = await box.call("GET", "/v2/positions")
            assert (pos["netQty"], pos["buyQty"], pos["sellQty"], pos["buyAvg"], pos["sellAvg"], pos["costPrice"],
                    pos["realizedProfit"], pos["unrealizedProfit"]) == (6, 10, 4, 1710.0, 1720.0, 1710.0, 40.0, 60.0)
            _, funds = await box.call("GET", "/v2/fundlimit")
            assert funds["availabelBalance"] == pytest.approx(exchange.opening_cash - 17_100 + 6_880)
            assert funds["utilizedAmount"] == pytest.approx(6 * 1720.0)
            _, row = await box.call("GET", f"/v2/orders/{buy['orderId']}")
            assert (row["orderStatus"], row["filledQty"], row["averageTradedPrice"], row["remainingQuantity"]) == (
                "TRADED", 10, 1710.0, 0)

    run(main())


def test_fault_switches_over_http():
    async def main():
        async with Box() as box:
            status, faults = await box.call("GET", "/sandbox/dhan/faults", headers={})
            assert status == 200 and faults["http_429"] == 0 and faults["duplicate_fills"] is False
            status, faults = await box.call("POST", "/sandbox/dhan/faults",
                                            {"http_429": 1, "early_fills": True, "hang_seconds": "0.5"}, headers={})
            assert status == 200 and faults["http_429"] == 1 and faults["hang_seconds"] == 0.5
            assert box.exchange.faults.early_fills is True
            status, answer = await box.call("POST", "/sandbox/dhan/faults", {"explode": 1}, headers={})
            assert status == 400 and "explode" in answer["errorMessage"] and "http_429" in answer["errorMessage"]

            status, answer = await box.call("POST", "/v2/orders", ORDER)
            assert status == 429 and answer["errorCode"] == "DH-904"
            assert box.exchange.account(ACCOUNT).orders == {}  # 429: nothing placed
            status, _ = await box.call("POST", "/v2/orders", ORDER)
            assert status == 200  # the count ran out

            box.app[DHAN_ORDERS_KEY].faults.error_500_after_accept = 1
            status, answer = await box.call("POST", "/v2/orders", ORDER)
            assert status == 500 and answer["errorCode"] == "DH-908"
            assert len(box.exchange.account(ACCOUNT).orders) == 2  # 500 after the exchange took it

            box.app[DHAN_ORDERS_KEY].faults.timeout_after_accept = 1  # answered after hang_seconds
            started = time.monotonic()
            status, answer = await box.call("POST", "/v2/orders", ORDER)
            assert status == 200 and time.monotonic() - started >= 0.45
            assert len(box.exchange.account(ACCOUNT).orders) == 3

    run(main())


def test_a_hanging_answer_does_not_hold_up_the_shutdown():
    async def main():
        box = Box()
        await box.__aenter__()
        box.app[DHAN_ORDERS_KEY].faults.timeout_after_accept = 1  # hangs for 30 s by default
        with pytest.raises(asyncio.TimeoutError):
            await box.http.post(box.base + "/v2/orders", json=ORDER, headers=HEADERS,
                                timeout=aiohttp.ClientTimeout(total=0.3))
        started = time.monotonic()
        await box.__aexit__(None, None, None)
        assert time.monotonic() - started < 2.0

    run(main())


async def _login(box: Box, client_id: str = ACCOUNT, token: str = TOKEN, code=42):
    ws = await box.http.ws_connect(box.base.replace("http", "ws") + "/dhan/orders")
    await ws.send_str(json.dumps({"LoginReq": {"MsgCode": code, "ClientId": client_id, "Token": token},
                                  "UserType": "SELF"}))
    return ws


def test_order_stream_login_and_alerts():
    async def main():
        async with Box() as box:
            state = box.app[DHAN_ORDERS_KEY]
            refused = await _login(box, token="bad")
            msg = await refused.receive(timeout=2)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008 and msg.extra == "authentication failed"
            await refused.close()

            ws = await _login(box, code="42")  # the docs quote the code as a string once
            other = await _login(box, client_id="someone-else")
            deadline = time.monotonic() + 2
            while sum(s.logged_in for s in state.sessions) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            box.hub.publish(_tick("NSE_EQ:1333", 1700.0))
            _, placed = await box.call("POST", "/v2/orders", {**ORDER, "orderType": "MARKET", "price": 0,
                                                              "correlationId": "ws-1", "productType": "CNC",
                                                              "quantity": 10})
            box.hub.publish(_tick("NSE_EQ:1333", 1701.0))
            alerts = [json.loads((await ws.receive(timeout=2)).data) for _ in range(3)]
            assert all(a["Type"] == "order_alert" for a in alerts)
            data = [a["Data"] for a in alerts]
            assert [(d["Status"], d["TradedQty"]) for d in data] == [("PENDING", 0), ("TRADED", 10), ("TRADED", 10)]
            first = data[0]
            assert (first["OrderNo"], first["CorrelationId"], first["ClientId"], first["Product"], first["Quantity"],
                    first["RemainingQuantity"], first["OrderType"]) == (placed["orderId"], "ws-1", ACCOUNT, "C", 10, 10,
                                                                        "MKT")
            assert (data[1]["TradedPrice"], data[1]["AvgTradedPrice"], data[1]["RemainingQuantity"]) == (1701.0,
                                                                                                         1701.0, 0)
            with pytest.raises(asyncio.TimeoutError):
                await other.receive(timeout=0.2)  # another account hears nothing
            await ws.close()
            await other.close()

    run(main())


def test_drop_order_stream_aborts_each_socket_after_n_messages():
    async def main():
        async with Box() as box:
            state = box.app[DHAN_ORDERS_KEY]
            state.faults.drop_order_stream = 2
            ws = await _login(box)
            deadline = time.monotonic() + 2
            while not any(s.logged_in for s in state.sessions):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            for i in range(3):
                await box.call("POST", "/v2/orders", {**ORDER, "correlationId": f"d-{i}"})
            got = []
            while True:
                msg = await ws.receive(timeout=2)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                got.append(json.loads(msg.data)["Data"]["CorrelationId"])
            assert got == ["d-0", "d-1"] and state.sessions[0].dropped and not state.sessions[0].open

    run(main())
