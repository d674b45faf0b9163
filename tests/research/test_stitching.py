"""The stitched OOS run's buy & hold: one holding from the first OOS bar to the last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from algocli.data.history import Bars
from algocli.research.space import Space
from algocli.research.stitching import buy_and_hold
from algocli.research.walkforward import Span, run_walkforward

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400 * 10**9


def _bars(name: str, days: list[int], closes: list[float]) -> Bars:
    c = np.array(closes, dtype=float)
    return Bars(name, np.array(days, dtype=np.int64) * DAY, c, c, c, c, np.ones(len(c)))


def test_buy_and_hold_counts_every_move_and_weighs_instruments_equally():
    bars = {"A": _bars("A", [1, 2, 3, 4], [100.0, 110.0, 121.0, 110.0]),
            "B": _bars("B", [2, 4], [50.0, 25.0])}  # B trades from day 2 on, and not on day 3
    ts = np.array([1, 2, 3, 4], dtype=np.int64) * DAY
    value = buy_and_hold(bars, ["A", "B"], ts, 1000.0)
    # A from 100; B bought at its first close (50), held flat until it trades again
    assert value.tolist() == pytest.approx([1000.0, 0.5 * 1000 * (1.1 + 1.0), 0.5 * 1000 * (1.21 + 1.0),
                                            0.5 * 1000 * (1.1 + 0.5)])
    assert buy_and_hold(bars, ["A"], ts[2:], 1.0).tolist() == pytest.approx([1.0, 110.0 / 121.0])


def test_the_stitched_buy_and_hold_is_the_instruments_return_over_the_oos_span(tmp_path):
    """Ten 6-month test windows: chaining each window's own buy & hold (flat on its first bar)
    lost the moves between windows, 33.94 % over 2020-2024 reading as 27.22 %."""
    cfg = yaml.safe_load((REPO / "configs" / "sma.yaml").read_text(encoding="utf-8"))
    cfg["data"].update(path=str(REPO / "data"))
    cfg["output"]["dir"] = str(tmp_path / "run")
    path = tmp_path / "sma.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    wf = run_walkforward(path, Space.parse(["fast_period=5,10", "slow_period=20,40"]), train=Span(12, "M"),
                         test=Span(6, "M"), splits=4)
    closes = pd.read_csv(REPO / "data" / "NSE_EQ_1333.csv", index_col="timestamp", parse_dates=True)["close"]
    first, last = (pd.Timestamp(int(t) + 19_800 * 10**9).tz_localize(None).normalize()
                   for t in (wf.stitched.ts[0], wf.stitched.ts[-1]))  # IST dates of the first and last OOS bar
    expected = 100 * (closes[last] / closes[first] - 1)
    assert len(wf.windows) >= 8
    assert wf.stitched.stats["buy_and_hold_return_pct"] == pytest.approx(expected, rel=1e-9)
    window_starts = np.flatnonzero(np.diff(wf.stitched.window)) + 1
    moves = wf.stitched.benchmark[window_starts] / wf.stitched.benchmark[window_starts - 1]
    assert not np.allclose(moves, 1.0)  # a window's first bar moves with the market, as any other bar
