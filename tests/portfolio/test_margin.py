"""The money a run's positions block, bar by bar."""

from __future__ import annotations

import numpy as np

from algocli.domain.models import Fill, OrderSide
from algocli.portfolio.margin import blocked_series


def _fill(bar: int, qty: int, side: OrderSide = OrderSide.BUY) -> Fill:
    return Fill(f"F{bar}", f"O{bar}", "s", "X", side, qty, 100.0, 0.0, bar * 60, bar)


def test_a_fill_in_a_candle_that_never_closed_blocks_at_the_last_bar():
    index = np.arange(4, dtype=np.int64) * 60
    closes = {"X": (index, np.array([10.0, 11.0, 12.0, 13.0]))}
    # 5 bought on bar 1, 3 more in the candle after the last one (the run stopped inside it)
    out = blocked_series([_fill(1, 5), _fill(4, 3)], index, closes, {}, lambda _: "CNC", None)
    assert out.tolist() == [0.0, 5 * 11.0, 5 * 12.0, 8 * 13.0]
