"""Small intraday backtests with a risk controller, and readers for what they record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from algocli.analytics.result import RunResult
from algocli.broker.costs import PercentCommission
from algocli.data.history import Bars
from algocli.engine.backtest import Backtest
from algocli.persistence.artifacts import write_orders
from algocli.risk import RiskConfig, RiskController, attach_risk
from helpers import T0, Scripted

INST = "NSE_EQ:1"
SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS
DAY_NS = 86_400 * SECOND_NS


def ist(hhmm: str, day: int = 0, seconds: int = 0) -> int:
    """UTC ns of ``hhmm`` IST on 2024-01-02 plus ``day`` days."""
    h, m = map(int, hhmm.split(":"))
    return T0 + day * DAY_NS + (h * 60 + m) * MINUTE_NS + seconds * SECOND_NS


def bars_at(ts: list[int], closes: list[float], inst: str = INST) -> Bars:
    """Bars at the given instants; each opens at the previous close (the first at its own close)."""
    close = np.array(closes, dtype=float)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    return Bars(inst, np.array(ts, dtype=np.int64), open_, high, low, close, np.full(len(ts), 1000.0))


def minute_bars(start: str, closes: list[float], day: int = 0, step_s: int = 60, inst: str = INST) -> Bars:
    t0 = ist(start, day)
    return bars_at([t0 + k * step_s * SECOND_NS for k in range(len(closes))], closes, inst)


def run(script: dict, risk: dict | None, bars: Bars, capital: float = 1_000_000.0, fill_model=None,
        interval=None) -> tuple[RunResult, Scripted, RiskController | None]:
    """One scripted strategy ``s`` on ``bars`` with ``risk`` limits (None: no controller); with
    ``interval``, session times are judged at each candle's close, as a run of a definition does."""
    bt = Backtest({bars.instrument: bars}, initial_capital=capital, fill_model=fill_model,
                  cost_model=PercentCommission(0.0), interval=interval)
    strat = Scripted(script)
    bt.add_strategy(strat, [bars.instrument], "s")
    controller = attach_risk(bt.core, RiskConfig(**risk), state_path=None) if risk is not None else None
    return bt.run(), strat, controller


def orders_csv(result: RunResult, folder: Path) -> list[dict[str, str]]:
    """``orders.csv`` as the artifacts write it, read back as rows."""
    import csv

    path = write_orders(result, folder / "orders.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def statuses(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    """(side, quantity, status) per order, end-of-data close-outs left out."""
    return [(r["side"], r["quantity"], r["status"]) for r in rows if r["tag"] != "end-of-data close"]


def buy(q: int, limit: float | None = None, tag: str | None = None):
    return lambda ctx, c: ctx.buy(c.instrument, q, limit_price=limit, tag=tag)


def sell(q: int, limit: float | None = None, tag: str | None = None):
    return lambda ctx, c: ctx.sell(c.instrument, q, limit_price=limit, tag=tag)


def each(*actions):
    """Several actions on one bar, in order."""
    return lambda ctx, c: [a(ctx, c) for a in actions]
