"""The paper engine: same decisions as the backtest on the same candles, and crash-safe state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Interval, OrderStatus, Tick
from algocli.domain.session import bucket_start
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.sandbox.replay import bar_ticks
from helpers import Scripted
from strategies.bollinger_reversion import BollingerReversion
from strategies.sma_crossover import SmaCrossover

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE_EQ:2885"


def _day_bars(day: int = 0):
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST)
    return bars.slice(375 * day, 375 * (day + 1))


def _ticks(bars) -> list[Tick]:
    path = bar_ticks(bars)
    return [path.tick(i) for i in range(len(path))]


def _paper(tmp_path: Path, strategy, journal: str = "journal.jsonl") -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / journal, name="t")
    engine.add_strategy(strategy, [INST], "s")
    engine.start()
    return engine


def _backtest(bars, strategy):
    bt = Backtest({INST: bars}, initial_capital=1_000_000, fill_model=NextOpen(),
                  cost_model=PercentCommission(0.0003))
    bt.add_strategy(strategy, [INST], "s")
    return bt.run()


@pytest.mark.parametrize("make", [
    lambda: SmaCrossover(fast_period=5, slow_period=15, quantity=10),
    lambda: BollingerReversion(period=10, std=1.5, quantity=10),
], ids=["sma-market-orders", "bollinger-limit-orders"])
def test_paper_makes_the_backtests_decisions_at_the_backtests_prices(tmp_path, make):
    bars = _day_bars()
    engine = _paper(tmp_path, make())
    for tick in _ticks(bars):
        engine.on_tick(tick)
    engine.stop(int(bars.ts[-1]))
    result = _backtest(bars, make())
    last_bar_ts = int(bars.ts[-1])

    def orders(rows):
        return [(o.order_id, o.side, o.quantity, o.order_type, o.limit_price, o.created_ts)
                for o in rows if o.tag != "end-of-data close" and o.created_ts != last_bar_ts]

    def fills(rows, ids):
        # a limit fill happens inside the bar on a tick, at the bar's start in the backtest: compare bars
        return [(f.order_id, f.side, f.quantity, round(f.price, 6), bucket_start(f.ts, Interval.MINUTE_1))
                for f in rows if f.order_id in ids]

    paper_orders, bt_orders = orders(engine.broker.orders), orders(result.orders)
    assert len(bt_orders) > 5 and paper_orders == bt_orders
    ids = {o[0] for o in bt_orders}
    assert fills(engine.broker.fills, ids) == fills(result.fills, ids)
    # every candle the strategies saw was the original bar
    h = engine.core.histories[INST]
    np.testing.assert_array_equal(h.column("close"), bars.close)
    np.testing.assert_array_equal(h.column("ts"), bars.ts)


def test_restart_from_the_journal_restores_cash_positions_and_orders(tmp_path):
    bars = _day_bars()
    ticks = _ticks(bars)
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in ticks[:900]:
        first.on_tick(tick)
    # leave a resting order behind as well
    first.core.clock.at(first.clock.ts_mv[-1])
    resting = first.broker.submit("s", _limit(1.0), first.core.now_ns, first.core.timeline_bar)
    assert first.broker.fills and resting.status is OrderStatus.OPEN
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))  # same journal: a restart
    assert second.restored["fills"] == len(first.broker.fills)
    assert second.core.ledger.cash == pytest.approx(first.core.ledger.cash, abs=1e-9)
    assert {k: p.quantity for k, p in second.core.ledger.positions.items()} == \
        {k: p.quantity for k, p in first.core.ledger.positions.items()}
    assert [o.order_id for o in second.broker.open_orders()] == [o.order_id for o in first.broker.open_orders()]
    assert second.core.histories[INST].length == first.core.histories[INST].length
    assert [f.fill_id for f in second.broker.fills] == [f.fill_id for f in first.broker.fills]
    # new orders continue the sequence instead of reusing ids
    for tick in ticks[900:]:
        second.on_tick(tick)
    ids = [o.order_id for o in second.broker.orders]
    assert len(ids) == len(set(ids)) and len(ids) > len(first.broker.orders)


def _limit(price: float):
    from algocli import OrderType, Signal, SignalAction

    return Signal(INST, SignalAction.BUY, 1, OrderType.LIMIT, price)


def test_a_torn_last_journal_line_is_ignored(tmp_path):
    bars = _day_bars()
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in _ticks(bars)[:600]:
        first.on_tick(tick)
    journal = tmp_path / "journal.jsonl"
    with open(journal, "ab") as fh:
        fh.write(b'{"k":"fill","fill_id":"s-999999-F1","order_id"')  # the crash hit mid-write
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    assert second.restored["fills"] == len(first.broker.fills)
    assert "s-999999-F1" not in second.core.ledger.booked


def test_a_journaled_fill_is_booked_once_even_if_repeated(tmp_path):
    bars = _day_bars()
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in _ticks(bars)[:600]:
        first.on_tick(tick)
    journal = tmp_path / "journal.jsonl"
    fill_lines = [ln for ln in journal.read_bytes().splitlines(keepends=True) if b'"k":"fill"' in ln]
    with open(journal, "ab") as fh:
        fh.write(fill_lines[0])  # a duplicate record, e.g. replayed by hand
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    assert second.core.ledger.cash == pytest.approx(first.core.ledger.cash, abs=1e-9)
    assert len(second.broker.fills) == len(first.broker.fills)


def test_limit_order_fills_when_the_live_price_crosses_it(tmp_path):
    bars = _day_bars()
    ticks = _ticks(bars)
    engine = _paper(tmp_path, Scripted({}))
    for tick in ticks[:8]:
        engine.on_tick(tick)
    level = min(t.ltp for t in ticks[8:200]) + 0.05
    engine.core.clock.at(engine.clock.ts_mv[-1])
    order = engine.broker.submit("s", _limit(level), engine.core.now_ns, engine.core.timeline_bar)
    crossing = next(t for t in ticks[8:] if t.ltp <= level)
    for tick in ticks[8:]:
        engine.on_tick(tick)
        if tick is crossing:
            break
    assert order.status is OrderStatus.FILLED
    # it rested through earlier ticks, so the price traded through the limit between two ticks
    assert engine.broker.fills[-1].price == pytest.approx(level)
    assert engine.broker.fills[-1].ts == crossing.ts


def test_a_limit_already_marketable_on_its_first_tick_fills_at_that_tick(tmp_path):
    ticks = _ticks(_day_bars())
    engine = _paper(tmp_path, Scripted({}))
    for tick in ticks[:8]:
        engine.on_tick(tick)
    engine.core.clock.at(engine.clock.ts_mv[-1])
    generous = ticks[8].ltp + 50  # far above the next trade: marketable at once
    order = engine.broker.submit("s", _limit(generous), engine.core.now_ns, engine.core.timeline_bar)
    engine.on_tick(ticks[8])
    assert order.status is OrderStatus.FILLED
    assert engine.broker.fills[-1].price == pytest.approx(ticks[8].ltp)
