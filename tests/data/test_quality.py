"""``algocli.data.quality`` against the NSE calendar: named holidays, real gaps, special sessions."""

from __future__ import annotations

from datetime import date

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
    assert q.describe() == ["2024-06-17 Bakri Id (holiday)", "2024-06-18 Tue: trading day without data"]
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
