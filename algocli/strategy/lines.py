"""Indicator lines: a TA-Lib series a strategy asks for once and reads every bar by bars-ago.

``ctx.sma(inst, 10)`` looks the series up on every call; a line is looked up once, in
``on_init``, and read as ``line[0]`` (this bar) or ``line[-1]`` (the previous bar), the
convention of backtrader's lines. A read is an index into the cached series, so a
strategy that reads two lines per bar pays about half of what two ``ctx.sma`` calls cost.

A line never shows the future: ``line[1]`` raises, and a bar before the first reads NaN.
In paper and live the history grows; the line notices and reads the longer series.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from algocli.strategy.context import StrategyContext

__all__ = ["Crossing", "Line"]

_NAN = math.nan


class _Unresolved:
    """Stands in for the history until the first read, so a line can be made before any bar."""

    length = -2
    cursor = -1


_UNRESOLVED = _Unresolved()
_Unresolved.clock = _UNRESOLVED  # read as a history's clock too: no bar yet


class Line:
    """One output of a TA-Lib function over one instrument's history, read by bars-ago.

    Made by ``StrategyContext.line``. ``line[0]`` is the value at the current bar,
    ``line[-n]`` the value ``n`` bars earlier (NaN before the first bar or during the
    function's warm-up). ``cross(other)`` compares two lines (or a line and a number) on
    this bar and the previous one.
    """

    __slots__ = ("_ctx", "_key", "_instrument", "_name", "_params", "_price", "_output", "_h", "_length", "_values")

    def __init__(self, ctx: StrategyContext, key: tuple, instrument: str, name: str, params: dict,
                 price: str | None, output: int) -> None:
        self._ctx = ctx
        self._key = key
        self._instrument = instrument
        self._name = name
        self._params = params
        self._price = price
        self._output = output
        self._h = _UNRESOLVED
        self._length = -1
        self._values = None

    def _refresh(self) -> None:
        """Read the series again: the first read, or the history grew (paper and live)."""
        h, outputs, length, _ = self._ctx._outputs(self._key, self._instrument, self._name, self._params, self._price)
        self._h, self._length, self._values = h, length, outputs[self._output]

    def __getitem__(self, ago: int) -> float:
        h = self._h
        if h.length != self._length:
            self._refresh()
            h = self._h
        i = h.clock.cursor + ago
        if i < 0 or ago > 0:
            return self._outside(ago)
        return self._values[i]

    def _outside(self, ago: int) -> float:
        if ago > 0:
            raise IndexError(f"{self!r}[{ago}] would read {ago} bar(s) ahead of the current one; "
                             "use 0 for this bar and -1, -2 ... for earlier ones")
        return _NAN

    def cross(self, other: Line | float) -> int:
        """1 if this line closed above ``other`` on this bar having been at or below it on the
        previous one, -1 for the opposite cross, 0 otherwise (also while either is NaN)."""
        # ``_now()`` inlined: a crossover strategy asks this on every bar it sees
        if self._h.length != self._length:
            self._refresh()
        v, i = self._values, self._h.clock.cursor
        if i < 1:
            return 0
        now, before = v[i], v[i - 1]
        if type(other) is Line:
            if other._h.length != other._length:
                other._refresh()
            ov, j = other._values, other._h.clock.cursor
            if j < 1:
                return 0
            o_now, o_before = ov[j], ov[j - 1]
        else:
            o_now = o_before = other
        if now > o_now:
            return 1 if before <= o_before else 0
        if now < o_now:
            return -1 if before >= o_before else 0
        return 0

    def crossing(self, other: Line | float) -> Crossing:
        """The bars where this line crosses ``other`` either way, for ``ctx.wake_on``."""
        if type(other) is Line and other._instrument != self._instrument:
            raise ValueError(f"{self!r} and {other!r} are on different instruments; a crossing compares "
                             "two lines of one instrument (or a line and a number)")
        return Crossing(self, other)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"Line({self._name}({params}) on {self._instrument})"


class Crossing:
    """The bars where a line crosses another line or a level, either way (``Line.crossing``).

    ``holds()`` answers for the current bar, as ``line.cross(other) != 0`` does; ``mask()``
    answers for every bar of the history at once, so a backtest knows before its loop which
    bars wake the strategy (``StrategyContext.wake_on``).
    """

    __slots__ = ("line", "other")

    def __init__(self, line: Line, other: Line | float) -> None:
        self.line = line
        self.other = other

    @property
    def instrument(self) -> str:
        return self.line._instrument

    def holds(self) -> bool:
        """Whether the lines cross on the current bar."""
        return self.line.cross(self.other) != 0

    def mask(self) -> np.ndarray:
        """One bool per bar of the history: the bars ``holds()`` is true on."""
        a = _series(self.line)
        b = _series(self.other) if type(self.other) is Line else np.full(len(a), float(self.other))
        out = np.zeros(len(a), dtype=bool)
        # NaN compares false both ways, as in ``cross``: no crossing during a warm-up
        out[1:] = ((a[1:] > b[1:]) & (a[:-1] <= b[:-1])) | ((a[1:] < b[1:]) & (a[:-1] >= b[:-1]))
        return out

    def __repr__(self) -> str:
        return f"Crossing({self.line!r}, {self.other!r})"


def _series(line: Line) -> np.ndarray:
    """The line's values over the whole loaded history (a backtest's: every bar, read ahead)."""
    line._refresh()
    return np.frombuffer(line._values, dtype=np.float64)[: line._h.length]
