"""The paper-trading driver: live ticks in, the simulated broker, the same strategies.

Per tick, in this order:

1. the aggregator releases every candle that has closed; each is journaled, appended to
   its instrument's history and handed to the strategies, which may place orders;
2. the simulated broker matches working orders against the tick's price, so an order
   placed on candle t's close fills on the first tick of t+1, its open, exactly as the
   backtest's ``next_open`` does.

Every order, fill and closed candle is journaled (append + fsync) before it takes
effect. Starting again with the same journal restores cash, positions, working orders
and history, and books each fill once.
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
from algocli.broker.simulated import SimulatedBroker
from algocli.data.history import Bars, History
from algocli.domain.candle import Candle
from algocli.domain.models import (
    Fill, Instrument, Interval, Order, OrderSide, OrderStatus, OrderType, Tick,
)
from algocli.engine.core import EngineCore, StrategySlot
from algocli.errors import ConfigError, StrategyError
from algocli.persistence.journal import Journal, crash_point, read_journal
from algocli.portfolio.ledger import Ledger
from algocli.strategy.base import BaseStrategy


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
                 metadata: dict[str, Instrument] | None = None, restore_trading: bool = True) -> None:
        from algocli.data.aggregator import CandleAggregator

        self.name = name
        self.interval = interval
        self.initial_capital = float(initial_capital)
        histories = {inst: History(inst, interval) for inst in instruments}
        meta = {inst: (metadata or {}).get(inst) or Instrument(inst) for inst in instruments}
        self.core = EngineCore(histories, meta, Ledger(initial_capital))
        self.core.clock = self.clock = LiveClock()
        self.broker = SimulatedBroker(self.core.ledger, histories, fill_model, cost_model, self.core.on_fill)
        self.core.broker = self.broker
        self.aggregator = CandleAggregator(interval, self._on_candle)
        self.stats = PaperStats()
        self.notes: list[str] = []
        self.journal_path = Path(journal_path)
        self.restored = self._restore(restore_trading)
        self.journal = Journal(self.journal_path)
        self.broker.journal = self.journal
        self._subs: dict[str, list[tuple[str, object]]] = {}
        self._trading = False
        self._last_tick = (0, 0.0)  # (exchange ns, monotonic s) of the latest tick
        self.error: Exception | None = None

    # --- setup -----------------------------------------------------------------------

    def add_strategy(self, strategy: BaseStrategy, instruments: list[str], strategy_id: str) -> str:
        self.core.add(StrategySlot(strategy_id, strategy, list(instruments)))
        return strategy_id

    def start(self) -> None:
        """Call ``on_init`` and begin reacting to candles."""
        self._subs = self.core.subscribers()
        self.core.start()
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
        inst = tick.instrument
        if inst in self.broker.pending:
            self.broker.on_tick(inst, tick.ltp, tick.ts, len(self.clock.ts_mv))
        if tick.received_ns and len(self.broker.orders) > before:
            self.stats.latencies_ns.append(time.monotonic_ns() - tick.received_ns)  # the feeds' clock

    def exchange_now(self) -> int:
        """Exchange time now: the latest tick's time plus the wall time since it arrived."""
        ts, at = self._last_tick
        return ts + int((time.monotonic() - at) * 1e9) if ts else 0

    def on_time(self, now_ns: int) -> None:
        """Release candles whose end has passed even if no later tick arrived."""
        self.aggregator.on_time(now_ns)

    def _on_candle(self, c) -> None:
        h = self.core.histories.get(c.instrument)
        if h is None or (h.length and c.start <= h.ts_mv[h.length - 1]):
            return  # not ours, or already restored from the journal
        # candles are market data, not money: no fsync of their own on the order path
        self.journal.append("candle", sync=False, instrument=c.instrument, ts=c.start, open=c.open,
                            high=c.high, low=c.low, close=c.close, volume=c.volume)
        crash_point("after_candle_journal")
        self._append_candle(h, c.start, c.open, c.high, c.low, c.close, c.volume)
        self.stats.candles += 1
        if self._trading:
            self._dispatch(h)

    def _append_candle(self, h: History, ts: int, o: float, hi: float, lo: float, c: float, v: float) -> None:
        self.clock.at(ts)
        h.append(ts, o, hi, lo, c, v)

    def _dispatch(self, h: History) -> None:
        candle = Candle((h, h.cursor, h.instrument))
        handle = self.core.handle
        for sid, on_candle in self._subs.get(h.instrument, ()):
            try:
                out = on_candle(candle)
            except StrategyError:
                raise
            except Exception as exc:
                raise StrategyError(f"strategy {sid} raised {type(exc).__name__} on {h.instrument}: {exc}") from exc
            if out is not None:
                handle(sid, out)

    # --- recovery ----------------------------------------------------------------------

    def _restore(self, trading: bool = True) -> dict[str, int]:
        """Rebuild history (and, unless ``trading`` is False, orders, fills and cash) from the journal."""
        counts = {"candles": 0, "orders": 0, "fills": 0}
        broker, ledger = self.broker, self.core.ledger
        records = list(read_journal(self.journal_path))
        for rec in records:  # candles first: the restored timeline bounds the bars fills refer to
            if rec["k"] == "candle":
                h = self.core.histories.get(rec["instrument"])
                if h is not None:
                    self._append_candle(h, rec["ts"], rec["open"], rec["high"], rec["low"], rec["close"],
                                        rec["volume"])
                    counts["candles"] += 1
        last_bar = len(self.clock.ts_mv) - 1
        self.journal_records = records
        if not trading:
            return counts
        for rec in records:
            kind = rec.pop("k")
            if kind == "order":
                self._restore_order(rec)
                counts["orders"] += 1
            elif kind == "fill":
                fill = Fill(**{**rec, "side": OrderSide(rec["side"])})
                # killed after journaling a fill but before the candle it happened in closed: that
                # bar is not in the journal, so book the fill on the last bar that is
                fill.bar = min(fill.bar, last_bar)
                if fill.fill_id in ledger.booked:
                    continue  # already booked: a journal never books a fill twice
                order = broker._by_id.get(fill.order_id)
                ledger.book(fill)
                broker.fills.append(fill)
                if order is not None:
                    _apply_fill(order, fill)
                    _unpend(broker, order)
                counts["fills"] += 1
            elif kind == "status":
                order = broker._by_id.get(rec["order_id"])
                if order is not None:
                    order.status = OrderStatus(rec["status"])
                    order.reason = rec["reason"]
                    order.updated_ts = rec["ts"] or order.updated_ts
                    if order.status.is_terminal:
                        _unpend(broker, order)
            elif kind == "modify":
                order = broker._by_id.get(rec["order_id"])
                if order is not None:
                    order.quantity = rec["quantity"]
                    order.limit_price = rec["limit_price"]
        return counts

    def _restore_order(self, rec: dict) -> None:
        broker = self.broker
        order = Order(
            rec["order_id"], rec["strategy_id"], rec["instrument"], OrderSide(rec["side"]), rec["quantity"],
            OrderType(rec["order_type"]), rec["limit_price"],
            OrderStatus.OPEN if rec["order_type"] == OrderType.LIMIT.value else OrderStatus.PENDING,
            rec["created_ts"], rec["created_bar"], rec["created_ts"], tag=rec["tag"],
        )
        broker.orders.append(order)
        broker._by_id[order.order_id] = order
        sid, _, seq = order.order_id.rpartition("-")
        broker._seq[sid] = max(broker._seq.get(sid, 0), int(seq))
        if order.instrument in broker.pending:
            broker.pending[order.instrument].append(order)

    # --- the end -----------------------------------------------------------------------

    def stop(self, now_ns: int | None = None) -> None:
        """Stop trading: run ``on_stop`` and release the candles still forming for the artifacts."""
        if self._trading:
            self._trading = False
            self.core.stop()
        self.aggregator.on_time((now_ns or 0) + 10**15)  # everything still open is final now
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
        instrument_ids: ``{"dhan": {...}, "upstox": {...}}``, each our instrument name →
            that broker's id; None when instruments are broker ids already.

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
        instrument_ids: ``{"dhan": {...}, "upstox": {...}}``, each our instrument name →
            that broker's id; the feed subscribes names by id and its ticks carry the names.
            None (the default): the run's instruments are broker ids.
    """
    return open_live(plugins.feed_cls, plugins.feed_cfg, instrument_ids)


def _apply_fill(order: Order, fill: Fill) -> None:
    total = order.filled_quantity + fill.quantity
    order.average_price = (order.average_price * order.filled_quantity + fill.price * fill.quantity) / total
    order.filled_quantity = total
    order.commission += fill.commission
    order.status = OrderStatus.FILLED if total >= order.quantity else OrderStatus.PARTIALLY_FILLED
    order.updated_ts = fill.ts


def _unpend(broker: SimulatedBroker, order: Order) -> None:
    working = broker.pending.get(order.instrument)
    if working is not None and order in working and order.status.is_terminal:
        working.remove(order)
