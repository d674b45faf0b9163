"""What both sandbox order servers share: one account per broker protocol and identity, replay-clock times.

Everything is spoken over real sockets on 127.0.0.1 to ``build_app`` with both protocols
mounted, the way ``algo sandbox`` serves them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import aiohttp
import pytest
from aiohttp import web
from sandbox.sandbox_support import until

from algocli.domain.models import Tick
from algocli.sandbox.app import build_app
from algocli.sandbox.dhan_orders import DHAN_ORDERS_KEY
from algocli.sandbox.hub import TickHub
from algocli.sandbox.replay import IST, to_utc_ns

INST = "NSE_EQ:1333"
PLACED_AT = to_utc_ns(datetime(2024, 6, 14, 10, 0))  # replay time: far from the wall clock
FILLED_AT = to_utc_ns(datetime(2024, 6, 14, 10, 1, 30))
DHAN_ORDER = {"transactionType": "BUY", "exchangeSegment": "NSE_EQ", "productType": "INTRADAY",
              "orderType": "MARKET", "validity": "DAY", "securityId": "1333", "quantity": 5, "price": 0}
UPSTOX_ORDER = {"quantity": 5, "product": "I", "validity": "DAY", "price": 0, "tag": "u-1",
                "instrument_token": "NSE_EQ|1333", "order_type": "MARKET", "transaction_type": "BUY",
                "disclosed_quantity": 0, "trigger_price": 0, "is_amo": False}


def _ist(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S")


def _dhan(client_id: str, token: str = "sandbox") -> dict:
    return {"access-token": token, "client-id": client_id}


def _upstox(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Both:
    """``build_app`` with the Dhan and the Upstox protocols on one port, any token accepted."""

    def __init__(self) -> None:
        self.hub = TickHub()
        self.app = build_app(self.hub)
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.5, access_log=None)

    async def __aenter__(self) -> Both:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await self.runner.cleanup()

    def tick(self, ts: int, price: float) -> None:
        self.hub.publish(Tick(INST, ts, price, 1, 100))

    async def call(self, method: str, path: str, headers: dict, body: dict | None = None):
        async with self.http.request(method, self.base + path, json=body, headers=headers) as resp:
            assert resp.status in (200, 202), (resp.status, await resp.text())
            return await resp.json()

    async def upstox(self, path: str, token: str):
        return (await self.call("GET", path, _upstox(token)))["data"]

    async def upstox_stream(self, token: str) -> aiohttp.ClientWebSocketResponse:
        uri = (await self.upstox("/v2/feed/portfolio-stream-feed/authorize", token))["authorized_redirect_uri"]
        return await self.http.ws_connect(uri)

    async def streams(self, client_id: str, token: str):
        """A Dhan order-update socket logged in as ``client_id`` and an Upstox one for ``token``."""
        dhan = await self.http.ws_connect(self.base.replace("http", "ws") + "/dhan/orders")
        await dhan.send_str(json.dumps({"LoginReq": {"MsgCode": 42, "ClientId": client_id, "Token": "sandbox"},
                                        "UserType": "SELF"}))
        sessions = self.app[DHAN_ORDERS_KEY].sessions
        await until(lambda: any(s.logged_in and s.account == client_id for s in sessions), what="the Dhan login")
        return dhan, await self.upstox_stream(token)


async def _texts(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict]:
    return [json.loads((await ws.receive(timeout=3)).data) for _ in range(count)]


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


def test_a_dhan_fill_stays_out_of_the_upstox_books_and_each_identity_has_its_own_account():
    async def main():
        async with Both() as box:
            box.tick(PLACED_AT, 100.0)
            await box.call("POST", "/v2/orders", _dhan("sandbox"), DHAN_ORDER)  # DHAN_CLIENT_ID=sandbox, as printed
            box.tick(FILLED_AT, 101.0)
            (position,) = await box.call("GET", "/v2/positions", _dhan("sandbox"))
            assert position["netQty"] == 5

            # UPSTOX_ACCESS_TOKEN=sandbox, as printed: the same word, another broker's account
            assert await box.upstox("/v2/portfolio/short-term-positions", "sandbox") == []
            assert await box.upstox("/v2/order/retrieve-all", "sandbox") == []
            assert await box.upstox("/v2/order/trades/get-trades-for-day", "sandbox") == []
            funds = await box.upstox("/v2/user/get-funds-and-margin", "sandbox")
            assert funds["equity"]["used_margin"] == 0.0

            # another client id on Dhan, another token on Upstox: books of their own
            assert await box.call("GET", "/v2/positions", _dhan("1100000002")) == []
            assert await box.call("GET", "/v2/orders", _dhan("1100000002")) == []
            other = await box.call("GET", "/v2/fundlimit", _dhan("1100000002"))
            mine = await box.call("GET", "/v2/fundlimit", _dhan("sandbox"))
            assert other["availabelBalance"] == other["sodLimit"] > mine["availabelBalance"]
            await box.call("POST", "/v3/order/place", _upstox("sandbox"), UPSTOX_ORDER)
            box.tick(FILLED_AT + 60 * 10**9, 102.0)
            (upstox_position,) = await box.upstox("/v2/portfolio/short-term-positions", "sandbox")
            assert upstox_position["quantity"] == 5
            assert await box.upstox("/v2/portfolio/short-term-positions", "another-token") == []
            assert await box.upstox("/v2/order/retrieve-all", "another-token") == []
            (position,) = await box.call("GET", "/v2/positions", _dhan("sandbox"))
            assert position["netQty"] == 5  # the Upstox fill did not reach the Dhan account either
            assert len(await box.call("GET", "/v2/trades", _dhan("sandbox"))) == 1

    run(main())


def test_order_streams_carry_only_their_own_protocols_account():
    async def main():
        async with Both() as box:
            dhan_ws, upstox_ws = await box.streams("sandbox", "sandbox")
            box.tick(PLACED_AT, 100.0)
            await box.call("POST", "/v2/orders", _dhan("sandbox"), DHAN_ORDER)
            assert (await _texts(dhan_ws, 1))[0]["Data"]["Status"] == "PENDING"
            with pytest.raises(asyncio.TimeoutError):  # the Upstox account "sandbox" hears nothing of it
                await upstox_ws.receive(timeout=0.3)
            await dhan_ws.close()
            await upstox_ws.close()

    run(main())


def test_order_book_and_stream_times_follow_the_replay_clock_on_both_brokers():
    async def main():
        async with Both() as box:
            dhan_ws, upstox_ws = await box.streams("1100000001", "tok")
            box.tick(PLACED_AT, 100.0)
            dhan = await box.call("POST", "/v2/orders", _dhan("1100000001"), DHAN_ORDER)
            upstox = (await box.call("POST", "/v3/order/place", _upstox("tok"), UPSTOX_ORDER))["data"]
            box.tick(FILLED_AT, 101.0)

            row = await box.call("GET", f"/v2/orders/{dhan['orderId']}", _dhan("1100000001"))
            (trade,) = await box.call("GET", "/v2/trades", _dhan("1100000001"))
            assert (row["createTime"], row["updateTime"], row["exchangeTime"]) == (
                _ist(PLACED_AT), _ist(FILLED_AT), _ist(FILLED_AT))
            assert trade["exchangeTime"] == row["updateTime"]  # the book and the trade on one clock
            alerts = [a["Data"] for a in await _texts(dhan_ws, 3)]
            assert [(a["Status"], a["OrderDateTime"], a["LastUpdatedTime"]) for a in alerts] == [
                ("PENDING", _ist(PLACED_AT), _ist(PLACED_AT)), ("TRADED", _ist(PLACED_AT), _ist(FILLED_AT)),
                ("TRADED", _ist(PLACED_AT), _ist(FILLED_AT))]

            (order,) = await box.upstox("/v2/order/retrieve-all", "tok")
            (fill,) = await box.upstox("/v2/order/trades/get-trades-for-day", "tok")
            assert order["order_id"] == upstox["order_ids"][0]
            assert (order["order_timestamp"], order["exchange_timestamp"]) == (_ist(PLACED_AT), _ist(FILLED_AT))
            assert (fill["order_timestamp"], fill["exchange_timestamp"]) == (_ist(PLACED_AT), _ist(FILLED_AT))
            updates = await _texts(upstox_ws, 3)
            assert [(u["status"], u["order_timestamp"], u["exchange_timestamp"]) for u in updates] == [
                ("put order req received", _ist(PLACED_AT), None), ("open", _ist(PLACED_AT), _ist(PLACED_AT)),
                ("complete", _ist(PLACED_AT), _ist(FILLED_AT))]
            await dhan_ws.close()
            await upstox_ws.close()

    run(main())
