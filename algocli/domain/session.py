"""The NSE trading session as a small clock: is the market open, and which candle is a time in.

Normal market for equity cash and F&O runs 09:15-15:30 IST, Monday to Friday (the pre-open
call auction 09:00-09:15 and the closing session 15:40-16:00 are not part of it). Times
are UTC nanoseconds, as everywhere in the engine; India has no daylight saving, so IST is
always UTC+05:30.

The session is half-open, ``[09:15, 15:30)``: a trade stamped 15:30:00 is after the close.

This module owns the candle grid. ``algocli.data.csv_feed.resample`` and the tick
aggregator both use ``bucket_labels``, so a candle built from ticks starts at the same
instant as one resampled from a file:

- intraday intervals are anchored at 09:15 IST: 25-minute candles start 09:15, 09:40,
  10:05 ... 15:05; hourly ones 09:15, 10:15 ... 15:15;
- a candle ends at ``start + interval`` or at the session close, whichever is first (the
  15:15 hourly candle ends at 15:30);
- the daily candle starts at IST midnight (as daily CSV rows are stamped) and ends at the
  session close.

Holidays are not built in yet. ``is_market_open`` takes them as a set of dates, and the
weekend sessions NSE occasionally holds (a Budget-day Saturday) as ``special_sessions``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, time, timedelta
from time import time_ns

import numpy as np

from algocli.domain.models import IST_OFFSET_NS, Interval

MINUTE_NS = 60_000_000_000
DAY_NS = 1440 * MINUTE_NS
SESSION_OPEN_MIN = 9 * 60 + 15  # NSE opens 09:15 IST; intraday buckets are anchored here
SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
SESSION_OPEN_NS = SESSION_OPEN_MIN * MINUTE_NS  # since IST midnight
SESSION_CLOSE_NS = (15 * 60 + 30) * MINUTE_NS
SESSION_MINUTES = (SESSION_CLOSE_NS - SESSION_OPEN_NS) // MINUTE_NS  # 375, Interval.DAY_1.minutes
_EPOCH = date(1970, 1, 1)

__all__ = [
    "DAY_NS", "MINUTE_NS", "SESSION_CLOSE", "SESSION_CLOSE_NS", "SESSION_MINUTES", "SESSION_OPEN", "SESSION_OPEN_MIN",
    "SESSION_OPEN_NS", "bucket_end", "bucket_labels", "bucket_start", "bucket_starts", "decision_lag_ns", "in_session_hours",
    "is_market_open", "ist_date", "ist_day_start", "ist_midnight_ns", "ist_today", "session_bounds",
]


def ist_day_start(ns: int) -> int:
    """00:00 IST of the IST day containing ``ns``, as UTC nanoseconds."""
    return (ns + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS


def ist_date(ns: int) -> date:
    """The IST calendar date of ``ns``."""
    return _EPOCH + timedelta(days=(ns + IST_OFFSET_NS) // DAY_NS)


def ist_midnight_ns(day: date) -> int:
    """00:00 IST on ``day`` as UTC nanoseconds."""
    return (day - _EPOCH).days * DAY_NS - IST_OFFSET_NS


def session_bounds(ns: int) -> tuple[int, int]:
    """``(open, close)`` of the session on the IST day of ``ns`` (09:15 and 15:30 IST), UTC ns."""
    midnight = ist_day_start(ns)
    return midnight + SESSION_OPEN_NS, midnight + SESSION_CLOSE_NS


def in_session_hours(ns: int) -> bool:
    """True if the IST time of day of ``ns`` lies in ``[09:15, 15:30)``, whatever the date."""
    since_midnight = (ns + IST_OFFSET_NS) % DAY_NS
    return SESSION_OPEN_NS <= since_midnight < SESSION_CLOSE_NS


def is_market_open(ns: int, holidays: Collection[date] | None = None,
                   special_sessions: Collection[date] | None = None) -> bool:
    """Is the normal market open at ``ns``?

    Args:
        ns: UTC nanoseconds.
        holidays: Trading holidays (IST dates) on which the market stays shut.
        special_sessions: Weekend dates on which NSE holds a normal session.

    Returns:
        True on a weekday (or a special session) that is not a holiday, inside 09:15-15:30 IST.
    """
    if not in_session_hours(ns):
        return False
    day = ist_date(ns)
    if holidays and day in holidays:
        return False
    return day.weekday() < 5 or bool(special_sessions and day in special_sessions)


def bucket_labels(ts: np.ndarray, minutes: int | None) -> np.ndarray:
    """Start of each time's bucket on the NSE grid.

    Args:
        ts: UTC nanoseconds (int64 array).
        minutes: Bucket length, anchored at 09:15 IST; None for the IST calendar day.

    Returns:
        UTC nanoseconds of each bucket's start. Times before 09:15 get their IST midnight,
        so a bucket never spans two IST dates.
    """
    local = ts + IST_OFFSET_NS
    day_start = (local // DAY_NS) * DAY_NS
    if minutes is None:
        return day_start - IST_OFFSET_NS
    minute = (local - day_start) // MINUTE_NS
    start = SESSION_OPEN_MIN + ((minute - SESSION_OPEN_MIN) // minutes) * minutes
    # Pre-open bars would otherwise get a label on the previous date; clamp to midnight.
    return day_start + np.maximum(start, 0) * MINUTE_NS - IST_OFFSET_NS


def _grid_minutes(interval: Interval | str) -> int | None:
    """Bucket length for ``bucket_labels``: minutes, or None for the IST day."""
    interval = Interval(interval)
    return None if interval is Interval.DAY_1 else interval.minutes


def bucket_starts(ts: np.ndarray, interval: Interval | str) -> np.ndarray:
    """Start of the bucket of every time in ``ts`` (UTC ns, int64): the grid ``resample`` uses."""
    return bucket_labels(np.asarray(ts, dtype=np.int64), _grid_minutes(interval))


def bucket_start(ns: int, interval: Interval | str) -> int:
    """Start (UTC ns) of the ``interval`` bucket containing ``ns``.

    Intraday buckets are aligned to 09:15 IST; ``1d`` buckets start at IST midnight.
    """
    return int(bucket_labels(np.array([ns], dtype=np.int64), _grid_minutes(interval))[0])


def bucket_end(ns: int, interval: Interval | str) -> int:
    """End (UTC ns, exclusive) of the ``interval`` bucket containing ``ns``.

    That is the moment the candle is complete: ``start + interval``, cut at the session
    close for the last candle of the day (the 15:15 hourly candle ends at 15:30), and the
    session close for a daily candle.
    """
    interval = Interval(interval)
    start = bucket_start(ns, interval)
    close = ist_day_start(start) + SESSION_CLOSE_NS
    if interval is Interval.DAY_1:
        return close
    end = start + interval.minutes * MINUTE_NS
    return close if start < close < end else end


def ist_today() -> date:
    """Today's date in India."""
    return ist_date(time_ns())


def decision_lag_ns(interval) -> int:
    """How long after a candle's start a strategy decides on it, at its close: the ``Interval``'s
    length for candles shorter than a day; 0 for a daily candle (its orders go in for the next
    session) or no interval. Session rules (a square-off, an entry cut-off) are judged then: a
    15:05 25-minute candle is decided at 15:30, after a 15:20 square-off."""
    if interval is None or interval.minutes >= SESSION_MINUTES:
        return 0
    return interval.minutes * MINUTE_NS
