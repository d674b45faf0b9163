"""Turn a finished run's fills into equity, benchmark, trades and statistics, vectorised.

Equity is not tracked bar by bar during the run. It is rebuilt here from the fills:
``cash(t) = initial + cumulative cash flows``, ``equity(t) = cash(t) + Σ position(t) × close(t)``.

Buy & hold with several instruments is an equal-weight portfolio: each instrument's
capital share is bought at its close on the first bar where the strategies trading it
have every indicator defined (as backtesting.py does for one instrument), and held to
its last bar. ``buy_and_hold_return_pct`` is that portfolio's return; beta and alpha
regress the account's bar log returns on the log returns of the same portfolio. With one
instrument all three reduce exactly to backtesting.py's definitions.

A run with warm-up bars (``data.warmup``) is built on the full timeline and cut at its first
traded instant: the result is what a run starting there would give with the same indicator
values (buy & hold bought at the earliest there, the fills' bars counted from there).
"""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter, is_
from typing import TYPE_CHECKING

import numpy as np

from algocli.analytics.result import TRADE_COLUMNS, RunResult, empty_trade_columns
from algocli.analytics.stats import compute_metrics
from algocli.domain.models import OrderSide
from algocli.portfolio.ledger import TRADE_FIELDS

if TYPE_CHECKING:
    from algocli.engine.backtest import Backtest


def build_result(bt: Backtest, ts: np.ndarray, first: int = 0) -> RunResult:
    """Assemble the ``RunResult`` of a finished backtest.

    Args:
        bt: The finished run (a ``Backtest``, or a paper or live engine).
        ts: Its timeline, UTC nanoseconds.
        first: Index in ``ts`` of the first instant that traded: the instants before it were
            warm-up (``Backtest``'s ``trade_from``), and the result leaves them out, as if the
            run had started there with the same indicator values.
    """
    core = bt.core
    ts = np.asarray(ts, dtype=np.int64)
    opens = _drop_warmup(core, ts, first)
    ts = ts[first:]
    closes = {inst: _close_on_timeline(h.column("close"), h.column("ts"), ts) for inst, h in core.histories.items()}
    fills = core.broker.fills
    n = len(ts)
    cols = _FillColumns(fills, n)
    cash = bt.initial_capital + _cumulative(cols.bar, cols.cash_flow, n)
    equity = cash.copy()
    strategy_pnl: dict[str, np.ndarray] = {}
    alone = len(core.slots) == 1
    for slot in core.slots:
        own = cols.strategy == slot.id
        everything = alone and own.all()
        mine = slice(None) if everything else own  # every fill: views, not copies
        # one strategy books every fill: its cash flows are the account's
        pnl = cash - bt.initial_capital if everything else _cumulative(cols.bar[own], cols.cash_flow[own], n)
        # value every instrument the strategy traded, subscribed or not
        for inst, b, q in _by_instrument(cols.instrument[mine], slot.instruments, cols.bar[mine], cols.signed[mine]):
            value = _cumulative(b, q, n) * closes[inst]
            pnl += value
            equity += value
        strategy_pnl[slot.id] = pnl
    trades = trade_columns(core.ledger.trades, n, first)
    starts = _buy_and_hold_starts(core, opens)
    benchmark, bh_return, market = _benchmark(core, closes, starts, opens, bt.initial_capital, ts)
    metrics = compute_metrics(
        equity, ts, trades, buy_and_hold_return=bh_return, market_log_returns=market,
        commissions=float(sum(map(attrgetter("commission"), fills))), initial_capital=bt.initial_capital,
    )
    return RunResult(
        name=bt.name, index=ts, equity=equity, cash=cash, benchmark=benchmark,
        strategy_pnl=strategy_pnl, metrics=metrics, trades=trades, orders=core.broker.orders,
        fills=fills, bars={k: b.slice(opens[k], len(b)) for k, b in bt.bars.items()} if opens else bt.bars,
        instruments=core.instruments,
        strategies={s.id: type(s.strategy).__name__ for s in core.slots},
        initial_capital=bt.initial_capital, notes=list(bt.notes),
        indicators=[_read_after(read, opens) for slot in core.slots for read in slot.context.indicators_read()],
    )


def _drop_warmup(core, ts: np.ndarray, first: int) -> dict[str, int]:
    """Per instrument, its first bar at or after ``ts[first]`` (empty when ``first`` is 0); each
    fill's ``bar`` is moved back by ``first`` onto the result's timeline ``ts[first:]``."""
    if not first:
        return {}
    for fill in core.broker.fills:
        fill.bar -= first
    start = ts[first]
    return {inst: int(np.searchsorted(h.column("ts")[:h.length], start)) for inst, h in core.histories.items()}


def _read_after(read, opens: dict[str, int]):
    """An indicator series without its warm-up bars, so that it lines up with the result's bars."""
    i = opens.get(read.instrument)
    return read._replace(outputs={k: v[i:] for k, v in read.outputs.items()}) if i else read


def _close_on_timeline(close: np.ndarray, own_ts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    if len(own_ts) == len(ts) and own_ts[0] == ts[0] and own_ts[-1] == ts[-1]:
        return close
    idx = np.searchsorted(own_ts, ts, side="right") - 1
    out = close[np.clip(idx, 0, None)].astype(float)
    out[idx < 0] = 0.0  # before the first bar nobody can hold the instrument
    return out


class _FillColumns:
    """The fills of a run as numpy columns, built in one pass per field (no tuple per fill)."""

    def __init__(self, fills, n: int) -> None:
        # A fill booked after the last candle closed (a live fill reconciled on a restart when no
        # candle follows) belongs to the last bar: its cash and position count at the last close.
        k = len(fills)

        def column(name: str, dtype) -> np.ndarray:
            return np.fromiter(map(attrgetter(name), fills), dtype=dtype, count=k)

        self.bar = np.minimum(column("bar", np.int64), max(n - 1, 0))
        quantity = column("quantity", float)
        buy = np.fromiter(map(is_, map(attrgetter("side"), fills), repeat(_BUY)), dtype=bool, count=k)
        self.signed = np.where(buy, quantity, -quantity)
        self.cash_flow = -self.signed * column("price", float) - column("commission", float)
        self.strategy = np.array(list(map(attrgetter("strategy_id"), fills)), dtype=object)
        self.instrument = np.array(list(map(attrgetter("instrument"), fills)), dtype=object)


def _by_instrument(instrument: np.ndarray, listed, bars: np.ndarray, amounts: np.ndarray):
    """``(instrument, bars, amounts)`` for each listed instrument, then each other one with fills,
    in order of first fill: the fills grouped by instrument with one stable sort, not one scan of
    every fill per instrument."""
    names = instrument.tolist()
    order = dict.fromkeys([*listed, *names])
    if len(order) == 1:
        inst, = order
        yield inst, bars, amounts
        return
    code_of = {inst: k for k, inst in enumerate(order)}
    codes = np.fromiter(map(code_of.__getitem__, names), dtype=np.intp, count=len(names))
    by = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by], np.arange(len(order) + 1))
    bars, amounts = bars[by], amounts[by]
    for k, inst in enumerate(order):
        a, b = bounds[k], bounds[k + 1]
        yield inst, bars[a:b], amounts[a:b]


_BUY = OrderSide.BUY
_SIDES = np.array(["SHORT", "LONG"], dtype=object)


def _cumulative(bars: np.ndarray, amounts: np.ndarray, n: int) -> np.ndarray:
    """Running total over the timeline of amounts booked at the given bars."""
    if not len(bars):
        return np.zeros(n)
    return np.cumsum(np.bincount(bars, weights=amounts, minlength=n)[:n])


def trade_columns(rows: list[tuple], n: int | None = None, first: int = 0) -> dict[str, np.ndarray]:
    """Round trips (ledger tuples, ``TRADE_FIELDS``) as ``RunResult.trade_columns``: numpy columns
    with times and durations in UTC nanoseconds; with ``n`` (the timeline's length) bars past its
    end are taken as its last bar, as ``_FillColumns`` takes them; ``first``, the warm-up
    instants left out of the timeline (``build_result``), is taken off every bar."""
    if not rows:
        return empty_trade_columns()
    raw = dict(zip(TRADE_FIELDS, zip(*rows)))
    out = {name: np.array(raw[name], dtype=object) for name in ("strategy", "instrument")}
    size = np.array(raw["size"], dtype=np.int64)
    out["side"] = _SIDES[(size > 0).view(np.int8)]  # two shared str objects, not one per trade
    out["size"] = size
    out["entry_time"] = np.array(raw["entry_ts"], dtype=np.int64)
    out["exit_time"] = np.array(raw["exit_ts"], dtype=np.int64)
    for name in ("entry_price", "exit_price", "pnl", "return_pct", "commission"):
        out[name] = np.array(raw[name], dtype=float)
    out["duration"] = out["exit_time"] - out["entry_time"]
    for name in ("entry_bar", "exit_bar"):
        out[name] = np.array(raw[name], dtype=np.int64) - first
        if n is not None:
            out[name] = np.minimum(out[name], max(n - 1, 0))
    return {name: out[name] for name in TRADE_COLUMNS}


def _buy_and_hold_starts(core, opens: dict[str, int]) -> dict[str, int]:
    """Per instrument, the earliest warm-up bar among the strategies that trade it, at the
    earliest its first bar after the run's warm-up bars (``opens``)."""
    starts: dict[str, int] = {}
    for slot in core.slots:
        for inst in slot.instruments:
            w = slot.context.warmup.get(inst, 0)
            starts[inst] = min(starts.get(inst, w), w)
    for inst, h in core.histories.items():
        starts[inst] = min(max(starts.get(inst, 0), opens.get(inst, 0)), h.length - 1)
    return starts


def _benchmark(core, closes, starts, opens, capital, ts) -> tuple[np.ndarray, float, np.ndarray]:
    """Buy & hold of the strategies' own instruments, equally weighted: the option contracts a
    strategy picks from (``data.options``) are its trades, not its market."""
    held = []
    market = []
    returns = []
    listed = {inst for slot in core.slots for inst in slot.instruments}
    for inst, h in core.histories.items():
        if listed and inst not in listed:
            continue
        c = h.column("close")
        first = starts[inst]
        entry = c[first]
        returns.append(c[-1] / entry - 1)
        on_tl = closes[inst]
        held.append(_relative(on_tl, int(np.searchsorted(ts, h.ts_mv[first])), entry))
        i0 = opens.get(inst, 0)  # the instrument's first bar that traded
        market.append(_relative(on_tl, int(np.searchsorted(ts, h.ts_mv[i0])), c[i0]))
    benchmark = capital * _mean(held)
    mkt = _mean(market)
    return benchmark, float(np.mean(returns)), np.log(mkt[1:] / mkt[:-1])


def _mean(series: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of equal-length series, added in order as ``np.mean(series, axis=0)``
    adds them (the same bits) without first copying them into one (instruments, bars) array."""
    if len(series) == 1:
        return series[0]
    total = series[0] + series[1]
    for s in series[2:]:
        total += s
    total /= len(series)
    return total


def _relative(values: np.ndarray, begin: int, base: float) -> np.ndarray:
    """``values / base`` from ``begin`` on, 1 before it."""
    if begin == 0:
        return values / base
    out = np.ones(len(values))
    out[begin:] = values[begin:] / base
    return out
