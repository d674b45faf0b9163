"""The backtest driver: replays loaded bars through strategies and the simulated broker.

Per bar the loop does only what that bar changes: move the instrument's cursor, match
working orders if there are any, and call the subscribed strategies with a two-slot
candle view. Equity, trades and statistics are built once at the end, vectorised.
"""

from __future__ import annotations

import gc
from typing import Callable

import numpy as np

from algocli.analytics.result import RunResult
from algocli.broker.costs import CostModel, PercentCommission
from algocli.broker.fill_models import FillModel, NextOpen
from algocli.broker.simulated import SimulatedBroker
from algocli.data.history import Bars, History
from algocli.domain.candle import Candle
from algocli.domain.models import Instrument, Interval, OrderStatus, OrderType, Signal, SignalAction
from algocli.engine.core import EngineCore, StrategySlot, TimelineClock
from algocli.errors import StrategyError
from algocli.portfolio.ledger import Ledger
from algocli.strategy.base import BaseStrategy

Progress = Callable[[int, int], None]


class Backtest:
    """One account, one or more strategies, bars from files.

    Args:
        bars: Candles per instrument id, already filtered and resampled.
        initial_capital: Starting cash in rupees.
        fill_model: How market orders are priced (default: next bar's open).
        cost_model: Charges per fill (default: none).
        interval: The bars' interval, for display.
        name: The run name.
        instruments: Metadata per instrument id (default: cash-equity defaults).
    """

    def __init__(
        self,
        bars: dict[str, Bars],
        *,
        initial_capital: float,
        fill_model: FillModel | None = None,
        cost_model: CostModel | None = None,
        interval: Interval | None = None,
        name: str = "backtest",
        instruments: dict[str, Instrument] | None = None,
    ) -> None:
        self.bars = bars
        self.name = name
        self.initial_capital = float(initial_capital)
        histories = {inst: History.from_bars(b, interval) for inst, b in bars.items()}
        meta = {inst: (instruments or {}).get(inst) or Instrument(inst) for inst in bars}
        self.core = EngineCore(histories, meta, Ledger(initial_capital))
        self.core.broker = SimulatedBroker(
            self.core.ledger, histories, fill_model or NextOpen(), cost_model or PercentCommission(0.0),
            self.core.on_fill, instruments=meta,
        )
        self._timeline = _Timeline(bars)
        self.notes: list[str] = []

    def add_strategy(self, strategy: BaseStrategy, instruments: list[str], strategy_id: str | None = None) -> str:
        """Add a strategy trading ``instruments``; returns its id (``<name>-<n>`` by default)."""
        missing = [i for i in instruments if i not in self.core.histories]
        if missing:
            raise KeyError(f"no bars loaded for {', '.join(missing)}")
        sid = strategy_id or f"{type(strategy).__name__}-{len(self.core.slots)}"
        if any(s.id == sid for s in self.core.slots):
            raise ValueError(f"duplicate strategy id {sid!r}; give each strategy a unique id")
        self.core.add(StrategySlot(sid, strategy, list(instruments)))
        return sid

    @property
    def bar_count(self) -> int:
        return self._timeline.n_events

    def run(self, progress: Progress | None = None) -> RunResult:
        """Run to the end of the data and return the result with statistics."""
        from algocli.engine.results import build_result

        self.core.start()
        tl = self._timeline
        if len(self.bars) == 1:
            self._run_single(progress)
        else:
            self._run_multi(progress)
        self._finish()  # close-out fills still reach on_order_fill, then on_stop comes last
        self.core.stop()
        return build_result(self, tl.ts)

    # --- loops ---------------------------------------------------------------------

    def _chunks(self, n: int, progress: Progress | None):
        # Orders, fills and trades accumulate as long-lived objects; freezing them at each
        # chunk keeps the cyclic GC from rescanning them on every young collection.
        step = max(1, min(n, 50_000))
        try:
            for start in range(0, n, step):
                gc.freeze()
                yield start, min(n, start + step)
                if progress:
                    progress(min(n, start + step), n)
        finally:
            gc.unfreeze()

    def _run_single(self, progress: Progress | None) -> None:
        core = self.core
        (inst, h), = core.histories.items()
        core.clock = h  # one instrument: its cursor is the run's clock
        working = core.broker.pending[inst]
        on_bar, handle = core.broker.on_bar, core.handle
        subs = core.subscribers()[inst]
        ts = h.ts_mv
        sid, i = "", 0
        try:
            for start, stop in self._chunks(h.length, progress):
                if len(subs) == 1:  # the usual case: no inner loop over subscribers per bar
                    (sid, on_candle), = subs
                    for i in range(start, stop):
                        h.cursor = i
                        if working:
                            on_bar(inst, i, ts[i], i)
                        out = on_candle(Candle((h, i, inst)))
                        if out is not None:
                            handle(sid, out)
                else:
                    for i in range(start, stop):
                        h.cursor = i
                        if working:
                            on_bar(inst, i, ts[i], i)
                        candle = Candle((h, i, inst))
                        for sid, on_candle in subs:
                            out = on_candle(candle)
                            if out is not None:
                                handle(sid, out)
        except StrategyError:
            raise
        except Exception as exc:
            raise _strategy_error(sid, inst, h, i, exc) from exc

    def _run_multi(self, progress: Progress | None) -> None:
        core = self.core
        tl = self._timeline
        core.clock = clock = TimelineClock(tl.ts)
        hists = [core.histories[inst] for inst in tl.instruments]
        working = [core.broker.pending[inst] for inst in tl.instruments]
        subs_by_inst = core.subscribers()
        subs = [subs_by_inst[inst] for inst in tl.instruments]
        on_bar, handle = core.broker.on_bar, core.handle
        ev_slot, ev_idx, groups, tl_ts = tl.ev_slot, tl.ev_idx, tl.group_bounds, tl.ts_list
        sid, h, i = "", hists[0], 0
        try:
            for start, stop in self._chunks(len(groups) - 1, progress):
                for g in range(start, stop):
                    a, b = groups[g], groups[g + 1]
                    clock.cursor = g
                    t = tl_ts[g]
                    for e in range(a, b):  # every bar of this instant opens first ...
                        k, i = ev_slot[e], ev_idx[e]
                        hists[k].cursor = i
                        if working[k]:
                            on_bar(tl.instruments[k], i, t, g)
                    for e in range(a, b):  # ... then strategies see the closed bars
                        k, i = ev_slot[e], ev_idx[e]
                        h = hists[k]
                        candle = Candle((h, i, h.instrument))
                        for sid, on_candle in subs[k]:
                            out = on_candle(candle)
                            if out is not None:
                                handle(sid, out)
        except StrategyError:
            raise
        except Exception as exc:
            raise _strategy_error(sid, h.instrument, h, i, exc) from exc

    # --- end of run ----------------------------------------------------------------

    def _finish(self) -> None:
        """Expire working orders and close open positions at each instrument's last close."""
        core, broker, tl = self.core, self.core.broker, self._timeline
        last_ts = int(tl.ts[-1])
        expired = broker.expire_all(last_ts, "backtest ended before the order could fill")
        if expired:
            self.notes.append(f"{expired} working order(s) expired at the end of the data")
        rejected = [o for o in broker.orders if o.status is OrderStatus.REJECTED]
        if rejected:
            self.notes.append(f"{len(rejected)} order(s) were rejected (see orders.csv); first: {rejected[0].reason}")
        closed = 0
        for (sid, inst), pos in sorted(core.ledger.positions.items()):
            if not pos.quantity:
                continue
            h = core.histories[inst]
            i = h.cursor = h.length - 1
            core.clock.cursor = tl.last_bar[inst]
            side = SignalAction.SELL if pos.quantity > 0 else SignalAction.BUY
            signal = Signal(inst, side, abs(pos.quantity), OrderType.MARKET, tag="end-of-data close")
            broker.submit_at(sid, signal, h.close_mv[i], h.ts_mv[i], core.timeline_bar)
            closed += 1
        if closed:
            self.notes.append(
                f"{closed} open position(s) were closed at the last close and are counted in the statistics")


class _Timeline:
    """The merged bar sequence of all instruments, grouped by instant."""

    def __init__(self, bars: dict[str, Bars]) -> None:
        self.instruments = list(bars)
        if len(bars) == 1:
            (b,) = bars.values()
            self.ts = b.ts
            self.n_events = len(b)
            self.last_bar = {self.instruments[0]: len(b) - 1}
            return
        self.ts = np.unique(np.concatenate([b.ts for b in bars.values()]))
        pos = [np.searchsorted(self.ts, b.ts) for b in bars.values()]
        slot = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(pos)])
        idx = np.concatenate([np.arange(len(p)) for p in pos])
        when = np.concatenate(pos)
        order = np.lexsort((slot, when))
        when = when[order]
        self.ev_slot = slot[order].tolist()
        self.ev_idx = idx[order].tolist()
        self.group_bounds = np.r_[np.flatnonzero(np.diff(when, prepend=-1)), len(when)].tolist()
        self.ts_list = self.ts.tolist()
        self.n_events = len(when)
        self.last_bar = {inst: int(p[-1]) for inst, p in zip(self.instruments, pos)}


def _strategy_error(sid: str, inst: str, h: History, i: int, exc: Exception) -> StrategyError:
    from algocli.domain.candle import ns_to_ist

    when = ns_to_ist(h.ts_mv[i]).isoformat() if 0 <= i < h.length else "?"
    return StrategyError(
        f"strategy {sid or '?'} raised {type(exc).__name__} on {inst} bar {when}: {exc}"
        " (rerun with --debug for the traceback)")


__all__ = ["Backtest"]
