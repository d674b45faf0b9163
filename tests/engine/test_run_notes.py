"""Run notes on data that make a figure less exact than it looks (``algocli.engine.run_notes``):
an expiry settlement priced before the session close, and fills that waited for a sparse contract's bar.

Expectations are worked out by hand from the bars below: 15-minute bars from 09:15 IST, the last
one at 15:15 (it ends at the 15:30 close; 15:40 from 2026-08-03 per the NSE calendar the package ships).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from algocli.broker.fill_models import NextOpen
from algocli.data.history import Bars
from algocli.domain.models import Interval
from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.engine.backtest import Backtest
from helpers import Scripted
from engine.options_fixtures import LOT, UNDER, index, option, option_name


def _bars(name: str, day: date, minutes: list[int], closes: list[float]) -> Bars:
    """Bars starting ``minutes`` after 09:15 IST on ``day``; each opens at the previous close."""
    ts = np.array([ist_midnight_ns(day) + (555 + m) * MINUTE_NS for m in minutes], dtype=np.int64)
    c = np.array(closes, dtype=float)
    o = np.r_[c[0], c[:-1]]
    return Bars(name, ts, o, np.maximum(o, c) + 1.0, np.minimum(o, c) - 1.0, c, np.full(len(c), 1000.0))


def _expiry_run(day: date, under_minutes: list[int]):
    """Long one lot of the 23200 CE from the day's first bar; the index's bars at ``under_minutes``."""
    closes = [24300.0 + 5 * k for k in range(len(under_minutes))]
    ce = option(day, 23200, "CE")
    bars = {UNDER: _bars(UNDER, day, under_minutes, closes),
            ce.hrn: _bars(ce.hrn, day, under_minutes, [c - 23200 for c in closes])}
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), interval=Interval.MINUTE_15,
                  instruments={UNDER: index()}, default_product="MARGIN", universe=[ce])
    bt.add_strategy(Scripted({0: lambda ctx, c: ctx.buy(ce.hrn, LOT)}), [UNDER], "s")
    return bt, bt.run(), closes[-1]


def test_an_expiry_settled_on_data_that_end_before_the_close_is_noted():
    day = date(2024, 6, 27)
    bt, _, _ = _expiry_run(day, list(range(0, 361, 15)))  # 09:15 ... 15:15 is 0 ... 360
    bt2, result, last = _expiry_run(day, list(range(0, 346, 15)))  # cut at 15:00
    settled = [f for f in result.fills if f.ts == result.fills[-1].ts][-1]
    assert last == 24415.0 and settled.price == pytest.approx(last - 23200)  # still the last price known
    assert not any("session close" in n for n in bt.notes)  # the 15:15 bar ends at the close
    note = [n for n in bt2.notes if "session close" in n]
    assert note == [f"{option_name(day, 23200, 'CE')} was settled at expiry against {UNDER} at 24,415.00, the close "
                    "of its last bar on 2024-06-27 (15:00-15:15), not at the 15:30 session close: the data of that "
                    "day end early and nothing later is known"]


def test_the_1540_close_from_august_2026_makes_a_1515_bar_early():
    day = date(2026, 9, 29)  # a Tuesday expiry after NSE moved the F&O close to 15:40
    bt, _, _ = _expiry_run(day, list(range(0, 361, 15)))
    assert any("(15:15-15:30), not at the 15:40 session close" in n for n in bt.notes)


def _sparse_run(contract_minutes: list[int]):
    """The index every 15 min from 09:15 to 12:00; the strategy buys the CE on the 09:30 bar."""
    day = date(2024, 6, 21)
    ce = option(date(2024, 6, 27), 23200, "CE")
    under = list(range(0, 166, 15))
    bars = {UNDER: _bars(UNDER, day, under, [23500.0 + k for k in range(len(under))]),
            ce.hrn: _bars(ce.hrn, day, contract_minutes, [140.0 + k for k in range(len(contract_minutes))])}
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), interval=Interval.MINUTE_15,
                  instruments={UNDER: index()}, default_product="MARGIN", universe=[ce])
    bt.add_strategy(Scripted({1: lambda ctx, c: ctx.buy(ce.hrn, LOT)}), [UNDER], "s")
    return bt, bt.run()


def test_a_fill_that_waited_for_the_contracts_next_bar_is_noted():
    bt, result = _sparse_run([0, 15, 120, 135])  # no 09:45 to 11:00 bars: the 09:45 order fills at 11:15
    fill, = result.fills[:1]
    assert fill.price == 141.0  # the rule is unchanged: the 11:15 bar's open (the 09:30 close)
    note = [n for n in bt.notes if "no bar in between" in n]
    assert note == [f"1 order(s) filled later than the run's next bar because their contract had no bar in between "
                    f"(worst 1 h 30 min late); first: {option_name(date(2024, 6, 27), 23200, 'CE')} ordered on the "
                    "2024-06-21 09:30 bar, due at 2024-06-21 09:45, filled at 2024-06-21 11:15 at 141.00"]


def test_a_fill_on_the_next_bar_is_not_noted():
    bt, result = _sparse_run([0, 15, 30, 120])
    assert result.fills[0].price == 141.0 and not any("no bar in between" in n for n in bt.notes)
