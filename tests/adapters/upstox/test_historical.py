"""Upstox v3 historical candles: our REST client and the official SDK against the sandbox routes.

The sandbox serves the sample CSV bars over a real socket on 127.0.0.1; expected values
are the same CSV bars resampled independently with pandas.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest
import upstox_client
from aiohttp import web
from pydantic import SecretStr
from upstox_client.rest import ApiException

from algocli.adapters.upstox.data import UpstoxDataFeed, UpstoxFeedConfig
from algocli.adapters.upstox.http import UpstoxRest, add_months, historical, span_months
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.csv_feed import load_csv
from algocli.data.feed import FeedAuthError
from algocli.data.history import Bars
from algocli.data.reconnect import Backoff
from algocli.errors import BrokerError, ConfigError
from algocli.sandbox.history import add_routes
from algocli.sandbox.hub import TickHub

ROOT = Path(__file__).resolve().parents[3]
IST = timezone(timedelta(hours=5, minutes=30))
MINUTE_NS = 60 * 10**9
TOKEN = "tok-upstox-hist-52d1"
MINUTE = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", "NSE_EQ:2885")  # 10-14 June 2024, 1-minute bars
DAILY = load_csv(ROOT / "data" / "NSE_EQ_1333.csv", "NSE_EQ:1333")  # 2019-2025 daily bars
LAST_DAY = date(2024, 6, 14)


def sparse_minutes(instrument: str, first: date, days: int, per_day: int = 4, seed: int = 11,
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
    close = 250 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[250.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    return Bars(instrument, np.array(stamps, dtype=np.int64), open_, high, low, close,
                rng.integers(100, 1000, n).astype(float), rng.integers(1000, 5000, n).astype(float) if oi else None)


LONG = sparse_minutes("NSE_EQ:600", date(2022, 11, 1), 150)  # Nov 2022 to mid 2023
FUTURE = sparse_minutes("NSE_FO:43919", date(2024, 6, 10), 3, oi=True)
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


def between(frame: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """Rows whose IST date is in ``[first, last]``."""
    end = (pd.Timestamp(last) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return frame[(frame.index >= pd.Timestamp(first, tz=IST)) & (frame.index < pd.Timestamp(end, tz=IST))]


def assert_same(got: Bars, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(got.ts, want.index.asi8)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(got, name), want[name].to_numpy(), rtol=0, atol=1e-9, err_msg=name)


def settings(port: int, token: str = TOKEN) -> UpstoxSettings:
    return UpstoxSettings(access_token=SecretStr(token), api_base_url=f"http://127.0.0.1:{port}")


@asynccontextmanager
async def sandbox(middlewares=(), hub: TickHub | None = None, **options):
    app = web.Application(middlewares=list(middlewares))
    state = add_routes(app, BARS, dhan=False, hub=hub or TickHub(valid_tokens={TOKEN}), **options)
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
    return {"backoff": Backoff(0.005, 0.02, rng=random.Random(1)), "timeout": 2.0, **kw}


def test_span_limits_and_month_arithmetic():
    assert [span_months("minutes", n) for n in (1, 15, 25, 60)] == [1, 1, 3, 3]
    assert (span_months("hours", 1), span_months("days", 1)) == (3, 120)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 11, 15), 3) == date(2025, 2, 15)


def test_past_days_and_today_match_pandas():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            cfg = settings(port)
            got = {iv: await historical(session, cfg, "NSE_EQ:2885", date(2024, 6, 1), date(2024, 6, 30), iv,
                                        today=LAST_DAY, **fast()) for iv in ("1m", "5m", "15m", "25m", "1h")}
            got["1d"] = await historical(session, cfg, "NSE_EQ:1333", date(2019, 1, 1), date(2025, 12, 31), "1d",
                                         today=date(2026, 1, 5), **fast())
            return state.requests, got

    requests, got = run(main())
    for iv, minutes in (("1m", 1), ("5m", 5), ("15m", 15), ("25m", 25), ("1h", 60)):
        assert_same(got[iv], pandas_resample(MINUTE, minutes))
    assert_same(got["1d"], pandas_resample(DAILY, None))
    five = [r for _, r in requests if r["interval"] == "5"]
    assert five == [
        {"key": "NSE_EQ|2885", "unit": "minutes", "interval": "5", "to_date": "2024-06-13", "from_date": "2024-06-01"},
        {"key": "NSE_EQ|2885", "unit": "minutes", "interval": "5"},  # today: the intraday route
    ]
    assert [r["interval"] for _, r in requests if r["unit"] == "minutes"] == ["1", "1", "5", "5", "15", "15", "25",
                                                                            "25", "60", "60"]


def test_long_ranges_are_split_within_upstoxs_span_limits():
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            cfg = settings(port)
            one = await historical(session, cfg, "NSE_EQ:600", date(2021, 6, 1), date(2023, 6, 30), "1m",
                                   today=LAST_DAY, **fast())
            marks = len(state.requests)
            hourly = await historical(session, cfg, "NSE_EQ:600", date(2022, 11, 1), date(2023, 6, 30), "1h",
                                      today=LAST_DAY, **fast())
            marks2 = len(state.requests)
            daily = await historical(session, cfg, "NSE_EQ:1333", date(2005, 1, 1), date(2024, 12, 31), "1d",
                                     today=date(2025, 1, 1), **fast())
            return state.requests, (marks, marks2), one, hourly, daily

    requests, (m1, m2), one, hourly, daily = run(main())
    monthly = [r for _, r in requests[:m1]]
    assert monthly[0]["from_date"] == "2022-01-01"  # minute history starts in January 2022
    assert len(monthly) == 18 and all(r["unit"] == "minutes" and r["interval"] == "1" for r in monthly)
    for r in monthly:
        assert date.fromisoformat(r["to_date"]) < add_months(date.fromisoformat(r["from_date"]), 1)
    for a, b in zip(monthly, monthly[1:]):
        assert date.fromisoformat(b["from_date"]) == date.fromisoformat(a["to_date"]) + timedelta(days=1)
    assert_same(one, pandas_resample(LONG, 1)[lambda f: f.index < pd.Timestamp("2023-07-01", tz=IST)])
    quarterly = [r for _, r in requests[m1:m2]]
    assert [(r["from_date"], r["to_date"]) for r in quarterly] == [
        ("2022-11-01", "2023-01-31"), ("2023-02-01", "2023-04-30"), ("2023-05-01", "2023-06-30")]
    assert_same(hourly, between(pandas_resample(LONG, 60), "2022-11-01", "2023-06-30"))
    decades = [(r["from_date"], r["to_date"]) for _, r in requests[m2:]]
    assert decades == [("2005-01-01", "2014-12-31"), ("2015-01-01", "2024-12-31")]
    assert_same(daily, between(pandas_resample(DAILY, None), "2005-01-01", "2024-12-31"))


def test_the_sandbox_refuses_spans_longer_than_upstox_allows():
    async def main():
        async with sandbox() as (_, port), aiohttp.ClientSession() as session:
            rest = UpstoxRest(session, settings(port), **fast())
            ok = await rest.get("/v3/historical-candle/NSE_EQ%7C600/minutes/1/2023-02-01/2023-01-01")
            with pytest.raises(BrokerError, match="UDAPI1148: Invalid date range"):
                await rest.get("/v3/historical-candle/NSE_EQ%7C600/minutes/1/2023-02-02/2023-01-01")
            return ok, rest.calls

    ok, calls = run(main())
    assert len(ok["candles"]) > 0 and calls == 2


def test_candles_are_sorted_ascending_with_oi_for_derivatives():
    async def main():
        async with sandbox() as (_, port), aiohttp.ClientSession() as session:
            return await historical(session, settings(port), "NSE_FO:43919", datetime(2024, 6, 10, 9, 16),
                                    datetime(2024, 6, 12, 9, 17), "1m", today=date(2024, 7, 1), **fast())

    bars = run(main())
    keep = (FUTURE.ts >= pd.Timestamp("2024-06-10 09:16", tz=IST).value) & (
        FUTURE.ts <= pd.Timestamp("2024-06-12 09:17", tz=IST).value)
    np.testing.assert_array_equal(bars.ts, FUTURE.ts[keep])
    np.testing.assert_array_equal(bars.close, FUTURE.close[keep])
    np.testing.assert_array_equal(bars.oi, FUTURE.oi[keep])


def test_overlapping_answers_keep_one_bar_per_start_the_later_one():
    @web.middleware
    async def repeat_yesterday(request, handler):
        """The intraday answer also carries yesterday's last candle, revised (close 1.0)."""
        response = await handler(request)
        if "/intraday/" not in request.path:
            return response
        body = json.loads(response.body)
        body["data"]["candles"].append(["2024-06-13T15:29:00+05:30", 1.0, 1.0, 1.0, 1.0, 5, 0])
        return web.json_response(body)

    async def main():
        async with sandbox([repeat_yesterday]) as (_, port), aiohttp.ClientSession() as session:
            return await historical(session, settings(port), "NSE_EQ:2885", date(2024, 6, 13), LAST_DAY, "1m",
                                    today=LAST_DAY, **fast())

    bars = run(main())
    assert len(bars) == 2 * 375 and bool((np.diff(bars.ts) > 0).all())
    i = int(np.searchsorted(bars.ts, pd.Timestamp("2024-06-13 15:29", tz=IST).value))
    assert (bars.close[i], bars.volume[i]) == (1.0, 5.0)  # the intraday answer came later and wins
    assert bars.close[i - 1] == MINUTE.close[np.searchsorted(MINUTE.ts, bars.ts[i - 1])]


def _failing(plan: list):
    """Middleware: answer the first calls from ``plan`` (status or "slow"), then pass."""
    calls = []

    @web.middleware
    async def middleware(request, handler):
        calls.append(request.path)
        if len(calls) <= len(plan):
            step = plan[len(calls) - 1]
            if step == "slow":
                await asyncio.sleep(1.0)
            else:
                code = "UDAPI10005" if step == 429 else "UDAPI100500"
                return web.json_response({"status": "error", "errors": [{"errorCode": code, "message": "x"}]},
                                         status=step)
        return await handler(request)

    return middleware, calls


def test_transient_failures_are_retried_and_bounded():
    middleware, calls = _failing([503, 429, "slow"])

    async def main(retries):
        async with sandbox([middleware]) as (_, port), aiohttp.ClientSession() as session:
            return await historical(session, settings(port), "NSE_EQ:2885", date(2024, 6, 10), date(2024, 6, 10),
                                    "5m", today=LAST_DAY, **fast(retries=retries, timeout=0.3))

    bars = run(main(3))
    assert len(calls) == 4
    assert_same(bars, between(pandas_resample(MINUTE, 5), "2024-06-10", "2024-06-10"))
    calls.clear()
    with pytest.raises(BrokerError, match=r"failed 2 times; last: HTTP 429, UDAPI10005"):
        run(main(1))
    assert len(calls) == 2


def test_a_refused_token_is_fatal_and_never_logged(caplog):
    async def main():
        async with sandbox() as (state, port), aiohttp.ClientSession() as session:
            try:
                await historical(session, settings(port, "tok-stale-e07b"), "NSE_EQ:2885", date(2024, 6, 10),
                                 date(2024, 6, 11), "1m", today=LAST_DAY, **fast())
            finally:
                calls = len(state.requests)
            return calls

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(FeedAuthError) as info:
            run(main())
    message = str(info.value)
    assert "HTTP 401" in message and "UDAPI100050" in message and "UPSTOX_ACCESS_TOKEN" in message
    assert "tok-stale-e07b" not in message + caplog.text


def test_rejections_name_the_udapi_code():
    async def main(instrument, keys=None):
        async with sandbox() as (_, port), aiohttp.ClientSession() as session:
            await historical(session, settings(port), instrument, date(2024, 6, 10), date(2024, 6, 11), "1m",
                             today=LAST_DAY, instrument_keys=keys, **fast())

    with pytest.raises(BrokerError, match="HTTP 400, UDAPI100011: Invalid Instrument key"):
        run(main("NSE_EQ:999999"))
    with pytest.raises(BrokerError, match="UDAPI100011"):
        run(main("NSE_EQ:2885", {"NSE_EQ:2885": "NSE_EQ|INE000X01010"}))


def test_the_feed_uses_its_instrument_keys():
    isin = "NSE_EQ|INE000X01010"

    async def main():
        async with sandbox(instrument_keys={"NSE_EQ:2885": isin}) as (state, port):
            feed = UpstoxDataFeed(UpstoxFeedConfig(instrument_keys={"NSE_EQ:2885": isin}),
                                  settings_factory=lambda: settings(port))
            bars = await feed.get_historical("NSE_EQ:2885", date(2024, 6, 11), date(2024, 6, 12), "15m")
            return state.requests, bars

    requests, bars = run(main())
    assert {r["key"] for _, r in requests} == {isin}
    assert_same(bars, between(pandas_resample(MINUTE, 15), "2024-06-11", "2024-06-12"))


def test_the_official_sdk_reads_the_same_candles():
    async def main():
        async with sandbox() as (_, port), aiohttp.ClientSession() as session:
            configuration = upstox_client.Configuration()
            configuration.host = f"http://127.0.0.1:{port}"
            api = upstox_client.HistoryV3Api(upstox_client.ApiClient(configuration))
            past = await asyncio.to_thread(api.get_historical_candle_data1, "NSE_EQ|2885", "minutes", 5,
                                           "2024-06-12", "2024-06-10")
            daily = await asyncio.to_thread(api.get_historical_candle_data1, "NSE_EQ|1333", "days", 1,
                                            "2021-03-31", "2021-01-01")
            today = await asyncio.to_thread(api.get_intra_day_candle_data, "NSE_EQ|2885", "minutes", 25)
            client = upstox_client.ApiClient(configuration)
            client.set_default_header("Authorization", "Bearer tok-not-issued")
            with pytest.raises(ApiException) as refused:
                await asyncio.to_thread(upstox_client.HistoryV3Api(client).get_historical_candle_data1,
                                        "NSE_EQ|2885", "minutes", 5, "2024-06-12", "2024-06-10")
            cfg = settings(port)
            ours = [await historical(session, cfg, "NSE_EQ:2885", date(2024, 6, 10), date(2024, 6, 12), "5m",
                                     today=LAST_DAY, **fast()),
                    await historical(session, cfg, "NSE_EQ:1333", date(2021, 1, 1), date(2021, 3, 31), "1d",
                                     today=LAST_DAY, **fast()),
                    await historical(session, cfg, "NSE_EQ:2885", LAST_DAY, LAST_DAY, "25m", today=LAST_DAY,
                                     **fast())]
            return [past, daily, today], ours, refused.value

    theirs, ours, refused = run(main())
    for response, bars in zip(theirs, ours):
        assert response.status == "success"
        candles = response.data.candles
        assert len(candles) == len(bars) > 0
        stamps = [datetime.fromisoformat(c[0]) for c in candles]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert all(c[0].endswith("+05:30") and len(c) == 7 for c in candles)
        rows = candles[::-1]
        assert [int(datetime.fromisoformat(c[0]).timestamp()) * 10**9 for c in rows] == bars.ts.tolist()
        assert [c[4] for c in rows] == bars.close.tolist()
        assert [c[5] for c in rows] == bars.volume.tolist()
    assert refused.status == 401 and "UDAPI100050" in refused.body.decode()


def test_bad_arguments_are_refused_before_settings_are_read():
    feed = UpstoxDataFeed(settings_factory=lambda: pytest.fail("no settings needed"))
    for args, words in ((("NSE_EQ:1", None, None, "1m"), "not a date"),
                        (("RELIANCE", date(2024, 1, 1), date(2024, 1, 2), "1m"), "SEGMENT:ID"),
                        (("NSE_EQ:1", date(2024, 1, 1), date(2024, 1, 2), "2m"), "interval"),
                        (("NSE_EQ:1", date(2024, 1, 2), date(2024, 1, 1), "1d"), "before it starts")):
        with pytest.raises(ConfigError, match=words):
            run(feed.get_historical(*args))
