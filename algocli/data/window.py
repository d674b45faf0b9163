"""The bars a run keeps from a file: ``data.start`` to ``data.end``, plus ``data.warmup`` bars before.

Warm-up bars (``data.warmup: N``) are the N bars of the run's interval that come before
``data.start`` in the file. The engine feeds them to the strategies' indicators but calls no
``on_candle`` on them, so nothing trades or is recorded there (``Backtest``'s ``trade_from``):
a strategy starts at ``data.start`` with the indicator values it would have had running
since earlier, as it would live. A file with fewer than N bars before ``data.start`` is
refused with the count it has and the earliest ``data.start`` that works; the run never
quietly starts with a shorter warm-up.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from algocli.domain.bars import Bars
from algocli.domain.session import ist_date, ist_midnight_ns
from algocli.errors import DataError


def cut(path: Path, bars: Bars, window, interval: str, to_interval: Callable[[Bars], Bars]) -> Bars:
    """The bars of ``path`` a run keeps, in the run's interval.

    Args:
        path: The file, named in errors.
        bars: Its bars, sorted, in the file's own interval.
        window: The ``data:`` section: ``start`` and ``end`` (IST dates, inclusive; None: open) and
            ``warmup`` (bars of the run's interval to keep before ``start``; needs ``start``).
        interval: The run's interval, for messages (``1d``).
        to_interval: Resamples bars to the run's interval.

    Returns:
        The bars of [start, end] preceded by ``warmup`` bars.

    Raises:
        DataError: No bar lies in [start, end], or fewer than ``warmup`` bars come before ``start``.
    """
    start, end, warmup = window.start, window.end, getattr(window, "warmup", 0)
    if start is None and end is None:
        return to_interval(bars)
    lo = 0 if start is None else int(np.searchsorted(bars.ts, ist_midnight_ns(start)))
    hi = len(bars) if end is None else int(np.searchsorted(bars.ts, ist_midnight_ns(end + timedelta(1))))
    if hi <= lo:
        have = f"the file covers {_day(bars.ts[0])} to {_day(bars.ts[-1])}"
        raise DataError(path, f"no bars between {start or 'the start'} and {end or 'the end'} ({have}); "
                              "check data.start/data.end")
    if not warmup or start is None:
        return to_interval(bars.slice(lo, hi))
    # Resampled from the first bar: the warm-up counts bars of the run's interval, not the file's.
    run = to_interval(bars.slice(0, hi))
    first = int(np.searchsorted(run.ts, ist_midnight_ns(start)))
    if first < warmup:
        raise DataError(path, short_warmup(run.ts, first, warmup, start, interval))
    return run.slice(first - warmup, len(run))


def short_warmup(ts: np.ndarray, have: int, warmup: int, start: date, interval: str) -> str:
    """Why ``warmup`` bars cannot come before ``start``, and the fix (one line)."""
    said = f"data.warmup: {warmup} needs {warmup} {interval} bars before data.start {start}, but the file has {have}"
    if have:
        said += f" (from {_day(ts[0])})"
    later = ist_date(int(ts[warmup - 1])) + timedelta(days=1) if len(ts) >= warmup else None
    if later is not None and later <= ist_date(int(ts[-1])):  # a start that leaves bars to trade
        return f"{said}; lower data.warmup to {have}, set data.start to {later} or later, or add older bars"
    return f"{said}; lower data.warmup to {have} or add older bars"


def _day(ns) -> str:
    return ist_date(int(ns)).isoformat()


def trade_from(window) -> int | None:
    """UTC nanoseconds of ``data.start`` when ``data.warmup`` loads bars before it, else None.

    Args:
        window: The ``data:`` section (``start``, and ``warmup`` where the feed has one).
    """
    start = getattr(window, "start", None)
    return ist_midnight_ns(start) if getattr(window, "warmup", 0) and start is not None else None
