"""The simulated broker: fill models, limit orders, cancel/modify, shorts, cash checks."""

from __future__ import annotations

import pytest

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen, SameClose, Slippage, SlippageConfig, Vwap
from algocli.domain.models import OrderStatus
from algocli.engine.backtest import Backtest
from helpers import Scripted, make_bars

ROWS = [
    (100, 101, 99, 100),
    (102, 104, 101, 103),   # 1
    (103, 106, 100, 105),   # 2
    (104, 105, 95, 96),     # 3
    (90, 92, 88, 91),       # 4: gaps down through 95
    (92, 99, 91, 98),       # 5
    (99, 110, 98, 108),     # 6
]


def run(script, fill_model=None, capital=100_000.0, commission=0.0, rows=ROWS):
    bt = Backtest({"NSE_EQ:1": make_bars(rows)}, initial_capital=capital, fill_model=fill_model,
                  cost_model=PercentCommission(commission))
    strat = Scripted(script)
    bt.add_strategy(strat, ["NSE_EQ:1"], "s")
    return bt.run(), strat


def buy(q, limit=None):
    return lambda ctx, c: ctx.buy(c.instrument, q, limit_price=limit)


def sell(q, limit=None):
    return lambda ctx, c: ctx.sell(c.instrument, q, limit_price=limit)


@pytest.mark.parametrize(("model", "price"), [
    (NextOpen(), 102.0),
    (SameClose(), 100.0),
    (Vwap(), (104 + 101 + 103) / 3),
    (Slippage(SlippageConfig(slippage_pct=0.01)), 102.0 * 1.01),
])
def test_market_buy_price_per_fill_model(model, price):
    result, strat = run({0: buy(10)}, fill_model=model)
    assert result.fills[0].price == pytest.approx(price)
    assert result.fills[0].bar == (0 if model.immediate else 1)


def test_slippage_is_adverse_for_sells():
    result, _ = run({0: buy(10), 2: sell(10)}, fill_model=Slippage(SlippageConfig(slippage_pct=0.01)))
    assert result.fills[1].price == pytest.approx(104 * 0.99)


def test_signal_on_bar_t_never_fills_before_t_plus_1_with_next_open():
    result, strat = run({2: buy(5)})
    assert result.fills[0].bar == 3 and result.fills[0].price == 104
    assert strat.fills[0].order_id == result.orders[0].order_id


def test_limit_order_rests_then_fills_at_limit():
    result, _ = run({1: buy(10, limit=97.0)})  # bars 2 and 3: low 100 then 95 -> fills on bar 3 at 97
    fill = result.fills[0]
    assert (fill.bar, fill.price) == (3, 97.0)
    assert result.orders[0].status is OrderStatus.FILLED


def test_limit_order_gapped_through_fills_at_open():
    result, _ = run({3: buy(10, limit=95.0)})  # bar 4 opens at 90, below the limit
    assert (result.fills[0].bar, result.fills[0].price) == (4, 90.0)


def test_sell_limit_fills_when_high_reaches_it():
    result, _ = run({0: buy(10), 1: sell(10, limit=107.0)})
    assert (result.fills[1].bar, result.fills[1].price) == (6, 107.0)


def test_cancel_stops_a_resting_limit():
    state = {}
    script = {1: lambda ctx, c: state.setdefault("id", ctx.buy(c.instrument, 10, limit_price=50.0)),
              2: lambda ctx, c: ctx.cancel_order(state["id"])}
    result, strat = run(script)
    assert strat.results[2] is True
    assert result.orders[0].status is OrderStatus.CANCELLED and not result.fills


def test_modify_moves_a_resting_limit():
    state = {}
    script = {1: lambda ctx, c: state.setdefault("id", ctx.buy(c.instrument, 10, limit_price=50.0)),
              2: lambda ctx, c: ctx.modify_order(state["id"], price=96.0, quantity=20)}
    result, _ = run(script)
    assert (result.fills[0].bar, result.fills[0].price, result.fills[0].quantity) == (3, 96.0, 20)


def test_unaffordable_order_is_rejected_with_reason_and_run_continues():
    result, _ = run({0: buy(1000), 1: buy(10)}, capital=5_000.0)
    first, second = result.orders[:2]
    assert first.status is OrderStatus.REJECTED and "insufficient funds" in first.reason
    assert second.status is OrderStatus.FILLED
    assert min(result.cash) >= 0


def test_short_round_trip_and_commission():
    result, _ = run({0: sell(10), 3: buy(10)}, commission=0.001)
    trade = result.trades.iloc[0]
    assert trade["side"] == "SHORT" and trade["size"] == -10
    commission = 10 * 102 * 0.001 + 10 * 90 * 0.001
    assert trade["pnl"] == pytest.approx(10 * (102 - 90) - commission)
    assert result.metrics["commissions"] == pytest.approx(commission)


def test_reversal_closes_fifo_and_opens_new_lot():
    result, _ = run({0: buy(10), 1: buy(5), 2: sell(25)})
    trades = result.trades
    assert trades["size"].tolist()[:2] == [10, 5]  # FIFO: first lot closes first
    assert trades["entry_price"].tolist()[:2] == [102.0, 103.0]
    assert trades["exit_bar"].tolist()[:2] == [3, 3]
    # the opened short (10) is closed at the last close by the end-of-data rule
    assert trades["size"].tolist()[2] == -10 and trades["exit_price"].tolist()[2] == 108.0
    assert any("closed at the last close" in n for n in result.notes)


def test_pending_order_at_end_expires():
    result, _ = run({6: buy(1)})
    assert result.orders[0].status is OrderStatus.EXPIRED
    assert any("expired" in n for n in result.notes)


def test_equity_is_cash_plus_marked_position():
    result, _ = run({0: buy(10), 4: sell(10)})
    # bar 2: cash 100000 - 1020, position 10 @ close 105
    assert result.equity[2] == pytest.approx(100_000 - 1020 + 1050)
    assert result.equity[-1] == pytest.approx(100_000 + 10 * (92 - 102))  # sold at bar 5 open
