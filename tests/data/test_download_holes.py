"""``algocli.data.download``: a re-run fills every hole of the range, and what a run claims is what is on disk.

The sandbox's historical routes answer over a real socket on 127.0.0.1 (``cli.download_support``).
The expected requests and files are worked out from the calendar and from a download of the
whole range at once, not from the planner under test.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from algocli.data.csv_feed import load_csv
from algocli.data.history import Bars
from algocli.errors import DataError, UsageError
from cli.download_support import BUNDLED, HistoryServer
from data.test_download import MINUTE, _clean, dl, srv  # noqa: F401  (the server and its reset)

DAY_NS = 86_400 * 10**9
IST_NS = 19_800 * 10**9


def _ist_days(bars: Bars) -> np.ndarray:
    return (bars.ts + IST_NS) // DAY_NS


def _two_weeks() -> Bars:
    """RELIANCE 1-minute bars on 10-14 and 18-21 June 2024: the bundled week and a copy a week later,
    without Monday 17 June (Bakri Id, an NSE holiday)."""
    later = Bars("X", MINUTE.ts + 7 * DAY_NS, MINUTE.open, MINUTE.high, MINUTE.low, MINUTE.close, MINUTE.volume)
    keep = _ist_days(later) != (np.datetime64("2024-06-17") - np.datetime64("1970-01-01")).astype(int)
    cols = [np.concatenate([getattr(MINUTE, n), getattr(later, n)[keep]])
            for n in ("ts", "open", "high", "low", "close", "volume")]
    return Bars("NSE_EQ:2885", *cols)


def _asked(srv: HistoryServer, source: str) -> list[tuple[str, str]]:
    """The (first, last) IST dates of each request, as the API was asked (Dhan's ``toDate`` is exclusive)."""
    if source == "dhan":
        return [(b["fromDate"][:10], b["toDate"][:10]) for b in srv.requests()]
    return [(p["from_date"], p["to_date"]) for p in srv.requests()]


@pytest.mark.parametrize("source, asked", [("dhan", [("2024-06-11", "2024-06-13")]),
                                           ("upstox", [("2024-06-11", "2024-06-12")])])
def test_a_rerun_fills_the_hole_inside_the_stored_range(srv, tmp_path, source, asked):
    """QA: 10 June, then 13-14 June, then 10-14 June reported 11-12 June as gaps and fetched nothing."""
    full = dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "full")
    out = tmp_path / "hole"
    dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 10), date(2024, 6, 10), out)
    dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 13), date(2024, 6, 14), out)
    srv.clear()
    again = dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 10), date(2024, 6, 14), out)
    (f,) = again.files
    assert _asked(srv, source) == asked  # one request for the two missing days, none for the stored ones
    assert f.path.read_bytes() == full.files[0].path.read_bytes()
    assert (f.new_bars, f.dropped, f.bars) == (2 * 25, 0, 5 * 25) and f.quality.gaps == ()
    srv.clear()
    dl(srv, source, ["NSE:RELIANCE"], "15m", date(2024, 6, 10), date(2024, 6, 14), out)
    assert srv.requests() == []  # nothing is missing any more


def test_each_hole_is_one_stretch_over_weekends_and_holidays_and_only_holes_are_asked(tmp_path):
    with HistoryServer({"NSE_EQ:2885": _two_weeks()}) as srv:
        full = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 13), date(2024, 6, 20), tmp_path / "full")
        out = tmp_path / "part"
        dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 14), date(2024, 6, 14), out)
        dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 19), date(2024, 6, 19), out)
        srv.clear()
        again = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 13), date(2024, 6, 20), out)
        asked = _asked(srv, "dhan")
    (f,) = again.files
    # 13 June before the stored 14th; 15-18 June (Saturday, Sunday, Bakri Id and Tuesday 18) between the
    # stored 14th and 19th, in one request; 20 June after the 19th.
    assert asked == [("2024-06-13", "2024-06-14"), ("2024-06-15", "2024-06-19"), ("2024-06-20", "2024-06-21")]
    assert f.fetched == [(date(2024, 6, 13), date(2024, 6, 13)), (date(2024, 6, 15), date(2024, 6, 18)),
                         (date(2024, 6, 20), date(2024, 6, 20))]
    assert f.path.read_bytes() == full.files[0].path.read_bytes()
    assert (f.new_bars, f.overlap) == (3 * 75, 0) and f.quality.gaps == ()
    assert f.quality.holidays == ((date(2024, 6, 17), "Bakri Id"),)


def test_a_long_hole_is_split_at_the_apis_span_limit_and_merged_in_order(srv, tmp_path):
    out = tmp_path / "part"
    dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 6, 12), date(2024, 6, 12), out)
    srv.clear()
    again = dl(srv, "dhan", ["NSE:RELIANCE"], "1m", date(2024, 3, 1), date(2024, 6, 14), out, checkpoint_s=0.0)
    # 1 March - 11 June is 103 days: two requests of at most 90 days; then 13-14 June
    assert _asked(srv, "dhan") == [("2024-03-01", "2024-05-30"), ("2024-05-30", "2024-06-12"),
                                   ("2024-06-13", "2024-06-15")]
    assert load_csv(again.files[0].path, "X").ts.tolist() == MINUTE.ts.tolist()
    assert again.files[0].new_bars == 4 * 375


def test_a_file_with_only_its_header_is_resumed_as_empty(srv, tmp_path):
    full = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path / "full")
    (tmp_path / "NSE_RELIANCE.csv").write_text("timestamp,open,high,low,close,volume\n")
    again = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    assert again.failed == 0 and again.files[0].new_bars == 375
    assert (tmp_path / "NSE_RELIANCE.csv").read_bytes() == full.files[0].path.read_bytes()


def test_a_bad_row_in_an_existing_file_stops_the_run_before_any_request(srv, tmp_path):
    (tmp_path / "NSE_RELIANCE.csv").write_text("timestamp,open,high,low,close,volume\n"
                                               "2024-06-10 09:15:00,1,2,0.5,1.5,10\n"
                                               "2024-06-10 09:20:00,1,x,0.5,1.5,10\n")
    with pytest.raises(DataError, match=r"NSE_RELIANCE.csv, row 3: high is not a number"):
        dl(srv, "dhan", ["NSE:HDFCBANK", "NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path)
    assert srv.requests() == [] and not (tmp_path / "NSE_HDFCBANK.csv").exists()


@pytest.mark.parametrize("checkpoint_s", [30.0, 0.0])
def test_bars_that_could_not_be_written_are_never_counted(srv, tmp_path, checkpoint_s):
    path = tmp_path / "NSE_RELIANCE.csv"

    def block(name, done, total):  # after the checks: the file's name is taken by a folder
        if done == 0:
            path.mkdir()

    result = dl(srv, "dhan", ["NSE:RELIANCE"], "5m", date(2024, 6, 10), date(2024, 6, 14), tmp_path,
                progress=block, checkpoint_s=checkpoint_s)
    (f,) = result.files
    assert len(srv.requests()) == 1 and not f.ok and f.error.startswith(f"cannot write {path}: Is a directory")
    assert (f.new_bars, f.bars) == (0, 0)
    assert result.summary_line().startswith("download-data: 1 instrument, 0 ok, 1 failed, 0 new bars, ")


@pytest.mark.parametrize("start, message", [
    (date(1, 1, 1), "--from 0001-01-01 is before 1994-11-03, NSE's first trading day"),
    (date(24, 6, 10), "--from 0024-06-10 is before 1994-11-03"),
    (date(1994, 11, 2), "--from 1994-11-02 is before 1994-11-03"),
])
def test_a_from_before_nses_first_trading_day_is_refused_before_any_request(srv, tmp_path, start, message):
    with pytest.raises(UsageError, match=message):
        dl(srv, "dhan", ["NSE:HDFCBANK"], "1d", start, date(2019, 1, 31), tmp_path)
    assert srv.requests() == [] and list(tmp_path.iterdir()) == []
    # the first trading day itself is a valid start: one request, the served January 2019 bars
    result = dl(srv, "dhan", ["NSE:HDFCBANK"], "1d", date(1994, 11, 3), date(2019, 1, 31), tmp_path)
    assert result.failed == 0 and len(srv.requests()) == 1
    first_of_february = np.datetime64("2019-02-01").astype("datetime64[ns]").astype(np.int64) - IST_NS
    assert result.files[0].bars == int((BUNDLED["NSE_EQ:1333"].ts < first_of_february).sum())


@pytest.mark.parametrize("source", ["dhan", "upstox"])
def test_daily_holes_that_fit_one_request_are_asked_for_in_one(srv, tmp_path, source):
    full = dl(srv, source, ["NSE:HDFCBANK"], "1d", date(2024, 1, 1), date(2024, 6, 28), tmp_path / "full")
    lines = full.files[0].path.read_text().splitlines(keepends=True)
    holes = ("2024-02-05", "2024-03-12", "2024-05-06")  # three trading days, weeks apart
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "NSE_HDFCBANK.csv").write_text("".join(x for x in lines if not x.startswith(holes)))
    srv.clear()
    again = dl(srv, source, ["NSE:HDFCBANK"], "1d", date(2024, 1, 1), date(2024, 6, 28), tmp_path / "part")
    (f,) = again.files
    asked = [(b.get("fromDate") or b.get("from_date"), b.get("toDate") or b.get("to_date")) for b in srv.requests()]
    # from the day after the stored Friday 2 February to the day before the stored Tuesday 7 May
    assert len(asked) == 1 and asked[0][0] == "2024-02-03" and asked[0][1] in ("2024-05-06", "2024-05-07")
    assert f.fetched == [(date(2024, 2, 3), date(2024, 5, 6))]
    between = sum(1 for x in lines[1:] if "2024-02-03" <= x[:10] <= "2024-05-06" and not x.startswith(holes))
    assert (f.new_bars, f.overlap) == (3, between)  # the stored days between came again, counted as such
    assert f.path.read_bytes() == full.files[0].path.read_bytes()
