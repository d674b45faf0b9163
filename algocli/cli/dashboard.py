"""The dashboard of ``algo paper`` and ``algo live``: ``render``, a pure function from the engine's
state to Rich renderables, and ``Dashboard``, the session view that shows it in the terminal.

It stays a line shorter and two columns narrower than the terminal. A live display redraws
itself by moving the cursor up over its lines; a line that scrolled off the screen cannot be
reached and stays behind as a copy (the title first). That happens when the display is taller
than the screen, or when it fills the screen and the ``^C`` the terminal echoes on its last,
full-width line wraps onto a new one. The last fills, then the open orders, then positions
give way first."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, ConsoleOptions, Group
from rich.table import Table
from rich.text import Text

from algocli.cli.tables import format_value
from algocli.domain.candle import ns_to_ist
from algocli.domain.models import OrderSide
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

    def __init__(self, mode: RunMode, *, show: bool, console: Console, err_console: Console,
                 clear_command: str = "algo halt CONFIG --clear") -> None:
        self.mode = mode
        self.clear_command = clear_command
        self.show = show
        self.console = console
        self.err_console = err_console
        self._rate = TickRate()
        self._live = None

    def started(self) -> None:
        if self.show:
            from rich.live import Live

            # crop, not "...": an ellipsis line is as wide as the terminal (see the module docstring)
            self._live = Live(console=self.console, refresh_per_second=4, transient=False, vertical_overflow="crop")
            self._live.start()

    def refresh(self, engine, feed_status) -> None:
        if self._live is not None:
            from rich.constrain import Constrain

            width, height = self.console.size
            room = self.console.options.update_width(max(20, width - 2))
            dashboard = render(engine, feed_status, self._rate.update(engine.stats.ticks), mode=self.mode,
                               height=height - 1, console=self.console, options=room,
                               clear_command=self.clear_command)
            self._live.update(Constrain(dashboard, room.max_width))

    def stopped(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def note(self, kind: str, line: str) -> None:
        target = self.err_console
        if self._live is not None and self.console.is_terminal and self.err_console.is_terminal:
            # the same terminal: print above the display, which a line written under it would scroll apart
            target = self.console
        target.print(line, style="cyan" if kind == "reconciled" else None, markup=False, highlight=False)


ORDER_ROWS = 10
FILL_ROWS = 5


def render(engine, status, rate: float, *, mode: RunMode, now: float | None = None, height: int | None = None,
           console: Console | None = None, options: ConsoleOptions | None = None,
           clear_command: str = "algo halt CONFIG --clear") -> Group:
    """Build the dashboard: the account (exchange clock, trading or HALTED, equity, cash, available
    funds), the feed, P&L per strategy, positions, open orders and last fills.

    Args:
        engine: The session's engine.
        status: Its feed's ``FeedStatus``.
        rate: Ticks per second (``TickRate``).
        mode: The session's mode; the title says ``paper trading``, ``live trading (dry run)``
            or ``live trading``.
        now: ``time.monotonic()`` now (for the age of the last tick).
        height: At most this many lines: the last fills, open orders and positions are
            shortened (with a "+N more" line) or left out to fit. None: everything.
        console: Measures the lines when ``height`` is given.
        options: The width to measure at; ``console``'s own by default.
        clear_command: The ``algo halt ... --clear`` that lifts this session's halt.
    """
    head = [_account_table(engine, mode, clear_command), _feed_table(status, engine, rate, now), _pnl_table(engine)]
    positions = _open_positions(engine)
    orders = engine.broker.open_orders()
    fills = engine.broker.fills[::-1]
    tails = [(lambda n: _positions_table(engine, positions, n), len(positions)),
             (lambda n: _orders_table(orders, n), min(len(orders), ORDER_ROWS)),
             (lambda n: _fills_table(fills, n), min(len(fills), FILL_ROWS))]
    if height is None:
        return Group(*head, *(make(n) for make, n in tails))
    console = console or Console(width=120)
    return Group(*_fit(head, tails, height, console, options or console.options))


def _fit(head: list[Table], tails: list, height: int, console: Console, options: ConsoleOptions) -> list[Table]:
    """The tables that fit in ``height`` lines, in order: the head first (while it fits), then as many
    rows of each tail as fit, so the later tables give way first.

    Args:
        head: Tables shown whole or not at all.
        tails: ``(make, rows)``: ``make(n)`` builds the table with its first ``n`` of ``rows`` rows.
        height: Lines available.
        console: Measures the tables.
        options: At this width.
    """
    def lines(table: Table) -> int:
        return len(console.render_lines(table, options, pad=False))

    shown, left = [], height
    for table in head:
        used = lines(table)
        if used > left:
            return shown
        shown.append(table)
        left -= used
    for make, rows in tails:
        lo, hi, best = (0, 0, None) if rows == 0 else (1, rows, None)  # an empty table shows "none" if it fits
        while lo <= hi:  # the most rows that fit (heights grow with rows)
            mid = (lo + hi) // 2
            table = make(mid)
            used = lines(table)
            if used <= left:
                best, lo = (table, used), mid + 1
            else:
                hi = mid - 1
        if best is not None:
            shown.append(best[0])
            left -= best[1]
    return shown


def _account_table(engine, mode: RunMode, clear_command: str) -> Table:
    """The title (HALTED in it when the risk controls have stopped trading), the exchange clock and the money.

    Four columns keep a ₹100-crore account's figures whole in an 80-column terminal; with a fifth
    ("trading: yes"), Rich wrapped the headers from ₹1 crore and cut ₹123 crore to "1,234,567,890…".
    """
    risk = engine.core.risk
    halted = risk is not None and risk.halted
    title = Text(f"{engine.name}: {mode.title.lower()}")
    if halted:
        title.append(" · HALTED", "bold red")
    t = Table(title=title, title_justify="left")
    for col in ("exchange time (IST)", "equity [₹]", "cash [₹]", "available [₹]"):
        t.add_column(col, justify="left" if col == "exchange time (IST)" else "right")
    ns = engine.exchange_now()
    clock = ns_to_ist(ns).strftime("%Y-%m-%d %H:%M:%S") if ns else "—"
    equity, exposure = _valuation(engine)
    if mode is RunMode.LIVE:  # the broker's own figure; the runtime reads it now and then
        funds = getattr(engine, "broker_funds", None)
        available = "—" if funds is None else format_value(float(funds))
    else:  # what the simulated broker lets a new position use: margin under product rules, else cash
        broker = engine.broker
        margin = broker.available_margin() if getattr(broker, "rules", None) is not None else equity - exposure
        available = format_value(margin)
    t.add_row(clock, format_value(equity), format_value(engine.core.ledger.cash), available)
    if halted:
        state = risk.state
        since = f" since {state.halted_at[:19].replace('T', ' ')}" if state.halted_at else ""
        t.caption = Text(f"HALTED{since} ({state.reason}): open orders cancelled, only orders that reduce a "
                         f"position are allowed; `{clear_command}` lifts it", "bold red")  # no markup
        t.caption_justify = "left"
    return t


def _valuation(engine) -> tuple[float, float]:
    """(equity, gross exposure), every position at its last price."""
    ledger = engine.core.ledger
    equity, exposure = ledger.cash, 0.0
    for inst, qty in ledger.net.items():
        last = _last_price(engine, inst) if qty else None
        if last is not None:
            equity += qty * last
            exposure += abs(qty) * last
    return float(equity), float(exposure)


def _feed_table(status, engine, rate: float, now: float | None) -> Table:
    now = time.monotonic() if now is None else now
    age = "—" if status.last_tick_monotonic is None else f"{now - status.last_tick_monotonic:.1f} s"
    # Six columns fit an 80-column terminal whole (with eight, Rich cut "connected" to "connec…");
    # the health counters and the last error go under the table.
    t = Table(title="feed", title_justify="left", caption_justify="left")
    for col in ("feed", "state", "ticks/s", "last tick", "ticks", "candles"):
        t.add_column(col, justify="right" if col not in ("feed", "state") else "left")
    state = "[green]connected[/]" if status.connected else "[red]disconnected[/]"
    t.add_row(status.name, state, f"{rate:.1f}", age, str(engine.stats.ticks), str(engine.stats.candles))
    health = f"malformed {status.malformed} · reconnects {status.reconnects}"
    t.caption = Text(f"{health}\nlast error: {status.last_error}" if status.last_error else health)  # no markup
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
        # total: the strategy's cash flows (charges included) and what it holds at the last price, so
        # the rows add up to the equity change; unrealised is the rest of realised: the open
        # positions' moves less the charges of the fills that opened them
        mine = [f for f in engine.broker.fills if f.strategy_id == slot.id]
        total = -sum(((f.quantity if f.side is OrderSide.BUY else -f.quantity) * f.price + f.commission
                      for f in mine), 0.0)
        realised = 0.0
        for (sid, inst), pos in ledger.positions.items():
            if sid != slot.id:
                continue
            realised += pos.realized_pnl
            last = _last_price(engine, inst)
            if pos.quantity:
                total += pos.quantity * (last if last is not None else pos.average_price)
        orders = sum(1 for o in engine.broker.orders if o.strategy_id == slot.id)
        name = Text.assemble(slot.id, (" (halted)", "red")) if slot.id in getattr(engine, "halted", ()) else slot.id
        unrealised = round(total - realised, 6) + 0.0  # flat: 0 (not -0), not a difference's residue
        t.add_row(name, format_value(realised), format_value(unrealised), format_value(total),
                  str(orders), str(len(mine)))
    return t


def _open_positions(engine) -> list:
    return [(sid, inst, pos) for (sid, inst), pos in sorted(engine.core.ledger.positions.items()) if pos.quantity]


def _more(t: Table, shown: int, total: int) -> Table:
    if total > shown:
        t.caption = f"+{total - shown} more"
        t.caption_justify = "left"
    return t


def _positions_table(engine, positions: list, rows: int) -> Table:
    t = Table(title="positions", title_justify="left")
    for col in ("strategy", "instrument", "quantity", "avg price", "last"):
        t.add_column(col, justify="right" if col in ("quantity", "avg price", "last") else "left")
    for sid, inst, pos in positions[:rows]:
        last = _last_price(engine, inst)
        t.add_row(sid, inst, str(pos.quantity), f"{pos.average_price:.2f}", "—" if last is None else f"{last:.2f}")
    return _more(t, rows, len(positions))


def _orders_table(orders: list, rows: int) -> Table:
    t = Table(title="open orders", title_justify="left")
    for col in ("order", "instrument", "side", "type", "qty", "limit"):
        t.add_column(col)
    for o in orders[:rows]:
        t.add_row(o.order_id, o.instrument, o.side.value, o.order_type.value, str(o.quantity),
                  "" if o.limit_price is None else f"{o.limit_price:.2f}")
    return _more(t, rows, len(orders))


def _fills_table(fills: list, rows: int) -> Table:
    """The ``rows`` latest of ``fills`` (newest first)."""
    t = Table(title="last fills", title_justify="left")
    for col in ("time (IST)", "order", "instrument", "side", "qty", "price"):
        t.add_column(col)
    for f in fills[:rows]:
        t.add_row(ns_to_ist(f.ts).strftime("%Y-%m-%d %H:%M:%S"), f.order_id, f.instrument, f.side.value,
                  str(f.quantity), f"{f.price:.2f}")
    return t
