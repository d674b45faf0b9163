"""UpstoxDataFeed against the sandbox routes on a real 127.0.0.1 server."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from adapters.upstox.upstox_support import T0_MS, TokenBox, failing_authorize, serve, tick, until

from algocli.adapters.upstox.data import UpstoxDataFeed, UpstoxFeedConfig
from algocli.data.feed import DataFeed, FeedAuthError
from algocli.errors import BrokerError, ConfigError
from algocli.sandbox.hub import Faults, TickHub

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "connect_timeout": 3.0, "heartbeat": 5.0}


def always_open(now: float) -> float:
    return 0.0  # a session that opened at the epoch: silence always counts


def make_feed(server, token="tok-1", session_start=always_open, **config) -> tuple[UpstoxDataFeed, TokenBox, list]:
    box = TokenBox(server.base_url, token)
    feed = UpstoxDataFeed(UpstoxFeedConfig(**{**FAST, **config}), settings_factory=box, session_start=session_start)
    got: list = []
    feed.on_tick(got.append)
    return feed, box, got


def test_ltpc_mode_delivers_snapshot_then_live_prices_and_times():
    async def main():
        hub = TickHub(valid_tokens={"tok-1"})
        hub.publish(tick("NSE_EQ:1333", 0))  # before anyone connects: comes back as the snapshot
        async with serve(hub) as server:
            feed, _, got = make_feed(server)
            assert isinstance(feed, DataFeed)
            await feed.subscribe(["NSE_EQ:1333", "NSE_EQ:2885"])
            await feed.connect()
            assert feed.status.connected
            await until(lambda: len(got) == 1, what="snapshot")
            for i in (1, 2, 3):
                hub.publish(tick("NSE_EQ:1333", i, volume=999, bid=1.0, ask=2.0))
            hub.publish(tick("NSE_EQ:9999", 4))  # not subscribed: must not arrive
            hub.publish(tick("NSE_EQ:2885", 5))
            await until(lambda: len(got) == 5, what="live ticks")
            await asyncio.sleep(0.05)
            await feed.disconnect()
            return got, feed, server.sandbox

    got, feed, sandbox = asyncio.run(main())
    assert [t.instrument for t in got] == ["NSE_EQ:1333"] * 4 + ["NSE_EQ:2885"]
    assert [t.ltp for t in got] == [1500.0, 1500.05, 1500.1, 1500.15, 1500.25]
    assert [t.ts for t in got] == [(T0_MS + i * 1000) * 1_000_000 for i in (0, 1, 2, 3, 5)]
    assert [t.ltq for t in got] == [10, 11, 12, 13, 15]
    assert all(t.volume is None and t.bid is None for t in got)  # ltpc carries no depth or volume
    assert all(t.received_ns > 0 for t in got)
    assert feed.status.ticks == 5 and feed.status.malformed == 0 and not feed.status.connected
    assert feed.market_status["NSE_EQ"] == "NORMAL_OPEN"
    [req] = sandbox.requests
    assert req["method"] == "sub" and req["data"] == {"mode": "ltpc", "instrumentKeys": ["NSE_EQ|1333", "NSE_EQ|2885"]}
    assert sandbox.text_requests == 0  # requests travel as binary frames


def test_full_mode_carries_volume_quote_oi_and_maps_keys_both_ways():
    async def main():
        hub = TickHub()
        async with serve(hub) as server:
            feed, _, got = make_feed(server, mode="full",
                                     instrument_keys={"NSE_EQ:1333": "NSE_EQ|INE040A01034"})
            await feed.subscribe(["NSE_EQ:1333", "NSE_INDEX:Nifty 50", "NSE_FO:43919"])
            await feed.connect()
            await until(lambda: server.sandbox.requests, what="sub")
            hub.publish(tick("NSE_EQ:INE040A01034", 1, volume=120_000, bid=1500.0, ask=1500.1,
                             bid_qty=40, ask_qty=60))
            hub.publish(tick("NSE_INDEX:Nifty 50", 2, volume=5))
            hub.publish(tick("NSE_FO:43919", 3, volume=7_500, oi=1_234_500, bid=1503.0, ask=1503.2,
                             bid_qty=75, ask_qty=150))
            hub.publish(tick("NSE_EQ:INE040A01034", 4, volume=120_014))
            await until(lambda: len(got) == 4, what="full ticks")
            await feed.disconnect()
            return got, server.sandbox

    got, sandbox = asyncio.run(main())
    eq, idx, fo, eq2 = got
    assert (eq.instrument, eq.ltp, eq.ltq, eq.volume) == ("NSE_EQ:1333", 1500.05, 11, 120_000)
    assert (eq.bid, eq.bid_qty, eq.ask, eq.ask_qty, eq.oi) == (1500.0, 40, 1500.1, 60, None)
    assert eq.ts == (T0_MS + 1000) * 1_000_000
    assert (idx.instrument, idx.ltp, idx.volume, idx.bid) == ("NSE_INDEX:Nifty 50", 1500.1, None, None)
    assert (fo.volume, fo.oi, fo.bid, fo.ask_qty) == (7_500, 1_234_500, 1503.0, 150)
    assert (eq2.volume, eq2.bid, eq2.ask) == (120_014, None, None)
    assert sandbox.requests[0]["data"]["mode"] == "full"
    assert sandbox.requests[0]["data"]["instrumentKeys"][0] == "NSE_EQ|INE040A01034"


def test_drop_reconnects_with_a_new_code_and_the_reread_token_and_resubscribes(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        hub = TickHub(valid_tokens={"tok-SECRET-1", "tok-SECRET-2"}, faults=Faults(drop_every=3))
        hub.publish(tick("NSE_EQ:1333", 0))
        async with serve(hub) as server:
            feed, box, got = make_feed(server, token="tok-SECRET-1")
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            box.token = "tok-SECRET-2"  # renewed in the environment while the feed runs
            await until(lambda: len(got) == 1, what="snapshot")
            hub.publish(tick("NSE_EQ:1333", 1))  # third frame on this socket, then the drop
            await until(lambda: server.sandbox.connections == 2, what="reconnect")
            hub.faults.drop_every = 0
            await until(lambda: len(server.sandbox.requests) == 2, what="resubscribe")
            await until(lambda: feed.status.connected, what="connected again")
            hub.publish(tick("NSE_EQ:1333", 2))
            await until(lambda: got[-1].ltp == 1500.1, what="tick after reconnect")
            await feed.disconnect()
            return got, feed, box, server.sandbox

    got, feed, box, sandbox = asyncio.run(main())
    assert sandbox.tokens_seen == ["tok-SECRET-1", "tok-SECRET-2"] and box.calls == 2
    assert len(sandbox.used_codes) == 2 and sandbox.used_codes[0] != sandbox.used_codes[1]
    assert sandbox.used_codes == sandbox.issued_codes
    assert [r["method"] for r in sandbox.requests] == ["sub", "sub"]
    assert sandbox.requests[0]["data"] == sandbox.requests[1]["data"]
    assert feed.status.reconnects == 1
    # the new socket's snapshot repeats 1500.05; it is recognised and not delivered twice
    assert [t.ltp for t in got] == [1500.0, 1500.05, 1500.1]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("algocli"))
    logged = ours + feed.status.last_error
    assert "reconnecting" in ours
    assert "SECRET" not in logged and all(code not in logged for code in sandbox.used_codes)


def test_silence_while_the_clock_says_open_reconnects_and_not_while_closed():
    async def main():
        hub = TickHub(faults=Faults(silence_after=2))  # market_info + snapshot, then mute
        hub.publish(tick("NSE_EQ:1333", 0))
        opened_at = None  # the fake session clock: closed until the test opens it
        async with serve(hub, segment_status={}) as server:  # no segment status: the clock decides
            feed, _, got = make_feed(server, session_start=lambda now: opened_at, stall_timeout=0.25)
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            await until(lambda: len(got) == 1, what="snapshot")
            await asyncio.sleep(0.8)  # > 3x the stall timeout, market closed
            before = (server.sandbox.connections, feed.status.reconnects)
            opened_at = time.time()
            await until(lambda: server.sandbox.connections >= 2, what="stall reconnect")
            await until(lambda: len(server.sandbox.requests) >= 2, what="resubscribe")
            await feed.disconnect()
            return before, feed, server.sandbox, got

    before, feed, sandbox, got = asyncio.run(main())
    assert before == (1, 0)
    assert feed.status.reconnects >= 1 and "no data" in feed.status.last_error
    assert sandbox.requests[1]["data"]["instrumentKeys"] == ["NSE_EQ|1333"]
    assert sandbox.frames_sent >= 4  # the new socket sent market_info and a snapshot...
    assert [t.ltp for t in got] == [1500.0]  # ...whose repeat of the last trade was not delivered twice


def test_silence_is_normal_when_market_info_says_the_segment_is_closed():
    async def main():
        hub = TickHub(faults=Faults(silence_after=2))
        hub.publish(tick("NSE_EQ:1333", 0))
        closed = {"NSE_EQ": "NORMAL_CLOSE", "NSE_FO": "NORMAL_OPEN"}
        async with serve(hub, segment_status=closed, ping_interval=0.1) as server:  # pongs keep it open
            feed, _, got = make_feed(server, stall_timeout=0.2)  # the clock says open; market_info wins
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            await asyncio.sleep(0.8)
            assert feed.market_status["NSE_EQ"] == "NORMAL_CLOSE"
            result = (server.sandbox.connections, feed.status.reconnects, feed.status.connected)
            await feed.disconnect()
            return result

    assert asyncio.run(main()) == (1, 0, True)


@pytest.mark.parametrize("faults, valid", [(Faults(), {"good"}), (Faults(reject_tokens=True), set())],
                         ids=["wrong-token", "reject-all"])
def test_rejected_token_is_fatal_fast_without_a_retry_storm(faults, valid):
    async def main():
        hub = TickHub(valid_tokens=valid, faults=faults)
        async with serve(hub) as server:
            feed, _, _ = make_feed(server, token="bad-SECRET-token")
            await feed.subscribe(["NSE_EQ:1333"])
            start = time.monotonic()
            with pytest.raises(FeedAuthError) as info:
                await feed.connect()
            elapsed = time.monotonic() - start
            await asyncio.sleep(0.3)  # nothing keeps retrying in the background
            return info.value, elapsed, server.sandbox, feed

    err, elapsed, sandbox, feed = asyncio.run(main())
    assert elapsed < 1.0
    assert 1 <= len(sandbox.tokens_seen) <= 2 and sandbox.connections == 0
    assert "UDAPI100050" in str(err) and "UPSTOX_ACCESS_TOKEN" in str(err)
    assert "SECRET" not in str(err) and "SECRET" not in feed.status.last_error
    assert not feed.status.connected


def test_empty_token_fails_before_any_request():
    async def main():
        async with serve() as server:
            feed, _, _ = make_feed(server, token="")
            with pytest.raises(FeedAuthError, match="UPSTOX_ACCESS_TOKEN"):
                await feed.connect()
            return server.sandbox.tokens_seen

    assert asyncio.run(main()) == []


def test_garbage_frames_are_counted_and_skipped_without_reconnecting():
    async def main():
        hub = TickHub(faults=Faults(malformed_every=2))
        async with serve(hub) as server:
            feed, _, got = make_feed(server)
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            await until(lambda: server.sandbox.requests, what="sub")
            for i in range(1, 7):
                hub.publish(tick("NSE_EQ:1333", i))
                await until(lambda: server.sandbox.frames_sent == 2 + i, what=f"frame {i}")
            await until(lambda: feed.status.malformed == server.sandbox.garbage_sent, what="count")
            await feed.disconnect()
            return got, feed, server.sandbox

    got, feed, sandbox = asyncio.run(main())
    # frames: 1 market_info, 2 snapshot (garbage), 3..8 live; every even one is garbage
    assert sandbox.garbage_sent == 4 and feed.status.malformed == 4
    assert [t.ltp for t in got] == [1500.05, 1500.15, 1500.25]
    assert sandbox.connections == 1 and feed.status.reconnects == 0


def test_unsubscribe_stops_ticks_and_tells_the_server():
    async def main():
        hub = TickHub()
        async with serve(hub) as server:
            feed, _, got = make_feed(server)
            await feed.subscribe(["NSE_EQ:1", "NSE_EQ:2"])
            await feed.connect()
            await until(lambda: server.sandbox.requests, what="sub")
            await feed.unsubscribe(["NSE_EQ:1"])
            await until(lambda: len(server.sandbox.requests) == 2, what="unsub")
            hub.publish(tick("NSE_EQ:1", 1))
            hub.publish(tick("NSE_EQ:2", 2))
            await feed.subscribe(["NSE_EQ:3"])
            await until(lambda: len(server.sandbox.requests) == 3, what="second sub")
            hub.publish(tick("NSE_EQ:3", 3))
            await until(lambda: len(got) == 2, what="ticks")
            await asyncio.sleep(0.05)
            await feed.disconnect()
            return got, server.sandbox.requests, feed

    got, requests, feed = asyncio.run(main())
    assert [t.instrument for t in got] == ["NSE_EQ:2", "NSE_EQ:3"]
    assert requests[1] == {**requests[1], "method": "unsub", "data": {"instrumentKeys": ["NSE_EQ|1"]}}
    assert requests[2]["data"] == {"mode": "ltpc", "instrumentKeys": ["NSE_EQ|3"]}
    assert feed.subscriptions == {"NSE_EQ:2": "NSE_EQ|2", "NSE_EQ:3": "NSE_EQ|3"}


@pytest.mark.parametrize("mode, limit", [("ltpc", 5000), ("full", 2000)])
def test_per_mode_key_limits_are_enforced_with_a_clear_error(mode, limit):
    async def main():
        feed = UpstoxDataFeed(UpstoxFeedConfig(mode=mode))
        await feed.subscribe([f"NSE_FO:{i}" for i in range(limit)])
        with pytest.raises(ConfigError, match=rf"at most {limit} instruments in {mode} mode.*{limit + 1} requested"):
            await feed.subscribe(["NSE_FO:extra"])
        return len(feed.subscriptions)

    assert asyncio.run(main()) == limit


def test_requests_are_json_in_the_documented_shape():
    from algocli.adapters.upstox.websocket import build_request

    req = json.loads(build_request("sub", ["NSE_EQ|1"], "full"))
    assert req["method"] == "sub" and req["data"] == {"instrumentKeys": ["NSE_EQ|1"], "mode": "full"}
    assert len(req["guid"]) >= 16
    assert "mode" not in json.loads(build_request("unsub", ["NSE_EQ|1"]))["data"]


def test_server_errors_back_off_then_connect():
    async def main():
        refuse = failing_authorize(3, status=503)
        async with serve(middlewares=[refuse]) as server:
            feed, _, _ = make_feed(server)
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            result = (len(refuse.calls), feed.status.reconnects, feed.status.connected, feed.status.last_error)
            await feed.disconnect()
            return result, refuse.calls

    (calls, reconnects, connected, last_error), times = asyncio.run(main())
    assert (calls, reconnects, connected) == (4, 3, True)
    assert "HTTP 503" in last_error and "UDAPI100500" in last_error
    assert times[-1] - times[0] < 1.0  # three full-jitter delays capped at 0.05, 0.1, 0.2 (+ slack for slow CI)


def test_connect_gives_up_after_its_timeout_and_stops_retrying():
    async def main():
        refuse = failing_authorize(10_000, status=429)
        async with serve(middlewares=[refuse]) as server:
            feed, _, _ = make_feed(server, connect_timeout=0.4)
            await feed.subscribe(["NSE_EQ:1333"])
            with pytest.raises(BrokerError, match=r"not connected after 0.4s \(.*HTTP 429.*\); check the network "
                                                  "and UPSTOX_API_BASE_URL"):
                await feed.connect()
            calls = len(refuse.calls)
            await asyncio.sleep(0.4)
            return calls, len(refuse.calls)

    at_timeout, later = asyncio.run(main())
    assert 2 <= at_timeout <= 20  # backed off (no tight loop), capped at 0.2s in FAST
    assert later == at_timeout  # nothing retries in the background after connect() gave up


def test_token_expiring_mid_run_stops_the_feed_with_a_relogin_error():
    async def main():
        hub = TickHub(valid_tokens={"day-1"})
        hub.publish(tick("NSE_EQ:1333", 0))
        async with serve(hub) as server:
            feed, _, got = make_feed(server, token="day-1")
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            await until(lambda: len(got) == 1, what="snapshot")
            hub.valid_tokens = {"day-2"}  # the overnight rollover: the old token is now refused
            hub.faults.drop_every = 1
            hub.publish(tick("NSE_EQ:1333", 1))  # this frame is sent, then the socket drops
            with pytest.raises(FeedAuthError, match="UDAPI100050"):
                await asyncio.wait_for(feed.wait_closed(), 3)
            seen = len(server.sandbox.tokens_seen)
            await asyncio.sleep(0.3)
            return seen, len(server.sandbox.tokens_seen), feed

    seen, later, feed = asyncio.run(main())
    assert seen == later == 2  # the first connect and one refused reconnect, then nothing
    assert not feed.status.connected and "UPSTOX_ACCESS_TOKEN" in feed.status.last_error
