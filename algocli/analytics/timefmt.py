"""Times of a run's statistics without pandas: IST datetimes, timedeltas and their text; and the
text of a figure, one rule for the terminal and the report.

A small run computes and writes its results with numpy and the standard library; pandas
(a quarter of a second to import) is loaded only by callers who ask for frames. The text of
a duration is pandas' own (``3 days 04:05:00``), so ``results.csv`` and the tables read the
same as before and ``pd.Timedelta`` parses them back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from algocli.domain.candle import IST

_DAY_NS = 86_400 * 10**9


def ist_datetime(ns: int) -> datetime:
    """UTC nanoseconds as a tz-aware IST ``datetime`` (to the microsecond)."""
    seconds, rest = divmod(int(ns), 10**9)
    return datetime.fromtimestamp(seconds, IST) + timedelta(microseconds=rest // 1000)


def ns_timedelta(ns: int) -> timedelta:
    """Nanoseconds as a ``timedelta`` (to the microsecond)."""
    return timedelta(microseconds=int(ns) // 1000)


def timedelta_ns(value: timedelta) -> int:
    """A ``timedelta`` (``pd.Timedelta`` included, to the nanosecond) in nanoseconds."""
    exact = getattr(value, "value", None)  # pd.Timedelta keeps nanoseconds here
    if isinstance(exact, int):
        return exact
    return ((value.days * 86_400 + value.seconds) * 10**6 + value.microseconds) * 1000


def is_missing(value: object) -> bool:
    """True for None, NaN and pandas' NaT (recognised without importing pandas)."""
    if value is None or type(value).__name__ == "NaTType":
        return True
    return isinstance(value, float) and math.isnan(value)


def timedelta_text(value: timedelta | int) -> str:
    """A duration as pandas writes it: ``0 days 15:44:00``, ``-1 days +23:59:00``, fractions when present.

    Args:
        value: A ``timedelta`` (or ``pd.Timedelta``) or nanoseconds.

    Returns:
        The text ``str(pd.Timedelta(value))`` gives.
    """
    ns = value if isinstance(value, int) else timedelta_ns(value)
    days, rem = divmod(ns, _DAY_NS)
    secs, frac = divmod(rem, 10**9)
    hours, rem_s = divmod(secs, 3600)
    minutes, seconds = divmod(rem_s, 60)
    sign = "+" if days < 0 else ""
    text = f"{days} days {sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    if frac:
        text += f".{frac:09d}" if frac % 1000 else f".{frac // 1000:06d}"
    return text


def figure_text(x: float) -> str:
    """A statistic or amount as the tables show it: two decimals (thousands grouped), four significant
    digits below 0.01 so that a small figure is not shown as 0.00, and 0 as ``0.00`` (never ``-0``)."""
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0 or abs(x) >= 0.01:
        return f"{x + 0.0:,.2f}"  # + 0.0: -0.0 is 0.0
    return f"{x:.4g}"
