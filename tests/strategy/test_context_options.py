"""``ctx.option``: contracts named by expiry code and ATM offset, from a small hand-made master."""

from __future__ import annotations

from datetime import date

import pytest

from algocli.broker.fill_models import NextOpen
from algocli.engine.backtest import Backtest
from algocli.strategy.contracts import pick_expiry, pick_option, pick_strike
from engine.options_fixtures import UNDER, chain, index, option
from helpers import Scripted


def test_expiry_codes_count_weeks_and_months_from_the_bar_date():
    listed = [date(2024, 12, 5), date(2024, 12, 12), date(2024, 12, 26), date(2025, 1, 2), date(2025, 1, 30)]
    today = date(2024, 12, 9)
    assert pick_expiry(listed, today, "current") == date(2024, 12, 12)
    assert pick_expiry(listed, today, "next") == date(2024, 12, 26)
    assert pick_expiry(listed, today, "current_month") == date(2024, 12, 26)  # the month's last expiry
    assert pick_expiry(listed, today, "next_month") == date(2025, 1, 30)
    assert pick_expiry(listed, date(2024, 12, 12), "current") == date(2024, 12, 12)  # expiry day itself
    assert pick_expiry(listed, today, "2025-01-02") == date(2025, 1, 2)
    with pytest.raises(ValueError, match="not listed"):
        pick_expiry(listed, today, "2025-01-09")
    with pytest.raises(ValueError, match="current, next"):
        pick_expiry(listed, today, "fortnight")


def test_strike_codes_move_by_listed_strikes_from_the_one_nearest_spot():
    strikes = [23800, 23850, 23900, 23950, 24000, 24100, 24200]
    assert pick_strike(strikes, 23921.0, "ATM", "CE") == 23900
    assert pick_strike(strikes, 23925.0, "ATM", "CE") == 23900  # a tie goes to the lower strike
    assert pick_strike(strikes, 23921.0, "ATM+2", "CE") == 24000
    assert pick_strike(strikes, 23921.0, "ATM+3", "PE") == 24100  # steps follow the listed strikes
    assert pick_strike(strikes, 23921.0, "ATM-1", "PE") == 23850
    assert pick_strike(strikes, 23921.0, "OTM1", "CE") == 23950 and pick_strike(strikes, 23921.0, "OTM1", "PE") == 23850
    assert pick_strike(strikes, 23921.0, "ITM2", "CE") == 23800
    assert pick_strike(strikes, 23921.0, 24100, "CE") == 24100
    with pytest.raises(ValueError, match="only 2 strike.s. below and 4 above"):
        pick_strike(strikes, 23921.0, "ATM+5", "CE")


def _run(script, rows_extra=()):
    first, expiry = date(2024, 1, 2), date(2024, 1, 4)
    bars, rows = chain(first, expiry)
    later = option(date(2024, 1, 11), 21100, "CE", lot=25)  # listed, with another lot, but no data
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), instruments={UNDER: index()},
                  default_product="MARGIN", universe=rows + [later, *rows_extra])
    strategy = Scripted(script)
    bt.add_strategy(strategy, [UNDER], "s")
    bt.run()
    return strategy


def test_ctx_option_picks_atm_offsets_from_the_underlyings_close_with_the_contracts_lot():
    picks = {}

    def pick(ctx, c):
        picks["atm"] = ctx.option(UNDER, expiry="current", strike="ATM", right="CE")
        picks["up"] = ctx.option("NSE:NIFTY", expiry="current", strike="ATM+1", right="PE")
        picks["spot"] = ctx.option(UNDER, expiry="current", strike="ATM", right="CE", spot=21180)
        with pytest.raises(ValueError, match="11 JAN 2024 21100 CE is listed but has no data"):
            ctx.option(UNDER, expiry="current_month", strike="ATM", right="CE")
        with pytest.raises(ValueError, match="needs option greeks"):
            ctx.option(UNDER, strike="delta:0.25")
        return ctx.buy(picks["atm"].name, picks["atm"].lot_size)
    strategy = _run({0: pick})
    # bar 0 (2024-01-02): NIFTY 50 closed at 21040 -> ATM 21000 (strikes 21000/21100/21200)
    assert picks["atm"].name == "NSE:NIFTY 04 JAN 2024 21000 CE" and picks["atm"].lot_size == 50
    assert picks["atm"].spot == 21040.0 and picks["atm"].strike == 21000.0
    assert picks["up"].name == "NSE:NIFTY 04 JAN 2024 21100 PE"
    assert picks["spot"].name == "NSE:NIFTY 04 JAN 2024 21200 CE"
    assert [f.instrument for f in strategy.fills][0] == "NSE:NIFTY 04 JAN 2024 21000 CE"


def test_the_lot_size_is_the_contracts_own():
    rows = [option(date(2024, 11, 28), 24000, "CE", lot=25), option(date(2024, 12, 5), 24000, "CE", lot=75)]
    old = pick_option(rows, UNDER, 24010.0, date(2024, 11, 21), expiry="current", strike="ATM", right="CE")
    new = pick_option(rows, UNDER, 24010.0, date(2024, 11, 21), expiry="next", strike="ATM", right="CE")
    assert (old.lot_size, new.lot_size) == (25, 75)  # after 2024-11-20 old and new lots trade side by side
