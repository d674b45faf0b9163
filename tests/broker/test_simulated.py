"""The simulated broker: fill models, limit orders, cancel/modify, shorts, cash checks; Indian
charges by kind on every fill, lots, ticks and product rules."""

from __future__ import annotations

from datetime import date

import pytest

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import FillModel, NextOpen, SameClose, Slippage, SlippageConfig, Vwap
from algocli.domain.instrument import Instrument
from algocli.domain.session import ist_midnight_ns
from algocli.market.charges import IndianCharges
from algocli.domain.models import OrderSide, OrderStatus
from algocli.engine.backtest import Backtest
from helpers import DAY_NS, Scripted, make_bars

ROWS = [
    (100, 101, 99, 100),
    (102, 104, 101, 103),   # 1
    (103, 106, 100, 105),   # 2
    (104, 105, 95, 96),     # 3
    (90, 92, 88, 91),       # 4: gaps down through 95
    (92, 99, 91, 98),       # 5
    (99, 110, 98, 108),     # 6
]


def run(script, fill_model=None, capital=100_000.0, commission=0.0, rows=ROWS):
    bt = Backtest({"NSE_EQ:1": make_bars(rows)}, initial_capital=capital, fill_model=fill_model,
                  cost_model=PercentCommission(commission))
    strat = Scripted(script)
    bt.add_strategy(strat, ["NSE_EQ:1"], "s")
    return bt.run(), strat


def buy(q, limit=None):
    return lambda ctx, c: ctx.buy(c.instrument, q, limit_price=limit)


def sell(q, limit=None):
    return lambda ctx, c: ctx.sell(c.instrument, q, limit_price=limit)


@pytest.mark.parametrize(("model", "price"), [
    (NextOpen(), 102.0),
    (SameClose(), 100.0),
    (Vwap(), 102.70),  # (104 + 101 + 103) / 3 = 102.667, up to the 0.05 tick for a buy
    (Slippage(SlippageConfig(slippage_pct=0.01)), 103.05),  # 102 * 1.01 = 103.02, up to the 0.05 tick
])
def test_market_buy_price_per_fill_model(model, price):
    result, strat = run({0: buy(10)}, fill_model=model)
    assert result.fills[0].price == pytest.approx(price)
    assert result.fills[0].bar == (0 if model.immediate else 1)


def test_a_vwap_sell_is_rounded_down_to_the_tick():
    result, _ = run({0: buy(10), 2: sell(10)}, fill_model=Vwap())
    high, low, close = ROWS[3][1:]
    assert (high + low + close) / 3 == pytest.approx(98.6667, abs=1e-4) and result.fills[1].price == 98.65


def test_slippage_is_adverse_for_sells():
    result, _ = run({0: buy(10), 2: sell(10)}, fill_model=Slippage(SlippageConfig(slippage_pct=0.01)))
    assert result.fills[1].price == pytest.approx(102.95)  # 104 * 0.99 = 102.96, down to the 0.05 tick


def test_signal_on_bar_t_never_fills_before_t_plus_1_with_next_open():
    result, strat = run({2: buy(5)})
    assert result.fills[0].bar == 3 and result.fills[0].price == 104
    assert strat.fills[0].order_id == result.orders[0].order_id


def test_limit_order_rests_then_fills_at_limit():
    result, _ = run({1: buy(10, limit=97.0)})  # bars 2 and 3: low 100 then 95 -> fills on bar 3 at 97
    fill = result.fills[0]
    assert (fill.bar, fill.price) == (3, 97.0)
    assert result.orders[0].status is OrderStatus.FILLED


def test_limit_order_gapped_through_fills_at_open():
    result, _ = run({3: buy(10, limit=95.0)})  # bar 4 opens at 90, below the limit
    assert (result.fills[0].bar, result.fills[0].price) == (4, 90.0)


def test_sell_limit_fills_when_high_reaches_it():
    result, _ = run({0: buy(10), 1: sell(10, limit=107.0)})
    assert (result.fills[1].bar, result.fills[1].price) == (6, 107.0)


def test_cancel_stops_a_resting_limit():
    state = {}
    script = {1: lambda ctx, c: state.setdefault("id", ctx.buy(c.instrument, 10, limit_price=50.0)),
              2: lambda ctx, c: ctx.cancel_order(state["id"])}
    result, strat = run(script)
    assert strat.results[2] is True
    assert result.orders[0].status is OrderStatus.CANCELLED and not result.fills


def test_modify_moves_a_resting_limit():
    state = {}
    script = {1: lambda ctx, c: state.setdefault("id", ctx.buy(c.instrument, 10, limit_price=50.0)),
              2: lambda ctx, c: ctx.modify_order(state["id"], price=96.0, quantity=20)}
    result, _ = run(script)
    assert (result.fills[0].bar, result.fills[0].price, result.fills[0].quantity) == (3, 96.0, 20)


def test_unaffordable_order_is_rejected_with_reason_and_run_continues():
    result, _ = run({0: buy(1000), 1: buy(10)}, capital=5_000.0)
    first, second = result.orders[:2]
    assert first.status is OrderStatus.REJECTED and "insufficient funds" in first.reason
    assert second.status is OrderStatus.FILLED
    assert min(result.cash) >= 0


def test_short_round_trip_and_commission():
    result, _ = run({0: sell(10), 3: buy(10)}, commission=0.001)
    trade = result.trades.iloc[0]
    assert trade["side"] == "SHORT" and trade["size"] == -10
    commission = 10 * 102 * 0.001 + 10 * 90 * 0.001
    assert trade["pnl"] == pytest.approx(10 * (102 - 90) - commission)
    assert result.metrics["commissions"] == pytest.approx(commission)


def test_reversal_closes_fifo_and_opens_new_lot():
    result, _ = run({0: buy(10), 1: buy(5), 2: sell(25)})
    trades = result.trades
    assert trades["size"].tolist()[:2] == [10, 5]  # FIFO: first lot closes first
    assert trades["entry_price"].tolist()[:2] == [102.0, 103.0]
    assert trades["exit_bar"].tolist()[:2] == [3, 3]
    # the opened short (10) is closed at the last close by the end-of-data rule
    assert trades["size"].tolist()[2] == -10 and trades["exit_price"].tolist()[2] == 108.0
    assert any("closed at the last close" in n for n in result.notes)


def test_pending_order_at_end_expires():
    result, _ = run({6: buy(1)})
    assert result.orders[0].status is OrderStatus.EXPIRED
    assert any("expired" in n for n in result.notes)


def test_equity_is_cash_plus_marked_position():
    result, _ = run({0: buy(10), 4: sell(10)})
    # bar 2: cash 100000 - 1020, position 10 @ close 105
    assert result.equity[2] == pytest.approx(100_000 - 1020 + 1050)
    assert result.equity[-1] == pytest.approx(100_000 + 10 * (92 - 102))  # sold at bar 5 open


# --- Indian charges on every fill, lots, ticks and product rules (issue 11) -----------------------
#
# Expected charges are worked by hand from the published rates, not read from our output:
# - brokerage, Dhan: intraday and futures min(Rs 20, 0.03 %), delivery Rs 0, DP Rs 12.50 per ISIN per
#   day on delivery sells (https://dhan.co/pricing/);
# - STT: intraday 0.025 % on the sell, delivery 0.1 % both sides, futures 0.02 % on the sell to
#   2026-03-31 and 0.05 % from 2026-04-01 (Finance Act 2026, https://cleartax.in/s/securities-transaction-tax-stt);
# - NSE transaction charge from 2024-10-01: cash 0.00297 %, futures 0.00173 % (NSE circular of
#   2024-09-27, https://www.ndtvprofit.com/markets/nse-revises-transaction-charges-for-cash-and-fo-segments);
# - NSE IPFT Rs 10 per crore = 0.0001 % (https://zerodha.com/charges/); SEBI fee Rs 10 per crore = 0.0001 %;
# - stamp duty on the buy: intraday 0.003 %, delivery 0.015 %, futures 0.002 % (Indian Stamp Act as
#   amended in 2019, https://zerodha.com/z-connect/general/stamp-duty-on-trading);
# - GST 18 % of the rounded brokerage + exchange + IPFT + SEBI + DP.
# Each charge of each fill is rounded half-up to the paisa; the prices below avoid half-paisa ties.

MINUTE_NS = 60 * 10**9
KINDS = ("brokerage", "stt", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst")
INFY = Instrument("NSE:INFY")
NIFTY_FUT = Instrument("NSE:NIFTY 28 APR 2026 FUT", exchange="NSE", kind="FUT", symbol="NIFTY",
                       expiry=date(2026, 4, 28), lot_size=75, tick_size=0.1, freeze_quantity=1800)


def _open_at(day: date, minute: int = 0) -> int:
    return ist_midnight_ns(day) + (9 * 60 + 15 + minute) * MINUTE_NS


def run_on(inst: Instrument, rows, start: int, script, *, step=MINUTE_NS, charges="dhan", product="INTRADAY",
           fill_model=None, capital=10_000_000.0):
    cost = IndianCharges(charges) if charges else PercentCommission(0.0)
    bt = Backtest({inst.hrn: make_bars(rows, inst=inst.hrn, start=start, step=step)}, initial_capital=capital,
                  fill_model=fill_model, cost_model=cost, instruments={inst.hrn: inst}, default_product=product)
    strat = Scripted(script)
    bt.add_strategy(strat, [inst.hrn], "s")
    return bt.run(), strat


def kinds(fill) -> dict:
    return {k: getattr(fill, k) for k in KINDS}


def test_an_intraday_equity_fill_carries_each_charge_worked_from_the_published_rates():
    rows = [(1234.0, 1235, 1233, 1234.5), (1234.5, 1236, 1234, 1235.0), (1250.0, 1251, 1249, 1250.5),
            (1250.5, 1251, 1250, 1250.5)]
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: buy(10), 1: sell(10)})
    bought, sold = result.fills
    # buy 10 @ 1234.5 = 12,345: brokerage 3.7035 -> 3.70, exchange 0.3666 -> 0.37, IPFT and SEBI
    # 0.0123 -> 0.01 each, stamp 0.003 % = 0.37035 -> 0.37, no STT on an intraday buy,
    # GST 18 % of 4.09 = 0.7362 -> 0.74
    assert kinds(bought) == {"brokerage": 3.70, "stt": 0.0, "exchange_txn": 0.37, "ipft": 0.01, "sebi": 0.01,
                             "stamp": 0.37, "dp": 0.0, "gst": 0.74}
    assert bought.commission == pytest.approx(5.20) and bought.charges == bought.commission
    # sell 10 @ 1250.0 = 12,500: brokerage 3.75, STT 0.025 % = 3.125 (a tie: half-up 3.13),
    # exchange 0.37125 -> 0.37, IPFT and SEBI 0.0125 -> 0.01, GST 18 % of 4.14 = 0.7452 -> 0.75
    assert kinds(sold) == {"brokerage": 3.75, "stt": 3.13, "exchange_txn": 0.37, "ipft": 0.01, "sebi": 0.01,
                           "stamp": 0.0, "dp": 0.0, "gst": 0.75}
    assert sold.commission == pytest.approx(8.02)
    assert not bought.estimated and not sold.estimated
    # the ledger deducts the total: cash = start - 12,345 + 12,500 - 5.20 - 8.02
    assert result.cash[-1] == pytest.approx(10_000_000 - 12_345 + 12_500 - 5.20 - 8.02)
    assert result.trades.iloc[0]["commission"] == pytest.approx(13.22)


@pytest.mark.parametrize(("first_day", "stt", "total"), [
    (date(2026, 3, 29), 345.02, 407.91),   # sold 2026-03-31: 0.02 % of 1,725,105 = 345.021
    (date(2026, 3, 30), 862.55, 925.44),   # sold 2026-04-01: 0.05 % = 862.5525
])
def test_a_futures_sell_pays_the_stt_of_its_date_on_either_side_of_2026_04_01(first_day, stt, total):
    rows = [(22950.0, 22960, 22940, 22950.0), (22950.1, 22990, 22940, 22990.0), (23001.4, 23010, 22990, 23000.0)]
    result, _ = run_on(NIFTY_FUT, rows, _open_at(first_day), {0: buy(75), 1: sell(75)}, step=DAY_NS,
                       product="MARGIN")
    bought, sold = result.fills
    # buy 75 @ 22950.1 = 1,721,257.50: brokerage min(20, 516.38) = 20, exchange 0.00173 % = 29.7778
    # -> 29.78, IPFT and SEBI 1.7213 -> 1.72, stamp 0.002 % = 34.4252 -> 34.43, GST 18 % of 53.22 = 9.58
    assert kinds(bought) == {"brokerage": 20.0, "stt": 0.0, "exchange_txn": 29.78, "ipft": 1.72, "sebi": 1.72,
                             "stamp": 34.43, "dp": 0.0, "gst": 9.58}
    # sell 75 @ 23001.4 = 1,725,105: brokerage 20, exchange 29.8443 -> 29.84, IPFT and SEBI 1.7251 -> 1.73,
    # GST 18 % of 53.30 = 9.594 -> 9.59, and the STT of the sell's date
    assert kinds(sold) == {"brokerage": 20.0, "stt": stt, "exchange_txn": 29.84, "ipft": 1.73, "sebi": 1.73,
                           "stamp": 0.0, "dp": 0.0, "gst": 9.59}
    assert sold.commission == pytest.approx(total)


def test_a_cnc_round_trip_on_one_day_is_charged_as_intraday():
    rows = [(1234.0, 1235, 1233, 1234.5), (1234.6, 1236, 1234, 1235.0), (1250.4, 1251, 1249, 1250.5),
            (1250.5, 1251, 1250, 1250.5)]
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: buy(10), 1: sell(10)}, product="CNC")
    bought, sold = result.fills
    # Over the day the taxes are intraday ones: STT 0.025 % of the sell 12,504 = 3.126 -> 3.13, stamp
    # 0.003 % of the buy 12,346 = 0.37038 -> 0.37, and no DP (no share left the account)
    assert bought.stt + sold.stt == pytest.approx(3.13)
    assert bought.stamp + sold.stamp == pytest.approx(0.37)
    assert bought.dp == sold.dp == 0.0
    # brokerage follows the product: Dhan charges nothing on CNC orders
    assert bought.brokerage == sold.brokerage == 0.0
    # exchange 0.00297 %: 0.3667 and 0.3714 -> 0.37 each; IPFT, SEBI 0.01 each; GST 18 % of 0.39 = 0.07 each
    assert (bought.exchange_txn, sold.exchange_txn, bought.gst, sold.gst) == (0.37, 0.37, 0.07, 0.07)
    assert bought.commission + sold.commission == pytest.approx(3.13 + 0.37 + 2 * (0.37 + 0.01 + 0.01 + 0.07))


def test_a_cnc_sell_on_a_later_day_pays_delivery_stt_stamp_and_dp():
    rows = [(1234.0, 1235, 1233, 1234.5), (1234.6, 1236, 1234, 1235.0), (1250.4, 1251, 1249, 1250.5)]
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 6)), {0: buy(10), 1: sell(10)}, step=DAY_NS,
                       product="CNC")
    bought, sold = result.fills
    # delivery: STT 0.1 % both sides (12.346 -> 12.35; 12.504 -> 12.50), stamp 0.015 % on the buy
    # (1.8519 -> 1.85), DP Rs 12.50 on the sell, GST 18 % of (0.37 + 0.01 + 0.01 + 12.50) = 2.3202 -> 2.32
    assert (bought.stt, bought.stamp, bought.dp) == (12.35, 1.85, 0.0)
    assert (sold.stt, sold.stamp, sold.dp, sold.gst) == (12.50, 0.0, 12.50, 2.32)


def test_a_flat_commission_rate_is_booked_as_brokerage():
    result, _ = run({0: buy(10)}, commission=0.001)
    fill = result.fills[0]
    assert fill.brokerage == fill.commission == pytest.approx(10 * 102 * 0.001)
    assert fill.stt == fill.gst == 0.0


def test_an_fno_quantity_off_the_lot_is_rejected_with_the_lot_size():
    rows = [(22950.0, 22960, 22940, 22950.0)] * 3
    result, _ = run_on(NIFTY_FUT, rows, _open_at(date(2026, 3, 30)), {0: buy(50), 1: buy(150)}, step=DAY_NS,
                       product="MARGIN")
    rejected, accepted = result.orders[:2]
    assert rejected.status is OrderStatus.REJECTED
    assert "not a whole number of lots of 75" in rejected.reason and "use a multiple of 75" in rejected.reason
    assert accepted.status is OrderStatus.FILLED and result.fills[0].quantity == 150


def test_a_limit_price_off_the_tick_is_rejected_with_the_tick_and_equity_takes_any_quantity():
    rows = [(1234.0, 1235, 1233, 1234.5)] * 3
    result, strat = run_on(INFY, rows, _open_at(date(2025, 1, 7)),
                           {0: buy(7, limit=1230.03), 1: buy(7, limit=1230.05)})
    off, on = result.orders[:2]
    assert off.status is OrderStatus.REJECTED
    assert "not on the tick of 0.05" in off.reason and "use 1230.00 or 1230.05" in off.reason
    assert on.status is not OrderStatus.REJECTED  # 7 shares: equity needs no lots


def test_round_to_tick_in_the_context_gives_a_price_the_exchange_takes():
    rows = [(1234.0, 1235, 1233, 1234.5)] * 3
    prices = {}

    def place(ctx, c):
        prices["buy"] = ctx.round_to_tick(c.instrument, 1230.03, "BUY")
        prices["sell"] = ctx.round_to_tick(c.instrument, 1230.03, OrderSide.SELL)
        return ctx.buy(c.instrument, 1, limit_price=prices["buy"])

    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: place})
    assert prices == {"buy": 1230.05, "sell": 1230.00}  # against the trader
    assert result.orders[0].status is not OrderStatus.REJECTED


def test_modifying_a_limit_off_the_tick_is_refused():
    rows = [(1234.0, 1235, 1233, 1234.5)] * 3
    state = {}

    def modify(ctx, c):
        with pytest.raises(ValueError, match="tick of 0.05"):
            ctx.modify_order(state["id"], price=1200.01)
        return True

    result, strat = run_on(INFY, rows, _open_at(date(2025, 1, 7)),
                           {0: lambda ctx, c: state.setdefault("id", ctx.buy(c.instrument, 1, limit_price=1200.0)),
                            1: modify})
    assert strat.results[1] is True and result.orders[0].limit_price == 1200.0


def test_a_cnc_sell_without_holdings_is_rejected_and_an_intraday_short_is_not():
    rows = [(1234.0, 1235, 1233, 1234.5)] * 4
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: buy(5), 1: sell(8)}, product="CNC")
    assert result.orders[1].status is OrderStatus.REJECTED
    assert "would sell 3 short" in result.orders[1].reason and "needs product INTRADAY" in result.orders[1].reason
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: sell(8)}, product="INTRADAY")
    assert result.orders[0].status is OrderStatus.FILLED


def test_an_fno_short_needs_a_margin_product():
    rows = [(22950.0, 22960, 22940, 22950.0)] * 3
    result, _ = run_on(NIFTY_FUT, rows, _open_at(date(2026, 3, 30)), {0: sell(75)}, step=DAY_NS, product="CNC")
    assert result.orders[0].status is OrderStatus.REJECTED and "needs product MARGIN" in result.orders[0].reason
    result, _ = run_on(NIFTY_FUT, rows, _open_at(date(2026, 3, 30)), {0: sell(75)}, step=DAY_NS, product="MARGIN")
    assert result.orders[0].status is OrderStatus.FILLED


def test_slippage_fills_are_rounded_to_the_band_tick_against_the_trader():
    rows = [(1234.0, 1235, 1233, 1234.5), (1234.5, 1236, 1234, 1235.0), (1250.0, 1251, 1249, 1250.5),
            (1250.5, 1251, 1250, 1250.5)]
    # 2025-05-06: the 1,000-5,000 band ticks at 0.10 (NSE, from 2025-04-15)
    result, _ = run_on(INFY, rows, _open_at(date(2025, 5, 6)), {0: buy(10), 1: sell(10)}, charges=None,
                       fill_model=Slippage(SlippageConfig(slippage_pct=0.001)))
    assert result.fills[0].price == 1235.8   # 1234.5 * 1.001 = 1235.7345 -> up
    assert result.fills[1].price == 1248.7   # 1250.0 * 0.999 = 1248.75 -> down


def test_a_fill_model_on_the_tick_is_not_rounded():
    assert FillModel.off_tick is False and NextOpen.off_tick is False and Slippage.off_tick is True


def test_an_order_refused_for_its_charges_leaves_no_trace_in_the_days_charges():
    # 10 @ 1234.6 = 12,346 fits the 12,355 of cash, but not with its 14.66 of delivery charges
    rows = [(1234.0, 1235, 1233, 1234.5), (1234.6, 1236, 1234, 1235.0), (1100.0, 1101, 1099, 1100.0),
            (1110.0, 1111, 1109, 1110.0), (1110.0, 1111, 1109, 1110.0)]
    result, _ = run_on(INFY, rows, _open_at(date(2025, 1, 7)), {0: buy(10), 1: buy(5), 2: sell(5)},
                       product="CNC", capital=12_355.0)
    assert result.orders[0].status is OrderStatus.REJECTED and "insufficient funds" in result.orders[0].reason
    bought, sold = result.fills
    # the sell squares the 5 bought at 1,100, not the refused order: over the day, intraday STT only
    # (0.025 % of 5 x 1,110 = 1.3875 -> 1.39)
    assert bought.stt + sold.stt == pytest.approx(1.39)


@pytest.mark.parametrize("b_first", [False, True], ids=["A-then-B", "B-then-A"])
def test_available_funds_count_shorts_in_other_instruments_at_their_close(b_first):
    # Without product rules a long blocks its value and a short blocks its value again (its sale
    # proceeds sit in cash): the funds check and available_margin() count both across instruments.
    # At the open of bar 2, where A's orders fill, B's last close is bar 1's 50 (its bar 2 closes at
    # 60 later), in whichever order the two were listed.
    a_rows = [(100, 100, 100, 100)] * 4
    b_rows = [(50, 50, 50, 50), (50, 50, 50, 50), (50, 60, 50, 60), (60, 60, 60, 60)]
    bars = {"NSE_EQ:A": make_bars(a_rows, "NSE_EQ:A"), "NSE_EQ:B": make_bars(b_rows, "NSE_EQ:B")}
    bt = Backtest(dict(reversed(bars.items())) if b_first else bars, initial_capital=10_000.0)
    seen = {}
    script = {
        0: lambda ctx, c: c.instrument == "NSE_EQ:B" and ctx.sell("NSE_EQ:B", 50),  # fills at 50 on bar 1
        1: lambda ctx, c: c.instrument == "NSE_EQ:A" and (ctx.buy("NSE_EQ:A", 80), ctx.buy("NSE_EQ:A", 70)),
        2: lambda ctx, c: seen.setdefault(c.instrument, bt.core.broker.available_margin()),
    }
    bt.add_strategy(Scripted(script), ["NSE_EQ:A", "NSE_EQ:B"], "s")
    result = bt.run()
    rejected, bought = result.orders[1:3]
    # cash 12,500 after the short; equity 12,500 - 2,500 = 10,000; the short blocks 2,500: 7,500 left
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.reason == "insufficient funds: needs 8,000.00, available 7,500.00"
    assert bought.status is OrderStatus.FILLED and bought.quantity == 70
    # bar 2: cash 5,500, A long 70 x 100 blocks 7,000, B short 50 marked at its close 60 blocks 3,000
    assert seen == {"NSE_EQ:A": pytest.approx(-500.0), "NSE_EQ:B": pytest.approx(-500.0)}  # 5,500 + 7,000 - 3,000 - 10,000
