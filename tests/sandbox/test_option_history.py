"""The sandbox's historical option routes, called through the official SDKs and at a replay clock.

Expected values are read from the bundled ``data/options`` files with pandas.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pandas as pd

from cli.download_options_support import OPTIONS_DATA, OptionsServer
from options.options_support import option_routes


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(OPTIONS_DATA / name, dtype={"timestamp": str})


def test_dhan_sdk_gets_the_atm_call_of_each_candle():
    from dhanhq import DhanContext, dhanhq

    with OptionsServer() as srv:
        ctx = DhanContext("1100001234", srv.env("dhan")["DHAN_ACCESS_TOKEN"])
        ctx.get_dhan_http().base_url = f"http://127.0.0.1:{srv.port}/v2"
        res = dhanhq(ctx).expired_options_data(
            security_id=13, exchange_segment="NSE_FNO", instrument_type="OPTIDX", expiry_flag="MONTH",
            expiry_code=0, strike="ATM+1", drv_option_type="CALL",
            required_data=["open", "close", "oi", "iv", "strike", "spot"], from_date="2024-06-20",
            to_date="2024-06-21", interval=15)
    assert res["status"] == "success", res
    data = res["data"]["data"]
    assert data["pe"] is None and set(data["ce"]) == {"open", "close", "oi", "iv", "strike", "spot", "timestamp"}
    ce = data["ce"]
    under = _csv("IDX_I_13.csv")
    day = under[under.timestamp.str.startswith("2024-06-20")]
    listed = _csv("instruments.csv")
    calls = listed[listed.kind == "CE"].sort_values("strike")
    assert len(ce["timestamp"]) == len(day) == 25
    for k, (ts, close) in enumerate(zip(day.timestamp, day.close)):
        strikes = calls.strike.tolist()
        atm = min(range(len(strikes)), key=lambda i: (abs(strikes[i] - close), strikes[i]))
        bars = _csv(calls.dhan_id.iloc[atm + 1].replace(":", "_") + ".csv").set_index("timestamp")
        assert (ce["strike"][k], ce["spot"][k]) == (strikes[atm + 1], close)
        assert (ce["open"][k], ce["close"][k], ce["oi"][k]) == tuple(bars.loc[ts, ["open", "close", "oi"]])
        assert 5 < ce["iv"][k] < 60  # percent
    assert pd.Timestamp(ce["timestamp"][0], unit="s", tz="Asia/Kolkata").strftime("%H:%M") == "09:15"


def test_upstox_sdk_lists_expired_contracts_and_their_candles():
    import upstox_client

    with OptionsServer() as srv:
        cfg = upstox_client.Configuration()
        cfg.host, cfg.access_token = f"http://127.0.0.1:{srv.port}", srv.env("upstox")["UPSTOX_ACCESS_TOKEN"]
        api = upstox_client.ExpiredInstrumentApi(upstox_client.ApiClient(cfg))
        expiries = api.get_expiries("NSE_INDEX|Nifty 50").data
        contracts = api.get_expired_option_contracts("NSE_INDEX|Nifty 50", "2024-06-27").data
        key = next(c.instrument_key for c in contracts if c.strike_price == 23500 and c.instrument_type == "PE")
        candles = api.get_expired_historical_candle_data(key, "15minute", "2024-06-20", "2024-06-19").data.candles
    assert expiries == ["2024-06-27"] and len(contracts) == 74
    assert key == "NSE_FO|71030|27-06-2024"
    bars = _csv("NSE_FNO_71030.csv")
    bars = bars[(bars.timestamp >= "2024-06-19") & (bars.timestamp < "2024-06-21")].iloc[::-1]  # newest first
    assert [c[1:] for c in candles] == bars[["open", "high", "low", "close", "volume", "oi"]].values.tolist()
    assert candles[0][0] == "2024-06-20T15:15:00+05:30"


def test_expired_routes_and_pcr_follow_the_replay_clock():
    async def main():
        async with option_routes(datetime(2024, 6, 20, 10, 5)) as (base, _box):
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as s:
                key = "instrument_key=NSE_INDEX%7CNifty+50"
                expiries = await (await s.get(f"{base}/v2/expired-instruments/expiries?{key}")).json()
                contracts = await s.get(f"{base}/v2/expired-instruments/option/contract?{key}&expiry_date=2024-06-27")
                pcr = await (await s.get(f"{base}/v2/market/pcr?{key}&expiry=2024-06-27&date=2024-06-20"
                                         "&bucket_interval=15")).json()
                return expiries, contracts.status, pcr

    expiries, status, pcr = asyncio.run(main())
    assert expiries == {"status": "success", "data": []} and status == 400  # 27 June has not expired yet
    assert [i["time"] for i in pcr["data"]["insights"]] == ["09:15", "09:30", "09:45", "10:00"]  # none after 10:05
    listed = _csv("instruments.csv").dropna(subset=["strike"])
    oi = {"CE": 0, "PE": 0}
    for kind, ident in zip(listed.kind, listed.dhan_id):
        bars = _csv(ident.replace(":", "_") + ".csv")
        oi[kind] += bars[bars.timestamp <= "2024-06-20 09:45:00"].oi.iloc[-1]
    assert pcr["data"]["insights"][-1]["pcr"] == oi["PE"] / oi["CE"]  # 10:00 sees the 09:45 bar
