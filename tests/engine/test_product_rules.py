"""Product rules in backtest and paper: the broker's INTRADAY square-off with its fee, margin instead
of the whole value, futures settled at expiry. Worked by hand from the published rates:

- square-off 15:20 IST at Dhan (https://dhan.freshdesk.com/support/solutions/articles/82000832236),
  fee Rs 20 + 18 % GST per order (Dhan pricing, May 2024 copy: https://investking.in/dhan-brokerage-charges-pricing-list);
- Dhan brokerage min(Rs 20, 0.03 %) (https://dhan.co/pricing/); intraday STT 0.025 % on the sell;
  NSE cash 0.00322 % and futures 0.00188 % from 2024-04-01 to 2024-09-30 (https://upstox.com/pricing/pro-plan/);
  IPFT and SEBI Rs 10 a crore each; futures STT 0.0125 % from 2023-04-01 to 2024-09-30
  (https://www.livemint.com/market/stock-market-news/stt-hike-on-f-o-trades-11679914014464.html);
- MIS margin 20 % (SEBI peak margin: at most 5x), futures 15 % of the contract value.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.instrument import Instrument
from algocli.domain.models import Interval, OrderStatus, Tick
from algocli.domain.session import ist_date
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.market.charges import IndianCharges
from algocli.market.products import ProductRules
from algocli.sandbox.replay import bar_ticks
from helpers import Scripted

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE:RELIANCE"
FUT = "NSE:RELIANCE 10 JUN 2024 FUT"
IST = 19_800_000_000_000


def _r(x: float) -> float:
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _bars(inst=INST, days=1):
    return load_csv(ROOT / "data" / "NSE_EQ_2885.csv", inst).slice(0, 375 * days)


def _tod(ns: int) -> str:
    m = (ns + IST) % 86_400_000_000_000 // 60_000_000_000
    return f"{m // 60:02d}:{m % 60:02d}"


def _bt(script, *, rules=True, capital=1_000_000, inst=INST, meta=None, product="INTRADAY", days=1):
    bt = Backtest({inst: _bars(inst, days)}, initial_capital=capital, fill_model=NextOpen(),
                  cost_model=IndianCharges("dhan"), instruments=meta, default_product=product,
                  rules=ProductRules.build("dhan") if rules else None)
    bt.add_strategy(Scripted(script), [inst], "s")
    return bt, bt.run()


def _squareoff_expected(price: float, qty: int = 10) -> dict:
    value = price * qty
    brokerage = _r(min(20.0, value * 0.0003))
    exchange, ipft, sebi = _r(value * 0.0000322), _r(value * 0.000001), _r(value * 0.000001)
    return {"brokerage": brokerage + 20.0, "stt": _r(value * 0.00025), "exchange_txn": exchange,
            "gst": _r(0.18 * (brokerage + exchange + ipft + sebi)) + 3.60}


def test_backtest_squares_off_intraday_at_1520_with_dhans_fee():
    bars = _bars()
    bt, result = _bt({2: lambda ctx, c: ctx.buy(INST, 10)})
    (fill,) = [f for f in result.fills if f.order_id in {o.order_id for o in result.orders if o.tag == "auto-squareoff"}]
    assert _tod(fill.ts) == "15:20" and fill.side.value == "SELL" and fill.quantity == 10
    k = [_tod(t) for t in bars.ts].index("15:20")
    assert fill.price == bars.open[k]  # the broker's market order at 15:20: that bar's open
    expected = _squareoff_expected(fill.price)
    assert {key: getattr(fill, key) for key in expected} == pytest.approx(expected, abs=1e-9)
    assert not any(o.tag == "end-of-data close" for o in result.orders)
    assert any("squared off by the broker" in n for n in bt.notes)


def test_no_product_rules_means_no_square_off():
    _, result = _bt({2: lambda ctx, c: ctx.buy(INST, 10)}, rules=False)
    assert [o.tag for o in result.orders] == [None, "end-of-data close"]


def test_an_intraday_order_that_opens_after_the_square_off_is_rejected():
    bars = _bars()
    late = [_tod(t) for t in bars.ts].index("15:21")
    _, result = _bt({late: lambda ctx, c: ctx.buy(INST, 10)})
    (order,) = result.orders
    assert order.status is OrderStatus.REJECTED and "after the 15:20 IST square-off" in order.reason


def test_on_25_minute_bars_an_order_decided_after_the_square_off_is_rejected():
    """The 15:05 bar closes at 15:30: the broker squared the position off at 15:20 inside it, and an
    order the strategy makes when it closes would open a new INTRADAY position after the square-off,
    to be carried overnight. One decided at 15:05 (the 14:40 bar's close) is taken."""
    from algocli.data.csv_feed import resample

    bars = resample(_bars(days=2), Interval.MINUTE_25)
    last = [_tod(t) for t in bars.ts].index("15:05")
    bt = Backtest({INST: bars}, initial_capital=1_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  interval=Interval.MINUTE_25, rules=ProductRules.build("dhan"))
    bt.add_strategy(Scripted({last - 1: lambda ctx, c: ctx.buy(INST, 10),
                              last: lambda ctx, c: ctx.buy(INST, 10)}), [INST], "s")
    result = bt.run()
    entry, off, late = result.orders
    assert entry.status is OrderStatus.FILLED and off.tag == "auto-squareoff" and off.status is OrderStatus.FILLED
    assert late.status is OrderStatus.REJECTED and "after the 15:20 IST square-off" in late.reason
    assert {ist_date(f.ts) for f in result.fills} == {ist_date(int(bars.ts[0]))}  # nothing held into day 2


def test_daily_bars_square_off_intraday_at_the_days_close():
    from algocli.data.csv_feed import resample

    bars = resample(_bars(days=3), Interval.DAY_1)
    bt = Backtest({INST: bars}, initial_capital=1_000_000, cost_model=IndianCharges("dhan"),
                  rules=ProductRules.build("dhan"))
    bt.add_strategy(Scripted({0: lambda ctx, c: ctx.buy(INST, 10)}), [INST], "s")
    result = bt.run()
    buy, off = result.fills[:2]
    assert ist_date(buy.ts) == ist_date(off.ts) and off.price == bars.close[1] and buy.price == bars.open[1]


def test_intraday_margin_is_20_percent_and_a_short_account_is_rejected_with_the_figures():
    bars = _bars()
    price = bars.open[3]
    _, ok = _bt({2: lambda ctx, c: ctx.buy(INST, 10)}, capital=10_000)  # ~29,000 notional, 20 % = ~5,800
    assert ok.orders[0].status is OrderStatus.FILLED
    _, no_rules = _bt({2: lambda ctx, c: ctx.buy(INST, 10)}, capital=10_000, rules=False)
    assert no_rules.orders[0].status is OrderStatus.REJECTED and "insufficient funds" in no_rules.orders[0].reason
    _, big = _bt({2: lambda ctx, c: ctx.buy(INST, 20)}, capital=10_000)
    reason = big.orders[0].reason
    assert big.orders[0].status is OrderStatus.REJECTED
    assert f"needs {0.2 * 20 * price:,.2f}"[:9] in reason or "insufficient margin" in reason
    assert f"20% of {20 * price:,.2f} notional (INTRADAY NSE:RELIANCE)" in reason
    assert "available margin 10,000.00" in reason


def test_available_margin_series_is_equity_minus_the_blocked_margin():
    bt, result = _bt({2: lambda ctx, c: ctx.buy(INST, 10)}, capital=100_000)
    bars = _bars()
    k = 100  # holding 10 at bar 100's close
    assert bt.available_margin[k] == pytest.approx(result.equity[k] - 0.2 * 10 * bars.close[k], abs=1e-6)
    assert bt.available_margin[-1] == pytest.approx(result.equity[-1])


def _fut_meta(expiry=date(2024, 6, 10)):
    return {FUT: Instrument(FUT, exchange="NSE", kind="FUT", symbol="RELIANCE", expiry=expiry, lot_size=250,
                            tick_size=0.05)}


def test_futures_margin_is_15_percent_of_the_contract_value():
    bars = _bars(FUT)
    need = 0.15 * 250 * bars.open[3]
    _, short = _bt({2: lambda ctx, c: ctx.buy(FUT, 250)}, capital=need * 0.9, inst=FUT, meta=_fut_meta(),
                   product="MARGIN")
    assert short.orders[0].status is OrderStatus.REJECTED
    assert f"15% of {250 * bars.open[3]:,.2f} notional (MARGIN {FUT})" in short.orders[0].reason
    _, ok = _bt({2: lambda ctx, c: ctx.buy(FUT, 250)}, capital=need * 1.1, inst=FUT, meta=_fut_meta(),
                product="MARGIN")
    assert ok.orders[0].status is OrderStatus.FILLED


def test_a_future_is_settled_at_the_expiry_days_close_with_its_charges():
    bars = _bars(FUT, days=2)
    bt, result = _bt({2: lambda ctx, c: ctx.buy(FUT, 250)}, inst=FUT, meta=_fut_meta(), product="MARGIN", days=2,
                     rules=False)
    expiry = [o for o in result.orders if o.tag == "expiry"]
    assert len(expiry) == 1 and not any(o.tag == "end-of-data close" for o in result.orders)
    fill = [f for f in result.fills if f.order_id == expiry[0].order_id][0]
    last = max(i for i, t in enumerate(bars.ts) if ist_date(int(t)) == date(2024, 6, 10))
    assert fill.price == bars.close[last]
    value = 250 * fill.price
    brokerage, exchange = 20.0, _r(value * 0.0000188)
    ipft = sebi = _r(value * 0.000001)
    assert (fill.brokerage, fill.stt, fill.exchange_txn, fill.stamp) == pytest.approx(
        (brokerage, _r(value * 0.000125), exchange, 0.0), abs=1e-9)
    assert fill.gst == pytest.approx(_r(0.18 * (brokerage + exchange + ipft + sebi)), abs=1e-9)


def test_paper_squares_off_at_the_first_tick_from_1520_like_the_backtest(tmp_path):
    bars = _bars()
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=IndianCharges("dhan"), journal_path=tmp_path / "j.jsonl", name="t",
                         default_product="INTRADAY", rules=ProductRules.build("dhan"))
    engine.add_strategy(Scripted({2: lambda ctx, c: ctx.buy(INST, 10)}), [INST], "s")
    engine.start()
    path = bar_ticks(bars)
    for i in range(len(path)):
        tick = path.tick(i)
        engine.on_tick(Tick(INST, tick.ts, tick.ltp, tick.ltq, tick.volume))
    assert engine.error is None
    (order,) = [o for o in engine.broker.orders if o.tag == "auto-squareoff"]
    (fill,) = [f for f in engine.broker.fills if f.order_id == order.order_id]
    _, result = _bt({2: lambda ctx, c: ctx.buy(INST, 10)})
    (bt_fill,) = [f for f in result.fills if f.order_id.endswith("000002")]
    assert _tod(fill.ts) == "15:20" and fill.price == bt_fill.price
    got = (fill.brokerage, fill.stt, fill.exchange_txn, fill.gst, fill.commission)
    assert got == (bt_fill.brokerage, bt_fill.stt, bt_fill.exchange_txn, bt_fill.gst, bt_fill.commission)
    assert engine.broker.available_margin() == pytest.approx(engine.core.equity())
