"""The sandbox's option routes: chains follow the replay clock; auth, limits and errors in each broker's shape."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pandas as pd

from options.options_support import OPTIONS_DATA, option_routes

NOW = datetime(2024, 6, 20, 10, 5)  # the 09:45 bar (last tick 09:59:59) is replayed, the 10:00 one is not
STRIKE, TOKEN = 23500.0, 71029  # CE of 23500: 71001 + 2 * 14


def _expected() -> dict:
    """The 23500 CE at NOW, read straight from its CSV file."""
    bars = pd.read_csv(OPTIONS_DATA / f"NSE_FNO_{TOKEN}.csv", parse_dates=["timestamp"])
    seen = bars[bars.timestamp <= "2024-06-20 09:45"]
    today = seen[seen.timestamp >= "2024-06-20"]
    before = seen[seen.timestamp < "2024-06-20"]
    index = pd.read_csv(OPTIONS_DATA / "IDX_I_13.csv", parse_dates=["timestamp"])
    return {"ltp": seen.close.iloc[-1], "oi": seen.oi.iloc[-1], "volume": today.volume.sum(),
            "prev_oi": before.oi.iloc[-1], "prev_close": before.close.iloc[-1],
            "spot": index[index.timestamp <= "2024-06-20 09:45"].close.iloc[-1]}


def test_both_chains_hold_what_the_replay_clock_has_revealed():
    async def main():
        async with option_routes(NOW) as (base, _box):
            async with aiohttp.ClientSession() as s:
                up = await (await s.get(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNifty+50"
                                        "&expiry_date=2024-06-27", headers={"Authorization": "Bearer t"})).json()
                dh = await (await s.post(f"{base}/v2/optionchain", json={
                    "UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I", "Expiry": "2024-06-27", "dhanClientId": "1"},
                    headers={"access-token": "t", "client-id": "1"})).json()
        return up, dh

    up, dh = asyncio.run(main())
    want = _expected()
    row = next(r for r in up["data"] if r["strike_price"] == STRIKE)
    md = row["call_options"]["market_data"]
    assert (md["ltp"], md["oi"], md["volume"], md["prev_oi"], md["close_price"]) == \
        (want["ltp"], want["oi"], want["volume"], want["prev_oi"], want["prev_close"])
    assert row["underlying_spot_price"] == want["spot"] and row["call_options"]["instrument_key"] == f"NSE_FO|{TOKEN}"
    assert row["pcr"] == round(row["put_options"]["market_data"]["oi"] / md["oi"], 4)
    assert [r["strike_price"] for r in up["data"]] == sorted(r["strike_price"] for r in up["data"])
    assert 5 < row["call_options"]["option_greeks"]["iv"] < 40  # percent
    leg = dh["data"]["oc"][f"{STRIKE:.6f}"]["ce"]
    assert (leg["last_price"], leg["oi"], leg["previous_oi"], leg["security_id"]) == \
        (want["ltp"], want["oi"], want["prev_oi"], TOKEN)
    assert dh["data"]["last_price"] == want["spot"]


def test_dhan_limits_auth_and_unknown_expiry():
    async def main():
        async with option_routes(NOW, tokens=frozenset({"good"})) as (base, _box):
            async with aiohttp.ClientSession() as s:
                async def post(path, body, token="good", client="1"):
                    headers = {"access-token": token} | ({"client-id": client} if client else {})
                    r = await s.post(f"{base}{path}", json=body, headers=headers)
                    return r.status, await r.json()

                body = {"UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I"}
                first = await post("/v2/optionchain/expirylist", body)
                second = await post("/v2/optionchain", body | {"Expiry": "2024-06-27"})
                other = await post("/v2/optionchain", body | {"Expiry": "2024-07-04"}, client="2")
                return first, second, other, await post("/v2/optionchain/expirylist", body, token="bad", client="3"), \
                    await post("/v2/optionchain/expirylist", body, client="")

    first, second, other, bad, no_client = asyncio.run(main())
    assert first == (200, {"data": ["2024-06-27"], "status": "success"})
    assert second[0] == 429 and second[1]["errorCode"] == "DH-904"  # the expiry list counts too
    assert other[0] == 400 and other[1]["errorCode"] == "DH-907"
    assert bad[0] == 401 and bad[1]["errorCode"] == "DH-901"
    assert no_client[0] == 400 and no_client[1]["errorCode"] == "DH-905"


def test_upstox_contracts_are_the_live_ones_and_errors_use_its_envelope():
    async def main():
        async with option_routes(datetime(2024, 6, 28, 10, 0)) as (base, _box):
            async with aiohttp.ClientSession() as s:
                h = {"Authorization": "Bearer t"}
                after = await (await s.get(f"{base}/v2/option/contract?instrument_key=NSE_INDEX%7CNifty%2050",
                                           headers=h)).json()
                gone = await s.get(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNifty%2050"
                                   "&expiry_date=2024-06-27", headers=h)
                unknown = await s.get(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNope&expiry_date=2024-06-27",
                                      headers=h)
                return after, gone.status, await gone.json(), unknown.status

    after, status, body, unknown = asyncio.run(main())
    assert after == {"status": "success", "data": []}  # the day after expiry: nothing live
    assert status == 400 and body["status"] == "error" and body["errors"][0]["errorCode"] == "UDAPI1088"
    assert unknown == 400
