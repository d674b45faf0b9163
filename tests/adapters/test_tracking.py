"""``algocli.adapters.tracking``: the order-tracking rules are the same for Dhan and Upstox.

Before the shared base, only Upstox refused overfills and only Upstox gave up on an
unresolved client id (after 120 s; Dhan never did). These tests hold both brokers to one rule.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from adapters.dhan.dhan_support import wait_until
from adapters.dhan.test_execution_support import OrderSandbox, new_account
from adapters.dhan.test_execution_support import request as dhan_request
from adapters.upstox.test_execution import connected, new_token, sandbox
from adapters.upstox.test_execution import request as upstox_request
from algocli.adapters import tracking
from algocli.adapters.dhan.execution import DhanBroker
from algocli.adapters.upstox.execution import UpstoxBroker
from algocli.broker.protocol import AmbiguousOutcome, BrokerOrder, BrokerTrade
from algocli.domain.models import OrderSide, OrderType


@pytest.mark.parametrize("broker_class", [DhanBroker, UpstoxBroker])
def test_an_overfill_is_refused_and_a_repeated_trade_is_dropped(broker_class):
    async def main():
        broker = broker_class()
        fills: list[BrokerTrade] = []
        broker.on_fill(fills.append)
        order = BrokerOrder("42", "c-1", "NSE_EQ:1333", OrderSide.BUY, 10, OrderType.MARKET, None, "FILLED", 10, 100.0)
        broker._adopt(order)
        tracked = broker._known("42")
        tracked.booked = 0  # nothing booked yet: the trades below are what the trade book lists
        for trade_id, qty, price in (("t1", 6, 100.0), ("t1", 6, 100.0), ("t1", 5, 100.0), ("t2", 4, 100.0),
                                     ("t3", 1, 100.0)):
            broker._book(BrokerTrade(trade_id, "42", "NSE_EQ:1333", OrderSide.BUY, qty, price, 0), tracked, "poll")
        assert [(f.trade_id, f.quantity) for f in fills] == [("t1", 6), ("t2", 4)]  # t3 would book 11 of 10
        assert (broker.stats.duplicate_fills, broker.stats.conflicting_fills) == (1, 2)

    asyncio.run(main())


def _gave_up(broker) -> bool:
    return broker.stats.given_up == 1 and not broker.needs_poll()


def test_dhan_gives_up_an_unresolved_client_id_after_the_shared_number_of_polls(monkeypatch):
    monkeypatch.setattr(tracking, "GIVE_UP_POLLS", 3)

    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, poll_interval=0.05, stream=False)
            await broker.connect()
            try:
                box.state.faults.http_429 = 1
                with pytest.raises(AmbiguousOutcome):
                    await broker.place_order(dhan_request("gone-1", quantity=1))
                assert broker.needs_poll()
                await wait_until(lambda: _gave_up(broker), what="the client id given up")
                assert broker.stats.polls >= 4
            finally:
                await broker.disconnect()

    asyncio.run(asyncio.wait_for(main(), 15))


def test_upstox_gives_up_an_unresolved_client_id_after_the_shared_number_of_polls(monkeypatch):
    monkeypatch.setattr(tracking, "GIVE_UP_POLLS", 3)
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=0.05, stream=False) as (broker, _):
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{box.url}/sandbox/faults/upstox", json={"http_429": 1}) as resp:
                    assert resp.status == 200
            with pytest.raises(AmbiguousOutcome):
                await broker.place_order(upstox_request("r1-s1-000900", qty=1))
            assert broker.needs_poll()
            await wait_until(lambda: _gave_up(broker), what="the client id given up")
            assert broker.stats.polls >= 4

    asyncio.run(asyncio.wait_for(main(), 15))
