"""The fault matrix (anchors B4, B10) for DhanBroker against the sandbox on 127.0.0.1.

After each case: at most one exchange order per client id, every exchange trade delivered to
``on_fill`` exactly once, and the broker's positions equal the exchange's.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import pytest

from adapters.dhan.dhan_support import run, wait_until
from adapters.dhan.test_execution_support import (
    HDFC, RELIANCE, OrderSandbox, Recorder, assert_books_agree, new_account, request,
)
from algocli.broker.protocol import AmbiguousOutcome
from algocli.adapters.dhan.spec import LIMITS as DHAN_LIMITS
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderType


class _Longest(random.Random):
    """Jitter that always picks the longest delay (a reconnection that will not come in time)."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _posts(box: OrderSandbox) -> int:
    return box.state.requests.count(("POST", "/v2/orders"))


@pytest.mark.parametrize("fault", ["timeout_after_accept", "error_500_after_accept"])
def test_accepted_then_no_answer_is_ambiguous_and_resolves_to_the_one_order(fault):
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, timeout=0.5)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.publish(RELIANCE, 2500.0)
                setattr(box.state.faults, fault, 1)
                started = time.monotonic()
                with pytest.raises(AmbiguousOutcome, match="find_order"):
                    await broker.place_order(request("amb-1", quantity=4))
                assert time.monotonic() - started < 2.0
                assert _posts(box) == 1  # sent once, never again
                (sim,) = box.orders_of(account, "amb-1")  # the exchange did take it
                found = await broker.find_order("amb-1")
                assert found is not None and found.broker_order_id == sim.order_id
                box.publish(RELIANCE, 2502.0)
                await wait_until(lambda: rec.fills, what="the fill of the resolved order")
                await asyncio.sleep(3 * broker.poll_interval)  # polls and late alerts add nothing
                assert [(f.broker_order_id, f.quantity, f.price) for f in rec.fills] == [(sim.order_id, 4, 2502.0)]
                assert _posts(box) == 1 and broker.stats.ambiguous == 1
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_429_is_ambiguous_finds_nothing_and_an_explicit_replace_makes_one_order():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.state.faults.http_429 = 1
                with pytest.raises(AmbiguousOutcome, match="HTTP 429, DH-904"):
                    await broker.place_order(request("rl-1", HDFC, quantity=2))
                assert box.orders_of(account, "rl-1") == [] and _posts(box) == 1
                assert await broker.find_order("rl-1") is None
                assert not broker.needs_poll()

                again = await broker.place_order(request("rl-1", HDFC, quantity=2))  # the caller's decision
                assert again.status == "OPEN"
                (sim,) = box.orders_of(account, "rl-1")
                assert sim.order_id == again.broker_order_id and _posts(box) == 2
                box.publish(HDFC, 1700.0)
                await wait_until(lambda: rec.fills)
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_duplicate_fills_are_booked_once():
    async def main():
        async with OrderSandbox() as box:
            async with aiohttp.ClientSession() as http:  # switched over the documented HTTP hook
                async with http.post(f"{box.http}/sandbox/dhan/faults", json={"duplicate_fills": True}) as resp:
                    assert resp.status == 200 and (await resp.json())["duplicate_fills"] is True
            assert box.exchange.faults.duplicate_fills
            account = new_account()
            broker = box.broker(account)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                first = await broker.place_order(request("dup-1", quantity=3))
                second = await broker.place_order(request("dup-2", HDFC, quantity=5))
                box.publish(RELIANCE, 2500.0)
                box.publish(HDFC, 1700.0)
                await wait_until(lambda: len(rec.fills) == 2)
                await wait_until(lambda: broker.stats.alerts >= 6, what="all alerts, duplicates included")
                await asyncio.sleep(3 * broker.poll_interval)
                assert sorted((f.broker_order_id, f.quantity) for f in rec.fills) == sorted(
                    [(first.broker_order_id, 3), (second.broker_order_id, 5)])
                assert broker.stats.stale_alerts >= 2  # the repeated TRADED alerts were recognised
                assert [u.status for u in rec.updates if u.broker_order_id == first.broker_order_id] == ["FILLED"]
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_an_early_fill_is_held_until_place_order_returns_and_booked_once():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, timeout=3.0)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.exchange.faults.early_fills = True
                box.exchange.faults.duplicate_fills = True
                box.state.faults.timeout_after_accept = 1
                box.state.faults.hang_seconds = 0.8  # the answer comes late, but within the timeout

                async def fill_meanwhile():
                    await wait_until(lambda: box.orders_of(account, "early-1"))
                    box.publish(RELIANCE, 2490.0)
                    await wait_until(lambda: broker.stats.held >= 2, what="the update and the fill, held")

                helper = asyncio.get_running_loop().create_task(fill_meanwhile())
                placed = await broker.place_order(request("early-1", quantity=6))
                # place_order returned: nothing has been delivered yet, the held events come next
                assert rec.fills == [] and rec.updates == []
                assert placed.status == "FILLED" and placed.filled_quantity == 6  # the stream knew more
                await helper
                await wait_until(lambda: rec.fills, what="the released fill")
                await asyncio.sleep(3 * broker.poll_interval)
                assert [(f.quantity, f.price) for f in rec.fills] == [(6, 2490.0)]
                # one rule for every broker (adapters.tracking): the fill goes out before the update reporting it
                assert rec.events == [("order", "OPEN"), ("fill", rec.fills[0].trade_id), ("order", "FILLED")]
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_a_dropped_order_stream_still_yields_the_fill_through_the_poll():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            slow = Backoff(30.0, 30.0, rng=_Longest())  # the stream will not be back during the test
            broker = box.broker(account, stream_backoff=slow)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.state.faults.drop_order_stream = 1
                placed = await broker.place_order(request("drop-1", quantity=7))
                await wait_until(lambda: box.state.sessions[0].dropped, what="the dropped socket")
                await wait_until(lambda: not broker.stream.status.connected)
                box.publish(RELIANCE, 2495.0)  # fills while nobody listens
                await wait_until(lambda: rec.fills, timeout=5.0, what="the fill from the REST poll")
                assert broker.stats.fills_by_source == {"poll": 1}
                assert [(f.broker_order_id, f.quantity) for f in rec.fills] == [(placed.broker_order_id, 7)]
                assert rec.updates[-1].status == "FILLED" and rec.updates[-1].filled_quantity == 7
                assert len(box.state.sessions) == 1 and broker.stream.status.connects == 1
                await asyncio.sleep(3 * broker.poll_interval)
                assert len(rec.fills) == 1 and not broker.needs_poll()
                assert_books_agree(box, account, rec, await broker.get_positions())
            finally:
                await broker.disconnect()

    run(main())


def test_the_order_stream_reconnects_and_later_fills_arrive_through_it():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, poll_interval=30.0)  # no help from the poll
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account))
                box.state.faults.drop_order_stream = 1
                box.exchange.place(account, instrument=HDFC, side="BUY", quantity=1, order_type="LIMIT", price=1.0,
                                   client_id="other-platform")  # one alert, then the drop
                await wait_until(lambda: len(box.state.sessions) == 2 and box.stream_ready(account),
                                 what="the second login")
                box.state.faults.drop_order_stream = 0
                placed = await broker.place_order(request("re-1", quantity=2))
                box.publish(RELIANCE, 2500.0)
                await wait_until(lambda: rec.fills)
                assert broker.stats.fills_by_source == {"stream": 1}
                assert rec.fills[0].broker_order_id == placed.broker_order_id
                assert broker.stream.status.connects == 2
            finally:
                await broker.disconnect()

    run(main())


def test_rapid_places_never_exceed_the_order_window_and_share_the_account_limiter():
    limit, window = DHAN_LIMITS["order"][0]

    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            one, two = box.broker(account), box.broker(account)  # two strategies, one account
            await one.connect()
            await two.connect()
            try:
                calls = [b.place_order(request(f"burst-{i:02d}", quantity=1, order_type=OrderType.LIMIT,
                                               limit_price=1.0)) for i, b in enumerate([one, two] * 15)]
                orders = await asyncio.gather(*calls)
                assert len({o.broker_order_id for o in orders}) == 30 and all(o.status == "OPEN" for o in orders)
            finally:
                await one.disconnect()
                await two.disconnect()
            times = sorted(box.state.place_times)
            assert len(times) == 30
            # Delivery jitter between the client's limiter and the server's clock: the first burst
            # also opens its connections, which on a loaded 2-core CI host took up to 0.18 s, so a
            # window that starts with such a request looks shorter. A limiter that does not hold
            # (one per strategy instead of one per account) puts 11 orders within a few ms.
            slack = 0.25
            crowded = [times[i + limit] - times[i] for i in range(len(times) - limit)]
            assert min(crowded) >= window - slack, f"{limit + 1} orders arrived within {min(crowded):.3f}s"
            assert times[-1] - times[0] >= (30 - limit) / limit * window - slack

    run(main(), timeout=20)
