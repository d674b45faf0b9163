"""The sandbox's Upstox order, portfolio, funds and portfolio-stream routes.

The official SDK (``upstox-python-sdk``, a test-only peer) is pointed at the sandbox with
``Configuration().host`` and ``.order_host`` (the upstox-python-sdk README) and parses every answer into
its own models; raw aiohttp requests check what the SDK does not look at (auth, limits,
faults, the single-use stream codes).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
import upstox_client
from adapters.upstox.upstox_support import until
from aiohttp import web
from upstox_client.feeder.portfolio_data_feeder import PortfolioDataFeeder
from upstox_client.rest import ApiException

from algocli.domain.models import Tick
from algocli.sandbox.app import build_app
from algocli.sandbox.exchange import Venue
from algocli.sandbox.hub import TickHub
from algocli.sandbox.upstox_orders import UPSTOX_ORDERS, UpstoxOrders

INST, KEY = "NSE_EQ:1333", "NSE_EQ|1333"
LIMIT_S = 15.0


@dataclass
class Box:
    hub: TickHub
    app: web.Application
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchange(self) -> Venue:
        return self.app[UPSTOX_ORDERS].exchange  # the Upstox venue: the accounts these routes serve

    @property
    def state(self) -> UpstoxOrders:
        return self.app[UPSTOX_ORDERS]

    def tick(self, price: float) -> None:
        self.hub.publish(Tick(INST, time.time_ns(), price, 1))


@asynccontextmanager
async def sandbox(tokens: tuple[str, ...] = ()):
    hub = TickHub(valid_tokens=set(tokens))
    app = build_app(hub, dhan=False)
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Box(hub, app, runner.addresses[0][1])
    finally:
        await runner.cleanup()


def run(main) -> None:
    asyncio.run(asyncio.wait_for(main(), LIMIT_S))


def sdk_client(box: Box, token: str) -> upstox_client.ApiClient:
    configuration = upstox_client.Configuration()
    configuration.host = box.url
    configuration.order_host = box.url
    configuration.access_token = token
    return upstox_client.ApiClient(configuration)


def v3_order(tag: str, quantity: int = 5, order_type: str = "MARKET", price: float = 0.0,
             side: str = "BUY") -> upstox_client.PlaceOrderV3Request:
    return upstox_client.PlaceOrderV3Request(
        quantity=quantity, product="I", validity="DAY", price=price, tag=tag, instrument_token=KEY,
        order_type=order_type, transaction_type=side, disclosed_quantity=0, trigger_price=0.0, is_amo=False,
        slice=False)


def error_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["status"] == "error"
    return body["errors"][0]


def test_official_sdk_places_modifies_cancels_and_reads_everything():
    async def main():
        async with sandbox() as box:
            box.tick(100.0)
            api = sdk_client(box, "sdk-a")
            v3 = upstox_client.OrderApiV3(api)
            v2 = upstox_client.OrderApi(api)

            placed = await asyncio.to_thread(v3.place_order, v3_order("t-mkt"))
            assert placed.status == "success" and len(placed.data.order_ids) == 1
            assert isinstance(placed.metadata.latency, int) and placed.metadata.latency >= 0
            market_id = placed.data.order_ids[0]
            limit = upstox_client.PlaceOrderRequest(
                quantity=3, product="D", validity="DAY", price=90.0, tag="t-lmt", instrument_token=KEY,
                order_type="LIMIT", transaction_type="BUY", disclosed_quantity=0, trigger_price=0.0, is_amo=False)
            limit_id = (await asyncio.to_thread(v2.place_order, limit, "2.0")).data.order_id
            assert box.exchange.account("sdk-a").orders[limit_id].product == "CNC"
            box.tick(101.0)  # fills the market order, not the limit at 90

            modify = upstox_client.ModifyOrderRequest(quantity=4, validity="DAY", price=91.0, order_id=limit_id,
                                                      order_type="LIMIT", disclosed_quantity=0, trigger_price=0.0)
            modified = await asyncio.to_thread(v3.modify_order, modify)
            assert modified.data.order_id == limit_id and modified.metadata.latency >= 0
            sim = box.exchange.account("sdk-a").orders[limit_id]
            assert (sim.quantity, sim.price) == (4, 91.0)
            cancelled = await asyncio.to_thread(v3.cancel_order, limit_id)
            assert cancelled.data.order_id == limit_id and sim.status == "CANCELLED"

            book = (await asyncio.to_thread(v2.get_order_book, "2.0")).data
            assert [(o.order_id, o.status, o.tag, o.product) for o in book] == [
                (market_id, "complete", "t-mkt", "I"), (limit_id, "cancelled", "t-lmt", "D")]
            done = book[0]
            assert (done.instrument_token, done.transaction_type, done.order_type, done.validity) == (
                KEY, "BUY", "MARKET", "DAY")
            assert (done.filled_quantity, done.pending_quantity, done.average_price) == (5, 0, 101.0)
            assert done.variety == "SIMPLE" and done.exchange == "NSE" and done.is_amo is False

            details = (await asyncio.to_thread(v2.get_order_status, order_id=limit_id)).data
            assert (details.status, details.quantity, details.price, details.filled_quantity) == (
                "cancelled", 4, 91.0, 0)
            history = (await asyncio.to_thread(v2.get_order_details, "2.0", order_id=limit_id)).data
            assert [h.status for h in history] == ["put order req received", "open", "modified", "open",
                                                   "cancel pending", "cancelled"]
            by_tag = (await asyncio.to_thread(v2.get_order_details, "2.0", tag="t-mkt")).data
            assert [h.status for h in by_tag] == ["put order req received", "open", "complete"]

            trades = (await asyncio.to_thread(v2.get_trade_history, "2.0")).data
            trade = box.exchange.account("sdk-a").trades[0]
            assert [(t.trade_id, t.order_id, t.quantity, t.average_price, t.transaction_type) for t in trades] == [
                (trade.trade_id, market_id, 5, 101.0, "BUY")]
            assert (await asyncio.to_thread(v2.get_trades_by_order, market_id, "2.0")).data[0].trade_id == \
                trade.trade_id
            assert (await asyncio.to_thread(v2.get_trades_by_order, limit_id, "2.0")).data == []

            positions = (await asyncio.to_thread(upstox_client.PortfolioApi(api).get_positions, "2.0")).data
            assert [(p.instrument_token, p.quantity, p.average_price, p.product, p.day_buy_quantity)
                    for p in positions] == [(KEY, 5, 101.0, "I", 5)]
            funds = (await asyncio.to_thread(upstox_client.UserApi(api).get_user_fund_margin, "2.0")).data
            acct = box.exchange.account("sdk-a")
            assert funds["equity"].available_margin == pytest.approx(acct.cash)
            assert funds["equity"].used_margin == pytest.approx(505.0)
            assert funds["commodity"].available_margin == 0.0

    run(main)


def test_sdk_sees_upstox_error_envelopes():
    async def main():
        async with sandbox(tokens=("good",)) as box:
            bad = upstox_client.OrderApi(sdk_client(box, "wrong"))
            with pytest.raises(ApiException) as err:
                await asyncio.to_thread(bad.get_order_book, "2.0")
            assert err.value.status == 401
            first = error_of(err.value)
            assert first["errorCode"] == first["error_code"] == "UDAPI100050"
            assert "propertyPath" in first and "property_path" in first
            good = sdk_client(box, "good")
            with pytest.raises(ApiException) as err:
                await asyncio.to_thread(upstox_client.OrderApi(good).get_order_status, order_id="nope")
            assert err.value.status == 400 and error_of(err.value)["errorCode"] == "UDAPI100010"
            order = v3_order("t1")
            order.instrument_token = "NSE_EQ1333"
            with pytest.raises(ApiException) as err:
                await asyncio.to_thread(upstox_client.OrderApiV3(good).place_order, order)
            assert err.value.status == 400 and error_of(err.value)["errorCode"] == "UDAPI100011"
            assert box.exchange.account("good").orders == {}

    run(main)


def test_sdk_portfolio_streamer_receives_order_updates(monkeypatch):
    async def main():
        async with sandbox() as box:
            box.tick(100.0)
            url = f"ws://127.0.0.1:{box.port}/v2/feed/portfolio-stream-feed?update_types=order"
            monkeypatch.setattr(PortfolioDataFeeder, "get_websocket_url", lambda self: url)
            api = sdk_client(box, "sdk-stream")
            streamer = upstox_client.PortfolioDataStreamer(api, order_update=True)
            streamer.auto_reconnect(False)
            messages: list[str] = []
            opened = threading.Event()
            streamer.on("message", messages.append)
            streamer.on("open", lambda: opened.set())
            before = set(threading.enumerate())
            streamer.connect()
            await until(opened.is_set, timeout=5, what="the SDK stream to open")
            threads = [t for t in threading.enumerate() if t not in before]
            placed = await asyncio.to_thread(upstox_client.OrderApiV3(api).place_order, v3_order("t-s", 2))
            box.tick(100.5)
            await until(lambda: len(messages) >= 3, timeout=5, what="three order updates")
            received = list(messages)
        for t in threads:  # the server closed the socket; the SDK's thread ends
            await asyncio.to_thread(t.join, 5)
        return received, placed.data.order_ids[0], threads, box

    received, order_id, threads, box = asyncio.run(asyncio.wait_for(main(), LIMIT_S))
    assert not any(t.is_alive() for t in threads)
    assert len(box.state.used_codes) == 1  # came through the 302 to a single-use code
    updates = [json.loads(m) for m in received]
    assert [u["status"] for u in updates] == ["put order req received", "open", "complete"]
    last = updates[-1]
    assert last["update_type"] == "order" and last["order_id"] == order_id and last["tag"] == "t-s"
    assert last["instrument_token"] == last["instrument_key"] == KEY
    assert (last["filled_quantity"], last["pending_quantity"], last["average_price"]) == (2, 0, 100.5)
    assert last["user_id"] == last["userId"] == last["placed_by"] and "sdk-stream" not in json.dumps(updates)


async def _post(http: aiohttp.ClientSession, box: Box, path: str, body: object, token: str | None = "t"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(box.url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def _order_body(tag: str, **changes) -> dict:
    body = {"quantity": 1, "product": "I", "validity": "DAY", "price": 0, "tag": tag, "instrument_token": KEY,
            "order_type": "MARKET", "transaction_type": "BUY", "disclosed_quantity": 0, "trigger_price": 0,
            "is_amo": False}
    body.update(changes)
    return body


def test_order_group_limit_answers_429_past_ten_a_second():
    async def main():
        async with sandbox() as box, aiohttp.ClientSession() as http:
            answers = [await _post(http, box, "/v3/order/place", _order_body(f"r{n}")) for n in range(11)]
            assert [s for s, _ in answers] == [200] * 10 + [429]
            assert answers[-1][1]["errors"][0]["error_code"] == "UDAPI10005"
            assert len(box.exchange.account("t").orders) == 10 and box.state.rate_limited == 1
            status, _ = await _post(http, box, "/v3/order/place", _order_body("other"), token="t2")
            assert status == 200  # limits are per account

    run(main)


def test_bad_bodies_are_refused_with_upstox_codes_and_place_nothing():
    async def main():
        async with sandbox() as box, aiohttp.ClientSession() as http:
            cases = {"UDAPI100038": _order_body("a", quantity=0), "UDAPI1004": _order_body("b", order_type="STOP"),
                     "UDAPI1007": _order_body("c", validity="GTC"),
                     "UDAPI100011": _order_body("d", instrument_token="RELIANCE")}
            for code, body in cases.items():
                status, payload = await _post(http, box, "/v2/order/place", body)
                assert (status, payload["errors"][0]["errorCode"]) == (400, code)
            status, payload = await _post(http, box, "/v2/order/place", _order_body("e"), token=None)
            assert (status, payload["errors"][0]["error_code"]) == (401, "UDAPI100050")
            assert box.exchange.account("t").orders == {}
            status, payload = await _post(http, box, "/v2/order/place", _order_body("f", order_type="SL"))
            assert status == 200  # accepted, then rejected by the engine with a reason, as Upstox does
            async with http.get(f"{box.url}/v2/order/details?order_id={payload['data']['order_id']}",
                                headers={"Authorization": "Bearer t"}) as resp:
                details = (await resp.json())["data"]
            assert details["status"] == "rejected" and "not supported" in details["status_message"]

    run(main)


def test_fault_switches_over_http_and_their_effects():
    async def main():
        async with sandbox() as box, aiohttp.ClientSession() as http:
            async with http.get(box.url + "/sandbox/faults/upstox") as resp:
                defaults = (await resp.json())["data"]
            assert defaults["http_429"] == 0 and defaults["duplicate_fills"] is False
            status, payload = await _post(http, box, "/sandbox/faults/upstox", {"http_429": 1, "nonsense": 1})
            assert status == 400 and "nonsense" in payload["message"]
            assert box.state.faults.http_429 == 0  # nothing applied from a refused request
            status, payload = await _post(http, box, "/sandbox/faults/upstox",
                                          {"http_429": 1, "duplicate_fills": True})
            assert status == 200 and payload["data"]["http_429"] == 1 and box.exchange.faults.duplicate_fills
            status, payload = await _post(http, box, "/v3/order/place", _order_body("x"))
            assert (status, payload["errors"][0]["errorCode"]) == (429, "UDAPI10005")
            assert box.exchange.account("t").orders == {} and box.state.faults.http_429 == 0
            box.tick(100.0)
            status, payload = await _post(http, box, "/v3/order/place", _order_body("x"))
            assert status == 200
            box.tick(100.5)
            async with http.get(box.url + "/v2/order/trades/get-trades-for-day",
                                headers={"Authorization": "Bearer t"}) as resp:
                rows = (await resp.json())["data"]
            assert len(rows) == 2 and rows[0] == rows[1]  # the same trade_id listed twice
            await _post(http, box, "/sandbox/faults/upstox", {"error_500_after_accept": 1})
            status, payload = await _post(http, box, "/v3/order/place", _order_body("y"))
            assert (status, payload["errors"][0]["errorCode"]) == (500, "UDAPI100500")
            assert box.exchange.find("t", "y") is not None  # accepted before the error

    run(main)


def test_stream_codes_are_single_use_and_updates_are_per_account():
    async def main():
        async with sandbox() as box, aiohttp.ClientSession() as http:
            auth = {"Authorization": "Bearer alice"}
            async with http.get(box.url + "/v2/feed/portfolio-stream-feed/authorize?update_types=order",
                                headers=auth) as resp:
                uri = (await resp.json())["data"]["authorized_redirect_uri"]
            assert uri.startswith(f"ws://127.0.0.1:{box.port}/upstox/order-updates/feed?requestId=")
            async with http.get(box.url + "/v2/feed/portfolio-stream-feed", headers=auth,
                                allow_redirects=False) as resp:
                assert resp.status == 302 and "code=" in resp.headers["Location"]
            ws = await http.ws_connect(uri)
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(uri)
            assert err.value.status == 401
            box.tick(100.0)
            await _post(http, box, "/v3/order/place", _order_body("bob-1"), token="bob")
            await _post(http, box, "/v3/order/place", _order_body("alice-1", quantity=3), token="alice")
            first = json.loads((await ws.receive(timeout=3)).data)
            assert (first["tag"], first["status"], first["quantity"]) == ("alice-1", "put order req received", 3)
            second = json.loads((await ws.receive(timeout=3)).data)
            assert (second["tag"], second["status"], second["exchange_order_id"] != "") == ("alice-1", "open", True)
            await ws.close()

    run(main)
