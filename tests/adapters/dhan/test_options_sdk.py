"""The official dhanhq SDK's option_chain and expiry_list against the sandbox: its double-wrapped reply parses."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from dhanhq import DhanContext, dhanhq

from algocli.adapters.dhan.options import parse_chain, parse_expiries
from options.options_support import option_routes


def test_sdk_chain_and_expiries_parse_and_a_second_call_within_3s_is_dh_904():
    async def main():
        async with option_routes(datetime(2024, 6, 21, 14, 0)) as (base, box):
            ctx = DhanContext("1100000001", "tok")
            ctx.get_dhan_http().base_url = base + "/v2"
            sdk = dhanhq(ctx)
            expiries = await asyncio.to_thread(sdk.expiry_list, under_security_id=13, under_exchange_segment="IDX_I")
            throttled = await asyncio.to_thread(sdk.option_chain, under_security_id=13,
                                                under_exchange_segment="IDX_I", expiry="2024-06-27")
            box.min_interval = 0.0  # the limit is shown; let the next call through
            chain = await asyncio.to_thread(sdk.option_chain, under_security_id=13, under_exchange_segment="IDX_I",
                                            expiry="2024-06-27")
        return expiries, throttled, chain, box.requests

    expiries, throttled, chain, requests = asyncio.run(main())
    assert parse_expiries(expiries) == [date(2024, 6, 27)] and expiries["data"]["data"] == ["2024-06-27"]
    assert throttled["status"] == "failure" and throttled["remarks"]["error_code"] == "DH-904"
    assert requests[-1][1]["dhanClientId"] == "1100000001"  # the SDK's extra key is accepted
    oc = chain["data"]["data"]["oc"]  # wrapped twice
    parsed = parse_chain(chain, "NSE:NIFTY 50", date(2024, 6, 27))
    assert parsed.strikes == sorted(float(k) for k in oc)
    assert sum(r.pe.oi for r in parsed.rows if r.pe) == sum(v["pe"]["oi"] for v in oc.values() if v.get("pe"))
