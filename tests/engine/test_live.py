"""``algocli.engine.live.LiveRouter`` in a live session over a real ``algo sandbox`` (the Dhan and
Upstox APIs on a loopback port): a live fill books the cost model's charges by kind, marked as
estimated; an order the exchange would refuse (a price off the tick) is rejected with the reason
before it is sent; an order above the freeze quantity goes to the broker as child orders, one order
for the strategy, and a ``kill -9`` between the children neither doubles nor loses one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from algocli.domain.models import OrderStatus
from algocli.domain.modes import RunMode
from algocli.engine.runtime import load_live_run, open_session, run_session
from cli.live_support import BROKERS, BrokerRest, broker_env, write_live_yaml
from cli.paper_support import INSTRUMENT, child_env, read_journal, sandbox, write_one_day

SPEED = 30_000  # the whole replayed day in under a second
KINDS = ("brokerage", "stt", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst")
STRATEGY = {"class": "engine.rules_strategies:OffTickThenRoundTrip", "instruments": [INSTRUMENT], "id": "rules",
            "params": {"quantity": 10}}


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("live_day")
    write_one_day(folder)
    return folder


def test_a_live_fill_books_the_charges_estimate_and_an_off_tick_order_is_never_sent(tmp_path, one_day, monkeypatch):
    with sandbox(one_day, tmp_path / "logs", speed=SPEED) as box:
        for key, value in broker_env("dhan", box.port).items():
            monkeypatch.setenv(key, value)
        cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out", strategies=[STRATEGY])
        doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        doc["broker"].update({"product": "INTRADAY", "charges": "dhan"})
        cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
        session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
        asyncio.run(run_session(session, duration=4.0))
    router = session.engine.router
    off_tick, bought, sold = router.orders[:3]
    assert off_tick.status is OrderStatus.REJECTED and "is not on the tick of" in off_tick.reason
    assert off_tick.order_id not in {s.order.order_id for s in router.states.values()}  # never sent
    assert router.stats.sent == len(router.states) >= 2
    assert bought.status is OrderStatus.FILLED and sold.status is OrderStatus.FILLED
    fills = router.fills
    assert fills and all(f.estimated for f in fills)
    for f in fills:
        assert f.commission == pytest.approx(sum(getattr(f, k) for k in KINDS))
        assert 0 < f.brokerage <= 20.0  # Dhan intraday: min(Rs 20, 0.03 %)
    sells = [f for f in fills if f.side.value == "SELL"]
    assert sells and all(f.stt == pytest.approx(round(f.price * f.quantity * 0.025 / 100 + 1e-9, 2)) for f in sells)
    journaled = [r for r in read_journal(tmp_path / "out" / "journal.jsonl") if r["k"] == "fill"]
    assert [r["estimated"] for r in journaled] == [True] * len(fills)
    assert [r["stt"] for r in journaled] == [f.stt for f in fills]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_limit_the_broker_works_is_open_to_the_strategy_as_in_the_dry_run(tmp_path, one_day, monkeypatch, broker):
    from engine.rules_strategies import RestingLimit

    RestingLimit.seen.clear()
    resting = {"class": "engine.rules_strategies:RestingLimit", "instruments": [INSTRUMENT], "id": "rest"}
    with sandbox(one_day, tmp_path / "logs", speed=3000) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=[resting])
        session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
        asyncio.run(run_session(session, duration=2.0))
    (order,) = session.engine.router.orders
    assert order.status is OrderStatus.OPEN  # the broker works it (Dhan PENDING, Upstox open): it rests
    assert RestingLimit.seen and RestingLimit.seen[-1] == ["OPEN"], RestingLimit.seen
    statuses = [r["status"] for r in read_journal(tmp_path / "out" / "journal.jsonl") if r["k"] == "status"]
    assert statuses.count("OPEN") == 1  # once, not on every acknowledgement


@pytest.mark.parametrize("broker, mode", [("dhan", RunMode.LIVE), ("upstox", RunMode.LIVE), ("dhan", RunMode.DRY_RUN)])
def test_a_cancelled_order_is_stamped_when_it_was_cancelled(tmp_path, one_day, monkeypatch, broker, mode):
    cancel = {"class": "engine.rules_strategies:CancelLater", "instruments": [INSTRUMENT], "id": "c", "params": {"at": 3}}
    with sandbox(one_day, tmp_path / "logs", speed=3000) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=[cancel])
        session = open_session(load_live_run(cfg, "live"), mode)
        asyncio.run(run_session(session, duration=2.0))
    (order,) = session.engine.core.broker.orders
    assert order.status is OrderStatus.CANCELLED
    fourth = int(session.engine.clock.ts_mv[3])  # the start of the candle whose close cancelled it
    if mode is RunMode.LIVE:  # the broker's time of the cancel: after that candle closed, not at the placement
        assert fourth + 60 * 10**9 <= order.updated_ts <= fourth + 600 * 10**9, (order.created_ts, order.updated_ts)
    else:  # stamped as its orders are, with the candle's start
        assert order.updated_ts == fourth > order.created_ts


def test_a_live_intraday_entry_decided_after_the_square_off_is_refused_before_it_is_sent(tmp_path, one_day,
                                                                                          monkeypatch):
    # Dhan squares INTRADAY off at 15:20 and then takes only orders that reduce a position: the 15:19
    # candle's entry is decided at its close, 15:20, and is refused as the simulated broker refuses it
    entries = {"class": "engine.rules_strategies:EntryAt", "instruments": [INSTRUMENT], "id": "late"}
    with sandbox(one_day, tmp_path / "logs", speed=600, extra=["--start", "2024-06-10 15:08"]) as box:
        for key, value in broker_env("dhan", box.port).items():
            monkeypatch.setenv(key, value)
        cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out", strategies=[entries])
        doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        doc["broker"]["product"] = "INTRADAY"
        doc.pop("risk", None)  # no risk.square_off of our own: the broker's rule alone
        cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
        session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
        asyncio.run(run_session(session, duration=3.0))
        at_broker = BrokerRest("dhan", box.port).orders()
    router = session.engine.router
    early, late = [o for o in router.orders if o.strategy_id == "late" and o.side.value == "BUY"]
    assert early.status is OrderStatus.FILLED
    assert late.status is OrderStatus.REJECTED and "after the 15:20 IST square-off (dhan)" in late.reason, late.reason
    assert late.order_id not in {s.order.order_id for s in router.states.values()}  # never sent
    assert [o.client_id for o in at_broker if o.client_id] == [router.states[k].client_id for k in router.states]


# --- orders above the freeze quantity ------------------------------------------------------

FREEZE = 40  # RELIANCE's freeze quantity in this test's instrument list (the sandbox refuses more)
BIG = 100  # 2.5 x FREEZE: children of 40, 40 and 20
RELIANCE = ("hrn,exchange,kind,symbol,name,expiry,strike,lot_size,tick_size,isin,token,dhan_id,dhan_instrument,"
            "upstox_key,freeze_quantity\n"
            f"NSE:RELIANCE,NSE,EQ,RELIANCE,RELIANCE INDUSTRIES LTD,,,1,0.05,INE002A01018,2885,NSE_EQ:2885,EQUITY,"
            f"NSE_EQ|2885,{FREEZE}\n")
BIG_STRATEGY = {**STRATEGY, "params": {"quantity": BIG}}

# The live session of ``algo live``, with the run's instrument given RELIANCE's freeze quantity
# (the brokers' masters the CLI downloads do not carry it yet); run in a child to be killed.
SESSION = """
import asyncio, sys
from dataclasses import replace
from pathlib import Path
from algocli.domain.modes import RunMode
from algocli.engine.runtime import load_live_run, open_session, run_session
session = open_session(load_live_run(Path(sys.argv[1]), "live"), RunMode.LIVE)
router = session.engine.router
router.instruments[sys.argv[2]] = replace(router._instrument(sys.argv[2]), freeze_quantity=int(sys.argv[3]))
asyncio.run(run_session(session, duration=float(sys.argv[4])))
"""


@pytest.fixture(scope="module")
def frozen_day(tmp_path_factory) -> Path:
    """One day of NSE_EQ:2885 and an instrument list giving it freeze quantity ``FREEZE``."""
    folder = tmp_path_factory.mktemp("frozen_day")
    write_one_day(folder)
    (folder / "instruments.csv").write_text(RELIANCE, encoding="utf-8")
    return folder


def _frozen_cfg(tmp_path: Path, broker: str, strategy: dict = BIG_STRATEGY) -> Path:
    return write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=[strategy])


def _run_session(cfg: Path, duration: float):
    """The session in this process (as ``SESSION`` runs it in a child)."""
    session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
    router = session.engine.router
    router.instruments[INSTRUMENT] = replace(router._instrument(INSTRUMENT), freeze_quantity=FREEZE)
    asyncio.run(run_session(session, duration=duration))
    return session


def _children(journal: list[dict], order_id: str) -> list[dict]:
    return next(r["children"] for r in journal if r["k"] == "children" and r["order_id"] == order_id)


@pytest.mark.parametrize("broker", BROKERS)
def test_an_order_above_the_freeze_quantity_is_three_broker_orders_and_one_for_the_strategy(
        tmp_path, frozen_day, broker, monkeypatch):
    with sandbox(frozen_day, tmp_path / "logs", speed=SPEED) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        session = _run_session(_frozen_cfg(tmp_path, broker), 4.0)
        rest = BrokerRest(broker, box.port)
        book, trades, theirs = rest.orders(), rest.trades(), rest.net_position()
    router = session.engine.router
    assert len(router.orders) == 3  # the off-tick buy, the buy of 100, the sell of 100: one order each
    _, bought, sold = router.orders
    journal = read_journal(tmp_path / "out" / "journal.jsonl")
    for order, side in ((bought, "BUY"), (sold, "SELL")):
        assert (order.status, order.filled_quantity, order.quantity) == (OrderStatus.FILLED, BIG, BIG), order
        children = _children(journal, order.order_id)
        assert [c["quantity"] for c in children] == [40, 40, 20]
        mine = [o for o in book if o.client_id in {c["client_id"] for c in children}]
        assert sorted((o.client_id, o.side, o.quantity, o.filled, o.status) for o in mine) == sorted(
            (c["client_id"], side, c["quantity"], c["quantity"], "TRADED" if broker == "dhan" else "complete")
            for c in children)  # each child is one broker order, none above the freeze quantity, all booked
        plan = next(i for i, r in enumerate(journal) if r["k"] == "children" and r["order_id"] == order.order_id)
        acks = [i for i, r in enumerate(journal) if r["k"] == "ack" and r["order_id"] == order.order_id]
        assert len(acks) == 3 and plan < min(acks)  # every client id on disk before the first was sent
        fills = [f for f in router.fills if f.order_id == order.order_id]
        assert sum(f.quantity for f in fills) == BIG and len(fills) == 3
    assert len(book) == 6 and all(o.quantity <= FREEZE for o in book)
    assert {f"T:{t.trade_id}" for t in trades} == {f.fill_id for f in router.fills}
    assert theirs == 0 == session.engine.core.ledger.net.get(INSTRUMENT, 0)
    assert {f.order_id for f in router.fills} == {bought.order_id, sold.order_id}  # orders.csv's rows


KILLS = [("dhan", "between_children:1", 1), ("upstox", "between_children:1", 1), ("dhan", "after_broker_ack:2", 2)]


@pytest.mark.parametrize(("broker", "crash", "sent"), KILLS, ids=[f"{b}-{c}" for b, c, _ in KILLS])
def test_kill_9_between_the_children_then_restart_neither_doubles_nor_loses_one(
        tmp_path, frozen_day, broker, crash, sent, monkeypatch):
    # the sell waits for the whole buy, so the n-th crash point is the buy's, however the machine is loaded
    cfg = _frozen_cfg(tmp_path, broker, {**BIG_STRATEGY, "params": {"quantity": BIG, "sell_when_held": True}})
    with sandbox(frozen_day, tmp_path / "logs", speed=SPEED) as box:
        env = child_env(**broker_env(broker, box.port), ALGOCLI_CRASH_AT=crash,
                        PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # the strategy's module
        first = subprocess.run([sys.executable, "-c", SESSION, str(cfg), INSTRUMENT, str(FREEZE), "30"], env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
        box.wait_replay_done(timeout=30)  # the day goes on without us
        rest = BrokerRest(broker, box.port)
        book_before = rest.orders()
        before = read_journal(tmp_path / "out" / "journal.jsonl")
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        session = _run_session(cfg, 0.5)
        book_after, trades, theirs = rest.orders(), rest.trades(), rest.net_position()
    assert book_after == book_before, "the restart placed, changed or cancelled broker orders"
    router = session.engine.router
    plans = {r["order_id"]: r["children"] for r in before if r["k"] == "children"}
    assert plans and all([c["quantity"] for c in kids] == [40, 40, 20] for kids in plans.values())
    journaled = {c["client_id"] for kids in plans.values() for c in kids}
    assert Counter(o.client_id for o in book_after) == Counter({o.client_id for o in book_after})  # none doubled
    # every broker order is a journaled child, but the broker's own INTRADAY auto square-off (no client id)
    assert {o.client_id for o in book_after if o.client_id} <= journaled
    cut = []
    for order in (o for o in router.orders if o.order_id in plans):
        mine = [o for o in book_after if o.client_id in {c["client_id"] for c in plans[order.order_id]}]
        assert order.filled_quantity == sum(o.filled for o in mine), order  # none lost
        if len(mine) < 3:  # the crash came before its last children: they are never sent later
            cut.append(len(mine))
            ended = OrderStatus.CANCELLED if order.filled_quantity else OrderStatus.REJECTED  # nothing sent
            assert order.status is ended and "never reached the broker" in order.reason, order
    assert cut and max(cut) == sent, cut
    assert {f.fill_id for f in router.fills} == {f"T:{t.trade_id}" for t in trades}
    assert theirs == session.engine.core.ledger.net.get(INSTRUMENT, 0)
    assert not any(r["k"] in ("order", "children", "client_id") and r.get("tag") != "auto-squareoff" for r in
                   read_journal(tmp_path / "out" / "journal.jsonl")[len(before):])  # no new order after restart
