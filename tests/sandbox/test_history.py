"""The sandbox's Dhan and Upstox historical-candle routes, spoken to as raw HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from algocli.data.csv_feed import load_csv
from algocli.data.history import Bars
from algocli.sandbox.app import build_app
from algocli.sandbox.history import HISTORY_KEY, add_routes, replayed_bars
from algocli.sandbox.hub import Faults, TickHub
from algocli.sandbox.replay import Replayer

ROOT = Path(__file__).resolve().parents[2]
IST = timezone(timedelta(hours=5, minutes=30))
MINUTE = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", "NSE_EQ:2885")  # 10-14 June 2024, 1-minute bars
DAILY = load_csv(ROOT / "data" / "NSE_EQ_1333.csv", "NSE_EQ:1333")
BARS = {"NSE_EQ:2885": MINUTE, "NSE_EQ:1333": DAILY}
TOKEN = "tok-sandbox-hist"
DHAN_BODY = {"securityId": "2885", "exchangeSegment": "NSE_EQ", "instrument": "EQUITY", "interval": "15",
             "oi": False, "fromDate": "2024-06-11", "toDate": "2024-06-12"}
CANDLE_KEYS = {"open", "high", "low", "close", "volume", "timestamp"}


def ns(text: str) -> int:
    return pd.Timestamp(text, tz=IST).value


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


class Client:
    """Raw requests to a running app; answers ``(status, json)``."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session, self.base = session, f"http://127.0.0.1:{port}"

    async def dhan(self, body, path: str = "intraday", token: str | None = TOKEN, raw: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["access-token"] = token
        kwargs = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(f"{self.base}/v2/charts/{path}", headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def upstox(self, path: str, token: str | None = None):
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.base}/v3/historical-candle/{path}"
        async with self.session.get(url, headers=headers) as resp:
            return resp.status, await resp.json()


async def serving(app: web.Application, test):
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await test(Client(session, runner.addresses[0][1]))
    finally:
        await runner.cleanup()


def run_with(test, bars=None, timeout: float = 15.0, **options):
    async def main():
        app = web.Application()
        options.setdefault("hub", TickHub(valid_tokens={TOKEN}))
        add_routes(app, BARS if bars is None else bars, **options)
        return await serving(app, test)

    return asyncio.run(asyncio.wait_for(main(), timeout))


def test_dhan_intraday_answers_parallel_arrays_resampled_from_the_bars():
    async def test(c: Client):
        as_text = await c.dhan(DHAN_BODY)
        as_int = await c.dhan({**DHAN_BODY, "interval": 15, "dhanClientId": "1100001234"})  # what the SDK sends
        with_oi = await c.dhan({**DHAN_BODY, "oi": True})
        timed = await c.dhan({**DHAN_BODY, "fromDate": "2024-06-11 10:00:00", "toDate": "2024-06-11 11:00:00"})
        return as_text, as_int, with_oi, timed

    (status, body), as_int, (_, with_oi), (_, timed) = run_with(test)
    assert status == 200 and set(body) == CANDLE_KEYS and as_int == (200, body)
    want = pandas_resample(MINUTE, 15)
    want = want[(want.index >= "2024-06-11") & (want.index < "2024-06-12")]  # date-only toDate is exclusive
    assert len(body["timestamp"]) == 25 and all(isinstance(t, int) for t in body["timestamp"])
    assert [t * 10**9 for t in body["timestamp"]] == want.index.asi8.tolist()
    for name in ("open", "high", "low", "close", "volume"):
        assert body[name] == want[name].tolist(), name
    assert with_oi["open_interest"] == [0] * 25 and with_oi["close"] == body["close"]
    assert [t - body["timestamp"][0] for t in timed["timestamp"]] == [2700 + 900 * k for k in range(5)]  # 10:00-11:00


def test_dhan_daily_stamps_ist_midnight():
    async def test(c: Client):
        return await c.dhan({"securityId": "1333", "exchangeSegment": "NSE_EQ", "instrument": "EQUITY",
                             "expiryCode": 0, "oi": False, "fromDate": "2021-01-01", "toDate": "2021-01-08"},
                            path="historical")

    status, body = run_with(test)
    assert status == 200 and set(body) == CANDLE_KEYS
    assert [datetime.fromtimestamp(t, IST).strftime("%m-%d %H:%M") for t in body["timestamp"]] == [
        "01-01 00:00", "01-04 00:00", "01-05 00:00", "01-06 00:00", "01-07 00:00"]
    want = pandas_resample(DAILY, None)
    want = want[(want.index >= "2021-01-01") & (want.index < "2021-01-08")]
    assert body["close"] == want["close"].tolist() and body["volume"] == want["volume"].tolist()


@pytest.mark.parametrize("change, path, code, words", [
    ({"securityId": None}, "intraday", "DH-905", "securityId"),
    ({"interval": "30"}, "intraday", "DH-905", "interval"),
    ({"exchangeSegment": "NSE"}, "intraday", "DH-905", "exchangeSegment"),
    ({"fromDate": "11/06/2024"}, "intraday", "DH-905", "date format"),
    ({"fromDate": "2024-01-01", "toDate": "2024-04-01"}, "intraday", "DH-905", "90 days"),
    ({"securityId": "999999"}, "intraday", "DH-907", "999999"),
    ({"securityId": "1333"}, "intraday", "DH-907", "daily"),
    ({"toDate": "2024-06-10"}, "intraday", "DH-905", "before"),
    ({"instrument": "STOCK"}, "historical", "DH-905", "instrument"),
])
def test_dhan_bad_requests_get_dhans_error_body(change, path, code, words):
    async def test(c: Client):
        return await c.dhan({k: v for k, v in {**DHAN_BODY, **change}.items() if v is not None}, path=path)

    status, body = run_with(test)
    assert status == 400 and set(body) == {"errorType", "errorCode", "errorMessage"}
    assert body["errorCode"] == code and words in body["errorMessage"]


def test_dhan_auth_follows_the_hub_rule_or_any_token():
    async def test(c: Client):
        return [await c.dhan(DHAN_BODY, token=None), await c.dhan(DHAN_BODY, token="other"),
                await c.dhan(DHAN_BODY, raw="{not json")]

    (s1, b1), (s2, _), (s3, b3) = run_with(test)
    assert (s1, s2) == (401, 401) and b1["errorCode"] == "DH-901" and b1["errorType"] == "Invalid_Authentication"
    assert s3 == 400 and b3["errorCode"] == "DH-905"

    async def anyone(c: Client):
        return [(await c.dhan(DHAN_BODY, token="whatever"))[0], (await c.dhan(DHAN_BODY, token=""))[0]]

    assert run_with(anyone, hub=None) == [200, 401]  # no hub on the app: any non-empty token
    assert run_with(anyone, hub=TickHub(faults=Faults(reject_tokens=True))) == [401, 401]


def test_the_span_limit_counts_calendar_days():
    async def test(c: Client):
        ok = await c.dhan({**DHAN_BODY, "fromDate": "2024-03-17 00:00:00", "toDate": "2024-06-15 00:00:00"})
        over = await c.dhan({**DHAN_BODY, "fromDate": "2024-03-17 00:00:00", "toDate": "2024-06-15 00:00:01"})
        return ok, over

    (s1, b1), (s2, b2) = run_with(test)
    assert s1 == 200 and len(b1["timestamp"]) == 5 * 25 and s2 == 400 and b2["errorCode"] == "DH-905"


def test_upstox_candles_are_newest_first_with_offsets():
    async def test(c: Client):
        return [await c.upstox("NSE_EQ%7C2885/minutes/25/2024-06-11/2024-06-10"),
                await c.upstox("NSE_EQ%7C2885/hours/1/2024-06-11"),  # from_date left out
                await c.upstox("NSE_EQ%7C1333/days/1/2021-01-07/2021-01-01", token=TOKEN),
                await c.upstox("intraday/NSE_EQ%7C2885/minutes/1")]

    (s1, b1), (s2, b2), (s3, b3), (s4, b4) = run_with(test)
    assert (s1, s2, s3, s4) == (200, 200, 200, 200)
    assert b1["status"] == "success" and set(b1) == {"status", "data"}
    candles = b1["data"]["candles"]
    assert candles[0][0] == "2024-06-11T15:05:00+05:30" and candles[-1][0] == "2024-06-10T09:15:00+05:30"
    want = pandas_resample(MINUTE, 25)
    want = want[want.index < "2024-06-12"].iloc[::-1]
    assert [c[1:6] for c in candles] == want[["open", "high", "low", "close", "volume"]].values.tolist()
    assert all(len(c) == 7 and c[6] == 0 for c in candles)
    assert [c[0][11:16] for c in b2["data"]["candles"][:7]] == ["15:15", "14:15", "13:15", "12:15", "11:15",
                                                                 "10:15", "09:15"]
    assert [c[0] for c in b3["data"]["candles"]][::-1] == [f"2021-01-{d:02d}T00:00:00+05:30" for d in (1, 4, 5, 6, 7)]
    assert len(b4["data"]["candles"]) == 375 and b4["data"]["candles"][0][0] == "2024-06-14T15:29:00+05:30"


@pytest.mark.parametrize("path, status, code", [
    ("NSE_EQ%7C2885/minutes/1/2024-06-10/2024-06-11", 400, "UDAPI1148"),  # to_date before from_date
    ("NSE_EQ%7C2885/minutes/1/2024-07-11/2024-06-10", 400, "UDAPI1148"),  # over a month of 1-minute candles
    ("NSE_EQ%7C2885/minutes/7/2024-09-11/2024-06-10", 400, "UDAPI100036"),  # interval the sandbox lacks
    ("NSE_EQ%7C2885/minutes/25/2024-09-11/2024-06-10", 400, "UDAPI1148"),  # over a quarter
    ("NSE_EQ%7C2885/weeks/1/2024-06-11/2024-06-10", 400, "UDAPI100036"),
    ("NSE_EQ%7C2885/minutes/1/2024-6-11/2024-06-10", 400, "UDAPI100036"),
    ("NSE_EQ%7C9/minutes/1/2024-06-11/2024-06-10", 400, "UDAPI100011"),
    ("intraday/NSE_EQ%7C1333/minutes/5", 400, "UDAPI100036"),  # only daily bars stored
])
def test_upstox_bad_requests_get_the_udapi_envelope(path, status, code):
    async def test(c: Client):
        return await c.upstox(path)

    got, body = run_with(test)
    assert got == status and body["status"] == "error"
    (error,) = body["errors"]
    assert error["errorCode"] == error["error_code"] == code
    assert {"message", "propertyPath", "invalidValue", "property_path", "invalid_value"} <= set(error)


def test_upstox_tokens_are_checked_when_sent():
    async def test(c: Client):
        path = "NSE_EQ%7C2885/minutes/5/2024-06-11/2024-06-10"
        return [(await c.upstox(path))[0], (await c.upstox(path, token=TOKEN))[0],
                await c.upstox(path, token="other"), (await c.upstox("intraday/NSE_EQ%7C2885/minutes/5", "x"))[0]]

    anonymous, good, (bad, body), intraday = run_with(test)
    assert (anonymous, good, bad, intraday) == (200, 200, 401, 401)
    assert body["errors"][0]["errorCode"] == "UDAPI100050"


def test_a_clock_hides_bars_not_yet_replayed():
    now = ns("2024-06-12 10:00:30")  # the 10:00 bar's last tick (10:00:59) is still to come

    async def test(c: Client):
        return [await c.upstox("intraday/NSE_EQ%7C2885/minutes/15"),
                await c.upstox("NSE_EQ%7C2885/minutes/1/2024-06-14/2024-06-10"),
                await c.dhan({**DHAN_BODY, "interval": 1, "fromDate": "2024-06-12", "toDate": "2024-06-13"}),
                await c.dhan({"securityId": "1333", "exchangeSegment": "NSE_EQ", "instrument": "EQUITY",
                              "fromDate": "2024-06-01", "toDate": "2024-06-30"}, path="historical")]

    (_, today), (_, past), (_, dhan), (_, daily) = run_with(test, now=lambda: now)
    assert [c[0][11:16] for c in today["data"]["candles"]] == ["09:45", "09:30", "09:15"]
    assert past["data"]["candles"][0][0] == "2024-06-11T15:29:00+05:30"  # today is the intraday route's
    assert len(past["data"]["candles"]) == 2 * 375
    assert len(dhan["timestamp"]) == 45 and dhan["timestamp"][-1] == ns("2024-06-12 09:59") // 10**9
    assert datetime.fromtimestamp(daily["timestamp"][-1], IST).date().isoformat() == "2024-06-11"


def test_upstox_to_date_is_inclusive_but_the_clocks_day_is_only_the_intraday_routes():
    now = ns("2024-06-14 15:29:00")

    async def test(c: Client):
        return [await c.upstox("NSE_EQ%7C2885/minutes/5/2024-06-13/2024-06-13"),
                await c.upstox("NSE_EQ%7C2885/minutes/5/2024-06-14/2024-06-13"),
                await c.upstox("NSE_EQ%7C2885/minutes/5/2024-06-14/2024-06-14"),
                await c.upstox("intraday/NSE_EQ%7C2885/minutes/5")]

    (_, past), (_, named), (_, only), (_, intraday) = run_with(test, now=lambda: now)
    days = [sorted({c[0][:10] for c in body["data"]["candles"]}) for body in (past, named, only, intraday)]
    assert days == [["2024-06-13"], ["2024-06-13"], [], ["2024-06-14"]]
    assert len(past["data"]["candles"]) == 75 and len(intraday["data"]["candles"]) == 75


def test_replayed_bars_rebuild_the_loaded_candles():
    replayer = Replayer({"NSE_EQ:2885": MINUTE, "NSE_EQ:1333": DAILY.slice(0, 40)}, TickHub(), speed=0)
    rebuilt = replayed_bars(replayer)
    for original in (MINUTE, DAILY.slice(0, 40)):
        got = rebuilt[original.instrument]
        for name in ("ts", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(got, name), getattr(original, name), err_msg=name)


def test_build_app_serves_what_the_replay_has_published():
    async def main():
        hub = TickHub(valid_tokens={TOKEN})
        replayer = Replayer({"NSE_EQ:2885": MINUTE.slice(0, 30)}, hub, speed=0)
        app = build_app(hub, replayer=replayer)
        assert app[HISTORY_KEY].hub is hub

        async def test(c: Client):
            body = {**DHAN_BODY, "interval": "5", "fromDate": "2024-06-10", "toDate": "2024-06-11"}
            before = await c.dhan(body)
            await replayer.run()
            after = await c.dhan(body)
            refused = await c.dhan(body, token="other")
            upstox = await c.upstox("intraday/NSE_EQ%7C2885/minutes/5")
            return before, after, refused, upstox

        return await serving(app, test)

    (_, before), (_, after), (refused, _), (_, upstox) = asyncio.run(asyncio.wait_for(main(), 15))
    assert before["timestamp"] == []
    want = pandas_resample(MINUTE.slice(0, 30), 5)
    assert [t * 10**9 for t in after["timestamp"]] == want.index.asi8.tolist()
    assert after["volume"] == want["volume"].tolist() and refused == 401
    assert len(upstox["data"]["candles"]) == 6


def test_build_app_mounts_history_only_with_a_replayer_and_per_protocol():
    replayer = Replayer({"NSE_EQ:2885": MINUTE.slice(0, 5)}, TickHub(), speed=0)

    def paths(app):
        return {r.resource.canonical for r in app.router.routes()}

    assert not any("charts" in p or "historical" in p for p in paths(build_app(TickHub())))
    only_upstox = paths(build_app(TickHub(), dhan=False, replayer=replayer))
    assert "/v3/historical-candle/intraday/{key}/{unit}/{interval}" in only_upstox
    assert "/v2/charts/intraday" not in only_upstox
    both = paths(build_app(TickHub(), replayer=replayer))
    assert {"/v2/charts/historical", "/v2/charts/intraday"} <= both
