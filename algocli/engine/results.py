"""Turn a finished run's fills into equity, benchmark, trades and statistics, vectorised.

Equity is not tracked bar by bar during the run. It is rebuilt here from the fills:
``cash(t) = initial + cumulative cash flows``, ``equity(t) = cash(t) + Σ position(t) × close(t)``.

Buy & hold with several instruments is an equal-weight portfolio: each instrument's
capital share is bought at its close on the first bar where the strategies trading it
have every indicator defined (as backtesting.py does for one instrument), and held to
its last bar. ``buy_and_hold_return_pct`` is that portfolio's return; beta and alpha
regress the account's bar log returns on the log returns of the same portfolio. With one
instrument all three reduce exactly to backtesting.py's definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from algocli.analytics.result import TRADE_COLUMNS, RunResult, empty_trade_columns
from algocli.analytics.stats import compute_metrics
from algocli.portfolio.ledger import TRADE_FIELDS

if TYPE_CHECKING:
    from algocli.engine.backtest import Backtest


def build_result(bt: Backtest, ts: np.ndarray) -> RunResult:
    """Assemble the ``RunResult`` of a finished backtest."""
    core = bt.core
    ts = np.asarray(ts, dtype=np.int64)
    closes = {inst: _close_on_timeline(h.column("close"), h.column("ts"), ts) for inst, h in core.histories.items()}
    fills = core.broker.fills
    n = len(ts)
    cols = _FillColumns(fills, n)
    cash = bt.initial_capital + _cumulative(cols.bar, cols.cash_flow, n)
    equity = cash.copy()
    strategy_pnl: dict[str, np.ndarray] = {}
    for slot in core.slots:
        own = cols.strategy == slot.id
        pnl = _cumulative(cols.bar[own], cols.cash_flow[own], n)
        # value every instrument the strategy traded, subscribed or not
        traded = dict.fromkeys([*slot.instruments, *cols.instrument[own].tolist()])
        for inst in traded:
            mine = own & (cols.instrument == inst)
            value = _cumulative(cols.bar[mine], cols.signed[mine], n) * closes[inst]
            pnl += value
            equity += value
        strategy_pnl[slot.id] = pnl
    trades = trade_columns(core.ledger.trades, n)
    starts = _buy_and_hold_starts(core)
    benchmark, bh_return, market = _benchmark(core, closes, starts, bt.initial_capital, ts)
    metrics = compute_metrics(
        equity, ts, trades, buy_and_hold_return=bh_return, market_log_returns=market,
        commissions=float(sum(f.commission for f in fills)), initial_capital=bt.initial_capital,
    )
    return RunResult(
        name=bt.name, index=ts, equity=equity, cash=cash, benchmark=benchmark,
        strategy_pnl=strategy_pnl, metrics=metrics, trades=trades, orders=core.broker.orders,
        fills=fills, bars=bt.bars, instruments=core.instruments,
        strategies={s.id: type(s.strategy).__name__ for s in core.slots},
        initial_capital=bt.initial_capital, notes=list(bt.notes),
        indicators=[read for slot in core.slots for read in slot.context.indicators_read()],
    )


def _close_on_timeline(close: np.ndarray, own_ts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    if len(own_ts) == len(ts) and own_ts[0] == ts[0] and own_ts[-1] == ts[-1]:
        return close
    idx = np.searchsorted(own_ts, ts, side="right") - 1
    out = close[np.clip(idx, 0, None)].astype(float)
    out[idx < 0] = 0.0  # before the first bar nobody can hold the instrument
    return out


class _FillColumns:
    """The fills of a run as numpy columns, built in one pass."""

    def __init__(self, fills, n: int) -> None:
        # A fill booked after the last candle closed (a live fill reconciled on a restart when no
        # candle follows) belongs to the last bar: its cash and position count at the last close.
        self.bar = np.minimum(np.array([f.bar for f in fills], dtype=np.int64), max(n - 1, 0))
        self.signed = np.array([f.signed_quantity for f in fills], dtype=float)
        price = np.array([f.price for f in fills], dtype=float)
        commission = np.array([f.commission for f in fills], dtype=float)
        self.cash_flow = -self.signed * price - commission
        self.strategy = np.array([f.strategy_id for f in fills], dtype=object)
        self.instrument = np.array([f.instrument for f in fills], dtype=object)


def _cumulative(bars: np.ndarray, amounts: np.ndarray, n: int) -> np.ndarray:
    """Running total over the timeline of amounts booked at the given bars."""
    if not len(bars):
        return np.zeros(n)
    return np.cumsum(np.bincount(bars, weights=amounts, minlength=n)[:n])


def trade_columns(rows: list[tuple], n: int | None = None) -> dict[str, np.ndarray]:
    """Round trips (ledger tuples, ``TRADE_FIELDS``) as ``RunResult.trade_columns``: numpy columns
    with times and durations in UTC nanoseconds; with ``n`` (the timeline's length) bars past its
    end are taken as its last bar, as ``_FillColumns`` takes them."""
    if not rows:
        return empty_trade_columns()
    raw = dict(zip(TRADE_FIELDS, zip(*rows)))
    out = {name: np.array(raw[name], dtype=object) for name in ("strategy", "instrument")}
    size = np.array(raw["size"], dtype=np.int64)
    out["side"] = np.where(size > 0, "LONG", "SHORT").astype(object)
    out["size"] = size
    out["entry_time"] = np.array(raw["entry_ts"], dtype=np.int64)
    out["exit_time"] = np.array(raw["exit_ts"], dtype=np.int64)
    for name in ("entry_price", "exit_price", "pnl", "return_pct", "commission"):
        out[name] = np.array(raw[name], dtype=float)
    out["duration"] = out["exit_time"] - out["entry_time"]
    for name in ("entry_bar", "exit_bar"):
        out[name] = np.array(raw[name], dtype=np.int64)
        if n is not None:
            out[name] = np.minimum(out[name], max(n - 1, 0))
    return {name: out[name] for name in TRADE_COLUMNS}


def _buy_and_hold_starts(core) -> dict[str, int]:
    """Per instrument, the earliest warm-up bar among the strategies that trade it."""
    starts: dict[str, int] = {}
    for slot in core.slots:
        for inst in slot.instruments:
            w = slot.context.warmup.get(inst, 0)
            starts[inst] = min(starts.get(inst, w), w)
    for inst, h in core.histories.items():
        starts[inst] = min(starts.get(inst, 0), h.length - 1)
    return starts


def _benchmark(core, closes, starts, capital, ts) -> tuple[np.ndarray, float, np.ndarray]:
    held = []
    market = []
    returns = []
    for inst, h in core.histories.items():
        c = h.column("close")
        first = starts[inst]
        entry = c[first]
        returns.append(c[-1] / entry - 1)
        on_tl = closes[inst]
        begin = int(np.searchsorted(ts, h.ts_mv[first]))
        rel = np.ones(len(ts))
        rel[begin:] = on_tl[begin:] / entry
        held.append(rel)
        own0 = int(np.searchsorted(ts, h.ts_mv[0]))
        norm = np.ones(len(ts))
        norm[own0:] = on_tl[own0:] / c[0]
        market.append(norm)
    benchmark = capital * np.mean(held, axis=0)
    mkt = np.mean(market, axis=0)
    return benchmark, float(np.mean(returns)), np.log(mkt[1:] / mkt[:-1])
