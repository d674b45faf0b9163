"""The NSE trading calendar as data: holidays, special sessions and dated session times.

**Files.** ``algocli/market/data/calendar/nse_YYYY.csv`` holds one year (2019 to 2026 are
shipped), one row per holiday or special session, each with its public source::

    date,kind,name,segments,windows,source
    2025-10-21,holiday,Diwali Laxmi Pujan,*,,https://www.hindustantimes.com/...
    2025-10-21,special,Muhurat trading,*,13:45-14:45,https://www.deccanherald.com/...

- ``kind``: ``holiday`` (no normal session) or ``special`` (a session on a weekend or a holiday:
  a Budget-day Saturday or Sunday, Muhurat trading, an exchange's disaster-recovery drill).
- ``segments``: ``*`` or a space-separated list of ``EQ`` (cash), ``FNO`` (equity derivatives) and
  ``CURRENCY``. ``windows``: a special session's normal-market windows, ``HH:MM-HH:MM`` (IST),
  space-separated when it has several (a DR drill's primary-site and DR-site sessions).
- Lines starting with ``#`` are comments.

``nse_sessions.csv`` gives the normal-market times per segment with their effective dates: the
cash market 09:15-15:30 with a closing auction session 15:15-15:35 from 2026-08-03; F&O 09:15-15:30,
with a pre-open call auction from 2025-12-08 and the close moved to 15:40 from 2026-08-03
(https://news.webindia123.com/news/Articles/Business/20260530/4456383.html); currency 09:00-17:00.

**Adding a year without touching code.** Put ``nse_2027.csv`` (same columns) in the user calendar
folder: ``$ALGO_CALENDAR_DIR``, by default ``data/calendar`` under the working directory (beside
``data/instruments``). A user file for a year that is shipped replaces the shipped one; a user
``nse_sessions.csv`` replaces the session times. NSE publishes each year's list in December
(https://www.nseindia.com/resources/exchange-communication-holidays).

**A date the calendar does not cover** (no file for its year) is treated as a trading day on
weekdays, and the calendar says so once per year through its warning hook.

BSE keeps the same trading holidays as NSE for equity and equity derivatives.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np

from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.errors import DataError
from algocli.market.tables import csv_lines

__all__ = ["SEGMENTS", "NseCalendar", "Session", "calendar_segment", "default_calendar", "user_calendar_dir"]

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data") / "calendar"
SEGMENTS = ("EQ", "FNO", "CURRENCY")
_YEAR_COLUMNS = ("date", "kind", "name", "segments", "windows", "source")
_SESSION_COLUMNS = ("segment", "effective_from", "effective_to", "pre_open", "open", "close", "closing_auction",
                    "source", "note")
_SEGMENT_ALIASES = {"EQ": "EQ", "INDEX": "EQ", "CASH": "EQ", "CM": "EQ", "FNO": "FNO", "FO": "FNO",
                    "CURRENCY": "CURRENCY", "CDS": "CURRENCY", "CUR": "CURRENCY"}

Window = tuple[time, time]


def user_calendar_dir() -> Path:
    """The folder a user adds years to: ``$ALGO_CALENDAR_DIR``, default ``data/calendar``."""
    return Path(os.environ.get("ALGO_CALENDAR_DIR") or "data/calendar")


def calendar_segment(segment: str) -> str:
    """``EQ``, ``FNO`` or ``CURRENCY`` from a calendar or instrument segment (``NSE_FNO``, ``BSE_EQ`` ...).

    Raises:
        ValueError: The segment has no NSE calendar (MCX commodities).
    """
    name = segment.strip().upper()
    key = name.rsplit("_", 1)[-1] if "_" in name else name
    if key not in _SEGMENT_ALIASES:
        raise ValueError(f"segment {segment!r} has no NSE calendar; use one of {', '.join(SEGMENTS)}")
    return _SEGMENT_ALIASES[key]


@dataclass(frozen=True, slots=True)
class Session:
    """The normal market of one segment on one day (IST times).

    Attributes:
        day: The trading date.
        segment: ``EQ``, ``FNO`` or ``CURRENCY``.
        windows: Normal-market windows, in order (one, except on a special day with several).
        pre_open: The pre-open call auction (order entry), or None.
        closing_auction: The closing auction session, or None.
        special: The special session's name ("" on a regular day).
    """

    day: date
    segment: str
    windows: tuple[Window, ...]
    pre_open: Window | None = None
    closing_auction: Window | None = None
    special: str = ""

    @property
    def open(self) -> time:
        return self.windows[0][0]

    @property
    def close(self) -> time:
        return self.windows[-1][1]

    def bounds_ns(self) -> tuple[int, int]:
        """``(open, close)`` as UTC nanoseconds."""
        midnight = ist_midnight_ns(self.day)
        return midnight + _minutes(self.open) * MINUTE_NS, midnight + _minutes(self.close) * MINUTE_NS

    def contains(self, ns: int) -> bool:
        """Is ``ns`` (UTC nanoseconds, on this day) inside a window, ``[open, close)``?"""
        minute_ns = ns - ist_midnight_ns(self.day)
        return any(_minutes(a) * MINUTE_NS <= minute_ns < _minutes(b) * MINUTE_NS for a, b in self.windows)


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True)
class _Times:
    start: date
    end: date | None
    pre_open: Window | None
    open: time
    close: time
    closing_auction: Window | None


def _read(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    header: list[str] | None = None
    rows = []
    for line, cells in csv_lines(path, "calendar file"):
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in columns if c not in header and c not in ("note", "closing_auction", "source")]
            if missing:
                raise DataError(path, f"missing column {missing[0]!r}; the header is {','.join(columns)}", line)
            continue
        rows.append((line, {k: (v or "").strip() for k, v in zip(header, cells)}))
    return rows


def _time(text: str, field: str, path: Path, line: int) -> time:
    try:
        hour, minute = text.split(":")
        return time(int(hour), int(minute))
    except ValueError:
        raise DataError(path, f"field {field!r}: {text!r} is not a time; write HH:MM (IST), e.g. 09:15", line) from None


def _window(text: str, field: str, path: Path, line: int) -> Window:
    start, sep, end = text.partition("-")
    if not sep:
        raise DataError(path, f"field {field!r}: {text!r} is not a window; write HH:MM-HH:MM, e.g. 18:00-19:00", line)
    a, b = _time(start, field, path, line), _time(end, field, path, line)
    if b <= a:
        raise DataError(path, f"field {field!r}: {text!r} ends before it starts; write HH:MM-HH:MM", line)
    return a, b


def _date(text: str, field: str, path: Path, line: int) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DataError(path, f"field {field!r}: {text!r} is not a date; write YYYY-MM-DD", line) from None


def _segments(text: str, path: Path, line: int) -> tuple[str, ...]:
    if text in ("", "*"):
        return SEGMENTS
    names = tuple(text.upper().split())
    bad = [n for n in names if n not in SEGMENTS]
    if bad:
        raise DataError(path, f"field 'segments': {bad[0]!r} is not one of {', '.join(SEGMENTS)} or *", line)
    return names


class _Year:
    """One year's holidays and special sessions, by date."""

    def __init__(self, path: Path, year: int) -> None:
        self.path = path
        self.holidays: dict[date, tuple[str, tuple[str, ...]]] = {}
        self.specials: dict[date, list[tuple[str, tuple[str, ...], tuple[Window, ...]]]] = {}
        for line, row in _read(path, _YEAR_COLUMNS):
            day = _date(row.get("date", ""), "date", path, line)
            if day.year != year:
                raise DataError(path, f"field 'date': {day} is not in {year}; move it to nse_{day.year}.csv", line)
            kind = row.get("kind", "").lower()
            name = row.get("name", "") or kind
            segments = _segments(row.get("segments", ""), path, line)
            if kind == "holiday":
                self.holidays[day] = (name, segments)
            elif kind == "special":
                text = row.get("windows", "")
                if not text:
                    raise DataError(path, "field 'windows' is empty for a special session; give HH:MM-HH:MM", line)
                windows = tuple(sorted(_window(w, "windows", path, line) for w in text.split()))
                self.specials.setdefault(day, []).append((name, segments, windows))
            else:
                raise DataError(path, f"field 'kind': {kind!r} is not holiday or special; use one of them", line)


def _sessions(path: Path) -> dict[str, list[_Times]]:
    out: dict[str, list[_Times]] = {}
    for line, row in _read(path, _SESSION_COLUMNS):
        segment = row.get("segment", "").upper()
        if segment not in SEGMENTS:
            raise DataError(path, f"field 'segment': {segment!r} is not one of {', '.join(SEGMENTS)}", line)
        end = row.get("effective_to", "")
        pre, auction = row.get("pre_open", ""), row.get("closing_auction", "")
        times = _Times(_date(row.get("effective_from", ""), "effective_from", path, line),
                       _date(end, "effective_to", path, line) if end else None,
                       _window(pre, "pre_open", path, line) if pre else None,
                       _time(row.get("open", ""), "open", path, line), _time(row.get("close", ""), "close", path, line),
                       _window(auction, "closing_auction", path, line) if auction else None)
        out.setdefault(segment, []).append(times)
    for rows in out.values():
        rows.sort(key=lambda t: t.start)
    return out


class NseCalendar:
    """Holidays, special sessions and session times of NSE (and BSE) for the covered years.

    Args:
        user_dir: Extra folder of ``nse_YYYY.csv`` files (default ``user_calendar_dir()``); a
            missing folder is fine.
        on_warning: Called once per uncovered year with a one-line message. Default: log a warning.
        data_dir: The shipped calendar folder (tests point it elsewhere).

    Raises:
        DataError: A calendar file has an invalid row (file, row, field and fix).
    """

    def __init__(self, user_dir: str | Path | None = None, on_warning: Callable[[str], None] | None = None,
                 data_dir: str | Path = DATA) -> None:
        self.user_dir = Path(user_dir) if user_dir is not None else user_calendar_dir()
        self.on_warning = on_warning or log.warning
        files: dict[int, Path] = {}
        sessions = Path(data_dir) / "nse_sessions.csv"
        for folder in (Path(data_dir), self.user_dir):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("nse_*.csv")):
                stem = path.stem.removeprefix("nse_")
                if stem.isdigit() and len(stem) == 4:
                    files[int(stem)] = path  # the user folder comes second and wins
                elif stem == "sessions":
                    sessions = path
        self._years = {year: _Year(path, year) for year, path in files.items()}
        self._times = _sessions(sessions)
        self._starts = {seg: [t.start.toordinal() for t in rows] for seg, rows in self._times.items()}
        self._warned: set[int] = set()

    @property
    def covered_years(self) -> tuple[int, ...]:
        """The years with a calendar file, ascending."""
        return tuple(sorted(self._years))

    def _year(self, day: date) -> _Year | None:
        year = self._years.get(day.year)
        if year is None and day.year not in self._warned:
            self._warned.add(day.year)
            covered = ", ".join(map(str, self.covered_years)) or "none"
            self.on_warning(f"NSE calendar: {day.year} is not covered (covered: {covered}); every weekday counts as a "
                            f"trading day; add {self.user_dir / f'nse_{day.year}.csv'} with the year's holidays")
        return year

    def holidays(self, year: int) -> dict[date, str]:
        """The trading holidays of ``year`` by date (empty for an uncovered year, which is reported)."""
        data = self._year(date(year, 1, 1))
        return {} if data is None else {day: name for day, (name, _) in sorted(data.holidays.items())}

    def special_sessions(self, year: int) -> dict[date, str]:
        """Special sessions (weekends, Muhurat) of ``year`` by date: their names."""
        data = self._year(date(year, 1, 1))
        return {} if data is None else {day: "; ".join(n for n, _, _ in s) for day, s in sorted(data.specials.items())}

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name on ``day``, or None (a weekend is not a named holiday)."""
        data = self._year(day)
        entry = None if data is None else data.holidays.get(day)
        return None if entry is None else entry[0]

    def is_trading_day(self, day: date, segment: str = "EQ") -> bool:
        """Does ``segment`` trade on ``day`` (a weekday that is not a holiday, or a special session)?"""
        return self._special(day, calendar_segment(segment)) is not None or self._regular(day, calendar_segment(segment))

    def _special(self, day: date, segment: str) -> tuple[str, tuple[Window, ...]] | None:
        data = self._year(day)
        if data is None or day not in data.specials:
            return None
        found = [(name, windows) for name, segments, windows in data.specials[day] if segment in segments]
        if not found:
            return None
        return "; ".join(n for n, _ in found), tuple(sorted(w for _, ws in found for w in ws))

    def _regular(self, day: date, segment: str) -> bool:
        if day.weekday() >= 5:
            return False
        data = self._year(day)
        entry = None if data is None else data.holidays.get(day)
        return entry is None or segment not in entry[1]

    def session(self, day: date, segment: str = "EQ") -> Session | None:
        """The normal market of ``segment`` on ``day``, or None when it does not trade.

        Args:
            day: The IST date.
            segment: ``EQ``, ``FNO``, ``CURRENCY`` or an instrument segment (``NSE_FNO``).

        Returns:
            The session's windows (a special day's own windows), pre-open and closing auction.
        """
        seg = calendar_segment(segment)
        special = self._special(day, seg)
        if special is not None:
            return Session(day, seg, special[1], special=special[0])
        if not self._regular(day, seg):
            return None
        rows = self._times[seg]
        times = rows[max(bisect_right(self._starts[seg], day.toordinal()) - 1, 0)]
        return Session(day, seg, ((times.open, times.close),), times.pre_open, times.closing_auction)

    def count_trading_days(self, start: date, end: date, segment: str = "EQ") -> int:
        """``len(trading_days(start, end, segment))`` without a step per day: weekdays, less the
        holidays on weekdays, plus the special sessions on days that would not trade."""
        import numpy as np

        if end < start:
            return 0
        seg = calendar_segment(segment)
        closed, extra = [], 0
        for year in range(start.year, end.year + 1):
            data = self._year(date(year, 1, 1))
            if data is None:
                continue
            special = {day for day, found in data.specials.items()
                       if start <= day <= end and any(seg in segments for _, segments, _ in found)}
            shut = {day for day, (_, segments) in data.holidays.items()
                    if start <= day <= end and day.weekday() < 5 and seg in segments}
            closed.extend(shut - special)
            extra += sum(1 for day in special if day.weekday() >= 5)  # a weekday's is among the weekdays
        return int(np.busday_count(start, end + timedelta(days=1), holidays=closed)) + extra

    def trading_days(self, start: date, end: date, segment: str = "EQ") -> list[date]:
        """Every trading day from ``start`` to ``end``, both inclusive."""
        days, day = [], start
        while day <= end:
            if self.is_trading_day(day, segment):
                days.append(day)
            day += timedelta(days=1)
        return days


@lru_cache(maxsize=1)
def default_calendar() -> NseCalendar:
    """The shipped calendar plus the user folder, read once per process."""
    return NseCalendar()
