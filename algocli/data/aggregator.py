"""Ticks to candles for paper and live trading, on the same NSE grid as the backtest.

``CandleAggregator`` builds candles of one interval (1m, 3m, 5m, 10m, 15m, 25m, 30m, 1h or 1d) for any
number of instruments and hands each one to ``on_candle`` once it has closed.

Rules
-----
Buckets
    A tick goes into the bucket of its *exchange* time (``Tick.ts``, not the time it
    arrived), on the grid of ``algocli.domain.session``: intraday buckets anchored at
    09:15 IST (25-minute candles start 09:15, 09:40, 10:05 ...), daily ones at IST
    midnight, exactly as ``csv_feed.resample`` labels bars. Within a bucket the open is
    the earliest tick by exchange time, the close the latest, high and low the extremes.

Session
    Ticks outside the instrument's session that day (``NseCalendar.session`` for its segment:
    09:15-15:30 IST for the cash market, F&O until 15:40 from 2026-08-03, a special session's
    own hours) are ignored and counted in ``outside``. The exchange's own timestamp is trusted
    for the date: a tick on a day the calendar has no session for is taken with the segment's
    regular hours of the nearest earlier trading day. The last candle of the day is cut at that
    session's close (an F&O hourly candle from 15:15 ends at 15:40 from 2026-08-03).

Release
    A candle closes:

    - when a tick of the same instrument arrives in a later bucket, or
    - when the exchange clock has passed the bucket end plus ``grace_s`` (2 s by
      default): either ``on_time(now)`` is called with such a ``now``, or a tick of
      *another* instrument arrives with an exchange time that late.

    Candles are released (passed to ``on_candle``) by period, across instruments: a closed
    candle waits while another instrument still has a candle forming that ends at or before
    its end, and is released with it once that one has closed too (by its own later tick, or
    by the clock). The candles released together come in (start, first-seen instrument)
    order. So when the index's 10:00 candle reaches a strategy, the options' 10:00 candles
    have been released before it or with it, never after, as every instrument's bar of one
    instant is in a backtest's history before any strategy runs for it. A live candle can
    wait up to ``grace_s`` past its end for a quiet instrument of its period.

    So a strategy never sees a candle before its end time. The last candle of the day
    ends at the session close (15:30, or 15:40 for F&O from 2026-08-03) and is released by ``on_time`` (or by the next day's first tick).

Grace, live and replayed
    A live feed interleaves its instruments loosely (an option's tick of 10:14:59 may arrive
    after the index's of 10:15:00, over another socket or in another packet), so a tick of one
    instrument closes another's candle only ``grace_s`` after its end: a candle is not closed
    before its last ticks could arrive. A feed that delivers every tick in exchange-time order
    across instruments (``ordered=True``: ``algo sandbox``'s replay, whose ticks are merged by
    time) has no late ticks, so the grace of ticks is 0 there: the first tick at or after a
    period's end closes every candle of that period, before that tick is matched against
    orders. That makes a replay deterministic: an order placed on any candle of period t fills
    on each instrument's first tick of t+1, its open, as a ``next_open`` backtest fills it.
    ``on_time`` keeps the grace in both cases (its ``now`` is an estimate of the exchange clock).

    ``now`` must be on the exchange's clock. Live, that is the wall clock (the default,
    ``time.time_ns``). Against a replay that runs faster than real time or in the past
    (``algo sandbox``, whose ``GET /health`` reports its exchange time and speed), pass
    the replay's clock: the wall clock would release every candle right after its first
    tick. Ticks alone release candles correctly, so without a trustworthy clock rely on
    them and call ``on_time`` only at the end of the session.

Empty intervals
    A bucket without ticks produces no candle. There are no synthetic flat bars: the gap
    shows as a missing bar, as it does in the brokers' own candle data.

Late ticks
    A tick whose bucket has already been released, or is older than the instrument's
    forming candle, is dropped and counted in ``late``. It does not move the volume base,
    so the volume it reports is counted with the next tick instead of being lost.

Volume
    Feeds send the *cumulative* day volume (``Tick.volume``); a candle's volume is the
    sum of its ticks' differences from the previous tick seen for the instrument:

    - no cumulative volume on the tick (``volume is None``): its ``ltq`` counts;
    - first tick of an IST day (the first tick ever seen, or the first after a day
      change, which resets the base): the cumulative volume counts in full if the tick
      falls in the session's first bucket (nothing traded earlier today can belong to
      another candle; pre-open auction volume lands in the 09:15 candle), otherwise only
      its ``ltq`` counts, because the rest belongs to candles this aggregator never saw;
    - a cumulative volume lower than the previous one is treated as a reset of the
      counter: the tick's ``ltq`` counts, it becomes the new base (counted in
      ``volume_resets``), and candle volume is never negative.

Shutdown and resume
    A candle that has not closed is never released as closed. At shutdown
    ``on_time(now, grace_s=0)`` releases what has ended by ``now`` (no tick can arrive any
    more, so the grace is not needed); ``open_candles()`` then gives the candles still
    forming, with their volume base, for the journal, and ``resume(state)`` continues
    one in a new process. A resumed candle is released as closed only once a tick of its
    own bucket has arrived after the resume (its open and volume are then whole; a high
    or low traded while nothing ran is not seen). If its bucket has passed instead, by a
    later tick of the instrument or by the clock, it is dropped (counted in ``dropped``):
    its close was never seen. The volume base is then forgotten, as on a fresh start.

Ordering contract (the paper engine relies on it)
    ``on_tick(tick)`` first releases every candle that the tick closes, calling
    ``on_candle`` for each in bucket order, and only then adds the tick to its new
    bucket, and returns. The engine then passes the same tick to the simulated broker.
    An order placed while handling candle t's close therefore fills on the first tick of
    candle t+1, which is that candle's open: the same price a ``next_open`` backtest
    uses. If ``on_candle`` raises, the exception propagates; candles not yet delivered
    stay queued and are delivered, in order, on the next call, and the tick is still added.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from datetime import timedelta

from algocli.domain.models import Interval, Tick
from algocli.domain.session import DAY_NS, MINUTE_NS, SESSION_OPEN_NS, bucket_end, bucket_start, ist_date, ist_day_start
from algocli.market.calendar import NseCalendar, default_calendar

__all__ = ["CandleAggregator", "ClosedCandle"]

_NEVER = -(1 << 63)
_FOREVER = (1 << 63) - 1


@dataclass(slots=True)
class ClosedCandle:
    """One finished candle of one instrument.

    ``start`` and ``end`` are UTC nanoseconds (``end`` exclusive: the moment it closed);
    ``volume`` is the traded quantity inside the bucket; ``oi`` the last open interest
    seen, or None when the feed carries none; ``ticks`` how many ticks built it.
    """

    instrument: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int | None = None
    end: int = 0
    ticks: int = 0


class _Forming:
    """The candle being built for one instrument, plus its volume base."""

    __slots__ = ("start", "end", "open", "open_ts", "high", "low", "close", "close_ts", "volume", "oi",
                 "ticks", "seq", "released", "base_day", "base_cum", "instrument", "resumed", "segment",
                 "day_lo", "day_hi", "open_ns", "close_ns")

    # what ``CandleAggregator.open_candles`` saves and ``resume`` restores
    SAVED = ("start", "end", "open", "open_ts", "high", "low", "close", "close_ts", "volume", "oi", "ticks",
             "base_day", "base_cum")

    def __init__(self, instrument: str, seq: int) -> None:
        self.instrument = instrument
        self.seq = seq  # first-seen order: ties between instruments release in this order
        self.start = _NEVER  # no forming candle while start == _NEVER
        self.end = _NEVER
        self.released = _NEVER  # start of the last released bucket
        self.base_day = _NEVER
        self.base_cum = 0
        self.open = self.high = self.low = self.close = 0.0
        self.open_ts = self.close_ts = 0
        self.volume = 0
        self.oi: int | None = None
        self.ticks = 0
        self.resumed = False  # restored from a previous process, no tick of its bucket seen since
        self.segment: str | None = None  # the calendar segment; None: no NSE calendar (regular hours)
        self.day_lo = self.day_hi = 0  # the IST day whose session bounds are cached
        self.open_ns = self.close_ns = 0

    def snapshot(self) -> ClosedCandle:
        return ClosedCandle(self.instrument, self.start, self.open, self.high, self.low, self.close,
                            self.volume, self.oi, self.end, self.ticks)


class CandleAggregator:
    """Builds closed candles of one interval from ticks; see the module docstring for the rules.

    Args:
        interval: Candle interval (``Interval`` or its spelling, e.g. ``"25m"``).
        on_candle: Called with each ``ClosedCandle`` once it has closed.
        clock: Exchange time now, UTC ns, used by ``on_time()`` without an argument.
            Defaults to the wall clock ``time.time_ns``.
        calendar: The NSE calendar for session hours; default ``default_calendar()``.
        grace_s: Seconds past a bucket's end before the clock (rather than a tick of the
            same instrument) may release it; absorbs feed latency.
        ordered: The feed delivers ticks in exchange-time order across instruments (a
            replay): another instrument's tick closes a candle with no grace ("Grace, live
            and replayed"). Settable later through ``ordered``.

    Attributes:
        ticks: Ticks accepted into a candle.
        late: Ticks dropped because their bucket was already released.
        dropped: Resumed candles dropped because their bucket passed before a tick of it came.
        outside: Ticks ignored because they fell outside the instrument's session.
        volume_resets: Ticks whose cumulative volume went backwards.
    """

    __slots__ = ("interval", "on_candle", "clock", "grace_ns", "tick_grace_ns", "_state", "_pending", "_held",
                 "_next_end", "ticks", "late", "outside", "volume_resets", "dropped", "calendar")

    def __init__(self, interval: Interval | str, on_candle: Callable[[ClosedCandle], object], *,
                 clock: Callable[[], int] | None = None, grace_s: float = 2.0,
                 calendar: NseCalendar | None = None, ordered: bool = False) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be zero or positive, got {grace_s!r}")
        self.interval = Interval(interval)
        self.on_candle = on_candle
        self.clock = clock or time.time_ns
        self.grace_ns = round(grace_s * 1e9)
        self.tick_grace_ns = 0 if ordered else self.grace_ns  # another instrument's tick closes after this
        self._state: dict[str, _Forming] = {}
        self._pending: deque[ClosedCandle] = deque()
        self._held: list[tuple[int, int, ClosedCandle]] = []  # closed, waiting for their period: (start, seq, c)
        self._next_end = _FOREVER  # earliest end among forming candles: skips the scan on most ticks
        self.ticks = 0
        self.late = 0
        self.outside = 0
        self.volume_resets = 0
        self.dropped = 0
        self.calendar = calendar

    def on_tick(self, tick: Tick) -> None:
        """Release the candles this tick closes (calling ``on_candle``), then add the tick."""
        ts = tick.ts
        state = self._state.get(tick.instrument)
        if state is None:
            state = self._state[tick.instrument] = self._new_state(tick.instrument)
        if not state.day_lo <= ts < state.day_hi:
            self._session_of(state, ts)
        if not state.open_ns <= ts < state.close_ns:
            self.outside += 1
            return
        if state.start <= ts < state.end:
            new_start = None
            state.resumed = False  # its own bucket goes on: it may close normally now
        else:
            new_start = bucket_start(ts, self.interval)
            if new_start <= state.released or new_start < state.start:
                self.late += 1
                return
        self._release_due(ts - self.tick_grace_ns, None if new_start is None else state)
        if not self._pending:
            self._add(state, tick, new_start)
            return
        try:
            self._deliver()
        finally:  # a raising callback must not cost the candle data this tick
            self._add(state, tick, new_start)

    def on_time(self, now_ns: int | None = None, *, grace_s: float | None = None) -> int:
        """Release every candle whose end plus the grace is at or before ``now_ns``.

        Args:
            now_ns: Exchange time now, UTC ns; defaults to ``clock()``.
            grace_s: Overrides the grace for this call (0 at shutdown, when no tick can come).

        Returns:
            How many candles were released.
        """
        now = self.clock() if now_ns is None else now_ns
        grace = self.grace_ns if grace_s is None else round(grace_s * 1e9)
        released = self._release_due(now - grace, None)
        if self._pending:
            self._deliver()
        return released

    def forming(self, instrument: str) -> ClosedCandle | None:
        """A copy of the candle still being built for ``instrument`` (for display), or None."""
        state = self._state.get(instrument)
        if state is None or state.start == _NEVER:
            return None
        return state.snapshot()

    def open_candles(self) -> list[dict]:
        """The candles still forming, each as a dict that ``resume`` takes (for the journal at shutdown)."""
        return [{"instrument": st.instrument, **{k: getattr(st, k) for k in _Forming.SAVED}}
                for st in self._state.values() if st.start != _NEVER]

    def resume(self, saved: dict) -> None:
        """Continue a candle from ``open_candles()`` of a previous process (see "Shutdown and resume").

        Args:
            saved: One dict of ``open_candles()``, e.g. read back from the journal.
        """
        inst = saved["instrument"]
        state = self._state.get(inst)
        if state is None:
            state = self._state[inst] = self._new_state(inst)
        for k in _Forming.SAVED:
            setattr(state, k, saved[k])
        state.resumed = True
        self._next_end = min(self._next_end, state.end)

    # -- internals -------------------------------------------------------------------

    def _new_state(self, instrument: str) -> _Forming:
        from algocli.data.sessions import instrument_segment

        state = _Forming(instrument, len(self._state))
        state.segment = instrument_segment((instrument,))
        return state

    def _session_of(self, state: _Forming, ts: int) -> None:
        """Cache the session bounds of the IST day of ``ts`` for ``state``'s segment (once a day)."""
        day_lo = ist_day_start(ts)
        state.day_lo, state.day_hi = day_lo, day_lo + DAY_NS
        if state.segment is None:  # no NSE calendar: the regular hours
            state.open_ns, state.close_ns = day_lo + SESSION_OPEN_NS, day_lo + SESSION_OPEN_NS + 375 * MINUTE_NS
            return
        calendar = self.calendar or default_calendar()
        day = ist_date(ts)
        session = calendar.session(day, state.segment)
        back = day
        while session is None and (day - back).days < 15:  # a tick on a closed day: that day's regular hours
            back -= timedelta(days=1)
            session = calendar.session(back, state.segment)
            session = session if session is None or not session.special else None
        if session is None:
            state.open_ns, state.close_ns = day_lo + SESSION_OPEN_NS, day_lo + SESSION_OPEN_NS + 375 * MINUTE_NS
            return
        open_ns, close_ns = session.bounds_ns()
        shift = day_lo - ist_day_start(open_ns)  # the earlier day's hours, moved onto this day
        state.open_ns, state.close_ns = open_ns + shift, close_ns + shift

    def _bucket_end(self, state: _Forming, start: int) -> int:
        """The end of the bucket starting at ``start``: ``start + interval``, cut at the session close."""
        if self.interval is Interval.DAY_1:
            return state.close_ns
        full = start + self.interval.minutes * MINUTE_NS
        return state.close_ns if start < state.close_ns < full else full

    def _release_due(self, cutoff: int, also: _Forming | None) -> int:
        """Close the forming candles that ended by ``cutoff``, and ``also`` (closed by its own tick);
        queue every closed candle whose period no forming candle still belongs to ("Release")."""
        if cutoff < self._next_end and (also is None or also.start == _NEVER):
            return 0
        closed = [s for s in self._state.values() if s.start != _NEVER and (s is also or s.end <= cutoff)]
        for s in closed:
            if s.resumed:  # its bucket passed while nothing ran: its close was never seen
                self.dropped += 1
                s.resumed = False
                s.base_day = _NEVER  # nor the volume traded meanwhile: start the base afresh
            else:
                self._held.append((s.start, s.seq, s.snapshot()))
            s.released = s.start
            s.start = s.end = _NEVER
        self._next_end = min((s.end for s in self._state.values() if s.start != _NEVER), default=_FOREVER)
        return self._queue_held()

    def _queue_held(self) -> int:
        """Queue the held candles that end before every forming one (their period is complete);
        return how many."""
        held = self._held
        if not held:
            return 0
        horizon = self._next_end
        ready = [h for h in held if h[2].end < horizon]
        if ready:
            self._held = [h for h in held if h[2].end >= horizon] if len(ready) < len(held) else []
            ready.sort(key=lambda h: (h[0], h[1]))
            self._pending.extend(h[2] for h in ready)
        return len(ready)

    def flush(self) -> int:
        """Release the closed candles still waiting for their period (at shutdown: no tick can
        close the forming ones any more, and those stay forming). Returns how many."""
        horizon, self._next_end = self._next_end, _FOREVER
        n = self._queue_held()
        self._next_end = horizon
        if self._pending:
            self._deliver()
        return n

    @property
    def ordered(self) -> bool:
        """True when other instruments' ticks close candles with no grace (an in-order replay)."""
        return self.tick_grace_ns == 0

    @ordered.setter
    def ordered(self, value: bool) -> None:
        self.tick_grace_ns = 0 if value else self.grace_ns

    def _deliver(self) -> None:
        pending = self._pending
        while pending:
            candle = pending[0]
            self.on_candle(candle)
            pending.popleft()  # only once delivered: a raising callback gets it again next time

    def _add(self, state: _Forming, tick: Tick, new_start: int | None) -> None:
        """Add the tick to the forming candle, or open one at ``new_start``."""
        ts, price = tick.ts, tick.ltp
        volume = self._volume(state, tick)
        self.ticks += 1
        if new_start is not None:
            state.start = new_start
            state.end = self._bucket_end(state, new_start)
            if state.end < self._next_end:
                self._next_end = state.end
            state.open = state.high = state.low = state.close = price
            state.open_ts = state.close_ts = ts
            state.volume = volume
            state.oi = tick.oi
            state.ticks = 1
            return
        if price > state.high:
            state.high = price
        if price < state.low:
            state.low = price
        if ts >= state.close_ts:
            state.close, state.close_ts = price, ts
        if ts < state.open_ts:  # out of order inside the bucket: the earliest trade opens it
            state.open, state.open_ts = price, ts
        state.volume += volume
        if tick.oi is not None:
            state.oi = tick.oi
        state.ticks += 1

    def _volume(self, state: _Forming, tick: Tick) -> int:
        """The quantity this tick adds to its candle (see "Volume" in the module docstring)."""
        cum = tick.volume
        ltq = tick.ltq if tick.ltq > 0 else 0
        if cum is None:
            return ltq
        day = ist_day_start(tick.ts)
        if state.base_day != day:
            first_bucket = tick.ts < bucket_end(day + SESSION_OPEN_NS, self.interval)
            added = cum if first_bucket else ltq
        elif cum < state.base_cum:
            self.volume_resets += 1
            added = ltq
        else:
            added = cum - state.base_cum
        state.base_day = day
        state.base_cum = cum
        return added if added > 0 else 0
