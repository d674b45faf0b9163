"""The paper-trading driver: live ticks in, the simulated broker, the same strategies.

Per tick, in this order:

1. the aggregator releases every candle that has closed, by period across instruments
   (``algocli.data.aggregator``, "Release"); period by period, every instrument's candle is
   journaled and appended to its history first, and then the strategies get them, in the
   run's instrument order, as a backtest's instant: a strategy on the index's candle reads
   the options' candles of the same period; strategies may place orders;
2. the simulated broker matches working orders against the tick's price, so an order
   placed on candle t's close fills on the first tick of t+1, its open, exactly as the
   backtest's ``next_open`` does.

Every order, fill and closed candle is journaled (append + fsync) before it takes
effect. Starting again with the same journal restores cash, positions, working orders
and history, and books each fill once.

A candle that has not closed when the run stops is not history: ``stop`` journals it as
``forming``, and a resumed run continues it if ticks of its interval still arrive, or drops
it (see ``algocli.data.aggregator``, "Shutdown and resume").
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from algocli.broker.costs import CostModel
from algocli.broker.fill_models import FillModel
from algocli.broker.protocol import Broker
from algocli.broker.simulated import SimulatedBroker
from algocli.data.history import Bars, History
from algocli.domain.candle import Candle, ns_to_ist
from algocli.domain.models import Instrument, Interval, Tick
from algocli.engine.core import EngineCore, StrategySlot
from algocli.errors import ConfigError, StrategyError
from algocli.persistence.journal import Journal, crash_point, read_journal
from algocli.portfolio.ledger import Ledger
from algocli.strategy.base import BaseStrategy


_NEVER = 1 << 62
_IST_NS = 19_800_000_000_000
_DAY_NS = 86_400 * 10**9
_MINUTE_NS = 60 * 10**9


class ProductEvents:
    """The simulated broker's own closes in paper: the INTRADAY square-off and futures expiry.

    The backtest squares off at the first bar starting at or after the time, at its open; here it
    is the first tick of the instrument at or after it, at its price, after the tick's matching,
    as in the backtest. A day whose ticks stop before the time is squared off on the next tick
    (of a later day) at the day's last close, stamped with the square-off time. A future is
    settled at its expiry day's last close once a tick arrives after that day's session.

    An option whose underlying the run trades settles when the underlying's candle that ends at
    the expiry day's close is released (``on_close``), at its close, before any strategy gets that
    candle, as the backtest settles on the underlying's last bar of the day before its strategies
    run; the fill is stamped with that candle's start, as the backtest stamps it with the bar's. No
    tick comes after the close, so a run stopped later that day settles in ``due_at_stop``, and a
    run whose expiry day's last candle ended earlier settles on the underlying's first tick of a
    later day; both at the expiry day's last close.

    Args:
        broker: The simulated broker (its ``rules``, products and instruments).
        histories: The run's candle histories (the last close of a day).
    """

    def __init__(self, broker: SimulatedBroker, histories: dict[str, History]) -> None:
        self.broker = broker
        self.histories = histories
        self.due: dict[str, int] = dict.fromkeys(histories, 0)  # 0: schedule on the first tick
        self.early_settled: list[tuple] = []  # settled on a candle that ended before the close (``run_notes``)
        self._what: dict[str, tuple[str, int]] = {}  # instrument -> (kind, due ns)
        # underlying -> [(expiry day's close ns, option)]: an option settles with its underlying's candle
        # (or first tick of a later day) after that close (its own ticks stop with the contract).
        self._options: dict[str, list[tuple[int, str]]] = {}
        for inst in histories:
            model = broker.instruments[inst]
            if model.kind == "OPT" and model.expiry is not None:
                from algocli.strategy.contracts import underlying_of

                under = underlying_of(model)
                if under in histories:
                    self._options.setdefault(under, []).append((_expiry_close(model.expiry), inst))

    def fire(self, inst: str, price: float, ts: int, bar: int) -> None:
        """A tick of ``inst`` at or after its due instant: close what is due, schedule the next."""
        if inst in self._options:
            self._settle_options(inst, _next_day(ts) - _DAY_NS - 1, bar)  # expiry days before this tick's
        what = self._what.get(inst)
        if what is not None and ts >= what[1]:
            del self._what[inst]
            kind, due = what
            when, at, h = ts, price, None
            if (ts + _IST_NS) // _DAY_NS != (due + _IST_NS) // _DAY_NS:
                h = self.histories[inst]  # the due day had no later tick: its last close is the price
                when, at = due, (h.close_mv[h.length - 1] if h.length else price)
            if kind == "squareoff":
                self.broker.square_off(inst, at, when, bar)
            elif self.broker.settle_expiry(inst, at, when, bar) and h is not None and h.length:
                self._check_close(inst, inst, int(h.ts_mv[h.length - 1]), h.interval, float(at))
        self._schedule(inst, ts)

    def _check_close(self, contract: str, priced_by: str, bar_ts: int, interval, price: float) -> None:
        """Remember a settlement priced by a candle that ended before its day's session close."""
        from algocli.engine.run_notes import early_settlement

        entry = early_settlement(contract, priced_by, bar_ts, interval)
        if entry is not None:
            self.early_settled.append((*entry, price))

    @property
    def has_options(self) -> bool:
        """True while an option on an underlying of the run is still to settle."""
        return any(self._options.values())

    def on_close(self, inst: str, end: int, bar: int) -> None:
        """``inst``'s candle ending at ``end`` is in its history: settle the options on it whose
        expiry day closes by ``end`` (before the strategies get the candle)."""
        if inst in self._options:
            self._settle_options(inst, end, bar)

    def due_at_stop(self, now: int, bar: int) -> None:
        """The run stops at exchange time ``now``: settle every option whose expiry day has closed."""
        for under in list(self._options):
            self._settle_options(under, now, bar)

    def _settle_options(self, under: str, ts: int, bar: int) -> None:
        """Settle the options on ``under`` whose expiry-day close is at or before ``ts``, at the
        underlying's last close of that day, stamped with that candle's start, as the backtest
        (``SimulatedBroker.settle_option``)."""
        from algocli.domain.session import ist_date

        due = [(at, opt) for at, opt in self._options[under] if ts >= at]
        if not due:
            return
        self._options[under] = [e for e in self._options[under] if ts < e[0]]
        h = self.histories[under]
        for at, opt in due:
            expiry = self.broker.instruments[opt].expiry
            k = h.length - 1
            while k >= 0 and ist_date(int(h.ts_mv[k])) > expiry:
                k -= 1
            if k < 0:  # every candle is after the expiry (a resumed run): the last close, as the best there is
                k = h.length - 1
            if k < 0:  # no candle of the underlying yet: wait for one
                self._options[under].append((at, opt))
                continue
            on_the_day = ist_date(int(h.ts_mv[k])) == expiry
            price, bar_ts = float(h.close_mv[k]), int(h.ts_mv[k])
            if self.broker.settle_option(opt, price, bar_ts if on_the_day else at, bar):
                self._check_close(opt, under, bar_ts, h.interval, price)
        if self.due.get(under):  # already scheduled by a tick: the next due instant may have moved
            self._refresh_due(under)

    def _schedule(self, inst: str, ts: int) -> None:
        broker = self.broker
        model = broker.instruments[inst]
        day0 = (ts + _IST_NS) // _DAY_NS * _DAY_NS - _IST_NS  # this IST day's midnight, UTC ns
        options = []
        minute = broker.rules.squareoff_minute(model, broker.products.get(inst, broker.default_product)) \
            if broker.rules is not None else None
        if minute is not None:
            at = day0 + minute * _MINUTE_NS
            options.append(("squareoff", at if ts < at else at + _DAY_NS))
        settles_itself = model.kind == "FUT" or (model.kind == "OPT" and not any(
            opt == inst for entries in self._options.values() for _, opt in entries))
        if settles_itself and model.expiry is not None:  # an option without its underlying: at its own close
            at = _expiry_close(model.expiry)
            if ts < at or not self._settled(inst):
                options.append(("expiry", at))
        if options:
            self._what[inst] = min(options, key=lambda o: o[1])
        else:
            self._what.pop(inst, None)
        self._refresh_due(inst)

    def _refresh_due(self, inst: str) -> None:
        dues = [self._what[inst][1]] if inst in self._what else []
        dues += [_next_day(at) for at, _ in self._options.get(inst, ())]
        self.due[inst] = min(dues) if dues else _NEVER

    def _settled(self, inst: str) -> bool:
        return not any(p.quantity for (_, i), p in self.broker.ledger.positions.items() if i == inst)


def _next_day(ts: int) -> int:
    """The IST midnight after ``ts`` (UTC ns)."""
    return (ts + _IST_NS) // _DAY_NS * _DAY_NS - _IST_NS + _DAY_NS


def _expiry_close(expiry) -> int:
    """The F&O session's close on ``expiry`` (UTC ns): when its contracts settle."""
    from algocli.domain.session import ist_midnight_ns
    from algocli.market.calendar import default_calendar

    session = default_calendar().session(expiry, "FNO")
    close = session.close if session is not None else None
    return ist_midnight_ns(expiry) + ((close.hour * 60 + close.minute) if close else 930) * _MINUTE_NS


class LiveClock:
    """The run's timeline as it grows: one entry per distinct closed-candle start."""

    __slots__ = ("ts_mv", "cursor")

    def __init__(self) -> None:
        self.ts_mv: list[int] = []
        self.cursor = -1

    def at(self, ts: int) -> int:
        """Move to the instant ``ts`` (appending it if new) and return its index."""
        if not self.ts_mv or self.ts_mv[-1] < ts:
            self.ts_mv.append(ts)
        elif self.ts_mv[-1] != ts:  # an older instrument's candle closed late: find its slot
            self.cursor = self.ts_mv.index(ts) if ts in self.ts_mv else len(self.ts_mv) - 1
            return self.cursor
        self.cursor = len(self.ts_mv) - 1
        return self.cursor


@dataclass
class PaperStats:
    """Counters for the dashboard and the benchmark."""

    ticks: int = 0
    candles: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


class PaperEngine:
    """One simulated account trading on live candles.

    Args:
        instruments: Instruments to subscribe to.
        interval: Candle interval the strategies run on.
        initial_capital: Starting cash.
        fill_model: Prices market orders on the tick they fill on.
        cost_model: Charges per fill.
        journal_path: The crash-safe journal; replayed first if it exists.
        name: The run name.
    """

    def __init__(self, instruments: list[str], *, interval: Interval, initial_capital: float,
                 fill_model: FillModel, cost_model: CostModel, journal_path: Path, name: str,
                 metadata: dict[str, Instrument] | None = None, router_factory=None,
                 products: dict[str, str] | None = None, default_product: str = "INTRADAY",
                 rules=None) -> None:
        from algocli.data.aggregator import CandleAggregator

        self.name = name
        self.interval = interval
        self.initial_capital = float(initial_capital)
        histories = {inst: History(inst, interval) for inst in instruments}
        meta = {inst: (metadata or {}).get(inst) or Instrument(inst) for inst in instruments}
        self.core = EngineCore(histories, meta, Ledger(initial_capital))
        self.core.clock = self.clock = LiveClock()
        self.aggregator = CandleAggregator(interval, self._on_candle)
        self._released: list = []  # candles the aggregator released, taken by ``_take_candles``
        self._order = {inst: k for k, inst in enumerate(histories)}  # ties within a period: the run's order
        self.stats = PaperStats()
        self.notes: list[str] = []
        self.events: list[str] = []  # lines for the operator, taken by the run loop
        self.halted: dict[str, str] = {}  # strategy id -> why it no longer trades
        self.broker_funds: float | None = None  # a live run's funds at the broker, read now and then by the runtime
        self.journal_path = Path(journal_path)
        records = list(read_journal(self.journal_path))
        self.journal_records = records
        self.restored = self._restore_candles(records)
        self.journal = Journal(self.journal_path)
        if router_factory is None:
            router = SimulatedBroker(self.core.ledger, histories, fill_model, cost_model, self.core.on_fill,
                                     instruments=meta, products=products, default_product=default_product,
                                     rules=rules)
            router.journal = self.journal
            self.restored.update(router.book.replay(records))
        else:  # a live router restores its orders against the broker (``LiveRouter.reconcile``)
            router = router_factory(self)
        self.broker = self.core.broker = router
        for rec in records:
            if rec.get("k") == "strategy_halted":
                self.halted[rec["strategy_id"]] = rec["reason"]
        self._subs: dict[str, list[tuple[str, object]]] = {}
        self._trading = False
        self._last_tick = (0, 0.0)  # (exchange ns, monotonic s) of the latest tick
        self.error: Exception | None = None
        # The broker's own closes (INTRADAY square-off, futures expiry): per instrument, the next
        # instant one is due; a tick compares one number.
        self.product_events = ProductEvents(router, self.core.histories) if router_factory is None else None

    @property
    def resumed(self) -> bool:
        """True when this run continues a journal that already had candles."""
        return bool(self.restored.get("candles"))

    # --- setup -----------------------------------------------------------------------

    def add_strategy(self, strategy: BaseStrategy, instruments: list[str], strategy_id: str) -> str:
        self.core.add(StrategySlot(strategy_id, strategy, list(instruments)))
        return strategy_id

    def start(self) -> None:
        """Call ``on_init``, rebuild the strategies' state on a resume, begin reacting to candles.

        On a resume every journaled candle is replayed through each strategy's
        ``on_candle`` with order entry muted (``algocli.engine.resume``): what a strategy
        derives from candles (previous values, counters) is rebuilt, while its orders and
        positions are the restored ones, read through the context.
        """
        from algocli.engine.resume import replay_candles

        self._subs = {inst: [(sid, fn) for sid, fn in subs if sid not in self.halted]
                      for inst, subs in self.core.subscribers().items()}
        for sid, reason in self.halted.items():
            self.events.append(f"strategy {sid} stays halted ({reason}); {self._positions_line(sid)}; "
                               "start with --fresh to trade it again")
        self.core.start()
        if self.resumed:
            for sid, exc in replay_candles(self.core, self.clock, exclude=set(self.halted)).items():
                self._halt_strategy(sid, exc)
        self._trading = True

    # --- the hot path ------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Feed callback: release closed candles, then match orders at the tick's price.

        A failure here (a strategy raising, a full disk) must stop the run, but feeds keep
        going when a callback raises; so it is kept in ``error`` for the run loop to raise.
        """
        if self.error is not None:
            return
        try:
            self._on_tick(tick)
        except Exception as exc:
            self.error = exc

    def _on_tick(self, tick: Tick) -> None:
        self.stats.ticks += 1
        if tick.ts >= self._last_tick[0]:
            self._last_tick = (tick.ts, time.monotonic())
        before = len(self.broker.orders)
        self.aggregator.on_tick(tick)
        if self._released:
            self._take_candles()
        inst = tick.instrument
        if inst in self.broker.pending:
            self.broker.on_tick(inst, tick.ltp, tick.ts, len(self.clock.ts_mv))
            events = self.product_events
            if events is not None and tick.ts >= events.due.get(inst, _NEVER):
                events.fire(inst, tick.ltp, tick.ts, len(self.clock.ts_mv))
        if tick.received_ns and len(self.broker.orders) > before:
            self.stats.latencies_ns.append(time.monotonic_ns() - tick.received_ns)  # the feeds' clock

    def exchange_now(self) -> int:
        """Exchange time now: the latest tick's time plus the wall time since it arrived."""
        ts, at = self._last_tick
        return ts + int((time.monotonic() - at) * 1e9) if ts else 0

    def feed_in_order(self, ordered: bool) -> None:
        """Say whether the feed delivers ticks in exchange-time order across instruments (``algo
        sandbox``'s replay): then no grace is waited for before a tick closes other instruments'
        candles (``algocli.data.aggregator``, "Grace, live and replayed")."""
        self.aggregator.ordered = ordered

    def on_time(self, now_ns: int) -> None:
        """Release candles whose end has passed even if no later tick arrived."""
        try:
            self.aggregator.on_time(now_ns)
        finally:
            self._take_candles()

    def _on_candle(self, c) -> None:
        self._released.append(c)

    def _take_candles(self) -> None:
        """Period by period: journal and append every released candle, settle the options whose
        expiry closes with it, then hand the candles to the strategies."""
        batch, self._released = self._released, []
        if len(batch) > 1:
            order = self._order
            batch.sort(key=lambda c: (c.start, order.get(c.instrument, 0)))
        events = self.product_events
        k = 0
        while k < len(batch):
            start, group = batch[k].start, []
            while k < len(batch) and batch[k].start == start:
                c = batch[k]
                k += 1
                h = self._store(c)
                if h is not None:
                    group.append(h)
                    if events is not None and events.has_options:
                        events.on_close(c.instrument, c.end, self.clock.cursor)
            if self._trading:
                for h in group:
                    self._dispatch(h)

    def _store(self, c) -> History | None:
        """Journal and append one closed candle; None when it is not the run's or already restored."""
        h = self.core.histories.get(c.instrument)
        if h is None or (h.length and c.start <= h.ts_mv[h.length - 1]):
            return None
        # candles are market data, not money: no fsync of their own on the order path
        self.journal.append("candle", sync=False, instrument=c.instrument, ts=c.start, open=c.open,
                            high=c.high, low=c.low, close=c.close, volume=c.volume)
        crash_point("after_candle_journal")
        self._append_candle(h, c.start, c.open, c.high, c.low, c.close, c.volume)
        self.stats.candles += 1
        return h

    def _append_candle(self, h: History, ts: int, o: float, hi: float, lo: float, c: float, v: float) -> None:
        self.clock.at(ts)
        h.append(ts, o, hi, lo, c, v)

    def _dispatch(self, h: History) -> None:
        candle = Candle((h, h.cursor, h.instrument))
        handle = self.core.handle
        for sid, on_candle in self._subs.get(h.instrument, ()):
            try:
                out = on_candle(candle)
                if out is not None:
                    handle(sid, out)
            except Exception as exc:
                err = exc if isinstance(exc, StrategyError) else StrategyError(
                    f"strategy {sid} raised {type(exc).__name__} on {h.instrument}: {exc}")
                if not self.resumed:
                    raise err from exc
                self._halt_strategy(sid, err)  # a resumed run must not crash-loop on it

    def _halt_strategy(self, sid: str, exc: Exception) -> None:
        """Stop giving ``sid`` candles, cancel its working orders, and say what it holds.

        Journaled, so the run stays halted for this strategy across restarts instead of
        dying on the same candle each time.
        """
        if sid in self.halted:
            return
        reason = str(exc)
        self.halted[sid] = reason
        self.journal.append("strategy_halted", strategy_id=sid, reason=reason)
        self._subs = {inst: [(s, fn) for s, fn in subs if s != sid] for inst, subs in self._subs.items()}
        ts = self.clock.ts_mv[self.clock.cursor] if self.clock.ts_mv else None
        for order in self.broker.open_orders(sid):
            self.broker.cancel(order.order_id, sid, ts, reason="strategy halted")
        self.events.append(f"strategy {sid} halted: {reason}; {self._positions_line(sid)}")

    def _positions_line(self, sid: str) -> str:
        held = [f"{p.instrument} {p.quantity:+d}" for (s, _), p in self.core.ledger.positions.items()
                if s == sid and p.quantity]
        return "positions: " + (", ".join(held) if held else "none")

    # --- recovery ----------------------------------------------------------------------

    def _restore_candles(self, records: list[dict]) -> dict[str, int]:
        """Rebuild each instrument's history from the journal's candles, and resume the ones still forming."""
        n = 0
        forming: dict[str, dict] = {}
        for rec in records:
            kind = rec["k"]
            if kind == "candle":
                inst = rec["instrument"]
                h = self.core.histories.get(inst)
                if h is not None:
                    self._append_candle(h, rec["ts"], rec["open"], rec["high"], rec["low"], rec["close"],
                                        rec["volume"])
                    n += 1
                    if inst in forming and forming[inst]["start"] <= rec["ts"]:
                        del forming[inst]  # it closed in a later run
            elif kind == "forming" and rec["instrument"] in self.core.histories:
                forming[rec["instrument"]] = rec
        for rec in forming.values():
            self.aggregator.resume(rec)
        return {"candles": n, "orders": 0, "fills": 0}

    # --- the end -----------------------------------------------------------------------

    def stop(self, now_ns: int | None = None) -> None:
        """Stop trading: run ``on_stop``, keep the candles that have closed by ``now_ns``, and journal
        the ones still forming as ``forming`` (never as closed candles) for a resume to continue.

        Args:
            now_ns: Exchange time now, UTC ns (``exchange_now()``); None: no candle is due.
        """
        if self._trading:
            self._trading = False
            self.core.stop()
        if now_ns is not None:
            self.aggregator.on_time(now_ns, grace_s=0)  # no tick can come any more: no grace to wait for
        self.aggregator.flush()  # closed candles waiting for their period's quiet instruments
        self._take_candles()
        if now_ns is not None and self.product_events is not None:
            self.product_events.due_at_stop(now_ns, len(self.clock.ts_mv) - 1)
        forming: dict[int, list[str]] = {}  # a period's start -> the instruments whose candle of it was forming
        for rec in self.aggregator.open_candles():
            self.journal.append("forming", **rec)
            forming.setdefault(rec["start"], []).append(rec["instrument"])
        for start, names in forming.items():  # one line a period, not one an instrument (an option chain's 75)
            what = (f"the {names[0]} candle" if len(names) == 1 else
                    f"the candles of {len(names)} instruments ({names[0]}, {names[1]}{', ...' if len(names) > 2 else ''})")
            self.notes.append(f"{what} of {ns_to_ist(start):%Y-%m-%d %H:%M} IST had not closed when the run stopped: "
                              f"{'it is' if len(names) == 1 else 'they are'} left out; a resume within the interval "
                              f"continues {'it' if len(names) == 1 else 'them'}")
        if self.aggregator.dropped:
            self.notes.append(f"{self.aggregator.dropped} candle(s) left unfinished by the previous run were "
                              "dropped: the run resumed after their interval had ended")
        if self.product_events is not None:
            from algocli.engine.run_notes import early_settlement_note

            note = early_settlement_note(self.product_events.early_settled)
            if note is not None:
                self.notes.append(note)
        self.journal.close()

    def snapshot_bars(self) -> dict[str, Bars]:
        """Copies of every instrument's candles so far."""
        out = {}
        for inst, h in self.core.histories.items():
            n = h.length
            out[inst] = Bars(inst, h.column("ts")[:n].copy(), *(h.column(f)[:n].copy() for f in
                             ("open", "high", "low", "close", "volume")))
        return out

    def timeline(self) -> np.ndarray:
        return np.asarray(self.clock.ts_mv, dtype=np.int64)


def open_live(plugin: type, config: object, instrument_ids: Mapping[str, Mapping[str, str]] | None = None):
    """``plugin.live(config)``: a live feed or broker, given the instrument map when there is one.

    The keyword is passed only with a map, so a plugin whose ``live()`` predates it keeps
    working for runs that name instruments by broker ids.

    Args:
        plugin: A feed or broker plugin class with a ``live`` factory.
        config: The plugin's validated config.
        instrument_ids: Broker name → (our instrument name →
            that broker's id); None when instruments are broker ids already.

    Raises:
        ConfigError: A map was given, but ``plugin.live`` cannot take it.
    """
    if instrument_ids is None:
        return plugin.live(config)
    params = inspect.signature(plugin.live).parameters.values()
    if not any(p.name == "instrument_ids" or p.kind is p.VAR_KEYWORD for p in params):
        raise ConfigError(f"{plugin.__name__} cannot map instrument names to broker ids (its live() takes no "
                          "instrument_ids); name its instruments by broker id")
    return plugin.live(config, instrument_ids=instrument_ids)


def live_feed(plugins, instrument_ids: Mapping[str, Mapping[str, str]] | None = None):
    """The run's live feed, from ``plugins.feed_cls.live``.

    Args:
        plugins: The resolved run (``algocli.engine.assemble.Plugins``).
        instrument_ids: Broker name → (our instrument name →
            that broker's id); the feed subscribes names by id and its ticks carry the names.
            None (the default): the run's instruments are broker ids.
    """
    return open_live(plugins.feed_cls, plugins.feed_cfg, instrument_ids)


def live_broker(plugins, instrument_ids: Mapping[str, Mapping[str, str]] | None = None) -> Broker:
    """The run's real broker, from ``plugins.broker_cls.live``.

    Args:
        plugins: The resolved run (``algocli.engine.assemble.Plugins``).
        instrument_ids: Broker name → (our instrument name →
            that broker's id); orders for a name go to its id and come back under the name.
            None (the default): the run's instruments are broker ids.
    """
    return open_live(plugins.broker_cls, plugins.broker_cfg, instrument_ids)
