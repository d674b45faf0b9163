"""Reconnect policy for live feeds: jittered exponential backoff and a market-hours silence watchdog.

Broker-neutral: both classes take their clock (and the backoff its random source) as
arguments, so tests drive them without sleeping.

* ``Backoff``: "full jitter" (each delay is uniform in ``[0, min(cap, base * factor**n)]``),
  so many clients that lost the same server do not come back in lockstep. The attempt
  count resets once a connection has stayed up for ``stable_s`` seconds; a connection that
  drops straight away keeps growing the delay.
* ``Watchdog``: a socket can be open (and answer pings) while carrying no data. During the
  NSE session more than ``silence_s`` seconds without data means the feed is dead; outside it
  silence is normal and never fires. The session is the NSE calendar's
  (``algocli.market.calendar``): no session on weekends and trading holidays, special sessions
  (a Budget-day Saturday, Muhurat trading) with their own windows, and the dated session
  times (the F&O close at 15:40 from 2026-08-03). Silence is counted from the later of the
  last data and the window's open, so a feed idle overnight is not declared dead at 09:15:00.
* A replay (``algo sandbox``: the feed's ``in_order``) has its own market hours: the exchange
  time its ticks carry, not the wall clock's, and it skips nights. ``ReplayPace`` follows its
  ticks: silence counts whatever the wall clock says (``ReplayPace.session_start``), except once
  the latest tick was the last minute of its session (the replay has ended: it moves to the next
  session's open at once otherwise), and, once the replay's pace is known (its first gap), it is
  tolerated up to three times the usual wall gap between its ticks (``ReplayPace.tolerance``), so
  a slow replay of coarse bars (daily bars at 60x: four ticks two minutes apart) is not taken for
  a silent one.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from algocli.market.calendar import NseCalendar, default_calendar

IST = timezone(timedelta(hours=5, minutes=30), "IST")


def session_start_for(segment: str = "EQ", calendar: NseCalendar | None = None) -> Callable[[float], float | None]:
    """A ``Watchdog.session_start`` for ``segment`` (``EQ``, ``FNO``, ``NSE_FNO`` ...) on the NSE calendar.

    Args:
        segment: Whose session counts.
        calendar: The NSE calendar; default the shipped one plus the user's folder.

    Returns:
        ``now`` (epoch seconds) → epoch seconds when the current session window opened, or
        None outside every window (nights, weekends, holidays).
    """
    def start(now: float) -> float | None:
        cal = calendar or default_calendar()
        local = datetime.fromtimestamp(now, IST)
        session = cal.session(local.date(), segment)
        if session is None:
            return None
        for opens, closes in session.windows:  # [open, close), like the exchange's normal market
            begin = local.replace(hour=opens.hour, minute=opens.minute, second=0, microsecond=0)
            end = local.replace(hour=closes.hour, minute=closes.minute, second=0, microsecond=0)
            if begin <= local < end:
                return begin.timestamp()
        return None

    return start


def nse_session_start(now: float) -> float | None:
    """Epoch seconds when the NSE equity session window containing ``now`` (epoch seconds)
    opened, or None outside it (see ``session_start_for``)."""
    return _EQ_START(now)


_EQ_START = session_start_for("EQ")


class ReplayPace:
    """What a replayed feed's ticks say of the replay: the exchange time of the latest one and how
    far apart (wall seconds) its ticks usually come.

    Args:
        clock: Seconds, the watchdog's clock (``time.time``); tests pass a fake.
        calendar: The NSE calendar; default the shipped one plus the user's folder.
        window: How many recent gaps the usual one is the median of.
    """

    def __init__(self, clock: Callable[[], float] = time.time, calendar: NseCalendar | None = None,
                 window: int = 64) -> None:
        self._clock = clock
        self._calendar = calendar
        self.last_ns: int | None = None  # exchange time of the latest tick
        self._last_wall = 0.0
        self._gaps: deque[float] = deque(maxlen=window)
        self._ended: tuple[int | None, bool] = (None, False)  # (last_ns, whether it closed its session)

    def tick(self, ts_ns: int) -> None:
        """A tick with exchange time ``ts_ns`` arrived; ticks of one instant (several instruments) count once."""
        last = self.last_ns
        if last is not None and ts_ns <= last:
            return
        now = self._clock()
        if last is not None:
            self._gaps.append(now - self._last_wall)
        self.last_ns, self._last_wall = ts_ns, now

    def usual_gap(self) -> float:
        """The median wall gap between the replay's ticks (0 before two ticks)."""
        gaps = sorted(self._gaps)
        return gaps[len(gaps) // 2] if gaps else 0.0

    def tolerance(self) -> float:
        """Silence (wall seconds) that is still the replay's own pace: three usual gaps."""
        return 3.0 * self.usual_gap()

    def session_start(self, now: float) -> float | None:
        """A ``Watchdog.session_start``: ``-inf`` (silence counts from the last data, whatever the
        wall clock says) while the replay runs; None (silence is normal) once its latest tick was in
        the last minute of its day's session or after it: the replay has ended."""
        last = self.last_ns
        if last is None:
            return -math.inf
        if self._ended[0] != last:
            self._ended = (last, _at_close(last, self._calendar or default_calendar()))
        return None if self._ended[1] else -math.inf


def _at_close(ts_ns: int, calendar: NseCalendar) -> bool:
    """True when ``ts_ns`` is within a minute of its day's latest close (equity or F&O), or later."""
    local = datetime.fromtimestamp(ts_ns / 1e9, IST)
    closes = [closes for segment in ("EQ", "FNO") if (session := calendar.session(local.date(), segment)) is not None
              for _, closes in session.windows]
    close = max(closes, default=None)
    end = local.replace(hour=close.hour if close else 15, minute=close.minute if close else 30, second=0,
                        microsecond=0)
    return local >= end - timedelta(minutes=1)


def in_market_hours(now: float) -> bool:
    """True inside the NSE equity session for the epoch-seconds instant ``now``."""
    return nse_session_start(now) is not None


class Backoff:
    """Delays between reconnection attempts.

    Args:
        base: Upper bound of the first delay, seconds.
        cap: No delay exceeds this.
        factor: Growth of the upper bound per failed attempt.
        stable_s: A connection that lasted this long resets the attempt count.
        rng: Source of the jitter; pass ``random.Random(seed)`` for repeatable delays.
        clock: Monotonic seconds, used only to time how long a connection lasted.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, *, factor: float = 2.0, stable_s: float = 60.0,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError("Backoff needs 0 < base <= cap and factor >= 1")
        self.base, self.cap, self.factor, self.stable_s = base, cap, factor, stable_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.attempts = 0
        self._up_since: float | None = None

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # factor ** attempts overflows for huge counts; the cap is reached long before.
        exp = min(self.attempts, 64)
        return min(self.cap, self.base * self.factor ** exp)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more attempt."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempts += 1
        return delay

    def connected(self) -> None:
        """A connection is up: start timing it."""
        self._up_since = self._clock()

    def disconnected(self) -> None:
        """The connection went down: reset if it had been stable, else keep growing."""
        if self._up_since is not None and self._clock() - self._up_since >= self.stable_s:
            self.reset()
        self._up_since = None

    def reset(self) -> None:
        self.attempts = 0


class Watchdog:
    """Detects a connected feed that has gone silent while the market is open.

    Args:
        silence_s: Longest tolerated gap between data messages during the session.
        clock: Epoch seconds (``time.time``); tests pass a fake.
        session_start: ``now`` → epoch seconds when the current session opened, or None
            while the market is closed. Defaults to the NSE equity session on the NSE calendar
            (``session_start_for`` gives another segment's).
        tolerance: Seconds of silence the data's own pace may leave (a slow replay's,
            ``ReplayPace.tolerance``); the feed is dead only past the larger of it and ``silence_s``.
    """

    def __init__(self, silence_s: float, *, clock: Callable[[], float] = time.time,
                 session_start: Callable[[float], float | None] = nse_session_start,
                 tolerance: Callable[[], float] | None = None) -> None:
        if silence_s <= 0:
            raise ValueError("silence_s must be positive")
        self.silence_s = silence_s
        self._clock = clock
        self._session_start = session_start
        self._tolerance = tolerance
        self.last = clock()

    def touch(self) -> None:
        """Data arrived (call on every message, and when a connection opens)."""
        self.last = self._clock()

    def silence(self) -> float:
        """Seconds of silence that count: only time inside the session, 0 outside it."""
        now = self._clock()
        start = self._session_start(now)
        if start is None:
            return 0.0
        return max(0.0, now - max(self.last, start))

    def expired(self) -> bool:
        """True when the feed should be treated as dead and reconnected."""
        limit = self.silence_s
        if self._tolerance is not None:
            limit = max(limit, self._tolerance())
        return self.silence() > limit
