"""``algocli.broker.orderbook``: a journaled fill comes back with its charges by kind, and the order
rules (lots, ticks, shorts by product) give a reason an operator can act on."""

from __future__ import annotations

from datetime import date

import pytest

from algocli.broker.orderbook import OrderBook, check_modify, order_refusal
from algocli.domain.instrument import Instrument
from algocli.domain.models import Fill, Signal, SignalAction
from algocli.domain.session import ist_midnight_ns
from algocli.persistence.journal import Journal, read_journal
from algocli.portfolio.ledger import Ledger

INFY = Instrument("NSE:INFY")
BANKNIFTY_OPT = Instrument("NSE:BANKNIFTY 30 JUN 2026 52000 CE", exchange="NSE", kind="CE", symbol="BANKNIFTY",
                           expiry=date(2026, 6, 30), strike=52000.0, lot_size=30)
TS = ist_midnight_ns(date(2026, 6, 2)) + 10 * 3600 * 10**9


def test_a_replayed_journal_restores_every_charge_of_a_fill_and_its_estimated_mark(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    book = OrderBook(Ledger(100_000), ["NSE:INFY"], lambda fill: None, journal)
    order = book.create("s", Signal("NSE:INFY", SignalAction.BUY, 10), TS, 0)
    fill = Fill("T:1", order.order_id, "s", "NSE:INFY", order.side, 10, 1500.0, 6.43, TS, 0,
                brokerage=4.5, stt=0.0, exchange_txn=0.45, ipft=0.02, sebi=0.02, stamp=0.45, dp=0.0, gst=0.99,
                estimated=True)
    book.apply_fill(order, fill)
    journal.close()
    restored = OrderBook(Ledger(100_000), ["NSE:INFY"], lambda fill: None)
    restored.replay(read_journal(tmp_path / "journal.jsonl"))
    assert restored.fills == [fill]  # every field, the breakdown and the estimated mark included
    assert restored.fills[0].charges == 6.43
    assert restored.ledger.cash == pytest.approx(100_000 - 15_000 - 6.43)


def test_a_journal_written_before_the_breakdown_still_replays_with_zero_kinds(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"k":"fill","fill_id":"x-F1","order_id":"x","strategy_id":"s","instrument":"NSE:INFY",'
                    '"side":"BUY","quantity":1,"price":100.0,"commission":0.03,"ts":1,"bar":0}\n', encoding="utf-8")
    book = OrderBook(Ledger(1_000), ["NSE:INFY"], lambda fill: None)
    book.replay(read_journal(path))
    assert book.fills[0].commission == 0.03 and book.fills[0].stt == 0.0 and not book.fills[0].estimated


@pytest.mark.parametrize(("inst", "product", "buy", "qty", "limit", "held", "reason"), [
    (BANKNIFTY_OPT, "MARGIN", True, 45, None, 0, "quantity 45 is not a whole number of lots of 30"),
    (BANKNIFTY_OPT, "MARGIN", True, 60, 101.02, 0, "price 101.02 is not on the tick of 0.05"),
    (BANKNIFTY_OPT, "CNC", False, 30, None, 0, "an F&O short needs product MARGIN"),
    (BANKNIFTY_OPT, "CNC", False, 30, None, 30, ""),          # selling what it holds
    (BANKNIFTY_OPT, "INTRADAY", False, 30, None, 0, ""),
    (INFY, "CNC", False, 10, None, 4, "CNC sell of 10 NSE:INFY with 4 held would sell 6 short"),
    (INFY, "MARGIN", False, 10, None, 0, "an equity short needs product INTRADAY"),
    (INFY, "INTRADAY", False, 13, 1500.1, 0, ""),              # any quantity; 0.10 in the band since 2025-04-15
    (INFY, "CNC", True, 13, 1500.05, 0, "not on the tick of 0.10"),
])
def test_order_refusal_reasons(inst, product, buy, qty, limit, held, reason):
    got = order_refusal(inst, product, buy, qty, limit, held, TS)
    assert (reason in got and bool(got)) if reason else got == ""


def test_a_modify_off_the_lot_or_tick_raises_with_the_reason():
    with pytest.raises(ValueError, match="lots of 30"):
        check_modify(BANKNIFTY_OPT, 40, None, TS)
    with pytest.raises(ValueError, match="tick of 0.05"):
        check_modify(BANKNIFTY_OPT, None, 100.01, TS)
    check_modify(BANKNIFTY_OPT, 60, 100.05, TS)  # whole lots, on the tick: accepted


def test_orders_are_found_by_id_whenever_they_were_made_and_after_a_replay(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    book = OrderBook(Ledger(100_000), ["NSE:INFY"], lambda fill: None, journal)
    first = [book.create("s", Signal("NSE:INFY", SignalAction.BUY, 1), TS, 0) for _ in range(3)]
    assert [book.by_id[o.order_id] for o in first] == first
    later = [book.create("t", Signal("NSE:INFY", SignalAction.SELL, 2), TS, 1) for _ in range(2)]
    for o in first + later:
        book.work(o)
    # the index built at the first lookup takes in the orders made since
    assert book.working(later[1].order_id, "t") is later[1] and book.working(later[1].order_id, "s") is None
    assert sorted(book.by_id) == sorted(o.order_id for o in first + later) and len(book.by_id) == 5
    book.set_status(later[0], later[0].status.CANCELLED, "by test", TS)
    journal.close()
    restored = OrderBook(Ledger(100_000), ["NSE:INFY"], lambda fill: None)
    counts = restored.replay(read_journal(tmp_path / "journal.jsonl"))
    assert counts["orders"] == 5
    # a status record after its order was restored finds it; the order ids carry on from the last
    assert restored.by_id[later[0].order_id].status is later[0].status.CANCELLED
    assert restored.working(later[0].order_id, "t") is None and restored.working(later[1].order_id, "t")
    assert restored.create("t", Signal("NSE:INFY", SignalAction.BUY, 1), TS, 2).order_id == "t-000003"
