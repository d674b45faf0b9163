"""``algo montecarlo`` on the output of ``algo backtest configs/sma.yaml``."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import render_page  # noqa: E402


@pytest.fixture
def sma_run(cli, base_config, write_yaml, tmp_path):
    """The sample backtest's artifact folder."""
    out = tmp_path / "sma"
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", out)
    assert result.code == 0, result.err
    return out


def _results(folder) -> dict[str, str]:
    with (folder / "results.csv").open(encoding="utf-8") as fh:
        return {row[0]: row[1] for row in csv.reader(fh)}


def _rows(path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_reshuffled_trades_keep_the_run_return_and_write_table_csv_and_page(cli, sma_run):
    result = cli("montecarlo", sma_run, "--n", "500", "--seed", "3")
    assert result.code == 0, result.err
    stats = _results(sma_run)
    rows = _rows(sma_run / "montecarlo" / "montecarlo.csv")
    assert len(rows) == 500 and rows[0].keys() == {"simulation", "total_return_pct", "max_drawdown_pct",
                                                    "sharpe_ratio", "ruined"}
    finals = np.array([float(r["total_return_pct"]) for r in rows])
    assert finals == pytest.approx(np.full(500, float(stats["total_return_pct"])), abs=1e-4)
    assert len({r["max_drawdown_pct"] for r in rows}) > 50  # the order changes the path
    assert "Max. Drawdown" in result.out and "probability of ruin (30% below the start)" in result.out
    assert "Return [%] and Sharpe Ratio: the same in every simulation" in " ".join(result.out.split())
    shown = render_page(sma_run / "montecarlo" / "montecarlo.html")
    assert shown["errors"] == [] and shown["title"] == "Monte Carlo — sma"
    # a histogram of the drawdown only: a reshuffle gives every path the same return and Sharpe ratio
    assert shown["plots"] == shown["plots_rendered"] == 1 and shown["traces"] == [1]
    head, *lines = shown["tables"][0].splitlines()
    assert head.split("\t") == ["Statistic", "mean", "5 %", "25 %", "50 %", "75 %", "95 %", "run"]
    assert [line.split("\t")[0] for line in lines] == ["Return [%]", "Max. Drawdown [%]", "Sharpe Ratio"]
    page = (sma_run / "montecarlo" / "montecarlo.html").read_text(encoding="utf-8")
    assert 'data-key="ruin"' in page and 'data-key="constant"' in page


def test_the_run_path_of_a_bar_bootstrap_has_the_backtest_statistics(cli, sma_run, tmp_path):
    from algocli.research.montecarlo import load_run, simulate

    out = tmp_path / "mc"
    result = cli("montecarlo", sma_run, "--n", "50", "--method", "bootstrap", "--seed", "1", "--out", out)
    assert result.code == 0, result.err
    assert (out / "montecarlo.csv").is_file() and not (sma_run / "montecarlo").exists()
    stats = _results(sma_run)
    actual = simulate(load_run(sma_run), 1, method="bootstrap", seed=1).actual  # the "run" column
    for name in ("total_return_pct", "max_drawdown_pct", "sharpe_ratio"):
        assert actual[name] == pytest.approx(float(stats[name]), abs=1e-4), name
    # the same through the trades: the run's trades, in the run's order, compound to its return
    trades = simulate(load_run(sma_run), 1, method="trades", seed=1).actual
    assert trades["total_return_pct"] == pytest.approx(float(stats["total_return_pct"]), abs=1e-4)
    shown = render_page(out / "montecarlo.html")  # bar returns drawn anew: every statistic varies
    assert shown["errors"] == [] and shown["plots"] == shown["plots_rendered"] == 3
    assert "the same in every simulation" not in result.out


def test_the_same_seed_writes_the_same_bytes(cli, sma_run, tmp_path):
    written = []
    for name, seed in (("a", "8"), ("b", "8"), ("c", "9")):
        assert cli("montecarlo", sma_run, "--n", "300", "--method", "block", "--seed", seed,
                   "--out", tmp_path / name).code == 0
        written.append((tmp_path / name / "montecarlo.csv").read_bytes())
    assert written[0] == written[1] != written[2]
    assert (tmp_path / "a" / "montecarlo.html").read_bytes() == (tmp_path / "b" / "montecarlo.html").read_bytes()


def test_bad_input_is_one_line_and_exit_2(cli, sma_run, tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(sma_run, empty)
    header = (empty / "trades.csv").read_text(encoding="utf-8").splitlines()[0]
    (empty / "trades.csv").write_text(header + "\n", encoding="utf-8")
    for argv, words in (((tmp_path,), "no trades.csv"), ((empty,), "closed no trade"),
                        ((sma_run, "--n", "0"), "--n 0"), ((sma_run, "--method", "x"), "--method x")):
        result = cli("montecarlo", *argv)
        assert result.code == 2, result.out
        assert len(result.err_lines) == 1 and words in result.err


def test_a_run_that_is_not_a_finished_run_is_told_which_is(cli, sma_run, base_config, write_yaml, tmp_path):
    """The folder holding runs names them; a run definition names the folder its run writes."""
    holding = cli("montecarlo", tmp_path)
    assert holding.code == 2 and holding.err_lines == [
        f"error: {tmp_path}: no trades.csv; pass one of the finished runs in it: {sma_run}"]
    definition = write_yaml({**base_config, "output": {"dir": str(tmp_path / "elsewhere")}}, "def.yaml")
    told = cli("montecarlo", definition)
    assert told.code == 2 and told.err_lines == [
        f"error: {definition}: is a run definition, not a finished run; pass the folder its run writes, "
        f"{tmp_path / 'elsewhere'}"]
    negative = cli("montecarlo", sma_run, "--seed", "-1")
    assert negative.code == 2 and "--seed" in negative.err and "internal error" not in negative.err


def test_a_backtest_that_replaces_the_resampled_run_says_its_montecarlo_is_stale(cli, sma_run, base_config,
                                                                                 write_yaml):
    assert cli("montecarlo", sma_run, "--n", "50", "--seed", "1").code == 0
    again = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", sma_run)
    assert again.code == 0 and "montecarlo" not in again.out  # the same run: its resampling still holds
    changed = {**base_config, "strategies": [{**base_config["strategies"][0],
                                              "params": {"fast_period": 12, "slow_period": 20, "quantity": 100}}]}
    other = cli("backtest", write_yaml(changed, "changed.yaml"), "--quiet", "--no-report", "--output", sma_run)
    assert other.code == 0
    said = "".join(other.out.split())  # a long path may be wrapped inside itself: compare without any spacing
    assert "".join((f"note: {sma_run / 'montecarlo'} resampled the earlier run in this folder; `algo montecarlo "
                    f"{sma_run}` resamples this one").split()) in said


def test_an_output_folder_that_is_a_file_fails_before_simulating(cli, sma_run, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("mine\n", encoding="utf-8")
    result = cli("montecarlo", sma_run, "--n", "50", "--out", taken)
    assert result.code == 2, result.out
    assert result.err_lines == [f"error: {taken}: is a file, not a folder; pass another --out"]
    assert taken.read_text(encoding="utf-8") == "mine\n" and "Statistic" not in result.out


def test_the_table_keeps_every_figure_in_a_narrow_terminal(cli, sma_run, tmp_path, monkeypatch):
    from algocli.cli.console import console

    monkeypatch.setattr(console, "width", 72)
    out = tmp_path / "mc"
    result = cli("montecarlo", sma_run, "--n", "400", "--seed", "4", "--replace", "--out", out)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert max(map(len, lines)) <= 72 and "…" not in result.out
    drawdowns = np.array([float(r["max_drawdown_pct"]) for r in _rows(out / "montecarlo.csv")])
    row = next(line.split() for line in lines if line.startswith("Max."))
    # mean, then the 5, 25, 50, 75 and 95 % percentiles, as numpy computes them from montecarlo.csv
    expected = [drawdowns.mean(), *np.percentile(drawdowns, [5, 25, 50, 75, 95])]
    assert [float(x) for x in row[-7:-1]] == pytest.approx(expected, abs=0.006)


def test_the_trades_methods_run_column_says_it_is_measured_per_trade(cli, sma_run, tmp_path):
    """Its drawdown is on the equity after each closed trade, not results.csv's every bar: both differ."""
    results = _results(sma_run)
    trades = cli("montecarlo", sma_run, "--n", "50", "--seed", "1", "--out", tmp_path / "t")
    joined = " ".join(trades.out.split())
    assert "run: the run's own trades in their order" in joined and "results.csv measures every bar" in joined
    page = (tmp_path / "t" / "montecarlo.html").read_text(encoding="utf-8")
    assert 'data-key="run">run: the run&#x27;s own trades in their order' in page
    row = next(line for line in trades.out.splitlines() if line.startswith("Max. Drawdown"))
    assert f"{float(results['max_drawdown_pct']):.2f}" != row.split()[-1]  # why the note is needed
    boot = cli("montecarlo", sma_run, "--n", "50", "--seed", "1", "--method", "bootstrap", "--out", tmp_path / "b")
    assert "run: the run's own trades" not in boot.out
    row = next(line for line in boot.out.splitlines() if line.startswith("Max. Drawdown"))
    assert f"{float(results['max_drawdown_pct']):.2f}" == row.split()[-1]  # every bar: results.csv's figure


def test_the_header_names_the_block_kind_and_its_length(cli, sma_run):
    circular = cli("montecarlo", sma_run, "--n", "50", "--seed", "1", "--method", "block", "--block-kind", "circular",
                   "--block-size", "3")
    assert circular.code == 0, circular.err
    said = " ".join(circular.out.split())
    assert "block: bar returns in circular blocks (3 bars each)" in said and "mean" not in said.split("block:")[1][:40]
    stationary = cli("montecarlo", sma_run, "--n", "50", "--seed", "1", "--method", "block", "--block-size", "3")
    assert "block: bar returns in stationary blocks (mean 3 bars)" in " ".join(stationary.out.split())


def test_the_header_gives_the_block_length_used_and_a_fractional_circular_one_is_refused(cli, sma_run):
    from algocli.research.montecarlo import load_run, optimal_block_length

    estimate = optimal_block_length(load_run(sma_run).bar_returns, kind="circular")
    auto = cli("montecarlo", sma_run, "--n", "50", "--seed", "1", "--method", "block", "--block-kind", "circular")
    assert auto.code == 0, auto.err
    assert (f"circular blocks ({int(np.ceil(estimate))} bars each: Politis and White's estimate {estimate:.2f}, "
            "rounded up)") in " ".join(auto.out.split())
    res = cli("montecarlo", sma_run, "--n", "50", "--method", "block", "--block-kind", "circular", "--block-size", "2.5",
              "--out", sma_run / "frac")
    assert res.code == 2 and res.err_lines == [
        "error: --block-size 2.5: a circular block holds a whole number of bars; give 2 or 3 (--block-kind "
        "stationary takes a fractional mean)"], res.err
    assert not (sma_run / "frac").exists()


def test_a_missing_folder_is_said_to_be_missing(cli, tmp_path):
    result = cli("montecarlo", tmp_path / "nosuchfolder")
    assert result.code == 2 and result.err_lines == [
        f"error: {tmp_path / 'nosuchfolder'}: no such folder; pass the folder of a finished run (algo backtest "
        "writes one, e.g. output/sma-hdfcbank)"], result.err
