"""A replayed feed's watchdog (``algo sandbox``, the feeds' ``in_order``) judges silence by the
replay, not by the wall clock's NSE hours: on an evening or a Sunday a silent replay is
reconnected, while a replay that has ended (its last tick closed the session) is left alone.
The feeds are driven over real sockets on 127.0.0.1 against the sandbox's protocols."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta, timezone

from adapters.dhan.dhan_support import Credentials, SandboxServer, closed_clock, wait_until
from adapters.dhan.dhan_support import tick as dhan_tick
from adapters.upstox.upstox_support import TokenBox, serve, until
from adapters.upstox.upstox_support import tick as upstox_tick
from algocli.adapters.dhan.data import DhanDataFeed
from algocli.adapters.upstox.data import UpstoxDataFeed, UpstoxFeedConfig
from algocli.data.reconnect import ReplayPace, Watchdog, nse_session_start
from algocli.sandbox.hub import Faults, TickHub

IST = timezone(timedelta(hours=5, minutes=30))


def ns(y, mo, d, h, mi, s=0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=IST).timestamp()) * 10**9


def test_a_replay_counts_silence_until_its_last_tick_closes_the_session():
    pace = ReplayPace()
    evening = datetime(2026, 12, 4, 20, 5, tzinfo=IST).timestamp()  # a Friday evening: the market is shut
    assert nse_session_start(evening) is None
    assert pace.session_start(evening) == -math.inf  # no tick yet: silence counts from the connection
    pace.tick(ns(2024, 6, 10, 11, 0))
    assert pace.session_start(evening) == -math.inf
    pace.tick(ns(2024, 6, 14, 15, 28, 59))
    assert pace.session_start(evening) == -math.inf
    pace.tick(ns(2024, 6, 14, 15, 29, 59))  # the replay's last tick of a day: it has ended
    assert pace.session_start(evening) is None
    pace.tick(ns(2026, 8, 4, 15, 35))  # F&O trades to 15:40 from 2026-08-03: still inside the session
    assert pace.session_start(evening) == -math.inf


def test_the_watchdog_on_an_evening_expires_for_a_replay_and_never_by_market_hours():
    now = [datetime(2026, 12, 4, 20, 5, tzinfo=IST).timestamp()]
    pace = ReplayPace(clock=lambda: now[0])
    by_hours = Watchdog(60.0, clock=lambda: now[0])
    replay = Watchdog(60.0, clock=lambda: now[0], session_start=pace.session_start, tolerance=pace.tolerance)
    for k in range(8):  # a 1-minute-bar replay at 60x: a tick every quarter second
        pace.tick(ns(2024, 6, 10, 11, 0) + k * 15 * 10**9)
        now[0] += 0.25
    by_hours.touch()
    replay.touch()
    now[0] += 89.0  # the QA case: "last tick 89 s" on an evening
    assert not by_hours.expired() and by_hours.silence() == 0.0
    assert replay.expired() and replay.silence() == 89.0


def test_a_slow_replay_of_coarse_bars_is_not_taken_for_a_silent_one():
    """Daily bars at 60x: four ticks a session, about two minutes of wall time apart. Once the
    replay's pace is known (from its first gap), the silence between its ticks is that pace (three
    usual gaps are tolerated), not a dead feed."""
    now = [0.0]
    pace = ReplayPace(clock=lambda: now[0])
    watchdog = Watchdog(60.0, clock=lambda: now[0], session_start=pace.session_start, tolerance=pace.tolerance)
    pace.tick(ns(2024, 6, 10, 9, 15))
    now[0] += 125.0
    assert watchdog.expired()  # nothing to go by yet but silence_s
    for day in (10, 11):
        for hhmm in ((11, 20), (13, 25), (15, 29, 59)):
            pace.tick(ns(2024, 6, day, *hhmm))
            watchdog.touch()
            if hhmm == (15, 29, 59):
                break
            now[0] += 125.0
            assert not watchdog.expired(), (day, hhmm)
        now[0] += 1.0  # the replay jumps to the next session's open at once
        pace.tick(ns(2024, 6, day + 1, 9, 15))
        now[0] += 125.0
        assert not watchdog.expired()
    assert pace.usual_gap() == 125.0 and pace.tolerance() == 375.0
    now[0] += 376.0 - 125.0  # past three usual gaps: silent after all
    assert watchdog.expired()


def test_a_silent_dhan_replay_is_reconnected_on_a_sunday_and_an_ended_one_is_not():
    async def main(replay: bool, last_ts: int):
        async with SandboxServer() as server:
            server.hub.faults.silence_after = 4
            feed = DhanDataFeed(Credentials(server.url).factory, mode="ticker", silence_s=0.3, watchdog_check_s=0.05,
                                clock=closed_clock(), backoff_base=0.02, backoff_cap=0.1, connect_timeout=5.0)
            feed.in_order = replay
            await feed.subscribe(["NSE_EQ:1"])
            await feed.connect()
            for k in range(6):
                server.hub.publish(dhan_tick("NSE_EQ:1", 100.0 + k, ts_s=last_ts - 5 + k))
            await asyncio.sleep(1.0)
            result = feed.status.reconnects, len(server.sandbox.sessions), feed.status.last_error
            await feed.disconnect()
            return result

    reconnects, sockets, why = asyncio.run(main(True, ns(2024, 6, 10, 11, 0) // 10**9))
    assert reconnects >= 1 and sockets >= 2 and "no data for 0.3s" in why
    assert asyncio.run(main(False, ns(2024, 6, 10, 11, 0) // 10**9))[:2] == (0, 1)  # the wall clock's hours: shut
    # the sandbox's last tick of a day is one second before the close: the replay has ended, silence is normal
    assert asyncio.run(main(True, ns(2024, 6, 14, 15, 29, 59) // 10**9 + 5 - 2))[:2] == (0, 1)


def test_a_silent_upstox_replay_is_reconnected_whatever_the_market_status_says():
    async def main(replay: bool):
        hub = TickHub(faults=Faults(silence_after=2))  # market_info + snapshot, then mute
        hub.publish(upstox_tick("NSE_EQ:1333", 0))
        closed = {"NSE_EQ": "NORMAL_CLOSE"}  # what the real feed says on an evening
        async with serve(hub, segment_status=closed, ping_interval=0.1) as server:
            feed = UpstoxDataFeed(UpstoxFeedConfig(backoff_initial=0.05, backoff_max=0.2, connect_timeout=3.0,
                                                   heartbeat=5.0, stall_timeout=0.25),
                                  settings_factory=TokenBox(server.base_url, "tok-1"))
            feed.in_order = replay
            await feed.subscribe(["NSE_EQ:1333"])
            await feed.connect()
            if replay:
                await until(lambda: server.sandbox.connections >= 2, what="a stall reconnect")
            else:
                await asyncio.sleep(1.0)
            result = server.sandbox.connections, feed.status.reconnects
            await feed.disconnect()
            return result

    started = time.monotonic()
    connections, reconnects = asyncio.run(main(True))
    assert connections >= 2 and reconnects >= 1 and time.monotonic() - started < 5
    assert asyncio.run(main(False)) == (1, 0)  # not a replay: market_info's NORMAL_CLOSE makes silence normal


def test_a_replayed_dhan_feed_follows_its_ticks_exchange_time_and_a_live_one_does_not():
    async def main(replay: bool):
        async with SandboxServer() as server:
            feed = DhanDataFeed(Credentials(server.url).factory, mode="ticker", connect_timeout=5.0)
            feed.in_order = replay
            got = []
            feed.on_tick(got.append)
            await feed.subscribe(["NSE_EQ:1"])
            await feed.connect()
            server.hub.publish(dhan_tick("NSE_EQ:1", 100.0, ts_s=1_772_602_200))
            await wait_until(lambda: got, what="a tick")
            await feed.disconnect()
            return feed.replay.last_ns, got[0].ts

    kept, ts = asyncio.run(main(True))
    assert kept == ts
    assert asyncio.run(main(False))[0] is None  # a live feed pays nothing for it
