"""The PCR time series (pcr.csv) round trip, and a broker chain source whose broker does not answer."""

from __future__ import annotations

import csv
from datetime import date, datetime
from types import SimpleNamespace

import pytest

from algocli.data.live_feeds import SandboxFeedConfig
from algocli.domain.session import ist_midnight_ns
from algocli.options.broker_source import BrokerChains, NoChains, fetcher_for
from algocli.options.chain import Leg, OptionChain, StrikeRow
from algocli.options.greeks import IST
from algocli.options.pcr import summarise
from algocli.options.source import CSV_COLUMNS, PcrReplay, pcr_row, read_pcr_csv
from cli.paper_support import free_port

EXPIRY = date(2024, 6, 27)


def _chain() -> OptionChain:
    rows = [StrikeRow(k, Leg(f"c{k}", f"c{k}", oi=1000 + k % 700, prev_oi=900, volume=50 + k % 300),
                      Leg(f"p{k}", f"p{k}", oi=800 + k % 900, prev_oi=700, volume=70 + k % 200))
            for k in range(23000, 24050, 50)]
    return OptionChain("dhan", "NSE:NIFTY 50", EXPIRY, 23512.0, datetime(2024, 6, 20, 10, 15, 2, tzinfo=IST), rows)


def test_a_recorded_snapshot_replays_as_the_figures_it_was_recorded_with(tmp_path):
    summary = summarise(_chain(), 3)
    row = pcr_row(summary, taken_at=datetime(2024, 6, 20, 10, 15, 2, tzinfo=IST),
                  bar=datetime(2024, 6, 20, 10, 0, tzinfo=IST), mode="live")
    with open(tmp_path / "pcr.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    replay = PcrReplay(tmp_path / "pcr.csv")
    at = ist_midnight_ns(date(2024, 6, 20)) + (10 * 60) * 60 * 10**9  # the 10:00 candle
    assert replay.at("NSE:NIFTY", "current", None, at - 1, date(2024, 6, 20)) is None
    whole = replay.at("NSE:NIFTY", "current", None, at, date(2024, 6, 20))
    assert whole.oi_pcr == pytest.approx(summary.whole.oi_pcr, rel=1e-6)
    assert whole.vol_pcr == pytest.approx(summary.whole.vol_pcr, rel=1e-6)
    assert (whole.put_oi, whole.call_oi, whole.put_chg_oi) == (summary.whole.put_oi, summary.whole.call_oi,
                                                               summary.whole.put_chg_oi)
    part = replay.at("NSE:NIFTY 50", EXPIRY, 3, at, date(2024, 6, 20))
    assert part.oi_pcr == pytest.approx(summary.windowed.oi_pcr, rel=1e-6)
    assert row["mode"] == "live" and row["max_pain"] == f"{summary.max_pain:g}"


def test_a_broker_that_does_not_answer_gives_none_and_a_line_not_a_crash(tmp_path):
    port = free_port()  # nothing listens there
    fetcher = fetcher_for("sandbox", SandboxFeedConfig(url=f"http://127.0.0.1:{port}", protocol="upstox"))
    notes: list[str] = []
    core = SimpleNamespace(clock=None, now_ns=0)
    source = BrokerChains(fetcher, core, clock=lambda: 0, record=tmp_path / "pcr.csv", mode="paper", notes=notes)
    assert source.chain("NSE:NIFTY 50") is None and source.pcr("NSE:NIFTY 50", "current", 5) is None
    assert len(notes) == 2 and "option chain of NSE:NIFTY 50 (upstox) failed" in notes[0]
    assert not (tmp_path / "pcr.csv").exists()
    with pytest.raises(ValueError, match="feed 'csv' has none; use feed dhan, upstox or sandbox"):
        NoChains("csv").pcr("NSE:NIFTY 50", "current", None)


def _recording(path, notes=None):
    # a broker answering one chain: the record is what is under test here; tests/engine/test_options_paper.py
    # fetches over real sockets from the sandbox
    fetcher = SimpleNamespace(broker="dhan", expiries=lambda key, now: [EXPIRY], chain=lambda key, day, now: _chain())
    core = SimpleNamespace(clock=None, now_ns=0)
    return BrokerChains(fetcher, core, clock=lambda: ist_midnight_ns(date(2024, 6, 20)) + 37_000 * 10**9,
                        record=path, mode="paper", notes=notes)


def test_a_run_resumed_after_a_kill_cuts_the_torn_row_and_appends_whole_rows(tmp_path):
    path = tmp_path / "pcr.csv"
    _recording(path).chain("NSE:NIFTY 50", max_age=0)
    first = path.read_bytes()
    assert first.count(b"\n") == 2 and first.startswith(",".join(CSV_COLUMNS).encode())
    with open(path, "ab") as fh:  # what kill -9 in the middle of a row leaves
        fh.write(first.splitlines(keepends=True)[1][:37])
    resumed = _recording(path)
    resumed.chain("NSE:NIFTY 50", max_age=0)
    resumed.chain("NSE:NIFTY 50", max_age=0)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4 and lines[0] == first.splitlines(keepends=True)[0]
    assert all(line.endswith(b"\r\n") and line.count(b",") == len(CSV_COLUMNS) - 1 for line in lines)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [rows[0]] * 3 and float(rows[0]["oi_pcr"]) == pytest.approx(summarise(_chain(), 5).whole.oi_pcr,
                                                                                 rel=1e-5)


def test_a_record_deleted_during_the_run_starts_again_with_its_header(tmp_path):
    path = tmp_path / "pcr.csv"
    source = _recording(path)
    source.chain("NSE:NIFTY 50", max_age=0)
    path.unlink()
    source.chain("NSE:NIFTY 50", max_age=0)
    with open(path, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 1


def test_reading_a_run_record_skips_a_row_without_its_line_end_and_a_hand_made_file_keeps_its_last_row(tmp_path):
    path = tmp_path / "pcr.csv"
    _recording(path).chain("NSE:NIFTY 50", max_age=0)
    whole = path.read_bytes()
    row = whole.splitlines(keepends=True)[1]
    cut = row.index(b",0.") + 3  # inside the oi_pcr figure: read as it is, it would be a different number
    path.write_bytes(whole + row[:cut])
    assert [len(s.rows) for s in read_pcr_csv(path)["NSE:NIFTY 50"].values()] == [1]
    path.write_bytes(whole + row)
    assert [len(s.rows) for s in read_pcr_csv(path)["NSE:NIFTY 50"].values()] == [2]
    hand = tmp_path / "hand.csv"
    hand.write_text("timestamp,underlying,expiry,oi_pcr\n2024-06-20 10:00:00,NSE:NIFTY 50,2024-06-27,0.9\n"
                    "2024-06-20 10:15:00,NSE:NIFTY 50,2024-06-27,1.1", encoding="utf-8")  # no mode column: no run wrote it
    assert [r["oi_pcr"] for r in read_pcr_csv(hand)["NSE:NIFTY 50"][EXPIRY].rows] == ["0.9", "1.1"]
