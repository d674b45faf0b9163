"""Candles replayed as ticks: a plausible path through each bar's O/H/L/C, paced in time.

The path
    Every bar becomes four ticks: the open exactly at the bar start, then the two
    extremes, then the close one second before the bar ends. A bullish bar (close >=
    open) goes open -> low -> high -> close, a bearish one open -> high -> low -> close:
    the path that stays closest to a straight line from open to close. The two middle
    ticks sit at one and two thirds of the way to the close tick. So the first tick of
    every bar carries exactly the bar's open, the last exactly its close, and the ticks'
    maximum and minimum are its high and low.

Bar times
    An intraday bar spans ``[start, start + interval)``, cut at the session's close; the
    interval is the file's own (the median gap between bars). A daily bar (stamped at IST
    midnight) spans that day's session. Sessions are the NSE calendar's for the instrument's
    segment (``algocli.market.calendar``): 09:15-15:30 IST, F&O to 15:40 from 2026-08-03, a
    special session's own hours (Muhurat trading); a day the calendar has no session for (bars
    on a holiday, MCX) keeps 09:15-15:30.

Volume
    The bar's volume (rounded to a whole number) is spread over its ticks: a quarter on
    each, the remainder on the open tick. Each tick carries ``ltq`` = its share and
    ``volume`` = the cumulative volume of the IST day so far, reset at each day's first
    replayed tick, as the brokers' feeds send it. So the aggregator rebuilds each bar's
    volume exactly, and the cumulative volume at the last tick of a day is the sum of that
    day's replayed bars.

Pacing
    ``Replayer.run`` publishes ticks in exchange-time order across instruments (ties in
    the order of the ``bars`` dict) and spaces them in wall time by exchange time /
    ``speed``: at speed 60 one 1-minute bar takes one second. Time outside the session
    (nights, weekends, holidays) takes none: after one session's close the replay moves
    straight to the next session's open. Speed 0 or infinity publishes as fast as
    possible, yielding to the event loop every ``batch`` ticks.

Session closes
    When the replay reaches a session's close (the latest close of its instruments' segments
    that day, or its last tick if later), before the next session's first tick and after the
    last session's last tick, it says so to the hub (``close_session``): the matching engine
    expires the day's working orders and refuses new ones until the next session opens.
    A paced replay reaches the close in wall time too, so a replay whose data stop before the
    close keeps the market open (without trades) until then.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from algocli.data.csv_feed import DAY_NS, MINUTE_NS, infer_interval_minutes
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Tick
from algocli.domain.session import SESSION_CLOSE_NS, SESSION_OPEN_NS
from algocli.market.calendar import calendar_segment, default_calendar

__all__ = ["IST", "TICKS_PER_BAR", "Replayer", "TickPath", "bar_ticks", "to_utc_ns"]

TICKS_PER_BAR = 4
SECOND_NS = 1_000_000_000
IST = timezone(timedelta(hours=5, minutes=30), "IST")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_utc_ns(moment: datetime) -> int:
    """UTC nanoseconds of ``moment``; a naive datetime is read as IST."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=IST)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(slots=True)
class TickPath:
    """The ticks of one instrument as columns, ``TICKS_PER_BAR`` per bar, in time order.

    ``volume`` is cumulative per IST day; ``oi`` repeats each bar's open interest.
    """

    instrument: str
    ts: np.ndarray  # int64 UTC ns
    price: np.ndarray  # float64
    ltq: np.ndarray  # int64
    volume: np.ndarray  # int64, cumulative within the IST day
    oi: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def tick(self, i: int) -> Tick:
        """Tick ``i`` as the feeds deliver it."""
        oi = None if self.oi is None else int(self.oi[i])
        return Tick(self.instrument, int(self.ts[i]), float(self.price[i]), int(self.ltq[i]),
                    int(self.volume[i]), oi=oi)


def session_hours(days: np.ndarray, segment: str = "EQ") -> tuple[np.ndarray, np.ndarray]:
    """Open and close of each IST day, ns after IST midnight, from the NSE calendar.

    Args:
        days: IST days as days since 1970-01-01.
        segment: ``EQ``, ``FNO``, an instrument id's segment (``NSE_FNO``) ...

    Returns:
        ``(open, close)`` arrays aligned with ``days``; 09:15-15:30 where the calendar has no session.
    """
    unique, index = np.unique(days, return_inverse=True)
    opens = np.full(len(unique), SESSION_OPEN_NS, dtype=np.int64)
    closes = np.full(len(unique), SESSION_CLOSE_NS, dtype=np.int64)
    try:
        segment = calendar_segment(segment)
    except ValueError:  # no NSE calendar (MCX): the default hours
        return opens[index], closes[index]
    calendar = default_calendar()
    for k, day in enumerate(unique.tolist()):
        session = calendar.session(_EPOCH.date() + timedelta(days=day), segment)
        if session is not None:
            opens[k], closes[k] = (b - (day * DAY_NS - IST_OFFSET_NS) for b in session.bounds_ns())
    return opens[index], closes[index]


def _bar_spans(ts: np.ndarray, bar_minutes: int | None, segment: str = "EQ") -> tuple[np.ndarray, np.ndarray]:
    """``(first, end)`` of each bar, UTC ns: daily bars span the session, intraday bars are cut at its close."""
    midnight = (ts + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS
    opens, closes = session_hours((ts + IST_OFFSET_NS) // DAY_NS, segment)
    close = midnight + closes
    if bar_minutes is None:  # a single bar: daily if stamped at midnight, else a minute
        bar_minutes = 375 if bool((ts == midnight).all()) else 1
    if bar_minutes >= 375:
        return midnight + opens, close
    end = ts + bar_minutes * MINUTE_NS
    return ts, np.where((ts < close) & (end > close), close, end)


def bar_ticks(bars: Bars, *, bar_minutes: int | None = None, segment: str = "EQ") -> TickPath:
    """The tick path of every bar (see the module docstring).

    Args:
        bars: One instrument's bars, sorted by time.
        bar_minutes: Length of one bar; inferred from the bars when None (375 = daily).
        segment: Whose session hours the bars follow (``EQ``, ``FNO``, ``NSE_FNO`` ...).

    Returns:
        ``TICKS_PER_BAR`` ticks per bar, in time order.
    """
    n = len(bars)
    ts = np.asarray(bars.ts, dtype=np.int64)
    if bar_minutes is None:
        bar_minutes = infer_interval_minutes(ts)
    first, end = _bar_spans(ts, bar_minutes, segment)
    last = np.maximum(end - SECOND_NS, first + TICKS_PER_BAR - 1)  # the close tick, inside the bar
    step = (last - first) // 3
    times = np.stack([first, first + step, first + 2 * step, last], axis=1).ravel()

    o, h, lo, c = (np.asarray(a, dtype=np.float64) for a in (bars.open, bars.high, bars.low, bars.close))
    bullish = c >= o
    prices = np.stack([o, np.where(bullish, lo, h), np.where(bullish, h, lo), c], axis=1).ravel()

    total = np.rint(np.asarray(bars.volume, dtype=np.float64)).astype(np.int64)
    share = total // TICKS_PER_BAR
    ltq = np.repeat(share, TICKS_PER_BAR).reshape(n, TICKS_PER_BAR)
    ltq[:, 0] += total - share * TICKS_PER_BAR
    ltq = ltq.ravel()

    running = np.cumsum(ltq)
    day = (times + IST_OFFSET_NS) // DAY_NS
    new_day = np.flatnonzero(np.concatenate(([True], day[1:] != day[:-1])))
    before = np.concatenate(([0], running))[new_day]  # volume replayed before each day began
    counts = np.diff(np.concatenate((new_day, [len(times)])))
    cumulative = running - np.repeat(before, counts)

    oi = None if bars.oi is None else np.repeat(np.rint(bars.oi).astype(np.int64), TICKS_PER_BAR)
    return TickPath(bars.instrument, times, prices, ltq, cumulative, oi)


class Replayer:
    """Publishes the tick paths of several instruments to a hub, paced like the exchange.

    Args:
        bars: Bars per instrument id, each sorted by time.
        hub: Receives every tick through ``publish(tick)`` (a ``TickHub``).
        speed: Exchange seconds per wall second; 0 or ``math.inf`` = as fast as possible.
        start: Skip bars that start before this moment (naive = IST).
        clock: Monotonic seconds, for pacing.
        sleep: Awaitable sleep in seconds, for pacing.
        batch: Unpaced replays yield to the event loop after this many ticks.

    Attributes:
        published: Ticks published so far.
        total: Ticks the replay will publish in all.
        exchange_ns: Exchange time of the last published tick, or None before the first.
        done: True once every tick has been published.
    """

    def __init__(self, bars: dict[str, Bars], hub, *, speed: float = 60.0, start: datetime | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, batch: int = 1000) -> None:
        if math.isnan(speed) or speed < 0:
            raise ValueError(f"speed must be zero (as fast as possible) or positive, got {speed!r}")
        self.hub = hub
        self.speed = float(speed)
        self.start = start
        self.clock = clock
        self.sleep = sleep
        self.batch = max(1, batch)
        start_ns = None if start is None else to_utc_ns(start)
        self.paths: list[TickPath] = []
        self._hours: dict[int, tuple[int, int]] = {}  # IST day -> earliest open, latest close of its sessions
        for key, every in bars.items():
            minutes = infer_interval_minutes(np.asarray(every.ts, dtype=np.int64))  # before slicing
            kept = every if start_ns is None else every.slice(
                int(np.searchsorted(every.ts, start_ns, side="left")), len(every))
            if len(kept):
                segment = key.partition(":")[0] or "EQ"
                self.paths.append(bar_ticks(kept, bar_minutes=minutes, segment=segment))
                self._add_hours(np.unique((self.paths[-1].ts + IST_OFFSET_NS) // DAY_NS), segment)
        self.instruments = list(bars)
        self.total = sum(len(p) for p in self.paths)
        self.published = 0
        self.exchange_ns: int | None = None
        self.done = False

    def _add_hours(self, days: np.ndarray, segment: str) -> None:
        for day, opens, closes in zip(days.tolist(), *(a.tolist() for a in session_hours(days, segment))):
            known = self._hours.get(day, (opens, closes))
            self._hours[day] = (min(known[0], opens), max(known[1], closes))

    @property
    def first_ns(self) -> int | None:
        """Exchange time of the first tick to publish, or None if there is none."""
        return min((int(p.ts[0]) for p in self.paths), default=None)

    @property
    def paced(self) -> bool:
        return 0 < self.speed < math.inf

    def _merged(self) -> Iterator[tuple[int, int, int]]:
        """``(ts, path index, tick index)`` of every tick, in time order."""
        def stream(k: int, times: np.ndarray) -> Iterator[tuple[int, int, int]]:
            for i, t in enumerate(times.tolist()):
                yield t, k, i

        return heapq.merge(*(stream(k, p.ts) for k, p in enumerate(self.paths)))

    async def run(self) -> int:
        """Publish every tick, paced by ``speed``, and announce each session's close; return how many
        were published (``done`` is set once the last tick is out, before its session's close)."""
        publish = self.hub.publish
        paths = self.paths
        anchor_wall = anchor_exch = day = previous = 0
        started = False
        for ts, k, i in self._merged():
            today = (ts + IST_OFFSET_NS) // DAY_NS
            if not started:
                anchor_wall, anchor_exch, day, started = self.clock(), ts, today, True
            elif today != day:  # finish the old session at its close, then jump to the new one's open
                anchor_wall = await self._close(day, previous, anchor_wall, anchor_exch)
                anchor_exch = min(ts, today * DAY_NS - IST_OFFSET_NS + self._hours[today][0])
                day = today
            if self.paced:
                if ts != previous:
                    delay = anchor_wall + (ts - anchor_exch) / SECOND_NS / self.speed - self.clock()
                    if delay > 0:
                        await self.sleep(delay)
            elif self.published and self.published % self.batch == 0:
                await self.sleep(0)
            previous = ts
            publish(paths[k].tick(i))
            self.published += 1
            self.exchange_ns = ts
        self.done = True
        if started:
            await self._close(day, previous, anchor_wall, anchor_exch)
        return self.published

    async def _close(self, day: int, last_ns: int, anchor_wall: float, anchor_exch: int) -> float:
        """Reach the close of ``day``'s session (paced: in wall time too) and announce it to the hub
        (``hub.close_session``, when it has one: the matching engine expires its orders then).

        Returns:
            The wall time of the close, the anchor the next session's open is paced from.
        """
        close = max(day * DAY_NS - IST_OFFSET_NS + self._hours[day][1], last_ns)
        if self.paced:
            anchor_wall += (close - anchor_exch) / SECOND_NS / self.speed
            delay = anchor_wall - self.clock()
            if delay > 0:
                await self.sleep(delay)
        announce = getattr(self.hub, "close_session", None)
        if announce is not None:
            announce(close)
        return anchor_wall
