"""``data.warmup``: bars before ``data.start`` feed the indicators, never trade, and leave no trace
in the result, which equals the tail of a longer run that made no trade in the warm-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from algocli.analytics.stats import compute_metrics
from algocli.config.run import load_run_config
from algocli.domain.models import IST_OFFSET_NS
from algocli.engine.assemble import assemble_backtest
from algocli.engine.backtest import Backtest
from helpers import DAY_NS, T0, Scripted, make_bars

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data"
CAPITAL = 100_000.0


def _dates(n: int, name: str = "NSE_EQ_1333.csv") -> list[str]:
    """The first ``n`` session dates of a bundled file (real NSE sessions, so the calendar check passes)."""
    lines = (SAMPLE / name).read_text(encoding="utf-8").splitlines()[1:n + 1]
    return [line.split(",")[0] for line in lines]


def _folder(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A data folder with instruments.csv and the given files (name -> text), else copies of the samples."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copyfile(SAMPLE / "instruments.csv", folder / "instruments.csv")
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    if files is None:
        for name in ("NSE_EQ_1333.csv", "NSE_EQ_1594.csv"):
            shutil.copyfile(SAMPLE / name, folder / name)
    return folder


def _run(tmp_path: Path, folder: Path, data: dict, strategies: list[dict], name: str = "run.yaml"):
    doc = {"name": "warmup", "interval": "1d", "initial_capital": CAPITAL,
           "data": {"feed": "csv", "path": str(folder), **data},
           "broker": {"name": "simulated", "commission_rate": 0.0003}, "fill_model": "next_open",
           "strategies": strategies, "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assembled = assemble_backtest(load_run_config(path), str(path))
    return assembled.backtest, assembled.backtest.run()


def _trend(instruments: list[str], **params) -> dict:
    return {"class": "engine.warmup_strategies:TrendAfter", "instruments": instruments, "params": params}


def _day(ns) -> str:
    return str(np.datetime64(int(ns) + IST_OFFSET_NS, "ns").astype("datetime64[D]"))


# --------------------------------------------------------------------------- hand-checked


@pytest.fixture
def ramp(tmp_path) -> Path:
    """40 sessions: closes 100 on bars 0-19, then 101, 102, ... (bar i closes at 100 + i - 19); open = close."""
    days = _dates(40)
    rows = ["timestamp,open,high,low,close,volume"]
    for i, day in enumerate(days):
        c = 100.0 if i < 20 else 100.0 + i - 19
        rows.append(f"{day},{c},{c + 0.5},{c - 0.5},{c},1000")
    return _folder(tmp_path, {"NSE_EQ_1333.csv": "\n".join(rows) + "\n"})


def test_the_first_trade_comes_on_the_first_bar_with_warmup_and_after_it_without(tmp_path, ramp):
    days = _dates(40)
    strategy = [_trend(["NSE:HDFCBANK"], fast=1, slow=5, quantity=10)]
    # Warm-up 5: on bar 20, the first that trades, SMA(5) = (4 * 100 + 101) / 5 = 100.2 < 101, so it buys,
    # filled at bar 21's open (102); the ramp never turns, so the position is closed at the last close (120).
    bt, warm = _run(tmp_path, ramp, {"start": days[20], "end": days[39], "warmup": 5}, strategy)
    assert _day(warm.ts[0]) == days[20] and len(warm.ts) == 20
    assert len(warm.bars["NSE:HDFCBANK"]) == 20 and _day(warm.bars["NSE:HDFCBANK"].ts[0]) == days[20]
    t = warm.trade_columns
    assert [_day(x) for x in t["entry_time"]] == [days[21]] and t["entry_price"].tolist() == [102.0]
    assert t["exit_price"].tolist() == [120.0] and (t["entry_bar"].tolist(), t["exit_bar"].tolist()) == ([1], [19])
    assert [f.bar for f in warm.fills] == [1, 19]
    assert warm.equity[0] == CAPITAL and warm.equity[-1] == pytest.approx(CAPITAL + t["pnl"][0])
    # buy & hold starts on the first traded bar: the indicators are defined there
    assert warm.metrics["buy_and_hold_return_pct"] == pytest.approx((120 / 101 - 1) * 100)
    assert warm.benchmark[0] == CAPITAL and warm.benchmark[-1] == pytest.approx(CAPITAL * 120 / 101)
    # the report's indicator series line up with the window's bars
    (read,) = [r for r in warm.indicators if r.params == {"timeperiod": 5}]
    assert read.outputs["real"][0] == pytest.approx(100.2) and len(read.outputs["real"]) == 20
    # Without warm-up, SMA(5) is first defined on bar 24 (close 105 > 103): bought at bar 25's open, 106.
    _, cold = _run(tmp_path, ramp, {"start": days[20], "end": days[39]}, strategy, "cold.yaml")
    assert [_day(x) for x in cold.trade_columns["entry_time"]] == [days[25]]
    assert cold.trade_columns["entry_price"].tolist() == [106.0]
    assert cold.metrics["buy_and_hold_return_pct"] == pytest.approx((120 / 105 - 1) * 100)


# --------------------------------------------------------------------------- the tail of a longer run


def _expected_tail(long, k: int, closes: dict[str, np.ndarray], firsts: dict[str, int]) -> dict:
    """The statistics of ``long``'s bars from ``k`` on, worked out from its arrays: buy & hold
    bought at each instrument's first close from there (equal weights)."""
    trades = {name: (v - k if name in ("entry_bar", "exit_bar") else v) for name, v in long.trade_columns.items()}
    bh = np.mean([c[-1] / c[firsts[i]] - 1 for i, c in closes.items()])
    ts = long.ts[k:]
    market = []
    for inst, c in closes.items():
        own = long.bars[inst].ts
        on_tl = c[np.clip(np.searchsorted(own, ts, side="right") - 1, 0, None)]
        market.append(np.where(ts >= own[firsts[inst]], on_tl / c[firsts[inst]], 1.0))
    mkt = np.mean(market, axis=0)
    return compute_metrics(long.equity[k:], ts, trades, buy_and_hold_return=float(bh),
                           market_log_returns=np.log(mkt[1:] / mkt[:-1]),
                           commissions=sum(f.commission for f in long.fills), initial_capital=CAPITAL)


def _assert_tail(warm, long, k: int, expected: dict) -> None:
    assert warm.ts.tolist() == long.ts[k:].tolist()
    np.testing.assert_array_equal(warm.equity, long.equity[k:])
    np.testing.assert_array_equal(warm.cash, long.cash[k:])
    for sid, pnl in warm.strategy_pnl.items():
        np.testing.assert_array_equal(pnl, long.strategy_pnl[sid][k:])
    for name, col in warm.trade_columns.items():
        theirs = long.trade_columns[name]
        assert np.array_equal(col, theirs - k if name in ("entry_bar", "exit_bar") else theirs), name
    assert [(f.bar, f.ts, f.price, f.quantity) for f in warm.fills] == \
           [(f.bar - k, f.ts, f.price, f.quantity) for f in long.fills]
    assert warm.metrics.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, float):
            assert warm.metrics[name] == pytest.approx(value, rel=1e-9, nan_ok=True), name
        else:
            assert str(warm.metrics[name]) == str(value), name


def test_a_warmup_run_equals_the_tail_of_a_longer_run_without_trades_before(tmp_path):
    folder = _folder(tmp_path)
    params = dict(fast=10, slow=30, after="2020-01-01")
    _, long = _run(tmp_path, folder, {"start": "2019-01-01", "end": "2020-12-31"}, [_trend(["NSE:HDFCBANK"], **params)])
    k = int(np.searchsorted(long.ts, _midnight("2020-01-01")))
    assert len(long.trade_columns["pnl"]) >= 3 and long.trade_columns["entry_bar"].min() >= k  # nothing before
    # 60 bars of warm-up: enough for SMA(30), and fewer than the longer run had, so the slicing is tested too
    _, warm = _run(tmp_path, folder, {"start": "2020-01-01", "end": "2020-12-31", "warmup": 60},
                   [_trend(["NSE:HDFCBANK"], **params)], "warm.yaml")
    close = long.bars["NSE:HDFCBANK"].close
    _assert_tail(warm, long, k, _expected_tail(long, k, {"NSE:HDFCBANK": close}, {"NSE:HDFCBANK": k}))
    np.testing.assert_allclose(warm.benchmark, CAPITAL * close[k:] / close[k])


def _midnight(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64)) - IST_OFFSET_NS


def test_a_strategy_without_indicators_runs_the_same_with_or_without_warmup(tmp_path):
    folder = _folder(tmp_path)
    weekdays = [{"class": "engine.warmup_strategies:Weekdays", "instruments": ["NSE:HDFCBANK"]}]
    _, plain = _run(tmp_path, folder, {"start": "2021-03-01", "end": "2021-09-30"}, weekdays)
    _, warm = _run(tmp_path, folder, {"start": "2021-03-01", "end": "2021-09-30", "warmup": 250}, weekdays, "w.yaml")
    assert len(plain.trade_columns["pnl"]) > 10
    assert warm.ts.tolist() == plain.ts.tolist() and warm.equity.tolist() == plain.equity.tolist()
    assert warm.benchmark.tolist() == plain.benchmark.tolist()
    assert {k: str(v) for k, v in warm.metrics.items()} == {k: str(v) for k, v in plain.metrics.items()}
    for name, col in warm.trade_columns.items():
        assert np.array_equal(col, plain.trade_columns[name]), name


# --------------------------------------------------------------------------- several instruments


def test_several_instruments_with_warmup_equal_the_tail_of_a_longer_run(tmp_path):
    """INFY misses every fifth session, so the two calendars differ around the start too."""
    folder = _folder(tmp_path)
    infy = folder / "NSE_EQ_1594.csv"
    lines = infy.read_text(encoding="utf-8").splitlines()
    infy.write_text("\n".join([lines[0]] + [x for i, x in enumerate(lines[1:]) if i % 5 != 2]) + "\n", encoding="utf-8")
    both = ["NSE:HDFCBANK", "NSE:INFY"]
    params = dict(fast=5, slow=20, after="2021-01-01")
    _, long = _run(tmp_path, folder, {"start": "2020-06-01", "end": "2021-12-31"}, [_trend(both, **params)])
    k = int(np.searchsorted(long.ts, _midnight("2021-01-01")))
    assert set(long.trade_columns["instrument"]) == set(both) and long.trade_columns["entry_bar"].min() >= k
    bt, warm = _run(tmp_path, folder, {"start": "2021-01-01", "end": "2021-12-31", "warmup": 40},
                    [_trend(both, **params)], "warm.yaml")
    closes = {i: long.bars[i].close for i in both}
    firsts = {i: int(np.searchsorted(long.bars[i].ts, long.ts[k])) for i in both}
    _assert_tail(warm, long, k, _expected_tail(long, k, closes, firsts))
    for inst in both:  # each instrument's own bars: its 40 warm-up bars are gone from the result
        assert warm.bars[inst].ts.tolist() == long.bars[inst].ts[firsts[inst]:].tolist()
        assert len(bt.bars[inst]) == len(warm.bars[inst]) + 40


def test_an_instrument_without_a_bar_at_the_start_is_seen_at_its_last_warmup_bar():
    a = make_bars([(100, 101, 99, 100 + i) for i in range(10)], "NSE_EQ:A")
    b_rows = [(50, 51, 49, 50 + i) for i in range(10)]
    b = make_bars(b_rows, "NSE_EQ:B")
    keep = np.array([i != 5 for i in range(10)])  # B has no bar on day 5, the first that trades
    b = type(b)("NSE_EQ:B", *(x[keep] for x in (b.ts, b.open, b.high, b.low, b.close, b.volume)))
    bt = Backtest({"NSE_EQ:A": a, "NSE_EQ:B": b}, initial_capital=CAPITAL, trade_from=T0 + 5 * DAY_NS)
    seen_b = []
    s = Scripted({i: (lambda ctx, c: seen_b.append(ctx.get_candle("NSE_EQ:B").close)) for i in range(10)})
    bt.add_strategy(s, ["NSE_EQ:A"])
    result = bt.run()
    assert s.seen == [5, 6, 7, 8, 9]  # no on_candle on warm-up bars
    assert seen_b == [54.0, 56.0, 57.0, 58.0, 59.0]  # on day 5, B's day-4 bar is its last
    assert len(result.ts) == 5 and result.bars["NSE_EQ:B"].close.tolist() == [56.0, 57.0, 58.0, 59.0]


# --------------------------------------------------------------------------- refusals


def test_too_few_bars_before_start_is_a_data_error_naming_the_fix(tmp_path):
    from algocli.errors import DataError

    folder = _folder(tmp_path)
    days = _dates(40)
    with pytest.raises(DataError) as err:
        _run(tmp_path, folder, {"start": days[6], "end": "2019-12-31", "warmup": 20}, [_trend(["NSE:HDFCBANK"])])
    later = (np.datetime64(days[19]) + 1).astype(str)  # the day after the 20th bar
    assert str(err.value).endswith(f"data.warmup: 20 needs 20 1d bars before data.start {days[6]}, but the file has "
                                   f"6 (from {days[0]}); lower data.warmup to 6, set data.start to {later} or later, "
                                   "or add older bars")
    assert "\n" not in str(err.value)


def test_trade_from_after_the_last_bar_is_refused():
    with pytest.raises(ValueError, match="no bar at or after trade_from"):
        Backtest({"NSE_EQ:A": make_bars([(1, 1, 1, 1)] * 3, "NSE_EQ:A")}, initial_capital=CAPITAL,
                 trade_from=T0 + 3 * DAY_NS)

