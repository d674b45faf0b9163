"""A session's feed faults and missing candles, as notes of its summary."""

from __future__ import annotations

import numpy as np

from algocli.data.feed import FeedStatus
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS
from algocli.engine.feed_report import feed_notes

MIN = 60 * 10**9


def _ist(day: str, *hhmm: str) -> np.ndarray:
    return np.array([np.datetime64(f"{day}T{t}", "ns").astype(np.int64) - IST_OFFSET_NS for t in hhmm], dtype=np.int64)


def _bars(name: str, ts: np.ndarray) -> Bars:
    c = np.full(len(ts), 100.0)
    return Bars(name, ts, c, c, c, c, np.ones(len(ts)))


def test_faults_and_the_candles_missing_inside_a_day_are_counted():
    a = _bars("NSE:A", np.concatenate([_ist("2024-06-10", "15:28", "15:29"),  # the night after: no gap
                                       _ist("2024-06-11", "09:15", "09:16", "09:21", "09:22")]))  # 09:17-09:20
    b = _bars("NSE:B", _ist("2024-06-10", "10:00", "10:02"))  # 10:01, on the day before: named first
    status = FeedStatus("dhan", reconnects=1, malformed=14)
    assert feed_notes(status, {"NSE:A": a, "NSE:B": b}, 1) == [
        "feed dhan: 1 reconnect(s), 14 malformed packet(s) dropped",
        "5 1-minute candle(s) missing between candles of the same day (no tick arrived for them; first: NSE:B "
        "2024-06-10 10:01-10:01 IST)"]


def test_a_clean_feed_and_whole_days_give_no_note():
    whole = _bars("NSE:A", _ist("2024-06-10", "09:15", "09:20", "09:25"))
    assert feed_notes(FeedStatus("upstox"), {"NSE:A": whole}, 5) == []
    # the same candles read as 1-minute ones: 4 + 4 missing, and no feed to report on
    assert feed_notes(None, {"NSE:A": whole}, 1) == [
        "8 1-minute candle(s) missing between candles of the same day (no tick arrived for them; first: NSE:A "
        "2024-06-10 09:16-09:19 IST)"]


def test_a_resumed_run_says_so_and_does_not_blame_the_feed_for_its_downtime():
    a = _bars("NSE:A", _ist("2024-06-10", "10:44", "10:59"))  # stopped 10:45-10:58, then resumed
    restored = {"candles": 90, "orders": 5, "fills": 5}
    assert feed_notes(FeedStatus("dhan"), {"NSE:A": a}, 1, restored) == [
        "resumed from its journal: 90 candles, 5 orders, 5 fills restored",
        "14 1-minute candle(s) missing between candles of the same day (no tick arrived for them, or the run was "
        "stopped then; first: NSE:A 2024-06-10 10:45-10:58 IST)"]
    # a fresh run (nothing restored) keeps the feed's word
    assert "resumed" not in " ".join(feed_notes(None, {"NSE:A": a}, 1, {"candles": 0, "orders": 0, "fills": 0}))
