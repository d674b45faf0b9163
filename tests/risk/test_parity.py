"""Risk parity: the same limits refuse the same orders in a backtest and in a paper run of the same candles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Interval, OrderStatus
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.risk import RiskConfig, attach_risk, read_state
from algocli.sandbox.replay import bar_ticks
from algocli.strategy.base import BaseStrategy

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE_EQ:2885"
WORKING = {OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.EXPIRED}


class Churn(BaseStrategy):
    """Trades on every candle in a fixed rhythm, so every limit gets something to refuse."""

    def on_candle(self, candle):
        k, inst, ctx = candle.index, candle.instrument, self.context
        if k % 4 == 0:
            ctx.buy(inst, 4)
        elif k % 4 == 1:
            ctx.buy(inst, 3, limit_price=round(candle.close - 3.0, 2))
        elif k % 4 == 2:
            ctx.sell(inst, 2)
            ctx.sell(inst, 1)
            ctx.sell(inst, 1)
        else:
            ctx.buy(inst, 6)
        return None


LIMITS = {
    "limits": dict(max_position=8, max_order_value=15_000, max_open_orders=3, max_orders_per_second=2,
                   entry_cutoff="15:18", square_off="15:20"),
    "daily-loss": dict(max_daily_loss=60, flatten_on_halt=True, max_position=8),
}


def _bars():
    return load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST).slice(0, 375)


KINDS = {"position could reach": "max_position", "order value": "max_order_value",
         "orders are working": "max_open_orders", "accepted in this second": "max_orders_per_second",
         "entry cut-off": "entry_cutoff", "square-off": "square_off", "trading is halted": "halted"}


def _kind(reason: str) -> str:
    return next(kind for phrase, kind in KINDS.items() if phrase in reason)


def _key(orders, last_ts):
    return [(o.order_id, o.side, o.quantity, o.order_type, o.limit_price, o.created_ts, o.tag, o.reason,
             "WORKING" if o.status in WORKING else o.status.value)
            for o in orders if o.tag != "end-of-data close" and o.created_ts != last_ts]


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_backtest_and_paper_refuse_the_same_orders(tmp_path, name):
    config = RiskConfig(**LIMITS[name])
    bars = _bars()
    bt = Backtest({INST: bars}, initial_capital=1_000_000, fill_model=NextOpen(), cost_model=PercentCommission(0.0003),
                  interval=Interval.MINUTE_1)
    bt.add_strategy(Churn(), [INST], "s")
    bt_risk = attach_risk(bt.core, config, state_path=None)
    result = bt.run()

    paper = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                        cost_model=PercentCommission(0.0003), journal_path=tmp_path / "journal.jsonl", name="t")
    paper.add_strategy(Churn(), [INST], "s")
    state = tmp_path / "risk_state.json"
    paper_risk = attach_risk(paper.core, config, state_path=state)
    paper.start()
    path = bar_ticks(bars)
    for i in range(len(path)):
        paper.on_tick(path.tick(i))
    paper.stop(int(bars.ts[-1]) + 60 * 10**9)  # the exchange clock when the last 1m candle has closed

    last = int(bars.ts[-1])
    expected = _key(result.orders, last)
    assert _key(paper.broker.orders, last) == expected
    reasons = Counter(_kind(o[7]) for o in expected if o[8] == "REJECTED" and o[7].startswith("risk: "))
    if name == "limits":
        # every limit refused something
        assert set(reasons) == set(KINDS.values()) - {"halted"}, reasons
        assert any(o[7] == "risk: 15:20 IST square-off" and o[8] == "CANCELLED" for o in expected)
        assert not bt_risk.halted and not paper_risk.halted
    else:
        assert bt_risk.halted and paper_risk.halted
        assert bt_risk.state.reason == paper_risk.state.reason
        assert bt_risk.state.halted_at == paper_risk.state.halted_at
        assert sum(o[6] == "risk-flatten" for o in expected) == 1
        assert reasons["halted"] > 10
        assert read_state(state).halted  # the paper run's halt is on disk
    assert sum(reasons.values()) > 20
