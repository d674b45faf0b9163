"""Upstox option-chain and contract parsing (Upstox's documented samples), and the fetch against the sandbox."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import aiohttp
import pytest
from pydantic import SecretStr

from algocli.adapters.upstox.http import UpstoxRest
from algocli.adapters.upstox.options import fetch_chain, fetch_expiries, parse_chain, parse_expiries, underlying_key
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.data.feed import FeedAuthError
from algocli.errors import UsageError
from options.options_support import option_routes

# https://upstox.com/developer/api-documentation/get-pc-option-chain (2025 sample)
SAMPLE = [{"expiry": "2025-02-13", "pcr": 7515.3, "strike_price": 21100, "underlying_key": "NSE_INDEX|Nifty 50",
           "underlying_spot_price": 22976.2,
           "call_options": {"instrument_key": "NSE_FO|51059",
                            "market_data": {"ltp": 2449.9, "volume": 0, "oi": 750.0, "close_price": 2449.9,
                                            "bid_price": 1856.65, "bid_qty": 1125, "ask_price": 1941.65,
                                            "ask_qty": 1125, "prev_oi": 1500.0},
                            "option_greeks": {"vega": 4.1731, "theta": -472.8941, "gamma": 0.0001, "delta": 0.743,
                                              "iv": 262.31, "pop": 40.56}},
           "put_options": {"instrument_key": "NSE_FO|51060",
                           "market_data": {"ltp": 0.3, "volume": 22315725, "oi": 5636475.0, "close_price": 0.35,
                                           "bid_price": 0.3, "bid_qty": 1979400, "ask_price": 0.35,
                                           "ask_qty": 2152500, "prev_oi": 5797500.0},
                           "option_greeks": {"vega": 0.0568, "theta": -1.2461, "gamma": 0, "delta": -0.0013,
                                             "iv": 50.78, "pop": 0.15}}},
          {"expiry": "2025-02-13", "strike_price": 30000, "underlying_key": "NSE_INDEX|Nifty 50",
           "underlying_spot_price": 22976.2,
           "call_options": {"instrument_key": "NSE_FO|1", "market_data": {"ltp": 0.05, "oi": 10.0},
                            "option_greeks": {}}},
          {"expiry": "2025-02-13", "pcr": None, "strike_price": 15000, "underlying_spot_price": 22976.2,
           "call_options": {"instrument_key": "NSE_FO|2", "market_data": {"ltp": 7976.0, "oi": 25.0, "prev_oi": 25.0},
                            "option_greeks": {"iv": 0, "delta": 1, "gamma": 0, "theta": 0, "vega": 0}}}]


def test_the_documented_sample_parses_into_the_model():
    chain = parse_chain(SAMPLE, "NSE:NIFTY 50", date(2025, 2, 13))
    assert chain.strikes == [15000.0, 21100.0, 30000.0] and chain.spot == 22976.2
    row = chain.rows[1]
    assert row.ce.name == "NSE:NIFTY 13 FEB 2025 21100 CE" and row.pe.instrument == "NSE_FO|51060"
    assert (row.ce.oi, row.ce.prev_oi, row.pe.oi) == (750, 1500, 5636475)
    assert isinstance(row.pe.oi, int) and row.pe.volume == 22315725
    assert row.ce.iv_pct == 262.31 and row.pe.iv_pct == 50.78  # percent, as sent
    assert row.ce.theta == -472.8941 and row.ce.pop_pct == 40.56 and row.ce.bid == 1856.65
    far = chain.rows[2]
    assert far.pe is None and far.ce.iv_pct is None and far.ce.delta is None  # one leg, empty greeks
    deep = chain.rows[0].ce
    assert deep.delta == 1.0 and deep.iv_pct is None and deep.gamma is None  # iv 0: not computable


def test_the_per_strike_pcr_field_is_not_the_chain_pcr():
    from algocli.options.pcr import pcr

    chain = parse_chain(SAMPLE[:1], "NSE:NIFTY 50", date(2025, 2, 13))
    assert pcr(chain.rows).oi_pcr == pytest.approx(5636475 / 750)  # from the legs; the field is ignored
    two = parse_chain(SAMPLE, "NSE:NIFTY 50", date(2025, 2, 13))
    assert pcr(two.rows).oi_pcr == pytest.approx(5636475 / (750 + 10 + 25)) != SAMPLE[0]["pcr"]


def test_expiries_are_the_distinct_contract_expiries_and_names_map_to_keys():
    rows = [{"expiry": "2024-02-22"}, {"expiry": "2024-02-15"}, {"expiry": "2024-02-15"}, {"no": 1}]
    assert parse_expiries(rows) == [date(2024, 2, 15), date(2024, 2, 22)]
    assert underlying_key("nse:nifty  50") == "NSE_INDEX|Nifty 50"
    with pytest.raises(UsageError, match="NSE:NIFTY 50"):
        underlying_key("NSE:NOPE")


def test_fetch_from_the_sandbox_at_its_clock():
    async def main():
        async with option_routes(datetime(2024, 6, 20, 11, 0), tokens=frozenset({"good"})) as (base, box):
            async with aiohttp.ClientSession() as session:
                settings = UpstoxSettings(access_token=SecretStr("good"), api_base_url=base)
                client = UpstoxRest(session, settings, retries=0)
                expiries = await fetch_expiries(client, "NSE:NIFTY 50")
                chain = await fetch_chain(client, "NSE:NIFTY 50", expiries[0])
                bad = UpstoxRest(session, UpstoxSettings(access_token=SecretStr("bad"), api_base_url=base), retries=0)
                with pytest.raises(FeedAuthError):
                    await fetch_chain(bad, "NSE:NIFTY 50", expiries[0])
        assert expiries == [date(2024, 6, 27)]
        assert len(chain.rows) == 37 and chain.rows[0].ce.instrument == "NSE_FO|71001"
        assert box.requests[1][1]["instrument_key"] == "NSE_INDEX|Nifty 50"

    asyncio.run(main())
