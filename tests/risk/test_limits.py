"""Each pre-trade limit refuses exactly the orders it should, and says why in orders.csv."""

from __future__ import annotations

import pytest

from algocli.broker.costs import PercentCommission
from algocli.domain.models import OrderStatus
from algocli.engine.backtest import Backtest
from algocli.risk import RiskConfig, attach_risk
from helpers import Scripted
from risk.risk_support import buy, each, minute_bars, orders_csv, run, sell, statuses

FLAT = [100.0] * 8


def _reasons(rows):
    return [r["reason"] for r in rows if r["status"] == "REJECTED"]


def test_max_position_counts_the_account_net_and_working_orders(tmp_path):
    script = {
        0: buy(6),
        1: buy(6),                      # 6 + 6 > 10
        2: buy(4),                      # exactly 10
        3: sell(25),                    # 10 - 25 = -15
        4: sell(20),                    # -10
        5: each(buy(15, limit=50.0),    # -10 + 15 = 5, rests
                buy(10),                # -10 + 15 working + 10 = 15
                sell(1)),               # -11
    }
    result, _, risk = run(script, {"max_position": 10}, minute_bars("09:15", FLAT))
    rows = orders_csv(result, tmp_path)
    assert statuses(rows) == [
        ("BUY", "6", "FILLED"), ("BUY", "6", "REJECTED"), ("BUY", "4", "FILLED"), ("SELL", "25", "REJECTED"),
        ("SELL", "20", "FILLED"), ("BUY", "15", "EXPIRED"), ("BUY", "10", "REJECTED"), ("SELL", "1", "REJECTED"),
    ]
    assert _reasons(rows) == [
        "risk: NSE_EQ:1 position could reach +12 units with the working orders; max_position is 10",
        "risk: NSE_EQ:1 position could reach -15 units with the working orders; max_position is 10",
        "risk: NSE_EQ:1 position could reach +15 units with the working orders; max_position is 10",
        "risk: NSE_EQ:1 position could reach -11 units with the working orders; max_position is 10",
    ]
    assert risk.denied == 4
    # a refused order never reached the broker: nothing was filled for it
    assert all(r["filled_quantity"] == "0" for r in rows if r["status"] == "REJECTED")


def test_max_position_is_account_wide_across_strategies():
    bars = minute_bars("09:15", FLAT)
    bt = Backtest({bars.instrument: bars}, initial_capital=1_000_000, cost_model=PercentCommission(0.0))
    a = Scripted({0: buy(6), 3: buy(4)})
    b = Scripted({1: buy(6), 2: sell(6)})
    bt.add_strategy(a, [bars.instrument], "a")
    bt.add_strategy(b, [bars.instrument], "b")
    attach_risk(bt.core, RiskConfig(max_position=10), state_path=None)
    result = bt.run()
    got = [(o.order_id, o.status.value) for o in result.orders if o.tag != "end-of-data close"]
    # b's buy would take the account to 12; b's sell takes the account to 0 (b itself short 6)
    assert got == [("a-000001", "FILLED"), ("b-000001", "REJECTED"), ("b-000002", "FILLED"),
                   ("a-000002", "FILLED")]


def test_max_order_value_uses_the_limit_price_or_the_last_close(tmp_path):
    script = {
        0: each(buy(10), buy(11), buy(20, limit=50.0), buy(20, limit=60.0)),
        2: each(sell(11), sell(10)),
    }
    result, _, _ = run(script, {"max_order_value": 1000}, minute_bars("09:15", FLAT))
    rows = orders_csv(result, tmp_path)
    assert statuses(rows) == [
        ("BUY", "10", "FILLED"), ("BUY", "11", "REJECTED"), ("BUY", "20", "EXPIRED"), ("BUY", "20", "REJECTED"),
        ("SELL", "11", "REJECTED"), ("SELL", "10", "FILLED"),
    ]
    assert _reasons(rows) == [
        "risk: order value 1,100.00 is above max_order_value 1,000.00",
        "risk: order value 1,200.00 is above max_order_value 1,000.00",
        "risk: order value 1,100.00 is above max_order_value 1,000.00",
    ]


def test_max_open_orders_counts_working_orders_of_the_account(tmp_path):
    def cancel_first(ctx, c):
        return ctx.cancel_order(ctx.get_open_orders()[0].order_id)

    script = {
        0: each(buy(1, limit=50.0), buy(1, limit=51.0), buy(1, limit=52.0)),
        1: each(cancel_first, buy(1, limit=53.0), buy(1)),
    }
    result, _, _ = run(script, {"max_open_orders": 2}, minute_bars("09:15", FLAT))
    rows = orders_csv(result, tmp_path)
    assert [(r["limit_price"], r["status"]) for r in rows] == [
        ("50.0", "CANCELLED"), ("51.0", "EXPIRED"), ("52.0", "REJECTED"), ("53.0", "EXPIRED"), ("", "REJECTED"),
    ]
    assert _reasons(rows) == ["risk: 2 orders are working; max_open_orders is 2"] * 2


def test_max_orders_per_second_counts_accepted_orders_per_clock_second(tmp_path):
    script = {0: each(buy(1), buy(1), buy(1)), 1: each(buy(1), buy(1))}
    result, _, _ = run(script, {"max_orders_per_second": 2}, minute_bars("09:15", FLAT))
    rows = orders_csv(result, tmp_path)
    assert [r["status"] for r in rows if r["tag"] != "end-of-data close"] == [
        "FILLED", "FILLED", "REJECTED", "FILLED", "FILLED"]
    assert _reasons(rows) == ["risk: 2 orders already accepted in this second; max_orders_per_second is 2"]


def test_max_orders_per_minute_uses_clock_minutes_not_bars(tmp_path):
    # 15-second bars: 09:15:00, :15, :30, :45 share a minute; 09:16:00 starts the next
    script = {0: each(buy(1), buy(1)), 1: each(buy(1), buy(1)), 2: buy(1), 3: buy(1), 4: buy(1)}
    result, _, _ = run(script, {"max_orders_per_minute": 3}, minute_bars("09:15", FLAT, step_s=15))
    rows = orders_csv(result, tmp_path)
    assert [r["status"] for r in rows if r["tag"] != "end-of-data close"] == [
        "FILLED", "FILLED", "FILLED", "REJECTED", "REJECTED", "REJECTED", "FILLED"]
    assert set(_reasons(rows)) == {"risk: 3 orders already accepted in this minute; max_orders_per_minute is 3"}


def test_orders_refused_by_another_limit_do_not_use_up_the_rate():
    script = {0: each(buy(100), buy(1), buy(1), buy(1))}
    result, _, _ = run(script, {"max_orders_per_second": 2, "max_order_value": 5000}, minute_bars("09:15", FLAT))
    got = [(o.quantity, o.status, o.reason.split(";")[0]) for o in result.orders if o.tag != "end-of-data close"]
    assert got == [
        (100, OrderStatus.REJECTED, "risk: order value 10,000.00 is above max_order_value 5,000.00"),
        (1, OrderStatus.FILLED, ""), (1, OrderStatus.FILLED, ""),
        (1, OrderStatus.REJECTED, "risk: 2 orders already accepted in this second"),
    ]


def test_a_denied_order_id_is_returned_to_the_strategy_and_the_sequence_continues():
    result, strat, _ = run({0: each(buy(50), buy(1))}, {"max_position": 10}, minute_bars("09:15", FLAT))
    assert strat.results[0] == ["s-000001", "s-000002"]
    assert [o.status for o in result.orders[:2]] == [OrderStatus.REJECTED, OrderStatus.FILLED]


def test_signals_returned_from_on_candle_are_checked_too():
    from algocli.domain.models import Signal, SignalAction
    from algocli.strategy.base import BaseStrategy

    class Returns(BaseStrategy):
        def on_candle(self, candle):
            if candle.index == 0:
                return [Signal(candle.instrument, SignalAction.BUY, 8), Signal(candle.instrument, SignalAction.BUY, 8),
                        Signal(candle.instrument, SignalAction.HOLD)]
            return None

    bars = minute_bars("09:15", FLAT)
    bt = Backtest({bars.instrument: bars}, initial_capital=1_000_000)
    bt.add_strategy(Returns(), [bars.instrument], "r")
    attach_risk(bt.core, RiskConfig(max_position=10), state_path=None)
    result = bt.run()
    assert [o.status for o in result.orders if o.tag != "end-of-data close"] == [
        OrderStatus.FILLED, OrderStatus.REJECTED]


@pytest.mark.parametrize("risk", [None, {}])
def test_no_limits_change_nothing(risk):
    script = {0: buy(5), 2: sell(8), 3: buy(2, limit=99.0), 5: buy(1)}
    plain, _, _ = run(script, None, minute_bars("09:15", FLAT))
    checked, _, controller = run(script, risk, minute_bars("09:15", FLAT))
    key = [(o.order_id, o.status, o.filled_quantity, o.average_price, o.reason) for o in plain.orders]
    assert key == [(o.order_id, o.status, o.filled_quantity, o.average_price, o.reason) for o in checked.orders]
    assert (controller is None) == (risk is None)
