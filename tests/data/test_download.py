"""``algocli.data.download``: Dhan and Upstox candles into the backtester's CSV files.

Every test talks to the sandbox's historical routes over a real socket on 127.0.0.1
(``cli.download_support.HistoryServer``), serving the bundled data: RELIANCE 1-minute bars
for 10-14 June 2024 and HDFCBANK/INFY daily bars for 2019-2024.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from algocli.data.csv_feed import CsvFeed, CsvFeedConfig, file_stem, load_csv, resample
from algocli.data.download import download_limits, merge_bars, render_csv, run_download
from algocli.data.history import Bars
from algocli.data.quality import Gap, WeekdayCalendar, check, session_grid
from algocli.data.reconnect import Backoff
from algocli.domain.models import Interval
from algocli.errors import ConfigError, UsageError
from cli.download_support import BUNDLED, ROOT, HistoryServer, table_resolver

IST = timezone(timedelta(hours=5, minutes=30))
MINUTE = BUNDLED["NSE_EQ:2885"]
FAST = {"pace": 0, "backoff": Backoff(0.001, 0.005, rng=random.Random(3)), "timeout": 5.0}


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=IST).timestamp()) * 10**9


def dl(srv: HistoryServer, source: str, names, interval: str, start: date, end: date, out: Path, **kw):
    options = {**FAST, **kw}
    if source == "upstox":
        options.pop("pace")
    return run_download(list(names), resolve=table_resolver, source=source, interval=interval, start=start, end=end,
                        out_dir=out, settings=srv.settings(source), **options)


def without(bars: Bars, drop: np.ndarray) -> Bars:
    keep = ~drop
    return Bars(bars.instrument, *(getattr(bars, n)[keep] for n in ("ts", "open", "high", "low", "close", "volume")))


@pytest.fixture(scope="module")
def srv():
    with HistoryServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(srv):
    srv.clear()
    srv.state.fail_next.clear()
    srv.state.fail_always.clear()


# --- file names, CSV format, merge --------------------------------------------------------

def test_file_stem_replaces_colons_and_spaces():
    assert file_stem("NSE:HDFCBANK") == "NSE_HDFCBANK"
    assert file_stem("NSE:NIFTY 50") == "NSE_NIFTY_50"
    assert file_stem("NSE:NIFTY 26 DEC 2024 24000 CE") == "NSE_NIFTY_26_DEC_2024_24000_CE"
    assert file_stem("NSE_EQ:1333") == "NSE_EQ_1333"


def test_csv_feed_finds_files_by_file_stem_then_by_the_older_rule(tmp_path):
    feed = CsvFeed(CsvFeedConfig(path=tmp_path))
    assert feed.file_for("NSE:NIFTY 50") == tmp_path / "NSE_NIFTY_50.csv"  # neither exists: the new name
    (tmp_path / "NSE_NIFTY 50.csv").write_text("x")
    assert feed.file_for("NSE:NIFTY 50") == tmp_path / "NSE_NIFTY 50.csv"
    (tmp_path / "NSE_NIFTY_50.csv").write_text("x")
    assert feed.file_for("NSE:NIFTY 50") == tmp_path / "NSE_NIFTY_50.csv"
    assert feed.file_for("NSE_EQ:1333") == tmp_path / "NSE_EQ_1333.csv"


def test_render_csv_is_what_load_csv_reads_and_keeps_finer_prices(tmp_path):
    ts = np.array([ns("2024-06-10T09:15:00"), ns("2024-06-10T09:16:00")], dtype=np.int64)
    bars = Bars("X", ts, np.array([83.1225, 83.13]), np.array([83.14, 83.15]), np.array([83.12, 83.125]),
                np.array([83.13, 83.14]), np.array([10.0, 2_000_000_000.0]), np.array([5.0, 6.0]))
    text = render_csv(bars, daily=False).decode()
    assert text.splitlines() == ["timestamp,open,high,low,close,volume,oi",
                                 "2024-06-10 09:15:00,83.1225,83.1400,83.1200,83.1300,10,5",
                                 "2024-06-10 09:16:00,83.1300,83.1500,83.1250,83.1400,2000000000,6"]
    (tmp_path / "x.csv").write_text(text)
    back = load_csv(tmp_path / "x.csv", "X")
    np.testing.assert_array_equal(back.ts, ts)
    np.testing.assert_array_equal(back.open, bars.open)
    daily = Bars("X", np.array([ns("2024-06-10T00:00:00")]), *(np.array([1.5]),) * 5)
    assert render_csv(daily, daily=True).decode().splitlines()[1] == "2024-06-10,1.50,1.50,1.50,1.50,1.50"


def test_merge_keeps_one_bar_per_start_and_the_new_one_wins():
    old = MINUTE.slice(0, 10)
    new = MINUTE.slice(5, 15)
    new = Bars("X", new.ts, new.open + 1, new.high + 1, new.low, new.close, new.volume)
    merged, overlap = merge_bars(old, new)
    assert overlap == 5 and len(merged) == 15
    np.testing.assert_array_equal(merged.ts, MINUTE.ts[:15])
    np.testing.assert_array_equal(merged.open[5:], new.open)
    np.testing.assert_array_equal(merged.open[:5], old.open[:5])


# --- downloads ----------------------------------------------------------------------------

def test_dhan_5m_over_90_days_is_split_and_written_as_the_backtester_reads_it(srv, tmp_path):
    result = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 3, 1), date(2024, 6, 30), tmp_path)
    (f,) = result.files
    assert f.ok and f.path == tmp_path / "NSE_RELIANCE.csv" and f.requests == 2
    bodies = srv.requests("dhan:intraday")
    assert [(b["fromDate"], b["toDate"], b["interval"]) for b in bodies] == [
        ("2024-03-01 00:00:00", "2024-05-30 00:00:00", "5"), ("2024-05-30 00:00:00", "2024-07-01 00:00:00", "5")]
    lines = f.path.read_text().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1].startswith("2024-06-10 09:15:00,2898.85,") and lines[-1].startswith("2024-06-14 15:25:00,")
    got = load_csv(f.path, "NSE:RELIANCE")
    want = resample(MINUTE, Interval.MINUTE_5)
    np.testing.assert_array_equal(got.ts, want.ts)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0, atol=1e-9)
    assert (f.bars, f.new_bars, f.dropped) == (375, 375, 0)
    # No data before 10 June: every trading day of March to 7 June is a gap; holidays are named, not gaps.
    assert f.quality.missing_bars == 0 and f.quality.missing_days == len(f.quality.gaps) > 60
    assert f.quality.describe(1)[0] == "2024-03-01 Fri: trading day without data"
    assert (date(2024, 3, 8), "Mahashivratri") in f.quality.holidays
    assert result.summary_line() == (f"download-data: 1 instrument, 1 ok, 0 failed, 375 new bars, 0 duplicates, "
                                     f"{len(f.quality.gaps)} gaps -> {tmp_path}")


def test_upstox_5m_over_two_months_asks_month_by_month_and_matches_dhan(srv, tmp_path):
    up = dl(srv, "upstox", ["NSE:RELIANCE"], "5m", date(2024, 5, 1), date(2024, 6, 30), tmp_path / "up")
    paths = [(p["to_date"], p["from_date"], p["unit"], p["interval"]) for p in srv.requests("upstox:historical")]
    assert paths == [("2024-05-31", "2024-05-01", "minutes", "5"), ("2024-06-30", "2024-06-01", "minutes", "5")]
    dh = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 5, 1), date(2024, 6, 30), tmp_path / "dh")
    assert up.files[0].ok and dh.files[0].ok
    assert up.files[0].path.read_bytes() == dh.files[0].path.read_bytes()


@pytest.mark.parametrize("end", [date(2024, 6, 14), date(2024, 6, 16)])
def test_both_sources_return_the_same_days_when_the_last_is_the_servers_today(srv, tmp_path, end):
    """The sandbox replaying 14 June 2024 15:29 is "today" there, not here: Upstox serves that
    day only on its intraday route (its historical route stops the day before), Dhan on its
    intraday charts; both downloads must end with the 14th's candles all the same."""
    srv.state.now = lambda: ns("2024-06-14 15:29:00")
    try:
        up = dl(srv, "upstox", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), end, tmp_path / "up")
        dh = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), end, tmp_path / "dh")
    finally:
        srv.state.now = None
    assert up.files[0].ok and dh.files[0].ok
    assert len(srv.requests("upstox:intraday")) == 1
    for result in (up, dh):
        assert result.files[0].bars == 375 and not result.files[0].quality.gaps
        assert result.files[0].path.read_text().splitlines()[-1].startswith("2024-06-14 15:25:00,")
    assert up.files[0].path.read_bytes() == dh.files[0].path.read_bytes()


def test_upstox_asks_nothing_extra_when_the_data_stopped_long_before_the_range_ends(srv, tmp_path):
    up = dl(srv, "upstox", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 7, 5), tmp_path)
    assert up.files[0].bars == 375 and srv.requests("upstox:intraday") == []


@pytest.mark.parametrize("source", ["dhan", "upstox"])
def test_daily_download_reproduces_the_bundled_files_byte_for_byte(srv, tmp_path, source):
    result = dl(srv, source, ["NSE:HDFCBANK", "NSE_EQ:1594"], "1d", date(2019, 1, 1), date(2024, 12, 31), tmp_path)
    assert [f.name for f in result.files] == ["NSE:HDFCBANK", "NSE:INFY"]  # a broker id resolves to its HRN
    assert result.failed == 0
    assert (tmp_path / "NSE_HDFCBANK.csv").read_bytes() == (ROOT / "data" / "NSE_EQ_1333.csv").read_bytes()
    assert (tmp_path / "NSE_INFY.csv").read_bytes() == (ROOT / "data" / "NSE_EQ_1594.csv").read_bytes()
    if source == "upstox":  # ten years a request at most
        assert len(srv.requests("upstox:historical")) == 2


@pytest.mark.parametrize("source", ["dhan", "upstox"])
def test_a_rerun_asks_only_for_what_is_missing_and_ends_with_the_same_bytes(srv, tmp_path, source):
    full = dl(srv, source, ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "full")
    want = full.files[0].path.read_bytes()
    part = tmp_path / "part"
    dl(srv, source, ["NSE:RELIANCE"], "1m", date(2024, 6, 11), date(2024, 6, 12), part)
    srv.clear()
    again = dl(srv, source, ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 6, 14), part)
    if source == "dhan":
        asked = [(b["fromDate"][:10], b["toDate"][:10]) for b in srv.requests()]
        assert asked == [("2024-06-10", "2024-06-11"), ("2024-06-13", "2024-06-15")]  # 12 June was complete
    else:
        asked = [(p["from_date"], p["to_date"]) for _, p in srv.state.requests]
        assert asked == [("2024-06-10", "2024-06-10"), ("2024-06-13", "2024-06-14")]
    (f,) = again.files
    assert f.path.read_bytes() == want
    assert (f.new_bars, f.dropped, f.bars) == (3 * 375, 0, 5 * 375)
    srv.clear()
    dl(srv, source, ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 6, 14), part)
    assert len(srv.requests()) == 0  # up to date: not one request


def test_a_partial_last_day_is_fetched_again_and_the_overlap_counted(srv, tmp_path):
    full = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "full")
    path = tmp_path / "part" / "NSE_RELIANCE.csv"
    path.parent.mkdir()
    lines = full.files[0].path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: 1 + 75 + 30]))  # 10 June and the first 30 bars of 11 June
    srv.clear()
    again = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), path.parent)
    assert [b["fromDate"] for b in srv.requests()] == ["2024-06-11 00:00:00"]
    (f,) = again.files
    assert path.read_bytes() == full.files[0].path.read_bytes()
    assert (f.overlap, f.duplicates, f.new_bars) == (30, 0, 375 - 105)
    assert "30 duplicates" in again.summary_line()


@pytest.mark.parametrize("source", ["dhan", "upstox"])
def test_repeated_bars_in_the_answer_are_dropped_and_counted(tmp_path, source):
    @web.middleware
    async def doubled(request, handler):
        resp = await handler(request)
        if resp.status != 200:
            return resp
        body = json.loads(resp.text)
        if "candles" in body.get("data", {}):
            body["data"]["candles"] = body["data"]["candles"] * 2
        else:
            body = {k: v + v for k, v in body.items()}
        return web.json_response(body)

    with HistoryServer(middlewares=(doubled,)) as srv:
        result = dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    (f,) = result.files
    assert f.ok and (f.bars, f.duplicates, f.overlap) == (125, 125, 0)
    assert load_csv(f.path, "X").ts.tolist() == resample(MINUTE, Interval.MINUTE_15).ts.tolist()
    assert "125 new bars, 125 duplicates" in result.summary_line()


@pytest.mark.parametrize("source", ["dhan", "upstox"])
def test_transient_errors_are_retried(srv, tmp_path, source):
    srv.state.fail_next[:] = [500, 429]
    result = dl(srv, source, ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    assert result.failed == 0 and result.files[0].bars == 375
    assert len(srv.requests()) == 3  # two refused, then the one that worked


def test_one_instrument_failing_for_good_leaves_the_others_written(srv, tmp_path):
    srv.state.fail_always.add("NSE_EQ:1333")
    result = dl(srv, "dhan", ["NSE:HDFCBANK", "NSE:INFY"], "1d", date(2024, 1, 1), date(2024, 6, 30), tmp_path,
                retries=1)
    bad, good = result.files
    assert not bad.ok and "failed 2 times" in bad.error and not bad.path.exists()
    assert good.ok and good.bars > 100 and good.path.is_file()
    assert result.summary_line().startswith("download-data: 2 instruments, 1 ok, 1 failed, ")


def test_what_was_fetched_before_a_failure_is_kept_and_the_rerun_resumes(srv, tmp_path):
    def fail_after_first(name, done, total):
        if done == 1:  # the first 90 days are in; make every attempt at the next piece fail
            srv.state.fail_next[:] = [503] * 2

    result = dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 9, 30), tmp_path, retries=1,
                progress=fail_after_first, checkpoint_s=0.0)
    (f,) = result.files
    assert not f.ok and f.requests == 1 and load_csv(f.path, "X").ts.tolist() == MINUTE.ts.tolist()
    srv.clear()
    again = dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 9, 30), tmp_path)
    assert again.failed == 0  # from the day after the last stored (complete) day, in 90-day pieces
    assert [b["fromDate"] for b in srv.requests()] == ["2024-06-15 00:00:00", "2024-09-13 00:00:00"]
    assert again.files[0].new_bars == 0


def test_a_file_at_another_interval_is_not_mixed_in(srv, tmp_path):
    dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 6, 10), tmp_path)
    before = (tmp_path / "NSE_RELIANCE.csv").read_bytes()
    srv.clear()
    # a usage error (exit 2) before any request, for the other instruments too: not a failure after the run
    with pytest.raises(UsageError, match="NSE_RELIANCE.csv holds 1-minute bars, not 5m; download into another"):
        dl(srv, "dhan", ["NSE:INFY", "NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    assert srv.requests() == [] and not (tmp_path / "NSE_INFY.csv").exists()
    assert (tmp_path / "NSE_RELIANCE.csv").read_bytes() == before


@pytest.mark.parametrize("interval", ["3m", "10m", "30m"])
def test_intervals_dhan_lacks_are_built_from_1m(srv, tmp_path, interval):
    dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "1m")
    srv.clear()
    built = dl(srv, "dhan", ["NSE:RELIANCE"], interval, date(2024, 6, 10), date(2024, 6, 14), tmp_path / "dh")
    assert {b["interval"] for b in srv.requests()} == {"1"}
    one_minute = load_csv(tmp_path / "1m" / "NSE_RELIANCE.csv", "NSE:RELIANCE")
    want = render_csv(resample(one_minute, Interval(interval)), daily=False)
    assert built.files[0].path.read_bytes() == want
    assert built.files[0].quality.gaps == ()
    srv.clear()
    native = dl(srv, "upstox", ["NSE:RELIANCE"], interval, date(2024, 6, 10), date(2024, 6, 14), tmp_path / "up")
    assert {p["interval"] for p in srv.requests()} == {interval[:-1]}  # Upstox has them natively
    assert native.files[0].path.read_bytes() == want


def test_gaps_against_the_session_are_reported(tmp_path):
    local = (MINUTE.ts // 60_000_000_000 + 330) % 1440  # IST minute of the day
    day = (MINUTE.ts + 19_800 * 10**9) // (86_400 * 10**9)
    second_day = day == day.min() + 1
    holes = second_day & (((local >= 600) & (local < 605)) | (local == 700))  # 10:00-10:04 and 11:40
    bars = {"NSE_EQ:2885": without(MINUTE, holes)}
    with HistoryServer(bars) as srv:
        one = dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 7), date(2024, 6, 14), tmp_path / "1m")
        five = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "5m")
    q = one.files[0].quality
    assert (q.missing_days, q.missing_bars, len(q.gaps)) == (1, 6, 3)
    assert q.describe() == ["2024-06-07 Fri: trading day without data", "2024-06-11 10:00-10:04 (5 bars)",
                            "2024-06-11 11:40 (1 bar)"]
    assert five.files[0].quality.describe() == ["2024-06-11 10:00 (1 bar)"]
    assert "3 gaps" in one.summary_line() and "1 gap ->" in five.summary_line()


def test_unknown_instrument_or_bad_range_stops_before_any_request(srv, tmp_path):
    with pytest.raises(ConfigError, match="NSE:NOPE"):
        dl(srv, "dhan", ["NSE:RELIANCE", "NSE:NOPE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    with pytest.raises(UsageError, match="before --from"):
        dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 14), date(2024, 6, 10), tmp_path)
    with pytest.raises(UsageError, match="--interval '2m'"):
        dl(srv, "dhan", ["NSE:RELIANCE"], "2m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    assert srv.requests() == [] and not any(tmp_path.iterdir())


def test_one_limiter_paces_every_request_of_the_run(srv, tmp_path):
    class Counting:
        calls = 0

        async def acquire(self):
            Counting.calls += 1

    srv.state.fail_next[:] = [429]
    result = dl(srv, "dhan", ["NSE:HDFCBANK", "NSE:INFY"], "1d", date(2024, 1, 1), date(2024, 6, 30), tmp_path,
                limiter=Counting())
    assert result.failed == 0 and Counting.calls == len(srv.requests()) == 3  # the retry waited its turn too
    assert download_limits("dhan")[0][0] <= 5 and download_limits("upstox")[-1] == (1800, 1800.0)


# --- the quality check on its own ---------------------------------------------------------

def test_bars_not_finished_yet_are_not_gaps():
    today = MINUTE.slice(0, 375)
    morning = today.slice(0, 100)  # 09:15-10:54
    now = ns("2024-06-10T10:57:30")
    q = check(morning, "1m", date(2024, 6, 10), date(2024, 6, 10), now_ns=now)
    assert q.describe() == ["2024-06-10 10:55-10:56 (2 bars)"]  # 10:57 has not finished
    q = check(Bars("X", *(a[:0] for a in (today.ts, today.open, today.high, today.low, today.close, today.volume))),
              "1m", date(2024, 6, 10), date(2024, 6, 11), now_ns=ns("2024-06-11T09:15:30"))
    assert [g.day for g in q.gaps] == [date(2024, 6, 10)]  # 11 June has no finished bar yet


def test_a_calendar_that_knows_holidays_plugs_in():
    class Nse(WeekdayCalendar):
        confirmed = True

        def sessions(self, start, end):
            return [d for d in super().sessions(start, end) if d != date(2024, 6, 17)]  # Bakri Id

    q = check(MINUTE, "5m", date(2024, 6, 10), date(2024, 6, 18), calendar=Nse())
    assert q.gaps == (Gap(date(2024, 6, 18), 75),) and q.confirmed
    assert q.describe() == ["2024-06-18 Tue: trading day without data"]
    assert len(session_grid("25m")) == 15 and len(session_grid("1h")) == 7 and len(session_grid("1d")) == 1
