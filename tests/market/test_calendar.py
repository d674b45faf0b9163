"""The NSE calendar: holidays, special sessions, the dated session times, uncovered years.

Sources of the facts checked (the data files cite them per row):
- 2025 holidays: https://www.hindustantimes.com/business/stock-market-holiday-for-mahashivratri-2025-bse-nse-open-or-closed-on-february-26-101740475494922.html
- 2026 holidays: https://www.ndtvprofit.com/markets/share-market-holiday-are-nse-bse-open-or-closed-on-jan-15-check-details
- Muhurat 2024 18:00-19:00: https://www.ndtvprofit.com/markets/is-stock-market-closed-tomorrow-for-diwali-2024-check-all-details-about-muhurat-trading-2024-at-bse-nse
- Budget Sunday 2026-02-01: https://www.ndtvprofit.com/markets/union-budget-2026-is-the-stock-market-open-or-closed-on-feb-1-10905918
- 2019-2023 holidays: https://jaanoaurseekho.com/nse-bse-trading-holidays-for-2019-stock-market-india,
  https://www.stockguru.in/trading-holiday.jsp, https://www.moneycontrol.com/news/business/markets/market-holidays-in-2021-check-days-when-bse-will-be-shut-for-trading-6277211.html,
  https://priceactionhub.com/index.php/holiday-calendar/, https://www.thehindubusinessline.com/money-and-banking/nse-holidays/article67022753.ece
- Bakri Id 2023 moved to 06-29: https://www.business-standard.com/amp/markets/news/stock-market-holiday-on-bakri-id-rescheduled-to-june-29-from-june-28-123062700275_1.html
- Budget Saturday 2020-02-01: https://www.aninews.in/news/business/business/despite-weekend-stock-markets-open-for-special-trading-session-on-budget-day20200201105204/
- Muhurat 2019 Sunday 18:15-19:15: https://www.moneycontrol.com/news/business/markets/muhurat-trading-to-start-at-615-pm-on-october-27-4558391.html
- F&O close 15:40 and closing auction 15:15-15:35 from 2026-08-03:
  https://news.webindia123.com/news/Articles/Business/20260530/4456383.html
"""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.errors import DataError
from algocli.market.calendar import NseCalendar


@pytest.fixture
def cal(tmp_path: Path) -> NseCalendar:
    return NseCalendar(user_dir=tmp_path / "none")


def test_holidays_are_closed_and_named(cal: NseCalendar) -> None:
    assert not cal.is_trading_day(date(2025, 10, 22))
    assert cal.holiday_name(date(2025, 10, 22)) == "Diwali Balipratipada"
    assert cal.holiday_name(date(2026, 3, 31)) == "Shri Mahavir Jayanti"
    assert cal.session(date(2026, 3, 31), "NSE_FNO") is None
    assert cal.holiday_name(date(2025, 3, 8)) is None and not cal.is_trading_day(date(2025, 3, 8))  # a Saturday
    assert cal.is_trading_day(date(2025, 3, 10))
    # 17 weekday holidays in 2024 (14 scheduled + 3 added), 14 in 2025, 16 in 2026
    assert [len(cal.holidays(y)) for y in (2024, 2025, 2026)] == [17, 14, 16]


def test_muhurat_is_a_special_session_on_a_holiday(cal: NseCalendar) -> None:
    day = date(2024, 11, 1)
    assert cal.holiday_name(day) == "Diwali Laxmi Pujan"
    assert cal.is_trading_day(day)
    session = cal.session(day)
    assert (session.open, session.close, session.special) == (time(18, 0), time(19, 0), "Muhurat trading")
    midnight = ist_midnight_ns(day)
    assert session.contains(midnight + (18 * 60 + 30) * MINUTE_NS)
    assert not session.contains(midnight + 10 * 60 * MINUTE_NS)
    assert cal.session(date(2025, 10, 21)).windows == ((time(13, 45), time(14, 45)),)


def test_weekend_sessions_budget_sunday_and_a_dr_drill(cal: NseCalendar) -> None:
    budget = cal.session(date(2026, 2, 1), "FNO")
    assert budget is not None and (budget.open, budget.close) == (time(9, 15), time(15, 30))
    drill = cal.session(date(2024, 3, 2))
    assert drill.windows == ((time(9, 15), time(10, 0)), (time(11, 30), time(12, 30)))
    assert not cal.is_trading_day(date(2024, 3, 2), "CURRENCY")  # the drill was equity and F&O only
    assert date(2026, 2, 1) in cal.special_sessions(2026)


@pytest.mark.parametrize(("day", "name"), [
    (date(2019, 4, 29), "Parliamentary (Lok Sabha) election in Mumbai"),  # added during the year
    (date(2020, 3, 10), "Holi"),
    (date(2021, 11, 5), "Diwali Balipratipada"),
    (date(2022, 8, 31), "Ganesh Chaturthi"),
    (date(2023, 3, 7), "Holi"),
])
def test_a_holiday_of_each_year_from_2019_to_2023(cal: NseCalendar, day: date, name: str) -> None:
    assert cal.holiday_name(day) == name
    assert not cal.is_trading_day(day) and cal.session(day, "NSE_FNO") is None
    assert cal.is_trading_day(day - timedelta(days=7))  # the same weekday a week earlier traded


def test_2019_to_2023_weekday_holiday_counts_and_the_moved_bakri_id(cal: NseCalendar) -> None:
    # 15 scheduled + 2 election days in 2019; 12, 14, 13 and 15 in 2020-2023
    assert [len(cal.holidays(y)) for y in range(2019, 2024)] == [17, 12, 14, 13, 15]
    assert all(day.weekday() < 5 for y in range(2019, 2024) for day in cal.holidays(y))
    # NSE moved 2023's Bakri Id from Wednesday 06-28 to Thursday 06-29
    assert cal.is_trading_day(date(2023, 6, 28)) and cal.holiday_name(date(2023, 6, 29)) == "Bakri Id"


def test_budget_saturday_2020_and_weekend_muhurat_sessions(cal: NseCalendar) -> None:
    budget = cal.session(date(2020, 2, 1))
    assert budget is not None and budget.windows == ((time(9, 15), time(15, 30)),)
    assert budget.special == "Union Budget (Saturday)" and cal.is_trading_day(date(2020, 2, 1), "FNO")
    assert not cal.is_trading_day(date(2020, 2, 1), "CURRENCY")  # not confirmed for currency
    assert not cal.is_trading_day(date(2020, 2, 8))  # the next Saturday is closed
    for day in (date(2019, 10, 27), date(2020, 11, 14), date(2023, 11, 12)):  # a Sunday, a Saturday, a Sunday
        assert day.weekday() >= 5 and cal.session(day).windows == ((time(18, 15), time(19, 15)),)
    diwali = date(2022, 10, 24)  # a Monday holiday with its evening session
    assert cal.holiday_name(diwali) == "Diwali Laxmi Pujan" and cal.session(diwali, "FNO").open == time(18, 15)


def test_fno_close_moves_to_1540_on_2026_08_03_with_the_closing_auction(cal: NseCalendar) -> None:
    before, after = cal.session(date(2026, 7, 31), "NSE_FNO"), cal.session(date(2026, 8, 3), "NSE_FNO")
    assert (before.close, after.close) == (time(15, 30), time(15, 40))
    assert after.bounds_ns()[1] == ist_midnight_ns(date(2026, 8, 3)) + (15 * 60 + 40) * MINUTE_NS
    eq_before, eq_after = cal.session(date(2026, 7, 31), "NSE_EQ"), cal.session(date(2026, 8, 3), "BSE_EQ")
    assert eq_after.close == time(15, 30)
    assert (eq_before.closing_auction, eq_after.closing_auction) == (None, (time(15, 15), time(15, 35)))
    assert cal.session(date(2025, 12, 5), "FNO").pre_open is None
    assert cal.session(date(2025, 12, 8), "FNO").pre_open == (time(9, 0), time(9, 8))


def test_an_uncovered_year_is_reported_once(tmp_path: Path) -> None:
    said: list[str] = []
    cal = NseCalendar(user_dir=tmp_path, on_warning=said.append)
    assert cal.covered_years == (2019, 2020, 2021, 2022, 2023, 2024, 2025, 2026)
    assert cal.is_trading_day(date(2027, 1, 4)) and not cal.is_trading_day(date(2027, 1, 2))
    cal.session(date(2027, 1, 5)), cal.holiday_name(date(2027, 1, 26))
    assert len(said) == 1 and "2027 is not covered" in said[0] and "nse_2027.csv" in said[0]


def test_a_user_adds_a_year_as_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "nse_2027.csv").write_text(
        "date,kind,name,segments,windows,source\n2027-01-26,holiday,Republic Day,*,,https://example.org\n",
        encoding="utf-8")
    said: list[str] = []
    cal = NseCalendar(user_dir=tmp_path, on_warning=said.append)
    assert 2027 in cal.covered_years
    assert cal.holiday_name(date(2027, 1, 26)) == "Republic Day" and not cal.is_trading_day(date(2027, 1, 26))
    assert said == []


def test_a_bad_calendar_row_names_file_row_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "nse_2027.csv"
    path.write_text("date,kind,name,segments,windows,source\n2027-01-26,holyday,Republic Day,*,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"nse_2027.csv, row 2: field 'kind': 'holyday' is not holiday or special"):
        NseCalendar(user_dir=tmp_path)
    path.write_text("date,kind,name,segments,windows,source\n2028-01-26,holiday,Republic Day,*,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2: field 'date': 2028-01-26 is not in 2027; move it to nse_2028.csv"):
        NseCalendar(user_dir=tmp_path)


def test_trading_days_count_muhurat_and_skip_holidays(cal: NseCalendar) -> None:
    days = cal.trading_days(date(2025, 10, 20), date(2025, 10, 24))
    assert days == [date(2025, 10, 20), date(2025, 10, 21), date(2025, 10, 23), date(2025, 10, 24)]
    with pytest.raises(ValueError, match="MCX_COMM"):
        cal.session(date(2025, 10, 20), "MCX_COMM")


def test_counting_trading_days_the_first_quarter_of_2024(cal: NseCalendar) -> None:
    # 64 weekdays from 1 Jan to 28 Mar 2024; closed on Mon 22 Jan (Ram Lalla), Fri 26 Jan, Fri 8 Mar and
    # Mon 25 Mar; open on Sat 20 Jan (a full session) and Sat 2 Mar (the DR drill): 64 - 4 + 2
    assert cal.count_trading_days(date(2024, 1, 1), date(2024, 3, 28)) == 62
    assert cal.count_trading_days(date(2025, 10, 20), date(2025, 10, 24)) == 4  # Muhurat's Tuesday counts
    assert cal.count_trading_days(date(2024, 3, 2), date(2024, 3, 1)) == 0


@pytest.mark.parametrize("segment", ["EQ", "FNO", "CURRENCY"])
def test_counting_trading_days_agrees_with_listing_them_day_by_day(cal: NseCalendar, segment: str) -> None:
    for start, end in ((date(2019, 1, 1), date(2026, 12, 31)), (date(2020, 2, 1), date(2020, 2, 1)),
                       (date(2024, 11, 1), date(2024, 11, 4)), (date(2023, 12, 30), date(2025, 1, 6))):
        assert cal.count_trading_days(start, end, segment) == len(cal.trading_days(start, end, segment))
