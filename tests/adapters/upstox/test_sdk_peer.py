"""The official Upstox SDK's MarketDataStreamerV3 as a client of the sandbox.

The SDK hard-codes ``wss://api.upstox.com/v3/feed/market-data-feed`` inside
``MarketDataFeederV3.connect``; the test swaps that one method for a copy that opens the
sandbox's ``ws://127.0.0.1:<port>/v3/feed/market-data-feed``. The sandbox answers 302 to
an authorized URI and websocket-client follows it, as it does against Upstox.
"""

from __future__ import annotations

import asyncio
import ssl
import threading

import upstox_client
import websocket
from adapters.upstox.upstox_support import T0_MS, serve, tick, until
from upstox_client.feeder.market_data_feeder_v3 import MarketDataFeederV3

from algocli.sandbox.hub import TickHub


def _point_feeder_at(monkeypatch, ws_url: str) -> list[threading.Thread]:
    threads: list[threading.Thread] = []

    def connect(self):  # MarketDataFeederV3.connect with only the URL changed
        if self.ws and self.ws.sock:
            return
        headers = {"Authorization": self.api_client.configuration.auth_settings().get("OAUTH2")["value"]}
        self.ws = websocket.WebSocketApp(ws_url, header=headers, on_open=self.on_open,
                                         on_message=self.on_message, on_error=self.on_error,
                                         on_close=self.on_close)
        thread = threading.Thread(target=self.ws.run_forever,
                                  kwargs={"sslopt": {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}},
                                  daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(MarketDataFeederV3, "connect", connect)
    return threads


def _streamer(port: int, token: str, keys: list[str], mode: str):
    configuration = upstox_client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.access_token = token
    streamer = upstox_client.MarketDataStreamerV3(upstox_client.ApiClient(configuration), keys, mode)
    streamer.auto_reconnect(False)
    messages: list[dict] = []
    errors: list = []
    streamer.on("message", messages.append)
    streamer.on("error", errors.append)
    return streamer, messages, errors


def _live(messages: list[dict]) -> dict:
    """Feeds of all live_feed messages by instrument key (the server may batch keys in one frame)."""
    out: dict = {}
    for m in list(messages):
        if m.get("type") == "live_feed":
            out.update(m["feeds"])
    return out


def test_sdk_streamer_decodes_what_the_sandbox_sends(monkeypatch):
    async def main():
        hub = TickHub(valid_tokens={"sdk-token"})
        hub.publish(tick("NSE_EQ:1333", 0))
        async with serve(hub) as server:
            threads = _point_feeder_at(monkeypatch, f"ws://127.0.0.1:{server.port}/v3/feed/market-data-feed")
            streamer, messages, errors = _streamer(server.port, "sdk-token", ["NSE_EQ|1333", "NSE_FO|43919"], "full")
            streamer.connect()
            await until(lambda: server.sandbox.requests, timeout=5, what="the SDK's sub request")
            hub.publish(tick("NSE_FO:43919", 1, volume=7_500, oi=1_234_500, bid=1500.0, ask=1500.1,
                             bid_qty=75, ask_qty=150))
            hub.publish(tick("NSE_EQ:1333", 2, volume=42_000))
            await until(lambda: len(_live(messages)) == 2, timeout=5, what="SDK live messages")
        # The server closes the socket: the SDK's own disconnect() races its reader thread for
        # the close reply (websocket-client reads one socket from two threads) and can hang.
        for t in threads:
            await asyncio.to_thread(t.join, 5)
        return list(messages), list(errors), server.sandbox, threads

    messages, errors, sandbox, threads = asyncio.run(main())
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(e, websocket.WebSocketConnectionClosedException) for e in errors)  # the shutdown only
    assert sandbox.tokens_seen == ["sdk-token"] and len(sandbox.used_codes) == 1  # came in through the 302
    assert sandbox.requests[0]["method"] == "sub" and sandbox.requests[0]["data"]["mode"] == "full"
    assert sandbox.text_requests == 0
    info, snapshot = messages[:2]
    assert info["type"] == "market_info"
    assert info["marketInfo"]["segmentStatus"]["NSE_EQ"] == "NORMAL_OPEN"
    assert "type" not in snapshot  # initial_feed is enum 0: MessageToDict drops it
    eq0 = snapshot["feeds"]["NSE_EQ|1333"]["fullFeed"]["marketFF"]
    assert eq0["ltpc"] == {"ltp": 1500.0, "ltt": str(T0_MS), "ltq": "10"}
    live = _live(messages)
    fo = live["NSE_FO|43919"]
    assert fo["requestMode"] == "full_d5"
    ff = fo["fullFeed"]["marketFF"]
    assert ff["ltpc"] == {"ltp": 1500.05, "ltt": str(T0_MS + 1000), "ltq": "11"}
    assert ff["vtt"] == "7500" and ff["oi"] == 1_234_500.0
    assert ff["marketLevel"]["bidAskQuote"][0] == {"bidQ": "75", "bidP": 1500.0, "askQ": "150", "askP": 1500.1}
    eq2 = live["NSE_EQ|1333"]["fullFeed"]["marketFF"]
    assert eq2["ltpc"]["ltp"] == 1500.1 and eq2["vtt"] == "42000"


def test_sdk_streamer_gets_401_for_a_bad_token_and_stops(monkeypatch):
    async def main():
        hub = TickHub(valid_tokens={"good"})
        async with serve(hub) as server:
            threads = _point_feeder_at(monkeypatch, f"ws://127.0.0.1:{server.port}/v3/feed/market-data-feed")
            streamer, messages, errors = _streamer(server.port, "bad", ["NSE_EQ|1333"], "ltpc")
            streamer.connect()
            await until(lambda: errors, timeout=5, what="the SDK's error")
            for t in threads:
                await asyncio.to_thread(t.join, 5)
            return messages, errors, server.sandbox, streamer

    messages, errors, sandbox, streamer = asyncio.run(main())
    assert messages == [] and sandbox.connections == 0
    assert "401" in str(errors[0])
    assert streamer.disconnect_valid  # the SDK's own rule: no reconnect after a 401
