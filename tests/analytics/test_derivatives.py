"""The report's futures and options legs, worked out by hand from the fixture's prices and the published
rates: STT on exercise 0.125 % of intrinsic value until 2026-03-31; no brokerage or exchange charges on
settlement (tests/engine/test_options_expiry.py has the rates' sources)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from algocli.analytics.derivatives import derivative_legs
from algocli.analytics.report import render_html
from algocli.broker.fill_models import NextOpen
from algocli.domain.modes import RunMode
from algocli.engine.backtest import Backtest
from algocli.market.charges import IndianCharges
from engine.options_fixtures import LOT, UNDER, chain, index, option_name
from helpers import Scripted

FIRST, EXPIRY = date(2024, 1, 2), date(2024, 1, 4)
CE, PE = option_name(EXPIRY, 21000, "CE"), option_name(EXPIRY, 21000, "PE")


@pytest.fixture(scope="module")
def run():
    bars, rows = chain(FIRST, EXPIRY)

    def enter(ctx, c):
        ctx.buy(CE, LOT, tag="straddle")   # held to expiry: 234.55 in the money
        ctx.sell(PE, LOT, tag="straddle")  # bought back next day, before expiry

    def cover(ctx, c):
        ctx.buy(PE, LOT, tag="cover")

    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  instruments={UNDER: index()}, default_product="MARGIN", universe=rows)
    bt.add_strategy(Scripted({0: enter, 1: cover}), [UNDER], "s")
    return bars, bt.run()


def test_legs_add_up_premium_settlement_and_charges(run):
    bars, result = run
    legs = {leg.instrument: leg for leg in derivative_legs(result)}
    assert set(legs) == {CE, PE}
    ce_open = float(bars[CE].open[1])  # next_open: the order of candle 0 fills at candle 1's open
    ce = legs[CE]
    assert (ce.bought, ce.sold, ce.settled_qty, ce.open_qty) == (LOT, 0, LOT, 0)
    assert ce.premium_paid == pytest.approx(round(ce_open * LOT, 2))
    assert ce.settlement_price == pytest.approx(21234.55 - 21000)
    assert ce.settlement_value == pytest.approx(round(234.55 * LOT, 2))
    ce_fills = [f for f in result.fills if f.instrument == CE]
    assert ce.charges == pytest.approx(round(sum(f.commission for f in ce_fills), 2))
    assert ce_fills[-1].stt == pytest.approx(round(234.55 * LOT * 0.00125, 2))  # STT on exercise
    assert ce.net_pnl == pytest.approx(ce.settlement_value - ce.premium_paid - ce.charges)
    pe = legs[PE]
    assert (pe.bought, pe.sold, pe.settled_qty) == (LOT, LOT, 0) and pe.settlement_price is None
    assert pe.premium_received == pytest.approx(round(float(bars[PE].open[1]) * LOT, 2))
    assert pe.premium_paid == pytest.approx(round(float(bars[PE].open[2]) * LOT, 2))
    assert pe.tags == "straddle cover" and ce.tags == "straddle"
    # the legs' net P&L is the run's: nothing else traded
    final = float(result.equity[-1]) - result.initial_capital
    assert ce.net_pnl + pe.net_pnl == pytest.approx(final, abs=0.05)


def test_the_report_shows_the_legs_and_a_run_without_derivatives_does_not(run, tmp_path):
    _, result = run
    page = render_html(result, mode=RunMode.BACKTEST)
    assert "Futures and options legs" in page and f'data-contract="{CE}"' in page
    assert "<th>Paid [₹]</th><th>Received [₹]</th>" in page and "a future's contract value" in page
    row = page.split(f'data-contract="{CE}"')[1].split("</tr>")[0]
    assert f"{round(234.55 * LOT, 2):,.2f}" in row and "straddle" in row  # the settlement value, the tag
    # the chain's 6 contracts were loaded; only the 2 traded are charted and named
    charted = re.findall(r'data-key="candles:([^"]*)"', page)
    assert sorted(charted) == sorted([UNDER, CE, PE])
    assert "(and 4 option contracts loaded but not traded)" in page
    from cli.cli_support import REPO_ROOT  # the equity sample has no derivatives
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import assemble_backtest

    plain = assemble_backtest(load_run_config(REPO_ROOT / "configs" / "sma.yaml"), "sma.yaml").backtest.run()
    assert "Futures and options legs" not in render_html(plain, mode=RunMode.BACKTEST)


def test_buy_and_hold_is_the_underlyings_not_the_option_universes(run):
    _, result = run
    # the strategy lists only the index: its closes run 21040 -> 21300 (engine/options_fixtures.py)
    assert float(result.benchmark[-1]) == pytest.approx(5_000_000 * 21300.0 / 21040.0)
