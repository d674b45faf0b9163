"""The instants of a multi-instrument backtest, and which bars wake a strategy at each.

Two shapes. In general the instruments' bars are merged into one sequence of events
(instrument, bar) grouped by instant. When every instrument has a bar at every instant (the
same minutes in every file: an index's constituents, a basket of liquid stocks) the timeline
is ``aligned``: instant ``g`` is bar ``g`` of each instrument, and the merged event arrays,
a sort of every bar, are never built.
"""

from __future__ import annotations

import numpy as np

from algocli.data.history import Bars
from algocli.domain.arrays import unique


class Timeline:
    """The merged bar sequence of all instruments, grouped by instant.

    Attributes:
        instruments: In the order of the loaded bars (the loops' slot order).
        ts: The instants, UTC nanoseconds, ascending.
        aligned: Every instrument has a bar at every instant (then the ``ev_*`` and
            ``group_bounds`` attributes are not set).
        ev_slot, ev_idx_array, ev_idx: Per event, its instrument's slot and its bar (arrays; the
            bars also as a list, which the bar loop indexes faster).
        group_bounds: Where each instant's events start, and the end.
        bar_counts: Bars per instrument.
        last_bar: Per instrument, the instant of its last bar.
    """

    def __init__(self, bars: dict[str, Bars]) -> None:
        self.instruments = list(bars)
        self.aligned = False
        columns = [b.ts for b in bars.values()]
        self.bar_counts = [len(ts) for ts in columns]
        self.n_events = sum(self.bar_counts)
        if len(bars) > 1 and all(np.array_equal(ts, columns[0]) for ts in columns[1:]):
            self.aligned = True
        if len(bars) == 1 or self.aligned:
            self.ts = columns[0]
            self.ts_list = self.ts.tolist() if self.aligned else None
            self.last_bar = {inst: len(self.ts) - 1 for inst in self.instruments}
            return
        self.ts = unique(np.concatenate(columns))
        pos = [np.searchsorted(self.ts, ts) for ts in columns]
        slot = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(pos)])
        idx = np.concatenate([np.arange(len(p)) for p in pos])
        when = np.concatenate(pos)
        order = np.lexsort((slot, when))
        when = when[order]
        self.ev_slot, self.ev_idx_array = slot[order], idx[order]
        self.ev_idx = self.ev_idx_array.tolist()
        self.group_bounds = np.r_[np.flatnonzero(np.diff(when, prepend=-1)), len(when)].tolist()
        self.ts_list = self.ts.tolist()
        self.last_bar = {inst: int(p[-1]) for inst, p in zip(self.instruments, pos)}


def woken_events(tl: Timeline, wakes: list) -> tuple[list[int], list[int]]:
    """What runs ``on_candle`` at each instant, found before the loop.

    Args:
        tl: The run's timeline.
        wakes: Per instrument (``tl.instruments`` order), its ``wake_on`` bars (one bool each),
            True (every bar: a strategy without ``wake_on``) or False (no strategy reads it).

    Returns:
        ``(calls, call_from)``: the woken events in time order, and per instant where its
        own start in ``calls`` (one more entry: the end). An event is an index into the
        timeline's events, or on an aligned timeline the instrument's slot (the bar is the
        instant's).
    """
    if tl.aligned:
        n, instants = len(wakes), len(tl.ts)
        grid = np.empty((instants, n), dtype=bool)  # instant-major, as the loop reads it
        for k, w in enumerate(wakes):
            grid[:, k] = w
        woken = np.flatnonzero(grid.ravel())
        return (woken % n).tolist(), np.searchsorted(woken, np.arange(instants + 1) * n).tolist()
    lengths = [len(w) if not isinstance(w, bool) else n for w, n in zip(wakes, tl.bar_counts)]
    flat = np.concatenate([np.full(n, w, dtype=bool) if isinstance(w, bool) else np.asarray(w, dtype=bool)
                           for w, n in zip(wakes, lengths)])
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    events = np.flatnonzero(flat[offsets[tl.ev_slot] + tl.ev_idx_array])
    return events.tolist(), np.searchsorted(events, tl.group_bounds).tolist()
