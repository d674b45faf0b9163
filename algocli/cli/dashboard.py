"""The dashboard of ``algo paper`` and ``algo live``: ``render``, a pure function from the engine's
state to Rich renderables, and ``Dashboard``, the session view that shows it in the terminal."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, Group
from rich.table import Table

from algocli.cli.tables import format_value
from algocli.domain.candle import ns_to_ist
from algocli.domain.modes import RunMode


class TickRate:
    """Ticks per second over a sliding window of dashboard refreshes."""

    def __init__(self, window_s: float = 5.0, clock=time.monotonic) -> None:
        self._clock = clock
        self._window = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, ticks: int) -> float:
        now = self._clock()
        self._samples.append((now, ticks))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Dashboard:
    """The CLI's ``SessionView`` (``algocli.engine.runtime``): the live dashboard on stdout,
    refreshed four times a second, and the session's notes on stderr.

    Args:
        mode: The session's mode, named in the dashboard's title.
        show: Draw the dashboard; False keeps only the notes (``--no-dashboard``).
        console: Where the dashboard goes.
        err_console: Where the notes go.
    """

    def __init__(self, mode: RunMode, *, show: bool, console: Console, err_console: Console) -> None:
        self.mode = mode
        self.show = show
        self.console = console
        self.err_console = err_console
        self._rate = TickRate()
        self._live = None

    def started(self) -> None:
        if self.show:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def refresh(self, engine, feed_status) -> None:
        if self._live is not None:
            self._live.update(render(engine, feed_status, self._rate.update(engine.stats.ticks), mode=self.mode))

    def stopped(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, kind: str, line: str) -> None:
        self.err_console.print(line, style="cyan" if kind == "reconciled" else None, markup=False,
                               highlight=False)


def render(engine, status, rate: float, *, mode: RunMode, now: float | None = None) -> Group:
    """Build the dashboard: feed, P&L per strategy, positions, open orders and last fills.

    Args:
        engine: The session's engine.
        status: Its feed's ``FeedStatus``.
        rate: Ticks per second (``TickRate``).
        mode: The session's mode; the title says ``paper trading``, ``live trading (dry run)``
            or ``live trading``.
        now: ``time.monotonic()`` now (for the age of the last tick).
    """
    return Group(_feed_table(engine, status, rate, mode, now), _pnl_table(engine), _positions_table(engine),
                 _orders_table(engine), _fills_table(engine))


def _feed_table(engine, status, rate: float, mode: RunMode, now: float | None) -> Table:
    now = time.monotonic() if now is None else now
    age = "—" if status.last_tick_monotonic is None else f"{now - status.last_tick_monotonic:.1f} s"
    t = Table(title=f"{engine.name}: {mode.title.lower()}", title_justify="left")
    for col in ("feed", "state", "ticks/s", "last tick", "ticks", "candles", "malformed", "reconnects"):
        t.add_column(col, justify="right" if col not in ("feed", "state") else "left")
    state = "[green]connected[/]" if status.connected else "[red]disconnected[/]"
    t.add_row(status.name, state, f"{rate:.1f}", age, str(engine.stats.ticks), str(engine.stats.candles),
              str(status.malformed), str(status.reconnects))
    if status.last_error:
        t.caption = f"last error: {status.last_error}"
    return t


def _last_price(engine, inst: str) -> float | None:
    h = engine.core.histories.get(inst)
    last = engine.aggregator.last_price(inst) if hasattr(engine.aggregator, "last_price") else None
    if last is None and h is not None and h.length:
        last = h.close_mv[h.length - 1]
    return last


def _pnl_table(engine) -> Table:
    t = Table(title="P&L per strategy [₹]", title_justify="left")
    for col in ("strategy", "realised", "unrealised", "total", "orders", "fills"):
        t.add_column(col, justify="left" if col == "strategy" else "right")
    ledger = engine.core.ledger
    for slot in engine.core.slots:
        realised = unrealised = 0.0
        for (sid, inst), pos in ledger.positions.items():
            if sid != slot.id:
                continue
            realised += pos.realized_pnl
            last = _last_price(engine, inst)
            if pos.quantity and last is not None:
                unrealised += pos.quantity * (last - pos.average_price)
        orders = sum(1 for o in engine.broker.orders if o.strategy_id == slot.id)
        fills = sum(1 for f in engine.broker.fills if f.strategy_id == slot.id)
        t.add_row(slot.id, format_value(realised), format_value(unrealised), format_value(realised + unrealised),
                  str(orders), str(fills))
    return t


def _positions_table(engine) -> Table:
    t = Table(title="positions", title_justify="left")
    for col in ("strategy", "instrument", "quantity", "avg price", "last"):
        t.add_column(col, justify="right" if col in ("quantity", "avg price", "last") else "left")
    for (sid, inst), pos in sorted(engine.core.ledger.positions.items()):
        if pos.quantity:
            last = _last_price(engine, inst)
            t.add_row(sid, inst, str(pos.quantity), f"{pos.average_price:.2f}",
                      "—" if last is None else f"{last:.2f}")
    return t


def _orders_table(engine) -> Table:
    t = Table(title="open orders", title_justify="left")
    for col in ("order", "instrument", "side", "type", "qty", "limit"):
        t.add_column(col)
    for o in engine.broker.open_orders()[:10]:
        t.add_row(o.order_id, o.instrument, o.side.value, o.order_type.value, str(o.quantity),
                  "" if o.limit_price is None else f"{o.limit_price:.2f}")
    return t


def _fills_table(engine) -> Table:
    t = Table(title="last fills", title_justify="left")
    for col in ("time (IST)", "order", "instrument", "side", "qty", "price"):
        t.add_column(col)
    for f in engine.broker.fills[-5:][::-1]:
        t.add_row(ns_to_ist(f.ts).strftime("%Y-%m-%d %H:%M:%S"), f.order_id, f.instrument, f.side.value,
                  str(f.quantity), f"{f.price:.2f}")
    return t
