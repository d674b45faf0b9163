"""The sandbox's Upstox expired-option routes count an expiry as expired from its session's close, so
the README's offline example (the bundled sample replayed to its end, 2024-06-27 15:29:59) can
download that expiry. NSE's F&O session closed at 15:30 IST in 2024
(https://www.nseindia.com/market-data/market-timings-holidays).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pytest

from options.options_support import option_routes


@pytest.mark.parametrize(("now", "expired"), [(datetime(2024, 6, 27, 15, 29, 59), True),
                                              (datetime(2024, 6, 27, 15, 15), False),
                                              (datetime(2024, 6, 28, 9, 15), True)])
def test_an_expiry_is_expired_from_its_session_close(now, expired):
    async def main():
        async with option_routes(now) as (base, _box):
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as s:
                key = "instrument_key=NSE_INDEX%7CNifty+50"
                listed = await (await s.get(f"{base}/v2/expired-instruments/expiries?{key}")).json()
                rows = await s.get(f"{base}/v2/expired-instruments/option/contract?{key}&expiry_date=2024-06-27")
                return listed["data"], rows.status

    listed, status = asyncio.run(main())
    assert (listed, status) == ((["2024-06-27"], 200) if expired else ([], 400))
