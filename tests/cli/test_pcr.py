"""``algo pcr`` against the sandbox: its PCR equals PCR computed here from the raw chain JSON, on both brokers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime

import aiohttp
import pytest

from options.options_support import option_routes

NOW = datetime(2024, 6, 24, 13, 0)  # a Monday, mid-session: OI built up since Friday on both sides or not
RUN = "import sys; from algocli.cli.main import main; sys.exit(main(sys.argv[1:]))"


async def _algo(env: dict, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", RUN, "pcr", "NSE:NIFTY 50", *args,
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def _env(base: str, token: str = "good") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DHAN_", "UPSTOX_"))}
    return env | {"DHAN_ACCESS_TOKEN": token, "DHAN_CLIENT_ID": "cli", "DHAN_API_BASE_URL": f"{base}/v2",
                  "UPSTOX_ACCESS_TOKEN": token, "UPSTOX_API_BASE_URL": base}


def _legs_upstox(raw: dict):
    for row in raw["data"]:
        yield row["strike_price"], row.get("call_options", {}).get("market_data"), \
            row.get("put_options", {}).get("market_data")


def _legs_dhan(raw: dict):
    for key, legs in raw["data"]["oc"].items():
        yield float(key), legs.get("ce"), legs.get("pe")


def _independent(legs, spot: float, volume: str, prev_oi: str) -> dict:
    rows = sorted(legs, key=lambda r: r[0])
    call_oi = sum(c["oi"] for _, c, _ in rows if c)
    put_oi = sum(p["oi"] for _, _, p in rows if p)
    atm_i = min(range(len(rows)), key=lambda i: (abs(rows[i][0] - spot), rows[i][0]))
    near = rows[max(0, atm_i - 10): atm_i + 11]
    call_chg = sum(c["oi"] - c[prev_oi] for _, c, _ in rows if c)
    put_chg = sum(p["oi"] - p[prev_oi] for _, _, p in rows if p)
    return {"oi_pcr": put_oi / call_oi,
            "vol_pcr": sum(p[volume] for _, _, p in rows if p) / sum(c[volume] for _, c, _ in rows if c),
            "chg_oi_pcr": put_chg / call_chg if put_chg > 0 and call_chg > 0 else None,
            "window_oi_pcr": sum(p["oi"] for _, _, p in near if p) / sum(c["oi"] for _, c, _ in near if c),
            "atm": rows[atm_i][0]}


@pytest.mark.parametrize("source", ["upstox", "dhan"])
def test_pcr_json_equals_pcr_from_the_raw_chain(source):
    async def main():
        async with option_routes(NOW, tokens=frozenset({"good"})) as (base, _box):
            code, out, err = await _algo(_env(base), "--source", source, "--json")
            async with aiohttp.ClientSession() as s:
                if source == "upstox":
                    r = await s.get(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNifty%2050"
                                    "&expiry_date=2024-06-27", headers={"Authorization": "Bearer good"})
                else:  # another client id: the CLI's own has just used its 3-second slot
                    r = await s.post(f"{base}/v2/optionchain", json={"UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I",
                                                                     "Expiry": "2024-06-27"},
                                     headers={"access-token": "good", "client-id": "test"})
                raw = await r.json()
        return code, out, err, raw

    code, out, err, raw = asyncio.run(main())
    assert code == 0, err
    got = json.loads(out)
    if source == "upstox":
        spot = raw["data"][0]["underlying_spot_price"]
        want = _independent(_legs_upstox(raw), spot, "volume", "prev_oi")
    else:
        spot = raw["data"]["last_price"]
        want = _independent(_legs_dhan(raw), spot, "volume", "previous_oi")
    assert (got["underlying"], got["expiry"], got["spot"]) == ("NSE:NIFTY 50", "2024-06-27", spot)
    assert got["atm_strike"] == want["atm"]
    for name in ("oi_pcr", "vol_pcr", "chg_oi_pcr", "window_oi_pcr"):
        assert got["pcr"][name] == pytest.approx(want[name]) if want[name] is not None else got["pcr"][name] is None
    assert len(got["strikes"]) == 37 and got["max_pain"] in [s["strike"] for s in got["strikes"]]


def test_broker_failure_is_one_line_and_a_bad_expiry_is_a_usage_error():
    async def main():
        async with option_routes(NOW, tokens=frozenset({"good"})) as (base, _box):
            refused = await _algo(_env(base, token="expired"), "--source", "upstox")
            no_next = await _algo(_env(base), "--source", "upstox", "--expiry", "next")
            table = await _algo(_env(base), "--source", "upstox")
        return refused, no_next, table

    refused, no_next, table = asyncio.run(main())
    assert refused[0] == 1 and len(refused[2].strip().splitlines()) == 1 and "refused the access token" in refused[2]
    assert "expired" not in refused[2]  # the token is never printed
    assert no_next[0] == 2 and "no next expiry" in no_next[2]
    assert table[0] == 0 and "OI PCR" in table[1] and "max pain" in table[1]


def test_bad_flags_are_usage_errors_before_any_token_or_request():
    """No token is set and no server runs: a malformed --expiry or an unknown --source is said first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DHAN_", "UPSTOX_"))}
    bad_expiry = asyncio.run(_algo(env, "--expiry", "nxt"))
    assert bad_expiry[0] == 2 and "--expiry 'nxt' is not current, next or a YYYY-MM-DD date" in bad_expiry[2]
    bad_source = asyncio.run(_algo(env, "--source", "dhn"))
    assert bad_source[0] == 2 and "did you mean `dhan`?" in bad_source[2]
