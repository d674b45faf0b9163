"""Our statistics against backtesting.py 0.6 itself, on the data shipped inside that package.

Both engines run the same strategy logic on the same bars. backtesting.py closes trades
still open at the end at the last bar's *open* (its finalize pass re-runs the broker on the
last bar), while we close them at the last *close*; the fixtures set the last bar's open
equal to its close so the two conventions coincide and every number must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest as OracleBacktest
from backtesting import Strategy as OracleStrategy
from backtesting.test import BTCUSD, EURUSD, GOOG, SMA

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams
from algocli.broker.costs import PercentCommission
from algocli.data.history import Bars
from algocli.engine.backtest import Backtest
from strategies.sma_crossover import SmaCrossover

ORACLE_KEYS = {
    "Start": "start_date", "End": "end_date", "Duration": "duration",
    "Exposure Time [%]": "exposure_time_pct", "Equity Final [$]": "final_equity",
    "Equity Peak [$]": "peak_equity", "Commissions [$]": "commissions", "Return [%]": "total_return_pct",
    "Buy & Hold Return [%]": "buy_and_hold_return_pct", "Return (Ann.) [%]": "annualized_return_pct",
    "Volatility (Ann.) [%]": "volatility_ann_pct", "CAGR [%]": "cagr_pct", "Sharpe Ratio": "sharpe_ratio",
    "Sortino Ratio": "sortino_ratio", "Calmar Ratio": "calmar_ratio", "Alpha [%]": "alpha_pct",
    "Beta": "beta", "Max. Drawdown [%]": "max_drawdown_pct", "Avg. Drawdown [%]": "avg_drawdown_pct",
    "Max. Drawdown Duration": "max_drawdown_duration", "Avg. Drawdown Duration": "avg_drawdown_duration",
    "# Trades": "total_trades", "Win Rate [%]": "win_rate_pct", "Best Trade [%]": "best_trade_pct",
    "Worst Trade [%]": "worst_trade_pct", "Avg. Trade [%]": "avg_trade_pct",
    "Max. Trade Duration": "max_trade_duration", "Avg. Trade Duration": "avg_trade_duration",
    "Profit Factor": "profit_factor", "Expectancy [%]": "expectancy_pct", "SQN": "sqn",
    "Kelly Criterion": "kelly_criterion",
}


def _prepared(df: pd.DataFrame, rows: int | None = None) -> pd.DataFrame:
    df = df.iloc[-rows:].copy() if rows else df.copy()
    df.iloc[-1, df.columns.get_loc("Open")] = df["Close"].iloc[-1]
    return df


def _bars(df: pd.DataFrame, inst: str = "TEST:1") -> Bars:
    ts = df.index.tz_localize("Asia/Kolkata").tz_convert("UTC").as_unit("ns").asi8
    cols = [df[c].to_numpy(dtype=float) for c in ("Open", "High", "Low", "Close", "Volume")]
    return Bars(inst, ts.astype(np.int64), *cols)


class OracleCross(OracleStrategy):
    n1 = 10
    n2 = 20
    qty = 10
    short = False

    def init(self):
        self.fast = self.I(SMA, self.data.Close, self.n1)
        self.slow = self.I(SMA, self.data.Close, self.n2)

    def next(self):
        f, s = self.fast, self.slow
        up = f[-2] <= s[-2] and f[-1] > s[-1]
        down = f[-2] >= s[-2] and f[-1] < s[-1]
        size = self.position.size
        if self.short:
            if up and size <= 0:
                self.position.close()
                self.buy(size=self.qty)
            elif down and size >= 0:
                self.position.close()
                self.sell(size=self.qty)
        elif up and size <= 0:
            self.buy(size=self.qty)
        elif down and size > 0:
            self.position.close()


class Reversal(BaseStrategy):
    """Always in the market after the first cross: long above, short below."""

    class Params(StrategyParams):
        fast: int = 10
        slow: int = 20
        quantity: int = 10

    def on_init(self):
        self.prev = None

    def on_candle(self, candle):
        inst, p = candle.instrument, self.params
        f, s = self.context.sma(inst, p.fast), self.context.sma(inst, p.slow)
        prev, self.prev = self.prev, (f, s)
        if prev is None or math.isnan(prev[1]):
            return None
        pos = self.context.get_position(inst)
        held = pos.quantity if pos else 0
        if prev[0] <= prev[1] and f > s and held <= 0:
            return Signal(inst, SignalAction.BUY, p.quantity - held)
        if prev[0] >= prev[1] and f < s and held >= 0:
            return Signal(inst, SignalAction.SELL, p.quantity + held)
        return None


def _ours(df, strategy, commission):
    bt = Backtest({"TEST:1": _bars(df)}, initial_capital=100_000, cost_model=PercentCommission(commission))
    bt.add_strategy(strategy, ["TEST:1"])
    return bt.run()


def _theirs(df, commission, **params):
    cls = type("Oracle", (OracleCross,), params)
    return OracleBacktest(df, cls, cash=100_000, commission=commission, finalize_trades=True).run()


def _assert_same(ours: dict, theirs: pd.Series) -> None:
    for label, key in ORACLE_KEYS.items():
        expected = theirs.get(label, 0.0 if label == "Commissions [$]" else None)
        got = ours[key]
        if isinstance(expected, pd.Timestamp):
            assert pd.Timestamp(got).tz_localize(None) == expected, label  # got: a stdlib datetime (IST)
        elif isinstance(expected, pd.Timedelta) or expected is pd.NaT:
            assert got == expected or (pd.isna(got) and pd.isna(expected)), f"{label}: {got} != {expected}"
        elif isinstance(expected, float) and math.isnan(expected):
            assert isinstance(got, float) and math.isnan(got), f"{label}: {got} != nan"
        else:
            assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), f"{label}: {got} != {expected}"


CASES = [
    pytest.param(GOOG, None, 0.0, False, id="goog-long-only"),
    pytest.param(GOOG, None, 0.002, False, id="goog-long-only-commission"),
    pytest.param(GOOG, None, 0.0, True, id="goog-long-short-reversals"),
    pytest.param(GOOG, None, 0.001, True, id="goog-long-short-commission"),
    pytest.param(EURUSD, 3000, 0.0002, True, id="eurusd-hourly-reversals-commission"),
    pytest.param(BTCUSD, None, 0.001, False, id="btcusd-monthly-long-only"),
]


@pytest.mark.parametrize(("data", "rows", "commission", "short"), CASES)
def test_statistics_match_backtesting_py(data, rows, commission, short):
    df = _prepared(data, rows)
    qty = max(1, int(30_000 / df["High"].max()))  # always affordable: no margin cancels
    strategy = Reversal(fast=10, slow=20, quantity=qty) if short else SmaCrossover(
        fast_period=10, slow_period=20, quantity=qty)
    ours = _ours(df, strategy, commission)
    theirs = _theirs(df, commission, qty=qty, short=short)
    # precondition of the comparison: nothing was left pending on the last bar
    assert not [o for o in ours.orders if o.status.value == "EXPIRED"]
    assert len(ours.trades) == len(theirs._trades) > 2
    _assert_same(ours.metrics, theirs)


@pytest.mark.parametrize(("data", "rows", "commission", "short"), CASES[:4])
def test_trades_and_equity_match_backtesting_py(data, rows, commission, short):
    df = _prepared(data, rows)
    strategy = Reversal(quantity=10) if short else SmaCrossover(fast_period=10, slow_period=20, quantity=10)
    ours = _ours(df, strategy, commission)
    theirs = _theirs(df, commission, qty=10, short=short)
    t = theirs._trades
    np.testing.assert_array_equal(ours.trades["size"].to_numpy(), t["Size"].to_numpy())
    np.testing.assert_array_equal(ours.trades["entry_bar"].to_numpy(), t["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours.trades["exit_bar"].to_numpy(), t["ExitBar"].to_numpy())
    np.testing.assert_allclose(ours.trades["pnl"].to_numpy(), t["PnL"].to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.trades["return_pct"].to_numpy(), t["ReturnPct"].to_numpy(), rtol=1e-9)
    # backtesting.py leaves the bars before its first `next` as NaN then back-fills them
    np.testing.assert_allclose(ours.equity, theirs._equity_curve["Equity"].to_numpy(), rtol=1e-9)
