"""Dhan option-chain and expiry-list parsing (raw and SDK-wrapped), and the fetch against the sandbox."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime

import aiohttp
import pytest
from pydantic import SecretStr

from algocli.adapters.dhan import options as dhan_options
from algocli.adapters.dhan.http import DhanRest
from algocli.adapters.dhan.options import fetch_chain, fetch_expiries, parse_chain, parse_expiries, underlying_ids
from algocli.adapters.dhan.settings import DhanSettings
from algocli.errors import BrokerError
from options.options_support import option_routes

LEG = {"average_price": 146.99, "greeks": {"delta": 0.53871, "theta": -15.1539, "gamma": 0.00132, "vega": 12.18593},
       "implied_volatility": 9.789, "last_price": 134, "oi": 3786445, "previous_close_price": 244.85,
       "previous_oi": 402220, "previous_volume": 31931705, "security_id": 42528, "top_ask_price": 134,
       "top_ask_quantity": 1365, "top_bid_price": 133.55, "top_bid_quantity": 1625, "volume": 117567970}
# https://dhanhq.co/docs/v2/option-chain/ (the sample's first values; keys in no order)
RAW = {"data": {"last_price": 25642.8,
                "oc": {"25700.000000": {"ce": dict(LEG, security_id=42530, oi=100), "pe": {}},
                       "25650.000000": {"ce": LEG, "pe": dict(LEG, security_id=42529, oi=500, previous_oi=600)}}},
       "status": "success"}


def test_the_documented_sample_parses_sorted_with_percent_iv():
    chain = parse_chain(RAW, "NSE:NIFTY 50", date(2025, 10, 28))
    assert chain.strikes == [25650.0, 25700.0] and chain.spot == 25642.8
    ce = chain.rows[0].ce
    assert ce.name == "NSE:NIFTY 28 OCT 2025 25650 CE" and ce.instrument == "42528"
    assert ce.iv_pct == 9.789 and ce.delta == 0.53871 and ce.vega == 12.18593  # percent, not x100
    assert (ce.oi, ce.prev_oi, ce.volume, ce.prev_volume, ce.avg_price) == (3786445, 402220, 117567970, 31931705,
                                                                           146.99)
    assert (ce.bid, ce.bid_qty, ce.ask, ce.ask_qty) == (133.55, 1625, 134.0, 1365)
    assert chain.rows[1].pe is None  # {} is no leg
    assert chain.rows[0].pe.change_in_oi == -100


def test_the_sdk_double_wrapped_reply_parses_the_same():
    wrapped = {"status": "success", "remarks": "", "data": RAW}
    assert parse_chain(wrapped, "NSE:NIFTY 50", date(2025, 10, 28)).rows == \
        parse_chain(RAW, "NSE:NIFTY 50", date(2025, 10, 28)).rows
    expiries = {"data": ["2024-10-24", "2024-10-17"], "status": "success"}
    assert parse_expiries(expiries) == parse_expiries({"status": "success", "remarks": "", "data": expiries}) == \
        [date(2024, 10, 17), date(2024, 10, 24)]
    with pytest.raises(BrokerError, match="oc"):
        parse_chain({"status": "failure", "remarks": {"error_code": "DH-904"}, "data": ""}, "NSE:NIFTY 50",
                    date(2025, 10, 28))
    assert underlying_ids("NSE:NIFTY BANK") == (25, "IDX_I") and underlying_ids("NSE_EQ:2885") == (2885, "NSE_EQ")


def test_fetches_share_one_request_per_three_seconds(monkeypatch):
    monkeypatch.setattr(dhan_options, "_LIMITERS", {})

    async def main():
        async with option_routes(datetime(2024, 6, 20, 11, 0)) as (base, box):
            async with aiohttp.ClientSession() as session:
                settings = DhanSettings(client_id="1100", access_token=SecretStr("t"), api_base_url=base + "/v2")
                client = DhanRest(session, settings, retries=0)
                start = time.monotonic()
                expiries = await fetch_expiries(client, "NSE:NIFTY 50", "1100")
                chain = await fetch_chain(client, "NSE:NIFTY 50", expiries[0], "1100")
                took = time.monotonic() - start
        assert expiries == [date(2024, 6, 27)] and len(chain.rows) == 37
        assert took >= 3.0  # the limiter waited: the sandbox would have answered DH-904 otherwise
        assert box.requests[1][1] == {"UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I", "Expiry": "2024-06-27"}

    asyncio.run(main())
