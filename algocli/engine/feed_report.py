"""What a live session's feed went through, as the notes of its summary and ``run.json``, and
the line it shows when it resumes from its journal.

The dashboard shows reconnects and malformed packets while it runs; a ``--no-dashboard`` run,
a cron job and the artifacts would otherwise never say that the feed dropped, sent garbage, or
left minutes without a candle.
"""

from __future__ import annotations

import numpy as np

from algocli.domain.candle import ns_to_ist
from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.session import DAY_NS, MINUTE_NS

__all__ = ["feed_notes", "resume_line"]


def feed_notes(status, bars: dict, interval_minutes: int, restored: dict[str, int] | None = None) -> list[str]:
    """A note that the run resumed, one on the feed's faults and one on the candles missing inside
    a session, or none.

    Args:
        status: The feed's ``FeedStatus`` (this process's counts); None: no feed to report on.
        bars: The run's candles per instrument (``Bars``, UTC nanoseconds of each candle's start).
        interval_minutes: The candle length; an intraday gap longer than it is a missing candle.
        restored: What this process restored from the run's journal (``candles``, ``orders``,
            ``fills``); a gap may then be a time the run was stopped, not a silent feed.
    """
    notes = []
    resumed = restored is not None and any(restored.values())
    if resumed:
        notes.append("resumed from its journal: " + ", ".join(f"{n} {what}" for what, n in restored.items())
                     + " restored")
    counts = ((status.reconnects, "reconnect(s)"), (status.malformed, "malformed packet(s) dropped")) if status else ()
    faults = [f"{n} {what}" for n, what in counts if n]
    if faults:
        notes.append(f"feed {status.name}: {', '.join(faults)}")
    if interval_minutes < 375:  # daily candles have no intraday gaps to count
        missing, first = _missing(bars, interval_minutes * MINUTE_NS)
        if missing:
            why = "no tick arrived for them, or the run was stopped then" if resumed else "no tick arrived for them"
            notes.append(f"{missing} {interval_minutes}-minute candle(s) missing between candles of the same day "
                         f"({why}; first: {first})")
    return notes


def _missing(bars: dict, step: int) -> tuple[int, str]:
    """Candles absent between two candles of one IST day, in all instruments, and the first gap."""
    total, first, first_ts = 0, "", None
    for inst, b in bars.items():
        ts = np.asarray(b.ts, dtype=np.int64)
        if len(ts) < 2:
            continue
        days = (ts + IST_OFFSET_NS) // DAY_NS  # IST dates: a night is no gap
        gaps = np.flatnonzero((np.diff(ts) > step) & (days[1:] == days[:-1]))
        if not len(gaps):
            continue
        total += int(((ts[gaps + 1] - ts[gaps]) // step - 1).sum())
        k = int(gaps[0])
        if first_ts is None or ts[k] < first_ts:
            start, end = ns_to_ist(int(ts[k]) + step), ns_to_ist(int(ts[k + 1]) - step)
            first_ts, first = ts[k], f"{inst} {start:%Y-%m-%d %H:%M}-{end:%H:%M} IST"
    return total, first


def resume_line(session) -> str:
    """The line a session shows when it continues its journal: what it restored."""
    r = session.engine.restored
    return (f"resuming from {session.journal_path}: {r.get('candles', 0)} candles, {r.get('orders', 0)} orders, "
            f"{r.get('fills', 0)} fills")
