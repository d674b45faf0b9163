"""Ticks to candles: the NSE grid, release timing, volume from cumulative counts, late ticks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from algocli.data.aggregator import CandleAggregator, ClosedCandle
from algocli.data.csv_feed import resample
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval, Tick

IST = timezone(timedelta(hours=5, minutes=30))
S = 10**9
MIN = 60 * S
GRACE = 2 * S


def ns(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=IST)
    return int(moment.timestamp()) * S + moment.microsecond * 1000


class Recorder:
    """on_candle callback that also notes the exchange time at which each candle arrived."""

    def __init__(self) -> None:
        self.candles: list[ClosedCandle] = []
        self.seen_at: list[int] = []
        self.now = 0

    def __call__(self, candle: ClosedCandle) -> None:
        self.candles.append(candle)
        self.seen_at.append(self.now)


def feed(agg: CandleAggregator, rec: Recorder, ticks: list[Tick]) -> None:
    for tick in ticks:
        rec.now = tick.ts
        agg.on_tick(tick)


# -- an independent computation with pandas -------------------------------------------------

DAYS = ("2024-06-10", "2024-06-11")
INSTRUMENTS = ("NSE_EQ:1333", "NSE_EQ:2885")


def random_ticks(seed: int = 11) -> list[Tick]:
    """Two instruments over two days, with a quiet hour, after-close ticks and cumulative volume."""
    rng = np.random.default_rng(seed)
    ticks: list[Tick] = []
    for k, inst in enumerate(INSTRUMENTS):
        for day in DAYS:
            open_ = ns(f"{day} 09:15")
            offsets = np.sort(rng.integers(1, 375 * MIN, 1500))
            quiet = (offsets >= 100 * MIN) & (offsets < 160 * MIN)  # 10:55-11:55: no trades at all
            offsets = np.concatenate(([250_000_000], offsets[~quiet]))  # always a trade at 09:15:00.25
            after = ns(f"{day} 15:30") + np.sort(rng.integers(0, 15 * MIN, 20))  # closing session: ignored
            times = np.concatenate((open_ + offsets, after))
            prices = 1000 * (1 + k) + np.cumsum(rng.normal(0, 0.5, len(times))).round(2)
            qty = rng.integers(1, 500, len(times))
            cum = np.cumsum(qty)
            ticks += [Tick(inst, int(t), float(p), int(q), int(v)) for t, p, q, v in zip(times, prices, qty, cum)]
    ticks.sort(key=lambda t: t.ts)
    return ticks


def pandas_candles(ticks: list[Tick], interval: Interval) -> set[tuple]:
    frame = pd.DataFrame({"inst": [t.instrument for t in ticks], "ts": [t.ts for t in ticks],
                          "price": [t.ltp for t in ticks], "qty": [t.ltq for t in ticks]})
    local = pd.to_datetime(frame["ts"] + IST_OFFSET_NS, unit="ns")
    minutes = local.dt.hour * 60 + local.dt.minute
    frame = frame[(minutes >= 555) & (minutes < 930)].copy()
    frame.index = pd.to_datetime(frame["ts"] + IST_OFFSET_NS, unit="ns")
    out = set()
    for (inst, day), part in frame.groupby([frame["inst"], frame.index.normalize()]):
        if interval is Interval.DAY_1:
            rule, origin = "1D", day
        else:
            rule, origin = f"{interval.minutes}min", day + pd.Timedelta(minutes=555)
        bars = part.resample(rule, origin=origin, closed="left", label="left").agg(
            {"price": ["first", "max", "min", "last"], "qty": "sum", "ts": "count"})
        bars.columns = ["open", "high", "low", "close", "volume", "n"]
        for label, row in bars[bars["n"] > 0].iterrows():
            start = int(label.value) - IST_OFFSET_NS
            out.add((inst, start, row.open, row.high, row.low, row.close, int(row.volume)))
    return out


@pytest.mark.parametrize("interval", list(Interval))
def test_matches_pandas_resample_on_the_0915_grid(interval):
    ticks = random_ticks()
    rec = Recorder()
    agg = CandleAggregator(interval, rec)
    feed(agg, rec, ticks)
    rec.now = ns("2024-06-12 00:00")
    agg.on_time(rec.now)
    got = {(c.instrument, c.start, c.open, c.high, c.low, c.close, c.volume) for c in rec.candles}
    assert got == pandas_candles(ticks, interval)
    assert len(got) == len(rec.candles)  # each candle released once
    assert agg.outside == 2 * 2 * 20
    assert agg.late == 0
    # never before its end; and in start order per instrument
    assert all(seen >= c.end for c, seen in zip(rec.candles, rec.seen_at))
    for inst in INSTRUMENTS:
        starts = [c.start for c in rec.candles if c.instrument == inst]
        assert starts == sorted(starts)


def test_empty_intervals_give_no_candle():
    ticks = random_ticks()
    rec = Recorder()
    agg = CandleAggregator("5m", rec)
    feed(agg, rec, ticks)
    agg.on_time(ns("2024-06-12 00:00"))
    starts = {c.start for c in rec.candles if c.instrument == INSTRUMENTS[0]}
    quiet = range(ns("2024-06-10 10:55"), ns("2024-06-10 11:55"), 5 * MIN)
    assert not starts & set(quiet)
    assert ns("2024-06-10 10:50") in starts and ns("2024-06-10 11:55") in starts


def test_25m_candles_equal_csv_resample_of_1m_candles():
    ticks = [t for t in random_ticks() if t.instrument == INSTRUMENTS[0]]
    one, twenty_five = Recorder(), Recorder()
    a1, a25 = CandleAggregator("1m", one), CandleAggregator("25m", twenty_five)
    for tick in ticks:
        a1.on_tick(tick)
        a25.on_tick(tick)
    end = ns("2024-06-12 00:00")
    a1.on_time(end)
    a25.on_time(end)
    c = one.candles
    bars = Bars(INSTRUMENTS[0], np.array([x.start for x in c], np.int64),
                *(np.array([getattr(x, f) for x in c], float) for f in ("open", "high", "low", "close", "volume")))
    coarse = resample(bars, Interval.MINUTE_25)
    assert coarse.ts.tolist() == [x.start for x in twenty_five.candles]
    assert coarse.ts.tolist()[:3] == [ns("2024-06-10 09:15"), ns("2024-06-10 09:40"), ns("2024-06-10 10:05")]
    for field in ("open", "high", "low", "close", "volume"):
        assert getattr(coarse, field).tolist() == [getattr(x, field) for x in twenty_five.candles]


# -- release timing ----------------------------------------------------------------------------

def tick(inst: str, at: str, price: float, ltq: int = 1, volume: int | None = None, **kw) -> Tick:
    return Tick(inst, ns(at), price, ltq, volume, **kw)


def test_25m_boundaries():
    rec = Recorder()
    agg = CandleAggregator("25m", rec)
    feed(agg, rec, [tick("A", "2024-06-10 09:15:00", 10), tick("A", "2024-06-10 09:39:59.999", 11)])
    assert rec.candles == []
    feed(agg, rec, [tick("A", "2024-06-10 09:40:00", 12)])
    assert [(c.start, c.end, c.open, c.close) for c in rec.candles] == [
        (ns("2024-06-10 09:15"), ns("2024-06-10 09:40"), 10, 11)]
    feed(agg, rec, [tick("A", "2024-06-10 15:29:59", 13)])
    assert rec.candles[-1].start == ns("2024-06-10 09:40")
    agg.on_time(ns("2024-06-10 15:30:02"))
    assert (rec.candles[-1].start, rec.candles[-1].end) == (ns("2024-06-10 15:05"), ns("2024-06-10 15:30"))


def test_release_on_time_with_a_fake_clock_waits_for_the_grace():
    now = [ns("2024-06-10 09:15:10")]
    rec = Recorder()
    agg = CandleAggregator("5m", rec, clock=lambda: now[0])
    agg.on_tick(tick("A", "2024-06-10 09:15:10", 100))
    agg.on_tick(tick("A", "2024-06-10 09:19:59", 101))
    for at in ("09:19:59.999", "09:20:00", "09:20:01.999"):
        now[0] = ns(f"2024-06-10 {at}")
        assert agg.on_time() == 0
    assert rec.candles == []
    now[0] = ns("2024-06-10 09:20:02")
    assert agg.on_time() == 1
    assert [(c.open, c.close, c.start) for c in rec.candles] == [(100, 101, ns("2024-06-10 09:15"))]
    assert agg.on_time() == 0  # released once
    assert agg.forming("A") is None


def test_grace_is_configurable_and_zero_releases_at_the_end():
    rec = Recorder()
    agg = CandleAggregator("1m", rec, clock=lambda: ns("2024-06-10 09:16"), grace_s=0)
    agg.on_tick(tick("A", "2024-06-10 09:15:30", 100))
    assert agg.on_time(ns("2024-06-10 09:15:59.999")) == 0
    assert agg.on_time() == 1
    with pytest.raises(ValueError):
        CandleAggregator("1m", rec, grace_s=-1)


def test_no_early_release_by_ticks_of_the_same_bucket_or_other_instruments():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    feed(agg, rec, [tick("A", "2024-06-10 09:15:05", 100), tick("B", "2024-06-10 09:15:06", 50)])
    feed(agg, rec, [tick("A", "2024-06-10 09:15:59.9", 101)])
    # closes A's 09:15, which waits for B's of the same period (still within grace)
    feed(agg, rec, [tick("A", "2024-06-10 09:16:01", 102)])
    assert rec.candles == []
    feed(agg, rec, [tick("A", "2024-06-10 09:16:01.999", 103)])
    assert rec.candles == []
    feed(agg, rec, [tick("A", "2024-06-10 09:16:02", 104)])  # end + grace passed: B closes by time, A with it
    assert [(c.instrument, c.close) for c in rec.candles] == [("A", 101), ("B", 50)]
    assert all(seen >= c.end for c, seen in zip(rec.candles, rec.seen_at))


def test_ordering_contract_candle_first_then_tick():
    events = []
    agg: CandleAggregator

    def on_candle(c: ClosedCandle) -> None:
        events.append(("candle", c.close, agg.forming("A")))

    agg = CandleAggregator("1m", on_candle)
    agg.on_tick(tick("A", "2024-06-10 09:15:10", 100))
    agg.on_tick(tick("A", "2024-06-10 09:15:50", 101))
    agg.on_tick(tick("A", "2024-06-10 09:16:00", 105))
    assert events == [("candle", 101, None)]  # the new tick was not yet in any candle
    forming = agg.forming("A")
    assert (forming.start, forming.open, forming.ticks) == (ns("2024-06-10 09:16"), 105, 1)


def test_a_raising_callback_keeps_the_candle_for_the_next_call():
    seen = []
    fail = [True]

    def on_candle(c):
        if fail[0]:
            fail[0] = False
            raise RuntimeError("strategy bug")
        seen.append(c.start)

    agg = CandleAggregator("1m", on_candle)
    agg.on_tick(tick("A", "2024-06-10 09:15:10", 100))
    with pytest.raises(RuntimeError):
        agg.on_tick(tick("A", "2024-06-10 09:16:10", 101))
    assert agg.forming("A").open == 101  # the tick was still added
    agg.on_tick(tick("A", "2024-06-10 09:17:10", 102))
    assert seen == [ns("2024-06-10 09:15"), ns("2024-06-10 09:16")]


def test_late_ticks_are_counted_and_dropped():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    feed(agg, rec, [tick("A", "2024-06-10 09:15:10", 100, 5, 5), tick("A", "2024-06-10 09:16:10", 101, 5, 10)])
    feed(agg, rec, [tick("A", "2024-06-10 09:15:40", 90, 7, 17)])  # arrives after 09:15 was released
    assert agg.late == 1
    assert [(c.low, c.volume) for c in rec.candles] == [(100, 5)]
    feed(agg, rec, [tick("A", "2024-06-10 09:16:20", 102, 3, 20)])
    agg.on_time(ns("2024-06-10 09:18"))
    # the late tick's 7 units are not lost: the next tick's difference (20 - 10) carries them
    assert [(c.low, c.volume) for c in rec.candles] == [(100, 5), (101, 5 + 10)]
    # older than the forming candle without having been released: also late
    agg.on_tick(tick("A", "2024-06-10 09:20:00", 103, 1, 21))
    agg.on_tick(tick("A", "2024-06-10 09:19:00", 99, 1, 22))
    assert agg.late == 2


def test_ticks_outside_the_session_are_ignored():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    for at in ("2024-06-10 09:08:00", "2024-06-10 09:14:59.999", "2024-06-10 15:30:00", "2024-06-10 15:45"):
        agg.on_tick(tick("A", at, 100))
    assert agg.outside == 4 and agg.ticks == 0 and agg.forming("A") is None


def test_out_of_order_ticks_inside_a_bucket():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    feed(agg, rec, [tick("A", "2024-06-10 09:15:20", 101), tick("A", "2024-06-10 09:15:50", 103),
                    tick("A", "2024-06-10 09:15:05", 100), tick("A", "2024-06-10 09:15:30", 104)])
    agg.on_time(ns("2024-06-10 09:17"))
    c = rec.candles[0]
    assert (c.open, c.high, c.low, c.close, c.ticks) == (100, 104, 100, 103, 4)


# -- volume ------------------------------------------------------------------------------------

def volumes(interval: str, ticks: list[Tick]) -> tuple[list[tuple[int, int]], CandleAggregator]:
    rec = Recorder()
    agg = CandleAggregator(interval, rec)
    feed(agg, rec, ticks)
    agg.on_time(max(t.ts for t in ticks) + 10 * 86_400 * S)
    return [(c.start, c.volume) for c in rec.candles], agg


def test_volume_is_the_difference_of_cumulative_volume():
    got, _ = volumes("1m", [
        tick("A", "2024-06-10 09:15:01", 100, ltq=40, volume=1040),  # first bucket: all of it (pre-open too)
        tick("A", "2024-06-10 09:15:30", 100, ltq=10, volume=1050),
        tick("A", "2024-06-10 09:16:30", 100, ltq=5, volume=1080),  # 30 since the previous tick
    ])
    assert got == [(ns("2024-06-10 09:15"), 1050), (ns("2024-06-10 09:16"), 30)]


def test_first_tick_seen_mid_day_counts_only_its_ltq():
    got, _ = volumes("5m", [
        tick("A", "2024-06-10 11:00:01", 100, ltq=25, volume=900_000),
        tick("A", "2024-06-10 11:00:02", 100, ltq=10, volume=900_030),
    ])
    assert got == [(ns("2024-06-10 11:00"), 55)]
    daily, _ = volumes("1d", [tick("A", "2024-06-10 11:00:01", 100, ltq=25, volume=900_000)])
    assert daily == [(ns("2024-06-10 00:00"), 900_000)]  # a day candle owns everything traded today


def test_day_change_resets_the_base():
    got, _ = volumes("1m", [
        tick("A", "2024-06-10 15:29:30", 100, ltq=3, volume=5_000_000),
        tick("A", "2024-06-10 15:29:40", 100, ltq=3, volume=5_000_100),
        tick("A", "2024-06-11 09:15:02", 100, ltq=20, volume=700),  # new day: the count restarts
        tick("A", "2024-06-11 09:15:40", 100, ltq=20, volume=760),
    ])
    assert got == [(ns("2024-06-10 15:29"), 103), (ns("2024-06-11 09:15"), 760)]


def test_day_change_after_a_gap_counts_only_the_ltq():
    got, _ = volumes("1m", [
        tick("A", "2024-06-10 15:29:30", 100, ltq=3, volume=5_000_000),
        tick("A", "2024-06-11 10:00:02", 100, ltq=20, volume=300_000),  # missed the morning
    ])
    assert got == [(ns("2024-06-10 15:29"), 3), (ns("2024-06-11 10:00"), 20)]


def test_cumulative_volume_going_backwards_is_a_reset_never_negative():
    got, agg = volumes("1m", [
        tick("A", "2024-06-10 09:15:01", 100, ltq=10, volume=10),
        tick("A", "2024-06-10 09:15:02", 100, ltq=10, volume=1000),
        tick("A", "2024-06-10 09:15:03", 100, ltq=7, volume=400),  # backwards: counts its ltq
        tick("A", "2024-06-10 09:15:04", 100, ltq=5, volume=405),  # differences from the new base
    ])
    assert got == [(ns("2024-06-10 09:15"), 1000 + 7 + 5)]
    assert agg.volume_resets == 1


def test_without_cumulative_volume_the_ltq_counts():
    got, _ = volumes("1m", [
        tick("A", "2024-06-10 09:20:01", 100, ltq=4), tick("A", "2024-06-10 09:20:02", 100, ltq=6),
        tick("A", "2024-06-10 09:21:01", 100, ltq=-3),  # a bad packet never subtracts
    ])
    assert got == [(ns("2024-06-10 09:20"), 10), (ns("2024-06-10 09:21"), 0)]


def test_open_interest_is_the_last_seen():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    feed(agg, rec, [tick("F", "2024-06-10 09:15:01", 100, oi=500), tick("F", "2024-06-10 09:15:02", 100),
                    tick("F", "2024-06-10 09:15:03", 100, oi=520), tick("F", "2024-06-10 09:15:04", 100)])
    agg.on_time(ns("2024-06-10 09:17"))
    assert rec.candles[0].oi == 520


# -- shutdown and resume ---------------------------------------------------------------------

MORNING = [
    tick("A", "2024-06-10 11:00:01", 2903.0, ltq=40, volume=900_040),
    tick("A", "2024-06-10 11:01:30", 2905.5, ltq=10, volume=900_100),
    tick("A", "2024-06-10 11:02:10", 2903.1, ltq=8, volume=900_108),  # Ctrl-C after this one
    tick("A", "2024-06-10 11:03:50", 2901.0, ltq=20, volume=900_200),  # traded while nothing ran: 92 more
    tick("A", "2024-06-10 11:04:59", 2903.85, ltq=5, volume=900_205),
]


def _stopped_after(ticks: list[Tick], interval: str = "5m") -> list[dict]:
    """A process that saw ``ticks`` and shut down: the open candles it would journal (through JSON)."""
    import json

    rec = Recorder()
    agg = CandleAggregator(interval, rec)
    feed(agg, rec, ticks)
    assert agg.on_time(ticks[-1].ts, grace_s=0) == 0 and rec.candles == []  # not closed: nothing released
    return json.loads(json.dumps(agg.open_candles()))


def test_a_resume_within_the_interval_continues_the_candle():
    whole = Recorder()
    agg = CandleAggregator("5m", whole)
    feed(agg, whole, MORNING + [tick("A", "2024-06-10 11:05:01", 2904.0, ltq=3, volume=900_208)])
    saved = _stopped_after(MORNING[:3])
    assert [(s["instrument"], s["start"], s["close"], s["volume"]) for s in saved] == [
        ("A", ns("2024-06-10 11:00"), 2903.1, 40 + 60 + 8)]  # the day's first tick, mid-session: its ltq
    rec = Recorder()
    resumed = CandleAggregator("5m", rec)
    resumed.resume(saved[0])
    feed(resumed, rec, MORNING[4:] + [tick("A", "2024-06-10 11:05:01", 2904.0, ltq=3, volume=900_208)])
    got, ran = rec.candles[0], whole.candles[0]
    # open, close and volume as if it never stopped; the 2901.0 low traded while nothing ran is not seen
    assert (got.start, got.open, got.high, got.close, got.volume) == (ran.start, ran.open, ran.high, ran.close,
                                                                      ran.volume)
    assert (got.close, got.volume, got.low, ran.low) == (2903.85, 40 + 60 + 8 + 92 + 5, 2903.0, 2901.0)
    assert len(rec.candles) == 1
    assert resumed.dropped == 0


def _resumed() -> tuple[CandleAggregator, Recorder]:
    """A new aggregator continuing the 11:00 candle of a process stopped after ``MORNING[:3]``."""
    rec = Recorder()
    agg = CandleAggregator("5m", rec)
    agg.resume(_stopped_after(MORNING[:3])[0])
    return agg, rec


def test_a_resumed_candle_whose_interval_passed_is_dropped_by_a_later_tick():
    agg, rec = _resumed()
    feed(agg, rec, [tick("A", "2024-06-10 11:06:00", 2910.0, ltq=7, volume=901_000),
                    tick("A", "2024-06-10 11:07:00", 2911.0, ltq=3, volume=901_004)])
    agg.on_time(ns("2024-06-10 11:10:02"))
    # the 11:00 candle never closed here; the 11:05 one counts the ltq of its first tick, not what was missed
    assert [(c.start, c.close, c.volume) for c in rec.candles] == [(ns("2024-06-10 11:05"), 2911.0, 7 + 4)]
    assert agg.dropped == 1


def test_a_resumed_candle_is_dropped_by_the_clock_or_another_instruments_tick():
    agg, rec = _resumed()
    assert agg.on_time(ns("2024-06-10 11:05:02")) == 0
    assert rec.candles == [] and agg.dropped == 1 and agg.forming("A") is None
    agg, rec = _resumed()
    feed(agg, rec, [tick("B", "2024-06-10 11:05:03", 50.0)])
    assert rec.candles == [] and agg.dropped == 1


def test_a_resumed_candle_that_went_on_closes_by_the_clock():
    agg, rec = _resumed()
    feed(agg, rec, MORNING[3:4])
    assert agg.on_time(ns("2024-06-10 11:05:02")) == 1
    assert [(c.open, c.low, c.close, c.volume) for c in rec.candles] == [(2903.0, 2901.0, 2901.0, 40 + 60 + 8 + 92)]


def test_on_time_at_shutdown_needs_no_grace():
    rec = Recorder()
    agg = CandleAggregator("1m", rec)
    feed(agg, rec, [tick("A", "2024-06-10 09:15:59", 100.0)])
    assert agg.on_time(ns("2024-06-10 09:16:00"), grace_s=0) == 1
    assert agg.open_candles() == []


# --- session close from the NSE calendar ----------------------------------------------------


def _close_day(interval: str, inst: str, day: str) -> tuple[CandleAggregator, Recorder]:
    rec = Recorder()
    agg = CandleAggregator(interval, rec, grace_s=0)
    stamps = ("09:15:00", "15:15:00", "15:29:59", "15:35:00", "15:39:59", "15:40:00")
    feed(agg, rec, [Tick(inst, ns(f"{day}T{t}"), 100.0 + k, 1) for k, t in enumerate(stamps)])
    agg.on_time(ns(f"{day}T23:00:00"))
    return agg, rec


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_fno_candles_run_to_1540_from_2026_08_03(interval):
    """The F&O close moved to 15:40 on 2026-08-03: the last candle takes the ticks to 15:39:59 and
    ends at 15:40; a tick at 15:40:00 is after the close."""
    agg, rec = _close_day(interval, "NSE_FNO:53216", "2026-08-03")
    last = rec.candles[-1]
    assert last.end == ns("2026-08-03T15:40:00") and last.close == 104.0
    assert agg.outside == 1


@pytest.mark.parametrize("inst, day", [("NSE_EQ:2885", "2026-08-03"), ("NSE_FNO:53216", "2026-07-31")])
def test_cash_and_fno_before_the_change_still_close_at_1530(inst, day):
    agg, rec = _close_day("1h", inst, day)
    last = rec.candles[-1]
    assert last.end == ns(f"{day}T15:30:00") and last.close == 102.0
    assert agg.outside == 3


def test_fno_hourly_resample_after_the_change_keeps_the_last_ten_minutes():
    """``resample`` labels buckets by their start: the 15:15 F&O candle of 2026-08-03 holds the
    1-minute bars to 15:39, as the aggregator's candle does."""
    ts = np.array([ns(f"2026-08-03T15:{m:02d}:00") for m in range(15, 40)], dtype=np.int64)
    prices = np.arange(len(ts), dtype=np.float64) + 100
    bars = Bars("NSE_FNO:53216", ts, prices, prices + 1, prices - 1, prices, np.ones(len(ts)))
    out = resample(bars, Interval.HOUR_1, native=1)
    assert len(out) == 1 and out.ts[0] == ns("2026-08-03T15:15:00") and out.close[0] == prices[-1]
