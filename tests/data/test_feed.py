"""Feeds deliver candles through ``candles_from_ticks``: the replayed ticks give back the bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from algocli.data.csv_feed import load_csv
from algocli.data.feed import candles_from_ticks
from algocli.sandbox.replay import bar_ticks

ROOT = Path(__file__).resolve().parents[2]


def test_candles_from_ticks_rebuilds_the_bars_released_by_later_ticks():
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", "NSE_EQ:2885").slice(0, 60)
    got = []
    on_tick = candles_from_ticks(got.append, "5m")
    path = bar_ticks(bars)
    for i in range(len(path)):
        on_tick(path.tick(i))
    # 60 one-minute bars make 12 five-minute candles; the last is still forming (no later tick)
    assert len(got) == 11
    starts = np.array([c.start for c in got])
    np.testing.assert_array_equal(starts, bars.ts[:55:5])
    np.testing.assert_allclose([c.high for c in got], bars.high[:55].reshape(11, 5).max(axis=1))
    np.testing.assert_allclose([c.close for c in got], bars.close[4:55:5])
    assert [c.volume for c in got] == bars.volume[:55].reshape(11, 5).sum(axis=1).astype(int).tolist()
