"""What every broker's historical-candle client shares: range bounds and the chunk merger.

A long range is fetched in several requests (each API has a span limit); the answers
overlap at their edges and may repeat a bar. ``merge_chunks`` turns them into one ``Bars``:
sorted by bar start, one bar per start (the later chunk wins: a re-fetched day carries the
broker's final values), limited to the asked range.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np

from algocli.domain.bars import Bars
from algocli.domain.models import Interval
from algocli.domain.session import ist_midnight_ns
from algocli.errors import ConfigError

__all__ = ["IST", "bound_ns", "interval_of", "merge_chunks"]

IST = timezone(timedelta(hours=5, minutes=30), "IST")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAMES = ("ts", "open", "high", "low", "close", "volume", "oi")


def interval_of(interval: Interval | str) -> Interval:
    """``interval`` as an ``Interval``.

    Raises:
        ConfigError: It is not one of the intervals the project knows.
    """
    try:
        return Interval(interval)
    except ValueError:
        raise ConfigError(f"interval {interval!r} is not one of {', '.join(i.value for i in Interval)}") from None


def bound_ns(moment: date | datetime, *, end: bool) -> int:
    """A range bound in UTC ns: a date covers its whole IST day; a naive datetime is IST.

    Raises:
        ConfigError: ``moment`` is neither a date nor a datetime.
    """
    if not isinstance(moment, date):
        raise ConfigError(f"historical range bound {moment!r} is not a date or datetime")
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=IST)
        return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    return ist_midnight_ns(moment + timedelta(days=1)) - 1 if end else ist_midnight_ns(moment)


def merge_chunks(instrument: str, chunks: list[dict[str, np.ndarray]], lo: int, hi: int,
                 with_oi: bool) -> Bars:
    """One ``Bars`` from per-request columns: sorted, one bar per start (the later chunk
    wins), limited to starts in ``[lo, hi]``.

    Args:
        instrument: The name the bars carry.
        chunks: One dict per answer with ``ts`` (UTC ns) and ``open`` ... ``oi`` columns.
        lo, hi: Inclusive bounds on the bar start, UTC ns.
        with_oi: Keep the ``oi`` column (derivatives).
    """
    cols = {n: np.concatenate([c[n] for c in chunks]) if chunks else np.zeros(0) for n in _NAMES}
    ts = cols["ts"].astype(np.int64)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[:-1] = ts[1:] != ts[:-1]  # the last of equal starts, i.e. from the latest chunk
    keep &= (ts >= lo) & (ts <= hi)
    picked = order[keep]
    f = {n: np.ascontiguousarray(cols[n][picked], dtype=np.float64) for n in _NAMES[1:]}
    return Bars(instrument, ts[keep].copy(), f["open"], f["high"], f["low"], f["close"], f["volume"],
                f["oi"] if with_oi else None)
