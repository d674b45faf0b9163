"""Run results built by hand for the report tests: bars, trades, equity and indicator reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from algocli.analytics.plotdata import drawdown_pct
from algocli.analytics.result import TRADE_COLUMNS, RunResult
from algocli.data.history import Bars
from algocli.domain.candle import IST
from algocli.domain.models import IST_OFFSET_NS, Fill, Instrument, Order, OrderSide, OrderStatus, OrderType
from algocli.strategy.context import IndicatorRead

INSTRUMENTS = ("NSE_EQ:1333", "NSE_EQ:2885")
STRATEGIES = {"sma": "SmaCrossover", "rsi": "RsiMeanReversion"}


# --------------------------------------------------------------------------- builders


#: The first of 64 weekdays without an NSE holiday (to 2020-08-21): bars there are sessions
NO_HOLIDAYS = "2020-05-26"


def daily_ts(n: int, start: str = "2023-01-02") -> np.ndarray:
    """UTC ns of ``n`` weekday bars starting 09:15 IST."""
    days = pd.bdate_range(start, periods=n)
    return days.as_unit("ns").asi8 + (9 * 60 + 15) * 60 * 10**9 - IST_OFFSET_NS


def minute_ts(n: int, start: str = "2015-01-01") -> np.ndarray:
    """UTC ns of ``n`` one-minute bars over 375-minute NSE sessions on weekdays."""
    per_day = 375
    days = pd.bdate_range(start, periods=-(-n // per_day)).as_unit("ns").asi8
    minutes = np.arange(per_day, dtype=np.int64) * 60 * 10**9
    ts = (days[:, None] + minutes[None, :]).ravel()[:n]
    return ts + (9 * 60 + 15) * 60 * 10**9 - IST_OFFSET_NS


def make_bars(instrument: str, ts: np.ndarray, seed: int, start_price: float = 1000.0) -> Bars:
    """A random-walk OHLCV series."""
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.01 if n < 10_000 else 0.0008, n)))
    open_ = np.r_[start_price, close[:-1]]
    spread = np.abs(rng.normal(0, 0.004, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1_000, 100_000, n).astype(np.float64)
    return Bars(instrument, ts, open_, high, low, close, volume)


def make_trades(bars: dict[str, Bars], n_trades: int, seed: int) -> pd.DataFrame:
    """Random long and short round trips over the given bars, with consistent P&L."""
    if n_trades == 0:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    rng = np.random.default_rng(seed)
    rows = []
    names = list(bars)
    per = -(-n_trades // len(names))
    for k, inst in enumerate(names):
        b = bars[inst]
        count = min(per, n_trades - k * per)
        entry = np.sort(rng.integers(0, max(1, len(b) - 20), count))
        exit_ = np.minimum(entry + rng.integers(1, 20, count), len(b) - 1)
        size = rng.integers(1, 50, count) * np.where(np.arange(count) % 3 == 1, -1, 1)  # long and short
        ep, xp = b.close[entry], b.close[exit_]
        pnl = size * (xp - ep)
        times = lambda idx: pd.DatetimeIndex(b.ts[idx], tz="UTC").tz_convert(IST)  # noqa: E731
        rows.append(pd.DataFrame({
            "strategy": np.array(list(STRATEGIES))[rng.integers(0, len(STRATEGIES), count)],
            "instrument": inst, "side": np.where(size > 0, "LONG", "SHORT"), "size": size,
            "entry_time": times(entry), "exit_time": times(exit_), "entry_price": ep, "exit_price": xp,
            "pnl": pnl, "return_pct": np.sign(size) * (xp / ep - 1), "commission": 0.0,
            "duration": times(exit_) - times(entry), "entry_bar": entry, "exit_bar": exit_,
        }))
    return pd.concat(rows, ignore_index=True)[TRADE_COLUMNS]


def make_result(n_bars: int = 300, n_trades: int = 12, *, intraday: bool = False, instruments=INSTRUMENTS,
                strategies=STRATEGIES, seed: int = 7, start: str = "2023-01-02") -> RunResult:
    """A realistic RunResult built directly: shared timeline, equity, benchmark, P&L per strategy.
    Its daily bars are on weekdays from ``start``: NSE holidays among them are not skipped."""
    ts = minute_ts(n_bars) if intraday else daily_ts(n_bars, start)
    bars = {inst: make_bars(inst, ts, seed + i, 1000.0 * (i + 1)) for i, inst in enumerate(instruments)}
    capital = 1_000_000.0
    rng = np.random.default_rng(seed)
    pnl = {sid: np.cumsum(rng.normal(50, 2_000 if n_bars < 10_000 else 100, n_bars)) for sid in strategies}
    equity = capital + sum(pnl.values()) if pnl else np.full(n_bars, capital)
    first = next(iter(bars.values()))
    benchmark = capital * first.close / first.close[0]
    index = pd.DatetimeIndex(ts, tz="UTC").tz_convert(IST)
    metrics = {
        "start_date": index[0], "end_date": index[-1], "duration": index[-1] - index[0],
        "total_return_pct": float(equity[-1] / capital - 1) * 100, "sharpe_ratio": 1.2345,
        "sortino_ratio": float("nan"), "max_drawdown_pct": float(drawdown_pct(equity).min()),
        "max_drawdown_duration": pd.Timedelta(days=41, hours=3), "total_trades": n_trades,
        "profit_factor": float("inf"), "kelly_criterion": 0.01234, "final_equity": float(equity[-1]),
    }
    return RunResult(
        name="report-test", index=index, equity=equity, cash=equity.copy(), benchmark=benchmark,
        strategy_pnl=pnl, metrics=metrics, trades=make_trades(bars, n_trades, seed), orders=[], fills=[],
        bars=bars, instruments={i: Instrument(i) for i in instruments}, strategies=dict(strategies),
        initial_capital=capital, notes=["1 position closed at the last bar"],
    )


def expected_charts(result: RunResult) -> int:
    """Equity, drawdown, one candle chart per instrument, monthly returns, trade returns."""
    return 4 + len(result.bars)


def line_lengths(figures) -> dict[str, list[int]]:
    """Points per scatter line trace, by figure key."""
    return {key: [len(t["y"]) for t in fig["data"] if t["type"] == "scatter" and t.get("mode") == "lines"]
            for key, fig in figures}


def read_of(bars: Bars, name: str, group: str, strategy: str = "sma", price: str | None = None,
            **params) -> IndicatorRead:
    """What ``StrategyContext.indicators_read`` returns for one TA-Lib call on ``bars``' closes."""
    out = getattr(talib, name)(bars.close, **params)
    outputs = out if isinstance(out, tuple) else (out,)
    names = {"BBANDS": ["upperband", "middleband", "lowerband"]}.get(name, ["real"])
    styles = {"upperband": "Values represent an upper limit", "middleband": "Line",
              "lowerband": "Values represent a lower limit"}
    return IndicatorRead(strategy, bars.instrument, name, params, price, group, dict(zip(names, outputs)),
                         {n: styles.get(n, "Line") for n in names})


def charged_fill(fill_id: str, order_id: str, instrument: str, side: OrderSide, bar: int, ts: int, price: float,
                 **kinds: float) -> Fill:
    """A fill of 10 shares with the given charges by kind (``commission`` is their sum)."""
    return Fill(fill_id, order_id, "sma", instrument, side, 10, price, round(sum(kinds.values()), 2), ts, bar, **kinds)


def with_charges(result: RunResult, *, tag: str | None = None, estimated: bool = False) -> RunResult:
    """``result`` with a round trip on its first instrument charged by kind (brokerage 20 + 20, STT 2.50,
    exchange 1.00 + 1.10, stamp 0.45, GST 7.59 + 7.60: 60.24 in all); the exit order carries ``tag``."""
    inst = next(iter(result.bars))
    ts = result.ts
    buy = charged_fill("F1", "O1", inst, OrderSide.BUY, 10, int(ts[10]), 1000.0,
                       brokerage=20.0, exchange_txn=1.0, stamp=0.45, gst=7.59)  # 29.04
    sell = charged_fill("F2", "O2", inst, OrderSide.SELL, 20, int(ts[20]), 1010.0,
                        brokerage=20.0, stt=2.5, exchange_txn=1.1, gst=7.60)  # 31.20
    buy.estimated = sell.estimated = estimated
    orders = [Order("O1", "sma", inst, OrderSide.BUY, 10, OrderType.MARKET, None, OrderStatus.FILLED, int(ts[10]), 10),
              Order("O2", "sma", inst, OrderSide.SELL, 10, OrderType.MARKET, None, OrderStatus.FILLED, int(ts[20]), 20,
                    tag=tag)]
    result.fills = [buy, sell]
    result.orders = orders
    return result
