"""Walk-forward stitching: the OOS windows compounded into one run, and its buy & hold.

Returns are compounded. Window k's equity curve is scaled so that it starts at the stitched
equity where window k-1 ended (the first window unscaled), so the stitched return is the
product of the windows' returns; the money figures of window k (trade P&L, commissions,
charges) are scaled by the same factor, so the statistics agree with the curve. Buy & hold is
one holding over the stitched bars (``buy_and_hold``), and alpha and beta regress on its bar
log returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Piece", "Stitched", "buy_and_hold", "stitch"]


@dataclass
class Piece:
    """What one OOS window adds to the stitched curve."""

    ts: np.ndarray
    equity: np.ndarray
    trades: dict[str, np.ndarray]
    commissions: float
    charges: dict[str, float]

    @classmethod
    def of_run(cls, result) -> Piece:
        """The piece of a finished OOS backtest (``RunResult``)."""
        from algocli.persistence.artifacts import charge_totals

        return cls(np.asarray(result.ts, dtype=np.int64), np.asarray(result.equity, dtype=float), result.trade_columns,
                   float(result.metrics["commissions"]), charge_totals(result.fills))

    @classmethod
    def in_cash(cls, ts: np.ndarray, capital: float, charge_names: list[str]) -> Piece:
        """A window spent in cash: flat equity, no trade."""
        from algocli.analytics.result import empty_trade_columns

        return cls(np.asarray(ts, dtype=np.int64), np.full(len(ts), float(capital)), empty_trade_columns(), 0.0,
                   dict.fromkeys(charge_names, 0.0))


@dataclass
class Stitched:
    """The OOS windows as one run."""

    ts: np.ndarray
    equity: np.ndarray
    benchmark: np.ndarray
    window: np.ndarray  # the window number of each bar
    factors: list[float]  # the scale of each window's money
    stats: dict  # results.csv's statistics, raw values (``compute_metrics`` + charges)


def stitch(pieces: list[Piece], initial_capital: float, benchmark: np.ndarray) -> Stitched:
    """Compound the pieces into one curve and compute its statistics (module docstring).

    Args:
        pieces: The OOS windows in time order.
        initial_capital: The run definition's starting cash.
        benchmark: Buy & hold over the stitched bars (``buy_and_hold``): one holding, not the
            windows' own chained, which would leave out each window's first bar's move.
    """
    from algocli.analytics.stats import compute_metrics

    equity, trades, factors = [], [], []
    offset, end_eq = 0, None
    for piece in pieces:
        k = 1.0 if end_eq is None else end_eq / piece.equity[0]
        # growth times the previous end, so each window starts exactly where the last one ended
        equity.append(piece.equity if end_eq is None else piece.equity / piece.equity[0] * end_eq)
        end_eq = equity[-1][-1]
        cols = dict(piece.trades)
        for name in ("entry_bar", "exit_bar"):
            cols[name] = np.asarray(cols[name], dtype=np.int64) + offset
        for name in ("pnl", "commission"):
            cols[name] = np.asarray(cols[name], dtype=float) * k
        trades.append(cols)
        factors.append(k)
        offset += len(piece.ts)
    ts = np.concatenate([p.ts for p in pieces])
    eq, bh = np.concatenate(equity), np.asarray(benchmark, dtype=float)
    merged = {name: np.concatenate([t[name] for t in trades]) for name in trades[0]}
    with np.errstate(divide="ignore", invalid="ignore"):
        market = np.log(bh[1:] / bh[:-1])
    stats = compute_metrics(eq, ts, merged, buy_and_hold_return=float(bh[-1] / bh[0] - 1), market_log_returns=market,
                            commissions=sum(p.commissions * k for p, k in zip(pieces, factors)),
                            initial_capital=initial_capital)
    for name in dict.fromkeys(k for p in pieces for k in p.charges):
        stats[name] = sum(p.charges.get(name, 0.0) * k for p, k in zip(pieces, factors))
    window = np.concatenate([np.full(len(p.ts), i + 1) for i, p in enumerate(pieces)])
    return Stitched(ts, eq, bh, window, factors, stats)


def buy_and_hold(bars: dict, instruments: list[str], ts: np.ndarray, capital: float) -> np.ndarray:
    """``capital`` held in ``instruments``, equally weighted and bought at their close on the first of
    ``ts`` (or on their own first bar after it), valued at each bar of ``ts`` at the last close.

    The stitched OOS windows' buy & hold: one holding from the first OOS bar to the last, every
    bar's move counted, the moves between two windows too.
    """
    held = []
    for inst in instruments:
        b = bars[inst]
        close = np.asarray(b.close, dtype=float)
        at = np.searchsorted(np.asarray(b.ts, dtype=np.int64), ts, side="right") - 1  # the last bar at or before
        priced = at >= 0
        first = int(np.argmax(priced))
        value = np.ones(len(ts))
        value[first:] = close[at[first:]] / close[at[first]]
        held.append(value)
    return capital * np.mean(held, axis=0)
