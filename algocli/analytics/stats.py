"""Performance statistics, defined exactly as backtesting.py 0.6 defines them.

A trader comparing numbers across tools should get the same Sharpe for the same trades,
so every formula here follows ``backtesting._stats.compute_stats`` (tests check each one
against backtesting.py itself). Everything is computed once, vectorised, at the end, with
numpy on the UTC-nanosecond timeline: no pandas, whose import alone costs a small run a
quarter of a second. Times are tz-aware IST ``datetime`` values, durations ``timedelta``
(pandas' ``Timestamp`` and ``Timedelta`` compare equal to them), and undefined ones None
where backtesting.py has NaT.

Names are the PerformanceMetrics field names of the specification, in its order, with
``commissions`` added after ``peak_equity``.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from algocli.analytics.timefmt import ist_datetime, is_missing, ns_timedelta
from algocli.domain.arrays import unique
from algocli.domain.models import IST_OFFSET_NS

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


# Figures that compound a sample to a year. Backtesting.py's definitions are kept; the tables
# only mark them when the sample is short.
ANNUALISED = ("annualized_return_pct", "cagr_pct", "volatility_ann_pct", "sharpe_ratio", "sortino_ratio",
              "calmar_ratio")
# A quarter of NSE sessions. Below it an annualised figure is an extrapolation: the standard
# error of an annualised Sharpe ratio is about sqrt(252 / sessions), 2.0 at 63 sessions and
# more than 7 at 4, and a CAGR compounds the sample's return at least four-fold. Short runs
# also get a grid of daily rather than monthly returns in the report.
SHORT_RUN_SESSIONS = 63


def sessions_spanned(start: date, end: date) -> int:
    """NSE trading days from ``start``'s date to ``end``'s, both included: weekdays less the exchange's
    holidays, plus its special sessions (``algocli.market.calendar``; a year it does not cover counts
    every weekday, and is warned of once).

    Args:
        start: First bar time (a tz-aware or naive IST ``datetime``, ``pd.Timestamp`` included, or a date).
        end: Last bar time.

    Returns:
        At least 1 for any run with a bar.
    """
    from algocli.market.calendar import default_calendar

    first, last = (t.date() if isinstance(t, datetime) else t for t in (start, end))
    return max(1, default_calendar().count_trading_days(first, last))


def short_sample_note(metrics: dict[str, object]) -> str | None:
    """The footnote for annualised figures of a run shorter than ``SHORT_RUN_SESSIONS``.

    Args:
        metrics: A run's statistics (``start_date`` and ``end_date`` are read).

    Returns:
        None for a long enough run (or one without dates), else a sentence naming the
        sessions the figures come from.
    """
    start, end = metrics.get("start_date"), metrics.get("end_date")
    if is_missing(start) or is_missing(end):
        return None
    sessions = sessions_spanned(start, end)
    if sessions >= SHORT_RUN_SESSIONS:
        return None
    days = "1 session" if sessions == 1 else f"{sessions} sessions"
    return (f"annualised from {days}, fewer than {SHORT_RUN_SESSIONS} (about three months): "
            "an extrapolation, not a rate to expect")


def drawdown_durations(dd: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Duration (nanoseconds) and depth of each completed-or-final drawdown episode.

    An episode runs from the last bar at a peak (``dd == 0``) to the next such bar, or to
    the last bar of the run; backtesting.py's ``compute_drawdown_duration_peaks``.

    Args:
        dd: Drawdown at each bar, as a fraction of the running peak.
        ts: Bar times in nanoseconds.

    Returns:
        Durations (int64 nanoseconds) and peak drawdowns, one per episode.
    """
    at_peak = np.flatnonzero(dd == 0)
    ends = unique(np.r_[at_peak, len(dd) - 1])
    if len(ends) < 2:
        return np.array([], dtype=np.int64), np.array([])
    prev, cur = ends[:-1], ends[1:]
    keep = cur > prev + 1
    prev, cur = prev[keep], cur[keep]
    if not len(cur):
        return np.array([], dtype=np.int64), np.array([])
    durations = ts[cur] - ts[prev]
    # Between one episode's end and the next one's start every bar is at a peak (dd == 0),
    # so the max over [prev_k, prev_k+1) equals the max over the episode [prev_k, cur_k].
    peaks = np.maximum.reduceat(dd, prev)
    return durations, peaks


def _geometric_mean(returns: np.ndarray) -> float:
    r = np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0) + 1
    if np.any(r <= 0):
        return 0.0
    return float(np.exp(np.log(r).sum() / (len(r) or np.nan)) - 1)


def _mean(values: np.ndarray) -> float:
    """Mean, NaN when empty (as pandas gives it, without numpy's warning)."""
    return float(values.mean()) if len(values) else np.nan


def _std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof 1), NaN below two values, as pandas gives it."""
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


def _data_period(ts: np.ndarray) -> int:
    """The median bar spacing of the last 100 bars, in nanoseconds (pandas ``Series.diff().median()``)."""
    gaps = np.diff(ts[-100:])
    return int(np.median(gaps)) if len(gaps) else 0


# pandas' Timedelta resolutions, coarsest first: the resolution of a period is the coarsest unit dividing it.
_UNITS_NS = (86_400 * 10**9, 3600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)


def _rounder(ts: np.ndarray):
    """Round durations up to the resolution of the bar spacing (``Timedelta.ceil(period.resolution_string)``)."""
    period = _data_period(ts)
    unit = next(u for u in _UNITS_NS if period % u == 0)

    def _round(ns: int):
        return ns_timedelta(-(-int(ns) // unit) * unit)

    return _round


def compute_metrics(
    equity: np.ndarray,
    ts: np.ndarray,
    trades: dict[str, np.ndarray],
    *,
    buy_and_hold_return: float,
    market_log_returns: np.ndarray,
    commissions: float,
    initial_capital: float,
    risk_free_rate: float = 0.0,
) -> dict[str, object]:
    """Compute every statistic of a run.

    Args:
        equity: Equity at each bar of ``ts`` (the first value is the starting equity).
        ts: Bar start times, UTC nanoseconds.
        trades: Round trips as ``RunResult.trade_columns``: ``entry_bar``, ``exit_bar``, ``pnl``,
            ``return_pct`` (fraction) and ``duration`` (nanoseconds) are read.
        buy_and_hold_return: Buy & hold return as a fraction.
        market_log_returns: Bar-to-bar log returns of the buy & hold benchmark.
        commissions: Total charges paid.
        initial_capital: Starting cash.
        risk_free_rate: Annual risk-free rate as a fraction.

    Returns:
        The statistics keyed by ``METRIC_NAMES``, in that order.
    """
    ts = np.asarray(ts, dtype=np.int64)
    with np.errstate(all="ignore"):  # undefined ratios are NaN, as in backtesting.py
        return _compute(equity, ts, trades, buy_and_hold_return, market_log_returns,
                        commissions, initial_capital, risk_free_rate)


def _compute(equity, ts, trades, buy_and_hold_return, market_log_returns, commissions,
             initial_capital, risk_free_rate) -> dict[str, object]:
    equity = np.asarray(equity, dtype=float)
    rnd = _rounder(ts)
    s: dict[str, object] = {}
    s["start_date"] = ist_datetime(ts[0])
    s["end_date"] = ist_datetime(ts[-1])
    s["duration"] = ns_timedelta(ts[-1] - ts[0])
    _returns_block(s, equity, ts, buy_and_hold_return, risk_free_rate)
    _risk_block(s, equity, ts, market_log_returns, rnd, risk_free_rate)
    s["initial_capital"] = float(initial_capital)
    s["final_equity"] = float(equity[-1])
    s["peak_equity"] = float(equity.max())
    s["commissions"] = float(commissions)
    s["exposure_time_pct"] = _exposure(trades, len(ts)) * 100
    _trade_block(s, trades, rnd)
    return {name: s[name] for name in METRIC_NAMES}


def _period_keys(ts: np.ndarray, freq_days: int) -> np.ndarray:
    """The IST day, week (Monday to Sunday), month or year of each bar, as pandas' resample bins them."""
    days = (ts + IST_OFFSET_NS) // (86_400 * 10**9)
    if freq_days == 7:
        return (days + 3) // 7  # 1970-01-01 was a Thursday: weeks end on Sundays ("W")
    if freq_days in (31, 365):
        return days.astype("datetime64[D]").astype("datetime64[M]" if freq_days == 31 else "datetime64[Y]").astype(
            np.int64)
    return days


def period_closes(ts: np.ndarray) -> tuple[np.ndarray, int]:
    """The bars whose equity the Sharpe and Sortino ratios compare, and how many periods make a year.

    Args:
        ts: Bar times, UTC nanoseconds, sorted.

    Returns:
        The index of the last bar of each day (week, month or year for such bars), as
        backtesting.py's ``resample(freq).last()`` picks them, and the periods per year.
    """
    freq_days = _data_period(ts) // (86_400 * 10**9)
    weekday = ((ts + IST_OFFSET_NS) // (86_400 * 10**9) + 3) % 7
    have_weekends = (weekday >= 5).mean() > 2 / 7 * 0.6
    annual = 52 if freq_days == 7 else 12 if freq_days == 31 else 1 if freq_days == 365 else (
        365 if have_weekends else 252)
    keys = _period_keys(ts, freq_days)
    return np.flatnonzero(np.r_[keys[1:] != keys[:-1], True]), annual  # sorted: a period's last bar


def _day_returns(equity: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, float]:
    """Returns between the last equity of consecutive periods with bars (``resample(freq).last()``)."""
    last, annual = period_closes(ts)
    closes = equity[last]
    return closes[1:] / closes[:-1] - 1, annual


def _returns_block(s: dict, equity: np.ndarray, ts: np.ndarray, bh: float, rf: float) -> None:
    s["total_return_pct"] = (equity[-1] - equity[0]) / equity[0] * 100
    s["buy_and_hold_return_pct"] = bh * 100
    day_returns, annual = _day_returns(equity, ts)
    day_returns = day_returns[~np.isnan(day_returns)]
    gmean = _geometric_mean(day_returns)
    ann = (1 + gmean) ** annual - 1
    s["annualized_return_pct"] = ann * 100
    var = day_returns.var(ddof=1) if len(day_returns) > 1 else np.nan
    s["volatility_ann_pct"] = float(np.sqrt((var + (1 + gmean) ** 2) ** annual - (1 + gmean) ** (2 * annual)) * 100)
    duration = s["duration"]
    years = (duration.days + duration.seconds / 86400) / 365.25
    s["cagr_pct"] = ((equity[-1] / equity[0]) ** (1 / years) - 1) * 100 if years else np.nan
    s["sharpe_ratio"] = (s["annualized_return_pct"] - rf * 100) / (s["volatility_ann_pct"] or np.nan)
    downside = np.sqrt(_mean(np.clip(day_returns, -np.inf, 0) ** 2)) * np.sqrt(annual)
    s["sortino_ratio"] = (ann - rf) / downside
    s["_ann"] = ann


def _risk_block(s: dict, equity: np.ndarray, ts: np.ndarray, market: np.ndarray, rnd, rf: float) -> None:
    dd = 1 - equity / np.maximum.accumulate(equity)
    durations, peaks = drawdown_durations(dd, ts)
    max_dd = -np.nan_to_num(dd.max())
    s["calmar_ratio"] = s.pop("_ann") / (-max_dd or np.nan)
    eq_log = np.log(equity[1:] / equity[:-1])
    beta = np.nan
    if len(eq_log) > 1 and len(market) > 1:
        # cov(equity, market) / var(market), as np.cov's [0, 1] / [1, 1] (same n - 1), without stacking copies
        m = market - market.mean()
        beta = np.dot(eq_log - eq_log.mean(), m) / np.dot(m, m)
    s["alpha_pct"] = s["total_return_pct"] - rf * 100 - beta * (s["buy_and_hold_return_pct"] - rf * 100)
    s["beta"] = beta
    s["max_drawdown_pct"] = max_dd * 100
    if len(durations):
        s["avg_drawdown_pct"] = -peaks.mean() * 100
        s["max_drawdown_duration"] = rnd(durations.max())
        s["avg_drawdown_duration"] = rnd(durations.mean())
    else:
        s["avg_drawdown_pct"] = np.nan
        s["max_drawdown_duration"] = None
        s["avg_drawdown_duration"] = None


def _exposure(trades: dict[str, np.ndarray], n: int) -> float:
    if not len(trades["entry_bar"]):
        return 0.0
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, np.asarray(trades["entry_bar"], dtype=np.int64), 1)
    np.add.at(marks, np.asarray(trades["exit_bar"], dtype=np.int64) + 1, -1)
    return float((np.cumsum(marks[:n]) > 0).mean())


def _trade_block(s: dict, trades: dict[str, np.ndarray], rnd) -> None:
    pl = np.asarray(trades["pnl"], dtype=float)
    returns = np.asarray(trades["return_pct"], dtype=float)
    durations = np.asarray(trades["duration"], dtype=np.int64)
    n = len(pl)
    s["total_trades"] = n
    win_rate = np.nan if not n else float((pl > 0).mean())
    s["win_rate_pct"] = win_rate * 100
    s["best_trade_pct"] = float(np.nanmax(returns)) * 100 if n else np.nan
    s["worst_trade_pct"] = float(np.nanmin(returns)) * 100 if n else np.nan
    s["avg_trade_pct"] = _geometric_mean(returns) * 100 if n else np.nan
    s["max_trade_duration"] = rnd(durations.max()) if n else None
    s["avg_trade_duration"] = rnd(durations.mean()) if n else None
    s["profit_factor"] = returns[returns > 0].sum() / (abs(returns[returns < 0].sum()) or np.nan)
    s["expectancy_pct"] = _mean(returns) * 100
    s["sqn"] = np.sqrt(n) * _mean(pl) / (_std(pl) or np.nan)
    s["kelly_criterion"] = win_rate - (1 - win_rate) / (_mean(pl[pl > 0]) / -_mean(pl[pl < 0]))
