"""Several strategies on one account: P&L attribution, ownership of orders, buy & hold, netting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algocli.broker.fill_models import SameClose
from algocli.config.run import load_run_config
from algocli.domain.models import OrderStatus
from algocli.engine.assemble import assemble_backtest
from algocli.engine.backtest import Backtest
from helpers import Scripted, make_bars

REPO = Path(__file__).resolve().parents[2]
A, B = "NSE_EQ:A", "NSE_EQ:B"
ROWS_A = [(100, 101, 99, 100), (102, 104, 101, 102), (103, 106, 100, 101), (104, 105, 95, 105), (106, 108, 105, 107)]
ROWS_B = [(50, 51, 49, 50), (49, 50, 48, 49), (52, 53, 51, 52), (55, 56, 54, 55), (53, 54, 52, 53)]


# --- the bundled multi-strategy config --------------------------------------------------------

@pytest.fixture(scope="module")
def multi():
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)
    try:
        path = Path("configs/multi.yaml")
        cfg = load_run_config(path)
        assembled = assemble_backtest(cfg, str(path))
        return cfg, assembled.backtest.run()
    finally:
        mp.undo()


def test_multi_strategy_pnl_sums_to_equity_minus_capital_at_every_bar(multi):
    cfg, result = multi
    assert result.initial_capital == 200_000
    assert set(result.strategy_pnl) == {"sma-hdfcbank", "rsi-infosys"}
    total = sum(result.strategy_pnl.values())
    np.testing.assert_allclose(total, result.equity - 200_000, atol=1e-6)
    # both strategies really contribute, so the sum is not one series plus zeros
    assert all(np.abs(p).max() > 0 for p in result.strategy_pnl.values())
    # everything is closed at the end: each strategy's final P&L is the sum of its own trades
    for sid, pnl in result.strategy_pnl.items():
        own = result.trades[result.trades["strategy"] == sid]
        assert len(own) > 0
        assert pnl[-1] == pytest.approx(own["pnl"].sum())


def test_multi_orders_fills_and_trades_belong_to_their_strategy(multi):
    cfg, result = multi
    assert {entry.id: entry.instruments[0] for entry in cfg.strategies} == {
        "sma-hdfcbank": "NSE:HDFCBANK", "rsi-infosys": "NSE:INFY"}
    owner = {"sma-hdfcbank": "NSE:HDFCBANK", "rsi-infosys": "NSE:INFY"}  # named by data/instruments.csv
    orders = {o.order_id: o for o in result.orders}
    for o in result.orders:
        assert o.instrument == owner[o.strategy_id]
        assert o.order_id.startswith(o.strategy_id + "-")
        assert o.status is OrderStatus.FILLED
    for f in result.fills:
        assert f.strategy_id == orders[f.order_id].strategy_id
        assert f.instrument == owner[f.strategy_id]
    for row in result.trades.itertuples():
        assert row.instrument == owner[row.strategy]
    assert set(result.trades["strategy"]) == set(owner)


def test_multi_equity_curve_csv_has_a_pnl_column_per_strategy(multi, tmp_path):
    from algocli.persistence.artifacts import write_equity

    _, result = multi
    curve = pd.read_csv(write_equity(result, tmp_path / "equity_curve.csv"))
    assert list(curve.columns) == ["timestamp", "equity", "cash", "buy_and_hold", "pnl:sma-hdfcbank",
                                   "pnl:rsi-infosys"]
    summed = curve["pnl:sma-hdfcbank"] + curve["pnl:rsi-infosys"]
    np.testing.assert_allclose(summed, curve["equity"] - 200_000, atol=0.011)  # two 2-decimal roundings


def test_multi_buy_and_hold_is_the_mean_of_each_instruments_return_from_its_warmup(multi):
    cfg, result = multi
    sma = next(e for e in cfg.strategies if e.id == "sma-hdfcbank").params
    rsi = next(e for e in cfg.strategies if e.id == "rsi-infosys").params
    c1333 = pd.read_csv(REPO / "data" / "NSE_EQ_1333.csv")["close"].to_numpy()
    c1594 = pd.read_csv(REPO / "data" / "NSE_EQ_1594.csv")["close"].to_numpy()
    start_1333 = sma["slow_period"] - 1  # SMA(n) is first defined at bar n - 1
    start_1594 = rsi["period"]            # RSI(n) needs n price changes: bar n
    expected = ((c1333[-1] / c1333[start_1333] - 1) + (c1594[-1] / c1594[start_1594] - 1)) / 2
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * expected)
    # the benchmark curve is the equal-weight portfolio: half the capital in each
    t = len(c1333) - 1
    assert result.benchmark[t] == pytest.approx(
        100_000 * c1333[t] / c1333[start_1333] + 100_000 * c1594[t] / c1594[start_1594])


# --- hand-built runs ---------------------------------------------------------------------

def _backtest(capital: float = 100_000.0) -> Backtest:
    return Backtest({A: make_bars(ROWS_A, A), B: make_bars(ROWS_B, B)}, initial_capital=capital,
                    fill_model=SameClose())


def test_two_strategies_two_instruments_hand_arithmetic():
    bt = _backtest()
    on_a = Scripted({1: lambda ctx, c: ctx.buy(A, 10), 3: lambda ctx, c: ctx.sell(A, 10)})
    on_b = Scripted({0: lambda ctx, c: ctx.buy(B, 20)})  # held to the end, closed at the last close
    bt.add_strategy(on_a, [A], "on-a")
    bt.add_strategy(on_b, [B], "on-b")
    result = bt.run()

    # on-a: bought 10 at 102 (bar 1), marked at 101, sold at 105 (bar 3)
    assert result.strategy_pnl["on-a"].tolist() == pytest.approx([0, 0, -10, 30, 30])
    # on-b: bought 20 at 50 (bar 0), marked at 49, 52, 55, closed at 53
    assert result.strategy_pnl["on-b"].tolist() == pytest.approx([0, -20, 40, 100, 60])
    assert (result.equity - 100_000).tolist() == pytest.approx([0, -20, 30, 130, 90])
    assert result.cash.tolist() == pytest.approx(
        [99_000, 97_980, 97_980, 99_030, 100_090])  # 100000-1000, -1020, +1050, +1060
    assert [(f.strategy_id, f.instrument) for f in result.fills] == [
        ("on-b", B), ("on-a", A), ("on-a", A), ("on-b", B)]
    assert [o.strategy_id for o in result.orders] == ["on-b", "on-a", "on-a", "on-b"]
    # each strategy hears only its own fills
    assert [f.strategy_id for f in on_a.fills] == ["on-a", "on-a"]
    assert on_b.fills and {f.strategy_id for f in on_b.fills} == {"on-b"}
    trades = result.trades.set_index("strategy")
    assert trades.loc["on-a", "instrument"] == A and trades.loc["on-a", "pnl"] == pytest.approx(30)
    assert trades.loc["on-b", "instrument"] == B and trades.loc["on-b", "pnl"] == pytest.approx(60)
    # no indicators: both instruments are held from bar 0; mean of 107/100 - 1 and 53/50 - 1
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * (0.07 + 0.06) / 2)
    assert result.benchmark.tolist() == pytest.approx(
        [50_000 * (a[3] / 100 + b[3] / 50) for a, b in zip(ROWS_A, ROWS_B)])


def test_buy_and_hold_with_different_warmups_per_instrument():
    bt = _backtest()
    bt.add_strategy(Scripted({i: (lambda ctx, c: ctx.sma(A, 3)) for i in range(5)}), [A], "slow-a")
    bt.add_strategy(Scripted({i: (lambda ctx, c: ctx.sma(B, 2)) for i in range(5)}), [B], "fast-b")
    result = bt.run()
    # SMA(3) on A is first defined at bar 2 (close 101); SMA(2) on B at bar 1 (close 49)
    expected = ((107 / 101 - 1) + (53 / 49 - 1)) / 2
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx(100 * expected)


def test_two_strategies_on_the_same_instrument_keep_separate_positions():
    bt = _backtest()
    seen = {}

    def look(name):
        def run(ctx, candle):
            pos = ctx.get_position(A)
            seen[(name, candle.index)] = None if pos is None else (pos.quantity, pos.average_price)
        return run

    long_script = {1: lambda ctx, c: ctx.buy(A, 10), 2: look("long"), 3: look("long")}
    short_script = {1: lambda ctx, c: ctx.sell(A, 6), 2: look("short"),
                    3: lambda ctx, c: (ctx.close_position(A), look("short")(ctx, c))}
    bt.add_strategy(Scripted(long_script), [A], "long")
    bt.add_strategy(Scripted(short_script), [A], "short")
    bt.add_strategy(Scripted({}), [B], "idle")
    result = bt.run()

    # at bar 2 both positions are open at once: +10 and -6 in the same instrument
    assert seen[("long", 2)] == (10, 102.0)
    assert seen[("short", 2)] == (-6, 102.0)
    assert seen[("long", 3)] == (10, 102.0)
    assert seen[("short", 3)] is None  # covered at bar 3's close
    # the account's net is the sum: 10 - 6 = 4 shares of A after bar 1
    cash1 = 100_000 - 10 * 102 + 6 * 102
    assert result.cash[1] == pytest.approx(cash1)
    assert result.equity[2] == pytest.approx(cash1 + 4 * 101)
    assert result.strategy_pnl["long"][2] == pytest.approx(10 * (101 - 102))
    assert result.strategy_pnl["short"][2] == pytest.approx(-6 * (101 - 102))
    assert result.strategy_pnl["idle"].tolist() == [0.0] * 5
    np.testing.assert_allclose(sum(result.strategy_pnl.values()), result.equity - 100_000, atol=1e-9)
    # each strategy's trade is its own: the short's cover never closes part of the long
    trades = result.trades.set_index("strategy")
    assert trades.loc["short", "size"] == -6 and trades.loc["short", "pnl"] == pytest.approx(6 * (102 - 105))
    assert trades.loc["long", "size"] == 10 and trades.loc["long", "exit_price"] == 107.0  # end-of-data close
    assert result.equity[-1] == pytest.approx(100_000 + 10 * (107 - 102) + 6 * (102 - 105))


class _Returns(Scripted):
    """A strategy whose ``on_candle`` returns what its script's action returns (a Signal or a list)."""

    def on_candle(self, candle):
        self.seen.append(candle.index)
        action = self.script.get(candle.index)
        return None if action is None else action(self.context, candle)


@pytest.mark.parametrize("instruments", [[A], [A, B]], ids=["one-instrument", "several"])
def test_strategies_sharing_an_instrument_run_in_turn_each_signal_handled_before_the_next(instruments):
    from algocli.domain.models import Signal, SignalAction

    bt = Backtest({i: make_bars(ROWS_A if i == A else ROWS_B, i) for i in instruments}, initial_capital=100_000.0,
                  fill_model=SameClose())
    first = _Returns({1: lambda ctx, c: Signal(A, SignalAction.BUY, 10) if c.instrument == A else None})
    # the second strategy on A sees the first's fill (same-close fills are immediate) on the same bar
    second = _Returns({1: lambda ctx, c: [Signal(A, SignalAction.SELL, 4)] if ctx.get_position(A) is None
                       and c.instrument == A and bt.core.ledger.net.get(A) == 10 else None})
    bt.add_strategy(first, instruments, "first")
    bt.add_strategy(second, instruments, "second")
    result = bt.run()
    assert [(o.strategy_id, o.side.value, o.quantity, o.created_bar) for o in result.orders[:2]] == [
        ("first", "BUY", 10, 1), ("second", "SELL", 4, 1)]
    assert first.seen == second.seen  # both saw every candle


@pytest.mark.parametrize("instruments", [[A], [A, B]], ids=["one-instrument", "several"])
def test_an_error_in_the_second_strategy_on_an_instrument_names_that_strategy(instruments):
    from algocli.errors import StrategyError

    bt = Backtest({i: make_bars(ROWS_A if i == A else ROWS_B, i) for i in instruments}, initial_capital=100_000.0)
    bt.add_strategy(Scripted({}), instruments, "calm")
    bt.add_strategy(Scripted({2: lambda ctx, c: 1 / 0}), [A], "broken")
    with pytest.raises(StrategyError, match=r"strategy broken raised ZeroDivisionError on NSE_EQ:A bar 2024-"):
        bt.run()
