"""The official Upstox SDK's OptionsApi against the sandbox's chain: typed models, the same numbers as our parser."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import date, datetime

import aiohttp
import upstox_client

from algocli.adapters.upstox.options import parse_chain
from algocli.options.pcr import pcr
from options.options_support import option_routes


def test_sdk_reads_the_sandbox_chain_as_our_parser_does():
    async def main():
        async with option_routes(datetime(2024, 6, 21, 14, 0)) as (base, box):
            cfg = upstox_client.Configuration()  # not sandbox=True: that mode refuses non-order paths
            cfg.host, cfg.access_token = base, "sdk"
            api = upstox_client.OptionsApi(upstox_client.ApiClient(cfg))
            sdk = await asyncio.to_thread(api.get_put_call_option_chain, "NSE_INDEX|Nifty 50", "2024-06-27")
            contracts = await asyncio.to_thread(api.get_option_contracts, "NSE_INDEX|Nifty 50")
            async with aiohttp.ClientSession() as s:
                raw = await (await s.get(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNifty%2050"
                                         "&expiry_date=2024-06-27", headers={"Authorization": "Bearer t"})).json()
        return sdk, contracts, raw, box.requests

    sdk, contracts, raw, requests = asyncio.run(main())
    assert requests[0][1]["instrument_key"] == "NSE_INDEX|Nifty 50"  # the SDK's "+" decoded to a space
    assert sdk.status == "success" and isinstance(sdk.data[0].expiry, dt.datetime)
    ours = parse_chain(raw["data"], "NSE:NIFTY 50", date(2024, 6, 27))
    sdk_put = sum(r.put_options.market_data.oi for r in sdk.data if r.put_options)
    sdk_call = sum(r.call_options.market_data.oi for r in sdk.data if r.call_options)
    assert pcr(ours.rows).oi_pcr == sdk_put / sdk_call
    assert [r.strike_price for r in sdk.data] == ours.strikes
    assert {str(c.expiry)[:10] for c in contracts.data} == {"2024-06-27"}
    assert len(contracts.data) == 74 and contracts.data[0].lot_size == 25
