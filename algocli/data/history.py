"""Columnar price history for one instrument, with a cursor and an indicator cache.

A backtest loads the whole series up front and moves ``cursor`` forward; paper and live
append bars as they close. Either way a strategy sees only ``[0, cursor]``.

Indicators are TA-Lib functions evaluated over the whole loaded series once and then
read at the cursor. That is exact, not an approximation: every TA-Lib function is
causal, so its value at bar t over the full array equals its value over the prefix
ending at t (a test checks this for the functions we expose). When the series grows
(live), the cache entry is recomputed over the new length on first use.
"""

from __future__ import annotations

import numpy as np

from algocli.domain.bars import FIELDS, Bars  # Bars is re-exported: it moved to domain

__all__ = ["FIELDS", "Bars", "History"]


class History:
    """Growable OHLCV columns with memoryview accessors for fast scalar reads."""

    __slots__ = (
        "instrument", "interval", "length", "cursor", "_cols", "_cap",
        "ts_mv", "open_mv", "high_mv", "low_mv", "close_mv", "volume_mv", "oi_mv",
        "indicators", "first_valid",
    )

    def __init__(self, instrument: str, interval=None, capacity: int = 1024) -> None:
        self.instrument = instrument
        self.interval = interval
        self.length = 0
        self.cursor = -1
        # key -> tuple of memoryviews, one per TA-Lib output; cleared when a bar is appended
        self.indicators: dict[tuple, tuple[memoryview, ...]] = {}
        self.first_valid: dict[tuple, int] = {}
        self._cap = 0
        self._cols: dict[str, np.ndarray] = {}
        self._allocate(capacity, with_oi=False)

    @classmethod
    def from_bars(cls, bars: Bars, interval=None) -> History:
        """Wrap loaded bars without copying; the cursor starts before the first bar."""
        h = cls.__new__(cls)
        h.instrument = bars.instrument
        h.interval = interval
        h.length = len(bars)
        h.cursor = -1
        h.indicators = {}
        h.first_valid = {}
        h._cap = len(bars)
        h._cols = {"ts": bars.ts, "open": bars.open, "high": bars.high, "low": bars.low,
                   "close": bars.close, "volume": bars.volume}
        if bars.oi is not None:
            h._cols["oi"] = bars.oi
        for arr in h._cols.values():
            arr.flags.writeable = False
        h._bind()
        return h

    def _allocate(self, capacity: int, with_oi: bool) -> None:
        cols = {"ts": np.zeros(capacity, np.int64)}
        for name in FIELDS + (("oi",) if with_oi else ()):
            cols[name] = np.zeros(capacity, np.float64)
        for name, old in self._cols.items():
            cols[name][: self.length] = old[: self.length]
        self._cols = cols
        self._cap = capacity
        self._bind()

    def _bind(self) -> None:
        c = self._cols
        self.ts_mv = memoryview(c["ts"])
        self.open_mv = memoryview(c["open"])
        self.high_mv = memoryview(c["high"])
        self.low_mv = memoryview(c["low"])
        self.close_mv = memoryview(c["close"])
        self.volume_mv = memoryview(c["volume"])
        self.oi_mv = memoryview(c["oi"]) if "oi" in c else None

    def append(self, ts: int, o: float, h: float, l: float, c: float, v: float, oi: float | None = None) -> int:
        """Append a closed bar (live and paper) and move the cursor onto it."""
        if self.length == self._cap:
            self._allocate(max(1024, self._cap * 2), with_oi=oi is not None or "oi" in self._cols)
        elif oi is not None and "oi" not in self._cols:
            self._allocate(self._cap, with_oi=True)
        i = self.length
        cols = self._cols
        cols["ts"][i] = ts
        cols["open"][i] = o
        cols["high"][i] = h
        cols["low"][i] = l
        cols["close"][i] = c
        cols["volume"][i] = v
        if oi is not None:
            cols["oi"][i] = oi
        self.length = i + 1
        self.cursor = i
        self.indicators.clear()  # recomputed over the longer series on next use
        return i

    def column(self, field: str) -> np.ndarray:
        """The loaded part of one column (read it only up to ``cursor``)."""
        try:
            return self._cols[field][: self.length]
        except KeyError:
            raise KeyError(f"unknown field {field!r}; use one of {', '.join(('ts',) + FIELDS)}") from None

    def window(self, periods: int, field: str = "close") -> np.ndarray:
        """Read-only view of the last ``periods`` values up to and including the cursor."""
        end = self.cursor + 1
        view = self.column(field)[max(0, end - periods): end]
        view.flags.writeable = False
        return view

    def indicator(self, key: tuple, name: str, params: dict, price: str | None) -> tuple[memoryview, ...]:
        """The outputs of TA-Lib ``name`` over the loaded series, computed once per length."""
        outputs = self.indicators.get(key)
        if outputs is None:
            outputs, first = self._compute(name, params, price)
            self.indicators[key] = outputs
            self.first_valid[key] = first
        return outputs

    def _compute(self, name: str, params: dict, price: str | None) -> tuple[tuple[memoryview, ...], int]:
        from algocli.data.ta import ta_function

        fn = ta_function(name)
        inputs = {f: self.column(f) for f in FIELDS}
        kwargs = dict(params)
        if price is not None:
            kwargs["price"] = price
        out = fn(inputs, **kwargs)
        arrays = [np.ascontiguousarray(o, dtype=np.float64) for o in (out if isinstance(out, list) else [out])]
        first = 0
        for arr in arrays:
            nan = np.isnan(arr)
            first = max(first, len(arr) if nan.all() else int(nan.argmin()))
        return tuple(memoryview(a) for a in arrays), first
