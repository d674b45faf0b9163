"""Monte Carlo resampling checked against hand-worked cases and the statistics module."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from algocli.analytics.stats import compute_metrics
from algocli.errors import UsageError
from algocli.research import montecarlo as mc
from algocli.research.montecarlo_outputs import csv_text

IST_NS = (5 * 3600 + 1800) * 10**9



def _stamp(ns: int) -> str:
    return str(np.datetime64(int(ns) + IST_NS, "ns").astype("datetime64[s]")) + "+05:30"


def write_run(folder, equity, trades, initial=100_000.0):
    """A run folder as algo writes it: daily bars (weekdays), ``trades`` = [(exit bar, pnl, return_pct)]."""
    folder.mkdir(parents=True, exist_ok=True)
    days = np.busday_offset(np.datetime64("2024-01-01"), np.arange(len(equity)), roll="forward")
    ts = days.astype("datetime64[ns]").astype(np.int64) - IST_NS
    (folder / "equity_curve.csv").write_text(
        "timestamp,equity,cash,buy_and_hold\n" + "".join(f"{_stamp(t)},{e:.2f},{e:.2f},{e:.2f}\n"
                                                         for t, e in zip(ts.tolist(), equity)), encoding="utf-8")
    rows = "".join(f"X,X,s,LONG,1,{_stamp(ts[0])},1,{_stamp(ts[b])},1,{p},0,{p},{r},1 days 00:00:00\n"
                   for b, p, r in trades)
    (folder / "trades.csv").write_text(
        "instrument,instrument_id,strategy,side,size,entry_time,entry_price,exit_time,exit_price,gross_pnl,"
        "charges,pnl,return_pct,duration\n" + rows, encoding="utf-8")
    (folder / "config.resolved.yaml").write_text(f"name: t\ninitial_capital: {initial}\n", encoding="utf-8")
    (folder / "run.json").write_text('{"mode": "paper"}', encoding="utf-8")
    return ts


@pytest.fixture
def three_trades(tmp_path):
    """+10 %, -10 %, -20 % of the equity before each trade, closed on bars 2, 4 and 6."""
    equity = [100_000, 100_000, 110_000, 110_000, 99_000, 99_000, 79_200, 79_200]
    write_run(tmp_path / "run", equity, [(2, 10_000, 5.0), (4, -11_000, -3.0), (6, -19_800, -7.0)])
    return mc.load_run(tmp_path / "run")


def _max_drawdown(factors) -> float:
    """Deepest fall from a peak of the path 1, f1, f1*f2, ..., by a plain loop."""
    equity = peak = 1.0
    worst = 0.0
    for f in factors:
        equity *= f
        peak = max(peak, equity)
        worst = max(worst, 1 - equity / peak)
    return worst


def test_the_run_reads_returns_on_equity_and_the_run_settings(three_trades):
    assert three_trades.initial_capital == 100_000 and three_trades.mode == "paper"
    assert three_trades.trade_returns == pytest.approx([0.10, -0.10, -0.20])
    assert three_trades.position_returns == pytest.approx([0.05, -0.03, -0.07])


def test_every_permutation_keeps_the_final_return_and_gives_the_enumerated_drawdowns(three_trades):
    perms = np.array(list(itertools.permutations(range(3))))
    got = mc.evaluate(three_trades, perms, method="trades", ruin=0.25)
    assert got["total_return_pct"] == pytest.approx(np.full(6, (1.1 * 0.9 * 0.8 - 1) * 100))
    factors = np.array([1.1, 0.9, 0.8])
    expected = sorted(-_max_drawdown(factors[p]) * 100 for p in perms)
    assert sorted(got["max_drawdown_pct"]) == pytest.approx(expected)
    assert sorted(round(x, 6) for x in got["max_drawdown_pct"]) == [-28.0] * 4 + [-20.8] * 2  # by hand
    # ruin at 25 %: only 0.9 then 0.8 (equity 0.72) gets there, in either position of the +10 %
    assert got["ruined"].tolist() == [min(np.cumprod(factors[p])) <= 0.75 for p in perms]
    assert got["ruined"].sum() == 2


def test_reshuffling_draws_each_permutation_equally_often(three_trades):
    sims = mc.simulate(three_trades, 6000, method="trades", seed=11, ruin=0.25)
    values, counts = np.unique(np.round(sims.values["max_drawdown_pct"], 6), return_counts=True)
    assert values.tolist() == [-28.0, -20.8]
    assert counts[0] / 6000 == pytest.approx(4 / 6, abs=0.03)
    assert sims.ruin_probability == pytest.approx(2 / 6, abs=0.03)
    assert np.ptp(sims.values["total_return_pct"]) < 1e-9


def test_one_simulation_in_the_run_order_is_the_run(three_trades):
    got = mc.evaluate(three_trades, np.array([[0, 1, 2]]), method="trades")
    assert got["total_return_pct"][0] == pytest.approx(-20.8)
    assert got["max_drawdown_pct"][0] == pytest.approx(-28.0)


def test_position_returns_compound_return_pct(three_trades):
    sims = mc.simulate(three_trades, 5, method="trades", seed=1, trade_returns="position")
    assert sims.values["total_return_pct"] == pytest.approx(np.full(5, (1.05 * 0.97 * 0.93 - 1) * 100))


def test_drawing_trades_with_replacement_spreads_the_final_return(three_trades):
    sims = mc.simulate(three_trades, 4000, method="trades", seed=5, replace=True)
    finals = np.unique(np.round(sims.values["total_return_pct"], 6))
    # 10 multisets of three draws from three returns, each product distinct
    expected = {round((np.prod([[1.1, 0.9, 0.8][i] for i in c]) - 1) * 100, 6)
                for c in itertools.combinations_with_replacement(range(3), 3)}
    assert set(finals.tolist()) == expected


def test_bar_bootstrap_ruin_of_a_constructed_series(tmp_path):
    """Bar returns -50 % and +100 %: of the four equally likely two-bar paths, two start with -50 %."""
    write_run(tmp_path / "r", [100.0, 50.0, 100.0], [(2, 0.0, 0.0)], initial=100.0)
    run = mc.load_run(tmp_path / "r")
    sims = mc.simulate(run, 20_000, method="bootstrap", seed=3, ruin=0.3)
    assert sims.ruin_probability == pytest.approx(0.5, abs=0.015)
    finals = np.round(sims.values["total_return_pct"], 6)
    assert set(finals.tolist()) == {-75.0, 0.0, 300.0}
    assert np.mean(finals == 0.0) == pytest.approx(0.5, abs=0.015)


def test_the_run_path_gives_the_statistics_module_figures(tmp_path):
    rng = np.random.default_rng(0)
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0005, 0.01, 400))
    ts = write_run(tmp_path / "r", np.round(equity, 2), [(399, 1.0, 0.1)])
    run = mc.load_run(tmp_path / "r")
    got = mc.evaluate(run, np.arange(len(run.bar_returns))[None, :], method="bootstrap")
    no_trades = {k: np.array([]) for k in ("entry_bar", "exit_bar", "pnl", "return_pct", "duration")}
    want = compute_metrics(run.equity, ts, no_trades, buy_and_hold_return=0.0, market_log_returns=np.array([]),
                           commissions=0.0, initial_capital=100_000)
    assert got["sharpe_ratio"][0] == pytest.approx(want["sharpe_ratio"], rel=1e-9)
    assert got["max_drawdown_pct"][0] == pytest.approx(want["max_drawdown_pct"], rel=1e-9)
    assert got["total_return_pct"][0] == pytest.approx(want["total_return_pct"], rel=1e-9)


def test_the_same_seed_gives_the_same_simulations_and_another_seed_others(three_trades, tmp_path):
    write_run(tmp_path / "b", 100 * np.cumprod(1 + np.sin(np.arange(60)) / 50), [(59, 1.0, 1.0)])
    bars = mc.load_run(tmp_path / "b")
    for run, method in ((three_trades, "trades"), (bars, "bootstrap"), (bars, "block")):
        a, b = (csv_text(mc.simulate(run, 300, method=method, seed=9)) for _ in range(2))
        assert a == b
        assert a != csv_text(mc.simulate(run, 300, method=method, seed=10))


def test_block_indices_keep_blocks_together():
    rng = np.random.default_rng(1)
    whole = mc._block_indices(50, 20, 1e12, "stationary", rng)  # a mean block longer than the series: one block
    assert np.all(np.diff(whole, axis=1) % 50 == 1)
    fixed = mc._block_indices(50, 20, 5, "circular", rng)
    assert fixed.shape == (20, 50)
    assert np.all(np.diff(fixed.reshape(20, 10, 5), axis=2) % 50 == 1)  # each block of 5 runs on


def test_the_estimated_block_length_is_rounded_up_and_said_to_be(tmp_path):
    from algocli.research.montecarlo_outputs import describe

    ar = np.zeros(400)
    shocks = np.random.default_rng(8).normal(0, 0.01, 400)
    for t in range(1, 400):
        ar[t] = 0.5 * ar[t - 1] + shocks[t]
    write_run(tmp_path / "r", 100_000 * np.cumprod(1 + ar), [(399, 1.0, 1.0)])
    run = mc.load_run(tmp_path / "r")
    for kind, size in (("stationary", "mean {n} bars"), ("circular", "{n} bars each")):
        estimate = mc.optimal_block_length(run.bar_returns, kind=kind)
        assert estimate != int(estimate)  # a fraction: rounded up to whole bars
        sims = mc.simulate(run, 20, method="block", block_kind=kind, seed=1)
        assert sims.block_size == math.ceil(estimate) and sims.block_estimate == estimate
        assert f"{kind} blocks ({size.format(n=math.ceil(estimate))}: Politis and White's estimate {estimate:.2f}, " \
               "rounded up)" in describe(sims, run)
    given = mc.simulate(run, 20, method="block", block_size=2.5, seed=1)  # a stationary mean may be a fraction
    assert given.block_size == 2.5 and given.block_estimate is None
    assert "stationary blocks (mean 2.5 bars);" in describe(given, run)


def test_a_fractional_circular_block_is_refused(tmp_path):
    """Circular blocks were cut to round(2.5) = 2 bars while the title said 2.5."""
    write_run(tmp_path / "r", 100 * np.cumprod(1 + np.sin(np.arange(60)) / 50), [(59, 1.0, 1.0)])
    with pytest.raises(UsageError, match=r"^--block-size 2.5: a circular block holds a whole number of bars; give "
                                         r"2 or 3 \(--block-kind stationary takes a fractional mean\)$"):
        mc.simulate(mc.load_run(tmp_path / "r"), 10, method="block", block_kind="circular", block_size=2.5)


def test_the_block_length_grows_with_serial_dependence():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=2000)
    ar = np.zeros(2000)
    for t in range(1, 2000):
        ar[t] = 0.8 * ar[t - 1] + noise[t]
    assert mc.optimal_block_length(noise) < 3
    assert mc.optimal_block_length(ar) > 8
    assert mc.optimal_block_length(ar, kind="circular") > mc.optimal_block_length(ar)  # D_CB = 4/3 g^2 < D_SB


def test_ten_thousand_simulations_of_300_trades_each_reshuffle_every_trade(tmp_path):
    """(Their speed is measured by benchmarks/bench_montecarlo.py, not here.)"""
    rng = np.random.default_rng(4)
    pnl = rng.normal(50, 1000, 300).round(2)
    equity = np.r_[100_000, 100_000 + np.cumsum(pnl)]
    write_run(tmp_path / "r", equity, [(i + 1, p, 0.1) for i, p in enumerate(pnl)])
    run = mc.load_run(tmp_path / "r")
    sims = mc.simulate(run, 10_000, method="trades", seed=1)
    assert sims.count == 10_000 == len(sims.values["total_return_pct"])
    # every path compounds all 300 trades, so every final return is the run's (to rounding)
    assert np.allclose(sims.values["total_return_pct"], sims.actual["total_return_pct"], atol=1e-6)
    assert np.unique(sims.values["max_drawdown_pct"]).size > 1000  # and the paths differ


@pytest.mark.parametrize("kwargs, flag", [({"n": 0}, "--n"), ({"ruin": 1.5}, "--ruin"), ({"method": "x"}, "--method"),
                                          ({"block_size": 0.5, "method": "block"}, "--block-size"),
                                          # another method's option would be ignored without a word
                                          ({"method": "bootstrap", "replace": True},
                                           "--replace applies to --method trades"),
                                          ({"block_size": 5}, "--block-size applies to --method block, not trades"),
                                          ({"block_kind": "circular"}, "--block-kind applies to --method block"),
                                          ({"method": "block", "trade_returns": "position"},
                                           "--trade-returns applies to --method trades, not block")])
def test_bad_settings_name_the_flag(three_trades, kwargs, flag):
    kwargs = {"n": 10, **kwargs}
    with pytest.raises(UsageError, match=flag):
        mc.simulate(three_trades, kwargs.pop("n"), **kwargs)


def test_a_folder_without_trades_or_with_none_is_refused(tmp_path):
    with pytest.raises(UsageError, match="no trades.csv"):
        mc.load_run(tmp_path)
    write_run(tmp_path / "r", [1.0, 1.0], [])
    with pytest.raises(UsageError, match="closed no trade"):
        mc.load_run(tmp_path / "r")
