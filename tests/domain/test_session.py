"""The NSE session clock: open hours, weekdays, holidays and the candle grid."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from algocli.data.csv_feed import resample
from algocli.domain.bars import Bars
from algocli.domain.models import Interval
from algocli.domain.session import (
    SESSION_CLOSE,
    SESSION_MINUTES,
    SESSION_OPEN,
    bucket_end,
    bucket_labels,
    bucket_start,
    bucket_starts,
    in_session_hours,
    is_market_open,
    ist_date,
    ist_day_start,
    ist_midnight_ns,
    session_bounds,
)

IST = timezone(timedelta(hours=5, minutes=30))


def ns(text: str) -> int:
    """'2024-06-10 09:15[:ss]' read as IST -> UTC ns."""
    moment = datetime.fromisoformat(text).replace(tzinfo=IST)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def test_constants():
    assert SESSION_OPEN.strftime("%H:%M") == "09:15"
    assert SESSION_CLOSE.strftime("%H:%M") == "15:30"
    assert SESSION_MINUTES == Interval.DAY_1.minutes == 375


def test_market_hours_are_half_open_and_weekdays_only():
    monday = "2024-06-10"  # a Monday
    assert not is_market_open(ns(f"{monday} 09:14:59"))
    assert is_market_open(ns(f"{monday} 09:15:00"))
    assert is_market_open(ns(f"{monday} 15:29:59") + 999_999_999)
    assert not is_market_open(ns(f"{monday} 15:30:00"))
    assert not is_market_open(ns(f"{monday} 12:00") - 12 * 3600 * 10**9)  # midnight
    assert is_market_open(ns("2024-06-14 12:00"))  # Friday
    assert not is_market_open(ns("2024-06-15 12:00"))  # Saturday
    assert not is_market_open(ns("2024-06-16 12:00"))  # Sunday
    assert in_session_hours(ns("2024-06-15 12:00"))  # time of day only


def test_holidays_and_special_sessions_are_seams():
    bakri_id = date(2024, 6, 17)  # an NSE holiday, a Monday
    assert is_market_open(ns("2024-06-17 10:00"))
    assert not is_market_open(ns("2024-06-17 10:00"), holidays={bakri_id})
    budget_saturday = date(2025, 2, 1)
    assert not is_market_open(ns("2025-02-01 10:00"))
    assert is_market_open(ns("2025-02-01 10:00"), special_sessions={budget_saturday})
    assert not is_market_open(ns("2025-02-01 16:00"), special_sessions={budget_saturday})


def test_ist_day_helpers():
    t = ns("2024-06-10 00:30")  # still 9 June in UTC
    assert ist_date(t) == date(2024, 6, 10)
    assert ist_day_start(t) == ns("2024-06-10 00:00") == ist_midnight_ns(date(2024, 6, 10))
    assert session_bounds(t) == (ns("2024-06-10 09:15"), ns("2024-06-10 15:30"))


@pytest.mark.parametrize(("interval", "at", "start", "end"), [
    ("1m", "09:15:00", "09:15", "09:16"),
    ("1m", "15:29:59", "15:29", "15:30"),
    ("5m", "09:19:59", "09:15", "09:20"),
    ("15m", "15:20:00", "15:15", "15:30"),
    ("25m", "09:39:59", "09:15", "09:40"),
    ("25m", "09:40:00", "09:40", "10:05"),
    ("25m", "10:04:00", "09:40", "10:05"),
    ("25m", "15:29:00", "15:05", "15:30"),
    ("1h", "10:14:59", "09:15", "10:15"),
    ("1h", "15:20:00", "15:15", "15:30"),  # cut at the close
    ("1d", "09:15:00", "00:00", "15:30"),
    ("1d", "15:29:59", "00:00", "15:30"),
])
def test_bucket_grid(interval, at, start, end):
    day = "2024-06-10"
    t = ns(f"{day} {at}")
    assert bucket_start(t, interval) == ns(f"{day} {start}")
    assert bucket_end(t, interval) == ns(f"{day} {end}")
    assert bucket_start(t, Interval(interval)) == ns(f"{day} {start}")


def test_25m_grid_has_fifteen_buckets_a_day():
    day = ns("2024-06-10 09:15")
    starts = {bucket_start(day + m * 60 * 10**9, "25m") for m in range(375)}
    labels = sorted((s - day) // (60 * 10**9) for s in starts)
    assert labels == list(range(0, 375, 25))


def test_the_csv_resampler_builds_its_bars_on_this_grid():
    minutes = np.arange(375)
    ts = ns("2024-06-10 09:15") + minutes * 60 * 10**9
    one_minute = Bars("NSE:X", ts, *(np.ones(375),) * 4, np.ones(375))
    for interval in (Interval.MINUTE_25, Interval.HOUR_1, Interval.DAY_1):
        assert resample(one_minute, interval).ts.tolist() == sorted(set(bucket_starts(ts, interval).tolist()))


def test_scalar_and_vector_grids_agree():
    rng = np.random.default_rng(7)
    ts = ns("2024-06-10 00:00") + rng.integers(0, 5 * 86_400, 2000) * 10**9 + rng.integers(0, 10**9, 2000)
    for interval in Interval:
        minutes = None if interval is Interval.DAY_1 else interval.minutes
        expected = bucket_labels(ts, minutes)
        assert np.array_equal(bucket_starts(ts, interval), expected)
        assert [bucket_start(int(t), interval) for t in ts[:200]] == expected[:200].tolist()
        ends = np.array([bucket_end(int(t), interval) for t in ts[:200]])
        in_session = np.array([in_session_hours(int(t)) for t in ts[:200]])
        assert (ends[in_session] > ts[:200][in_session]).all()
