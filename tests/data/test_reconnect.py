"""``Backoff`` and ``Watchdog`` with fake clocks and a seeded random source."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from algocli.data.reconnect import Backoff, Watchdog, in_market_hours, nse_session_start, session_start_for

IST = timezone(timedelta(hours=5, minutes=30))


def ist(y, mo, d, h, mi, s=0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=IST).timestamp()


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


# --- Backoff ---------------------------------------------------------------------------------

def test_delays_are_full_jitter_under_a_doubling_ceiling_and_capped():
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    ceilings, delays = [], []
    for _ in range(10):
        ceilings.append(b.ceiling())
        delays.append(b.next_delay())
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings))
    assert max(delays[4:]) <= 8.0 and b.attempts == 10
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder


def test_same_seed_same_delays_different_seed_different_delays():
    def run(seed):
        b = Backoff(0.1, 5.0, rng=random.Random(seed))
        return [b.next_delay() for _ in range(8)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_jitter_spreads_over_the_whole_range():
    b = Backoff(1.0, 1.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(2000)]
    assert min(delays) < 0.05 and max(delays) > 0.95
    assert 0.45 < sum(delays) / len(delays) < 0.55


def test_a_stable_connection_resets_the_attempts_a_short_one_does_not():
    clock = FakeClock()
    b = Backoff(1.0, 60.0, stable_s=30.0, rng=random.Random(0), clock=clock)
    for _ in range(4):
        b.next_delay()
    b.connected()
    clock.advance(5)
    b.disconnected()  # dropped after 5 s: still failing
    assert b.attempts == 4 and b.ceiling() == 16.0
    b.connected()
    clock.advance(30)
    b.disconnected()
    assert b.attempts == 0 and b.ceiling() == 1.0
    b.disconnected()  # a disconnect without a connection changes nothing
    assert b.attempts == 0


def test_huge_attempt_counts_do_not_overflow():
    b = Backoff(0.5, 30.0, rng=random.Random(0))
    b.attempts = 10_000
    assert b.ceiling() == 30.0 and 0 <= b.next_delay() <= 30.0


@pytest.mark.parametrize("args", [(0, 1), (2, 1), (1, 2, 0.5)])
def test_invalid_backoff_parameters(args):
    base, cap, *factor = args
    with pytest.raises(ValueError):
        Backoff(base, cap, factor=factor[0] if factor else 2.0)


# --- market hours ----------------------------------------------------------------------------

@pytest.mark.parametrize("when,open_", [
    (ist(2026, 3, 4, 9, 14, 59), False),   # Wednesday, pre-open
    (ist(2026, 3, 4, 9, 15, 0), True),
    (ist(2026, 3, 4, 12, 0), True),
    (ist(2026, 3, 4, 15, 29, 59), True),
    (ist(2026, 3, 4, 15, 30, 0), False),
    (ist(2026, 3, 6, 10, 0), True),        # Friday
    (ist(2026, 3, 7, 10, 0), False),       # Saturday
    (ist(2026, 3, 8, 10, 0), False),       # Sunday
    (ist(2026, 3, 9, 3, 0), False),        # Monday night (UTC date is still Sunday)
])
def test_in_market_hours(when, open_):
    assert in_market_hours(when) is open_


def test_session_start_is_todays_0915_ist():
    assert nse_session_start(ist(2026, 3, 4, 13, 45)) == ist(2026, 3, 4, 9, 15)
    assert nse_session_start(ist(2026, 3, 4, 16, 0)) is None


# --- Watchdog --------------------------------------------------------------------------------

def test_silence_during_market_hours_expires():
    clock = FakeClock(ist(2026, 3, 4, 11, 0))
    wd = Watchdog(60, clock=clock)
    clock.advance(59)
    assert not wd.expired() and wd.silence() == pytest.approx(59)
    wd.touch()  # data arrived
    clock.advance(60)
    assert not wd.expired()
    clock.advance(0.5)
    assert wd.expired()


def test_silence_outside_market_hours_never_expires():
    clock = FakeClock(ist(2026, 3, 4, 16, 0))
    wd = Watchdog(60, clock=clock)
    clock.advance(3600 * 14)  # overnight, into pre-open at 06:00
    assert not wd.expired() and wd.silence() == 0.0
    clock.t = ist(2026, 3, 7, 11, 0)  # Saturday
    assert not wd.expired()


def test_silence_counts_from_the_open_not_from_the_last_tick_yesterday():
    clock = FakeClock(ist(2026, 3, 3, 15, 29))
    wd = Watchdog(60, clock=clock)
    wd.touch()  # last data on Tuesday afternoon
    clock.t = ist(2026, 3, 4, 9, 15, 1)
    assert not wd.expired() and wd.silence() == pytest.approx(1)
    clock.t = ist(2026, 3, 4, 9, 16, 1)
    assert wd.expired()  # a whole minute into the session with no data


def test_custom_session_rule():
    clock = FakeClock(1000.0)
    wd = Watchdog(5, clock=clock, session_start=lambda now: 0.0)  # always open
    clock.advance(5.5)
    assert wd.expired()
    with pytest.raises(ValueError):
        Watchdog(0)


def test_the_watchdog_knows_the_nse_calendar():
    # Bakri Id (Monday 17 June 2024) is no session: silence is normal all day.
    assert not in_market_hours(ist(2024, 6, 17, 11, 0))
    clock = FakeClock(ist(2024, 6, 17, 9, 0))
    dog = Watchdog(30, clock=clock)
    clock.t = ist(2024, 6, 17, 14, 0)
    assert dog.silence() == 0.0 and not dog.expired()
    # The Budget-day Saturday (1 Feb 2025) is a session.
    assert nse_session_start(ist(2025, 2, 1, 10, 0)) == ist(2025, 2, 1, 9, 15)
    # F&O closes at 15:40 from 3 Aug 2026; the cash market still at 15:30.
    fno = session_start_for("NSE_FNO")
    assert fno(ist(2026, 8, 3, 15, 35)) == ist(2026, 8, 3, 9, 15) and fno(ist(2026, 7, 31, 15, 35)) is None
    assert nse_session_start(ist(2026, 8, 3, 15, 35)) is None
