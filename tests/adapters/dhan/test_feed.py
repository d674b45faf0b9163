"""``DhanDataFeed`` against the sandbox's Dhan feed over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import pytest
import websockets
from aiohttp import web

from adapters.dhan.dhan_support import (
    CLIENT_ID, Credentials, SandboxServer, closed_clock, market_clock, run, tick, wait_until,
)
from algocli.adapters.dhan.data import DhanDataFeed
from algocli.adapters.dhan.parsing import DhanDecoder, PrevClose, ServerDisconnect
from algocli.data.feed import DataFeed, FeedAuthError
from algocli.errors import BrokerError, ConfigError

FAST = dict(backoff_base=0.02, backoff_cap=0.1, silence_s=30.0, connect_timeout=5.0, close_timeout=1.0)


def make_feed(creds: Credentials, **kwargs) -> DhanDataFeed:
    options = {**FAST, "rng": random.Random(3), **kwargs}
    return DhanDataFeed(creds.factory, **options)


def insts(n: int, segment: str = "NSE_EQ", start: int = 1000) -> list[str]:
    return [f"{segment}:{start + i}" for i in range(n)]


async def publish_forever(hub, instruments, period=0.004):
    """Publish rising prices round-robin until cancelled."""
    price = 100.0
    while True:
        for inst in instruments:
            price = round(price + 0.05, 2)
            hub.publish(tick(inst, price))
        await asyncio.sleep(period)


# --- (a) subscribe in batches, receive ticks ------------------------------------------------

def test_subscribes_250_in_batches_of_100_and_delivers_exact_ticks(caplog):
    caplog.set_level(logging.DEBUG)
    secret = "SENTINEL-abc123"

    async def main():
        async with SandboxServer() as server:
            creds = Credentials(server.url, token=secret)
            feed = make_feed(creds, mode="full")
            assert isinstance(feed, DataFeed)
            got = []
            feed.on_tick(got.append)
            await feed.connect()
            wanted = insts(250)
            await feed.subscribe(wanted)
            sandbox = server.sandbox
            await wait_until(lambda: len(sandbox.sessions[0].subscriptions) == 250, what="250 subscriptions")
            session = sandbox.sessions[0]
            assert (session.client_id, session.token, session.version) == (CLIENT_ID, secret, "2")
            assert [r["RequestCode"] for r in session.requests] == [21, 21, 21]
            assert [r["InstrumentCount"] for r in session.requests] == [100, 100, 50]
            assert [len(r["InstrumentList"]) for r in session.requests] == [100, 100, 50]
            sent = [f'{e["ExchangeSegment"]}:{e["SecurityId"]}' for r in session.requests for e in r["InstrumentList"]]
            assert sorted(sent) == sorted(wanted)
            await wait_until(lambda: len(feed.prev_close) == 250, what="one prev close per instrument")

            ts_s = 1_772_609_430  # 2026-03-04 07:30:30 UTC = 13:00:30 IST
            server.hub.publish(tick("NSE_EQ:1000", 2450.35, ts_s=ts_s, volume=1_234_567, ltq=75,
                                    bid=2450.3, ask=2450.4))
            server.hub.publish(tick("NSE_EQ:1249", 99.95, ts_s=ts_s + 1, volume=10, ltq=1))
            server.hub.publish(tick("NSE_EQ:9999", 5.0))  # not subscribed: never sent
            await wait_until(lambda: len(got) == 2, what="two ticks")
            a, b = got
            assert (a.instrument, a.ts, a.ltp, a.volume, a.ltq) == ("NSE_EQ:1000", ts_s * 10**9, 2450.35, 1_234_567, 75)
            assert (a.bid, a.ask, a.bid_qty, a.ask_qty) == (2450.3, 2450.4, 10, 20)
            assert (b.instrument, b.ts, b.ltp, b.volume) == ("NSE_EQ:1249", (ts_s + 1) * 10**9, 99.95, 10)
            assert a.received_ns > 0 and b.received_ns >= a.received_ns
            status = feed.status
            assert (status.connected, status.ticks, status.malformed, status.reconnects) == (True, 2, 0, 0)
            assert status.last_tick_monotonic is not None
            await feed.disconnect()
            assert not feed.status.connected
            await wait_until(lambda: not session.open, what="the server to see the close")
            assert session.requests[-1] == {"RequestCode": 12}

    run(main())
    assert "token=<redacted>" in caplog.text  # the wire log line is there, redacted
    assert secret not in caplog.text


def test_quote_mode_carries_volume_and_merges_oi_from_the_oi_packet():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="quote")
            got, events = [], []
            feed.on_tick(got.append)
            feed.on_event(events.append)
            await feed.connect()
            await feed.subscribe(["NSE_FNO:35001"])
            await wait_until(lambda: any(isinstance(e, PrevClose) for e in events), what="prev close")
            server.hub.publish(tick("NSE_FNO:35001", 187.65, volume=5000, oi=120_000))
            server.hub.publish(tick("NSE_FNO:35001", 187.7, volume=5075, oi=120_300))
            await wait_until(lambda: len(got) == 2, what="two quote ticks")
            # Quote then OI on the wire: the first quote predates any OI, the second carries it.
            assert [(t.ltp, t.volume, t.oi) for t in got] == [(187.65, 5000, None), (187.7, 5075, 120_000)]
            assert [e.oi for e in events if type(e).__name__ == "OpenInterest"] == [120_000, 120_300]
            assert server.sandbox.sessions[0].subscribed(17) == ["NSE_FNO:35001"]
            await feed.disconnect()

    run(main())


def test_unsubscribe_sends_code_plus_one_and_stops_ticks():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="ticker")
            got = []
            feed.on_tick(got.append)
            await feed.connect()
            await feed.subscribe(["NSE_EQ:1", "NSE_EQ:2"])
            session = server.sandbox.sessions[0]
            await wait_until(lambda: len(session.subscriptions) == 2)
            await feed.unsubscribe(["NSE_EQ:2"])
            await wait_until(lambda: list(session.subscriptions) == ["NSE_EQ:1"], what="unsubscribe")
            assert session.requests[-1]["RequestCode"] == 16
            assert session.requests[-1]["InstrumentList"] == [{"ExchangeSegment": "NSE_EQ", "SecurityId": "2"}]
            server.hub.publish(tick("NSE_EQ:2", 50.0))
            server.hub.publish(tick("NSE_EQ:1", 60.0))
            await wait_until(lambda: len(got) == 1)
            assert got[0].instrument == "NSE_EQ:1" and feed.instruments == ["NSE_EQ:1"]
            await feed.disconnect()

    run(main())


# --- limits: 5000 per connection, 5 connections -----------------------------------------

def test_instruments_spread_over_connections_and_the_user_limit_is_refused():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), max_instruments=100, max_connections=3)
            await feed.subscribe(insts(250))  # before connect: recorded, sent on connect
            await feed.connect()
            sandbox = server.sandbox
            await wait_until(lambda: len(sandbox.sessions) == 3 and
                             sum(len(s.subscriptions) for s in sandbox.sessions) == 250, what="3 sockets")
            assert sorted(len(s.subscriptions) for s in sandbox.sessions) == [50, 100, 100]
            assert all(r["InstrumentCount"] <= 100 for s in sandbox.sessions for r in s.requests)
            with pytest.raises(ConfigError, match="at most 100 per connection on 3 connections"):
                await feed.subscribe(insts(51, start=5000))
            await feed.subscribe(insts(50, start=5000))  # exactly fills the third socket
            await wait_until(lambda: sum(len(s.subscriptions) for s in sandbox.sessions) == 300)
            assert len(sandbox.sessions) == 3 and len(feed.connections) == 3
            await feed.disconnect()

    run(main())


def test_dhan_limits_by_default_and_bad_ids_are_refused_without_network():
    async def main():
        feed = DhanDataFeed(lambda: pytest.fail("no settings needed"))
        with pytest.raises(ConfigError, match="25000 per user"):
            await feed.subscribe(insts(25_001))
        with pytest.raises(ConfigError, match="numeric Dhan security id"):
            await feed.subscribe(["NSE_EQ:RELIANCE"])
        await feed.subscribe(insts(5001))
        assert len(feed.connections) == 2 and not feed.status.connected
        with pytest.raises(ConfigError, match="not a date"):  # checked before any settings or network
            await feed.get_historical("NSE_EQ:1", None, None, "1m")

    run(main())
    with pytest.raises(ConfigError, match="mode"):
        DhanDataFeed(mode="depth")


def test_a_sixth_socket_for_one_client_disconnects_the_oldest_with_805():
    async def main():
        async with SandboxServer() as server:
            url = f"{server.url}?version=2&token=t&clientId={CLIENT_ID}&authType=2"
            sockets = [await websockets.connect(url) for _ in range(5)]
            await wait_until(lambda: len(server.sandbox.sessions) == 5)
            sixth = await websockets.connect(url)
            msg = await asyncio.wait_for(sockets[0].recv(), 2)
            assert DhanDecoder().decode(msg, 0) == [ServerDisconnect(805)]
            assert server.sandbox.sessions[0].kicked == 805
            assert all(s.kicked is None for s in server.sandbox.sessions[1:])
            for ws in sockets + [sixth]:
                await ws.close()

    run(main())


# --- (b) reconnect after a dropped connection ---------------------------------------------

def test_reconnects_after_drops_replays_subscriptions_and_rereads_the_token():
    async def main():
        async with SandboxServer() as server:
            server.hub.valid_tokens.update({"tok-A", "tok-B"})
            server.hub.faults.drop_every = 12
            creds = Credentials(server.url, token="tok-A")
            feed = make_feed(creds, mode="quote")
            got = []
            feed.on_tick(got.append)
            wanted = ["NSE_EQ:1333", "NSE_EQ:2885", "NSE_FNO:35001"]
            await feed.subscribe(wanted)
            await feed.connect()
            creds.token = "tok-B"  # renewed while connected: the next attempt must use it
            publisher = asyncio.get_running_loop().create_task(publish_forever(server.hub, wanted))
            sandbox = server.sandbox
            try:
                await wait_until(lambda: len(sandbox.sessions) >= 3 and sandbox.sessions[2].sent >= 6,
                                 what="two reconnections with data")
            finally:
                publisher.cancel()
            first, second, third = sandbox.sessions[:3]
            assert (first.token, second.token, third.token) == ("tok-A", "tok-B", "tok-B")
            assert first.dropped and second.dropped
            for session in (first, second, third):  # every subscription replayed on every socket
                assert sorted(session.subscribed(17)) == sorted(wanted)
                assert [r["InstrumentCount"] for r in session.requests[:1]] == [3]
            assert feed.status.reconnects >= 2 and creds.calls >= 3
            # ticks from the first two sockets: 12 packets each, less 3 prev closes, less the
            # last one, which the abort may discard from the send buffer
            assert len(got) >= 2 * (12 - 3 - 1)
            prices = [t.ltp for t in got]
            assert prices == sorted(prices)  # nothing out of order across reconnects
            await feed.disconnect()

    run(main())


# --- (c) connected but silent: the watchdog reconnects during market hours ----------------

def test_watchdog_reconnects_a_silent_socket_during_market_hours():
    async def main():
        async with SandboxServer() as server:
            server.hub.faults.silence_after = 4
            feed = make_feed(Credentials(server.url), mode="ticker", silence_s=0.3, watchdog_check_s=0.05,
                             clock=market_clock())
            got = []
            feed.on_tick(got.append)
            wanted = ["NSE_EQ:1", "NSE_EQ:2"]
            await feed.subscribe(wanted)
            await feed.connect()
            publisher = asyncio.get_running_loop().create_task(publish_forever(server.hub, wanted, 0.02))
            sandbox = server.sandbox
            started = time.monotonic()
            try:
                await wait_until(lambda: len(sandbox.sessions) >= 2 and sandbox.sessions[1].sent >= 4
                                 and len(got) >= 4, what="ticks from a second socket")
            finally:
                publisher.cancel()
            elapsed = time.monotonic() - started
            first, second = sandbox.sessions[:2]
            assert first.sent == 4 and not first.dropped and not first.open  # the client closed it
            assert sorted(second.subscribed(15)) == wanted
            assert feed.status.reconnects >= 1
            assert 0.3 <= elapsed < 3.0
            assert len(got) >= 4 and {t.instrument for t in got} == set(wanted)  # from both sockets
            await feed.disconnect()

    run(main())


def test_silence_outside_market_hours_is_normal():
    async def main():
        async with SandboxServer() as server:
            server.hub.faults.silence_after = 2
            feed = make_feed(Credentials(server.url), mode="ticker", silence_s=0.2, watchdog_check_s=0.05,
                             clock=closed_clock())
            await feed.subscribe(["NSE_EQ:1"])
            await feed.connect()
            publisher = asyncio.get_running_loop().create_task(publish_forever(server.hub, ["NSE_EQ:1"], 0.02))
            await asyncio.sleep(0.8)
            publisher.cancel()
            assert len(server.sandbox.sessions) == 1 and feed.status.reconnects == 0
            assert feed.status.connected
            await feed.disconnect()

    run(main())


def test_the_wire_log_redacts_the_client_id_as_it_does_the_token(caplog):
    """``--debug`` prints websockets' request line, whose query logs in with the client id too."""
    caplog.set_level(logging.DEBUG)
    client_id = "1100QACLIENT77"

    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url, token="SENTINEL-tok-77", client_id=client_id))
            await feed.subscribe(["NSE_EQ:1"])
            await feed.connect()
            await wait_until(lambda: server.sandbox.sessions and server.sandbox.sessions[0].client_id == client_id,
                             what="the login")
            await feed.disconnect()

    run(main())
    wire = [r.getMessage() for r in caplog.records if r.name == "algocli.adapters.dhan.wire"]
    assert any("clientId=<redacted>" in line and "token=<redacted>" in line for line in wire), wire
    assert client_id not in caplog.text and "SENTINEL-tok-77" not in caplog.text


def test_screens_show_the_client_id_masked(monkeypatch, tmp_path):
    from algocli.adapters.dhan.plugins import DhanBrokerPlugin, mask_client_id

    assert mask_client_id("1100QACLIENT77") == "11…77" and mask_client_id(" sandbox ") == "sa…ox"
    assert mask_client_id("1234") == "…"  # too short to show any of it
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DHAN_CLIENT_ID", "1100QACLIENT77")
    assert DhanBrokerPlugin.account() == "Dhan client 11…77"
    monkeypatch.setenv("DHAN_CLIENT_ID", "")
    assert DhanBrokerPlugin.account() == "Dhan client (DHAN_CLIENT_ID not set)"


# --- (d) a rejected login is fatal, fast, without a retry storm ---------------------------

def test_rejected_token_raises_feed_auth_error_quickly():
    secret = "SENTINEL-bad-999"

    async def main():
        async with SandboxServer() as server:
            server.hub.valid_tokens.add("good")
            feed = make_feed(Credentials(server.url, token=secret))
            await feed.subscribe(["NSE_EQ:1"])
            started = time.monotonic()
            with pytest.raises(FeedAuthError, match="808") as info:
                await feed.connect()
            assert time.monotonic() - started < 1.5
            await asyncio.sleep(0.3)  # nothing keeps retrying in the background
            sessions = server.sandbox.sessions
            assert 1 <= len(sessions) <= 2 and all(s.rejected == 808 for s in sessions)
            assert sum(sock.attempts for sock in feed.connections) <= 2
            assert secret not in str(info.value) and secret not in feed.status.last_error
            assert feed.error is info.value and not feed.status.connected
            with pytest.raises(FeedAuthError):
                await feed.subscribe(["NSE_EQ:2"])

    run(main())


def test_http_401_on_the_upgrade_is_fatal_after_one_attempt():
    attempts = []

    async def reject(request):
        attempts.append(request.query.get("token"))
        return web.Response(status=401, text="unauthorised")

    async def main():
        async with SandboxServer(**{"/reject": reject}) as server:
            feed = make_feed(Credentials(f"{server.base}/reject", token="SENTINEL-401"))
            with pytest.raises(FeedAuthError, match="HTTP 401") as info:
                await feed.connect()
            await asyncio.sleep(0.2)
            assert attempts == ["SENTINEL-401"]
            assert "SENTINEL-401" not in str(info.value)

    run(main())


def test_token_expiring_mid_session_stops_the_feed_with_a_clear_error():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="ticker")
            await feed.subscribe(["NSE_EQ:1"])
            await feed.connect()
            server.hub.faults.reject_tokens = True  # the next login fails...
            server.hub.faults.drop_every = 1  # ...after the current socket drops on its next packet
            server.hub.publish(tick("NSE_EQ:1", 10.0))
            await wait_until(lambda: feed.error is not None, what="the fatal error")
            assert isinstance(feed.error, FeedAuthError) and "access token" in feed.status.last_error
            await asyncio.sleep(0.3)
            assert len(server.sandbox.sessions) == 2 and not feed.status.connected

    run(main())


def test_empty_token_fails_fast_without_connecting():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url, token=""))
            with pytest.raises(FeedAuthError, match="DHAN_ACCESS_TOKEN is empty"):
                await feed.connect()
            assert server.sandbox.sessions == []

    run(main())


def test_unreachable_server_gives_up_after_the_connect_timeout():
    async def main():
        async with SandboxServer() as server:
            url = server.url
        # the server is gone: every attempt is refused
        feed = make_feed(Credentials(url, token="SENTINEL-x"), connect_timeout=0.5)
        with pytest.raises(BrokerError, match="not connected after 0.5s") as info:
            await feed.connect()
        assert "SENTINEL-x" not in str(info.value)
        assert feed.status.reconnects >= 2  # it did retry, with a backoff capped at 0.1 s

    run(main())


# --- (e) malformed packets are counted and skipped -------------------------------------------

def test_malformed_packets_are_counted_and_the_feed_keeps_running():
    async def main():
        async with SandboxServer() as server:
            server.hub.faults.malformed_every = 3
            feed = make_feed(Credentials(server.url), mode="ticker")
            got = []
            feed.on_tick(got.append)
            await feed.subscribe(["NSE_EQ:7"])
            await feed.connect()
            session = server.sandbox.sessions[0]
            await wait_until(lambda: session.sent == 1, what="prev close")
            for i in range(30):
                server.hub.publish(tick("NSE_EQ:7", 100 + i * 0.05))
            await wait_until(lambda: session.sent == 31 and len(got) + feed.status.malformed == 30,
                             what="every packet accounted for")
            assert session.garbage == 10 and feed.status.malformed == 10 and len(got) == 20
            assert feed.status.connected and feed.status.reconnects == 0
            server.hub.faults.malformed_every = 0
            server.hub.publish(tick("NSE_EQ:7", 250.0))
            await wait_until(lambda: got[-1].ltp == 250.0, what="a tick after the garbage")
            await feed.disconnect()

    run(main())


def test_a_raising_callback_does_not_stop_the_feed():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="ticker")
            got = []

            def broken(t):
                raise RuntimeError("strategy bug")

            feed.on_tick(broken)
            feed.on_tick(got.append)
            await feed.subscribe(["NSE_EQ:7"])
            await feed.connect()
            await wait_until(lambda: server.sandbox.sessions[0].sent == 1)
            server.hub.publish(tick("NSE_EQ:7", 10.0))
            server.hub.publish(tick("NSE_EQ:7", 10.05))
            await wait_until(lambda: len(got) == 2)
            assert feed.status.reconnects == 0
            await feed.disconnect()

    run(main())


def test_subscribe_requests_are_json_text_frames_with_string_ids():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="full")
            await feed.connect()
            await feed.subscribe(["BSE_EQ:532540"])
            await wait_until(lambda: server.sandbox.sessions[0].requests)
            assert json.loads(json.dumps(server.sandbox.sessions[0].requests[0])) == {
                "RequestCode": 21, "InstrumentCount": 1,
                "InstrumentList": [{"ExchangeSegment": "BSE_EQ", "SecurityId": "532540"}]}
            await feed.disconnect()

    run(main())


def test_the_sandbox_forgets_old_closed_sockets():
    async def main():
        async with SandboxServer() as server:
            server.sandbox.max_sessions = 2
            url = f"{server.url}?version=2&token=t&clientId={CLIENT_ID}&authType=2"
            for _ in range(4):
                ws = await websockets.connect(url)
                await wait_until(lambda: server.sandbox.sessions and server.sandbox.sessions[-1].open)
                await ws.close()
                await wait_until(lambda: not server.sandbox.sessions[-1].open)
            assert len(server.sandbox.sessions) == 2  # the newest two of four

    run(main())
