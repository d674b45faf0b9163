"""Lots, ticks and freeze quantities.

Tick rules: https://fyers.in/notice-board/tick-size-revision-for-nse-derivatives-cash-segment-effective-april-15-2025
(price bands from 2025-04-15; index futures by level) and
https://tradingqna.com/t/tick-size-changed-to-0-01-for-stocks-and-stock-futures-contracts-trading-below-250/166034
(0.01 below 250 from 2024-06-10).
"""

from __future__ import annotations

from datetime import date

import pytest

from algocli.domain.instrument import Instrument
from algocli.domain.models import OrderSide
from algocli.market.ticks import check_price, check_quantity, round_to_tick, split_quantity, tick_size

INFY = Instrument("NSE:INFY")
NIFTY_FUT = Instrument("NSE:NIFTY 29 MAY 2025 FUT", exchange="NSE", kind="FUT", symbol="NIFTY", lot_size=75,
                       freeze_quantity=1800)
BANKNIFTY_FUT = Instrument("NSE:BANKNIFTY 29 MAY 2025 FUT", exchange="NSE", kind="FUT", symbol="BANKNIFTY",
                           lot_size=30)
NIFTY_CE = Instrument("NSE:NIFTY 29 MAY 2025 24000 CE", exchange="NSE", kind="CE", symbol="NIFTY", lot_size=75)
AFTER, BEFORE = date(2025, 5, 2), date(2025, 4, 11)


def test_fno_quantity_must_be_whole_lots_and_the_reason_names_the_lot() -> None:
    reason = check_quantity(NIFTY_FUT, 80)
    assert "not a whole number of lots of 75" in reason and "75 or 150" in reason
    assert check_quantity(NIFTY_FUT, 40).endswith("(75)")
    assert check_quantity(NIFTY_FUT, 150) == ""
    assert check_quantity(INFY, 7) == ""
    assert "positive" in check_quantity(INFY, 0)


@pytest.mark.parametrize(("price", "day", "tick"), [
    (120.0, AFTER, 0.01), (250.0, AFTER, 0.05), (1000.0, AFTER, 0.05), (1500.0, AFTER, 0.10),
    (6000.0, AFTER, 0.50), (15000.0, AFTER, 1.00), (25000.0, AFTER, 5.00),
    (1500.0, BEFORE, 0.05), (120.0, BEFORE, 0.01), (120.0, date(2024, 6, 7), 0.05),
])
def test_equity_tick_by_price_band_and_date(price: float, day: date, tick: float) -> None:
    assert tick_size(INFY, price, day) == tick


def test_an_off_tick_price_is_rejected_with_the_tick_in_the_reason() -> None:
    reason = check_price(INFY, 1500.05, AFTER)
    assert "tick of 0.10" in reason and "use 1500.00 or 1500.10" in reason
    assert check_price(INFY, 1500.10, AFTER) == ""
    assert check_price(INFY, 1500.05, BEFORE) == ""  # 0.05 before the bands
    assert "tick of 5.00" in check_price(INFY, 25003.0, AFTER)
    assert check_price(INFY, 120.03, AFTER) == ""


def test_index_futures_tick_by_level_and_index_options_at_five_paise() -> None:
    assert tick_size(NIFTY_FUT, 24000.0, AFTER) == 0.10
    assert "tick of 0.10" in check_price(NIFTY_FUT, 24000.05, AFTER)
    assert tick_size(BANKNIFTY_FUT, 52000.0, AFTER) == 0.20
    assert check_price(BANKNIFTY_FUT, 52000.20, AFTER) == ""
    assert tick_size(NIFTY_FUT, 24000.0, BEFORE) == 0.05
    assert check_price(NIFTY_CE, 100.05, AFTER) == "" and "tick of 0.05" in check_price(NIFTY_CE, 100.02, AFTER)


def test_round_to_tick_goes_against_the_trader() -> None:
    assert round_to_tick(INFY, 1500.03, "BUY", AFTER) == 1500.10
    assert round_to_tick(INFY, 1500.03, OrderSide.SELL, AFTER) == 1500.00
    assert round_to_tick(INFY, 1500.10, True, AFTER) == 1500.10  # already on the tick
    assert round_to_tick(INFY, 101.234, False, AFTER) == 101.23


def test_split_above_freeze_into_whole_lot_children_none_above_it() -> None:
    assert split_quantity(NIFTY_FUT, 3975) == [1800, 1800, 375]
    lot65 = Instrument("NSE:NIFTY 27 JAN 2026 FUT", exchange="NSE", kind="FUT", symbol="NIFTY", lot_size=65,
                       freeze_quantity=1800)
    children = split_quantity(lot65, 65 * 60)
    assert children == [1755, 1755, 390]  # 1800 // 65 = 27 lots = 1755 per child
    assert sum(children) == 3900 and all(c <= 1800 and c % 65 == 0 for c in children)
    assert split_quantity(NIFTY_FUT, 1800) == [1800]
    assert split_quantity(INFY, 10_000) == [10_000]  # no freeze quantity known
    with pytest.raises(ValueError, match="below one lot"):
        split_quantity(NIFTY_FUT, 150, freeze_quantity=50)
