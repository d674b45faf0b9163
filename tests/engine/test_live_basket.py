"""Baskets in a live session over a real ``algo sandbox`` (Dhan's and Upstox's APIs on a loopback port):
a basket that passes is placed whole, buys first, every leg with the common tag in orders.csv and
fills.csv; one whose combined margin exceeds the broker's funds sends nothing; one whose leg the
exchange rejects after the other was accepted gets the other flattened by a ``<tag>-unwind`` order,
with a warning; and a ``kill -9`` between the legs never sends the second one, while the restart
flattens the first.

Margin by hand (``algocli/market/data/margin.csv``): INTRADAY equity blocks 20 % of its value. The
sandbox account has 10,000,000. RELIANCE (``NSE_EQ:2885``) trades near 2,900 and the second
instrument (``NSE_EQ:1333``, RELIANCE's day at half the price) near 1,450.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from algocli.domain.models import OrderSide, OrderStatus
from algocli.domain.modes import RunMode
from algocli.engine.runtime import finish_session, load_live_run, open_session, run_session, write_session_artifacts
from cli.live_support import BROKERS, BrokerRest, broker_env, write_live_yaml
from cli.paper_support import child_env, read_csv, read_journal, sandbox, write_one_day

A, B = "NSE_EQ:2885", "NSE_EQ:1333"
PAIR = [[A, "SELL", 10], [B, "BUY", 20]]  # the strategy's order; the buy goes first
TESTS = Path(__file__).resolve().parents[1]

CHILD = """
import asyncio, sys
from pathlib import Path
from algocli.domain.modes import RunMode
from algocli.engine.runtime import load_live_run, open_session, run_session
session = open_session(load_live_run(Path(sys.argv[1]), "live"), RunMode.LIVE)
asyncio.run(run_session(session, duration=float(sys.argv[2])))
"""


class Notes:
    """A ``SessionView`` that keeps the lines the operator would see."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def started(self) -> None:
        pass

    def refresh(self, engine, feed_status) -> None:
        pass

    def stopped(self) -> None:
        pass

    def note(self, kind: str, line: str) -> None:
        self.lines.append(line)


@pytest.fixture(scope="module")
def two_instruments(tmp_path_factory) -> Path:
    """One day of RELIANCE and the same day at half the price as ``NSE_EQ:1333``."""
    folder = tmp_path_factory.mktemp("basket_day")
    lines = write_one_day(folder).read_text(encoding="utf-8").splitlines()
    half = [lines[0]]
    for line in lines[1:]:
        ts, *prices, volume = line.split(",")
        half.append(",".join([ts, *(f"{round(float(p) * 10) / 20:.2f}" for p in prices), volume]))
    (folder / "NSE_EQ_1333.csv").write_text("\n".join(half) + "\n", encoding="utf-8")
    return folder


def _cfg(tmp_path: Path, broker: str, legs) -> Path:
    strategy = {"class": "engine.rules_strategies:BasketOnce", "instruments": [A, B], "id": "b",
                "params": {"legs": legs, "tag": "pair"}}
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out", strategies=[strategy])
    doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    doc.pop("risk")  # the shipped limits (100 units, 500,000 an order) would refuse the margin test's legs
    cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return cfg


def _run(cfg: Path, duration: float):
    view = Notes()
    session = open_session(load_live_run(cfg, "live"), RunMode.LIVE)
    asyncio.run(run_session(session, duration=duration, view=view))
    assert session.engine.error is None and not session.engine.halted
    return session, view


def _ours(rest: BrokerRest, journal: list[dict]):
    ids = {r["client_id"] for r in journal if r["k"] == "client_id"}
    return [o for o in rest.orders() if o.client_id in ids]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_basket_is_placed_whole_buys_first_with_the_common_tag(tmp_path, two_instruments, broker, monkeypatch):
    with sandbox(two_instruments, tmp_path / "logs", speed=3000) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        session, _ = _run(_cfg(tmp_path, broker, PAIR), 3.0)
        rest = BrokerRest(broker, box.port)
        journal = read_journal(tmp_path / "out" / "journal.jsonl")
        book, net = _ours(rest, journal), (rest.net_position(A), rest.net_position(B))
    sell, buy = session.engine.router.orders
    assert (sell.side, buy.side) == (OrderSide.SELL, OrderSide.BUY)
    assert [(o.status, o.filled_quantity, o.tag) for o in (sell, buy)] == [(OrderStatus.FILLED, 10, "pair"),
                                                                           (OrderStatus.FILLED, 20, "pair")]
    assert net == (-10, 20)
    # one broker order per leg, the buy sent first (the broker numbers orders as they arrive)
    assert sorted((o.order_id, o.side, o.quantity) for o in book)[0][1:] == ("BUY", 20)
    assert len(book) == 2
    ids = {r["order_id"]: r["client_id"] for r in journal if r["k"] == "client_id"}
    basket = next(r for r in journal if r["k"] == "basket")
    first_ack = next(i for i, r in enumerate(journal) if r["k"] == "ack")
    assert journal.index(basket) < first_ack and basket["orders"] == [sell.order_id, buy.order_id]
    assert set(ids) == {sell.order_id, buy.order_id} and basket["send"] == [1, 0]
    write_session_artifacts(session, finish_session(session), report=False)
    orders, fills = read_csv(tmp_path / "out" / "orders.csv"), read_csv(tmp_path / "out" / "fills.csv")
    assert [o["tag"] for o in orders] == ["pair", "pair"]
    assert sorted((f["instrument"], f["tag"]) for f in fills) == sorted([(A, "pair"), (B, "pair")])


@pytest.mark.parametrize("broker", BROKERS)
def test_a_basket_whose_combined_margin_exceeds_the_funds_sends_nothing(tmp_path, two_instruments, broker,
                                                                        monkeypatch):
    # 20 % of 9,000 x ~2,900 and of 18,000 x ~1,450: ~5.2 M each, so either leg alone fits in 10 M and both do not
    legs = [[A, "SELL", 9000], [B, "BUY", 18000]]
    with sandbox(two_instruments, tmp_path / "logs", speed=3000) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        session, view = _run(_cfg(tmp_path, broker, legs), 2.0)
        book = BrokerRest(broker, box.port).orders()
    router = session.engine.router
    assert book == [] and router.stats.sent == 0
    assert [o.status for o in router.orders] == [OrderStatus.REJECTED] * 2
    for order in router.orders:
        assert order.reason.startswith("basket pair: insufficient funds for the whole basket: with leg 1 (SELL 9000")
        assert "available at" in order.reason and "10,000,000.00" in order.reason
        assert order.reason.endswith("no leg was placed")
    assert any("insufficient funds for the whole basket" in line for line in view.lines)


@pytest.mark.parametrize("broker", BROKERS)
def test_a_leg_the_exchange_rejects_gets_the_filled_legs_flattened_and_reported(tmp_path, two_instruments, broker,
                                                                                monkeypatch):
    with sandbox(two_instruments, tmp_path / "logs", speed=3000) as box:
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        rest = BrokerRest(broker, box.port)
        rest.set_faults(reject_sells=1)  # the exchange refuses the next sell: the basket's second leg
        session, view = _run(_cfg(tmp_path, broker, PAIR), 3.0)
        journal = read_journal(tmp_path / "out" / "journal.jsonl")
        book, net = _ours(rest, journal), (rest.net_position(A), rest.net_position(B))
    router = session.engine.router
    sell, buy, unwind = router.orders
    assert sell.status is OrderStatus.REJECTED and "reject_sells" in sell.reason
    assert buy.status is OrderStatus.FILLED and buy.reason.startswith("basket pair failed (leg 1 (SELL 10 NSE_EQ:2885)")
    assert (unwind.instrument, unwind.side, unwind.quantity, unwind.tag, unwind.status) == (
        B, OrderSide.SELL, 20, "pair-unwind", OrderStatus.FILLED)
    assert unwind.order_id in buy.reason and unwind.order_id in sell.reason
    assert net == (0, 0)
    assert sorted((o.side, o.quantity, o.status in ("REJECTED", "rejected")) for o in book) == [
        ("BUY", 20, False), ("SELL", 10, True), ("SELL", 20, False)]
    assert any(line.startswith("BASKET pair FAILED: leg 1 (SELL 10") for line in view.lines)
    assert any(line.startswith("basket pair unwound") for line in view.lines)
    failed = [r["reason"] for r in journal if r["k"] == "basket_failed"]
    assert len(failed) == 1 and f"basket pair failed ({failed[0]})" in buy.reason


@pytest.mark.parametrize("broker", BROKERS)
def test_kill_9_between_the_legs_never_sends_the_second_and_the_restart_flattens_the_first(
        tmp_path, two_instruments, broker, monkeypatch):
    cfg = _cfg(tmp_path, broker, PAIR)
    with sandbox(two_instruments, tmp_path / "logs", speed=600) as box:  # a 100 ms bar: ticks go on after the restart
        env = child_env(**broker_env(broker, box.port), ALGOCLI_CRASH_AT="between_basket_legs:1",
                        PYTHONPATH=str(TESTS))
        first = subprocess.run([sys.executable, "-c", CHILD, str(cfg), "30"], env=env, capture_output=True,
                               text=True, timeout=60, check=False)
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
        rest = BrokerRest(broker, box.port)
        before = read_journal(tmp_path / "out" / "journal.jsonl")
        assert [(o.side, o.quantity) for o in _ours(rest, before)] == [("BUY", 20)]  # the buy went, then the crash
        # This case is the leg that filled while the run was down: wait for the fill (a leg still working at the
        # restart is cancelled instead, with nothing to unwind; which one happens depends on the next tick).
        deadline = time.monotonic() + 10
        while _ours(rest, before)[0].filled < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ours(rest, before)[0].filled == 20
        for key, value in broker_env(broker, box.port).items():
            monkeypatch.setenv(key, value)
        session, view = _run(cfg, 3.0)
        journal = read_journal(tmp_path / "out" / "journal.jsonl")
        book, net = _ours(rest, journal), (rest.net_position(A), rest.net_position(B))
    router = session.engine.router
    sell, buy, unwind = router.orders
    assert sell.status is OrderStatus.REJECTED and "never reached the broker" in sell.reason
    assert buy.status is OrderStatus.FILLED and "basket pair failed" in buy.reason
    assert (unwind.side, unwind.quantity, unwind.tag, unwind.status) == (OrderSide.SELL, 20, "pair-unwind",
                                                                         OrderStatus.FILLED)
    assert sorted((o.side, o.quantity) for o in book) == [("BUY", 20), ("SELL", 20)]  # no order for A, ever
    assert net == (0, 0)
    assert [r["k"] for r in journal].count("basket") == 1  # the replayed strategy placed no new basket
    assert any("failed before the restart" in line for line in view.lines)
