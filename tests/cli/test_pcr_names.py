"""``algo pcr`` names the underlying and its contracts by our name whatever spelling it was given:
an alias (``NSE:NIFTY``) or a broker's id (Dhan ``IDX_I:13``, Upstox ``NSE_INDEX|Nifty 50``), as
``download-data`` does. Contract names follow the README's form ``NSE:NIFTY 27 JUN 2024 22800 CE``
(the sample's expiry, 27 June 2024, was that month's last Thursday).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest

from algocli.options.pcr import Bands

from cli.test_pcr import NOW, _env
from options.options_support import option_routes


@pytest.mark.parametrize(("source", "given"), [("dhan", "IDX_I:13"), ("dhan", "NSE:NIFTY"),
                                               ("upstox", "NSE_INDEX|Nifty 50"), ("upstox", "NSE:NIFTY")])
def test_pcr_names_contracts_by_the_canonical_underlying(source, given, monkeypatch, capsys):
    from algocli.cli import pcr

    async def listed(*args):
        return [date(2024, 6, 27)]

    # Dhan allows one chain-route request per 3 s, so its expiry list is given here and only the chain
    # (whose names are checked) goes over the wire: the test stays under a second
    monkeypatch.setattr("algocli.adapters.dhan.options.fetch_expiries", listed)

    async def main():
        async with option_routes(NOW, tokens=frozenset({"good"})) as (base, _box):
            for key, value in (_env(base) | {"DHAN_CLIENT_ID": f"names-{given}"}).items():
                if key.startswith(("DHAN_", "UPSTOX_")):
                    monkeypatch.setenv(key, value)
            await pcr._run(source, given, "current", 10, Bands(), watch=False, interval=5.0, json_out=True)

    asyncio.run(main())
    got = json.loads(capsys.readouterr().out)
    assert got["underlying"] == "NSE:NIFTY 50"
    legs = [(s["strike"], s["ce"]["name"]) for s in got["strikes"] if s.get("ce")]
    assert legs and all(name == f"NSE:NIFTY 27 JUN 2024 {strike:.0f} CE" for strike, name in legs), legs[:2]
