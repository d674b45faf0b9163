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
from algocli.options.source import CSV_COLUMNS, PcrReplay, pcr_row
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
