"""The ``algo paper`` dashboard: what it shows, checked against values computed from the engine's books."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.cli.dashboard import Dashboard, TickRate, render
from algocli.cli.tables import format_value
from algocli.data.csv_feed import load_csv
from algocli.data.feed import FeedStatus
from algocli.domain.candle import ns_to_ist
from algocli.domain.models import Interval, Tick
from algocli.domain.modes import RunMode
from algocli.engine.paper import PaperEngine
from algocli.sandbox.replay import bar_ticks
from helpers import Scripted
from strategies.sma_crossover import SmaCrossover

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE_EQ:2885"
LIMIT_PRICE = 1234.5  # far below the market: it rests


def _ticks() -> tuple[list[Tick], object]:
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST).slice(0, 375)
    path = bar_ticks(bars)
    return [path.tick(i) for i in range(len(path))], bars


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """An engine part-way through a day: 'sma' trades on its own, 'manual' holds 5 and rests a limit buy."""
    ticks, bars = _ticks()
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003),
                         journal_path=tmp_path_factory.mktemp("dash") / "journal.jsonl", name="dash-run")
    engine.add_strategy(SmaCrossover(fast_period=5, slow_period=15, quantity=10), [INST], "sma")
    engine.add_strategy(Scripted({2: lambda ctx, c: ctx.buy(INST, 5),
                                  4: lambda ctx, c: ctx.buy(INST, 3, limit_price=LIMIT_PRICE)}), [INST], "manual")
    engine.start()
    fed, entered = 0, None
    h = engine.core.histories[INST]
    for tick in ticks:  # stop mid-bar, a few bars after 'sma' opened a position following some round trips
        engine.on_tick(tick)
        fed += 1
        pos = engine.core.ledger.position("sma", INST)
        if entered is None and len(engine.broker.fills) >= 8 and pos is not None and pos.quantity > 0:
            entered = h.length
        if entered is not None and h.length >= entered + 4 and fed % 4 == 2:
            break
    assert fed < len(ticks)
    closed = engine.core.histories[INST].length
    return engine, bars, closed


def _text(renderable, width: int = 140) -> str:
    console = Console(file=StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _section(text: str, title: str) -> list[list[str]]:
    """The body rows (cells stripped) of the table titled ``title``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith(title))
    rows, seen_header = [], False
    for ln in lines[start + 1:]:
        s = ln.strip()
        if s.startswith("┡"):
            seen_header = True
            continue
        if s.startswith("└"):
            break
        if seen_header and s.startswith("│"):
            rows.append([c.strip() for c in s.strip("│").split("│")])
    return rows


def _status(connected: bool = True, age: float = 2.5, error: str = "") -> tuple[FeedStatus, float]:
    now = 10_000.0
    return FeedStatus("sandbox (dhan)", connected=connected, ticks=999, malformed=3, reconnects=2,
                      last_tick_monotonic=now - age, last_error=error), now


def _expected_books(engine, bars, closed):
    """Realised and unrealised P&L, open lots and counts per strategy, from the fills alone (FIFO)."""
    last_close = float(bars.close[closed - 1])
    out = {}
    for sid in ("sma", "manual"):
        lots, realised = [], 0.0  # [qty, price, commission per unit]
        for f in (f for f in engine.broker.fills if f.strategy_id == sid):
            per_unit = f.commission / f.quantity
            if f.side.value == "BUY":
                lots.append([f.quantity, f.price, per_unit])
                continue
            qty = f.quantity
            while qty:
                lot = lots[0]
                take = min(lot[0], qty)
                realised += take * (f.price - lot[1]) - take * (lot[2] + per_unit)
                lot[0] -= take
                qty -= take
                if not lot[0]:
                    lots.pop(0)
        held = sum(q for q, _, _ in lots)
        avg = sum(q * p for q, p, _ in lots) / held if held else 0.0
        # the open lots' share of their entry charges is paid: it belongs to their P&L until they close
        unrealised = held * (last_close - avg) - sum(q * c for q, _, c in lots) if held else 0.0
        out[sid] = dict(realised=realised, unrealised=unrealised, held=held, avg=avg,
                        orders=sum(o.strategy_id == sid for o in engine.broker.orders),
                        fills=sum(f.strategy_id == sid for f in engine.broker.fills))
    return out, last_close


EXCHANGE_NOW = "2024-06-10 11:03:19"


def _exchange_now(monkeypatch, engine, text: str = EXCHANGE_NOW) -> None:
    from datetime import datetime

    from algocli.sandbox.replay import IST

    ns = int(datetime.fromisoformat(text).replace(tzinfo=IST).timestamp()) * 10**9
    monkeypatch.setattr(engine, "exchange_now", lambda: ns)


def test_dashboard_shows_account_feed_pnl_positions_orders_and_fills(state, monkeypatch):
    engine, bars, closed = state
    _exchange_now(monkeypatch, engine)
    status, now = _status(connected=True, age=2.5)
    text = _text(render(engine, status, 12.34, mode=RunMode.PAPER, now=now))

    feed = _section(text, "feed")
    assert feed == [["sandbox (dhan)", "connected", "12.3", "2.5 s", str(engine.stats.ticks), str(closed)]]
    assert "malformed 3 · reconnects 2" in text
    assert engine.stats.candles == closed

    books, last_close = _expected_books(engine, bars, closed)
    # the account from the fills alone: cash after every fill and its charges, positions at the last close
    cash = 1_000_000 + sum((-1 if f.side.value == "BUY" else 1) * f.quantity * f.price - f.commission
                           for f in engine.broker.fills)
    held = sum(b["held"] for b in books.values())
    equity = cash + held * last_close
    assert _section(text, "dash-run: paper trading") == [
        [EXCHANGE_NOW, format_value(equity), format_value(cash), format_value(equity - held * last_close)]]
    assert "HALTED" not in text
    assert books["sma"]["held"] == 10 and books["manual"]["held"] == 5
    assert books["sma"]["realised"] != 0 and books["sma"]["unrealised"] != 0 and books["manual"]["unrealised"] != 0
    pnl = {row[0]: row[1:] for row in _section(text, "P&L per strategy")}
    assert set(pnl) == {"sma", "manual"}
    for sid, b in books.items():
        assert pnl[sid] == [format_value(b["realised"]), format_value(b["unrealised"]),
                            format_value(b["realised"] + b["unrealised"]), str(b["orders"]), str(b["fills"])], sid
    # every rupee of the account's change is some strategy's
    assert sum(b["realised"] + b["unrealised"] for b in books.values()) == pytest.approx(equity - 1_000_000, abs=1e-6)

    positions = _section(text, "positions")
    assert positions == [[sid, INST, str(books[sid]["held"]), f"{books[sid]['avg']:.2f}", f"{last_close:.2f}"]
                         for sid in sorted(books)]

    resting = [o for o in engine.broker.orders if o.strategy_id == "manual" and o.limit_price == LIMIT_PRICE]
    assert len(resting) == 1
    assert _section(text, "open orders") == [[resting[0].order_id, INST, "BUY", "LIMIT", "3", "1234.50"]]

    last = engine.broker.fills[-5:][::-1]
    assert len(last) == 5
    assert _section(text, "last fills") == [
        [ns_to_ist(f.ts).strftime("%Y-%m-%d %H:%M:%S"), f.order_id, INST, f.side.value, str(f.quantity),
         f"{f.price:.2f}"] for f in last]
    assert "last error" not in text


def test_dashboard_shows_a_disconnected_feed_and_its_last_error(state):
    engine, _, _ = state
    status, now = _status(connected=False, age=61.0, error="connection lost (ConnectionClosedError)")
    text = _text(render(engine, status, 0.0, mode=RunMode.PAPER, now=now))
    row = _section(text, "feed")[0]
    assert row[1:4] == ["disconnected", "0.0", "61.0 s"]
    words = " ".join(text.split())  # the caption wraps at the table's width
    assert "malformed 3 · reconnects 2 last error: connection lost (ConnectionClosedError)" in words


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "disconnected"])
def test_the_feed_table_keeps_every_word_and_figure_in_80_columns(state, connected):
    """A tmux pane or a CI log is 80 columns wide: the feed's state and counters are never cut ("connec…")."""
    engine, _, _ = state
    status, now = _status(connected=connected, error="" if connected else "connection lost (ConnectionClosedError)")
    text = _text(render(engine, status, 1234.5, mode=RunMode.PAPER, now=now), width=80)
    row = _section(text, "feed")[0]
    assert row == ["sandbox (dhan)", "connected" if connected else "disconnected", "1234.5", "2.5 s",
                   str(engine.stats.ticks), str(engine.stats.candles)]
    assert "…" not in "".join(row) and "malformed 3 · reconnects 2" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_account_of_a_hundred_crore_run_keeps_its_figures_whole_in_80_columns(tmp_path, monkeypatch):
    """Money is never cut short ("10,000,0…"): a big account's equity, cash and available fit 80 columns."""
    from algocli.risk import RiskConfig, RiskController

    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_234_567_890.12, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / "j.jsonl", name="big")
    engine.add_strategy(SmaCrossover(), [INST], "sma")
    RiskController(RiskConfig(), state_path=None, clock_ns=lambda: None).attach(engine.core).halt("desk")
    engine.start()
    _exchange_now(monkeypatch, engine, "2024-06-10 10:02:05")
    text = _text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.DRY_RUN, now=5.0), width=80)
    money = "1,234,567,890.12"
    assert text.splitlines()[0].strip() == "big: live trading (dry run) · HALTED"
    assert _section(text, "big: live trading (dry run)") == [["2024-06-10 10:02:05", money, money, money]]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_dashboard_before_the_first_tick(tmp_path):
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / "j.jsonl", name="empty")
    engine.add_strategy(SmaCrossover(), [INST], "sma")
    engine.start()
    text = _text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.PAPER, now=5.0))
    million = format_value(1_000_000.0)
    assert _section(text, "empty: paper trading") == [["—", million, million, million]]  # no clock yet
    assert _section(text, "feed") == [["dhan", "disconnected", "0.0", "—", "0", "0"]]
    assert "malformed 0 · reconnects 0" in text
    zero = format_value(0.0)
    assert _section(text, "P&L per strategy") == [["sma", zero, zero, zero, "0", "0"]]
    for title in ("positions", "open orders", "last fills"):
        assert _section(text, title) == []


@pytest.mark.parametrize(("mode", "title"), [(RunMode.PAPER, "dash-run: paper trading"),
                                           (RunMode.DRY_RUN, "dash-run: live trading (dry run)"),
                                           (RunMode.LIVE, "dash-run: live trading")])
def test_the_dashboard_title_names_the_runs_mode(state, mode, title):
    engine, _, closed = state
    status, now = _status()
    text = _text(render(engine, status, 1.0, mode=mode, now=now))
    first = text.splitlines()[0].strip()
    assert first == title and text.count(title) == 1
    assert _section(text, "feed")[0][5] == str(closed)


def test_the_dashboard_view_draws_on_its_console_and_notes_go_to_stderr(state):
    engine, _, _ = state
    out = Console(file=StringIO(), width=140, force_terminal=True, color_system=None)
    err = Console(file=StringIO(), width=140)
    view = Dashboard(RunMode.LIVE, show=True, console=out, err_console=err)
    view.started()
    view.refresh(engine, _status()[0])
    view.note("reconciled", "reconciled: sma-000001: found at the broker as 42 [x]")
    view.stopped()
    assert "dash-run: live trading" in out.file.getvalue() and "paper" not in out.file.getvalue()
    # stderr is not the dashboard's terminal (a log file): the notes go there
    assert err.file.getvalue() == "reconciled: sma-000001: found at the broker as 42 [x]\n"  # no markup parsed
    quiet_out = Console(file=StringIO(), width=140)
    quiet = Dashboard(RunMode.PAPER, show=False, console=quiet_out, err_console=err)
    quiet.started()
    quiet.refresh(engine, _status()[0])
    quiet.stopped()
    assert quiet_out.file.getvalue() == ""  # --no-dashboard draws nothing


def _fresh(tmp_path: Path, name: str = "calm") -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / "j.jsonl", name=name)
    engine.add_strategy(SmaCrossover(), [INST], "sma")
    return engine


def test_a_halt_shows_on_the_dashboard_with_its_reason_and_how_to_lift_it(tmp_path, monkeypatch):
    from algocli.risk import RiskConfig, RiskController

    engine = _fresh(tmp_path)
    risk = RiskController(RiskConfig(), state_path=None, clock_ns=lambda: None).attach(engine.core)
    engine.start()
    _exchange_now(monkeypatch, engine, "2024-06-10 10:02:05")
    assert risk.halt("manual stop [desk 2]")
    risk.state.halted_at = "2024-06-10T10:02:00+05:30"
    engine.halted["sma"] = "strategy sma raised ValueError"
    text = _text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.LIVE, now=5.0,
                        clear_command=RunMode.LIVE.halt_command("configs/live.yaml", clear=True)))
    assert text.splitlines()[0].strip() == "calm: live trading · HALTED"
    assert _section(text, "calm: live trading")[0][0] == "2024-06-10 10:02:05"
    assert ("HALTED since 2024-06-10 10:02:00 (manual stop [desk 2]): open orders cancelled, only orders that "
            "reduce a position are allowed; `algo halt configs/live.yaml --clear` lifts it") in " ".join(text.split())
    assert _section(text, "P&L per strategy")[0][0] == "sma (halted)"


def test_live_shows_the_brokers_funds_and_paper_what_the_simulated_broker_allows(tmp_path, monkeypatch):
    engine = _fresh(tmp_path, "acct")
    engine.start()
    assert _section(_text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.LIVE, now=5.0)),
                    "acct: live trading")[0][3] == "—"  # not read from the broker yet
    engine.broker_funds = 123_456.78
    assert _section(_text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.LIVE, now=5.0)),
                    "acct: live trading")[0][3] == "123,456.78"
    assert _section(_text(render(engine, FeedStatus("dhan"), 0.0, mode=RunMode.DRY_RUN, now=5.0)),
                    "acct: live trading (dry run)")[0][3] == format_value(1_000_000.0)


@pytest.mark.parametrize("height", [60, 36, 30, 24, 20, 12])
def test_the_dashboard_fits_the_height_it_is_given_and_the_last_fills_give_way_first(state, height):
    engine, _, _ = state
    status, now = _status()
    full = _text(render(engine, status, 1.0, mode=RunMode.PAPER, now=now)).splitlines()
    text = _text(render(engine, status, 1.0, mode=RunMode.PAPER, now=now, height=height,
                        console=Console(width=140)))
    lines = text.splitlines()
    assert len(lines) <= height
    assert lines[0].strip() == "dash-run: paper trading" and text.count("dash-run: paper trading") == 1
    if len(full) <= height:
        assert lines == full
        return
    titles = [t for t in ("feed", "P&L per strategy", "positions", "open orders", "last fills")
              if any(ln.strip().startswith(t) for ln in lines)]
    # whatever is left out is the end of the list: fills, then orders, then positions
    assert titles == ["feed", "P&L per strategy", "positions", "open orders", "last fills"][:len(titles)]
    if "last fills" in titles:
        assert 0 < len(_section(text, "last fills")) < 5
    assert len(lines) >= height - 6  # nothing left out that would have fitted (a table is 5+ lines)


def test_ctrl_c_in_a_short_terminal_leaves_one_dashboard_title(state):
    """The terminal echoes ^C where the cursor is: after a full-width last line it wraps and scrolls,
    and the line that scrolled away (the title) stayed behind as a copy."""
    engine, _, _ = state
    out = StringIO()
    console = Console(file=out, width=100, height=16, force_terminal=True, color_system=None)
    view = Dashboard(RunMode.PAPER, show=True, console=console, err_console=Console(file=StringIO()))
    view.started()
    for _ in range(3):
        view.refresh(engine, _status()[0])
        view._live.refresh()
    out.write("^C")  # the terminal's echo of Ctrl-C
    view.stopped()
    term = Terminal(height=16, width=100)
    term.feed("$ algo paper configs/paper.yaml\n" + out.getvalue())
    screen = term.history + term.rows
    assert sum("dash-run: paper trading" in line for line in screen) == 1, "\n".join(screen)
    assert max(len(line) for line in screen) <= 100


def test_notes_while_the_dashboard_runs_print_above_it_not_under_it(state):
    """Notes (a halt, a reconciliation) printed under a live display scroll it, and the lines that
    scroll away stay behind as copies; on one terminal they go above the display instead."""
    engine, _, _ = state
    tty = StringIO()  # stdout and stderr on the same terminal
    out, err = (Console(file=tty, width=100, height=30, force_terminal=True, color_system=None) for _ in range(2))
    view = Dashboard(RunMode.PAPER, show=True, console=out, err_console=err)
    view.started()
    for k in range(6):
        view.refresh(engine, _status()[0])
        view._live.refresh()
        view.note("risk", f"risk: note {k}")
    view.stopped()
    term = Terminal(height=30, width=100)
    term.feed(tty.getvalue())
    screen = term.history + term.rows
    assert sum("dash-run: paper trading" in line for line in screen) == 1, "\n".join(screen)
    assert [line.strip() for line in screen if line.startswith("risk: note")] == [f"risk: note {k}" for k in range(6)]


class Terminal:
    """Just enough of a terminal for Rich's live display: text with the deferred wrap of a real
    terminal, CR, LF (scrolling into ``history``), cursor up and erase-line; styles are ignored."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.rows = [""] * height
        self.history: list[str] = []
        self.row = self.col = 0

    def _line_feed(self) -> None:
        if self.row == self.height - 1:
            self.history.append(self.rows.pop(0))
            self.rows.append("")
        else:
            self.row += 1

    def feed(self, data: str) -> None:
        import re

        csi = re.compile(r"\x1b\[(\??)(\d*)([A-Za-z])")
        i = 0
        while i < len(data):
            m = csi.match(data, i)
            if m:
                private, n, cmd = m.groups()
                if not private and cmd == "A":
                    self.row = max(0, self.row - int(n or 1))
                elif not private and cmd == "K":
                    self.rows[self.row] = ""
                i = m.end()
                continue
            ch = data[i]
            i += 1
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.col = 0
                self._line_feed()
            elif ch >= " ":
                if self.col == self.width:  # the wrap a full line left pending
                    self.col = 0
                    self._line_feed()
                line = self.rows[self.row].ljust(self.col)
                self.rows[self.row] = line[:self.col] + ch + line[self.col + 1:]
                self.col += 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tick_rate_over_a_sliding_window():
    clock = FakeClock()
    rate = TickRate(window_s=5.0, clock=clock)
    assert rate.update(0) == 0.0  # one sample: no rate yet
    clock.now = 1.0
    assert rate.update(100) == pytest.approx(100.0)
    clock.now = 2.0
    assert rate.update(300) == pytest.approx(150.0)  # (300 - 0) / 2 s
    clock.now = 10.0
    assert rate.update(1300) == pytest.approx(125.0)  # samples older than 5 s dropped, two kept: (1300-300)/8
    clock.now = 11.0
    assert rate.update(1500) == pytest.approx(200.0)  # the 2 s sample is now out of the window
    clock.now = 11.5
    assert rate.update(1600) == pytest.approx((1600 - 1300) / 1.5)
    clock.now = 11.5
    assert rate.update(1600) == pytest.approx((1600 - 1300) / 1.5)  # same instant again: unchanged


def test_tick_rate_with_a_stalled_feed_drops_to_zero():
    clock = FakeClock()
    rate = TickRate(window_s=2.0, clock=clock)
    for t, n in ((0.0, 0), (1.0, 50), (2.0, 100)):
        clock.now = t
        rate.update(n)
    for t in (3.0, 4.0, 5.0, 6.0):
        clock.now = t
        last = rate.update(100)
    assert last == 0.0
