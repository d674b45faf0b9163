"""``algo walkforward``: the artifacts, each window's OOS run equal to ``algo backtest`` on its dates,
a continuous stitched curve, the same bytes on 1 and 2 workers, bad input."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import render_page  # noqa: E402

ARGS = ("--param", "fast_period=5,10", "--param", "slow_period=20,30", "--constraint", "fast_period < slow_period",
        "--train", "24M", "--test", "12M", "--gap", "5D", "--cscv-splits", "8", "-q")


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _results(path) -> dict:
    return {row["metric"]: row["value"] for row in _rows(path)}


@pytest.fixture
def walked(cli, write_yaml, base_config, tmp_path):
    """configs/sma.yaml (2019-2024, daily) walked forward on one worker into tmp_path/wf."""
    run = write_yaml(base_config)
    out = tmp_path / "wf"
    res = cli("walkforward", run, *ARGS, "--workers", "1", "--out", out)
    assert res.code == 0, res.err
    return run, out, res


def test_walkforward_writes_its_artifacts_and_reports(walked):
    _, out, res = walked
    assert {p.name for p in out.iterdir()} >= {"windows.csv", "oos_equity.csv", "results.csv", "walkforward.json",
                                               "report.html", "trials.journal.jsonl"}
    rows = _rows(out / "windows.csv")
    # the day after the 30 warm-up bars (the grid's largest integer; the 30th bar is on 2019-02-11)
    # + 24 months + 5 days, then every 12 months, the last one ending at the data's last date
    assert [(r["train_start"], r["train_end"], r["test_start"], r["test_end"]) for r in rows] == [
        ("2019-02-12", "2021-02-11", "2021-02-17", "2022-02-16"),
        ("2020-02-12", "2022-02-11", "2022-02-17", "2023-02-16"),
        ("2021-02-12", "2023-02-11", "2023-02-17", "2024-02-16"),
        ("2022-02-12", "2024-02-11", "2024-02-17", "2024-12-31"),
    ]
    assert all(r["trials"] == "4" and r["fast_period"] in ("5", "10") for r in rows)
    summary = json.loads((out / "walkforward.json").read_text())
    assert (summary["warmup_bars"], summary["warmup_from"]) == (30, "the largest integer in the grid")
    assert summary["windows"] == 4 and summary["pbo"]["splits"] == 8 and summary["pbo"]["combinations"] == 70
    assert 0 <= summary["pbo"]["value"] <= 1 and summary["grid_trials"] == 4
    assert summary["oos_sharpe_t_stat"] == pytest.approx(summary["oos_sharpe_per_period"]
                                                         * summary["oos_periods"] ** 0.5, abs=1e-5)
    results = _results(out / "results.csv")
    assert list(results)[:4] == ["start_date", "end_date", "duration", "total_return_pct"]
    assert results["start_date"].startswith("2021-02-17") and results["end_date"].startswith("2024-12-31")
    assert "charges_total" in results
    text = " ".join(res.out.split())
    assert "walk-forward efficiency" in text and "PBO" in text and "t =" in text
    page = (out / "report.html").read_text()
    for key in ("windows", "equity", "returns", "pbo"):
        assert f'data-key="{key}"' in page
    assert "Plotly.newPlot" in page and "Walk-forward efficiency" in page
    # a flat commission: the page shows it once, not again as charge rows a paisa apart from it
    assert 'data-key="commissions"' in page and 'data-key="charges_' not in page
    shown = render_page(out / "report.html")
    assert shown["errors"] == [] and shown["plots"] == shown["plots_rendered"] == 4, shown["plots"]
    windows = next(t for t in shown["tables"] if t.startswith("window"))
    assert [line.split("\t")[3] for line in windows.splitlines()[1:]] == [r["test_start"] for r in rows]


def test_the_page_lists_itemised_charges_by_kind():
    from algocli.research.walkforward_outputs import _shown_stats

    flat = {"commissions": 935.97, "charges_brokerage": 935.98, "charges_stt": 0.0, "charges_total": 935.98}
    assert list(_shown_stats(flat)) == ["commissions"]
    itemised = {**flat, "charges_stt": 120.5, "charges_total": 1056.48}
    assert _shown_stats(itemised) == itemised


def test_each_window_equals_algo_backtest_on_its_test_dates(walked, cli, write_yaml, base_config, tmp_path):
    _, out, _ = walked
    rows = _rows(out / "windows.csv")
    curve = _rows(out / "oos_equity.csv")
    for row in (rows[0], rows[2]):
        cfg = yaml.safe_load(yaml.safe_dump(base_config))
        cfg["data"].update(start=row["test_start"], end=row["test_end"], warmup=30)
        cfg["strategies"][0]["params"].update(fast_period=int(row["fast_period"]), slow_period=int(row["slow_period"]))
        folder = tmp_path / f"bt{row['window']}"
        res = cli("backtest", write_yaml(cfg, f"w{row['window']}.yaml"), "-o", folder, "--no-report", "-q")
        assert res.code == 0, res.err
        results = _results(folder / "results.csv")
        assert row["oos_sharpe_ratio"] == results["sharpe_ratio"]
        assert row["oos_total_return_pct"] == results["total_return_pct"]
        assert row["oos_trades"] == results["total_trades"]
        # the window's part of the stitched curve is its backtest's curve, scaled to start where the last ended
        own = [r for r in curve if r["window"] == row["window"]]
        equity = _rows(folder / "equity_curve.csv")
        assert [r["timestamp"] for r in own] == [r["timestamp"] for r in equity]
        scale = float(row["oos_start_equity"]) / float(equity[0]["equity"])
        for mine, theirs in zip(own, equity):
            assert float(mine["equity"]) == pytest.approx(float(theirs["equity"]) * scale, abs=0.011)


def test_the_stitched_curve_is_continuous_across_windows(walked):
    _, out, _ = walked
    curve = _rows(out / "oos_equity.csv")
    rows = _rows(out / "windows.csv")
    for prev, row in zip(rows, rows[1:]):
        assert row["oos_start_equity"] == prev["oos_end_equity"]
        first = next(r for r in curve if r["window"] == row["window"])
        last = [r for r in curve if r["window"] == prev["window"]][-1]
        assert first["equity"] == last["equity"] == row["oos_start_equity"]
    assert curve[-1]["equity"] == rows[-1]["oos_end_equity"]
    final = _results(out / "results.csv")["final_equity"]
    assert final == rows[-1]["oos_end_equity"]


def test_one_and_two_workers_write_the_same_bytes(walked, cli, tmp_path):
    run, out, _ = walked
    res = cli("walkforward", run, *ARGS, "--workers", "2", "--out", tmp_path / "two")
    assert res.code == 0, res.err
    for name in ("windows.csv", "oos_equity.csv", "results.csv", "walkforward.json"):
        assert (tmp_path / "two" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_rerun_takes_every_trial_from_the_journal(walked, cli, monkeypatch, tmp_path):
    from algocli.research import trials, worker

    run, out, _ = walked
    first = (out / "windows.csv").read_bytes()
    ran = []
    real = worker.run_trial

    def counted(*args, **kwargs):
        ran.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "run_trial", counted)
    monkeypatch.setattr(trials, "run_trial", counted)
    res = cli("walkforward", run, *ARGS, "--workers", "1", "--out", out)
    assert res.code == 0 and ran == []
    assert (out / "windows.csv").read_bytes() == first
    res = cli("walkforward", run, *ARGS, "--workers", "1", "--out", tmp_path / "fresh")
    assert res.code == 0 and len(ran) == 4 * 4 + 4  # the counter sees trials: 4 windows and the whole range


def test_bad_input_is_one_line_and_exit_2(cli, write_yaml, base_config, tmp_path):
    run = write_yaml(base_config)
    grid = ["--param", "fast_period=5,10", "--param", "slow_period=20,30"]
    cases = [
        (["--train", "12X", "--test", "3M"], "--train '12X'"),
        (["--train", "12M", "--test", "0M"], "--test '0M'"),
        (["--train", "12M", "--test", "3M", "--gap", "five"], "--gap 'five'"),
        (["--train", "10Y", "--test", "3M"], "too short for one window"),
        (["--train", "12M", "--test", "3M", "--cscv-splits", "3"], "--cscv-splits 3"),
        (["--train", "12M", "--test", "3M", "--maximize", "sharpe"], "not a statistic of results.csv"),
        (["--train", "12M", "--test", "3M", "--param", "fast=5,6"], "no strategy has a parameter 'fast'"),
        (["--train", "12M", "--test", "3M", "--warmup", "1488"], "--warmup 1488: NSE:HDFCBANK has 1488 bars in all"),
        (["--train", "12M", "--test", "3M", "--warmup", "-1"], "--warmup"),
    ]
    for args, message in cases:
        res = cli("walkforward", run, *grid, *args, "--workers", "1", "--out", tmp_path / "x", "-q")
        assert res.code == 2, (args, res.err)
        assert len(res.err_lines) == 1 and message in res.err, (args, res.err)
        assert "Traceback" not in res.err
    assert not (tmp_path / "x" / "windows.csv").exists()


@pytest.mark.parametrize("columns", [80, 200])
def test_the_table_keeps_every_figure_whatever_the_terminal_width(cli, write_yaml, base_config, tmp_path,
                                                                   monkeypatch, columns):
    from algocli.cli.console import console

    monkeypatch.setattr(console, "width", columns)
    out = tmp_path / "wf"
    short = [a if a != "12M" else "3M" for a in ARGS]  # 16 test windows, two of them without a trade
    res = cli("walkforward", write_yaml(base_config), *short, "--workers", "1", "--out", out)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert max(map(len, lines)) <= columns and "…" not in res.out
    undefined = [r["window"] for r in _rows(out / "windows.csv") if r["oos_sharpe_ratio"] == "nan"]
    assert undefined
    if columns != 80:
        return
    page = render_page(out / "report.html")["tables"]  # the page shows them as the terminal does
    windows = next(t for t in page if t.startswith("window")).splitlines()[1:]
    assert [w.split("\t")[0] for w in windows if "nan" in w.split("\t")] == []
    assert [w.split("\t")[0] for w in windows if w.split("\t")[11] == "—"] == undefined
    for r in _rows(out / "windows.csv"):
        window = f"{r['test_start']} → {r['test_end']}" if columns == 200 else r["test_start"]
        row = next(line.split() for line in lines if line.split()[:2] == [r["window"], window.split()[0]])
        assert " ".join(row[1:len(window.split()) + 1]) == window
        # the chosen parameters, then IS and OOS returns to two places as windows.csv has them
        figures = row[len(window.split()) + 1:]
        assert figures[:2] == [r["fast_period"], r["slow_period"]]
        assert figures[4:6] == [f"{float(r['is_total_return_pct']):.2f}", f"{float(r['oos_total_return_pct']):.2f}"]


def test_hyphenated_strategy_ids_fit_80_columns_with_every_figure(cli, write_yaml, tmp_path, monkeypatch):
    """configs/multi.yaml's params are named sma-hdfcbank.fast_period and rsi-infosys.period: their
    headers break after the hyphen and the dot rather than push the figures into "0.51…"."""
    from algocli.cli.console import console

    monkeypatch.setattr(console, "width", 80)
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "configs" / "multi.yaml").read_text())
    cfg["data"]["path"], cfg["output"]["dir"] = str(root / "data"), str(tmp_path / "run")
    out = tmp_path / "wf"
    res = cli("walkforward", write_yaml(cfg), "-p", "sma-hdfcbank.fast_period=5,10", "-p", "rsi-infosys.period=10,14",
              "--train", "24M", "--test", "12M", "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    assert max(map(len, res.out.splitlines())) <= 80 and "…" not in res.out
    for r in _rows(out / "windows.csv"):
        row = next(line.split() for line in res.out.splitlines() if line.split()[:2] == [r["window"], r["test_start"]])
        assert row[2:4] == [r["sma-hdfcbank.fast_period"], r["rsi-infosys.period"]]


def test_ctrl_c_on_two_workers_prints_one_line_and_the_rerun_completes(cli, write_yaml, base_config, tmp_path):
    from research.sweep_signals import ctrl_c_once_journalled

    run, out = write_yaml(base_config), tmp_path / "wf"
    args = ["walkforward", run, *ARGS, "--maximize", "research.objectives:slow_sharpe", "--workers", "2"]
    code, said, err = ctrl_c_once_journalled([*args, "--out", out], out / "trials.journal.jsonl")
    assert code == 130, err
    assert err.splitlines() == ["interrupted: finished trials are journalled; run the same command to continue"]
    assert said == ""
    assert cli(*args, "--out", out).code == 0
    assert cli(*args, "--out", tmp_path / "clean").code == 0
    for name in ("windows.csv", "oos_equity.csv", "results.csv"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_an_output_folder_that_is_a_file_names_the_out_flag(cli, write_yaml, base_config, tmp_path):
    (tmp_path / "taken").write_text("")
    res = cli("walkforward", write_yaml(base_config), *ARGS, "--workers", "1", "--out", tmp_path / "taken")
    assert res.code == 2 and res.err_lines == [f"error: {tmp_path / 'taken'}: is a file, not a folder; pass another "
                                               "--out"], res.err


def test_an_options_run_definition_walks_forward_with_in_sample_trials_as_algo_backtest(cli, write_yaml, tmp_path):
    """data.options: each in-sample trial picks its contracts as `algo backtest` of its dates does."""
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "configs" / "options-pcr.yaml").read_text())
    cfg["data"]["path"], cfg["output"]["dir"] = str(root / "data" / "options"), str(tmp_path / "run")
    out = tmp_path / "wf"
    res = cli("walkforward", write_yaml(cfg), "--param", "fast_period=3,5", "--train", "5D", "--test", "3D", "--warmup", "30", "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    row = _rows(out / "windows.csv")[0]
    cfg["data"].update(start=row["train_start"], end=row["train_end"], warmup=30)
    cfg["strategies"][0]["params"].update(fast_period=int(row["fast_period"]))
    res = cli("backtest", write_yaml(cfg, "is.yaml"), "-o", tmp_path / "is", "--no-report", "-q")
    assert res.code == 0, res.err
    results = _results(tmp_path / "is" / "results.csv")
    assert float(results["total_trades"]) > 0
    assert (row["is_sharpe_ratio"], row["is_total_return_pct"]) == (results["sharpe_ratio"],
                                                                     results["total_return_pct"])


def test_short_data_skips_the_pbo_nobody_asked_for_but_refuses_given_blocks(cli, write_yaml, tmp_path):
    """configs/intraday.yaml: four days of 25-minute bars after the warm-up, 3 daily periods, too few for
    CSCV's 2 blocks of 2."""
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "configs" / "intraday.yaml").read_text())
    cfg["data"]["path"], cfg["output"]["dir"] = str(root / "data"), str(tmp_path / "run")
    run = write_yaml(cfg)
    args = ("walkforward", run, "--param", "fast_period=2,3", "--param", "slow_period=5,8", "--train", "2D",
            "--test", "1D", "--workers", "1", "-q")
    res = cli(*args, "--out", tmp_path / "wf")
    assert res.code == 0, res.err
    summary = json.loads((tmp_path / "wf" / "walkforward.json").read_text())
    days = {r["timestamp"][:10] for r in _rows(root / "data" / "NSE_EQ_2885.csv")}
    # 5 days: the first warms up the grid's 8-bar SMA (a day holds 15 bars), 4 trade, 3 returns between their closes
    assert len(days) == 5
    assert summary["pbo"] is None and summary["windows"] == 2 and summary["grid_trials"] == 4
    assert "PBO needs 4 periods or more (2 blocks of 2); the data has 3; not computed (more data gives it)" \
        in summary["notes"]
    assert "note: PBO needs 4 periods or more" in " ".join(res.err.split())
    res = cli(*args, "--cscv-splits", "2", "--out", tmp_path / "given")
    assert res.code == 2 and res.err_lines == [
        "error: --cscv-splits 2: the data has 3 periods, too few for 2 blocks (each half needs 2 periods or more); "
        "give more data, or drop --cscv-splits to skip PBO"], res.err
