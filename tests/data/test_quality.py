"""``algocli.data.quality`` against the NSE calendar: named holidays, real gaps, special sessions."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from algocli.data.history import Bars
from algocli.data.quality import Gap, NseTradingCalendar, WeekdayCalendar, check
from algocli.domain.session import ist_midnight_ns


def daily(*days: date) -> Bars:
    """One daily bar (stamped at IST midnight) per day."""
    ts = np.array([ist_midnight_ns(d) for d in days], dtype=np.int64)
    ones = np.ones(len(days))
    return Bars("NSE:X", ts, ones, ones, ones, ones, ones)


def test_a_missing_holiday_is_named_and_a_missing_trading_day_is_a_gap():
    # 10-18 June 2024: no bar on Monday 17 (Bakri Id) nor on Tuesday 18 (a trading day).
    bars = daily(date(2024, 6, 10), date(2024, 6, 11), date(2024, 6, 12), date(2024, 6, 13), date(2024, 6, 14))
    q = check(bars, "1d", date(2024, 6, 10), date(2024, 6, 18))
    assert q.confirmed and q.gaps == (Gap(date(2024, 6, 18), 1),) and q.missing_days == 1
    assert q.holidays == ((date(2024, 6, 17), "Bakri Id"),)
    # holidays are not gaps: listed apart, and never in the gaps' list or its "... and N more"
    assert q.describe() == ["2024-06-18 Tue: trading day without data"]
    assert q.describe_holidays() == ["2024-06-17 Bakri Id (holiday)"]
    assert all("holiday?" not in line for line in q.describe())
    # Without the calendar the same data still says "holiday?" (the old guess, kept for callers that ask for it).
    assert check(bars, "1d", date(2024, 6, 10), date(2024, 6, 18), calendar=WeekdayCalendar()).describe()[0] == \
        "2024-06-17 Mon: weekday without data (holiday?)"


def test_a_special_session_is_expected_and_not_flagged_when_it_has_data():
    # Saturday 1 Feb 2025 was the Budget-day session; Wednesday 26 Feb was Mahashivratri.
    around = (date(2025, 1, 31), date(2025, 2, 3), date(2025, 2, 25), date(2025, 2, 27))
    with_session = check(daily(*around, date(2025, 2, 1)), "1d", date(2025, 1, 31), date(2025, 2, 3))
    assert with_session.gaps == () and with_session.holidays == ()
    without = check(daily(*around), "1d", date(2025, 1, 31), date(2025, 2, 27))
    assert [g.day for g in without.gaps] == [date(2025, 2, 1)] + [date(2025, 2, d) for d in (4, 5, 6, 7)] + \
        [date(2025, 2, d) for d in (10, 11, 12, 13, 14, 17, 18, 19, 20, 21, 24)]
    assert without.holidays == ((date(2025, 2, 26), "Mahashivratri"),)
    assert NseTradingCalendar().sessions(date(2025, 2, 1), date(2025, 2, 2)) == [date(2025, 2, 1)]


def test_the_gaps_list_counts_gaps_only_however_many_holidays_the_range_holds():
    # 10 June - 31 Oct 2024 with data only on 10-14 June: the NSE calendar names four weekday holidays
    # (Bakri Id, Muharram, Independence Day, Gandhi Jayanti); every other weekday from 18 June is a gap.
    bars = daily(*(date(2024, 6, d) for d in (10, 11, 12, 13, 14)))
    q = check(bars, "1d", date(2024, 6, 10), date(2024, 10, 31))
    weekdays = [date(2024, 6, 17) + timedelta(days=k) for k in range((date(2024, 10, 31) - date(2024, 6, 17)).days + 1)]
    holidays = {date(2024, 6, 17), date(2024, 7, 17), date(2024, 8, 15), date(2024, 10, 2)}
    want = [d for d in weekdays if d.weekday() < 5 and d not in holidays]
    assert [d for d, _ in q.holidays] == sorted(holidays)
    assert [g.day for g in q.gaps] == want
    lines = q.describe(3)
    assert lines[:3] == [f"{d.isoformat()} {d.strftime('%a')}: trading day without data" for d in want[:3]]
    assert lines[3] == f"... and {len(want) - 3} more" and len(lines) == 4
    assert q.describe_holidays(2) == ["2024-06-17 Bakri Id (holiday)", "2024-07-17 Muharram (holiday)",
                                      "... and 2 more"]
