"""Resuming a paper run: strategies' own state is rebuilt by replaying the journaled
candles with order entry muted, and a strategy that raises after a resume is halted
(journaled) instead of crash-looping the run."""

from __future__ import annotations

from pathlib import Path

from algocli import BaseStrategy
from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Interval, OrderStatus, Tick
from algocli.engine.paper import PaperEngine
from algocli.persistence.journal import read_journal
from algocli.sandbox.replay import bar_ticks
from strategies.sma_crossover import SmaCrossover

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE_EQ:2885"


def _ticks(n_bars: int) -> list[Tick]:
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST).slice(0, n_bars)
    path = bar_ticks(bars)
    return [path.tick(i) for i in range(len(path))]


def _engine(journal: Path, strategy) -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=journal, name="t")
    engine.add_strategy(strategy, [INST], "s")
    engine.start()
    return engine


def _orders(engine: PaperEngine) -> list[tuple]:
    return [(o.order_id, o.side, o.quantity, o.created_ts, o.status) for o in engine.broker.orders]


def test_a_resumed_sma_crossover_acts_on_the_first_crossover_after_the_restart(tmp_path):
    ticks = _ticks(375)
    whole = _engine(tmp_path / "whole.jsonl", SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for t in ticks:
        whole.on_tick(t)
    signals = [o.created_ts for o in whole.broker.orders]
    assert len(signals) >= 4
    # stop the first run just after the candle before a crossover closed (its release is the
    # next candle's first tick): the resumed strategy decides on the very next candle, which
    # needs the previous bar's averages; closes decide, so the lost first tick does not matter
    cut = next(k for k, t in enumerate(ticks) if t.ts >= signals[2]) + 1
    first = _engine(tmp_path / "j.jsonl", SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for t in ticks[:cut]:
        first.on_tick(t)
    first.journal.close()  # as a kill would leave it: nothing more is written
    again = _engine(tmp_path / "j.jsonl", SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    assert again.resumed
    for t in ticks[cut:]:
        again.on_tick(t)
    assert again.error is None
    assert _orders(again) == _orders(whole)


class _Fragile(BaseStrategy):
    """Buys once; raises on every candle once it holds a position and ``explode`` is set."""

    explode = False

    def on_candle(self, candle):
        pos = self.context.get_position(candle.instrument)
        if pos is None and not self.context.open_orders(candle.instrument):
            self.context.buy(candle.instrument, 7)
        elif pos is not None and self.explode:
            raise RuntimeError("state the strategy cannot handle")
        return None


class _Exploding(_Fragile):
    explode = True


def test_a_strategy_that_raises_after_a_resume_is_halted_not_crash_looping(tmp_path):
    ticks = _ticks(60)
    journal = tmp_path / "j.jsonl"
    first = _engine(journal, _Fragile())
    for t in ticks[:80]:
        first.on_tick(t)
    assert first.core.ledger.net[INST] == 7
    first.journal.close()

    again = _engine(journal, _Exploding())  # raises while its state is rebuilt
    assert "s" in again.halted
    assert any("strategy s halted" in e and f"{INST} +7" in e for e in again.events), again.events
    for t in ticks[80:160]:
        again.on_tick(t)
    assert again.error is None  # the run goes on: feeds, dashboard, the position is still shown
    assert again.core.ledger.net[INST] == 7
    again.journal.close()
    assert any(r["k"] == "strategy_halted" and r["strategy_id"] == "s" for r in read_journal(journal))

    third = _engine(journal, _Exploding())  # the next restart does not replay or call it at all
    assert "s" in third.halted
    assert any("stays halted" in e for e in third.events), third.events
    for t in ticks[160:]:
        third.on_tick(t)
    assert third.error is None


def test_a_raising_strategy_still_stops_a_fresh_run(tmp_path):
    engine = _engine(tmp_path / "j.jsonl", _Exploding())
    for t in _ticks(20):
        engine.on_tick(t)
    assert engine.error is not None and "state the strategy cannot handle" in str(engine.error)


def test_the_restored_order_keeps_its_fill_time_and_charges(tmp_path):
    ticks = _ticks(40)
    journal = tmp_path / "j.jsonl"
    first = _engine(journal, _Fragile())
    for t in ticks:
        first.on_tick(t)
    (order,) = first.broker.orders
    assert order.status is OrderStatus.FILLED and order.commission > 0 and order.updated_ts > order.created_ts
    first.journal.close()
    again = _engine(journal, _Fragile())
    (restored,) = again.broker.orders
    assert (restored.updated_ts, restored.commission, restored.filled_quantity, restored.average_price) == \
        (order.updated_ts, order.commission, order.filled_quantity, order.average_price)
