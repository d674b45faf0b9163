"""NSE index option expiry days: the weekday rules, shifted back over holidays by the NSE calendar."""

from __future__ import annotations

from datetime import date

import pytest

from algocli.data.expiries import expiry_days, upcoming
from algocli.errors import UsageError


def test_weekly_and_monthly_expiries_move_back_over_holidays():
    # 11 Apr 2024 (Id-ul-Fitr) and 29 Jun 2023 (Bakri Id) were NSE holidays: the expiries were the day before
    assert expiry_days("week", date(2024, 4, 1), date(2024, 4, 30)) == [
        date(2024, 4, 4), date(2024, 4, 10), date(2024, 4, 18), date(2024, 4, 25)]
    assert expiry_days("month", date(2023, 6, 1), date(2023, 7, 31)) == [date(2023, 6, 28), date(2023, 7, 27)]


def test_tuesday_expiries_from_september_2025():
    assert expiry_days("week", date(2025, 8, 25), date(2025, 9, 10)) == [date(2025, 8, 28), date(2025, 9, 2),
                                                                        date(2025, 9, 9)]
    assert expiry_days("month", date(2025, 8, 1), date(2025, 9, 30)) == [date(2025, 8, 28), date(2025, 9, 30)]


def test_upcoming_counts_the_expiry_day_itself_as_current():
    assert upcoming("month", date(2024, 6, 27), 0) == date(2024, 6, 27)
    assert upcoming("month", date(2024, 6, 28), 0) == date(2024, 7, 25)
    assert upcoming("week", date(2024, 6, 21), 2) == date(2024, 7, 11)


def test_weekly_options_only_for_nifty():
    with pytest.raises(UsageError, match="monthly options only"):
        expiry_days("week", date(2025, 1, 1), date(2025, 1, 31), symbol="BANKNIFTY")
    with pytest.raises(UsageError, match="--cycle"):
        expiry_days("fortnight", date(2025, 1, 1), date(2025, 1, 31))
