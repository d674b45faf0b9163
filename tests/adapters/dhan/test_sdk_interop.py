"""The official ``dhanhq`` SDK (2.3.0, a test-only peer) reads what our sandbox writes.

Two levels: the SDK's own packet parsers on our encoders' bytes, and the SDK's
``MarketFeed`` client connected over a real socket to the sandbox on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from dhanhq import DhanContext, MarketFeed

from adapters.dhan.dhan_support import CLIENT_ID, ThreadedSandbox, tick
from algocli.adapters.dhan.parsing import (
    DepthLevel, DhanDecoder, encode_full, encode_oi, encode_prev_close, encode_quote, encode_ticker,
    split_instrument, utc_ns_to_ltt,
)

TS = 1_772_602_200 * 10**9  # 2026-03-04 11:00:00 IST
LTT = utc_ns_to_ltt(TS)


@pytest.fixture
def sdk() -> MarketFeed:
    """The SDK's parser without its constructor (which opens an event loop)."""
    return object.__new__(MarketFeed)


def test_sdk_parsers_agree_with_our_decoder_on_our_packets(sdk):
    ours = DhanDecoder()
    packets = {
        "ticker": encode_ticker(1, 1333, 2450.35, LTT),
        "quote": encode_quote(2, 35001, 187.65, 75, LTT, atp=186.2, volume=1_234_567, day_open=180.5,
                              day_high=190.0, day_low=179.55),
        "full": encode_full(2, 35001, 312.4, 50, LTT, volume=98_765, oi=120_000,
                            depth=[DepthLevel(700, 300, 4, 2, 312.35, 312.45), DepthLevel(1, 1, 1, 1, 312.3, 312.5)]),
    }
    for kind, pkt in packets.items():
        (t,) = ours.decode(pkt, 0)
        theirs = sdk.process_data(pkt)
        assert theirs["LTP"] == f"{t.ltp:.2f}", kind
        assert theirs["LTT"] == "11:00:00", kind  # the SDK shows IST wall-clock time
        assert (theirs["exchange_segment"], theirs["security_id"]) == split_instrument(t.instrument), kind
        if kind != "ticker":
            assert (theirs["LTQ"], theirs["volume"]) == (t.ltq, t.volume)
    full = sdk.process_data(packets["full"])
    (t,) = ours.decode(packets["full"], 0)
    assert full["OI"] == t.oi == 120_000
    assert (full["depth"][0]["bid_price"], full["depth"][0]["ask_price"]) == (f"{t.bid:.2f}", f"{t.ask:.2f}")
    assert (full["depth"][0]["bid_quantity"], full["depth"][0]["ask_quantity"]) == (t.bid_qty, t.ask_qty)
    assert sdk.process_data(encode_oi(2, 35001, 4_500_000))["OI"] == 4_500_000
    prev = sdk.process_data(encode_prev_close(1, 1333, 2431.9, 7))
    assert (prev["prev_close"], prev["prev_OI"]) == ("2431.90", 7)


def _sdk_client_session(server: ThreadedSandbox) -> None:
    """Drive the SDK the way its README does. Runs in a thread of its own, because the
    SDK's constructor installs a new event loop as the calling thread's current loop."""
    feed = MarketFeed(DhanContext(CLIENT_ID, "tok-sdk"),
                      [(MarketFeed.NSE, "1333", MarketFeed.Quote),
                       (MarketFeed.NSE_FNO, "35001", MarketFeed.Full),
                       (MarketFeed.NSE, "2885", MarketFeed.Ticker)], "v2")
    sandbox = server.server.sandbox
    try:
        feed.run_forever()  # connects and subscribes
        deadline = time.monotonic() + 5
        while not (sandbox.sessions and len(sandbox.sessions[0].subscriptions) == 3):
            assert time.monotonic() < deadline, "the SDK's subscriptions never reached the sandbox"
            time.sleep(0.01)
        session = sandbox.sessions[0]
        assert (session.client_id, session.token, session.version) == (CLIENT_ID, "tok-sdk", "2")
        assert session.subscribed(17) == ["NSE_EQ:1333"] and session.subscribed(21) == ["NSE_FNO:35001"]

        server.call(server.hub.publish, tick("NSE_EQ:1333", 1710.85, volume=40_000, ltq=12))
        server.call(server.hub.publish, tick("NSE_FNO:35001", 312.4, volume=9_000, bid=312.35, ask=312.45,
                                             oi=88_000))
        server.call(server.hub.publish, tick("NSE_EQ:2885", 2899.95))

        got: dict[str, dict] = {}
        prev_closes = 0
        while len(got) < 3:
            data = feed.loop.run_until_complete(asyncio.wait_for(feed.get_instrument_data(), 5))
            if data["type"] == "Previous Close":
                prev_closes += 1
            elif data["type"] != "OI Data":
                got[data["type"]] = data
        assert prev_closes == 3
        quote, full, ticker = got["Quote Data"], got["Full Data"], got["Ticker Data"]
        assert (quote["LTP"], quote["LTQ"], quote["volume"], quote["LTT"]) == ("1710.85", 12, 40_000, "11:00:00")
        assert (full["LTP"], full["volume"], full["OI"]) == ("312.40", 9_000, 88_000)
        assert (full["depth"][0]["bid_price"], full["depth"][0]["ask_price"]) == ("312.35", "312.45")
        assert (ticker["LTP"], ticker["LTT"]) == ("2899.95", "11:00:00")

        feed.close_connection()  # sends RequestCode 12, then the 83-byte legacy binary frame
        deadline = time.monotonic() + 5
        while session.open:
            assert time.monotonic() < deadline, "the sandbox did not see the SDK disconnect"
            time.sleep(0.01)
        assert session.requests[-1] == {"RequestCode": 12}
        assert session.disconnect_requested and session.binary_frames == 1
    finally:
        pending = asyncio.all_tasks(feed.loop)  # the SDK leaves its keepalive task behind
        for task in pending:
            task.cancel()
        feed.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        feed.loop.close()


def test_official_sdk_client_reads_the_sandbox_feed(monkeypatch):
    with ThreadedSandbox() as server:
        server.hub.valid_tokens.add("tok-sdk")
        monkeypatch.setattr(MarketFeed, "market_feed_wss", server.server.url)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(_sdk_client_session, server).result(timeout=30)
