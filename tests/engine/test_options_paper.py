"""Paper and backtest trade and settle options alike: the same legs, prices, expiry settlement and charges."""

from __future__ import annotations

from datetime import date

from algocli.broker.fill_models import NextOpen
from algocli.domain.models import Interval, Tick
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.market.charges import IndianCharges
from algocli.sandbox.replay import bar_ticks
from engine.options_fixtures import LOT, UNDER, chain, index, option_name
from helpers import Scripted

FIRST, EXPIRY = date(2024, 1, 2), date(2024, 1, 4)
CE, PE = option_name(EXPIRY, 21000, "CE"), option_name(EXPIRY, 21100, "PE")


def _enter(ctx, c):
    atm = ctx.option(UNDER, expiry="current", strike="ATM", right="CE")
    ctx.basket([(atm.name, "BUY", atm.lot_size), (PE, "SELL", LOT)], tag="pair")


def _rows(fills, orders):
    tags = {o.order_id: o.tag for o in orders}
    return [(f.instrument, f.side.value, f.quantity, round(f.price, 2), f.stt, f.commission, tags[f.order_id])
            for f in fills]


def test_paper_and_backtest_trade_and_settle_an_option_basket_alike(tmp_path):
    bars, rows = chain(FIRST, EXPIRY)
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  instruments={UNDER: index()}, default_product="MARGIN", universe=rows)
    bt.add_strategy(Scripted({0: _enter}), [UNDER], "s")
    result = bt.run()
    expected = _rows(result.fills, result.orders)
    assert [r[6] for r in expected] == ["pair", "pair", "expiry", "expiry"]

    meta = {UNDER: index(), **{r.hrn: r for r in rows}}
    engine = PaperEngine(list(bars), interval=Interval.DAY_1, initial_capital=5_000_000, fill_model=NextOpen(),
                         cost_model=IndianCharges("dhan"), journal_path=tmp_path / "j.jsonl", name="t",
                         metadata=meta, default_product="MARGIN")
    engine.core.universe = rows
    engine.add_strategy(Scripted({0: _enter}), [UNDER], "s")
    engine.start()
    ticks = []
    for k, (inst, b) in enumerate(bars.items()):  # the underlying first at equal times, as its candle decides
        path = bar_ticks(b, segment="FNO")
        ticks += [(path.tick(i).ts, k, inst, path.tick(i)) for i in range(len(path))]
    for ts, _, inst, t in sorted(ticks, key=lambda x: x[:2]):
        engine.on_tick(Tick(inst, t.ts, t.ltp, t.ltq, t.volume))
    assert engine.error is None
    assert _rows(engine.broker.fills, engine.broker.orders) == expected
    ce_exit = [r for r in expected if r[0] == CE and r[6] == "expiry"][0]
    assert ce_exit[3] == 234.55 and ce_exit[4] == round(234.55 * LOT * 0.00125, 2)
