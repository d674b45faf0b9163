"""Index options settle at expiry in cash at intrinsic value against the underlying's close that day,
with STT on exercise charged to in-the-money holders at the rate of the expiry date:
0.125 % of intrinsic value x quantity until 2026-03-31, 0.15 % from 2026-04-01
(Finance Act 2026; https://cleartax.in/s/securities-transaction-tax-stt). Writers and worthless
options pay none; an option out of the money closes at 0.
"""

from __future__ import annotations

from datetime import date

import pytest

from algocli.broker.fill_models import NextOpen
from algocli.domain.models import OrderStatus
from algocli.engine.backtest import Backtest
from algocli.market.charges import IndianCharges
from helpers import Scripted
from engine.options_fixtures import LOT, UNDER, chain, index, option_name


def _run(first: date, expiry: date, script, capital=5_000_000, charges="dhan"):
    bars, rows = chain(first, expiry)
    bt = Backtest(bars, initial_capital=capital, fill_model=NextOpen(), cost_model=IndianCharges(charges),
                  instruments={UNDER: index()}, default_product="MARGIN", universe=rows)
    strategy = Scripted(script)
    bt.add_strategy(strategy, [UNDER], "s")
    return bt, bt.run(), strategy


@pytest.mark.parametrize("first, expiry, rate", [
    (date(2024, 1, 2), date(2024, 1, 4), 0.00125),   # before 2026-04-01: 0.125 %
    (date(2026, 4, 6), date(2026, 4, 8), 0.0015),    # from 2026-04-01: 0.15 %
])
def test_options_settle_at_intrinsic_with_exercise_stt_for_itm_holders(first, expiry, rate):
    ce, pe, otm_ce = (option_name(expiry, 21000, "CE"), option_name(expiry, 21000, "PE"),
                      option_name(expiry, 21200, "CE"))

    def enter(ctx, c):
        ctx.buy(ce, LOT)          # long ITM call
        ctx.sell(pe, 2 * LOT)     # short put, expires worthless
        ctx.buy(otm_ce, LOT)      # long 21200 call: ends 34.55 in the money
    bt, result, _ = _run(first, expiry, {0: enter})
    settled = {o.instrument: o for o in result.orders if o.tag == "expiry"}
    assert set(settled) == {ce, pe, otm_ce}
    fills = {f.instrument: f for f in result.fills if f.order_id in {o.order_id for o in settled.values()}}
    spot = 21234.55  # the underlying's close on the expiry day
    # long 21000 CE: sells at 234.55; STT on 234.55 x 50 at the rate in force, to the paisa
    assert fills[ce].side.value == "SELL" and fills[ce].price == pytest.approx(spot - 21000)
    assert fills[ce].stt == pytest.approx(round(234.55 * LOT * rate, 2)) and fills[ce].commission == fills[ce].stt
    # short 21000 PE: out of the money, bought back at 0, no charges
    assert fills[pe].side.value == "BUY" and fills[pe].price == 0.0 and fills[pe].commission == 0.0
    # long 21200 CE: 34.55 in the money
    assert fills[otm_ce].price == pytest.approx(34.55)
    assert fills[otm_ce].stt == pytest.approx(round(34.55 * LOT * rate, 2))
    assert all(f.ts == fills[ce].ts for f in fills.values())
    assert not any(o.tag == "end-of-data close" for o in result.orders)
    assert any("options at intrinsic value" in n for n in bt.notes)


def test_a_worthless_long_pays_no_stt_and_cash_follows_the_fills():
    first, expiry = date(2024, 1, 2), date(2024, 1, 4)
    pe = option_name(expiry, 21000, "PE")
    bt, result, _ = _run(first, expiry, {0: lambda ctx, c: ctx.buy(pe, LOT)}, charges="none")
    (fill,) = [f for f in result.fills if f.price == 0.0]
    assert fill.side.value == "SELL" and fill.stt == 0.0
    paid = [f for f in result.fills if f.side.value == "BUY"][0].price * LOT
    assert bt.core.ledger.cash == pytest.approx(5_000_000 - paid)


def test_orders_on_an_expired_contract_are_rejected():
    first, expiry = date(2024, 1, 2), date(2024, 1, 4)
    ce = option_name(expiry, 21000, "CE")
    _, result, _ = _run(first, expiry, {3: lambda ctx, c: ctx.buy(ce, LOT)})
    (order,) = result.orders
    assert order.status is OrderStatus.REJECTED and "expired on 2024-01-04" in order.reason


def test_strategies_of_one_account_are_exercised_on_their_net_long_only():
    # the exchange nets one client's positions in a contract: long 3 lots and short 2 lots hold 1 lot,
    # and only that lot is exercised: STT 0.125 % x 234.55 x 50 = 14.66 (not 43.98 on 3 lots)
    first, expiry = date(2024, 1, 2), date(2024, 1, 4)
    ce = option_name(expiry, 21000, "CE")
    bars, rows = chain(first, expiry)
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  instruments={UNDER: index()}, default_product="MARGIN", universe=rows)
    bt.add_strategy(Scripted({0: lambda ctx, c: ctx.buy(ce, 3 * LOT)}), [UNDER], "long")
    bt.add_strategy(Scripted({0: lambda ctx, c: ctx.sell(ce, 2 * LOT)}), [UNDER], "short")
    result = bt.run()
    settled = {f.strategy_id: f for f in result.fills if f.order_id.startswith(
        tuple(o.order_id for o in result.orders if o.tag == "expiry"))}
    assert settled["long"].quantity == 3 * LOT and settled["short"].quantity == 2 * LOT
    assert settled["long"].stt == pytest.approx(round(0.00125 * 234.55 * LOT, 2)) == 14.66
    assert settled["short"].stt == 0.0
