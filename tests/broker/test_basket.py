"""Baskets: legs placed all or none, checked together against margin and risk limits, one common tag.

Margin by hand (``algocli/market/data/margin.csv``): a short option blocks 15 % of strike x quantity,
a bought one its premium. A short 21000 straddle of one lot (50) blocks 2 x 0.15 x 21000 x 50 = 315,000.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from algocli.broker.basket import BasketLeg, basket_need, send_order
from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.domain.models import Interval, OrderSide, OrderStatus, Tick
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.market.products import ProductRules
from algocli.risk import attach_risk
from algocli.risk.config import RiskConfig
from algocli.sandbox.replay import bar_ticks
from engine.options_fixtures import LOT, UNDER, chain, index, option, option_name
from helpers import Scripted

EXPIRY = date(2024, 1, 4)
CE, PE = option_name(EXPIRY, 21000, "CE"), option_name(EXPIRY, 21000, "PE")
WING_CE, WING_PE = option_name(EXPIRY, 21200, "CE"), option_name(EXPIRY, 21100, "PE")


def _run(script, capital, risk=None):
    bars, rows = chain(date(2024, 1, 2), EXPIRY)
    bt = Backtest(bars, initial_capital=capital, fill_model=NextOpen(), instruments={UNDER: index()},
                  default_product="MARGIN", rules=ProductRules.build("dhan", squareoff="off"), universe=rows)
    bt.add_strategy(Scripted(script), [UNDER], "s")
    if risk is not None:
        attach_risk(bt.core, risk, state_path=None)
    return bt.run()


def _straddle(ctx, c):
    return ctx.basket([(CE, "SELL", LOT), (PE, "SELL", LOT)], tag="straddle")


def test_a_basket_the_margin_cannot_carry_whole_is_not_placed_in_part():
    result = _run({0: _straddle}, capital=250_000)  # leg 1 alone (157,500) would fit; both (315,000) do not
    legs = [o for o in result.orders if o.tag == "straddle"]
    assert [o.status for o in legs] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert all(f"leg 2 (SELL {LOT} {PE})" in o.reason and "no leg was placed" in o.reason for o in legs)
    assert not result.fills
    # the same legs one by one: the first is placed and fills, which is what a basket must prevent
    alone = _run({0: lambda ctx, c: (ctx.sell(CE, LOT), ctx.sell(PE, LOT))}, capital=250_000)
    assert [o.status for o in alone.orders[:2]] == [OrderStatus.FILLED, OrderStatus.REJECTED]


def test_a_basket_the_margin_carries_fills_every_leg_with_the_common_tag():
    def condor(ctx, c):
        return ctx.basket([(CE, "SELL", LOT), (PE, "SELL", LOT), (WING_CE, "BUY", LOT), (WING_PE, "BUY", LOT)])
    result = _run({0: condor}, capital=400_000)
    legs = [o for o in result.orders if o.tag == "basket-1"]
    assert len(legs) == 4 and all(o.status is OrderStatus.FILLED for o in legs)
    opened = [f for f in result.fills if f.order_id in {o.order_id for o in legs}]
    assert {f.bar for f in opened} == {1}  # all four legs fill on the next bar's open


def test_a_risk_limit_refusing_one_leg_refuses_the_basket():
    def legs(ctx, c):
        return ctx.basket([(WING_CE, "BUY", LOT), (CE, "BUY", 4 * LOT)], tag="calls")
    result = _run({0: legs}, capital=5_000_000, risk=RiskConfig(max_order_value=10_000))
    calls = [o for o in result.orders if o.tag == "calls"]
    assert [o.status for o in calls] == [OrderStatus.REJECTED] * 2
    assert all(f"leg 2 (BUY {4 * LOT} {CE}) refused: risk: order value" in o.reason for o in calls)


def test_a_leg_the_exchange_refuses_names_itself():
    result = _run({0: lambda ctx, c: ctx.basket([(CE, "SELL", LOT), (PE, "SELL", LOT + 1)], tag="odd")},
                  capital=5_000_000)
    assert all("leg 2" in o.reason and "lot" in o.reason for o in result.orders)
    assert [o.status for o in result.orders] == [OrderStatus.REJECTED] * 2


# --- the shared rules: the order legs go out in, the margin of all of them ------------------------


def test_legs_go_out_buys_first_each_side_in_the_strategys_order():
    sides = [OrderSide.SELL, OrderSide.BUY, OrderSide.SELL, OrderSide.BUY]
    orders = [SimpleNamespace(side=s) for s in sides]
    assert send_order(orders) == [1, 3, 0, 2]


def test_the_basket_need_adds_each_legs_margin_and_releases_what_a_closing_leg_frees():
    rules = ProductRules.build("dhan", squareoff="off")
    ce, pe = option(EXPIRY, 21000, "CE"), option(EXPIRY, 21000, "PE")
    legs = [BasketLeg(CE, ce, "MARGIN", False, LOT, 100.0, 0),  # a short call: 15 % of 21000 x 50
            BasketLeg(PE, pe, "MARGIN", True, LOT, 80.0, 0),  # a long put: its premium
            BasketLeg(CE, ce, "MARGIN", True, LOT, 100.0, 0)]  # buys the short call back: frees its margin
    totals = basket_need(legs, {}, rules, PercentCommission(0.0))
    assert totals == pytest.approx([157_500.0, 157_500.0 + 4_000.0, 4_000.0])
    # without rules an opening leg needs its whole value, and charges count
    assert basket_need(legs[:1], {}, None, PercentCommission(0.001)) == pytest.approx([5_000.0 + 5.0])


def test_a_paper_run_resumed_after_a_basket_rebuilds_without_placing_it_again(tmp_path):
    bars, rows = chain(date(2024, 1, 2), EXPIRY)
    meta = {UNDER: index(), **{r.hrn: r for r in rows}}

    def engine():
        e = PaperEngine(list(bars), interval=Interval.DAY_1, initial_capital=5_000_000, fill_model=NextOpen(),
                        cost_model=PercentCommission(0.0), journal_path=tmp_path / "j.jsonl", name="t", metadata=meta,
                        default_product="MARGIN")
        e.core.universe = rows
        e.add_strategy(Scripted({0: _straddle}), [UNDER], "s")
        e.start()
        return e

    first = engine()
    ticks = sorted(((bar_ticks(b, segment="FNO").tick(i), k, inst) for k, (inst, b) in enumerate(bars.items())
                    for i in range(8)), key=lambda x: (x[0].ts, x[1]))  # the first two days
    for t, _, inst in ticks:
        first.on_tick(Tick(inst, t.ts, t.ltp, t.ltq, t.volume))
    assert first.error is None
    assert [(o.tag, o.status) for o in first.broker.orders] == [("straddle", OrderStatus.FILLED)] * 2
    again = engine()
    assert again.resumed and not again.halted  # the replayed on_candle called ctx.basket: muted, not an error
    assert [(o.order_id, o.status) for o in again.broker.orders] == [(o.order_id, o.status)
                                                                     for o in first.broker.orders]
