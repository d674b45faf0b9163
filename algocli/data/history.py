"""Columnar price history for one instrument, with a cursor and an indicator cache.

A backtest loads the whole series up front and moves ``cursor`` forward; paper and live
append bars as they close. Either way a strategy sees only ``[0, cursor]``.

The cursor is held by the history's ``clock``, a ``Cursor``: its own, or one it shares with
other histories (a backtest whose instruments all have a bar at every instant moves one
cursor per instant for all of them, not one per instrument).

Indicators are TA-Lib functions evaluated over the whole loaded series once and then
read at the cursor. That is exact, not an approximation: every TA-Lib function is
causal, so its value at bar t over the full array equals its value over the prefix
ending at t (a test checks this for the functions we expose). When the series grows
(live), the cache entry is recomputed over the new length on first use.
"""

from __future__ import annotations

import numpy as np

from algocli.domain.bars import FIELDS, Bars  # Bars is re-exported: it moved to domain

__all__ = ["FIELDS", "Bars", "Cursor", "History"]

_NO_TS = np.zeros(0, np.int64)


class Cursor:
    """A position in a series of bar starts: ``ts_mv[cursor]`` is the bar being processed (-1: none yet).

    It is a run's clock, and each history's position: a history's own, or shared by histories
    that have the same bar starts (``History.share``).
    """

    __slots__ = ("ts_mv", "cursor")

    def __init__(self, ts) -> None:
        self.ts_mv = memoryview(ts)
        self.cursor = -1


class History:
    """Growable OHLCV columns with memoryview accessors for fast scalar reads.

    Attributes:
        clock: The ``Cursor`` holding this history's position (``cursor``). Code run per bar
            reads ``clock.cursor``, one attribute lookup cheaper than the ``cursor`` property.
    """

    __slots__ = (
        "instrument", "interval", "length", "clock", "_cols", "_cap",
        "ts_mv", "open_mv", "high_mv", "low_mv", "close_mv", "volume_mv", "oi_mv",
        "indicators", "first_valid",
    )

    def __init__(self, instrument: str, interval=None, capacity: int = 1024) -> None:
        self.instrument = instrument
        self.interval = interval
        self.length = 0
        # key -> tuple of memoryviews, one per TA-Lib output; cleared when a bar is appended
        self.indicators: dict[tuple, tuple[memoryview, ...]] = {}
        self.first_valid: dict[tuple, int] = {}
        self._cap = 0
        self._cols: dict[str, np.ndarray] = {}
        self.clock = Cursor(_NO_TS)
        self._allocate(capacity, with_oi=False)

    @classmethod
    def from_bars(cls, bars: Bars, interval=None) -> History:
        """Wrap loaded bars without copying; the cursor starts before the first bar."""
        h = cls.__new__(cls)
        h.instrument = bars.instrument
        h.interval = interval
        h.length = len(bars)
        h.indicators = {}
        h.first_valid = {}
        h._cap = len(bars)
        h._cols = {"ts": bars.ts, "open": bars.open, "high": bars.high, "low": bars.low,
                   "close": bars.close, "volume": bars.volume}
        if bars.oi is not None:
            h._cols["oi"] = bars.oi
        for arr in h._cols.values():
            arr.flags.writeable = False
        h.clock = Cursor(_NO_TS)
        h._bind()
        return h

    @property
    def cursor(self) -> int:
        """Index of the current bar (-1 before the first): the last one a strategy may read."""
        return self.clock.cursor

    @cursor.setter
    def cursor(self, i: int) -> None:
        self.clock.cursor = i

    def share(self, clock: Cursor) -> None:
        """Read this history's position from ``clock``, whose bar starts are this history's own
        (a backtest's instruments with a bar at every instant: one cursor moves them all)."""
        clock.cursor = self.clock.cursor
        self.clock = clock

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
        self.ts_mv = self.clock.ts_mv = memoryview(c["ts"])
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
        self.clock.cursor = i
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
