"""Expiry days of NSE index options, from the weekday rules and the NSE trading calendar.

Dhan's rolling-option API names a contract's expiry only relatively (``expiryFlag`` WEEK or
MONTH, ``expiryCode`` 0 current, 1 next, 2 far), so ``algo download-data --options`` needs
the real expiry days to tell which contract each candle belongs to.

Rules (NSE circulars; summarised in Zerodha's "NSE expiry day change" notes,
https://zerodha.com/z-connect/ and NSE's F&O contract specifications,
https://www.nseindia.com/products-services/equity-derivatives-contract-specifications):

* Until 31 Aug 2025 NSE index options expired on **Thursday**; from 1 Sep 2025 on **Tuesday**.
* **Weekly** contracts: every such weekday (NIFTY; the other NSE indices lost their weeklies
  in Nov 2024 and are not modelled here).
* **Monthly** contracts: the last such weekday of the month.
* An expiry day that is not a trading day moves to the previous trading day (the NSE F&O
  calendar, ``algocli.market.calendar``).

Not modelled: BANKNIFTY's Wednesday expiries of Sep 2023 - Dec 2024 and BSE's indices.
"""

from __future__ import annotations

import calendar as _months
from datetime import date, timedelta

from algocli.errors import UsageError

__all__ = ["CYCLES", "TUESDAY_FROM", "expiry_days", "upcoming"]

CYCLES = ("week", "month")
TUESDAY_FROM = date(2025, 9, 1)
_THURSDAY, _TUESDAY = 3, 1
WEEKLY_SYMBOLS = frozenset({"NIFTY"})


def _weekday(day: date) -> int:
    return _TUESDAY if day >= TUESDAY_FROM else _THURSDAY


def _shift(day: date, cal) -> date:
    """``day``, or the trading day before it when the exchange is shut."""
    while not cal.is_trading_day(day, "FNO"):
        day -= timedelta(days=1)
    return day


def _nominal(cycle: str, start: date, end: date) -> list[date]:
    """The rule's days from ``start`` to ``end`` before any holiday shift."""
    out = []
    if cycle == "week":
        day = start
        while day <= end:
            if day.weekday() == _weekday(day):
                out.append(day)
            day += timedelta(days=1)
        return out
    year, month = start.year, start.month
    while date(year, month, 1) <= end:
        last = date(year, month, _months.monthrange(year, month)[1])
        wanted = _weekday(last)
        out.append(last - timedelta(days=(last.weekday() - wanted) % 7))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def expiry_days(cycle: str, start: date, end: date, *, symbol: str = "NIFTY", cal=None) -> list[date]:
    """Expiry days of ``symbol``'s ``cycle`` options that fall in ``[start, end]``, ascending.

    Args:
        cycle: ``week`` or ``month``.
        start, end: IST dates, both included.
        symbol: The option symbol (``NIFTY``); only NIFTY has weekly contracts here.
        cal: An ``NseCalendar`` (default the shipped one).

    Raises:
        UsageError: An unknown cycle, or weekly options of a symbol that has none.
    """
    if cycle not in CYCLES:
        raise UsageError(f"--cycle {cycle!r} is not one of {', '.join(CYCLES)}")
    if cycle == "week" and symbol.upper() not in WEEKLY_SYMBOLS:
        raise UsageError(f"{symbol} has monthly options only (weekly: {', '.join(sorted(WEEKLY_SYMBOLS))}); "
                         "use --cycle month")
    if cal is None:
        from algocli.market.calendar import default_calendar

        cal = default_calendar()
    # a month's last Thursday can move back into the window from the week after it
    days = {_shift(d, cal) for d in _nominal(cycle, start - timedelta(days=7), end + timedelta(days=7))}
    return sorted(d for d in days if start <= d <= end)


def upcoming(cycle: str, day: date, code: int, *, symbol: str = "NIFTY", cal=None) -> date:
    """The expiry ``code`` steps ahead on ``day``: 0 the current one (``day`` itself on an expiry
    day, whose contract trades to the close), 1 the next, 2 the far one."""
    horizon = day + timedelta(days=(code + 2) * (10 if cycle == "week" else 40))
    return expiry_days(cycle, day, horizon, symbol=symbol, cal=cal)[code]
