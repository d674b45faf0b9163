"""The fault matrix (anchors B4, B5, B9, B10) for UpstoxBroker against the sandbox on 127.0.0.1.

Every test checks the invariants that matter after a fault: at most one exchange order per
client id, each exchange trade delivered to ``on_fill`` exactly once, and the broker's
positions equal to the exchange's.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest
from adapters.upstox.test_execution import Sandbox, connected, new_token, request, run, sandbox
from adapters.upstox.upstox_support import until

from algocli.broker.protocol import AmbiguousOutcome


async def set_faults(box: Sandbox, **switches) -> dict:
    """Switch faults through the sandbox's JSON endpoint, as an operator would."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{box.url}/sandbox/faults/upstox", json=switches) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["data"]


def orders_for(box: Sandbox, token: str, cid: str) -> list:
    return [o for o in box.exchange.account(token).orders.values() if o.client_id == cid]


async def assert_books_agree(box: Sandbox, token: str, broker, rec) -> None:
    """Each exchange trade reached on_fill once; positions equal the exchange's."""
    acct = box.exchange.account(token)
    await until(lambda: len(rec.fills) >= len(acct.trades), what="every fill")
    await asyncio.sleep(0.3)  # room for a late duplicate to (wrongly) show up
    assert sorted(f.trade_id for f in rec.fills) == sorted(t.trade_id for t in acct.trades)
    assert len({f.trade_id for f in rec.fills}) == len(rec.fills)
    mine = {p.instrument: (p.quantity, p.average_price) for p in await broker.get_positions()}
    theirs = {i: (int(q), pytest.approx(a)) for i, (q, a, _) in acct.positions.items()}
    assert mine == theirs


def test_accepted_then_timeout_is_ambiguous_and_converges_without_a_second_order(caplog):
    token = new_token()
    caplog.set_level(logging.DEBUG)

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=0.2, timeout=0.5) as (broker, rec):
            box.tick(100.0)
            await set_faults(box, timeout_after_accept=1, hang_s=2.0)
            started = time.monotonic()
            with pytest.raises(AmbiguousOutcome, match="never resent"):
                await broker.place_order(request("r1-s1-000101"))
            assert time.monotonic() - started < 1.5
            assert len(orders_for(box, token, "r1-s1-000101")) == 1  # the sandbox accepted it
            # the poll adopts it by tag; the fill arrives once
            await until(lambda: broker.stats.polls >= 1, what="a poll")
            box.tick(100.25)
            await until(lambda: rec.fills, what="the fill")
            found = await broker.find_order("r1-s1-000101")
            assert found.status == "FILLED" and found.client_id == "r1-s1-000101"
            again = await broker.place_order(request("r1-s1-000101"))  # the engine tries again: no new order
            assert again.broker_order_id == found.broker_order_id
            assert len(orders_for(box, token, "r1-s1-000101")) == 1
            await assert_books_agree(box, token, broker, rec)
        assert token not in caplog.text

    run(main)


def test_500_after_accept_is_found_by_tag():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            box.tick(100.0)
            await set_faults(box, error_500_after_accept=1)
            with pytest.raises(AmbiguousOutcome, match="HTTP 500"):
                await broker.place_order(request("r1-s1-000102", qty=3))
            found = await broker.find_order("r1-s1-000102")
            assert found is not None and found.status in ("PENDING", "OPEN") and found.quantity == 3
            box.tick(99.0)
            await until(lambda: rec.fills, what="the fill")
            assert len(orders_for(box, token, "r1-s1-000102")) == 1
            await assert_books_agree(box, token, broker, rec)

    run(main)


def test_429_places_nothing_and_an_explicit_replace_makes_exactly_one_order():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=0.2) as (broker, rec):
            box.tick(100.0)
            await set_faults(box, http_429=1)
            with pytest.raises(AmbiguousOutcome, match="429"):
                await broker.place_order(request("r1-s1-000103"))
            assert orders_for(box, token, "r1-s1-000103") == []
            await asyncio.sleep(0.3)  # the poll looks for it, and resubmits nothing
            assert broker.stats.polls >= 1 and orders_for(box, token, "r1-s1-000103") == []
            assert await broker.find_order("r1-s1-000103") is None
            placed = await broker.place_order(request("r1-s1-000103"))  # explicit re-place, same tag
            assert placed.status == "PENDING"
            assert len(orders_for(box, token, "r1-s1-000103")) == 1
            box.tick(101.0)
            await until(lambda: rec.fills, what="the fill")
            await assert_books_agree(box, token, broker, rec)
            assert len(orders_for(box, token, "r1-s1-000103")) == 1

    run(main)


def test_duplicate_fills_are_delivered_once():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=0.2) as (broker, rec):
            state = await set_faults(box, duplicate_fills=True)
            assert state["duplicate_fills"] is True and box.exchange.faults.duplicate_fills
            box.tick(100.0)
            for n in range(3):
                await broker.place_order(request(f"r1-s1-00020{n}", qty=2 + n))
            box.tick(100.5)
            box.tick(100.75)
            await assert_books_agree(box, token, broker, rec)
            assert len(rec.fills) == 3 and broker.stats.duplicate_fills >= 3  # every trade was listed twice
            assert broker.stats.conflicting_fills == 0
            assert box.orders.messages_sent > 3 * 3  # repeated "complete" updates went out too

    run(main)


def test_early_fills_overtake_the_acknowledgement_and_are_delivered_once_after_it():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            await set_faults(box, early_fills=True, duplicate_fills=True)
            box.tick(100.0)
            task = asyncio.create_task(broker.place_order(request("r1-s1-000104")))
            await until(lambda: orders_for(box, token, "r1-s1-000104"), what="the order at the exchange")
            box.tick(100.5)
            await until(lambda: broker.stats.held >= 1 or task.done(), what="the early fill, held")
            # one rule for every broker (adapters.tracking): what arrives while place_order is in
            # flight waits until the caller has the acknowledgement
            assert not task.done() and rec.fills == [] and rec.updates == []
            placed = await task
            assert placed.status in ("PARTIALLY_FILLED", "FILLED")  # what the stream already said
            await until(lambda: rec.fills, what="the released fill")
            assert placed.broker_order_id == rec.fills[0].broker_order_id
            await until(lambda: rec.statuses(placed.broker_order_id)[-1:] == ["FILLED"], what="FILLED")
            await assert_books_agree(box, token, broker, rec)

    run(main)


def test_dropped_stream_still_yields_the_fill_through_the_poll():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=0.2) as (broker, rec):
            box.tick(100.0)
            await set_faults(box, drop_order_stream=True)
            placed = await broker.place_order(request("r1-s1-000105"))
            box.tick(100.5)
            await until(lambda: rec.fills, what="the fill by poll")
            assert box.orders.stream_drops >= 1 and broker.stats.polls >= 1
            assert rec.statuses(placed.broker_order_id)[-1] == "FILLED"
            await until(lambda: broker.stream.status.reconnects >= 1, what="a reconnect")
            # the stream comes back (a fresh code each time) and carries the next order
            await set_faults(box, drop_order_stream=False)
            await until(lambda: broker.stream.connected, what="the stream again")
            assert len(box.orders.used_codes) == broker.stream.status.connects >= 2
            assert len(set(box.orders.used_codes)) == len(box.orders.used_codes)
            heard = broker.stream.status.messages
            await broker.place_order(request("r1-s1-000106", side="SELL", qty=4))
            box.tick(101.0)
            await until(lambda: len(rec.fills) == 2, what="the second fill")
            assert broker.stream.status.messages > heard  # updates flow on the stream again
            await assert_books_agree(box, token, broker, rec)

    run(main)


def test_rate_limiter_keeps_order_requests_inside_the_published_window():
    token = new_token()

    async def main():
        async with sandbox() as box, connected(box, token, poll_interval=30.0) as (broker, rec):
            box.tick(100.0)
            started = time.monotonic()
            placed = await asyncio.gather(*(broker.place_order(request(f"r1-s1-{300 + n:06d}", qty=1))
                                            for n in range(30)))
            elapsed = time.monotonic() - started
            assert all(p.status == "PENDING" for p in placed)
            assert len(box.exchange.account(token).orders) == 30
            assert box.orders.rate_limited == 0  # the sandbox never had to answer 429
            arrivals = box.orders.order_calls[token]
            busiest = max(sum(1 for t in arrivals if a <= t < a + 1.0) for a in arrivals)
            assert busiest <= 10
            assert elapsed >= 2.0  # 30 requests at under 10 a second had to wait

    run(main)
