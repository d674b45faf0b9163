"""The risk controller: one pre-trade check on the order path, the same in backtest, paper and live.

``EngineCore`` asks ``check`` about every order a strategy submits, before the broker sees
it. A refused order is still recorded, as REJECTED with the reason ``risk: ...``, so it
shows in ``orders.csv`` and the journal. Time is the engine's clock (the start of the
candle being processed), never the wall clock, so a backtest is deterministic and a paper
run of the same candles is refused the same orders.

Rules:

- An order *reduces* when it moves the account's net position in its instrument towards
  zero without passing it, counting the working orders on the same side. Reducing orders
  are allowed while HALTED, after the entry cut-off and after the square-off.
- ``max_position``: the account's net position (all strategies) plus every working order
  on the order's side plus the order must stay within ``max_position`` units either way.
- ``max_order_value``: quantity x limit price (market orders: x the instrument's last close).
- ``max_open_orders``: working orders in the account before this one.
- ``max_orders_per_second`` / ``_per_minute``: orders this controller accepted in the same
  second / minute of the engine clock. Refused orders and the controller's own closing
  orders do not count.
- ``max_daily_loss``: equity (cash + positions at the last close) against the equity at
  the start of the IST day, measured at every check and at every candle. Reaching the
  limit HALTS: working orders are cancelled, orders that add exposure are refused, and
  with ``flatten_on_halt`` every position is closed by one market order (tag
  ``risk-flatten``). HALTED lasts, across days and restarts, until ``algo halt --clear``.
  Clearing keeps the day's baseline, so it does not renew the day's loss budget: a loss
  still at the limit halts again at the next check. Only a new IST day (or ``--fresh``)
  starts a new baseline.
- ``entry_cutoff``: from HH:MM IST only reducing orders are allowed, until the next day.
- ``square_off``: at the first candle starting at or after HH:MM IST, once a day, working
  orders in intraday instruments are cancelled and intraday positions closed (tag
  ``square-off``); then only reducing orders are allowed in them until the next day.
  Intraday means the broker's product for the instrument is INTRADAY, the default; the
  simulated broker has no other product.
- A square-off that passed with no candle after it (the run was stopped, or its candles
  ended before the time) is caught up at the first candle of a later IST day, a restart's
  first candle included: what was held through the last session's square-off time is closed
  then (tag ``square-off``), working orders placed before that time are cancelled, and an
  event says so (``algocli.risk.catchup``). On that candle only reducing orders are allowed in
  those instruments, so a strategy acting on the same position does not open a new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from algocli.domain.candle import ns_to_ist
from algocli.domain.models import IST_OFFSET_NS, OrderSide, OrderType, Signal, SignalAction
from algocli.domain.session import ist_date
from algocli.risk.catchup import OWN_TAGS, missed_square_off, special_shift as _special_shift
from algocli.risk.config import RiskConfig, minutes_of
from algocli.risk.state import ACTIVE, HALTED, RiskState, file_signature, read_state, write_state

if TYPE_CHECKING:
    from algocli.engine.core import EngineCore

SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS
DAY_NS = 86_400 * SECOND_NS
FLATTEN_TAG = "risk-flatten"
SQUARE_OFF_TAG = "square-off"
_OWN_TAGS = OWN_TAGS  # (FLATTEN_TAG, SQUARE_OFF_TAG)
_BUY = SignalAction.BUY


class RiskController:
    """Pre-trade limits, the daily loss halt, the session times and the kill switch of one account.

    Args:
        config: The run definition's ``risk:`` section.
        state_path: Where HALTED and the day's baseline are kept (paper and live). None keeps
            the state in memory only: a backtest starts ACTIVE every time.
        clock_ns: The engine clock, UTC nanoseconds; None before the first candle.
        clear_command: The ``algo halt ... --clear`` its notes name.
        decision_lag_ns: How long after a candle's start its strategies decide on it
            (``domain.session.decision_lag_ns``); the session times are judged then.
    """

    def __init__(self, config: RiskConfig, *, state_path: Path | None,
                 clock_ns: Callable[[], int | None], clear_command: str = "algo halt CONFIG --clear",
                 decision_lag_ns: int = 0) -> None:
        self.config = config
        self.state_path = Path(state_path) if state_path is not None else None
        self._clock_ns = clock_ns
        self.core: EngineCore | None = None
        self.state = RiskState()
        self._signature = None
        self._actions_due = False  # cancel (+ flatten) still to run for the current halt
        self._last_equity: float | None = None
        self._sec = self._min = -1
        self._sec_count = self._min_count = 0
        self._cutoff_ns = None if config.entry_cutoff is None else minutes_of(config.entry_cutoff) * MINUTE_NS
        self._square_ns = None if config.square_off is None else minutes_of(config.square_off) * MINUTE_NS
        self._times_day = None  # the IST day the two times below are for
        self._day_times: tuple[int | None, int | None] = (self._square_ns, self._cutoff_ns)
        self._catchup_day = None  # the IST day (days since 1970) whose first candle looked for a missed one
        self._catchup: tuple[int, frozenset[str]] | None = None  # (candle, instruments) closed by one
        self.denied = 0
        self.decision_lag_ns = decision_lag_ns  # a 15:05 25-minute candle is decided at 15:30: after 15:20
        self.events: list[str] = []  # one line per halt, clear and square-off, oldest first
        self._events_seen = 0
        if self.state_path is not None:
            loaded = read_state(self.state_path)
            self._signature = file_signature(self.state_path)
            if loaded is not None:
                self.state = loaded
                if loaded.halted:
                    self._actions_due = True
                    self.events.append(f"still HALTED from before the restart: {loaded.reason}; "
                                       f"`{clear_command}` resumes trading")

    # --- wiring --------------------------------------------------------------------------

    def attach(self, core: EngineCore) -> RiskController:
        """Put this controller on ``core``'s order path (before the engine starts)."""
        self.core = core
        core.risk = self
        return self

    @property
    def halted(self) -> bool:
        return self.state.halted

    def new_events(self) -> list[str]:
        """Events since the previous call (for a running engine to print)."""
        out = self.events[self._events_seen:]
        self._events_seen = len(self.events)
        return out

    # --- the order path ------------------------------------------------------------------

    def check(self, strategy_id: str, signal: Signal, context: EngineCore) -> str | None:
        """None if the order may go to the broker, else why not (``risk: ...``).

        ``context`` is the engine core: its ledger, histories and broker are the books
        the limits are measured against.
        """
        if self._actions_due:
            self._act()
        now = self._clock_ns()
        cfg = self.config
        inst = signal.instrument
        reduces = None
        if now is not None:
            if cfg.max_daily_loss is not None:
                self._check_loss(context, now)
            if self._square_ns is not None:
                self._maybe_square_off(now)
        if self.state.halted:
            reduces = self._reduces(signal, context)
            if not reduces:
                return self._deny(f"risk: trading is halted ({self.state.reason}); "
                                  "only orders that reduce a position are allowed")
        if now is not None:
            caught = self._catchup
            if caught is not None and caught[0] == now and inst in caught[1]:
                reduces = self._reduces(signal, context) if reduces is None else reduces
                if not reduces:
                    return self._deny(f"risk: {inst} is being squared off (a missed {cfg.square_off} IST square-off "
                                      "caught up on this candle); only orders that reduce the position are allowed")
            tod = (now + self.decision_lag_ns + IST_OFFSET_NS) % DAY_NS
            square_ns, cutoff_ns = self._times_on(now)
            if square_ns is not None and tod >= square_ns and self._intraday(inst, context):
                if reduces is None:
                    reduces = self._reduces(signal, context)
                if not reduces:
                    return self._deny(f"risk: after the {cfg.square_off} IST square-off only orders that reduce "
                                      "an intraday position are allowed")
            if cutoff_ns is not None and tod >= cutoff_ns:
                if reduces is None:
                    reduces = self._reduces(signal, context)
                if not reduces:
                    return self._deny(f"risk: after the {cfg.entry_cutoff} IST entry cut-off only orders that "
                                      "reduce a position are allowed")
        if cfg.max_order_value is not None:
            price = signal.limit_price if signal.order_type is OrderType.LIMIT else _last_close(context, inst)
            if price is not None:
                value = signal.quantity * price
                if value > cfg.max_order_value:
                    return self._deny(f"risk: order value {value:,.2f} is above max_order_value "
                                      f"{cfg.max_order_value:,.2f}")
        if cfg.max_position is not None:
            buy = signal.action is _BUY
            worst = context.ledger.net.get(inst, 0)
            same_side = _working_quantity(context, inst, buy)
            worst += same_side + signal.quantity if buy else -(same_side + signal.quantity)
            if abs(worst) > cfg.max_position:
                return self._deny(f"risk: {inst} position could reach {worst:+d} units with the working orders; "
                                  f"max_position is {cfg.max_position}")
        if cfg.max_open_orders is not None:
            working = len(context.broker.open_orders())
            if working >= cfg.max_open_orders:
                return self._deny(f"risk: {working} orders are working; max_open_orders is {cfg.max_open_orders}")
        if now is not None:
            if cfg.max_orders_per_second is not None:
                sec = now // SECOND_NS
                if sec != self._sec:
                    self._sec, self._sec_count = sec, 0
                if self._sec_count >= cfg.max_orders_per_second:
                    return self._deny(f"risk: {self._sec_count} orders already accepted in this second; "
                                      f"max_orders_per_second is {cfg.max_orders_per_second}")
            if cfg.max_orders_per_minute is not None:
                minute = now // MINUTE_NS
                if minute != self._min:
                    self._min, self._min_count = minute, 0
                if self._min_count >= cfg.max_orders_per_minute:
                    return self._deny(f"risk: {self._min_count} orders already accepted in this minute; "
                                      f"max_orders_per_minute is {cfg.max_orders_per_minute}")
            if cfg.max_orders_per_second is not None:
                self._sec_count += 1
            if cfg.max_orders_per_minute is not None:
                self._min_count += 1
        return None

    def on_bar(self) -> None:
        """Per candle, before the strategies see it: the daily loss, the square-off, pending halt actions."""
        if self._actions_due:
            self._act()
        now = self._clock_ns()
        if now is None:
            return
        if self.config.max_daily_loss is not None:
            self._check_loss(self.core, now)
        if self._square_ns is not None:
            self._maybe_square_off(now)

    def refresh(self) -> bool:
        """Pick up a HALT or a clear written to the state file by ``algo halt``; True if the state changed.

        A running paper or live engine calls this on every loop iteration: one ``stat``.
        """
        changed = False
        if self.state_path is not None:
            sig = file_signature(self.state_path)
            if sig != self._signature:
                changed = self._reload(sig)
        if self._actions_due:
            self._act()
        return changed

    # --- halting -------------------------------------------------------------------------

    def halt(self, reason: str, *, source: str = "operator") -> bool:
        """Enter HALTED: cancel working orders, refuse new exposure, flatten if configured.

        Persisted before anything else happens, so a crash right after still restarts halted.
        Returns False if already halted.
        """
        self._reload_if_changed()
        if self.state.halted:
            return False
        now = self._clock_ns()
        s = self.state
        s.state, s.reason, s.source, s.flattened = HALTED, reason, source, False
        s.halted_at = ns_to_ist(now).isoformat() if now is not None else ""
        self._save()
        self.events.append(f"HALTED ({reason})")
        self._actions_due = True
        if self.core is not None:
            self._act()
        return True

    def clear(self) -> bool:
        """Leave HALTED (what ``algo halt --clear`` does to a running engine); False if not halted."""
        self._reload_if_changed()
        if not self.state.halted:
            return False
        self._apply_clear()
        self._save()
        return True

    def reset_day(self) -> None:
        """Forget the day's loss baseline (a fresh run starts a new account); HALTED stays."""
        self.state.day = self.state.day_start_equity = None
        self._last_equity = None
        self._save()

    def _apply_clear(self) -> None:
        s = self.state
        was = s.reason
        # the day's loss baseline stays: clearing must not renew the day's loss budget, only a new day does
        s.state, s.reason, s.source, s.halted_at, s.flattened = ACTIVE, "", "", "", False
        self._actions_due = False
        self.events.append(f"halt cleared (was: {was}); trading resumes")

    def _reload_if_changed(self) -> None:
        if self.state_path is not None:
            sig = file_signature(self.state_path)
            if sig != self._signature:
                self._reload(sig)

    def _reload(self, sig) -> bool:
        """Merge the file's HALTED/ACTIVE into memory; the counters this process keeps win."""
        self._signature = sig
        try:
            disk = read_state(self.state_path)
        except Exception as exc:  # damaged while running: fail safe
            if not self.state.halted:
                self.halt(f"risk state file unreadable: {exc}", source="state-file")
                return True
            return False
        if disk is None:
            return False
        if disk.halted and not self.state.halted:
            s = self.state
            s.state, s.reason, s.source, s.halted_at, s.flattened = (
                HALTED, disk.reason, disk.source, disk.halted_at, disk.flattened)
            self.events.append(f"HALTED ({disk.reason})")
            self._actions_due = True
            return True
        if not disk.halted and self.state.halted:
            self._apply_clear()  # keeps this process's day baseline
            if (disk.day, disk.day_start_equity) != (self.state.day, self.state.day_start_equity):
                self._save()  # a clear that dropped it (an older `algo halt`) must not lose it on a restart
            return True
        return False

    def _act(self) -> None:
        """Carry out the current halt: cancel working orders, then flatten once if configured."""
        core = self.core
        if core is None or not self.state.halted:
            self._actions_due = False
            return
        self._actions_due = False
        now = self._clock_ns()
        cancelled = self._cancel(f"risk: halted ({self.state.reason})", now, lambda inst: True)
        sent = 0
        if self.config.flatten_on_halt and not self.state.flattened and now is not None:
            sent = self._close_positions(FLATTEN_TAG, now, lambda inst: True)
            self.state.flattened = True
            self._save()
        what = f"cancelled {cancelled} working order(s)"
        if self.config.flatten_on_halt:
            what += f", sent {sent} closing order(s)"
        self.events.append(what)

    # --- daily loss and session times ----------------------------------------------------

    def _check_loss(self, core: EngineCore, now: int) -> None:
        equity = core.equity()
        day = ist_date(now).isoformat()
        s = self.state
        if day != s.day:
            # the new day starts from the last equity measured before it (the previous close)
            s.day = day
            s.day_start_equity = self._last_equity if self._last_equity is not None else equity
            self._save()
        elif s.day_start_equity is None:
            s.day_start_equity = equity
            self._save()
        self._last_equity = equity
        loss = s.day_start_equity - equity
        if loss >= self.config.max_daily_loss and not s.halted:
            self.halt(f"daily loss {loss:,.2f} reached max_daily_loss {self.config.max_daily_loss:,.2f}",
                      source="daily-loss")

    def _times_on(self, now: int) -> tuple[int | None, int | None]:
        """The square-off and entry cut-off of ``now``'s IST day, in ns after midnight IST.

        On a regular day they are the configured times. A special session (Muhurat in the
        evening, a budget-day Saturday) keeps their distance from the close: a 15:15 square-off,
        15 minutes before the regular 15:30 close, is 19:00 on a Muhurat day closing at 19:15
        (the NSE calendar, ``algocli.market.calendar``).
        """
        day = ist_date(now)
        if day != self._times_day:
            self._times_day = day
            shift = _special_shift(day)
            self._day_times = tuple(None if t is None else t + shift for t in (self._square_ns, self._cutoff_ns))
        return self._day_times

    def _maybe_square_off(self, now: int) -> None:
        day_number = (now + IST_OFFSET_NS) // DAY_NS
        if day_number != self._catchup_day and self.core is not None:  # a new day's (or a restart's) first candle
            self._catchup_day = day_number
            self._catch_up(now, ist_date(now))
        if (now + self.decision_lag_ns + IST_OFFSET_NS) % DAY_NS < self._times_on(now)[0]:
            return
        day = ist_date(now).isoformat()
        if self.state.square_off_day == day or self.core is None:
            return
        core = self.core
        intraday = lambda inst: self._intraday(inst, core)  # noqa: E731
        cancelled = self._cancel(f"risk: {self.config.square_off} IST square-off", now, intraday)
        sent = self._close_positions(SQUARE_OFF_TAG, now, intraday)
        self.state.square_off_day = day  # after the orders: a crash in between redoes only what is missing
        self._save()
        self.events.append(f"square-off {self.config.square_off} IST on {day}: cancelled {cancelled} working "
                           f"order(s), sent {sent} closing order(s)")

    def _catch_up(self, now: int, today) -> None:
        """Close what was held through the last session's square-off if no candle came after it."""
        core = self.core
        done = self.state.square_off_day
        missed = missed_square_off(core, self._square_ns, done, today, lambda inst: self._intraday(inst, core))
        if missed is None:
            return
        day, stale, amounts = missed
        cancelled = self._cancel(f"risk: {self.config.square_off} IST square-off of {day} (missed, caught up)", now,
                                 lambda inst: True, only=stale)
        sent = self._close_positions(SQUARE_OFF_TAG, now, lambda inst: True, amounts=amounts)
        self._catchup = (now, frozenset(inst for _, inst in amounts))
        self.state.square_off_day = day  # after the orders, as the regular square-off
        self._save()
        held = ", ".join(f"{inst} {qty:+d}" for (_, inst), qty in sorted(amounts.items())) or "none"
        self.events.append(f"square-off {self.config.square_off} IST of {day} was missed (no candle after it until "
                           f"{ns_to_ist(now):%Y-%m-%d %H:%M} IST: the run was down or its data stopped; the last one "
                           f"that ran: {done or 'none'}); caught up now: cancelled {cancelled} working order(s), sent "
                           f"{sent} closing order(s) for the intraday positions held through it: {held}")

    # --- helpers -------------------------------------------------------------------------

    def _cancel(self, reason: str, now: int | None, which: Callable[[str], bool], only=None) -> int:
        broker = self.core.broker
        n = 0
        for order in list(broker.open_orders()):
            if order.tag in _OWN_TAGS or not which(order.instrument):
                continue
            if only is not None and order.order_id not in only:
                continue
            if broker.cancel(order.order_id, order.strategy_id, now, reason):
                n += 1
        return n

    def _close_positions(self, tag: str, now: int, which: Callable[[str], bool],
                         amounts: dict[tuple[str, str], int] | None = None) -> int:
        """One market order per open (strategy, instrument) position, minus what our working orders already close.

        ``amounts``: close only these signed quantities (of the same sign as the position, at most it).
        """
        core = self.core
        broker = core.broker
        covering: dict[tuple[str, str], int] = {}
        for order in broker.open_orders():
            if order.tag in _OWN_TAGS:
                key = (order.strategy_id, order.instrument)
                signed = order.remaining_quantity if order.side is OrderSide.BUY else -order.remaining_quantity
                covering[key] = covering.get(key, 0) + signed
        n = 0
        bar = core.timeline_bar
        for (sid, inst), pos in sorted(core.ledger.positions.items()):
            if not pos.quantity or not which(inst):
                continue
            target = pos.quantity
            if amounts is not None:
                want = amounts.get((sid, inst), 0)
                if not want or (want > 0) != (target > 0):
                    continue
                target = want if abs(want) < abs(target) else target
            left = target + covering.get((sid, inst), 0)
            if not left or (left > 0) != (pos.quantity > 0):
                continue
            side = SignalAction.SELL if left > 0 else SignalAction.BUY
            broker.submit(sid, Signal(inst, side, abs(left), OrderType.MARKET, tag=tag), now, bar)
            n += 1
        return n

    def _reduces(self, signal: Signal, context: EngineCore) -> bool:
        net = context.ledger.net.get(signal.instrument, 0)
        buy = signal.action is _BUY
        if net == 0 or (net > 0) == buy:
            return False
        return _working_quantity(context, signal.instrument, buy) + signal.quantity <= abs(net)

    @staticmethod
    def _intraday(inst: str, context: EngineCore) -> bool:
        broker = context.broker
        products = getattr(broker, "products", None) or {}
        return products.get(inst, getattr(broker, "default_product", "INTRADAY")) == "INTRADAY"

    def _deny(self, reason: str) -> str:
        self.denied += 1
        return reason

    def _save(self) -> None:
        if self.state_path is None:
            return
        self._reload_if_changed()  # never overwrite a HALT the operator wrote meanwhile
        write_state(self.state_path, self.state)
        self._signature = file_signature(self.state_path)


def _working_quantity(context: EngineCore, inst: str, buy: bool) -> int:
    side = OrderSide.BUY if buy else OrderSide.SELL
    return sum(o.remaining_quantity for o in context.broker.open_orders(None, inst) if o.side is side)


def _last_close(context: EngineCore, inst: str) -> float | None:
    h = context.histories.get(inst)
    if h is None or h.cursor < 0:
        return None
    return float(h.close_mv[h.cursor])


__all__ = ["FLATTEN_TAG", "SQUARE_OFF_TAG", "RiskController"]
