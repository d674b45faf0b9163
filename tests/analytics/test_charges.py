"""Charges by kind, gross against net P&L and the cost drag, as the report and the terminal show them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algocli.analytics.charges import charge_summary, cumulative_charges, is_itemised
from algocli.domain.models import OrderSide
from analytics.report_support import charged_fill, make_result, with_charges


def test_a_run_with_charges_by_kind_sums_each_kind_and_derives_gross_from_net():
    result = with_charges(make_result(n_bars=60, n_trades=2))
    charges = charge_summary(result)
    assert charges.by_kind == {"brokerage": 40.0, "stt": 2.5, "exchange_txn": 2.1, "ipft": 0.0, "sebi": 0.0,
                               "stamp": 0.45, "dp": 0.0, "gst": 15.19}
    assert charges.total == 60.24
    net = float(result.equity[-1]) - result.initial_capital
    assert charges.net_pnl == pytest.approx(net)
    assert charges.gross_pnl == pytest.approx(net + 60.24)


def test_the_cost_drag_is_the_share_of_the_gross_profit_the_charges_took():
    result = with_charges(make_result(n_bars=60, n_trades=2))
    result.equity = np.full(60, result.initial_capital + 60.24)  # gross profit 120.48, net 60.24
    assert charge_summary(result).drag_pct == pytest.approx(50.0)
    result.equity = np.full(60, result.initial_capital - 10.0)  # a profit of 50.24 gross is a loss net
    assert charge_summary(result).drag_pct == pytest.approx(60.24 / 50.24 * 100)
    result.equity = np.full(60, result.initial_capital - 100.0)  # lost money before charges: no profit to eat
    assert math.isnan(charge_summary(result).drag_pct)


def test_a_flat_commission_run_has_no_breakdown():
    result = make_result(n_bars=60, n_trades=2)
    assert charge_summary(result) is None  # no fills
    ts = int(result.ts[5])
    result.fills = [charged_fill("F1", "O1", "NSE_EQ:1333", OrderSide.BUY, 5, ts, 1000.0, brokerage=12.5)]
    assert not is_itemised(result.fills) and charge_summary(result) is None


def test_estimated_live_charges_are_counted():
    result = with_charges(make_result(n_bars=60, n_trades=2), estimated=True)
    assert charge_summary(result).estimated_fills == 2


def test_cumulative_charges_step_up_at_each_fills_bar():
    result = with_charges(make_result(n_bars=60, n_trades=2))
    cum = cumulative_charges(result)
    assert len(cum) == 60
    assert cum[9] == 0 and cum[10] == pytest.approx(29.04) and cum[19] == pytest.approx(29.04)
    assert cum[20] == pytest.approx(60.24) and cum[-1] == pytest.approx(60.24)


def test_a_flat_commissions_totals_are_what_the_account_paid(tmp_path):
    """``commission_rate`` books each fill's commission unrounded (backtesting.py's way); the totals in
    results.csv are then the account's: ``charges_total`` equals ``commissions`` and the cash paid."""
    import pandas as pd

    from cli.cli_support import REPO_ROOT
    from cli.paper_support import algo

    done = algo(["backtest", REPO_ROOT / "configs" / "bollinger.yaml", "--no-report", "-q", "-o", tmp_path])
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(tmp_path / "results.csv").set_index("metric")["value"]
    results = results[results.index.str.startswith(("charges_", "commissions", "final_", "initial_"))].astype(float)
    fills = pd.read_csv(tmp_path / "fills.csv")
    rate = 0.0003  # configs/bollinger.yaml's commission_rate
    paid = (fills["quantity"] * fills["price"] * rate).sum()
    assert results["charges_total"] == results["charges_brokerage"] == results["commissions"]
    assert results["charges_total"] == pytest.approx(paid, abs=0.005)
    signed = fills["quantity"] * fills["price"] * fills["side"].map({"BUY": -1, "SELL": 1})
    assert results["final_equity"] == pytest.approx(results["initial_capital"] + signed.sum() - paid, abs=0.005)
