"""``algo optimize``: the artifacts, statistics equal to ``algo backtest``'s, best.yaml runs, bad input."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import render_page  # noqa: E402


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _results(path) -> dict:
    return {row["metric"]: row["value"] for row in _rows(path)}


def _sweep(cli, write_yaml, base_config, out, *extra):
    run = write_yaml(base_config)
    res = cli("optimize", run, "--param", "fast_period=5,10", "--param", "slow_period=20:40:10",
              "--constraint", "fast_period < slow_period", "--workers", "1", "--out", out, "-q", *extra)
    return run, res


def test_optimize_writes_its_artifacts(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    _, res = _sweep(cli, write_yaml, base_config, out)
    assert res.code == 0, res.err
    assert {p.name for p in out.iterdir()} >= {"trials.csv", "timings.csv", "best.yaml", "heatmap.html",
                                               "optimize.json", "trials.journal.jsonl"}
    rows = _rows(out / "trials.csv")
    assert [(r["fast_period"], r["slow_period"]) for r in rows] == [
        ("5", "20"), ("5", "30"), ("5", "40"), ("10", "20"), ("10", "30"), ("10", "40")]
    assert "sharpe_ratio" in rows[0] and "charges_total" in rows[0] and "seconds" not in rows[0]
    best = max(rows, key=lambda r: float(r["sharpe_ratio"]))
    assert f"fast_period={best['fast_period']}, slow_period={best['slow_period']}" in res.out
    manifest = json.loads((out / "optimize.json").read_text())
    assert manifest["best"]["trial"] == int(best["trial"]) and manifest["trials"] == 6
    page = (out / "heatmap.html").read_text()
    assert '"type":"heatmap"' in page and "Plotly.newPlot" in page
    shown = render_page(out / "heatmap.html")
    assert shown["errors"] == [] and shown["plots"] == shown["plots_rendered"] == 1 and shown["traces"] == [1]


def test_every_statistic_equals_algo_backtest(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    _sweep(cli, write_yaml, base_config, out)
    rows = _rows(out / "trials.csv")
    for row in (rows[0], rows[4]):  # two trials, run again through `algo backtest`
        cfg = yaml.safe_load(yaml.safe_dump(base_config))
        cfg["strategies"][0]["params"].update(fast_period=int(row["fast_period"]), slow_period=int(row["slow_period"]))
        run = write_yaml(cfg, f"trial{row['trial']}.yaml")
        res = cli("backtest", run, "-o", tmp_path / f"bt{row['trial']}", "--no-report", "-q")
        assert res.code == 0, res.err
        results = _results(tmp_path / f"bt{row['trial']}" / "results.csv")
        assert {k: row[k] for k in results} == results


def test_best_yaml_runs_as_is_and_reproduces_the_best_trial(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    run, _ = _sweep(cli, write_yaml, base_config, out)
    assert cli("backtest", run, "--no-report", "-q").code == 0  # the run the sweep tunes, in output.dir
    tuned_from = (tmp_path / "yaml_out" / "results.csv").read_bytes()
    best = yaml.safe_load((out / "best.yaml").read_text())
    rows = _rows(out / "trials.csv")
    top = max(rows, key=lambda r: float(r["sharpe_ratio"]))
    assert best["strategies"][0]["params"]["fast_period"] == int(top["fast_period"])
    res = cli("backtest", out / "best.yaml", "--no-report", "-q")
    assert res.code == 0, res.err
    results = _results(out / "best" / "results.csv")
    assert results["sharpe_ratio"] == top["sharpe_ratio"] and results["final_equity"] == top["final_equity"]
    assert (tmp_path / "yaml_out" / "results.csv").read_bytes() == tuned_from


def test_a_sweep_replaces_the_older_sweeps_whole_set(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    _sweep(cli, write_yaml, base_config, out)
    assert (out / "heatmap.html").is_file()
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,10", "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    # one parameter: the page draws the objective's line over it, not the older sweep's heatmap
    page = (out / "heatmap.html").read_text()
    assert '"data":[{"type":"heatmap"' not in page and '"data":[{"type":"scatter"' in page
    assert "sharpe_ratio by fast_period" in page
    rows = _rows(out / "trials.csv")
    line = json.loads(re.search(r'"y":(\[[^\]]*\])', page).group(1))
    assert line == pytest.approx([float(r["sharpe_ratio"]) for r in rows], abs=5e-5)  # trials.csv: 4 places
    shown = render_page(out / "heatmap.html")
    assert shown["errors"] == [] and shown["plots"] == shown["plots_rendered"] == 1 and shown["traces"] == [1]
    assert len(rows) == 2 and json.loads((out / "optimize.json").read_text())["trials"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["best.yaml", "heatmap.html", "optimize.json", "timings.csv",
                                                     "trials.csv", "trials.journal.jsonl"]


def test_rerun_takes_every_trial_from_the_journal(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    _sweep(cli, write_yaml, base_config, out)
    first = (out / "trials.csv").read_bytes()
    _, res = _sweep(cli, write_yaml, base_config, out)
    assert res.code == 0 and "0 run now, 6 from the journal" in " ".join(res.out.split())
    assert (out / "trials.csv").read_bytes() == first


def test_two_workers_write_the_same_trials_csv(cli, write_yaml, base_config, tmp_path):
    _sweep(cli, write_yaml, base_config, tmp_path / "one")
    _sweep(cli, write_yaml, base_config, tmp_path / "two", "--workers", "2")
    assert (tmp_path / "one" / "trials.csv").read_bytes() == (tmp_path / "two" / "trials.csv").read_bytes()


def test_bad_input_is_one_line_and_exit_2(cli, write_yaml, base_config, tmp_path):
    run = write_yaml(base_config)
    cases = [
        (["--param", "fast_period=5:10:5", "--constraint", "__import__('os').getcwd()"], "Call is not allowed"),
        (["--param", "fast_period=5:10:5", "--maximize", "sharpe"], "not a statistic of results.csv; did you mean "
                                                                     "`sharpe_ratio`?"),
        (["--param", "fast_period=5:10:5", "--maximize", "research.objectives:misread"],
         "--maximize research.objectives:misread: the function raised KeyError: 'sharpe'; it is called with the "
         "statistics as a dict"),
        (["--param", "fast_period=5:10:5", "--constraint", "fast < 9"],
         "'fast' is not a --param (the params: fast_period)\n"),
        (["--param", "fast=5:10:5"], "no strategy has a parameter 'fast'"),
        (["--param", "fast_perod=5:10:5"], "no strategy has a parameter 'fast_perod'; did you mean `fast_period`?"),
        (["--param", "fast_period=5:10:5:1"], "a range is start:stop:step (or start:stop for whole numbers)"),
        (["--param", "fast_period=5:10:5", "--method", "genetic"], "--method genetic"),
        (["--param", "fast_period=5:10:5", "--trials", "2"], "--trials 2 applies to --method random or bayes"),
        (["--param", "fast_period=a,b", "--method", "bayes"], "no point of the grid passes the strategies' own "
                                                              "checks (first refusal: "),
        (["--param", "fast_period=5:20:5", "--param", "slow_period=20,30", "--constraint",
          "slow_period / (fast_period - 5) > 1"],
         "--constraint 'slow_period / (fast_period - 5) > 1': divides by zero at slow_period=20, fast_period=5; "
         "guard it: \"fast_period - 5 != 0 and ...\""),
        (["--param", "fast_period=5:inf:5"], "'fast_period=5:inf:5': start, stop and step must be finite numbers"),
        (["--param", "fast_period=nan:20"], "'fast_period=nan:20': start, stop and step must be finite numbers"),
        (["--param", "fast_period=5-20"], "'fast_period=5-20': not a range; write a range as start:stop[:step] or a "
                                          "list as a,b,c, e.g. --param fast_period=5:20"),
        (["--param", "fast_period=5,,10"], "'fast_period=5,,10': an empty value in the list"),
        (["--param", "fast_period=5:10:5", "--maximize", "research.objectives:as_text"],
         "--maximize research.objectives:as_text: the function returned '0.52' (str); return a number (None or "
         "NaN where the trial's score is undefined, e.g. no trades)"),
    ]
    for args, message in cases:
        res = cli("optimize", run, *args, "--workers", "1", "--out", tmp_path / "x", "-q")
        assert res.code == 2, (args, res.err)
        assert len(res.err_lines) == 1 and message in res.err, res.err
        assert "Traceback" not in res.err
        assert not (tmp_path / "x").exists(), args  # bad input writes nothing, not even the journal


def test_a_sweep_small_enough_to_run_in_its_pilots_still_reports_its_memory(cli, write_yaml, base_config, tmp_path):
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,6", "--workers", "1", "--out",
              tmp_path / "x", "-q")
    assert res.code == 0, res.err
    workers = json.loads((tmp_path / "x" / "optimize.json").read_text())["workers"]
    assert len(workers) == 1 and workers[0]["peak_rss_mb"] > 10, workers
    assert "peak memory per worker:" in res.out and "(of the 1 worker that ran trials)" in res.out, res.out


def test_without_a_terminal_the_error_is_the_first_line_no_progress_bar_before_it(cli, write_yaml, base_config,
                                                                                   tmp_path):
    # cron, CI or a pipe: no bar is drawn, so nothing (not even its blank line) comes before the error
    res = cli("optimize", write_yaml(base_config), "--param", "fast=5:10:5", "--workers", "1", "--out", tmp_path / "x")
    assert res.code == 2 and res.err.startswith("error: "), repr(res.err)


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_fewer_points_than_trials_is_said_once_and_a_grid_says_nothing(cli, write_yaml, base_config, tmp_path, method):
    """Random and Bayesian search stop short of --trials only once the space is exhausted, and say so."""
    _, res = _sweep(cli, write_yaml, base_config, tmp_path / method, "--method", method, "--trials", "50")
    assert res.code == 0, res.err
    said = " ".join(res.out.split())
    assert f"6 trials ({method};" in said
    assert "--trials 50: the space holds only 6 points the constraints and the strategies accept, and every one ran" \
        in said
    assert len(_rows(tmp_path / method / "trials.csv")) == 6
    _, res = _sweep(cli, write_yaml, base_config, tmp_path / "grid")
    assert res.code == 0 and "--trials" not in res.out


def test_params_of_the_bundled_multi_strategy_config_by_hyphenated_id(cli, write_yaml, tmp_path):
    """configs/multi.yaml names its strategies sma-hdfcbank and rsi-infosys: ``<id>.<param>`` reaches each,
    constraints name them, and best.yaml runs."""
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "configs" / "multi.yaml").read_text())
    cfg["data"]["path"], cfg["output"]["dir"] = str(root / "data"), str(tmp_path / "run")
    out = tmp_path / "opt"
    res = cli("optimize", write_yaml(cfg), "--param", "sma-hdfcbank.quantity=10,20", "--param",
              "rsi-infosys.period=10,14", "--constraint", "sma-hdfcbank.quantity * 2 > rsi-infosys.period + 12",
              "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    rows = _rows(out / "trials.csv")
    assert [(r["sma-hdfcbank.quantity"], r["rsi-infosys.period"]) for r in rows] == [("20", "10"), ("20", "14")]
    best = yaml.safe_load((out / "best.yaml").read_text())
    params = {s["id"]: s["params"] for s in best["strategies"]}
    assert params["sma-hdfcbank"]["quantity"] == 20 and params["rsi-infosys"]["period"] in (10, 14)
    assert params["rsi-infosys"]["quantity"] == cfg["strategies"][1]["params"]["quantity"]  # untouched
    assert cli("backtest", out / "best.yaml", "--no-report", "-q").code == 0


def test_best_yaml_runs_from_its_own_folder_with_a_relative_charges_table(cli, write_yaml, base_config, tmp_path):
    """broker.charges, a path relative to the run definition, is absolute in best.yaml as data.path is."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mycharges.csv").write_bytes(
        (root / "algocli" / "market" / "data" / "brokers" / "dhan.csv").read_bytes())
    base_config["broker"] = {"name": "simulated", "charges": "sub/mycharges.csv"}
    base_config["risk"] = {"max_position": 500, "state_file": "sub/risk.json"}
    out = tmp_path / "elsewhere" / "opt"
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,10", "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["broker"]["charges"] == str(tmp_path / "sub" / "mycharges.csv")
    assert best["risk"]["state_file"] == str(tmp_path / "sub" / "risk.json")
    res = cli("backtest", out / "best.yaml", "--no-report", "-q")
    assert res.code == 0, res.err
    assert float(_results(out / "best" / "results.csv")["charges_total"]) > 0


def test_best_yaml_keeps_a_shipped_charges_name(cli, write_yaml, base_config, tmp_path):
    base_config["broker"] = {"name": "simulated", "charges": "dhan"}
    out = tmp_path / "opt"
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,10", "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    assert yaml.safe_load((out / "best.yaml").read_text())["broker"]["charges"] == "dhan"


def test_ctrl_c_on_two_workers_prints_one_line_marks_the_artifacts_partial_and_the_rerun_completes(
        cli, write_yaml, base_config, tmp_path):
    from research.sweep_signals import ctrl_c_once_journalled

    run, out = write_yaml(base_config), tmp_path / "opt"
    args = ["optimize", run, "--param", "fast_period=5:30:5", "--param", "slow_period=20:60:20", "--constraint",
            "fast_period < slow_period", "--maximize", "research.objectives:slow_sharpe", "--workers", "2",
            "--out", out, "-q"]
    code, said, err = ctrl_c_once_journalled(args, out / "trials.journal.jsonl")
    assert code == 130, err
    kept = len(_rows(out / "trials.csv"))
    assert err.splitlines() == [f"interrupted: {kept} of 15 trials kept; run the same command to finish"]
    assert f"{kept} of 15 trials (grid, interrupted; {kept} run now, 0 from the journal)" in said
    workers = int(re.search(r"of the (\d) workers? whose trials were kept", said).group(1))
    timings = _rows(out / "timings.csv")
    assert len(timings) == kept and not any(t["cached"] for t in timings)
    assert workers >= 1 and json.loads((out / "optimize.json").read_text())["interrupted"] is True
    assert f"best of {kept} of 15 trials (grid, interrupted; run the same command to finish)" in \
        (out / "best.yaml").read_text().splitlines()[0]
    assert "(partial)</h1>" in (out / "heatmap.html").read_text()
    res = cli(*args)
    assert res.code == 0, res.err
    assert f"15 trials (grid; {15 - kept} run now, {kept} from the journal)" in " ".join(res.out.split())
    assert "(partial)" not in (out / "heatmap.html").read_text()
    clean = tmp_path / "clean"
    assert cli(*args[:-3], "--out", clean, "-q").code == 0
    assert (out / "trials.csv").read_bytes() == (clean / "trials.csv").read_bytes()


def test_a_function_returning_none_leaves_every_trial_undefined(cli, write_yaml, base_config, tmp_path):
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,10", "--maximize",
              "research.objectives:undefined", "--workers", "1", "--out", tmp_path / "opt", "-q")
    assert res.code == 0, res.err
    assert "no trial has a defined research.objectives:undefined" in res.out
    assert not (tmp_path / "opt" / "best.yaml").exists()


def test_an_output_folder_that_is_a_file_names_the_out_flag(cli, write_yaml, base_config, tmp_path):
    (tmp_path / "taken").write_text("")
    run = write_yaml(base_config)
    res = cli("optimize", run, "--param", "fast_period=5,10", "--workers", "1", "--out", tmp_path / "taken", "-q")
    assert res.code == 2 and res.err_lines == [f"error: {tmp_path / 'taken'}: is a file, not a folder; pass another "
                                               "--out"], res.err
    base_config["output"]["dir"] = str(tmp_path / "taken")
    res = cli("optimize", write_yaml(base_config), "--param", "fast_period=5,10", "--workers", "1", "-q")
    assert res.code == 2 and res.err.endswith("pass --out or change output.dir\n"), res.err


def test_an_artifact_that_cannot_be_published_names_the_out_flag(cli, write_yaml, base_config, tmp_path):
    out = tmp_path / "opt"
    (out / "heatmap.html").mkdir(parents=True)  # a folder where an artifact goes: found when the set is published
    _, res = _sweep(cli, write_yaml, base_config, out)
    assert res.code != 0 and len(res.err_lines) == 1, res.err
    assert f"{out / 'heatmap.html'}: could not be written" in res.err and "pass another --out;" in res.err, res.err
    assert "--output" not in res.err and not (out / "trials.csv").exists()


# --- option run definitions (data.options): each trial is `algo backtest` of its params -------------

PCR_HEADER = "timestamp,underlying,expiry,spot,atm_strike,oi_pcr,volume_pcr,change_oi_pcr,max_pain,bar,mode,source"


def _options_config(tmp_path, **options) -> dict:
    """configs/options-pcr.yaml reading the bundled option data, writing under tmp_path."""
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "configs" / "options-pcr.yaml").read_text())
    cfg["data"]["path"], cfg["output"]["dir"] = str(root / "data" / "options"), str(tmp_path / "run")
    cfg["data"]["options"].update(options)
    return cfg


def _trials_equal_backtests(cli, write_yaml, cfg, out, tmp_path, pairs) -> list[dict]:
    """The sweep's rows, after checking two of them against `algo backtest` of the same params."""
    rows = _rows(out / "trials.csv")
    for row in (rows[0], rows[-1]):
        one = yaml.safe_load(yaml.safe_dump(cfg))
        one["strategies"][0]["params"].update({k: cast(row[k]) for k, cast in pairs})
        res = cli("backtest", write_yaml(one, f"trial{row['trial']}.yaml"), "-o", tmp_path / f"bt{row['trial']}",
                  "--no-report", "-q")
        assert res.code == 0, res.err
        results = _results(tmp_path / f"bt{row['trial']}" / "results.csv")
        assert {k: row[k] for k in results} == results
    return rows


def test_an_options_run_definition_sweeps_as_algo_backtest_runs_it(cli, write_yaml, tmp_path):
    cfg = _options_config(tmp_path)
    out = tmp_path / "opt"
    res = cli("optimize", write_yaml(cfg), "--param", "fast_period=3,5", "--param", "stop_pct=20,30",
              "--workers", "1", "--out", out, "-q")
    assert res.code == 0, res.err
    rows = _trials_equal_backtests(cli, write_yaml, cfg, out, tmp_path, (("fast_period", int), ("stop_pct", float)))
    assert [r["total_return_pct"] for r in rows] == ["-1.6105", "-1.8068", "9.8780", "9.6818"]  # QA's by hand


def test_an_options_sweep_replays_a_recorded_pcr_series(cli, write_yaml, tmp_path):
    """data.options.pcr: every trial's ctx.pcr reads the recorded series (here a PCR of 3, where the
    chain's own is near 1), as `algo backtest` does, which changes what trades."""
    lines = [PCR_HEADER] + [f"2024-06-{d} 09:15:05,NSE:NIFTY 50,2024-06-27,23400,23400,3.0,3.0,,23500,"
                            f"2024-06-{d} 09:15:00,paper,dhan" for d in (13, 14, 17, 18, 19, 20)]
    (tmp_path / "pcr.csv").write_text("\n".join(lines) + "\n")
    cfg = _options_config(tmp_path, pcr=str(tmp_path / "pcr.csv"))
    cfg["strategies"][0]["params"]["pcr_window"] = None  # the recorded rows are whole-chain figures
    args = ["--param", "bullish_pcr=0.5,2.5", "--param", "bearish_pcr=1.0,3.5", "--workers", "1", "-q"]
    res = cli("optimize", write_yaml(cfg), *args, "--out", tmp_path / "opt")
    assert res.code == 0, res.err
    rows = _trials_equal_backtests(cli, write_yaml, cfg, tmp_path / "opt", tmp_path,
                                   (("bullish_pcr", float), ("bearish_pcr", float)))
    del cfg["data"]["options"]["pcr"]
    assert cli("optimize", write_yaml(cfg, "computed.yaml"), *args, "--out", tmp_path / "computed").code == 0
    computed = _rows(tmp_path / "computed" / "trials.csv")
    assert [r["total_trades"] for r in rows] != [r["total_trades"] for r in computed]
