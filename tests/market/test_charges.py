"""Worked examples of Indian charges per fill, computed by hand from the published rates.

Every expected value below is written out from the rate's public source (named in each test),
never from the calculator's output: turnover x rate, rounded half-up to paise, and GST = 18 % of
the rounded brokerage + exchange + IPFT + SEBI + DP.

Sources used throughout:
- [STT-2026] https://cleartax.in/s/securities-transaction-tax-stt (futures 0.05 %, options 0.15 %
  from 2026-04-01)
- [STT-2024] https://upstox.com/news/market-news/financial-regulations/stt-tax-on-futures-and-options-set-to-increase-from-october-1-here-s-how-it-will-affect-f-and-o-traders/article-118871
  (futures 0.0125 -> 0.02 %, options 0.0625 -> 0.1 % on 2024-10-01)
- [STT-HIST] https://tradingqna.com/t/sebi-and-stt-what-is-the-history-around-stt/185139/3 (delivery
  0.1 % both sides, intraday 0.025 % sell, exercise 0.125 %, CTT futures 0.01 %)
- [EXCH-2024] https://www.ndtvprofit.com/markets/nse-revises-cash-fno-market-fees-october-1 (NSE from
  2024-10-01: cash 0.00297 %, futures 0.00173 %, options 0.03503 %, currency futures 0.00035 %)
- [EXCH-OLD] https://upstox.com/pricing/pro-plan/ (NSE 2024-04-01 to 2024-09-30: cash 0.00322 %,
  options 0.0495 %)
- [BSE] https://m.rediff.com/news/commentary/2024/sep/27/nse-bse-revise-transaction-charges-effective-from-oct-1/df33a938d5b647658155308e62397387
  (SENSEX/BANKEX options 0.0325 %, other options 0.005 %, futures nil); BSE cash 0.00375 % and Dhan's
  brokerage, DP and GST base: https://stockandcommodity.com/?p=1714 (copy of https://dhan.co/pricing/)
- [IPFT] https://support.infinn.in/portal/en/kb/articles/what-are-nse-investor-protection-fund-trust-ipft-charges
  (NSE only: cash and futures 0.0001 %, options 0.0005 %)
- [SEBI] https://taxguru.in/sebi/sebi-payment-of-fees-amendment-regulations-2019.html (0.0001 %)
- [STAMP] https://nseindia.com/invest/first-time-investor-stamp-duty-charges-taxes (buyer: delivery
  0.015 %, intraday 0.003 %, futures 0.002 %, options 0.003 %, currency 0.0001 %)
- [UPSTOX] https://upstx.gustya.com/brokerage-charges (intraday min(20, 0.1 %)) and
  https://grmbulls.com/upstox-brokerage-account-opening-intraday-futures-option-equity-currency-and-commodity-charges
  (delivery min(20, 2.5 %), DP 18.50 per scrip)
- [MCX] https://www.businessupturn.com/finance/stock-market/nse-revises-transaction-charges-for-cash-and-fo-market-effective-october-1
  (MCX futures 0.0021 % from 2024-10-01)
"""

from __future__ import annotations

from datetime import date

import pytest

from algocli.broker.costs import CostContext
from algocli.domain.instrument import Instrument
from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.market.charges import FIELDS, IndianCharges
from algocli.registry import lacks

INFY = Instrument("NSE:INFY")
TCS = Instrument("NSE:TCS")
ITC_BSE = Instrument("BSE:ITC")
NIFTY_FUT = Instrument("NSE:NIFTY 28 APR 2026 FUT", exchange="NSE", kind="FUT", symbol="NIFTY", lot_size=65,
                       expiry=date(2026, 4, 28), dhan_instrument="FUTIDX")
NIFTY_CE = Instrument("NSE:NIFTY 03 OCT 2024 25000 CE", exchange="NSE", kind="CE", symbol="NIFTY", lot_size=25,
                      strike=25000.0, expiry=date(2024, 10, 3))
SENSEX_CE = Instrument("BSE:SENSEX 07 FEB 2025 78000 CE", exchange="BSE", kind="CE", symbol="SENSEX", lot_size=20,
                       strike=78000.0)
RELIANCE_CE_BSE = Instrument("BSE:RELIANCE 27 FEB 2025 1300 CE", exchange="BSE", kind="CE", symbol="RELIANCE",
                             lot_size=500, strike=1300.0)
SENSEX_FUT = Instrument("BSE:SENSEX 27 MAY 2025 FUT", exchange="BSE", kind="FUT", symbol="SENSEX", lot_size=20)
USDINR = Instrument("NSE:USDINR 29 JAN 2025 FUT", exchange="NSE", kind="CUR", symbol="USDINR", lot_size=1000)
CRUDE = Instrument("MCX:CRUDEOIL 19 FEB 2025 FUT", exchange="MCX", kind="FUT", symbol="CRUDEOIL", lot_size=100)


def _ts(day: str, hhmm: str = "10:00") -> int:
    hour, minute = map(int, hhmm.split(":"))
    return ist_midnight_ns(date.fromisoformat(day)) + (hour * 60 + minute) * MINUTE_NS


def fill(model, inst, product, buy, qty, price, day, hhmm="10:00"):
    return model.breakdown(CostContext(inst, product, buy, qty, price, _ts(day, hhmm)))


def check(b, **expected):
    """Every field as expected (absent = 0) and the total is the sum of the expected parts."""
    got = {f: getattr(b, f) for f in FIELDS}
    want = {f: expected.get(f, 0.0) for f in FIELDS}
    assert got == pytest.approx(want, abs=1e-9)
    assert b.total == pytest.approx(sum(want.values()), abs=1e-9)


def test_nse_equity_intraday_long_with_dhan() -> None:
    """Dhan intraday min(20, 0.03 %) [dhan.co/pricing]; STT 0.025 % sell [STT-HIST]; 0.00297 % [EXCH-2024]."""
    m = IndianCharges("dhan")
    # buy 100 @ 1,000 = 1,00,000: brokerage min(20, 30.00) = 20; exch 100000 x 0.00297 % = 2.97;
    # IPFT 0.0001 % = 0.10; SEBI 0.0001 % = 0.10; stamp 0.003 % = 3.00; GST 0.18 x 23.17 = 4.1706 -> 4.17
    check(fill(m, INFY, "INTRADAY", True, 100, 1000.0, "2025-01-15"),
          brokerage=20.0, exchange_txn=2.97, ipft=0.10, sebi=0.10, stamp=3.00, gst=4.17)
    # sell 100 @ 1,010 = 1,01,000: STT 0.025 % = 25.25; exch 2.9997 -> 3.00; IPFT 0.101 -> 0.10;
    # SEBI 0.10; GST 0.18 x (20 + 3.00 + 0.10 + 0.10) = 4.176 -> 4.18
    check(fill(m, INFY, "INTRADAY", False, 100, 1010.0, "2025-01-15", "14:00"),
          brokerage=20.0, stt=25.25, exchange_txn=3.00, ipft=0.10, sebi=0.10, gst=4.18)


def test_nse_equity_intraday_short_with_upstox() -> None:
    """Upstox intraday min(20, 0.1 %) [UPSTOX]; a short pays STT on its opening sell [STT-HIST]."""
    m = IndianCharges("upstox")
    # sell 50 @ 800 = 40,000: brokerage min(20, 40) = 20; STT 0.025 % = 10.00; exch 1.188 -> 1.19;
    # IPFT 0.04; SEBI 0.04; GST 0.18 x (20 + 1.19 + 0.04 + 0.04) = 3.8286 -> 3.83
    check(fill(m, INFY, "INTRADAY", False, 50, 800.0, "2025-07-01"),
          brokerage=20.0, stt=10.00, exchange_txn=1.19, ipft=0.04, sebi=0.04, gst=3.83)
    # buy 50 @ 790 = 39,500: exch 1.17315 -> 1.17; IPFT 0.0395 -> 0.04; SEBI 0.04;
    # stamp 0.003 % = 1.185 -> 1.19 (half-up); GST 0.18 x 21.25 = 3.825 -> 3.83
    check(fill(m, INFY, "INTRADAY", True, 50, 790.0, "2025-07-01", "15:00"),
          brokerage=20.0, exchange_txn=1.17, ipft=0.04, sebi=0.04, stamp=1.19, gst=3.83)


def test_brokerage_below_the_cap_is_the_percentage() -> None:
    """Dhan min(20, 0.03 %) [dhan.co/pricing]: 10 @ 100 = 1,000 -> brokerage 0.30."""
    b = fill(IndianCharges("dhan"), INFY, "INTRADAY", True, 10, 100.0, "2025-01-15")
    # exch 0.0297 -> 0.03; IPFT 0.001 -> 0.00; SEBI 0.00; stamp 0.03; GST 0.18 x 0.33 = 0.0594 -> 0.06
    check(b, brokerage=0.30, exchange_txn=0.03, stamp=0.03, gst=0.06)


def test_nse_delivery_across_days_pays_delivery_stt_stamp_and_dp() -> None:
    """Delivery STT 0.1 % both sides [STT-HIST], stamp 0.015 % [STAMP], Dhan DP 12.50 + GST [dhan.co/pricing]."""
    m = IndianCharges("dhan")
    # buy 10 @ 2,500 = 25,000 (CNC): brokerage 0; STT 25.00; exch 0.7425 -> 0.74; IPFT 0.025 -> 0.03;
    # SEBI 0.03; stamp 3.75; GST 0.18 x (0.74 + 0.03 + 0.03) = 0.144 -> 0.14
    check(fill(m, INFY, "CNC", True, 10, 2500.0, "2025-03-03"),
          stt=25.00, exchange_txn=0.74, ipft=0.03, sebi=0.03, stamp=3.75, gst=0.14)
    # a week later, sell 10 @ 2,600 = 26,000: STT 26.00; exch 0.7722 -> 0.77; IPFT 0.03; SEBI 0.03;
    # DP 12.50; GST 0.18 x (0.77 + 0.03 + 0.03 + 12.50) = 2.3994 -> 2.40
    check(fill(m, INFY, "CNC", False, 10, 2600.0, "2025-03-10"),
          stt=26.00, exchange_txn=0.77, ipft=0.03, sebi=0.03, dp=12.50, gst=2.40)


def test_cnc_buy_and_sell_on_the_same_day_is_charged_as_intraday() -> None:
    """What settles decides: a same-day CNC round trip pays intraday STT and stamp over the day."""
    m = IndianCharges("dhan")
    buy = fill(m, INFY, "CNC", True, 10, 2500.0, "2025-03-03")
    # the buy cannot know yet: delivery STT 25.00 and stamp 3.75 (as in the delivery test)
    check(buy, stt=25.00, exchange_txn=0.74, ipft=0.03, sebi=0.03, stamp=3.75, gst=0.14)
    sell = fill(m, INFY, "CNC", False, 10, 2510.0, "2025-03-03", "14:00")
    # sell 10 @ 2,510 = 25,100 is intraday: its STT 0.025 % = 6.275 -> 6.28, and the buy's delivery STT
    # is given back: -25.00, so stt = 6.28 - 25.00 = -18.72. Stamp: the buy's 3.75 becomes intraday
    # 25,000 x 0.003 % = 0.75: -3.75 + 0.75 = -3.00. No DP (nothing leaves the demat account).
    # exch 0.745470 -> 0.75; IPFT 0.0251 -> 0.03; SEBI 0.03; GST 0.18 x 0.81 = 0.1458 -> 0.15
    check(sell, stt=-18.72, exchange_txn=0.75, ipft=0.03, sebi=0.03, stamp=-3.00, gst=0.15)
    # the day equals intraday treatment: buy 0.74+0.03+0.03+0.75 stamp+0.14 GST = 1.69;
    # sell 6.28+0.75+0.03+0.03+0.15 = 7.24; together 8.93
    assert buy.total + sell.total == pytest.approx(8.93, abs=1e-9)
    intraday = IndianCharges("dhan")
    buy_mis = fill(intraday, INFY, "INTRADAY", True, 10, 2500.0, "2025-03-03")
    sell_mis = fill(intraday, INFY, "INTRADAY", False, 10, 2510.0, "2025-03-03", "14:00")
    # the same statutory charges as an INTRADAY order's (brokerage follows the product: 0 for CNC)
    assert (buy.stt + sell.stt, buy.stamp + sell.stamp) == pytest.approx((sell_mis.stt, buy_mis.stamp))


def test_dp_once_per_instrument_per_day_and_given_back_when_bought_back() -> None:
    """DP 12.50 + GST per ISIN per day on delivery sells only [dhan.co/pricing]."""
    m = IndianCharges("dhan")
    first = fill(m, INFY, "CNC", False, 5, 1000.0, "2025-03-10")
    second = fill(m, INFY, "CNC", False, 5, 1000.0, "2025-03-10", "11:00")
    other = fill(m, TCS, "CNC", False, 1, 4000.0, "2025-03-10", "11:30")
    assert (first.dp, second.dp, other.dp) == (12.50, 0.0, 12.50)
    # the INFY sells of the day (10 shares) are all bought back the same day: nothing leaves the
    # account, so DP is given back and the sells' delivery STT (5,000 x 0.1 % = 5.00 each) becomes
    # intraday (5,000 x 0.025 % = 1.25 each): -5.00 + 1.25 twice = -7.50; the buy's own STT is 0
    back = fill(m, INFY, "CNC", True, 10, 1000.0, "2025-03-10", "14:00")
    assert back.dp == -12.50
    assert back.stt == pytest.approx(-7.50)
    # next day, a new delivery sell of INFY pays DP again
    assert fill(m, INFY, "CNC", False, 1, 1000.0, "2025-03-11").dp == 12.50


def test_futures_stt_on_both_sides_of_2026_04_01() -> None:
    """Futures STT 0.02 % to 2026-03-31 [STT-2024], 0.05 % from 2026-04-01 [STT-2026]; exch 0.00173 % [EXCH-2024]."""
    m = IndianCharges("dhan")
    # buy 65 @ 22,000 = 14,30,000 on 2026-03-27: brokerage min(20, 429) = 20; no STT on a buy;
    # exch 24.739 -> 24.74; IPFT 1.43; SEBI 1.43; stamp 0.002 % = 28.60; GST 0.18 x 47.60 = 8.568 -> 8.57
    check(fill(m, NIFTY_FUT, "MARGIN", True, 65, 22000.0, "2026-03-27"),
          brokerage=20.0, exchange_txn=24.74, ipft=1.43, sebi=1.43, stamp=28.60, gst=8.57)
    # sell 65 @ 22,100 = 14,36,500 on 2026-04-01: STT 0.05 % = 718.25; exch 24.85145 -> 24.85;
    # IPFT 1.4365 -> 1.44; SEBI 1.44; GST 0.18 x (20 + 24.85 + 1.44 + 1.44) = 8.5914 -> 8.59
    check(fill(m, NIFTY_FUT, "MARGIN", False, 65, 22100.0, "2026-04-01"),
          brokerage=20.0, stt=718.25, exchange_txn=24.85, ipft=1.44, sebi=1.44, gst=8.59)
    # the same sell on 2026-03-30 (the last trading day before; 03-31 is a holiday): 0.02 % = 287.30
    assert fill(m, NIFTY_FUT, "MARGIN", False, 65, 22100.0, "2026-03-30").stt == 287.30


def test_option_short_on_both_sides_of_2024_10_01() -> None:
    """Options STT 0.0625 % -> 0.1 % [STT-2024]; NSE options 0.0495 % [EXCH-OLD] -> 0.03503 % [EXCH-2024]."""
    m = IndianCharges("dhan")
    # sell 25 @ 100 = 2,500 premium on 2024-09-30: Dhan options flat 20; STT 0.0625 % = 1.5625 -> 1.56;
    # exch 0.0495 % = 1.2375 -> 1.24; IPFT 0.0005 % = 0.0125 -> 0.01; SEBI 0.0025 -> 0.00;
    # GST 0.18 x (20 + 1.24 + 0.01) = 3.825 -> 3.83
    check(fill(m, NIFTY_CE, "MARGIN", False, 25, 100.0, "2024-09-30"),
          brokerage=20.0, stt=1.56, exchange_txn=1.24, ipft=0.01, gst=3.83)
    # the same sell on 2024-10-01: STT 0.1 % = 2.50; exch 0.03503 % = 0.87575 -> 0.88; IPFT 0.01;
    # GST 0.18 x 20.89 = 3.7602 -> 3.76
    check(fill(m, NIFTY_CE, "MARGIN", False, 25, 100.0, "2024-10-01"),
          brokerage=20.0, stt=2.50, exchange_txn=0.88, ipft=0.01, gst=3.76)
    # buy to cover 25 @ 80 = 2,000 on 2024-10-03: no STT on a buy; stamp 0.003 % = 0.06;
    # exch 0.7006 -> 0.70; IPFT 0.01; SEBI 0.002 -> 0.00; GST 0.18 x 20.71 = 3.7278 -> 3.73
    check(fill(m, NIFTY_CE, "MARGIN", True, 25, 80.0, "2024-10-03"),
          brokerage=20.0, exchange_txn=0.70, ipft=0.01, stamp=0.06, gst=3.73)


def test_option_sell_stt_on_both_sides_of_2026_04_01() -> None:
    """Options STT 0.1 % to 2026-03-31 [STT-2024], 0.15 % from 2026-04-01 [STT-2026]."""
    m = IndianCharges("dhan")
    # sell 65 @ 150 = 9,750 premium on 2026-04-06: STT 0.15 % = 14.625 -> 14.63; exch 0.03503 % =
    # 3.415425 -> 3.42; IPFT 0.04875 -> 0.05; SEBI 0.00975 -> 0.01; GST 0.18 x 23.48 = 4.2264 -> 4.23
    check(fill(m, NIFTY_CE, "MARGIN", False, 65, 150.0, "2026-04-06"),
          brokerage=20.0, stt=14.63, exchange_txn=3.42, ipft=0.05, sebi=0.01, gst=4.23)
    # on 2026-03-30: 0.1 % = 9.75
    assert fill(m, NIFTY_CE, "MARGIN", False, 65, 150.0, "2026-03-30").stt == 9.75


def test_nse_cash_exchange_charge_on_both_sides_of_2024_10_01() -> None:
    """NSE cash 0.00322 % to 2024-09-30 [EXCH-OLD], 0.00297 % from 2024-10-01 [EXCH-2024]."""
    m = IndianCharges("dhan")
    # intraday buy 100 @ 1,000 = 1,00,000 on 2024-09-30: exch 3.22; GST 0.18 x (20 + 3.22 + 0.10 + 0.10)
    # = 4.2156 -> 4.22
    check(fill(m, INFY, "INTRADAY", True, 100, 1000.0, "2024-09-30"),
          brokerage=20.0, exchange_txn=3.22, ipft=0.10, sebi=0.10, stamp=3.00, gst=4.22)
    assert fill(m, INFY, "INTRADAY", True, 100, 1000.0, "2024-10-01").exchange_txn == 2.97


def test_bse_delivery_with_upstox_has_no_ipft() -> None:
    """BSE cash 0.00375 % [BSE]; IPFT is NSE's only [IPFT]; Upstox delivery min(20, 2.5 %), DP 18.50 [UPSTOX]."""
    m = IndianCharges("upstox")
    # buy 20 @ 450 = 9,000: brokerage min(20, 225) = 20; STT 9.00; exch 0.3375 -> 0.34; SEBI 0.009 -> 0.01;
    # stamp 0.015 % = 1.35; GST 0.18 x (20 + 0.34 + 0.01) = 3.663 -> 3.66
    check(fill(m, ITC_BSE, "CNC", True, 20, 450.0, "2025-06-02"),
          brokerage=20.0, stt=9.00, exchange_txn=0.34, sebi=0.01, stamp=1.35, gst=3.66)
    # sell 20 @ 470 = 9,400 a week later: STT 9.40; exch 0.3525 -> 0.35; SEBI 0.0094 -> 0.01; DP 18.50;
    # GST 0.18 x (20 + 0.35 + 0.01 + 18.50) = 6.9948 -> 6.99
    check(fill(m, ITC_BSE, "CNC", False, 20, 470.0, "2025-06-09"),
          brokerage=20.0, stt=9.40, exchange_txn=0.35, sebi=0.01, dp=18.50, gst=6.99)


def test_bse_options_sensex_and_stock_options_pay_different_exchange_rates() -> None:
    """BSE SENSEX/BANKEX options 0.0325 %, stock options 0.005 % [BSE]; stamp 0.003 % [STAMP]."""
    m = IndianCharges("dhan")
    # buy 20 @ 200 = 4,000 SENSEX CE: exch 0.0325 % = 1.30; SEBI 0.004 -> 0.00; stamp 0.12;
    # GST 0.18 x 21.30 = 3.834 -> 3.83
    check(fill(m, SENSEX_CE, "MARGIN", True, 20, 200.0, "2025-02-04"),
          brokerage=20.0, exchange_txn=1.30, stamp=0.12, gst=3.83)
    # buy 500 @ 20 = 10,000 RELIANCE CE on BSE: exch 0.005 % = 0.50; SEBI 0.01; stamp 0.30;
    # GST 0.18 x 20.51 = 3.6918 -> 3.69
    check(fill(m, RELIANCE_CE_BSE, "MARGIN", True, 500, 20.0, "2025-02-04"),
          brokerage=20.0, exchange_txn=0.50, sebi=0.01, stamp=0.30, gst=3.69)


def test_bse_futures_pay_no_exchange_charge() -> None:
    """BSE index and stock futures: no transaction fee [BSE]; futures STT 0.02 % [STT-2024]."""
    # sell 20 @ 80,000 = 16,00,000: brokerage min(20, 480) = 20; STT 320.00; SEBI 1.60;
    # GST 0.18 x 21.60 = 3.888 -> 3.89
    check(fill(IndianCharges("dhan"), SENSEX_FUT, "MARGIN", False, 20, 80000.0, "2025-05-06"),
          brokerage=20.0, stt=320.00, sebi=1.60, gst=3.89)


def test_nse_currency_future() -> None:
    """No STT on currency [STT-HIST]; NSE 0.00035 % [EXCH-2024]; IPFT 0.00005 % [pricing/pro-plan]; stamp 0.0001 %."""
    # buy 1,000 @ 83.50 = 83,500: brokerage min(20, 25.05) = 20; exch 0.29225 -> 0.29; IPFT 0.04175 ->
    # 0.04; SEBI 0.0835 -> 0.08; stamp 0.0835 -> 0.08; GST 0.18 x 20.41 = 3.6738 -> 3.67
    check(fill(IndianCharges("dhan"), USDINR, "MARGIN", True, 1000, 83.50, "2025-01-10"),
          brokerage=20.0, exchange_txn=0.29, ipft=0.04, sebi=0.08, stamp=0.08, gst=3.67)


def test_mcx_commodity_future_pays_ctt() -> None:
    """CTT 0.01 % on the sell [STT-HIST]; MCX 0.0021 % [MCX]."""
    # sell 100 @ 6,000 = 6,00,000: brokerage min(20, 180) = 20; CTT 60.00; exch 12.60; SEBI 0.60;
    # GST 0.18 x 33.20 = 5.976 -> 5.98
    check(fill(IndianCharges("dhan"), CRUDE, "MARGIN", False, 100, 6000.0, "2025-01-20"),
          brokerage=20.0, stt=60.00, exchange_txn=12.60, sebi=0.60, gst=5.98)


def test_contract_note_rounding_attributes_the_days_rupee_totals_to_fills() -> None:
    """STT and stamp rounded per trade date to the rupee (Dhan: "Stamp Duty and STT are rounded off to
    the nearest rupee", https://stockandcommodity.com/?p=1714)."""
    m = IndianCharges("dhan", rounding="contract_note")
    day = "2025-01-15"
    a = fill(m, INFY, "INTRADAY", True, 100, 1000.0, day, "09:30")   # stamp 3.00 -> day 3.00 -> 3
    b = fill(m, INFY, "INTRADAY", False, 100, 1010.0, day, "10:00")  # STT 25.25 -> day 25.25 -> 25
    c = fill(m, TCS, "INTRADAY", True, 10, 333.0, day, "11:00")      # stamp 0.0999 -> day 3.0999 -> 3: +0
    d = fill(m, TCS, "INTRADAY", False, 10, 334.0, day, "12:00")     # STT 0.835 -> day 26.085 -> 26: +1
    assert (a.stamp, c.stamp) == (3.0, 0.0)
    assert (b.stt, d.stt) == (25.0, 1.0)
    # everything else is as in paise mode: b = 20 + 25 + 3.00 + 0.10 + 0.10 + 4.18
    check(b, brokerage=20.0, stt=25.0, exchange_txn=3.00, ipft=0.10, sebi=0.10, gst=4.18)
    # in paise mode the day's STT is 25.25 + 0.84 (0.835 half-up) = 26.09
    p = IndianCharges("dhan")
    fill(p, INFY, "INTRADAY", True, 100, 1000.0, day, "09:30")
    assert fill(p, INFY, "INTRADAY", False, 100, 1010.0, day).stt + fill(p, TCS, "INTRADAY", False, 10, 334.0,
                                                                         day).stt == pytest.approx(26.09)


def test_exercise_stt_on_both_sides_of_2026_04_01() -> None:
    """STT on an exercised option: 0.125 % [STT-HIST], 0.15 % from 2026-04-01 [STT-2026], of intrinsic value."""
    m = IndianCharges("dhan")
    # 65 units, settle 24,100 vs strike 24,000: intrinsic 100 x 65 = 6,500
    assert m.exercise_stt(NIFTY_CE, 65, 100.0, _ts("2026-03-24", "15:30")) == 8.13  # 8.125 -> 8.13
    assert m.exercise_stt(NIFTY_CE, 65, 100.0, _ts("2026-04-28", "15:30")) == 9.75
    assert m.exercise_stt(NIFTY_CE, 65, 0.0, _ts("2026-04-28", "15:30")) == 0.0


def test_auto_square_off_fee_with_gst() -> None:
    """Dhan 20 + GST (https://investking.in/dhan-brokerage-charges-pricing-list); Upstox 50 + GST = 59
    (https://help.upstox.com/support/solutions/articles/248671-what-are-auto-square-off-charges-, newer copy)."""
    dhan = IndianCharges("dhan").squareoff_fee(INFY, _ts("2025-01-15", "15:20"))
    upstox = IndianCharges("upstox").squareoff_fee(INFY, _ts("2025-01-15", "15:15"))
    assert (dhan.brokerage, dhan.gst, dhan.total) == (20.0, 3.60, 23.60)
    assert (upstox.brokerage, upstox.gst, upstox.total) == (50.0, 9.0, 59.0)


def test_it_is_a_cost_model_and_none_charges_nothing() -> None:
    m = IndianCharges("dhan")
    ctx = CostContext(INFY, "INTRADAY", True, 100, 1000.0, _ts("2025-01-15"))
    assert lacks("cost model", IndianCharges) == ""
    assert m.charges(ctx) == 30.34  # the total of the first worked example
    assert IndianCharges("none").charges(ctx) == 0.0
    assert m.breakdown(ctx).total == 30.34


def test_a_date_before_the_tables_is_reported_once_and_uses_the_earliest_rate() -> None:
    said: list[str] = []
    m = IndianCharges("dhan", on_warning=said.append)
    first = fill(m, NIFTY_FUT, "MARGIN", False, 65, 10000.0, "2019-05-02")
    fill(m, NIFTY_FUT, "MARGIN", False, 65, 10000.0, "2019-05-03")
    # futures STT 0.01 % (in force since 2013 [STT-HIST]): 6,50,000 x 0.01 % = 65.00
    assert first.stt == 65.00
    stt_warnings = [w for w in said if "no stt row for futures" in w]
    assert len(stt_warnings) == 1 and "2019-05-02" in stt_warnings[0]


def test_sebi_fee_is_rs_10_a_crore_from_2019_04_01_and_rs_5_from_june_2020_to_march_2021() -> None:
    """[SEBI]: Rs 10 per crore (0.0001 %) from 2019-04-01, halved for June 2020 - March 2021."""
    said: list[str] = []
    m = IndianCharges("dhan", on_warning=said.append)
    # a sell of 100 @ 10,000: turnover Rs 10,00,000, a tenth of a crore -> Rs 1.00 at Rs 10/crore, 0.50 at Rs 5
    for day, fee in (("2019-04-01", 1.00), ("2020-05-29", 1.00), ("2020-06-01", 0.50), ("2021-03-31", 0.50),
                     ("2021-04-01", 1.00)):
        assert fill(m, INFY, "INTRADAY", False, 100, 10000.0, day).sebi == fee, day
    assert not [w for w in said if "no sebi row" in w]
