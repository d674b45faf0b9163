"""Bars checked against the NSE calendar: no bar on a holiday, none outside the session.

``SessionCheck`` is what ``CsvFeed`` runs on every file it loads, after the rows are read and
before they are sorted (so a bad bar is named by its line in the file), for both of
``csv_feed``'s readers:

- a daily file (one bar per IST day) may not hold a bar on a day the instrument's segment does
  not trade: a weekend that is not a special session, or an NSE holiday;
- an intraday file may not hold a bar that starts outside the segment's session on that day
  (``NseCalendar.session``: 09:15-15:30 for the cash market, F&O closing at 15:40 from
  2026-08-03, a special session's own windows).

The first such bar is a ``DataError`` naming the file, the row, the holiday or the session, and
the fix, unless the run allows it (``data.allow_off_session: true``): the bars are then kept and
counted, and the feed says how many it kept. A date in a year the calendar does not cover is
checked against weekends and the regular session times only, and the feed says so once per run.
Only rows inside the run's ``data.start``/``data.end`` are checked. Instruments without an NSE
calendar (MCX) are not checked.

A cash-market file (``EQ``) that has no bar on some trading days between its first and last day
(a download that stopped, rows deleted) is said in one warning line naming the runs of days: the
run goes on, as a trader may mean it to, but its indicators and returns span the hole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from algocli.domain.arrays import unique
from algocli.domain.instrument import Instrument
from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.session import DAY_NS, ist_midnight_ns
from algocli.errors import DataError
from algocli.market.calendar import NseCalendar, Session, calendar_segment

__all__ = ["SessionCheck", "instrument_segment"]

_EPOCH = date(1970, 1, 1)
_DAILY_MINUTES = 375
_ALLOW = "or set `allow_off_session: true` under data: to keep such bars"
_NAMES = {"EQ": "cash-market", "FNO": "F&O", "CURRENCY": "currency"}


def instrument_segment(names: tuple[str, ...]) -> str | None:
    """The NSE calendar segment (``EQ``, ``FNO``, ``CURRENCY``) of an instrument from its names.

    Args:
        names: The instrument's name and its other spellings (broker ids); a derivative in any of
            them makes it ``FNO`` (or ``CURRENCY``).

    Returns:
        The segment, or None when the instrument has no NSE calendar (MCX).
    """
    found = None
    for name in names:
        try:
            segment = calendar_segment(Instrument.from_name(name).segment)
        except ValueError:
            return None
        if found is None or found == "EQ":
            found = segment
    return found


def _hhmm(t) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


class SessionCheck:
    """Checks the files of one run against the NSE calendar (see the module docstring).

    Args:
        calendar: The calendar; its warnings about uncovered years are gathered here and said once
            by ``warnings``.
        allow: Keep off-session bars (counted) instead of refusing the file.
        start: First IST date of the run (rows before it are not checked), or None.
        end: Last IST date of the run, or None.
    """

    def __init__(self, calendar: NseCalendar | None = None, *, allow: bool = False, start: date | None = None,
                 end: date | None = None) -> None:
        self.calendar = calendar if calendar is not None else NseCalendar(on_warning=lambda _: None)
        self.allow = allow
        self.start, self.end = start, end
        self.kept: dict[str, int] = {}
        self.holes: dict[str, list[list[date]]] = {}  # file -> runs of trading days it has no bar on
        self.uncovered: set[int] = set()
        self._said: set[int] = set()
        # (IST day number, segment) -> (its session or None, the session's bounds): a basket's
        # files share their days, so each day is looked up in the calendar once, not once a file
        self._sessions: dict[tuple[int, str], tuple[Session | None, tuple[int, int] | None]] = {}

    def check(self, path: object, ts: np.ndarray, segment: str | None) -> None:
        """Check one file's bars, in file order (row ``i + 2`` of the file is ``ts[i]``).

        Args:
            path: The file, for the message.
            ts: Bar starts, UTC nanoseconds, in file order.
            segment: ``EQ``, ``FNO`` or ``CURRENCY``; None skips the check.

        Raises:
            DataError: A bar on a non-trading day or outside the session, and the run does not allow it.
        """
        if segment is None or not len(ts):
            return
        rows = np.arange(len(ts))
        if self.start is not None:
            rows = rows[ts[rows] >= ist_midnight_ns(self.start)]
        if self.end is not None:
            rows = rows[ts[rows] < ist_midnight_ns(self.end + timedelta(days=1))]
        if not len(rows):
            return
        daily = _is_daily(ts)
        days, inverse = unique((ts[rows] + IST_OFFSET_NS) // DAY_NS, return_inverse=True)
        if segment == "EQ":  # F&O contracts (a far strike) may well not trade for days: no gap to tell of
            self._find_holes(path, days, segment)
        opens = np.zeros(len(days), dtype=np.int64)
        closes = np.full(len(days), np.iinfo(np.int64).max)  # a daily file: the whole day is in
        reasons: dict[int, str | Session] = {}
        covered = set(self.calendar.covered_years)
        several: list[tuple[int, Session]] = []
        unusual = self._unusual_days(days, covered) if daily else None
        for k, number in enumerate(days.tolist()):
            day = _EPOCH + timedelta(days=number)
            if day.year not in covered:
                self.uncovered.add(day.year)
            if unusual is not None and day.weekday() < 5 and day not in unusual:
                continue  # an ordinary weekday: a daily bar needs no session times
            session, bounds = self._session(number, day, segment)
            if session is None:
                closes[k] = opens[k]  # nothing is in
                reasons[k] = self._closed_day(day, segment)
                continue
            reasons[k] = session  # worded by _outside only for the bar refused
            if not daily:
                opens[k], closes[k] = bounds
                if len(session.windows) > 1:
                    several.append((k, session))
        t = ts[rows]
        bad = (t < opens[inverse]) | (t >= closes[inverse])
        for k, session in several:  # a break between windows (a DR drill): rare, so row by row
            mine = np.flatnonzero(inverse == k)
            bad[mine] = [not session.contains(int(x)) for x in t[mine].tolist()]
        if not bad.any():
            return
        if self.allow:
            self.kept[str(path)] = self.kept.get(str(path), 0) + int(bad.sum())
            return
        first = int(np.flatnonzero(bad)[0])
        stamp = _ist_text(int(ts[rows[first]]), daily)
        reason = reasons[int(inverse[first])]
        reason = reason if isinstance(reason, str) else _outside(reason, segment)
        raise DataError(path, f"bar at {stamp} {reason}; delete the row, {_ALLOW}",
                        row=int(rows[first]) + 2)

    def _find_holes(self, path: object, days: np.ndarray, segment: str) -> None:
        """Keep the runs of trading days between the file's first and last day that have no bar
        (in the years the calendar covers: elsewhere a holiday would pass for a hole)."""
        covered = set(self.calendar.covered_years)
        first, last = _EPOCH + timedelta(days=int(days[0])), _EPOCH + timedelta(days=int(days[-1]))
        have = set(days.tolist())
        runs: list[list[date]] = []
        previous = None
        for day in self.calendar.trading_days(first, last, segment):
            if day.year not in covered:
                continue
            if (day - _EPOCH).days not in have:
                if previous is None:
                    runs.append([])
                runs[-1].append(day)
                previous = day
            else:
                previous = None
        if runs:
            self.holes[str(path)] = runs

    def _session(self, number: int, day: date, segment: str) -> tuple[Session | None, tuple[int, int] | None]:
        known = self._sessions.get((number, segment))
        if known is None:
            session = self.calendar.session(day, segment)
            known = self._sessions[number, segment] = (session, session.bounds_ns() if session else None)
        return known

    def _unusual_days(self, days: np.ndarray, covered: set[int]) -> set[date]:
        """Holidays and special sessions of the covered years ``days`` (IST day numbers) fall in."""
        years = {(_EPOCH + timedelta(days=int(n))).year for n in (days[0], days[-1])}
        out: set[date] = set()
        for year in range(min(years), max(years) + 1):
            if year in covered:
                out.update(self.calendar.holidays(year), self.calendar.special_sessions(year))
        return out

    def _closed_day(self, day: date, segment: str) -> str:
        holiday = self.calendar.holiday_name(day)
        if holiday is not None:
            return f"falls on an NSE holiday ({holiday})"
        if day.weekday() >= 5:
            return f"falls on a {day:%A}, when the {_NAMES[segment]} segment does not trade"
        return f"falls on a day the {_NAMES[segment]} segment does not trade"

    def warnings(self) -> list[str]:
        """What to tell the user once: uncovered years not yet said, and off-session bars kept."""
        out = []
        new = sorted(self.uncovered - self._said)
        if new:
            self._said.update(new)
            covered = ", ".join(map(str, self.calendar.covered_years)) or "none"
            years = ", ".join(map(str, new))
            out.append(f"NSE calendar: {years} {'is' if len(new) == 1 else 'are'} not covered (covered: {covered}); "
                       "bars on those dates were checked against weekends and the regular session only; add "
                       f"{self.calendar.user_dir / 'nse_YYYY.csv'} with each year's holidays")
        out.extend(_kept_lines(self.kept))
        out.extend(_hole_line(path, runs) for path, runs in self.holes.items())
        self.kept, self.holes = {}, {}
        return out

    def say(self, warn: Callable[[str], None]) -> None:
        """Pass ``warnings()`` to ``warn``, one line each."""
        for line in self.warnings():
            warn(line)


#: More files than this with off-session bars kept are told of in one line, not one line each.
KEPT_LINES = 3


def _kept_lines(kept: dict[str, int]) -> list[str]:
    """The off-session bars kept, per file, or for a basket of many files in one line."""
    what = "on NSE holidays or outside the session (data.allow_off_session)"
    if len(kept) <= KEPT_LINES:
        return [f"{path}: kept {n} bar(s) {what}" for path, n in kept.items()]
    low, high = min(kept.values()), max(kept.values())
    folders = {str(Path(path).parent) for path in kept}
    where = f"in {folders.pop()}" if len(folders) == 1 else f"in {len(folders)} folders"
    each = f"{low} each" if low == high else f"{low} to {high} each"
    return [f"{len(kept)} files {where} (first {next(iter(kept))}): kept {sum(kept.values())} bar(s), {each}, {what}"]


def _hole_line(path: str, runs: list[list[date]], limit: int = 3) -> str:
    """``FILE: no bar on 497 trading days inside its range: 2020-01-01 to 2021-12-31 (496 days), ...``."""
    said = [f"{r[0]} to {r[-1]} ({len(r)} days)" if len(r) > 1 else str(r[0]) for r in runs[:limit]]
    more = f" and {len(runs) - limit} more gap(s)" if len(runs) > limit else ""
    days = sum(map(len, runs))
    return (f"{path}: no bar on {days} trading day{'s' if days > 1 else ''} inside its range: {', '.join(said)}"
            f"{more}; indicators and returns run straight across {'them' if days > 1 else 'it'}: fill the file "
            "with `algo download-data`, or set data.start after the gap")


def _is_daily(ts: np.ndarray) -> bool:
    """One bar per IST day (or fewer): a daily file, checked by day alone."""
    from algocli.data.csv_feed import infer_interval_minutes

    ordered = len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all())  # files are mostly in order: skip the sort
    native = infer_interval_minutes(ts if ordered else np.sort(ts))
    if native is None:  # a single bar: daily when stamped at IST midnight, as daily rows are
        return bool(((ts + IST_OFFSET_NS) % DAY_NS == 0).all())
    return native >= _DAILY_MINUTES


def _outside(session: Session, segment: str) -> str:
    windows = " and ".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in session.windows)
    what = f"the {session.special} session" if session.special else f"the {_NAMES[segment]} session"
    return f"is outside {what} ({windows} IST on {session.day})"


def _ist_text(ns: int, daily: bool) -> str:
    local = np.datetime64(ns + IST_OFFSET_NS, "ns").astype("datetime64[m]")
    text = str(local).replace("T", " ")
    return text[:10] if daily and text.endswith("00:00") else f"{text} IST"
