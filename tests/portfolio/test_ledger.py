"""The ledger's books against hand arithmetic: cash, FIFO round trips, commissions, reversals."""

from __future__ import annotations

import itertools

import pytest

from algocli.domain.models import Fill, OrderSide
from algocli.portfolio.ledger import TRADE_FIELDS, Ledger

INST = "NSE_EQ:1"
BUY, SELL = OrderSide.BUY, OrderSide.SELL
_ids = itertools.count(1)


def fill(side, qty, price, commission=0.0, *, bar=0, strategy="s", inst=INST, fill_id=None):
    n = next(_ids)
    return Fill(fill_id or f"F{n}", f"O{n}", strategy, inst, side, qty, price, commission, ts=1000 + bar, bar=bar)


def trades(ledger: Ledger) -> list[dict]:
    return [dict(zip(TRADE_FIELDS, t)) for t in ledger.trades]


def test_opening_fill_sets_position_cash_and_no_trade():
    led = Ledger(100_000)
    led.book(fill(BUY, 10, 100.0, 1.0))
    pos = led.position("s", INST)
    assert (pos.quantity, pos.average_price, pos.realized_pnl, pos.last_price) == (10, 100.0, 0.0, 100.0)
    assert led.cash == pytest.approx(100_000 - 1000 - 1.0)
    assert led.net[INST] == 10
    assert led.trades == []


def test_fifo_closes_the_oldest_lot_first_and_splits_commission_pro_rata():
    led = Ledger(100_000)
    led.book(fill(BUY, 10, 100.0, 1.0, bar=1))    # lot A: 0.10 commission per share
    led.book(fill(BUY, 10, 110.0, 2.2, bar=2))    # lot B: 0.22 per share
    assert led.position("s", INST).average_price == pytest.approx(105.0)
    led.book(fill(SELL, 15, 120.0, 3.6, bar=3))   # exit: 0.24 per share

    a, b = trades(led)
    # all of lot A: 10 x (0.10 + 0.24) = 3.40 commission
    assert (a["size"], a["entry_price"], a["exit_price"], a["entry_bar"], a["exit_bar"]) == (10, 100.0, 120.0, 1, 3)
    assert a["commission"] == pytest.approx(3.4)
    assert a["pnl"] == pytest.approx(10 * 20 - 3.4)
    assert a["return_pct"] == pytest.approx(120 / 100 - 1 - 3.4 / 1000)
    # 5 of lot B: 5 x (0.22 + 0.24) = 2.30
    assert (b["size"], b["entry_price"], b["entry_bar"], b["entry_ts"], b["exit_ts"]) == (5, 110.0, 2, 1002, 1003)
    assert b["commission"] == pytest.approx(2.3)
    assert b["pnl"] == pytest.approx(5 * 10 - 2.3)

    pos = led.position("s", INST)
    assert pos.quantity == 5 and pos.average_price == pytest.approx(110.0)  # what is left is lot B
    assert pos.realized_pnl == pytest.approx(196.6 + 47.7)
    assert led.cash == pytest.approx(100_000 - 1000 - 1.0 - 1100 - 2.2 + 1800 - 3.6)

    # close the rest at a loss: 5 x (0.22 + 0.18) = 2.00 commission
    led.book(fill(SELL, 5, 90.0, 0.9, bar=4))
    last = trades(led)[-1]
    assert (last["size"], last["entry_price"], last["exit_price"]) == (5, 110.0, 90.0)
    assert last["commission"] == pytest.approx(2.0)
    assert last["pnl"] == pytest.approx(5 * -20 - 2.0)
    pos = led.position("s", INST)
    assert pos.quantity == 0 and pos.average_price == 0.0
    assert led.net[INST] == 0
    # flat: cash moved by exactly the sum of trade P&L (commissions included)
    assert led.cash - 100_000 == pytest.approx(sum(t["pnl"] for t in trades(led)))
    assert pos.realized_pnl == pytest.approx(196.6 + 47.7 - 102.0)


def test_partial_closes_of_one_lot_share_its_entry_commission():
    led = Ledger(50_000)
    led.book(fill(BUY, 10, 100.0, 1.0))      # 0.10 per share
    led.book(fill(SELL, 4, 105.0, 0.42))     # 0.105 per share
    pos = led.position("s", INST)
    assert pos.quantity == 6 and pos.average_price == 100.0
    led.book(fill(SELL, 6, 110.0, 0.66))     # 0.11 per share
    first, second = trades(led)
    assert (first["size"], second["size"]) == (4, 6)
    assert first["commission"] == pytest.approx(4 * (0.10 + 0.105))
    assert second["commission"] == pytest.approx(6 * (0.10 + 0.11))
    assert first["pnl"] == pytest.approx(4 * 5 - 0.82)
    assert second["pnl"] == pytest.approx(6 * 10 - 1.26)
    # the entry's 1.00 is split 0.40 / 0.60 between the two trades
    assert first["commission"] + second["commission"] == pytest.approx(1.0 + 0.42 + 0.66)


def test_reversal_long_to_short_in_one_fill():
    led = Ledger(100_000)
    led.book(fill(BUY, 10, 100.0, 1.0, bar=0))
    led.book(fill(SELL, 25, 95.0, 2.375, bar=1))  # 0.095 per share: 10 close the long, 15 open a short
    (closed,) = trades(led)
    assert closed["size"] == 10 and closed["exit_price"] == 95.0
    assert closed["commission"] == pytest.approx(10 * (0.10 + 0.095))
    assert closed["pnl"] == pytest.approx(10 * -5 - 1.95)
    pos = led.position("s", INST)
    assert pos.quantity == -15 and pos.average_price == 95.0 and pos.is_short
    assert led.net[INST] == -15
    assert led.cash == pytest.approx(100_000 - 1000 - 1.0 + 2375 - 2.375)

    led.book(fill(BUY, 15, 90.0, 1.35, bar=2))   # cover the short: 0.09 per share
    short = trades(led)[-1]
    assert short["size"] == -15 and (short["entry_price"], short["exit_price"]) == (95.0, 90.0)
    assert (short["entry_bar"], short["exit_bar"]) == (1, 2)
    assert short["commission"] == pytest.approx(15 * (0.095 + 0.09))
    assert short["pnl"] == pytest.approx(15 * 5 - 2.775)
    assert short["return_pct"] == pytest.approx(-(90 / 95 - 1) - 2.775 / (15 * 95))
    # every rupee of commission is in exactly one trade
    assert sum(t["commission"] for t in trades(led)) == pytest.approx(1.0 + 2.375 + 1.35)
    assert led.cash - 100_000 == pytest.approx(-51.95 + 72.225)
    assert led.position("s", INST).quantity == 0


def test_reversal_short_to_long_in_one_fill():
    led = Ledger(100_000)
    led.book(fill(SELL, 8, 50.0))
    led.book(fill(SELL, 2, 60.0))
    assert led.position("s", INST).average_price == pytest.approx((8 * 50 + 2 * 60) / 10)
    led.book(fill(BUY, 13, 55.0))
    t1, t2 = trades(led)
    assert (t1["size"], t1["pnl"]) == (-8, pytest.approx(-8 * (55 - 50)))
    assert (t2["size"], t2["pnl"]) == (-2, pytest.approx(-2 * (55 - 60)))
    pos = led.position("s", INST)
    assert pos.quantity == 3 and pos.average_price == 55.0
    assert led.cash == pytest.approx(100_000 + 400 + 120 - 13 * 55)


def test_duplicate_fill_id_is_rejected_and_booked_once():
    led = Ledger(10_000)
    f = fill(BUY, 10, 100.0, 0.5, fill_id="dup-1")
    led.book(f)
    with pytest.raises(ValueError, match="dup-1"):
        led.book(f)
    with pytest.raises(ValueError, match="already booked"):
        led.book(fill(SELL, 10, 120.0, fill_id="dup-1"))  # a different fill reusing the id
    assert led.cash == pytest.approx(10_000 - 1000.5)
    assert led.position("s", INST).quantity == 10
    assert led.net[INST] == 10 and led.trades == []


def test_positions_are_per_strategy_and_net_is_their_sum():
    led = Ledger(100_000)
    led.book(fill(BUY, 10, 100.0, strategy="long"))
    led.book(fill(SELL, 4, 101.0, strategy="short"))
    assert led.position("long", INST).quantity == 10
    assert led.position("short", INST).quantity == -4
    assert led.net[INST] == 6
    # the short strategy's buy covers its own short, never the other strategy's long
    led.book(fill(BUY, 4, 99.0, strategy="short"))
    (t,) = trades(led)
    assert t["strategy"] == "short" and t["size"] == -4 and t["pnl"] == pytest.approx(4 * 2)
    assert led.position("long", INST).quantity == 10 and led.position("short", INST).quantity == 0
    assert led.net[INST] == 10
    assert led.position("nobody", INST) is None


def test_opening_quantity_splits_closing_and_opening_parts():
    led = Ledger(100_000)
    assert led.opening_quantity("s", INST, 5) == (0, 5)
    led.book(fill(BUY, 10, 100.0))
    assert led.opening_quantity("s", INST, 3) == (0, 3)      # adds to the long
    assert led.opening_quantity("s", INST, -4) == (4, 0)     # partial close
    assert led.opening_quantity("s", INST, -10) == (10, 0)   # full close
    assert led.opening_quantity("s", INST, -25) == (10, 15)  # reversal
    assert led.opening_quantity("other", INST, -25) == (0, 25)


def test_cash_is_initial_minus_signed_value_minus_commission_over_many_fills():
    led = Ledger(25_000)
    book = [(BUY, 7, 101.5, 0.2), (BUY, 3, 99.0, 0.1), (SELL, 12, 103.25, 0.4), (BUY, 2, 100.0, 0.05),
            (SELL, 1, 98.0, 0.0)]
    expected = 25_000.0
    for side, qty, price, comm in book:
        led.book(fill(side, qty, price, comm))
        expected -= (qty if side is BUY else -qty) * price + comm
    assert led.cash == pytest.approx(expected)
    assert led.cash == pytest.approx(25_000 - 710.5 - 0.2 - 297 - 0.1 + 1239 - 0.4 - 200 - 0.05 + 98)
    pos = led.position("s", INST)
    assert pos.quantity == 7 + 3 - 12 + 2 - 1 == -1 and pos.average_price == 98.0
    # closed: 7 and 3 long (into the 12 sold), 2 short (opened by that sale, covered at 100)
    assert [t["size"] for t in trades(led)] == [7, 3, -2]
    gross = 7 * (103.25 - 101.5) + 3 * (103.25 - 99.0) + 2 * (103.25 - 100.0)
    commissions = 0.2 + 0.1 + 0.4 + 0.05  # the open lot's entry fill had no commission
    assert pos.realized_pnl == pytest.approx(gross - commissions)
    assert sum(t["commission"] for t in trades(led)) == pytest.approx(commissions)
    # the open short valued at its own entry price: cash change is exactly the realised P&L
    assert led.cash + pos.quantity * 98.0 - 25_000 == pytest.approx(gross - commissions)


def test_shorts_are_the_instruments_the_account_is_net_short_in_across_strategies():
    led = Ledger(100_000)
    led.book(fill(SELL, 5, 100.0, inst="A"))
    led.book(fill(BUY, 10, 50.0, inst="B"))
    led.book(fill(SELL, 4, 50.0, inst="B", strategy="other"))  # B nets to +6: a strategy's short is not the account's
    assert list(led.shorts) == ["A"]
    led.book(fill(SELL, 20, 50.0, inst="B", strategy="other"))  # B nets to -14
    assert list(led.shorts) == ["A", "B"]
    led.book(fill(BUY, 5, 99.0, inst="A"))  # A flat
    assert list(led.shorts) == ["B"]
    led.book(fill(BUY, 30, 49.0, inst="B", strategy="other"))  # B reversed to +16
    assert list(led.shorts) == [] and led.net == {"A": 0, "B": 16}
