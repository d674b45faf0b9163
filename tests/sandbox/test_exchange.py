"""The sandbox matching engine: fills, limits, IOC, rejections, positions and events."""

from __future__ import annotations

import pytest

from algocli.domain.models import Tick
from algocli.sandbox.exchange import Exchange

INST = "NSE_EQ:1333"


def tick(price: float, ts: int = 1) -> Tick:
    return Tick(INST, ts, price, 1, 100)


def test_market_order_fills_on_the_next_tick_and_updates_cash_and_position():
    ex = Exchange(opening_cash=100_000)
    events = []
    ex.listen("A", lambda kind, obj: events.append((kind, getattr(obj, "status", None))))
    ex.on_tick(tick(100.0))
    order = ex.place("A", instrument=INST, side="BUY", quantity=10, order_type="MARKET", client_id="c1")
    assert order.status == "PENDING" and not ex.account("A").trades
    ex.on_tick(tick(101.0, 2))
    assert order.status == "FILLED" and order.average_price == 101.0
    acct = ex.account("A")
    assert acct.cash == pytest.approx(100_000 - 1010) and acct.positions[INST][0] == 10
    assert events == [("order", "PENDING"), ("order", "FILLED"), ("trade", None)]
    assert ex.find("A", "c1") is order and ex.find("B", "c1") is None


def test_limit_fills_at_tick_when_marketable_else_at_the_limit():
    ex = Exchange()
    ex.on_tick(tick(100.0))
    marketable = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="LIMIT", price=105.0)
    resting = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="LIMIT", price=98.0)
    ex.on_tick(tick(100.0, 2))
    assert marketable.status == "FILLED" and marketable.average_price == 100.0
    assert resting.status == "PENDING"
    ex.on_tick(tick(97.0, 3))
    assert resting.status == "FILLED" and resting.average_price == 98.0


def test_ioc_cancel_modify_reject_and_sell_short():
    ex = Exchange(opening_cash=1_000)
    ex.on_tick(tick(100.0))
    ioc = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="LIMIT", price=90.0, validity="IOC")
    ex.on_tick(tick(100.0, 2))
    assert ioc.status == "CANCELLED"
    big = ex.place("A", instrument=INST, side="BUY", quantity=100, order_type="MARKET")
    assert big.status == "REJECTED" and "insufficient funds" in big.reason
    limit = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="LIMIT", price=95.0)  # inside the band
    ex.modify("A", limit.order_id, price=99.0, quantity=2)
    assert (limit.price, limit.quantity, limit.modifications) == (99.0, 2, 1)
    ex.cancel("A", limit.order_id)
    with pytest.raises(ValueError):
        ex.cancel("A", limit.order_id)
    short = ex.place("A", instrument=INST, side="SELL", quantity=3, order_type="MARKET")
    ex.on_tick(tick(100.0, 3))
    assert short.status == "FILLED" and ex.account("A").positions[INST][0] == -3
    assert ex.account("A").cash == pytest.approx(1_300)


def test_fault_switches_repeat_and_reorder_fill_events():
    ex = Exchange()
    events = []
    ex.listen("A", lambda kind, obj: events.append(kind))
    ex.faults.duplicate_fills = True
    ex.faults.early_fills = True
    ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="MARKET")
    ex.on_tick(tick(10.0))
    assert events == ["order", "trade", "order", "trade"]
    assert len(ex.account("A").trades) == 1  # the exchange books it once; only the events repeat


def test_venues_keep_their_own_accounts_on_shared_prices():
    ex = Exchange(opening_cash=10_000)
    dhan, upstox = ex.venue("dhan"), ex.venue("upstox")
    ex.on_tick(tick(100.0))
    order = dhan.place("sandbox", instrument=INST, side="BUY", quantity=10, order_type="MARKET", client_id="c1")
    ex.on_tick(tick(101.0, 2))
    assert order.status == "FILLED" and dhan.account("sandbox").positions[INST][0] == 10
    assert upstox.account("sandbox").positions == {} and upstox.account("sandbox").cash == 10_000
    assert ex.account("sandbox").orders == {}  # the unnamed venue is a third one
    assert dhan.find("sandbox", "c1") is order and upstox.find("sandbox", "c1") is None
    with pytest.raises(KeyError):
        upstox.cancel("sandbox", order.order_id)
    assert upstox.last[INST].ltp == 101.0 and upstox.faults is dhan.faults  # one market, one set of switches


def test_order_times_follow_the_replay_clock():
    ex = Exchange(start_ns=1_000)
    waiting = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="LIMIT", price=90.0)
    assert waiting.created_ns == waiting.updated_ns == 1_000  # before the first tick: the replay's start
    ex.on_tick(tick(100.0, 5_000))
    market = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="MARKET")
    assert market.created_ns == 5_000
    ex.on_tick(tick(95.0, 9_000))
    ex.modify("A", waiting.order_id, price=99.0)
    assert (market.updated_ns, ex.account("A").trades[0].ts, waiting.updated_ns) == (9_000, 9_000, 9_000)
    ex.on_tick(tick(120.0, 3_000))  # a late tick does not turn the clock back
    ex.cancel("A", waiting.order_id)
    assert waiting.updated_ns == 9_000


def test_an_order_above_the_freeze_quantity_is_rejected_and_a_modify_above_it_refused():
    ex = Exchange(freeze={INST: 40})
    ex.on_tick(tick(100.0))
    big = ex.place("A", instrument=INST, side="BUY", quantity=41, order_type="MARKET", client_id="big")
    assert big.status == "REJECTED" and "above the freeze quantity 40" in big.reason
    at_limit = ex.place("A", instrument=INST, side="BUY", quantity=40, order_type="LIMIT", price=90.0)
    assert at_limit.status == "PENDING"
    with pytest.raises(ValueError, match="freeze quantity 40"):
        ex.modify("A", at_limit.order_id, quantity=41)
    assert at_limit.quantity == 40
    other = ex.place("A", instrument="NSE_EQ:2885", side="BUY", quantity=1000, order_type="LIMIT", price=1.0)
    assert other.status == "PENDING"  # an instrument without a freeze quantity takes any


def test_the_reject_sells_fault_rejects_the_next_sells_after_giving_them_an_id():
    ex = Exchange()
    ex.on_tick(tick(100.0))
    ex.faults.reject_sells = 1
    buy = ex.place("A", instrument=INST, side="BUY", quantity=1, order_type="MARKET")
    refused = ex.place("A", instrument=INST, side="SELL", quantity=1, order_type="MARKET", client_id="c")
    sell = ex.place("A", instrument=INST, side="SELL", quantity=1, order_type="MARKET")
    assert (buy.status, refused.status, sell.status) == ("PENDING", "REJECTED", "PENDING")
    assert refused.order_id and "reject_sells" in refused.reason and ex.find("A", "c") is refused
    assert ex.faults.reject_sells == 0
