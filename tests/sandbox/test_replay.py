"""Candles to ticks: the path through O/H/L/C, cumulative volume, time order and pacing."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from algocli.data.aggregator import CandleAggregator
from algocli.data.csv_feed import load_csv, resample
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import in_session_hours
from algocli.sandbox.replay import IST, TICKS_PER_BAR, Replayer, bar_ticks, to_utc_ns

ROOT = Path(__file__).resolve().parents[2]
S = 10**9
MIN = 60 * S
DAY = 86_400 * S


def minute_bars() -> Bars:
    return load_csv(ROOT / "data" / "NSE_EQ_2885.csv", "NSE_EQ:2885")


def daily_bars(n: int = 60) -> Bars:
    return load_csv(ROOT / "data" / "NSE_EQ_1333.csv", "NSE_EQ:1333").slice(0, n)


def ist_ns(text: str) -> int:
    return to_utc_ns(datetime.fromisoformat(text))


class Hub:
    def __init__(self, clock=None) -> None:
        self.ticks = []
        self.at = []
        self.clock = clock

    def publish(self, tick) -> None:
        self.ticks.append(tick)
        if self.clock is not None:
            self.at.append(self.clock())


class FakeTime:
    """A monotonic clock that only moves when the replay sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def replay(bars: dict[str, Bars], **kw) -> Hub:
    hub = Hub()
    replayer = Replayer(bars, hub, speed=0, **kw)
    assert asyncio.run(replayer.run()) == replayer.total == len(hub.ticks) == replayer.published
    assert replayer.done
    return hub


@pytest.mark.parametrize("bars", [minute_bars(), daily_bars()], ids=["1m", "1d"])
def test_path_goes_through_open_high_low_close(bars):
    path = bar_ticks(bars)
    assert len(path) == TICKS_PER_BAR * len(bars)
    prices = path.price.reshape(-1, TICKS_PER_BAR)
    assert np.array_equal(prices[:, 0], bars.open)  # exactly, not approximately
    assert np.array_equal(prices[:, -1], bars.close)
    assert np.array_equal(prices.max(axis=1), bars.high)
    assert np.array_equal(prices.min(axis=1), bars.low)
    bullish = bars.close >= bars.open
    assert bullish.any() and (~bullish).any()
    assert np.array_equal(prices[bullish, 1], bars.low[bullish])  # O -> L -> H -> C
    assert np.array_equal(prices[bullish, 2], bars.high[bullish])
    assert np.array_equal(prices[~bullish, 1], bars.high[~bullish])  # O -> H -> L -> C
    assert np.array_equal(prices[~bullish, 2], bars.low[~bullish])


def test_minute_ticks_sit_inside_their_bar():
    bars = minute_bars()
    times = bar_ticks(bars).ts.reshape(-1, TICKS_PER_BAR)
    assert np.array_equal(times[:, 0], bars.ts)  # open exactly at the bar start
    assert np.array_equal(times[:, -1], bars.ts + MIN - S)  # close a second before the end
    assert (np.diff(times, axis=1) > 0).all()
    assert all(in_session_hours(int(t)) for t in times.ravel())


def test_daily_ticks_span_the_session():
    bars = daily_bars(5)
    times = bar_ticks(bars).ts.reshape(-1, TICKS_PER_BAR)
    midnight = bars.ts
    assert np.array_equal(times[:, 0], midnight + (9 * 60 + 15) * MIN)
    assert np.array_equal(times[:, -1], midnight + (15 * 60 + 30) * MIN - S)


def test_hourly_bars_are_cut_at_the_close():
    bars = resample(minute_bars(), Interval.HOUR_1)
    times = bar_ticks(bars, bar_minutes=60).ts.reshape(-1, TICKS_PER_BAR)
    last = (bars.ts + IST_OFFSET_NS) % DAY == (15 * 60 + 15) * MIN
    assert last.any()
    assert np.array_equal(times[last, -1], bars.ts[last] + 15 * MIN - S)


def test_cumulative_volume_per_day_sums_to_the_bars_volume():
    bars = minute_bars()
    path = bar_ticks(bars)
    day_of_tick = (path.ts + IST_OFFSET_NS) // DAY
    day_of_bar = (bars.ts + IST_OFFSET_NS) // DAY
    days = np.unique(day_of_bar)
    assert len(days) >= 2
    for day in days:
        ticks = day_of_tick == day
        cum, ltq = path.volume[ticks], path.ltq[ticks]
        assert cum[-1] == bars.volume[day_of_bar == day].sum()
        assert cum[0] == ltq[0]  # the count restarts every day
        assert np.array_equal(np.diff(cum), ltq[1:])  # ltq is the increment
    assert (path.ltq >= 0).all()
    assert np.array_equal(path.ltq.reshape(-1, TICKS_PER_BAR).sum(axis=1), bars.volume)


def test_replayed_ticks_aggregate_back_to_the_same_candles():
    bars = minute_bars()
    ticks = replay({bars.instrument: bars}).ticks
    for interval, expected in ((Interval.MINUTE_1, bars), (Interval.MINUTE_25, resample(bars, Interval.MINUTE_25))):
        candles = []
        agg = CandleAggregator(interval, candles.append)
        for tick in ticks:
            agg.on_tick(tick)
        agg.on_time(ticks[-1].ts + DAY)
        assert [c.start for c in candles] == expected.ts.tolist()
        for field in ("open", "high", "low", "close", "volume"):
            assert [getattr(c, field) for c in candles] == getattr(expected, field).tolist(), field


def test_replayed_daily_ticks_aggregate_back_to_daily_candles():
    bars = daily_bars()
    candles = []
    agg = CandleAggregator("1d", candles.append)
    for tick in replay({bars.instrument: bars}).ticks:
        agg.on_tick(tick)
    agg.on_time(int(bars.ts[-1]) + 2 * DAY)
    assert [c.start for c in candles] == bars.ts.tolist()
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in candles] == list(zip(
        bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist(), bars.volume.tolist()))


def test_instruments_interleave_in_time_order():
    one = minute_bars().slice(0, 30)
    two = Bars("NSE_EQ:9", one.ts[::5].copy(), one.open[::5] * 2, one.high[::5] * 2, one.low[::5] * 2,
               one.close[::5] * 2, one.volume[::5])
    ticks = replay({one.instrument: one, two.instrument: two}).ticks
    times = [t.ts for t in ticks]
    assert times == sorted(times)
    assert len(ticks) == TICKS_PER_BAR * (30 + 6)
    assert [t.ltp for t in ticks if t.instrument == "NSE_EQ:9"] == bar_ticks(two).price.tolist()
    assert [t.ltp for t in ticks if t.instrument == "NSE_EQ:2885"] == bar_ticks(one).price.tolist()
    ties = [(a.instrument, b.instrument) for a, b in zip(ticks, ticks[1:]) if a.ts == b.ts]
    assert ties and set(ties) == {("NSE_EQ:2885", "NSE_EQ:9")}  # dict order breaks ties


def test_start_skips_earlier_bars():
    bars = minute_bars()
    start = datetime(2024, 6, 10, 10, 0)
    ticks = replay({bars.instrument: bars}, start=start).ticks
    assert ticks[0].ts == ist_ns("2024-06-10 10:00")
    assert len(ticks) == TICKS_PER_BAR * int((bars.ts >= ist_ns("2024-06-10 10:00")).sum())
    assert ticks[0].volume == ticks[0].ltq  # the day's count starts with the first replayed tick
    aware = datetime(2024, 6, 10, 4, 30, tzinfo=timezone.utc)  # 10:00 IST
    assert replay({bars.instrument: bars}, start=aware).ticks[0].ts == ist_ns("2024-06-10 10:00")
    assert to_utc_ns(datetime(2024, 6, 10, 10, 0, tzinfo=IST)) == ist_ns("2024-06-10 10:00")


def test_pacing_follows_exchange_time_over_speed():
    bars = minute_bars().slice(0, 20)
    fake = FakeTime()
    hub = Hub(fake.clock)
    asyncio.run(Replayer({bars.instrument: bars}, hub, speed=60, clock=fake.clock, sleep=fake.sleep).run())
    first = hub.ticks[0].ts
    expected = [1000.0 + (t.ts - first) / S / 60 for t in hub.ticks]
    assert hub.at == pytest.approx(expected, abs=1e-9)
    assert hub.at[TICKS_PER_BAR] == pytest.approx(1001.0)  # one 1-minute bar per second
    assert all(s > 0 for s in fake.sleeps)


def test_pacing_skips_the_night():
    bars = minute_bars()
    day = (bars.ts + IST_OFFSET_NS) // DAY
    keep = np.flatnonzero(day != day[0])[:3]  # the next session's first three bars
    two = np.concatenate((np.arange(len(bars))[day == day[0]][-2:], keep))
    picked = Bars(bars.instrument, bars.ts[two], bars.open[two], bars.high[two], bars.low[two],
                  bars.close[two], bars.volume[two])
    fake = FakeTime()
    hub = Hub(fake.clock)
    replayer = Replayer({bars.instrument: picked}, hub, speed=60, clock=fake.clock, sleep=fake.sleep)
    asyncio.run(replayer.run())
    morning = 2 * TICKS_PER_BAR
    close = int(picked.ts[1]) + MIN  # 15:30 on the first day
    assert hub.at[morning] == pytest.approx(1000.0 + (close - int(picked.ts[0])) / S / 60)
    assert hub.at[-1] - hub.at[morning] == pytest.approx((hub.ticks[-1].ts - hub.ticks[morning].ts) / S / 60)


class ClosingHub(Hub):
    """A hub that also hears the session closes (``close_session``), with the fake time of each."""

    def __init__(self, clock=None) -> None:
        super().__init__(clock)
        self.closes: list[tuple[int, float | None, int]] = []  # (close, fake time, ticks published before it)

    def close_session(self, ns: int) -> None:
        self.closes.append((ns, self.clock() if self.clock else None, len(self.ticks)))


def test_each_session_close_is_announced_after_its_last_tick_and_paced_to_its_time():
    bars = minute_bars()
    day = (bars.ts + IST_OFFSET_NS) // DAY
    first_day = np.flatnonzero(day == day[0])
    two = np.concatenate((first_day[-2:], np.flatnonzero(day != day[0])[:3]))  # 15:28, 15:29; then 09:15-09:17
    picked = Bars(bars.instrument, bars.ts[two], bars.open[two], bars.high[two], bars.low[two],
                  bars.close[two], bars.volume[two])
    fake = FakeTime()
    hub = ClosingHub(fake.clock)
    asyncio.run(Replayer({bars.instrument: picked}, hub, speed=60, clock=fake.clock, sleep=fake.sleep).run())
    first_close = ist_ns("2024-06-10 15:30")
    second_close = ist_ns("2024-06-11 15:30")
    assert [(ns, published) for ns, _, published in hub.closes] == [(first_close, 8), (second_close, 20)]
    start = int(picked.ts[0])
    assert hub.closes[0][1] == pytest.approx(1000.0 + (first_close - start) / S / 60)  # 15:30, two minutes in
    assert hub.at[8] == pytest.approx(hub.closes[0][1])  # the night takes no time
    assert hub.closes[1][1] == pytest.approx(hub.at[-1] + (second_close - hub.ticks[-1].ts) / S / 60)

    unpaced = ClosingHub()
    asyncio.run(Replayer({bars.instrument: picked}, unpaced, speed=0).run())
    assert [(ns, published) for ns, _, published in unpaced.closes] == [(first_close, 8), (second_close, 20)]


def test_unpaced_replay_only_yields():
    bars = minute_bars()
    fake = FakeTime()
    for speed in (0, math.inf):
        fake.sleeps.clear()
        hub = Hub()
        asyncio.run(Replayer({bars.instrument: bars}, hub, speed=speed, clock=fake.clock, sleep=fake.sleep,
                             batch=500).run())
        assert len(hub.ticks) == TICKS_PER_BAR * len(bars)
        assert fake.sleeps == [0] * ((len(hub.ticks) - 1) // 500)


def test_invalid_speed_is_refused():
    bars = minute_bars()
    for speed in (-1, float("nan")):
        with pytest.raises(ValueError, match="speed"):
            Replayer({bars.instrument: bars}, Hub(), speed=speed)


def test_ticks_carry_plain_python_numbers():
    bars = minute_bars().slice(0, 1)
    tick = bar_ticks(bars).tick(0)
    assert type(tick.ts) is int and type(tick.ltp) is float and type(tick.volume) is int
    assert tick.ltp == float(bars.open[0]) and tick.oi is None


def test_session_hours_come_from_the_nse_calendar():
    def bars(*stamps: str) -> Bars:
        ts = np.array([ist_ns(t) for t in stamps], dtype=np.int64)
        ones = np.ones(len(ts))
        return Bars("X", ts, ones, ones, ones, ones, ones)

    # A daily bar on the Muhurat day (1 Nov 2024, 18:00-19:00) spans that session, not 09:15-15:30.
    muhurat = bar_ticks(bars("2024-10-31T00:00", "2024-11-01T00:00"), bar_minutes=375).ts.reshape(-1, TICKS_PER_BAR)
    assert muhurat[1, 0] == ist_ns("2024-11-01T18:00") and muhurat[1, -1] == ist_ns("2024-11-01T19:00") - S
    # From 3 Aug 2026 F&O closes at 15:40: a 15:25 15-minute bar runs to 15:40 there, is cut at 15:30 in cash.
    late = bars("2026-08-03T15:10", "2026-08-03T15:25")
    assert bar_ticks(late, bar_minutes=15, segment="NSE_FNO").ts[-1] == ist_ns("2026-08-03T15:40") - S
    assert bar_ticks(late, bar_minutes=15, segment="NSE_EQ").ts[-1] == ist_ns("2026-08-03T15:30") - S
