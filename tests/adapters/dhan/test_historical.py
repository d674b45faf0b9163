"""Dhan historical candles: our REST client and the official SDK against the sandbox routes.

The sandbox serves the sample CSV bars over a real socket on 127.0.0.1; expected values
are the same CSV bars resampled independently with pandas.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from dhanhq import DhanContext, dhanhq
from pydantic import SecretStr

from algocli.adapters.dhan.data import DhanDataFeed
from algocli.adapters.dhan.http import DhanRest, historical, instrument_fields, merge_chunks
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.csv_feed import load_csv
from algocli.data.feed import FeedAuthError
from algocli.data.history import Bars
from algocli.data.reconnect import Backoff
from algocli.errors import BrokerError, ConfigError
from algocli.sandbox.history import add_routes
from algocli.sandbox.hub import Faults, TickHub

ROOT = Path(__file__).resolve().parents[3]
IST = timezone(timedelta(hours=5, minutes=30))
MINUTE_NS = 60 * 10**9
CLIENT_ID = "1100001234"
TOKEN = "tok-historical-7f3a"
MINUTE = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", "NSE_EQ:2885")  # 5 days of 1-minute bars, June 2024
DAILY = load_csv(ROOT / "data" / "NSE_EQ_1333.csv", "NSE_EQ:1333")  # 2019-2025 daily bars


def sparse_minutes(instrument: str, first: date, days: int, per_day: int = 4, seed: int = 7,
                   oi: bool = False) -> Bars:
    """A few 1-minute bars (09:15 on) on each of ``days`` weekdays from ``first``."""
    rng = np.random.default_rng(seed)
    stamps, day = [], first
    while len(stamps) < days * per_day:
        if day.weekday() < 5:
            midnight = int(datetime(day.year, day.month, day.day, tzinfo=IST).timestamp()) * 10**9
            stamps += [midnight + (555 + k) * MINUTE_NS for k in range(per_day)]
        day += timedelta(days=1)
    n = len(stamps)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    volume = rng.integers(100, 1000, n).astype(float)
    return Bars(instrument, np.array(stamps, dtype=np.int64), open_, high, low, close, volume,
                rng.integers(1000, 5000, n).astype(float) if oi else None)


LONG = sparse_minutes("NSE_EQ:500", date(2023, 1, 2), 240)  # spans most of 2023
FUTURE = sparse_minutes("NSE_FNO:35001", date(2024, 6, 10), 3, oi=True)
BARS = {b.instrument: b for b in (MINUTE, DAILY, LONG, FUTURE)}


def pandas_resample(bars: Bars, minutes: int | None) -> pd.DataFrame:
    """Independent NSE-grid resample: buckets from 09:15 IST per day, or whole IST days."""
    idx = pd.to_datetime(bars.ts, utc=True).tz_convert(IST)
    frame = pd.DataFrame({"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
                          "volume": bars.volume}, index=idx)
    day = idx.normalize()
    if minutes is None:
        label = day
    else:
        since = (idx - day) // pd.Timedelta(minutes=1)
        label = day + pd.to_timedelta(555 + (since - 555) // minutes * minutes, unit="min")
    out = frame.groupby(label).agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                   close=("close", "last"), volume=("volume", "sum"))
    out.index = pd.DatetimeIndex(out.index).as_unit("ns")
    return out


def assert_same(got: Bars, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(got.ts, want.index.asi8)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(got, name), want[name].to_numpy(), rtol=0, atol=1e-9, err_msg=name)


def settings(port: int, token: str = TOKEN) -> DhanSettings:
    return DhanSettings(client_id=CLIENT_ID, access_token=SecretStr(token), api_base_url=f"http://127.0.0.1:{port}/v2")


@asynccontextmanager
async def sandbox(middlewares=(), hub: TickHub | None = None):
    app = web.Application(middlewares=list(middlewares))
    state = add_routes(app, BARS, upstox=False, hub=hub or TickHub(valid_tokens={TOKEN}))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield state, runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fast(**kw) -> dict:
    return {"pace": 0, "backoff": Backoff(0.005, 0.02, rng=random.Random(1)), "timeout": 2.0, **kw}


def test_instrument_fields_come_from_the_id():
    assert instrument_fields("NSE_EQ:1333") == {"securityId": "1333", "exchangeSegment": "NSE_EQ",
                                                "instrument": "EQUITY"}
    assert instrument_fields("IDX_I:13")["instrument"] == "INDEX"
    assert instrument_fields("NSE_FNO:35001", "FUTIDX")["instrument"] == "FUTIDX"
    with pytest.raises(ConfigError, match="FUTIDX"):
        instrument_fields("NSE_FNO:35001")
    with pytest.raises(ConfigError, match="SEGMENT:SECURITY_ID"):
        instrument_fields("RELIANCE")
    with pytest.raises(ConfigError, match="unknown Dhan exchange segment"):
        instrument_fields("NSE_XX:1")


def test_merge_sorts_deduplicates_and_clips():
    def chunk(ts, close):
        ts = np.array(ts, dtype=np.int64)
        c = np.array(close, dtype=float)
        return {"ts": ts, "open": c, "high": c, "low": c, "close": c, "volume": c, "oi": np.zeros(len(ts))}

    bars = merge_chunks("X:1", [chunk([30, 10, 20], [3, 1, 2]), chunk([20, 40, 50], [9, 4, 5])], 10, 40, False)
    assert bars.ts.tolist() == [10, 20, 30, 40]
    assert bars.close.tolist() == [1, 9, 3, 4]  # the later chunk's bar at 20 wins
    assert bars.oi is None and bars.ts.dtype == np.int64
    assert len(merge_chunks("X:1", [], 0, 10, True)) == 0


def test_daily_and_resampled_intraday_match_pandas():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            cfg = settings(port)
            daily = await historical(session, cfg, "NSE_EQ:1333", date(2019, 1, 1), date(2025, 12, 31), "1d",
                                     **fast())
            partial = await historical(session, cfg, "NSE_EQ:1333", date(2020, 3, 2), date(2020, 3, 6), "1d",
                                       **fast())
            intraday = {iv: await historical(session, cfg, "NSE_EQ:2885", date(2024, 6, 1), date(2024, 6, 30), iv,
                                             **fast()) for iv in ("1m", "5m", "15m", "1h")}
            return state.requests, daily, partial, intraday

    requests, daily, partial, intraday = run(main())
    assert_same(daily, pandas_resample(DAILY, None))
    want = pandas_resample(DAILY, None)
    assert_same(partial, want[(want.index >= "2020-03-02") & (want.index < "2020-03-07")])
    assert [d.date() for d in pd.to_datetime(partial.ts, utc=True).tz_convert(IST)] == [
        date(2020, 3, d) for d in (2, 3, 4, 5, 6)]
    assert_same(intraday["1m"], pandas_resample(MINUTE, 1))
    assert_same(intraday["5m"], pandas_resample(MINUTE, 5))
    assert_same(intraday["15m"], pandas_resample(MINUTE, 15))
    assert_same(intraday["1h"], pandas_resample(MINUTE, 60))
    route, body = requests[1]
    assert route == "dhan:historical"
    assert body == {"securityId": "1333", "exchangeSegment": "NSE_EQ", "instrument": "EQUITY", "expiryCode": 0,
                    "oi": False, "fromDate": "2020-03-02", "toDate": "2020-03-07"}  # toDate is exclusive
    route, body = requests[-1]
    assert route == "dhan:intraday" and body["interval"] == "60"
    assert (body["fromDate"], body["toDate"]) == ("2024-06-01 00:00:00", "2024-07-01 00:00:00")


def test_25_minute_candles_are_dhans_own():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            bars = await historical(session, settings(port), "NSE_EQ:2885", date(2024, 6, 10), date(2024, 6, 14),
                                    "25m", **fast())
            return state.requests, bars

    requests, bars = run(main())
    assert [body["interval"] for _, body in requests] == ["25"]
    assert_same(bars, pandas_resample(MINUTE, 25))
    starts = pd.to_datetime(bars.ts, utc=True).tz_convert(IST)
    assert [t.strftime("%H:%M") for t in starts[:3]] == ["09:15", "09:40", "10:05"]


def test_a_long_intraday_range_is_split_into_90_day_requests():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            bars = await historical(session, settings(port), "NSE_EQ:500", date(2023, 1, 1), date(2023, 12, 31),
                                    "5m", **fast())
            return state.requests, bars

    requests, bars = run(main())
    assert len(requests) == 5  # 365 days in 90-day requests
    spans = [(datetime.fromisoformat(b["fromDate"]), datetime.fromisoformat(b["toDate"])) for _, b in requests]
    assert all(to - frm <= timedelta(days=90) for frm, to in spans)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no gap
    assert spans[0][0] == datetime(2023, 1, 1) and spans[-1][1] == datetime(2024, 1, 1)
    assert_same(bars, pandas_resample(LONG, 5))
    assert bool((np.diff(bars.ts) > 0).all())


def test_datetime_bounds_are_inclusive_ist_and_derivatives_carry_oi():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            cfg = settings(port)
            window = await historical(session, cfg, "NSE_EQ:2885", datetime(2024, 6, 11, 10, 0),
                                      datetime(2024, 6, 11, 11, 0), "15m", **fast())
            fut = await historical(session, cfg, "NSE_FNO:35001", date(2024, 6, 10), date(2024, 6, 12), "1m",
                                   instrument_type="FUTIDX", **fast())
            return state.requests, window, fut

    requests, window, fut = run(main())
    times = [t.strftime("%d %H:%M") for t in pd.to_datetime(window.ts, utc=True).tz_convert(IST)]
    assert times == ["11 10:00", "11 10:15", "11 10:30", "11 10:45", "11 11:00"]
    assert requests[-1][1]["oi"] is True and requests[-1][1]["instrument"] == "FUTIDX"
    np.testing.assert_array_equal(fut.ts, FUTURE.ts)
    np.testing.assert_array_equal(fut.oi, FUTURE.oi)
    assert window.oi is None


def _failing(plan: list):
    """Middleware: answer the first calls from ``plan`` (status, body or "slow"), then pass."""
    calls = []

    @web.middleware
    async def middleware(request, handler):
        calls.append(request.path)
        if len(calls) <= len(plan):
            step = plan[len(calls) - 1]
            if step == "slow":
                await asyncio.sleep(1.0)
            else:
                status, body = step
                return web.json_response(body, status=status)
        return await handler(request)

    return middleware, calls


def test_transient_failures_are_retried_with_backoff():
    rate = {"errorType": "Rate_Limit", "errorCode": "DH-904", "errorMessage": "Too many requests"}
    middleware, calls = _failing([(503, {}), (429, rate), "slow", (200, rate)])

    async def main():
        async with sandbox([middleware]) as (_, port), aiohttp.ClientSession() as session:
            rest = DhanRest(session, settings(port), retries=4, timeout=0.3, pace=0,
                            backoff=Backoff(0.005, 0.02, rng=random.Random(2)))
            bars = await historical(session, None, "NSE_EQ:1333", date(2024, 1, 1), date(2024, 1, 31), rest=rest)
            return rest.calls, bars

    sent, bars = run(main())
    assert sent == len(calls) == 5
    assert_same(bars, pandas_resample(DAILY.slice(*np.searchsorted(
        DAILY.ts, [pd.Timestamp("2024-01-01", tz=IST).value, pd.Timestamp("2024-02-01", tz=IST).value])), None))


def test_retries_are_bounded():
    middleware, calls = _failing([(500, {"errorType": "Internal", "errorCode": "DH-908",
                                         "errorMessage": "Internal server error"})] * 10)

    async def main():
        async with sandbox([middleware]) as (_, port), aiohttp.ClientSession() as session:
            await historical(session, settings(port), "NSE_EQ:1333", date(2024, 1, 1), date(2024, 1, 5),
                             **fast(retries=2))

    with pytest.raises(BrokerError, match=r"failed 3 times; last: HTTP 500, DH-908"):
        run(main())
    assert len(calls) == 3


def test_a_refused_token_is_fatal_and_never_logged(caplog):
    middleware, calls = _failing([])

    async def main(token):
        async with sandbox([middleware]) as (_, port), aiohttp.ClientSession() as session:
            await historical(session, settings(port, token), "NSE_EQ:1333", date(2024, 1, 1), date(2024, 1, 5),
                             **fast())

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(FeedAuthError) as info:
            run(main("tok-expired-91c2"))
    assert "DH-901" in str(info.value) and "DHAN_ACCESS_TOKEN" in str(info.value)
    assert len(calls) == 1  # no retry
    assert "tok-expired-91c2" not in str(info.value) + caplog.text
    with pytest.raises(FeedAuthError, match="DHAN_ACCESS_TOKEN is empty"):
        run(main(""))
    assert len(calls) == 1  # nothing sent without a token


def test_faults_reject_tokens_also_refuses_history():
    async def main():
        hub = TickHub(faults=Faults(reject_tokens=True))
        async with sandbox(hub=hub) as (_, port), aiohttp.ClientSession() as session:
            await historical(session, settings(port), "NSE_EQ:1333", date(2024, 1, 1), date(2024, 1, 5), **fast())

    with pytest.raises(FeedAuthError):
        run(main())


def test_rejections_name_dhans_code_even_with_http_200():
    input_error = {"errorType": "Input_Exception", "errorCode": "DH-905", "errorMessage": "Invalid SecurityId"}
    middleware, calls = _failing([(200, input_error)])

    async def main(instrument):
        async with sandbox([middleware]) as (_, port), aiohttp.ClientSession() as session:
            await historical(session, settings(port), instrument, date(2024, 6, 10), date(2024, 6, 11), "5m",
                             **fast())

    with pytest.raises(BrokerError, match="DH-905: Invalid SecurityId") as info:
        run(main("NSE_EQ:2885"))
    assert not isinstance(info.value, FeedAuthError) and len(calls) == 1
    with pytest.raises(BrokerError, match="DH-907") as info:
        run(main("NSE_EQ:424242"))
    assert "HTTP 400" in str(info.value)


def test_the_feed_fetches_history_with_fresh_settings():
    async def main():
        async with sandbox() as (_, port):
            made = []

            def factory():
                made.append(1)
                return settings(port)

            feed = DhanDataFeed(factory)
            return made, await feed.get_historical("NSE_EQ:2885", date(2024, 6, 12), date(2024, 6, 13), "15m")

    made, bars = run(main())
    assert made == [1]
    want = pandas_resample(MINUTE, 15)
    assert_same(bars, want[(want.index >= "2024-06-12") & (want.index < "2024-06-14")])


def test_the_official_sdk_reads_the_same_candles():
    async def main():
        async with sandbox() as (_, port), aiohttp.ClientSession() as session:
            sdk = dhanhq(DhanContext(CLIENT_ID, TOKEN))
            sdk.dhan_http.base_url = f"http://127.0.0.1:{port}/v2"
            daily = await asyncio.to_thread(sdk.historical_daily_data, "1333", "NSE_EQ", "EQUITY", "2021-01-01",
                                            "2021-04-01")
            minutes = await asyncio.to_thread(sdk.intraday_minute_data, "2885", "NSE_EQ", "EQUITY", "2024-06-10",
                                              "2024-06-12", 25)
            refused = dhanhq(DhanContext(CLIENT_ID, "tok-wrong"))
            refused.dhan_http.base_url = sdk.dhan_http.base_url
            denied = await asyncio.to_thread(refused.historical_daily_data, "1333", "NSE_EQ", "EQUITY",
                                             "2021-01-01", "2021-04-01")
            cfg = settings(port)
            ours_daily = await historical(session, cfg, "NSE_EQ:1333", date(2021, 1, 1), date(2021, 3, 31), **fast())
            ours_25 = await historical(session, cfg, "NSE_EQ:2885", date(2024, 6, 10), date(2024, 6, 11), "25m",
                                       **fast())
            return sdk, daily, minutes, denied, ours_daily, ours_25

    sdk, daily, minutes, denied, ours_daily, ours_25 = run(main())
    assert daily["status"] == "success" and minutes["status"] == "success"
    for theirs, ours in ((daily["data"], ours_daily), (minutes["data"], ours_25)):
        assert len(ours) > 0
        assert theirs["timestamp"] == (ours.ts // 10**9).tolist()
        for name in ("open", "high", "low", "close", "volume"):
            assert theirs[name] == getattr(ours, name).tolist(), name
    assert sdk.convert_to_date_time(daily["data"]["timestamp"][0]) == date(2021, 1, 1)
    assert sdk.convert_to_date_time(minutes["data"]["timestamp"][0]) == datetime(2024, 6, 10, 9, 15, tzinfo=IST)
    assert denied["status"] == "failure" and denied["remarks"]["error_code"] == "DH-901"


def test_bad_arguments_are_refused_before_settings_are_read():
    feed = DhanDataFeed(lambda: pytest.fail("no settings needed"))
    for args, words in ((("NSE_EQ:1", None, None, "1m"), "not a date"),
                        (("NSE_EQ:RELIANCE", date(2024, 1, 1), date(2024, 1, 2), "1m"), "numeric Dhan security id"),
                        (("NSE_EQ:1", date(2024, 1, 1), date(2024, 1, 2), "2m"), "interval"),
                        (("NSE_EQ:1", date(2024, 1, 2), date(2024, 1, 1), "1d"), "before it starts")):
        with pytest.raises(ConfigError, match=words):
            run(feed.get_historical(*args))
