"""Performance statistics, defined exactly as backtesting.py 0.6 defines them.

A trader comparing numbers across tools should get the same Sharpe for the same trades,
so every formula here follows ``backtesting._stats.compute_stats`` (tests check each one
against backtesting.py itself). Everything is computed once, vectorised, at the end.

Names are the PerformanceMetrics field names of the specification, in its order, with
``commissions`` added after ``peak_equity``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_NAMES = (
    "start_date", "end_date", "duration",
    "total_return_pct", "annualized_return_pct", "buy_and_hold_return_pct", "cagr_pct",
    "volatility_ann_pct", "max_drawdown_pct", "avg_drawdown_pct",
    "max_drawdown_duration", "avg_drawdown_duration",
    "sharpe_ratio", "sortino_ratio", "calmar_ratio",
    "alpha_pct", "beta",
    "initial_capital", "final_equity", "peak_equity", "commissions", "exposure_time_pct",
    "total_trades", "win_rate_pct", "best_trade_pct", "worst_trade_pct", "avg_trade_pct",
    "max_trade_duration", "avg_trade_duration", "profit_factor", "expectancy_pct", "sqn",
    "kelly_criterion",
)

LABELS = {
    "start_date": "Start", "end_date": "End", "duration": "Duration",
    "total_return_pct": "Return [%]", "annualized_return_pct": "Return (Ann.) [%]",
    "buy_and_hold_return_pct": "Buy & Hold Return [%]", "cagr_pct": "CAGR [%]",
    "volatility_ann_pct": "Volatility (Ann.) [%]", "max_drawdown_pct": "Max. Drawdown [%]",
    "avg_drawdown_pct": "Avg. Drawdown [%]", "max_drawdown_duration": "Max. Drawdown Duration",
    "avg_drawdown_duration": "Avg. Drawdown Duration", "sharpe_ratio": "Sharpe Ratio",
    "sortino_ratio": "Sortino Ratio", "calmar_ratio": "Calmar Ratio", "alpha_pct": "Alpha [%]",
    "beta": "Beta", "initial_capital": "Initial Capital [₹]", "final_equity": "Equity Final [₹]",
    "peak_equity": "Equity Peak [₹]", "commissions": "Commissions [₹]",
    "exposure_time_pct": "Exposure Time [%]", "total_trades": "# Trades",
    "win_rate_pct": "Win Rate [%]", "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]", "avg_trade_pct": "Avg. Trade [%]",
    "max_trade_duration": "Max. Trade Duration", "avg_trade_duration": "Avg. Trade Duration",
    "profit_factor": "Profit Factor", "expectancy_pct": "Expectancy [%]", "sqn": "SQN",
    "kelly_criterion": "Kelly Criterion",
}


def drawdown_durations(dd: np.ndarray, index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Duration and depth of each completed-or-final drawdown episode.

    An episode runs from the last bar at a peak (``dd == 0``) to the next such bar, or to
    the last bar of the run; backtesting.py's ``compute_drawdown_duration_peaks``.
    """
    at_peak = np.flatnonzero(dd == 0)
    ends = np.unique(np.r_[at_peak, len(dd) - 1])
    if len(ends) < 2:
        return np.array([], dtype="timedelta64[ns]"), np.array([])
    prev, cur = ends[:-1], ends[1:]
    keep = cur > prev + 1
    prev, cur = prev[keep], cur[keep]
    if not len(cur):
        return np.array([], dtype="timedelta64[ns]"), np.array([])
    ts = index.asi8
    durations = (ts[cur] - ts[prev]).astype("timedelta64[ns]")
    # Between one episode's end and the next one's start every bar is at a peak (dd == 0),
    # so the max over [prev_k, prev_k+1) equals the max over the episode [prev_k, cur_k].
    peaks = np.maximum.reduceat(dd, prev)
    return durations, peaks


def _geometric_mean(returns: np.ndarray) -> float:
    r = np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0) + 1
    if np.any(r <= 0):
        return 0.0
    return float(np.exp(np.log(r).sum() / (len(r) or np.nan)) - 1)


def _data_period(index: pd.DatetimeIndex) -> pd.Timedelta:
    return pd.Series(index[-100:]).diff().dropna().median()


def _rounder(index: pd.DatetimeIndex):
    period = _data_period(index)
    resolution = getattr(period, "resolution_string", None) or period.resolution

    def _round(value):
        if not isinstance(value, pd.Timedelta) or pd.isna(value):
            return value
        return value.ceil(resolution)

    return _round


def compute_metrics(
    equity: np.ndarray,
    index: pd.DatetimeIndex,
    trades: pd.DataFrame,
    *,
    buy_and_hold_return: float,
    market_log_returns: np.ndarray,
    commissions: float,
    initial_capital: float,
    risk_free_rate: float = 0.0,
) -> dict[str, object]:
    """Compute every statistic of a run.

    Args:
        equity: Equity at each bar of ``index`` (the first value is the starting equity).
        index: Bar start times.
        trades: Round trips with ``size``, ``entry_bar``, ``exit_bar``, ``pnl``,
            ``return_pct`` (fraction) and ``duration`` columns.
        buy_and_hold_return: Buy & hold return as a fraction.
        market_log_returns: Bar-to-bar log returns of the buy & hold benchmark.
        commissions: Total charges paid.
        initial_capital: Starting cash.
        risk_free_rate: Annual risk-free rate as a fraction.
    """
    with np.errstate(all="ignore"):  # undefined ratios are NaN, as in backtesting.py
        return _compute(equity, index, trades, buy_and_hold_return, market_log_returns,
                        commissions, initial_capital, risk_free_rate)


def _compute(equity, index, trades, buy_and_hold_return, market_log_returns, commissions,
             initial_capital, risk_free_rate) -> dict[str, object]:
    equity = np.asarray(equity, dtype=float)
    rnd = _rounder(index)
    s: dict[str, object] = {}
    s["start_date"] = index[0]
    s["end_date"] = index[-1]
    s["duration"] = index[-1] - index[0]
    _returns_block(s, equity, index, buy_and_hold_return, risk_free_rate)
    _risk_block(s, equity, index, market_log_returns, rnd, risk_free_rate)
    s["initial_capital"] = float(initial_capital)
    s["final_equity"] = float(equity[-1])
    s["peak_equity"] = float(equity.max())
    s["commissions"] = float(commissions)
    s["exposure_time_pct"] = _exposure(trades, len(index)) * 100
    _trade_block(s, trades, rnd)
    return {name: s[name] for name in METRIC_NAMES}


def _day_returns(equity: np.ndarray, index: pd.DatetimeIndex) -> tuple[pd.Series, float]:
    freq_days = _data_period(index).days
    have_weekends = index.day_of_week.to_series().between(5, 6).mean() > 2 / 7 * 0.6
    annual = 52 if freq_days == 7 else 12 if freq_days == 31 else 1 if freq_days == 365 else (
        365 if have_weekends else 252)
    freq = {7: "W", 31: "ME", 365: "YE"}.get(freq_days, "D")
    day_returns = pd.Series(equity, index=index).resample(freq).last().dropna().pct_change().dropna()
    return day_returns, annual


def _returns_block(s: dict, equity: np.ndarray, index, bh: float, rf: float) -> None:
    s["total_return_pct"] = (equity[-1] - equity[0]) / equity[0] * 100
    s["buy_and_hold_return_pct"] = bh * 100
    day_returns, annual = _day_returns(equity, index)
    gmean = _geometric_mean(day_returns.values)
    ann = (1 + gmean) ** annual - 1
    s["annualized_return_pct"] = ann * 100
    var = day_returns.var(ddof=int(bool(day_returns.shape)))
    s["volatility_ann_pct"] = float(np.sqrt((var + (1 + gmean) ** 2) ** annual - (1 + gmean) ** (2 * annual)) * 100)
    duration = s["duration"]
    years = (duration.days + duration.seconds / 86400) / 365.25
    s["cagr_pct"] = ((equity[-1] / equity[0]) ** (1 / years) - 1) * 100 if years else np.nan
    s["sharpe_ratio"] = (s["annualized_return_pct"] - rf * 100) / (s["volatility_ann_pct"] or np.nan)
    with np.errstate(divide="ignore"):
        downside = np.sqrt(np.mean(day_returns.clip(-np.inf, 0) ** 2)) * np.sqrt(annual)
        s["sortino_ratio"] = (ann - rf) / downside
    s["_ann"] = ann


def _risk_block(s: dict, equity: np.ndarray, index, market: np.ndarray, rnd, rf: float) -> None:
    dd = 1 - equity / np.maximum.accumulate(equity)
    durations, peaks = drawdown_durations(dd, index)
    max_dd = -np.nan_to_num(dd.max())
    s["calmar_ratio"] = s.pop("_ann") / (-max_dd or np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        eq_log = np.log(equity[1:] / equity[:-1])
    beta = np.nan
    if len(eq_log) > 1 and len(market) > 1:
        cov = np.cov(eq_log, market)
        beta = cov[0, 1] / cov[1, 1]
    s["alpha_pct"] = s["total_return_pct"] - rf * 100 - beta * (s["buy_and_hold_return_pct"] - rf * 100)
    s["beta"] = beta
    s["max_drawdown_pct"] = max_dd * 100
    if len(durations):
        s["avg_drawdown_pct"] = -peaks.mean() * 100
        s["max_drawdown_duration"] = rnd(pd.Timedelta(durations.max()))
        s["avg_drawdown_duration"] = rnd(pd.Series(durations).mean())
    else:
        s["avg_drawdown_pct"] = np.nan
        s["max_drawdown_duration"] = pd.NaT
        s["avg_drawdown_duration"] = pd.NaT


def _exposure(trades: pd.DataFrame, n: int) -> float:
    if not len(trades):
        return 0.0
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, trades["entry_bar"].to_numpy(), 1)
    np.add.at(marks, trades["exit_bar"].to_numpy() + 1, -1)
    return float((np.cumsum(marks[:n]) > 0).mean())


def _trade_block(s: dict, trades: pd.DataFrame, rnd) -> None:
    n = len(trades)
    pl = trades["pnl"].astype(float) if n else pd.Series(dtype=float)
    returns = trades["return_pct"].astype(float) if n else pd.Series(dtype=float)
    durations = trades["duration"] if n else pd.Series(dtype="timedelta64[ns]")
    s["total_trades"] = n
    win_rate = np.nan if not n else (pl > 0).mean()
    s["win_rate_pct"] = win_rate * 100
    s["best_trade_pct"] = returns.max() * 100
    s["worst_trade_pct"] = returns.min() * 100
    s["avg_trade_pct"] = _geometric_mean(returns.values) * 100 if n else np.nan
    s["max_trade_duration"] = rnd(durations.max()) if n else pd.NaT
    s["avg_trade_duration"] = rnd(durations.mean()) if n else pd.NaT
    s["profit_factor"] = returns[returns > 0].sum() / (abs(returns[returns < 0].sum()) or np.nan)
    s["expectancy_pct"] = returns.mean() * 100
    s["sqn"] = np.sqrt(n) * pl.mean() / (pl.std() or np.nan)
    s["kelly_criterion"] = win_rate - (1 - win_rate) / (pl[pl > 0].mean() / -pl[pl < 0].mean())
