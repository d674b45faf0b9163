"""A square-off the run missed (stopped before it, or its candles ended before it) is caught up at
the next IST day's first candle (``algocli.risk.catchup``): in a backtest whose data stop early, in
a paper run stopped on one day and resumed on a later one, and never for a position opened after
the missed time."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Fill, Interval, OrderSide, Position
from algocli.engine.paper import PaperEngine
from algocli.risk import SQUARE_OFF_TAG, RiskConfig, attach_risk
from algocli.risk.catchup import missed_square_off, previous_session
from algocli.sandbox.replay import bar_ticks
from risk.squareoff_strategies import BuyOnce
from risk.risk_support import bars_at, buy, ist, orders_csv, run

ROOT = Path(__file__).resolve().parents[2]
RELIANCE = "NSE_EQ:2885"


def test_a_backtest_whose_day_ends_before_the_square_off_is_squared_off_at_the_next_days_first_candle(tmp_path):
    """2024-01-02's bars stop at 14:00, so its 15:15 square-off never has a candle; the position is
    closed at 2024-01-03's first candle, where the strategy cannot open a new one."""
    ts = [ist(t) for t in ("13:58", "13:59", "14:00")] + [ist(t, day=1) for t in ("09:15", "09:16", "09:17")]
    script = {0: buy(10), 3: buy(5)}  # 09:15 of the next day: refused while the square-off is caught up
    result, strat, controller = run(script, {"square_off": "15:15"}, bars_at(ts, [100.0] * 6))
    rows = orders_csv(result, tmp_path)
    squared = [(r["side"], r["quantity"], r["status"], r["created_time"]) for r in rows if r["tag"] == SQUARE_OFF_TAG]
    assert squared == [("SELL", "10", "FILLED", "2024-01-03T09:15:00+05:30")]
    refused = [r["reason"] for r in rows if r["status"] == "REJECTED"]
    assert refused == ["risk: NSE_EQ:1 is being squared off (a missed 15:15 IST square-off caught up on this candle); "
                       "only orders that reduce the position are allowed"]
    assert strat.context.get_position("NSE_EQ:1") is None
    assert controller.state.square_off_day == "2024-01-02"
    [line] = [e for e in controller.events if "missed" in e]
    assert line.startswith("square-off 15:15 IST of 2024-01-02 was missed (no candle after it until 2024-01-03 09:15 "
                           "IST") and "sent 1 closing order(s)" in line and "NSE_EQ:1 +10" in line


def test_a_day_whose_square_off_ran_is_not_caught_up_again():
    ts = [ist(t) for t in ("15:14", "15:15", "15:16")] + [ist(t, day=1) for t in ("09:15", "09:16")]
    result, _, controller = run({0: buy(10), 3: buy(4)}, {"square_off": "15:15"}, bars_at(ts, [100.0] * 5))
    assert [o.tag for o in result.orders if o.tag != "end-of-data close"] == [None, SQUARE_OFF_TAG, None]
    assert not [e for e in controller.events if "missed" in e]


def _core(position: int, fills: list[tuple[str, int, str]], orders=()):
    """A stand-in engine core: strategy ``s``'s position in ``I`` and its fills (side, quantity, IST time)."""
    booked = [Fill(f"f{k}", "o", "s", "I", OrderSide(side), qty, 100.0, 0.0, _at(when), 0)
              for k, (side, qty, when) in enumerate(fills)]
    broker = SimpleNamespace(fills=booked, open_orders=lambda: list(orders))
    return SimpleNamespace(ledger=SimpleNamespace(positions={("s", "I"): Position("I", position)}), broker=broker)


def _at(when: str) -> int:
    day, hhmm = when.split()
    return ist(hhmm, day=int(day))


SQUARE_NS = (15 * 60 + 15) * 60 * 10**9


def _missed(core, done=None):
    from datetime import date

    return missed_square_off(core, SQUARE_NS, done, date(2024, 1, 3), lambda inst: True)


def test_what_was_held_through_the_missed_time_is_what_was_never_closed_since():
    # held through 2024-01-02 15:15 and still held: all of it
    assert _missed(_core(10, [("BUY", 10, "0 11:00")])) == ("2024-01-02", set(), {("s", "I"): 10})
    # closed after the time (the broker's own square-off, booked on a restart) and opened again: nothing
    assert _missed(_core(10, [("BUY", 10, "0 11:00"), ("SELL", 10, "0 15:20"), ("BUY", 10, "1 09:20")])) is None
    # opened after the time (a daily bar's next-open fill): nothing
    assert _missed(_core(10, [("BUY", 10, "1 00:00")])) is None
    # 10 held, 4 sold after the time, 2 bought: 6 of the old position are left
    assert _missed(_core(8, [("BUY", 10, "0 11:00"), ("SELL", 4, "0 15:25"), ("BUY", 2, "1 09:16")]))[2] == {
        ("s", "I"): 6}
    # a short the same way
    assert _missed(_core(-3, [("SELL", 3, "0 10:00")]))[2] == {("s", "I"): -3}
    # a day whose square-off ran: nothing
    assert _missed(_core(10, [("BUY", 10, "0 11:00")]), done="2024-01-02") is None


def test_working_orders_placed_before_the_missed_time_are_cancelled_later_ones_kept():
    old = SimpleNamespace(order_id="old", tag=None, instrument="I", created_ts=_at("0 14:00"))
    new = SimpleNamespace(order_id="new", tag=None, instrument="I", created_ts=_at("1 09:15"))
    own = SimpleNamespace(order_id="own", tag="square-off", instrument="I", created_ts=_at("0 14:00"))
    assert _missed(_core(0, [], orders=[old, new, own])) == ("2024-01-02", {"old"}, {})


def _paper(tmp_path: Path) -> PaperEngine:
    engine = PaperEngine([RELIANCE], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0), journal_path=tmp_path / "journal.jsonl", name="t")
    engine.add_strategy(BuyOnce(quantity=10), [RELIANCE], "hold")
    attach_risk(engine.core, RiskConfig(square_off="15:15"), state_path=tmp_path / "risk_state.json")
    engine.start()
    return engine


def _feed(engine: PaperEngine, bars) -> None:
    path = bar_ticks(bars)
    for i in range(len(path)):
        engine.on_tick(path.tick(i))


def test_a_paper_run_stopped_holding_an_intraday_position_and_resumed_days_later_squares_it_off(tmp_path):
    """The QA case: bought on 2024-06-10, stopped at 10:40 (before 15:15), resumed on 2024-06-12 at
    10:40. The 10th's and 11th's square-offs passed while the run was down: the resumed run closes
    the position at its first candle, says so, and records the 11th as squared off."""
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", RELIANCE)
    days = (bars.ts + 19_800 * 10**9) // (86_400 * 10**9)
    first = _paper(tmp_path)
    _feed(first, bars.slice(0, 86))  # 2024-06-10 09:15-10:40
    first.stop(int(bars.ts[85]) + 60 * 10**9)
    assert first.core.ledger.net[RELIANCE] == 10
    assert not (tmp_path / "risk_state.json").exists()  # no square-off has run yet

    again = _paper(tmp_path)  # the same journal and risk state: a restart
    assert again.core.ledger.net[RELIANCE] == 10
    start = int((days == days[0] + 2).argmax()) + 85  # 2024-06-12 10:40
    _feed(again, bars.slice(start, start + 5))
    squared = [o for o in again.broker.orders if o.tag == SQUARE_OFF_TAG]
    assert [(o.side, o.quantity, o.status.value, o.created_ts) for o in squared] == [
        (OrderSide.SELL, 10, "FILLED", int(bars.ts[start]))]
    assert again.core.ledger.net[RELIANCE] == 0
    assert json.loads((tmp_path / "risk_state.json").read_text())["square_off_day"] == "2024-06-11"
    [line] = again.core.risk.new_events()
    assert "square-off 15:15 IST of 2024-06-11 was missed" in line and "NSE_EQ:2885 +10" in line
    assert "the last one that ran: none" in line
    again.stop(int(bars.ts[start + 4]) + 60 * 10**9)
