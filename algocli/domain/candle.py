"""The candle a strategy receives: a two-slot view into columnar history.

Building a full object per bar would cost more than the rest of the bar's work, so a
``Candle`` is a ``(history, index, instrument)`` tuple whose fields read the columns on demand. It is
immutable and safe to keep: the history it points at only ever grows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from operator import itemgetter

from algocli.domain.models import IST_OFFSET_NS

IST = timezone(timedelta(hours=5, minutes=30), "IST")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ns_to_ist(ns: int) -> datetime:
    """Convert UTC nanoseconds to an aware ``datetime`` in IST."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).astimezone(IST)


class Candle(tuple):  # (history, index, instrument)
    """One OHLCV bar of one instrument.

    Fields: ``instrument``, ``timestamp`` (aware IST datetime of the bar's start), ``ts``
    (UTC nanoseconds), ``open``, ``high``, ``low``, ``close``, ``volume``, ``oi`` and the
    derived ``typical_price``, ``is_bullish``, ``is_bearish``, ``body_size``, ``candle_range``.
    """

    __slots__ = ()

    # C-level getters: these two are read on every bar by most strategies
    instrument = property(itemgetter(2), doc="Instrument id, e.g. ``NSE_EQ:1333``.")
    index = property(itemgetter(1), doc="Position of this bar in its instrument's history (0 is the first).")

    @property
    def ts(self) -> int:
        return self[0].ts_mv[self[1]]

    @property
    def timestamp(self) -> datetime:
        return ns_to_ist(self[0].ts_mv[self[1]])

    @property
    def interval(self):
        return self[0].interval

    @property
    def open(self) -> float:
        return self[0].open_mv[self[1]]

    @property
    def high(self) -> float:
        return self[0].high_mv[self[1]]

    @property
    def low(self) -> float:
        return self[0].low_mv[self[1]]

    @property
    def close(self) -> float:
        return self[0].close_mv[self[1]]

    @property
    def volume(self) -> float:
        return self[0].volume_mv[self[1]]

    @property
    def oi(self) -> float | None:
        oi = self[0].oi_mv
        return None if oi is None else oi[self[1]]

    @property
    def typical_price(self) -> float:
        return (self.high + self.low + self.close) / 3

    @property
    def is_bullish(self) -> bool:
        return self.close > self.open

    @property
    def is_bearish(self) -> bool:
        return self.close < self.open

    @property
    def body_size(self) -> float:
        return abs(self.close - self.open)

    @property
    def candle_range(self) -> float:
        return self.high - self.low

    def as_dict(self) -> dict:
        return {
            "instrument": self.instrument,
            "timestamp": self.timestamp,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "oi": self.oi,
        }

    def __repr__(self) -> str:
        return (
            f"Candle({self.instrument} {self.timestamp.isoformat()} o={self.open} h={self.high} "
            f"l={self.low} c={self.close} v={self.volume})"
        )


__all__ = ["Candle", "IST", "IST_OFFSET_NS", "ns_to_ist"]
