"""Real Upstox instrument keys from ``data/instruments.csv`` on the sandbox's Upstox routes.

``NSE_EQ|INE002A01018`` (Reliance's ISIN key) names the sandbox instrument ``NSE_EQ:2885``
as ``NSE_EQ|2885`` does: the market feed answers under the key the client subscribed
with, orders, trades, positions and the portfolio stream under the key the order was
placed with, and the historical routes serve the same candles for both. Everything runs
over real sockets on 127.0.0.1; the official Upstox SDK is the peer for the candles.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime

import aiohttp
import upstox_client
from aiohttp import web
from sandbox.sandbox_support import DATA, running, until

from algocli.adapters.upstox import proto
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Tick
from algocli.domain.session import ist_midnight_ns
from algocli.instruments.table import read_instruments
from algocli.sandbox.app import build_app
from algocli.sandbox.hub import TickHub
from algocli.sandbox.replay import bar_ticks
from algocli.sandbox.upstox import SANDBOX_KEY
from algocli.sandbox.upstox_orders import UPSTOX_ORDERS

ISIN_KEY, PLAIN_KEY, INST = "NSE_EQ|INE002A01018", "NSE_EQ|2885", "NSE_EQ:2885"
OPTION_KEY, OPTION = "NSE_FO|35019", "NSE_FNO:35019"
MINUTE = load_csv(DATA / "NSE_EQ_2885.csv", INST)
LIMIT_S = 30.0


def run(main):
    return asyncio.run(asyncio.wait_for(main(), LIMIT_S))


def bearer(token: str = "tok") -> dict:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


async def feed_socket(session: aiohttp.ClientSession, base: str) -> aiohttp.ClientWebSocketResponse:
    async with session.get(base + "/v3/feed/market-data-feed/authorize", headers=bearer()) as resp:
        uri = (await resp.json())["data"]["authorized_redirect_uri"]
    return await session.ws_connect(uri)


async def subscribe(ws, keys: list[str], mode: str = "ltpc") -> None:
    request = {"guid": "g-1", "method": "sub", "data": {"mode": mode, "instrumentKeys": keys}}
    await ws.send_bytes(json.dumps(request).encode())


def test_a_feed_subscription_by_isin_key_gets_ticks_under_that_key():
    path = bar_ticks(MINUTE)
    wanted = 40  # the first ten one-minute bars

    async def main():
        # wait_for_client: the replay starts at the subscription, so every tick reaches it
        async with running(wait_for_client=True) as listening, aiohttp.ClientSession() as session:
            ws = await feed_socket(session, f"http://127.0.0.1:{listening.port}")
            frames = [proto.FeedResponse.FromString(await ws.receive_bytes())]  # market_info
            await subscribe(ws, [ISIN_KEY])
            ticks: list[tuple[str, float, int]] = []
            while len(ticks) < wanted:
                frame = proto.FeedResponse.FromString(await ws.receive_bytes(timeout=10))
                frames.append(frame)
                for key, feed in frame.feeds.items():
                    ticks.append((key, feed.ltpc.ltp, feed.ltpc.ltt))
            await ws.close()
            return frames, ticks

    frames, ticks = run(main)
    assert frames[0].type == proto.MARKET_INFO and frames[1].type == proto.INITIAL_FEED
    assert {key for key, _, _ in ticks} == {ISIN_KEY}
    assert [p for _, p, _ in ticks[:wanted]] == path.price[:wanted].tolist()
    assert [t for _, _, t in ticks[:wanted]] == (path.ts[:wanted] // 1_000_000).tolist()


def test_both_spellings_on_one_socket_each_get_every_tick():
    async def main():
        hub = TickHub()
        app = build_app(hub, dhan=False, instruments=read_instruments(DATA / "instruments.csv"))
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession() as session:
                ws = await feed_socket(session, f"http://127.0.0.1:{runner.addresses[0][1]}")
                await ws.receive_bytes()  # market_info
                await subscribe(ws, [ISIN_KEY, PLAIN_KEY, OPTION_KEY], mode="full")
                await ws.receive_bytes()  # the (empty) snapshot
                seen: dict[str, list[float]] = {}
                await until(lambda: hub.subscribed, what="the subscription")
                for i in range(3):
                    hub.publish(Tick(INST, (1_718_000_000 + i) * 10**9, 2900.0 + i, 5))
                hub.publish(Tick(OPTION, 1_718_000_010 * 10**9, 150.5, 75))
                while sum(len(v) for v in seen.values()) < 7:
                    frame = proto.FeedResponse.FromString(await ws.receive_bytes(timeout=5))
                    for key, feed in frame.feeds.items():
                        seen.setdefault(key, []).append(feed.fullFeed.marketFF.ltpc.ltp)
                unsub = {"guid": "g-2", "method": "unsub", "data": {"instrumentKeys": [PLAIN_KEY]}}
                await ws.send_bytes(json.dumps(unsub).encode())
                await until(lambda: len(app[SANDBOX_KEY].requests) == 2, what="the unsub")
                hub.publish(Tick(INST, 1_718_000_020 * 10**9, 2950.0, 5))
                frame = proto.FeedResponse.FromString(await ws.receive_bytes(timeout=5))
                await ws.close()
                return seen, dict(frame.feeds), hub.subscribed
        finally:
            await runner.cleanup()

    seen, after_unsub, subscribed = run(main)
    assert seen == {ISIN_KEY: [2900.0, 2901.0, 2902.0], PLAIN_KEY: [2900.0, 2901.0, 2902.0], OPTION_KEY: [150.5]}
    assert list(after_unsub) == [ISIN_KEY]
    assert subscribed == {INST, OPTION}


def test_the_official_sdk_reads_the_same_candles_by_isin_key():
    async def main():
        async with running() as listening, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{listening.port}"
            await until(lambda: _replay_done(session, base), what="the replay")
            configuration = upstox_client.Configuration()
            configuration.host = base
            api = upstox_client.HistoryV3Api(upstox_client.ApiClient(configuration))
            by_isin = await asyncio.to_thread(api.get_historical_candle_data1, ISIN_KEY, "minutes", 1,
                                              "2024-06-12", "2024-06-10")
            by_id = await asyncio.to_thread(api.get_historical_candle_data1, PLAIN_KEY, "minutes", 1,
                                            "2024-06-12", "2024-06-10")
            intraday = await asyncio.to_thread(api.get_intra_day_candle_data, ISIN_KEY, "minutes", 1)
            return by_isin, by_id, intraday

    by_isin, by_id, intraday = run(main)
    assert by_isin.status == "success" and by_isin.data.candles == by_id.data.candles
    rows = by_isin.data.candles[::-1]  # Upstox sends newest first
    keep = (MINUTE.ts >= ist_midnight_ns(date(2024, 6, 10))) & (MINUTE.ts < ist_midnight_ns(date(2024, 6, 13)))
    assert len(rows) == int(keep.sum()) == 3 * 375
    assert [int(datetime.fromisoformat(r[0]).timestamp()) * 10**9 for r in rows] == MINUTE.ts[keep].tolist()
    for column, values in zip((1, 2, 3, 4, 5), (MINUTE.open, MINUTE.high, MINUTE.low, MINUTE.close,
                                               MINUTE.volume)):
        assert [r[column] for r in rows] == values[keep].tolist()
    last_day = MINUTE.ts >= ist_midnight_ns(date(2024, 6, 14))  # the replay clock's day: the data's last
    assert [r[4] for r in intraday.data.candles[::-1]] == MINUTE.close[last_day].tolist()


async def _replay_done(session: aiohttp.ClientSession, base: str) -> bool:
    async with session.get(base + "/health") as resp:
        return (await resp.json())["replay_done"]


def test_orders_trades_positions_and_the_stream_answer_with_the_key_the_order_used():
    async def main():
        hub = TickHub()
        app = build_app(hub, dhan=False, instruments=read_instruments(DATA / "instruments.csv"))
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/v2/feed/portfolio-stream-feed/authorize?update_types=order",
                                    headers=bearer()) as resp:
                    uri = (await resp.json())["data"]["authorized_redirect_uri"]
                stream = await http.ws_connect(uri)
                hub.publish(Tick(INST, time.time_ns(), 2900.0, 1))
                hub.publish(Tick(OPTION, time.time_ns(), 150.0, 75))
                ids = {}
                for tag, key, product, qty in (("isin", ISIN_KEY, "I", 2), ("plain", PLAIN_KEY, "I", 3),
                                               ("option", OPTION_KEY, "D", 75)):
                    body = {"quantity": qty, "product": product, "validity": "DAY", "price": 0, "tag": tag,
                            "instrument_token": key, "order_type": "MARKET", "transaction_type": "BUY",
                            "disclosed_quantity": 0, "trigger_price": 0, "is_amo": False}
                    async with http.post(base + "/v2/order/place", json=body, headers=bearer()) as resp:
                        assert resp.status == 200, await resp.text()
                        ids[tag] = (await resp.json())["data"]["order_id"]
                hub.publish(Tick(INST, time.time_ns(), 2901.0, 1))
                hub.publish(Tick(OPTION, time.time_ns(), 151.0, 75))
                updates = []
                while len(updates) < 9:  # received, open, complete for each order
                    updates.append(json.loads(await stream.receive_str(timeout=5)))
                await stream.close()
                out = {}
                for name in ("/v2/order/retrieve-all", "/v2/order/trades/get-trades-for-day",
                             "/v2/portfolio/short-term-positions"):
                    async with http.get(base + name, headers=bearer()) as resp:
                        out[name] = (await resp.json())["data"]
                async with http.get(base + "/v2/order/details", params={"order_id": ids["isin"]},
                                    headers=bearer()) as resp:
                    out["details"] = (await resp.json())["data"]
                return ids, updates, out, app[UPSTOX_ORDERS].exchange.account("tok")
        finally:
            await runner.cleanup()

    ids, updates, out, account = run(main)
    tag_of = {v: k for k, v in ids.items()}
    keys = {"isin": ISIN_KEY, "plain": PLAIN_KEY, "option": OPTION_KEY}
    for update in updates:  # from the first message on, including "put order req received"
        assert update["instrument_token"] == update["instrument_key"] == keys[tag_of[update["order_id"]]]
    assert {o.instrument for o in account.orders.values()} == {INST, OPTION}  # one engine instrument per id
    book = {o["tag"]: o for o in out["/v2/order/retrieve-all"]}
    assert {t: (o["instrument_token"], o["status"]) for t, o in book.items()} == {
        t: (k, "complete") for t, k in keys.items()}
    assert (book["isin"]["trading_symbol"], book["plain"]["trading_symbol"]) == ("RELIANCE", "2885")
    assert (book["option"]["trading_symbol"], book["option"]["product"], book["option"]["exchange"]) == (
        "NIFTY 24000 CE 26 DEC 24", "D", "NSE")
    assert out["details"]["instrument_token"] == ISIN_KEY
    trades = {tag_of[t["order_id"]]: t["instrument_token"] for t in out["/v2/order/trades/get-trades-for-day"]}
    assert trades == keys
    positions = {p["instrument_token"]: p for p in out["/v2/portfolio/short-term-positions"]}
    # one position per engine instrument, under the key of its latest order
    assert set(positions) == {PLAIN_KEY, OPTION_KEY}
    assert positions[PLAIN_KEY]["quantity"] == 5 and positions[OPTION_KEY]["quantity"] == 75
    assert positions[OPTION_KEY]["trading_symbol"] == "NIFTY 24000 CE 26 DEC 24"
    assert positions[OPTION_KEY]["product"] == "D"
