"""Builders shared by the tests: small hand-made bar series and scripted strategies."""

from __future__ import annotations

import numpy as np

from algocli import BaseStrategy
from algocli.data.history import Bars

DAY_NS = 86_400 * 10**9
T0 = 1_704_133_800 * 10**9  # 2024-01-01 18:30 UTC = 2024-01-02 00:00 IST


def make_bars(rows: list[tuple[float, float, float, float]], inst: str = "NSE_EQ:1", volume: float = 1000.0,
              start: int = T0, step: int = DAY_NS) -> Bars:
    """Bars from (open, high, low, close) rows, one per day."""
    arr = np.array(rows, dtype=float)
    n = len(arr)
    ts = start + step * np.arange(n, dtype=np.int64)
    return Bars(inst, ts, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(), np.full(n, volume))


def random_bars(n: int, seed: int = 1, inst: str = "NSE_EQ:1", start_price: float = 100.0) -> Bars:
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = np.r_[start_price, close[:-1]] * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    ts = T0 + DAY_NS * np.arange(n, dtype=np.int64)
    return Bars(inst, ts, open_, high, low, close, rng.integers(1000, 5000, n).astype(float))


class Scripted(BaseStrategy):
    """Runs ``script[bar_index](ctx, candle)`` on the given bars; records what it saw."""

    def __init__(self, script: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.seen: list[int] = []
        self.fills = []
        self.results: dict[int, object] = {}

    def on_candle(self, candle):
        self.seen.append(candle.index)
        action = self.script.get(candle.index)
        if action is not None:
            self.results[candle.index] = action(self.context, candle)
        return None

    def on_order_fill(self, fill):
        self.fills.append(fill)


def mapped(arr) -> bool:
    """The array's memory is a file mapping (it came from the CSV cache, not from a parse)."""
    import mmap

    base = arr
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False
