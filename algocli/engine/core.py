"""The part of an engine shared by backtest, paper and live: strategies, routing, the books.

A driver (``engine.backtest`` here; paper and live later) owns the clock and the bar loop.
It moves each instrument's history cursor, lets the broker match working orders against
the new bar, and then calls ``dispatch`` for the strategies subscribed to that instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from algocli.domain.models import Fill, Instrument, Order, Signal, SignalAction
from algocli.errors import StrategyError
from algocli.portfolio.ledger import Ledger
from algocli.strategy.context import StrategyContext

from algocli.strategy.base import BaseStrategy

if TYPE_CHECKING:
    from algocli.broker.simulated import SimulatedBroker
    from algocli.data.history import History
    from algocli.risk.controller import RiskController

_HOLD = SignalAction.HOLD


class Clock(Protocol):
    """Where the run is in time: a timeline of bar starts and the current position in it.

    A ``algocli.data.history.Cursor``: over a merged timeline (several instruments), or in a
    single-instrument backtest the instrument's own (``History.clock``), so the loop moves one
    cursor per bar and the clock follows for free.
    """

    ts_mv: memoryview
    cursor: int


@dataclass
class StrategySlot:
    """A strategy in a run, with its id and the instruments it trades."""

    id: str
    strategy: BaseStrategy
    instruments: list[str]
    context: StrategyContext | None = None


@dataclass
class EngineCore:
    """Strategies, histories, the ledger and the broker of one account."""

    histories: dict[str, History]
    instruments: dict[str, Instrument]
    ledger: Ledger
    slots: list[StrategySlot] = field(default_factory=list)
    broker: SimulatedBroker = None  # type: ignore[assignment]
    clock: Clock = None  # type: ignore[assignment]
    # Set by ``RiskController.attach``: every order is checked before the broker sees it.
    risk: RiskController | None = None
    # Option contracts the strategies may pick from (``ctx.option``): a backtest's ``data.options``.
    universe: list[Instrument] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id: dict[str, StrategySlot] = {}
        self._listeners: dict[str, StrategySlot] = {}
        # Every other spelling of a run's instrument (a broker id for its name): the specification's
        # strategies trade "NSE_EQ:1333" where the run definition says NSE:HDFCBANK.
        self.aliases: dict[str, str] = {
            other: inst for inst, model in self.instruments.items()
            for other in model.ids() if other != inst and other not in self.instruments}

    @property
    def now_ns(self) -> int:
        """Start of the bar being processed, UTC nanoseconds."""
        c = self.clock
        return c.ts_mv[c.cursor]

    @property
    def timeline_bar(self) -> int:
        """Index of the current instant in the run's timeline."""
        return self.clock.cursor

    def add(self, slot: StrategySlot) -> None:
        """Register a strategy and give it its context."""
        slot.strategy.id = slot.id
        slot.strategy.instruments = list(slot.instruments)
        slot.context = StrategyContext(self, slot.id)
        slot.strategy.set_context(slot.context)
        self.slots.append(slot)
        self._by_id[slot.id] = slot
        if type(slot.strategy).on_order_fill is not BaseStrategy.on_order_fill:
            self._listeners[slot.id] = slot

    def release(self) -> None:
        """Drop the references that tie a finished run's parts into cycles (``Backtest.close``):
        the strategies (whose contexts read this core) and the broker (which calls back into it)."""
        for slot in self.slots:
            if slot.context is not None:
                slot.context.wake.clear()  # its conditions' lines read the context back
        self.slots = []
        self._by_id.clear()
        self._listeners.clear()
        self.broker = None  # type: ignore[assignment]

    def subscribers(self, masked: frozenset[str] | set[str] = frozenset()) -> dict[str, list[tuple[str, object]]]:
        """For each instrument, the (strategy id, bound ``on_candle``) pairs that want its bars.

        A strategy's ``wake_on`` conditions are checked before its ``on_candle``, except for the
        ``masked`` instruments, whose driver skips the bars itself (``wake_masks``).
        """
        subs: dict[str, list[tuple[str, object]]] = {inst: [] for inst in self.histories}
        risk = self.risk
        for slot in self.slots:
            wake = slot.context.wake if slot.context is not None else {}
            for inst in slot.instruments:
                on_candle = slot.strategy.on_candle
                if inst in wake and inst not in masked:
                    on_candle = _woken(wake[inst], on_candle)
                if risk is not None:  # the daily loss and the square-off are measured per candle first
                    on_candle = _risk_first(risk.on_bar, on_candle)
                subs[inst].append((slot.id, on_candle))
        return subs

    def wake_masks(self) -> dict[str, object]:
        """Per instrument a driver may gate itself, one bool per bar: where its strategy wakes.

        That is an instrument whose one subscriber gave ``wake_on`` conditions for it, in a run
        without a risk controller (which must see every candle). Pass the keys to ``subscribers``.
        """
        if self.risk is not None:
            return {}
        readers: dict[str, list[StrategySlot]] = {}
        for slot in self.slots:
            for inst in slot.instruments:
                readers.setdefault(inst, []).append(slot)
        masks = {}
        for inst, slots in readers.items():
            conds = slots[0].context.wake.get(inst) if len(slots) == 1 and slots[0].context is not None else None
            if conds:
                mask = conds[0].mask()
                for c in conds[1:]:
                    mask |= c.mask()
                masks[inst] = mask
        return masks

    def start(self) -> None:
        for slot in self.slots:
            self._guard(slot.id, "on_init", slot.strategy.on_init)
        for slot in self.slots:
            if slot.context is not None:
                slot.context.started = True

    def stop(self) -> None:
        for slot in self.slots:
            self._guard(slot.id, "on_stop", slot.strategy.on_stop)

    def _guard(self, sid: str, hook: str, fn, *args):
        try:
            return fn(*args)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"strategy {sid}: {hook} raised {type(exc).__name__}: {exc}") from exc

    def submit(self, strategy_id: str, signal: Signal) -> str | None:
        """Route a strategy's signal to the broker; returns the order id."""
        _recheck(signal, strategy_id, self)
        c = self.clock
        i = c.cursor
        risk = self.risk
        if risk is not None and signal.action is not _HOLD:
            reason = risk.check(strategy_id, signal, self)
            if reason is not None:
                return self.deny(strategy_id, signal, c.ts_mv[i], reason).order_id
        order = self.broker.submit(strategy_id, signal, c.ts_mv[i], i)
        return None if order is None else order.order_id

    def deny(self, strategy_id: str, signal: Signal, ts: int, reason: str) -> Order:
        """Record an order the risk controller refused: REJECTED with ``reason``, never sent."""
        return self.broker.deny(strategy_id, signal, ts, reason)

    def handle(self, strategy_id: str, result) -> None:
        """Submit what ``on_candle`` returned: a Signal, a list of them, or None."""
        if isinstance(result, Signal):
            signals = (result,)
        elif isinstance(result, (list, tuple)):
            signals = result
        else:
            raise StrategyError(
                f"strategy {strategy_id}: on_candle returned {type(result).__name__}; "
                "return a Signal, a list of Signals, or None")
        c = self.clock
        i = c.cursor
        ts = c.ts_mv[i]
        submit = self.broker.submit
        risk = self.risk
        for signal in signals:
            if signal is not None:
                _recheck(signal, strategy_id, self)
                if risk is not None and signal.action is not _HOLD:
                    reason = risk.check(strategy_id, signal, self)
                    if reason is not None:
                        self.deny(strategy_id, signal, ts, reason)
                        continue
                submit(strategy_id, signal, ts, i)

    def on_fill(self, fill: Fill) -> None:
        slot = self._listeners.get(fill.strategy_id)
        if slot is None:
            return  # the strategy does not override on_order_fill
        try:
            slot.strategy.on_order_fill(fill)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"strategy {slot.id}: on_order_fill raised {type(exc).__name__}: {exc}") from exc

    def equity(self) -> float:
        """Cash plus every net position at its instrument's current close."""
        total = self.ledger.cash
        for inst, qty in self.ledger.net.items():
            if qty:
                h = self.histories[inst]
                total += qty * h.close_mv[h.clock.cursor]
        return total


def _woken(conditions: list, on_candle):
    """``on_candle`` called only on the bars where one of the ``wake_on`` conditions holds."""
    if len(conditions) == 1:
        holds = conditions[0].holds

        def woken(candle):
            if holds():
                return on_candle(candle)
            return None
        return woken

    def woken_any(candle):
        if any(c.holds() for c in conditions):
            return on_candle(candle)
        return None
    return woken_any


def _risk_first(on_bar, on_candle):
    """``on_candle`` preceded by the risk controller's per-candle work."""
    def guarded(candle):
        on_bar()
        return on_candle(candle)
    return guarded


def _recheck(signal, strategy_id: str, core: EngineCore) -> None:
    """Check a submitted signal again: a Signal's fields can be changed after it was made (the
    specification makes them immutable; a frozen dataclass costs a microsecond per signal), and one
    changed to a quantity of -5 or an action of "BUY" must not reach the book as it is."""
    if signal.__class__ is not Signal and not isinstance(signal, Signal):
        raise StrategyError(f"strategy {strategy_id}: submitted a {type(signal).__name__} ({signal!r}) as a "
                            "signal; return or submit Signal objects")
    signal.__post_init__()
    if signal.instrument not in core.histories:
        named = core.aliases.get(signal.instrument)
        if named is not None:
            signal.instrument = named
