"""The backtest driver: replays loaded bars through strategies and the simulated broker.

Per bar the loop does only what that bar changes: move the instrument's cursor, match
working orders if there are any, and call the subscribed strategies with a two-slot
candle view. Equity, trades and statistics are built once at the end, vectorised.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from itertools import compress
from operator import attrgetter
from typing import Callable

import numpy as np

from algocli.analytics.result import RunResult
from algocli.broker.costs import CostModel, PercentCommission
from algocli.broker.fill_models import FillModel, NextOpen
from algocli.broker.simulated import SimulatedBroker
from algocli.data.history import Bars, Cursor, History
from algocli.domain.candle import Candle
from algocli.domain.models import Instrument, Interval, OrderStatus, OrderType, Signal, SignalAction
from algocli.domain.session import ist_date
from algocli.engine.core import EngineCore, StrategySlot
from algocli.engine.timeline import Timeline, woken_events
from algocli.errors import StrategyError
from algocli.market.products import ProductRules, expiry_bar, squareoff_bars
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
        products: Product per instrument id (``CNC``, ``INTRADAY``, ``MARGIN``): the broker
            config's ``products``; ``default_product`` (its ``product``) for the others.
        rules: Product rules (INTRADAY square-off, margin); None: whole value, no square-off.
        universe: Option contracts ``ctx.option`` picks from (``data.options``); those with bars trade.
        trade_from: UTC nanoseconds of the first instant that trades (``data.start`` with
            ``data.warmup``); the bars before it are warm-up: indicators see them, strategies
            get no ``on_candle`` for them, and the result starts after them. None: every bar trades.

    Futures whose expiry falls inside the data are settled at the expiry day's close (tag
    ``expiry``), options at intrinsic value against their underlying's close that day
    (``SimulatedBroker.settle_option``); with ``rules``, INTRADAY positions are squared off by the broker each day (tag
    ``auto-squareoff``, see ``algocli.market.products``). Both happen after the bar's working
    orders are matched and before the strategies see the bar, and cost nothing per bar: the bars
    where they fall are found once, and the loop is split there. ``available_margin`` is the
    margin left at every instant of the result's index, set by ``run``.
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
        products: dict[str, str] | None = None,
        default_product: str = "INTRADAY",
        rules: ProductRules | None = None,
        universe: list[Instrument] | None = None,
        trade_from: int | None = None,
    ) -> None:
        self.bars = bars
        self.name = name
        self.initial_capital = float(initial_capital)
        histories = {inst: History.from_bars(b, interval) for inst, b in bars.items()}
        known = {**{u.hrn: u for u in universe or ()}, **(instruments or {})}
        meta = {inst: known.get(inst) or Instrument(inst) for inst in bars}
        self.core = EngineCore(histories, meta, Ledger(initial_capital), universe=list(universe or ()))
        self.core.broker = SimulatedBroker(
            self.core.ledger, histories, fill_model or NextOpen(), cost_model or PercentCommission(0.0),
            self.core.on_fill, instruments=meta, products=products, default_product=default_product,
            rules=rules,
        )
        self._timeline = Timeline(bars)
        if self._timeline.aligned:  # the same bar starts everywhere: one cursor moves every history
            shared = Cursor(self._timeline.ts)
            for h in histories.values():
                h.share(shared)
        self.notes: list[str] = []
        self._equity: np.ndarray | None = None
        self._margin: np.ndarray | None = None  # ``available_margin``, worked out when first read
        self._closed = {"squareoff": 0, "expiry": 0}
        self._early: dict[str, tuple] = {}  # contract -> ``run_notes.early_settlement``: its data end early
        self._early_settled: list[tuple] = []  # what ``early_settlement_note`` reports
        #: Index in the timeline of the first instant that trades; the loops start there.
        self.first_bar = 0 if trade_from is None else int(np.searchsorted(self._timeline.ts, trade_from))
        if self.first_bar >= len(self._timeline.ts):
            raise ValueError("no bar at or after trade_from: every bar would be warm-up")

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

        if self.first_bar:  # each history's cursor on its last warm-up bar, as if the run had been going
            start_ns = self._timeline.ts[self.first_bar]
            for h in self.core.histories.values():
                h.cursor = int(np.searchsorted(h.column("ts")[:h.length], start_ns)) - 1
        self.core.start()
        tl = self._timeline
        if len(self.bars) == 1:
            self._run_single(progress)
        else:
            self._run_multi(progress)
        self._finish()  # close-out fills still reach on_order_fill, then on_stop comes last
        self.core.stop()
        gc.freeze()  # the run's orders, fills and trades: no collection while the result is built rescans them
        try:
            result = build_result(self, tl.ts, self.first_bar)
        finally:
            gc.unfreeze()
        self._equity = result.equity
        if self.core.broker.rules is not None:  # cash and margin differ only when the rules are on
            result.available_margin = self.available_margin
        return result

    def close(self) -> None:
        """Let go of the finished run's engine: its strategies, broker and order book.

        The parts refer to each other (the broker calls back into the core, each strategy's
        context reads the core), so on their own they wait for a full garbage collection, which
        costs a tenth of a second on a million bars; a sweep of many runs frees each one here at
        once. The result ``run`` returned stays whole; this Backtest cannot run again.
        """
        self.core.release()

    @property
    def available_margin(self) -> np.ndarray | None:
        """Equity less the margin open positions block, at every instant of the run (None before ``run``)."""
        if self._margin is None and self._equity is not None:
            self._margin = self._available_margin(self._equity, self._timeline.ts[self.first_bar:])
        return self._margin

    def _available_margin(self, equity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        from algocli.portfolio.margin import blocked_series

        broker = self.core.broker
        closes = {inst: (h.column("ts")[:h.length], h.column("close")[:h.length])
                  for inst, h in self.core.histories.items()}
        product_of = lambda inst: broker.products.get(inst, broker.default_product)  # noqa: E731
        return np.asarray(equity) - blocked_series(broker.fills, np.asarray(ts), closes, broker.instruments,
                                                   product_of, broker.rules)

    # --- the broker's square-off and expiry ----------------------------------------------

    def _events(self) -> dict[str, dict[int, list[tuple[str, bool, int, str]]]]:
        """Per instrument, bar -> [(kind, at_open, fill_ts, target)]: square-offs and expiry settlements.

        ``target`` is the instrument the event closes: the bar's own, except for an option, whose
        settlement sits on its underlying's last bar of the expiry day (whose close settles it).
        """
        broker = self.core.broker
        rules = broker.rules
        hists = self.core.histories
        out: dict[str, dict[int, list]] = {}

        def mark(inst: str, i: int, event: tuple) -> None:
            out.setdefault(inst, {}).setdefault(i, []).append(event)

        for inst, h in hists.items():
            model = broker.instruments[inst]
            ts = h.column("ts")[:h.length]
            if rules is not None:
                minute = rules.squareoff_minute(model, broker.products.get(inst, broker.default_product))
                if minute is not None:
                    for i, at_open, when in squareoff_bars(ts, minute):
                        mark(inst, i, ("squareoff", at_open, when, inst))
            if model.expiry is None or model.kind not in ("FUT", "OPT"):
                continue
            under = _underlying(model) if model.kind == "OPT" else None
            if under in hists:
                u = hists[under]
                uts = u.column("ts")[:u.length]
                i = expiry_bar(uts, model.expiry)
                if i is not None and ist_date(int(uts[i])) == model.expiry:
                    mark(under, i, ("option_expiry", False, int(uts[i]), inst))
                    self._note_early(inst, under, int(uts[i]), u.interval)
                    continue
            i = expiry_bar(ts, model.expiry)
            if i is not None:
                if under is not None:
                    self.notes.append(f"{inst} was settled at its own expiry-day close: the run has no bar of its "
                                      f"underlying {under} on {model.expiry} (add its data to settle at intrinsic)")
                mark(inst, i, ("expiry", False, int(ts[i]), inst))
                self._note_early(inst, inst, int(ts[i]), h.interval)
        return out

    def _note_early(self, contract: str, priced_by: str, bar_ts: int, interval) -> None:
        """Remember a settlement bar that ends before its day's session close (``run_notes``)."""
        from algocli.engine.run_notes import early_settlement

        entry = early_settlement(contract, priced_by, bar_ts, interval)
        if entry is not None:
            self._early[contract] = entry

    def _apply_events(self, inst: str, i: int, events: list[tuple[str, bool, int, str]], bar: int) -> None:
        h = self.core.histories[inst]
        broker = self.core.broker
        for kind, at_open, when, target in events:
            price = h.open_mv[i] if at_open else h.close_mv[i]
            settled = 0
            if kind == "squareoff":
                self._closed[kind] += broker.square_off(inst, price, when, bar)
            elif kind == "option_expiry":
                settled = broker.settle_option(target, price, when, bar)
            else:
                settled = broker.settle_expiry(inst, price, when, bar)
            if kind != "squareoff":
                self._closed["expiry"] += settled
                if settled and target in self._early:  # priced before the close: the trader is told
                    self._early_settled.append((*self._early[target], price))

    # --- loops ---------------------------------------------------------------------

    def _chunks(self, n: int, progress: Progress | None, marks: list[int] = ()):
        # Orders, fills and trades accumulate as long-lived objects. The cyclic GC is off inside
        # a chunk of bars, and at its end the chunk's survivors are frozen, so no collection
        # scans them again (scanning costs about 2 us per order). A chunk that left more than two
        # container objects per bar (a strategy building garbage cycles) is collected first, so
        # such garbage never outlives its chunk by much.
        # A chunk also ends before each of the sorted ``marks`` (bars with a square-off or an
        # expiry), so that the loop handles them without a test per bar.
        step = max(1, min(n, 10_000))
        garbage = 2 * step * max(1, self.bar_count // max(1, n))  # two per bar; a multi run's instants have several
        enabled = gc.isenabled()
        gc.disable()
        try:
            for start in range(self.first_bar, n, step):  # warm-up bars are never looped over
                stop = min(n, start + step)
                a = start
                for m in marks[bisect_left(marks, start):bisect_left(marks, stop)]:
                    if m > a:
                        yield a, m
                    a = m
                yield a, stop
                if enabled:
                    if gc.get_count()[0] > garbage:
                        gc.collect(1)
                    gc.freeze()
                if progress:
                    progress(stop - self.first_bar, n - self.first_bar)
        finally:
            gc.unfreeze()
            if enabled:
                gc.enable()

    def _run_single(self, progress: Progress | None) -> None:
        core = self.core
        (inst, h), = core.histories.items()
        core.clock = clock = h.clock  # one instrument: its cursor is the run's clock
        working = core.broker.pending[inst]
        on_bar, handle = core.broker.on_bar, core.handle
        masks = core.wake_masks()
        # no inner loop over subscribers per bar
        sid, on_candle = _fan_out(core.subscribers(masked=set(masks))[inst], handle)
        wakes = memoryview(masks[inst]) if masks else None  # Python bools, one per bar
        woken = np.flatnonzero(masks[inst]).tolist() if masks else []  # the bars they are true on
        ts = h.ts_mv
        i = 0
        events = self._events().get(inst, {})
        try:
            for start, stop in self._chunks(h.length, progress, sorted(events)):
                if start in events:  # once per chunk: the broker's square-off or an expiry falls here
                    i = start
                    if working:
                        on_bar(inst, i, ts[i], i)
                    clock.cursor = i
                    self._apply_events(inst, i, events[i], i)
                    if wakes is None or wakes[i]:
                        out = on_candle(Candle((h, i, inst)))
                        if out is not None:
                            handle(sid, out)
                    start += 1
                if wakes is not None:  # a bar that neither fills an order nor wakes the strategy changes nothing:
                    i = start  # go from one woken bar to the next, bar by bar only while an order works
                    for w in woken[bisect_left(woken, start):bisect_left(woken, stop)]:
                        while working and i < w:
                            on_bar(inst, i, ts[i], i)
                            clock.cursor = i
                            i += 1
                        i = w
                        if working:
                            on_bar(inst, i, ts[i], i)
                        clock.cursor = i
                        out = on_candle(Candle((h, i, inst)))
                        if out is not None:
                            handle(sid, out)
                        i += 1
                    while working and i < stop:
                        on_bar(inst, i, ts[i], i)
                        clock.cursor = i
                        i += 1
                    continue
                for i in range(start, stop):
                    if working:
                        on_bar(inst, i, ts[i], i)
                    clock.cursor = i
                    out = on_candle(Candle((h, i, inst)))
                    if out is not None:
                        handle(sid, out)
        except StrategyError:
            raise
        except Exception as exc:
            raise _strategy_error(sid, inst, h, i, exc) from exc

    def _run_multi(self, progress: Progress | None) -> None:
        core = self.core
        tl = self._timeline
        core.clock = Cursor(tl.ts)
        broker = core.broker
        masks = core.wake_masks()
        subs = core.subscribers(masked=set(masks))
        # What each instrument's bars need to open (its history's cursor, working orders and name)
        # and to close (history, candle name, strategy id, on_candle), in slot order.
        hists = core.histories
        opens = [(hists[inst].clock, broker.pending[inst], inst) for inst in tl.instruments]
        closes = [(hists[inst], hists[inst].instrument, *_fan_out(subs[inst], core.handle)) for inst in tl.instruments]
        # What runs on_candle (the ``wake_on`` bars, every bar of an instrument a strategy reads
        # without it), found before the loop; an instant's start in ``calls`` is ``call_from[g]``.
        calls, call_from = woken_events(tl, [masks.get(inst, bool(subs[inst])) for inst in tl.instruments])
        events: dict[int, list] = {}  # instant -> [(instrument, bar, [event, ...])]
        for inst, marks in self._events().items():
            bar_ts = core.histories[inst].ts_mv
            for i, evs in marks.items():
                events.setdefault(int(np.searchsorted(tl.ts, bar_ts[i])), []).append((inst, i, evs))
        loop = self._aligned_loop if tl.aligned else self._merged_loop
        loop(progress, opens, closes, calls, call_from, events)

    def _aligned_loop(self, progress, opens, closes, calls, call_from, events) -> None:
        """Instant ``g`` is bar ``g`` of every instrument, and the histories share one cursor
        (``History.share``): as in ``_run_single``, an instant costs nothing unless a strategy
        wakes, an order works or the broker squares off or settles."""
        core, tl = self.core, self._timeline
        clock, on_bar, handle = core.clock, core.broker.on_bar, core.handle
        bars = opens[0][0]  # the cursor every history reads
        pendings = [working for _, working, _ in opens]
        names = [inst for _, _, inst in opens]
        slots = list(range(len(opens)))  # compress over a range would make an int per slot
        tl_ts = tl.ts_list
        woken = np.flatnonzero(np.diff(call_from)).tolist()  # the instants with an on_candle
        # Each woken event's (history, name, strategy id, on_candle), an instant's a slice; when every
        # instrument wakes at every instant (strategies without wake_on), ``closes`` itself in slot order
        woke = None if len(calls) == len(closes) * len(tl_ts) else list(map(closes.__getitem__, calls))
        if events:
            woken = sorted({*woken, *events})

        def match(g: int, end: int) -> int:
            """Instants ``g`` to ``end - 1``, where nobody wakes: match working orders while there are any."""
            while g < end and any(pendings):
                clock.cursor = g
                bars.cursor = g - 1
                for k in compress(slots, pendings):
                    on_bar(names[k], g, tl_ts[g], g)
                bars.cursor = g
                g += 1
            return end

        sid, h, g = "", closes[0][0], 0
        try:
            for start, stop in self._chunks(len(tl_ts), progress, sorted(events)):
                marked = start if start in events else -1  # square-offs and expiries: a chunk's first instant
                g = start
                for w in woken[bisect_left(woken, start):bisect_left(woken, stop)]:
                    if g < w:  # (most often the next instant wakes)
                        g = match(g, w)
                    clock.cursor = g
                    bars.cursor = g - 1  # working orders match first, on the bars' last close (see _merged_loop)
                    for k in compress(slots, pendings):
                        on_bar(names[k], g, tl_ts[g], g)
                    bars.cursor = g
                    if g == marked:
                        for inst, i, evs in events[g]:
                            self._apply_events(inst, i, evs, g)
                    for h, name, sid, on_candle in closes if woke is None else woke[call_from[g]:call_from[g + 1]]:
                        out = on_candle(Candle((h, g, name)))
                        if out is not None:
                            handle(sid, out)
                    g += 1
                g = match(g, stop)
        except StrategyError:
            raise
        except Exception as exc:
            raise _strategy_error(sid, h.instrument, h, g, exc) from exc

    def _merged_loop(self, progress, opens, closes, calls, call_from, events) -> None:
        """Instruments with bars at different instants: each instant's events are slices of
        per-event references to ``opens`` and ``closes``, with no per-bar lookups by slot."""
        core, tl = self.core, self._timeline
        clock, on_bar, handle = core.clock, core.broker.on_bar, core.handle
        ev_slot = tl.ev_slot.tolist()
        ev_open = list(map(opens.__getitem__, ev_slot))
        ev_close = list(map(closes.__getitem__, ev_slot))
        ev_idx, groups, tl_ts = tl.ev_idx, tl.group_bounds, tl.ts_list
        sid, h, i = "", closes[0][0], 0
        try:
            for start, stop in self._chunks(len(groups) - 1, progress, sorted(events)):
                # A chunk's square-offs and expiries fall on its first instant; one test per instant
                # (not per bar) keeps a single copy of the loop.
                marked = start if start in events else -1
                c = call_from[start]
                for g in range(start, stop):
                    clock.cursor = g
                    a, b = groups[g], groups[g + 1]
                    # Working orders match against the bars that open here while every cursor is
                    # still on its last closed bar: a fill's funds check values other positions at
                    # their last close, and its on_order_fill reads closed bars only, whatever the
                    # order the instruments were listed in (the broker holds an order placed during
                    # this instant for its instrument's next bar). Then the bars close and the
                    # strategies see them.
                    here, bars = ev_open[a:b], ev_idx[a:b]
                    for (_, working, inst), i in zip(here, bars):
                        if working:
                            on_bar(inst, i, tl_ts[g], g)
                    for (at, _, _), i in zip(here, bars):
                        at.cursor = i
                    if g == marked:
                        for inst, i, evs in events[g]:
                            self._apply_events(inst, i, evs, g)
                    end = call_from[g + 1]
                    while c < end:
                        e = calls[c]
                        c += 1
                        h, name, sid, on_candle = ev_close[e]
                        i = ev_idx[e]
                        out = on_candle(Candle((h, i, name)))
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
        statuses = list(map(attrgetter("status"), broker.orders))
        rejected = statuses.count(OrderStatus.REJECTED)
        if rejected:
            first = broker.orders[statuses.index(OrderStatus.REJECTED)]
            self.notes.append(f"{rejected} order(s) were rejected (see orders.csv); first: {first.reason}")
        if self._closed["squareoff"]:
            self.notes.append(f"{self._closed['squareoff']} INTRADAY position(s) were squared off by the broker at "
                              "its square-off time, with its fee (tag auto-squareoff in orders.csv)")
        if self._closed["expiry"]:
            self.notes.append(f"{self._closed['expiry']} futures/options position(s) were settled at expiry (tag "
                              "expiry): futures at the expiry day's close, options at intrinsic value against "
                              "the underlying's close, with STT on exercise for in-the-money holders")
        self._data_notes()
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

    def _data_notes(self) -> None:
        """Notes on settlements before the close and on fills that waited for a sparse contract's bar."""
        from algocli.engine.run_notes import early_settlement_note, late_fills_note

        broker, tl = self.core.broker, self._timeline
        notes = [early_settlement_note(self._early_settled)]
        if not tl.aligned:  # on one shared timeline every contract has every bar: no fill can wait
            notes.append(late_fills_note(broker.fills, broker.orders, self.core.histories, tl.ts))
        self.notes.extend(n for n in notes if n)


def _underlying(model: Instrument) -> str:
    from algocli.strategy.contracts import underlying_of

    return underlying_of(model)


def _fan_out(subs: list[tuple[str, Callable]], handle: Callable) -> tuple[str, Callable]:
    """One ``(strategy id, on_candle)`` pair for an instrument's subscribers, so the bar loops call
    one function per bar: the only one, or one that calls each in turn and handles its signals
    before the next runs (as a loop over them would), naming the strategy that raised."""
    if len(subs) == 1:
        return subs[0]

    def each(candle: Candle) -> None:
        for sid, on_candle in subs:
            try:
                out = on_candle(candle)
                if out is not None:
                    handle(sid, out)
            except StrategyError:
                raise
            except Exception as exc:
                h, i, inst = candle
                raise _strategy_error(sid, inst, h, i, exc) from exc

    return "", each


def _strategy_error(sid: str, inst: str, h: History, i: int, exc: Exception) -> StrategyError:
    from algocli.domain.candle import ns_to_ist

    when = ns_to_ist(h.ts_mv[i]).isoformat() if 0 <= i < h.length else "?"
    return StrategyError(
        f"strategy {sid or '?'} raised {type(exc).__name__} on {inst} bar {when}: {exc}"
        " (rerun with --debug for the traceback)")


__all__ = ["Backtest"]
