"""A live run books the broker's own INTRADAY square-off (``algocli.risk.broker_squareoff``).

Over a real ``algo sandbox`` on a loopback port, which squares INTRADAY positions off at the
broker's time (Dhan 15:20 IST): a run that was down then resumes flat, with the broker's order
booked once as ``auto-squareoff``; a run that is up books it from the order stream. Unit cases
drive ``LiveRouter`` with a broker that answers from lists: which foreign orders are taken for
the broker's square-off, and a trade that arrives before its order.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime, timedelta, timezone

import pytest

from algocli.broker.protocol import BrokerOrder, BrokerTrade
from algocli.domain.models import OrderSide, OrderType, Signal, SignalAction
from algocli.domain.modes import RunMode
from algocli.engine.live import LiveRouter, ReconciliationError
from algocli.engine.runtime import load_live_run, open_session, run_session
from algocli.persistence.journal import Journal, read_journal
from algocli.portfolio.ledger import Ledger
from cli.live_support import BROKERS, BrokerRest, broker_env, write_live_yaml
from cli.paper_support import INSTRUMENT, sandbox, write_one_day

IST = timezone(timedelta(hours=5, minutes=30))
SPEED = 300  # 15:10 -> 15:30 in four seconds
SQUARE_OFF = {"dhan": "15:20", "upstox": "15:15"}  # equity, algocli/market/data/squareoff.csv
HOLD = {"class": "risk.squareoff_strategies:BuyOnce", "instruments": [INSTRUMENT], "id": "hold",
        "params": {"quantity": 10}}


def ist(hhmm: str, day: int = 10, seconds: int = 0) -> int:
    h, m = map(int, hhmm.split(":"))
    return int(datetime(2024, 6, day, h, m, seconds, tzinfo=IST).timestamp()) * 10**9


@pytest.fixture(scope="module")
def one_day(tmp_path_factory):
    folder = tmp_path_factory.mktemp("squareoff_day")
    write_one_day(folder)
    return folder


def _session(cfg, duration: float, until=None):
    """One live session of ``cfg``; ``until(engine)`` true stops it early (SIGINT, as Ctrl-C does)."""
    session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
    notes = []

    class View:
        stopping = False

        def started(self): pass
        def stopped(self): pass
        def note(self, kind, line): notes.append(line)

        def refresh(self, engine, status):
            if until is not None and not self.stopping and until(engine):
                self.stopping = True
                os.kill(os.getpid(), signal.SIGINT)

    asyncio.run(run_session(session, duration=duration, view=View()))
    return session, notes


def _auto(session_or_engine):
    engine = getattr(session_or_engine, "engine", session_or_engine)
    return [o for o in engine.router.orders if o.tag == "auto-squareoff"]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_run_down_at_the_square_off_resumes_flat_and_books_the_brokers_order_once(tmp_path, one_day, broker,
                                                                                   monkeypatch):
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=[HOLD],
                          risk={})  # no 15:15 square-off of the run's own: the position lives to the broker's
    with sandbox(one_day, tmp_path / "logs", speed=SPEED, extra=["--start", "2024-06-10 15:10"]) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        rest = BrokerRest(broker, box.port)
        first, _ = _session(cfg, 10.0, until=lambda engine: engine.core.ledger.net.get(INSTRUMENT) == 10)
        assert first.engine.core.ledger.net.get(INSTRUMENT) == 10 == rest.net_position(INSTRUMENT)
        assert box.health()["exchange_time_ns"] < ist(SQUARE_OFF[broker]), "the first run must stop before it"
        box.wait_replay_done(timeout=20)  # the day goes on without the run: the broker squares off
        assert rest.net_position(INSTRUMENT) == 0
        theirs = [o for o in rest.orders() if not o.client_id]
        assert [(o.side, o.quantity, o.filled) for o in theirs] == [("SELL", 10, 10)]
        trade = next(t for t in rest.trades() if t.order_id == theirs[0].order_id)

        second, notes = _session(cfg, 0.5)  # without the adoption: ReconciliationError (broker 0, journal +10)
        assert second.engine.core.ledger.net.get(INSTRUMENT, 0) == 0
        [auto] = _auto(second)
        assert (auto.side, auto.quantity, auto.status.value, auto.order_type) == (
            OrderSide.SELL, 10, "FILLED", OrderType.MARKET)
        fills = [f for f in second.engine.router.fills if f.order_id == auto.order_id]
        assert [(f.fill_id, f.quantity, f.price, f.ts) for f in fills] == [
            (f"T:{trade.trade_id}", 10, trade.price, ist(SQUARE_OFF[broker]))]
        assert fills[0].estimated and fills[0].brokerage > 20.0  # the charges estimate plus the broker's fee
        assert "reconciled: booked 1 fill(s) the broker made while this run was down" in notes
        assert any("the broker squared off" in line and "auto-squareoff" in line for line in notes), notes
        journal = list(read_journal(tmp_path / "out" / "journal.jsonl"))

        third, notes = _session(cfg, 0.3)  # read again: nothing is booked twice
        after = list(read_journal(tmp_path / "out" / "journal.jsonl"))
        assert after[:len(journal)] == journal
        assert not [r for r in after[len(journal):]
                    if r["k"] in ("order", "fill")]
        assert len(_auto(third)) == 1 and third.engine.core.ledger.net.get(INSTRUMENT, 0) == 0
        assert not any("booked" in line for line in notes), notes


def test_a_running_session_books_the_square_off_from_the_order_stream(tmp_path, one_day, monkeypatch):
    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out", strategies=[HOLD], risk={})
    with sandbox(one_day, tmp_path / "logs", speed=SPEED, extra=["--start", "2024-06-10 15:10"]) as box:
        for key, value in broker_env("dhan", box.port).items():
            monkeypatch.setenv(key, value)
        session, notes = _session(cfg, 10.0, until=_auto)  # up through 15:20, until the broker's order is booked
        rest = BrokerRest("dhan", box.port)
        assert rest.net_position(INSTRUMENT) == 0 == session.engine.core.ledger.net.get(INSTRUMENT, 0)
    [auto] = _auto(session)
    assert (auto.side, auto.filled_quantity, auto.created_ts) == (OrderSide.SELL, 10, ist("15:20"))
    assert any("the broker squared off" in line for line in notes), notes


# --- recognising the broker's orders, with a broker that answers from lists -----------------------------


class ListBroker:
    name = "dhan"

    def __init__(self, orders=(), trades=(), positions=()):
        self.orders, self.trades, self.positions = list(orders), list(trades), list(positions)

    def on_fill(self, cb): pass
    def on_order_update(self, cb): pass
    async def find_order(self, cid): return None
    async def get_orders(self): return self.orders
    async def get_trades(self): return self.trades

    async def get_positions(self):
        from algocli.domain.models import Position
        return [Position(i, q) for i, q in self.positions]


def _router(tmp_path, broker, held: int = 10) -> LiveRouter:
    """A router whose journal holds ``held`` units of ``INSTRUMENT`` bought at 11:00 by strategy ``s``."""
    from algocli.data.history import History
    from algocli.domain.models import Interval

    journal = Journal(tmp_path / "journal.jsonl")
    ledger = Ledger(1_000_000)
    router = LiveRouter(broker, ledger, {INSTRUMENT: History(INSTRUMENT, Interval.MINUTE_1)}, run="r",
                        journal=journal, on_fill=lambda f: None)
    router.events = []
    if held:
        from algocli.domain.models import Fill

        order = router.book.create("s", Signal(INSTRUMENT, SignalAction.BUY, held), ist("11:00"), 0)
        router.book.apply_fill(order, Fill("T:own", order.order_id, "s", INSTRUMENT, OrderSide.BUY, held, 100.0, 0.0,
                                           ist("11:00"), 0))
    return router


def _theirs(at: str = "15:20", **changes) -> BrokerOrder:
    fields = dict(broker_order_id="B1", client_id=None, instrument=INSTRUMENT, side=OrderSide.SELL, quantity=10,
                  order_type=OrderType.MARKET, limit_price=None, status="FILLED", filled_quantity=10,
                  average_price=101.0, product="INTRADAY", updated_ts=ist(at))
    fields.update(changes)
    return BrokerOrder(**fields)


TRADE = BrokerTrade("X1", "B1", INSTRUMENT, OrderSide.SELL, 10, 101.0, ist("15:20"))


@pytest.mark.parametrize("order", [
    _theirs(at="14:00"),  # before the broker's time: a manual close, not the square-off
    _theirs(client_id="someone-else"),  # another platform's order
    _theirs(product="CNC"),
    _theirs(side=OrderSide.BUY),  # does not close what the run holds
], ids=["before-the-time", "a-client-id", "cnc", "adds"])
def test_other_foreign_orders_are_not_taken_for_the_square_off(tmp_path, order):
    broker = ListBroker([order], [TRADE], [])
    router = _router(tmp_path, broker)
    with pytest.raises(ReconciliationError):
        asyncio.run(router.reconcile([{"k": "baseline", "positions": {}}], [INSTRUMENT]))
    assert router.ledger.net[INSTRUMENT] == 10 and not router.squareoffs.orders


def test_a_trade_that_comes_before_its_order_is_held_then_booked_and_split_over_the_holders(tmp_path):
    router = _router(tmp_path, ListBroker(), held=0)
    from algocli.domain.models import Fill

    for sid, qty in (("b", 4), ("a", 6)):
        order = router.book.create(sid, Signal(INSTRUMENT, SignalAction.BUY, qty), ist("11:00"), 0)
        router.book.apply_fill(order, Fill(f"T:{sid}", order.order_id, sid, INSTRUMENT, OrderSide.BUY, qty, 100.0,
                                           0.0, ist("11:00"), 0))
    router.on_broker_fill(TRADE)  # the stream's fill first: whose order it is, is not known yet
    assert router.ledger.net[INSTRUMENT] == 10 and router._held == {"B1": [TRADE]}
    router.on_broker_order(_theirs())
    assert router.ledger.net[INSTRUMENT] == 0 and not router._held
    assert sorted((f.fill_id, f.strategy_id, f.quantity) for f in router.fills if f.fill_id.startswith("T:X1")) == [
        ("T:X1", "a", 6), ("T:X1/2", "b", 4)]
    router.on_broker_fill(TRADE)  # the same trade again (the poll): a duplicate
    assert router.ledger.net[INSTRUMENT] == 0 and router.stats.duplicate_fills == 1
    assert len(router.events) == 1 and "a 6, b 4" in router.events[0]
