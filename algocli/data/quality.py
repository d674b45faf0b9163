"""Data-quality checks of candles against the NSE session: which bars and days are missing.

The expected bars of a day are the ``interval`` grid of the normal market, 09:15-15:30 IST
(the grid ``csv_feed.resample`` builds: 5-minute bars start 09:15, 09:20 ... 15:25; 25-minute
ones 09:15 ... 15:05; hourly ones 09:15 ... 15:15), and one bar per day for ``1d``.

Two kinds of gap are reported:

* a run of missing bars inside a day that has data (intraday only), and
* a trading day without any bar.

Which days are trading days is the ``TradingCalendar``'s answer. The default,
``NseTradingCalendar``, reads the NSE calendar (``algocli.market.calendar``): a trading day
without data is a plain gap, a weekday holiday without data is named apart from the gaps
(``Quality.holidays``, "2024-06-17 Bakri Id (holiday)") and is neither listed nor counted as
one, and a special session (a Budget-day Saturday) is expected like any trading day.
``WeekdayCalendar`` (every weekday, holidays unknown) marks a weekday without data as
"holiday?" instead. Bars that have not finished by ``now`` (today's later bars) are not expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

import numpy as np

from algocli.domain.bars import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import (
    DAY_NS, MINUTE_NS, SESSION_CLOSE_NS, SESSION_OPEN_NS, bucket_starts, ist_date, ist_midnight_ns,
)
from algocli.market.calendar import NseCalendar, default_calendar

__all__ = ["Gap", "NseTradingCalendar", "Quality", "TradingCalendar", "WeekdayCalendar", "check", "session_grid",
           "total_gaps"]


class TradingCalendar(Protocol):
    """Which IST dates the exchange is expected to trade.

    Attributes:
        confirmed: True when holidays are known, so a trading day without data is a real gap.
    """

    confirmed: bool

    def sessions(self, start: date, end: date) -> list[date]:
        """Trading days from ``start`` to ``end``, both included, in order."""
        ...


class WeekdayCalendar:
    """Every Monday to Friday is a trading day: the best guess without a holiday list."""

    confirmed = False

    def sessions(self, start: date, end: date) -> list[date]:
        days = (end - start).days + 1
        return [d for d in (start + timedelta(days=k) for k in range(max(0, days))) if d.weekday() < 5]


class NseTradingCalendar:
    """NSE's trading days (holidays and special sessions known) for the quality check.

    Args:
        calendar: The NSE calendar; default the shipped one plus the user's folder.
        segment: ``EQ`` (cash) or ``FNO``: whose holidays count.
    """

    confirmed = True

    def __init__(self, calendar: NseCalendar | None = None, segment: str = "EQ") -> None:
        self.calendar = calendar or default_calendar()
        self.segment = segment

    def sessions(self, start: date, end: date) -> list[date]:
        return self.calendar.trading_days(start, end, self.segment)

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name on ``day``, or None."""
        return self.calendar.holiday_name(day)


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing data on one day.

    Attributes:
        day: The IST date.
        bars: Bars missing: a run of consecutive grid bars, or every bar of a missing day.
        first_ns: Start of the first missing bar (UTC ns); None for a whole missing day.
        last_ns: Start of the last missing bar of the run (UTC ns); None for a whole day.
    """

    day: date
    bars: int
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def whole_day(self) -> bool:
        return self.first_ns is None

    def describe(self, confirmed: bool = False) -> str:
        """``2024-06-12 10:05-10:15 (3 bars)`` or ``2024-06-17 Mon: weekday without data (holiday?)``."""
        if self.whole_day:
            what = "trading day without data" if confirmed else "weekday without data (holiday?)"
            return f"{self.day.isoformat()} {self.day.strftime('%a')}: {what}"
        span = _clock(self.first_ns) if self.first_ns == self.last_ns else \
            f"{_clock(self.first_ns)}-{_clock(self.last_ns)}"
        return f"{self.day.isoformat()} {span} ({self.bars} bar{'s' if self.bars != 1 else ''})"


@dataclass(frozen=True)
class Quality:
    """What ``check`` found over one range.

    Attributes:
        gaps: Every gap, in time order.
        days: Trading days with data in the range.
        confirmed: The calendar knows holidays (see ``TradingCalendar``).
        holidays: Weekday holidays in the range without data, ``(day, name)``: not gaps.
    """

    gaps: tuple[Gap, ...] = ()
    days: int = 0
    confirmed: bool = False
    holidays: tuple[tuple[date, str], ...] = ()

    @property
    def missing_days(self) -> int:
        """Trading days (or, without a holiday list, weekdays) with no bar at all."""
        return sum(1 for g in self.gaps if g.whole_day)

    @property
    def missing_bars(self) -> int:
        """Bars missing inside days that have data."""
        return sum(g.bars for g in self.gaps if not g.whole_day)

    def describe(self, limit: int = 3) -> list[str]:
        """The first ``limit`` gaps in words, in time order, plus ``... and N more`` (N counts gaps only:
        holidays are not gaps, see ``describe_holidays``)."""
        return _first([g.describe(self.confirmed) for g in self.gaps], limit)

    def describe_holidays(self, limit: int = 3) -> list[str]:
        """The first ``limit`` named holidays without data (``2024-06-17 Bakri Id (holiday)``), plus
        ``... and N more``."""
        return _first([f"{day.isoformat()} {name} (holiday)" for day, name in self.holidays], limit)


def _first(items: list[str], limit: int) -> list[str]:
    return items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])


def session_grid(interval: Interval | str) -> np.ndarray:
    """Expected bar starts of one day, as ns after 00:00 IST: the 09:15-15:30 grid, or ``[0]`` for ``1d``."""
    interval = Interval(interval)
    if interval is Interval.DAY_1:
        return np.zeros(1, dtype=np.int64)
    minutes = np.arange(SESSION_OPEN_NS, SESSION_CLOSE_NS, MINUTE_NS, dtype=np.int64) - IST_OFFSET_NS
    return np.unique(bucket_starts(minutes, interval)) + IST_OFFSET_NS  # the grid of day 1970-01-01, shifted


def _bar_ends(day_starts: np.ndarray, interval: Interval) -> np.ndarray:
    """When each expected bar is complete: ``start + interval``, cut at the close (as the session clock does)."""
    if interval is Interval.DAY_1:
        return day_starts + SESSION_CLOSE_NS
    midnight = (day_starts + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS
    return np.minimum(day_starts + interval.minutes * MINUTE_NS, midnight + SESSION_CLOSE_NS)


def check(bars: Bars, interval: Interval | str, start: date, end: date, *,
          calendar: TradingCalendar | None = None, now_ns: int | None = None) -> Quality:
    """Compare ``bars`` with the NSE session from ``start`` to ``end`` (IST dates, inclusive).

    Args:
        bars: One instrument's candles, sorted by start (UTC ns).
        interval: Their interval.
        start, end: The range to check; bars outside it are ignored.
        calendar: Trading days; default ``NseTradingCalendar`` (the NSE calendar).
        now_ns: Bars that end after this are not expected yet; None expects every bar.

    Returns:
        The gaps found, the days with data, and whether missing days are confirmed.
    """
    interval = Interval(interval)
    calendar = calendar or NseTradingCalendar()
    ts = np.asarray(bars.ts, dtype=np.int64)
    lo, hi = ist_midnight_ns(start), ist_midnight_ns(end + timedelta(days=1))
    ts = ts[(ts >= lo) & (ts < hi)]
    present_days = np.unique((ts + IST_OFFSET_NS) // DAY_NS)
    grid = session_grid(interval)
    gaps: list[Gap] = []
    last_day = end if now_ns is None else min(end, ist_date(now_ns))
    sessions = set(calendar.sessions(start, last_day)) if last_day >= start else set()
    have = {_day(int(d)) for d in present_days}
    for day in sorted(sessions - have):
        expected = ist_midnight_ns(day) + grid
        due = int((_bar_ends(expected, interval) <= now_ns).sum()) if now_ns is not None else len(grid)
        if due:  # a day whose first bar has not finished yet is not missing
            gaps.append(Gap(day, due))
    if interval is not Interval.DAY_1 and len(present_days):
        gaps += _runs(ts, present_days, grid, interval, now_ns)
    gaps.sort(key=lambda g: (g.day, g.first_ns or 0))
    return Quality(tuple(gaps), len(present_days), bool(getattr(calendar, "confirmed", False)),
                   _holidays(calendar, start, last_day, sessions | have))


def _holidays(calendar: TradingCalendar, start: date, end: date, skip: set[date]) -> tuple[tuple[date, str], ...]:
    """Named holidays on the weekdays from ``start`` to ``end`` that are neither expected nor have data."""
    name_of = getattr(calendar, "holiday_name", None)
    if name_of is None:
        return ()
    days = (start + timedelta(days=k) for k in range((end - start).days + 1))
    named = ((d, name_of(d)) for d in days if d.weekday() < 5 and d not in skip)
    return tuple((d, name) for d, name in named if name)


def _runs(ts: np.ndarray, days: np.ndarray, grid: np.ndarray, interval: Interval, now_ns: int | None) -> list[Gap]:
    """Runs of consecutive missing grid bars on the days that have data."""
    expected = (days[:, None] * DAY_NS - IST_OFFSET_NS + grid[None, :])  # days × grid, UTC ns
    missing = ~np.isin(expected, ts)
    if now_ns is not None:
        missing &= _bar_ends(expected, interval) <= now_ns
    rows, cols = np.nonzero(missing)
    if not len(rows):
        return []
    # A run breaks where the day changes or a grid position is skipped.
    breaks = np.flatnonzero((np.diff(rows) != 0) | (np.diff(cols) != 1)) + 1
    out = []
    for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)] - 1):
        r = rows[first]
        out.append(Gap(_day(int(days[r])), int(last - first + 1), int(expected[r, cols[first]]),
                       int(expected[r, cols[last]])))
    return out


def _day(ist_days: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ist_days)


def _clock(ns: int) -> str:
    minutes = (ns + IST_OFFSET_NS) % DAY_NS // MINUTE_NS
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def total_gaps(qualities: Iterable[Quality | None]) -> int:
    """Gaps over several files (None entries, for files that failed, count nothing)."""
    return sum(len(q.gaps) for q in qualities if q is not None)
