"""``algo backtest``: exit codes, artifacts and their internal consistency."""

from __future__ import annotations

import copy

import contextlib
import hashlib
import io
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from algocli.analytics.stats import METRIC_NAMES
from algocli.cli.main import main
from algocli.config.run import RunConfig
from cli.cli_support import REPO_ROOT, SAMPLE_CSV, SMA_YAML, load_sma_config, run_algo, strip_ansi

ARTIFACTS = {"trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv",
             "report.html", "config.resolved.yaml", "run.json"}
DURATION_METRICS = ("duration", "max_drawdown_duration", "avg_drawdown_duration",
                    "max_trade_duration", "avg_trade_duration")
TRADE_COLUMNS = ("instrument", "strategy", "side", "size", "entry_time", "entry_price", "exit_time",
                 "exit_price", "pnl", "return_pct", "duration")


@pytest.fixture(scope="module")
def sma_run(tmp_path_factory):
    """``algo backtest configs/sma.yaml --output <tmp>`` run once, in-process, from the repo root."""
    out_dir = tmp_path_factory.mktemp("sma") / "artifacts"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["backtest", "configs/sma.yaml", "--output", str(out_dir)])
    return SimpleNamespace(code=code, out=strip_ansi(stdout.getvalue()), err=strip_ansi(stderr.getvalue()),
                           dir=out_dir, config=load_sma_config())


@pytest.fixture(scope="module")
def results(sma_run) -> pd.Series:
    frame = pd.read_csv(sma_run.dir / "results.csv", dtype=str, keep_default_na=False)
    return frame.set_index("metric")["value"]


@pytest.fixture(scope="module")
def trades(sma_run) -> pd.DataFrame:
    return pd.read_csv(sma_run.dir / "trades.csv")


def test_exits_zero_and_writes_every_artifact(sma_run):
    assert sma_run.code == 0, sma_run.err
    # exactly the artifacts: no temporary files left behind by the atomic writes
    assert {p.name for p in sma_run.dir.iterdir()} == ARTIFACTS
    for name in ARTIFACTS:
        assert (sma_run.dir / name).stat().st_size > 0, name
    assert "error" not in sma_run.err.lower()
    assert "Traceback" not in sma_run.err


def test_stdout_shows_statistics_table(sma_run):
    assert sma_run.config["name"] in sma_run.out
    for label in ("Sharpe Ratio", "Return [%]", "Max. Drawdown [%]", "# Trades", "Equity Final"):
        assert label in sma_run.out
    assert str(sma_run.dir) in sma_run.out.replace("\n", "")


def test_results_csv_lists_every_metric_in_order(sma_run, results):
    assert (sma_run.dir / "results.csv").read_text(encoding="utf-8").splitlines()[0] == "metric,value"
    assert list(results.index) == list(METRIC_NAMES)
    assert results.index[0] == "start_date" and results.index[-1] == "kelly_criterion"


def test_results_csv_values_parse(sma_run, results):
    for name in DURATION_METRICS:
        assert isinstance(pd.Timedelta(results[name]), pd.Timedelta), name
    start, end = pd.Timestamp(results["start_date"]), pd.Timestamp(results["end_date"])
    assert end > start
    assert pd.Timedelta(results["duration"]) == end - start
    assert float(results["initial_capital"]) == float(sma_run.config["initial_capital"])
    assert float(results["peak_equity"]) >= max(float(results["final_equity"]), float(results["initial_capital"]))
    for name in set(METRIC_NAMES) - set(DURATION_METRICS) - {"start_date", "end_date"}:
        if results[name] != "":
            float(results[name])  # raises if the value is not a number


def test_trades_csv_is_consistent_with_results(sma_run, results, trades):
    assert set(TRADE_COLUMNS) <= set(trades.columns)
    assert len(trades) == int(results["total_trades"]) > 0
    # Accounting identity: every position is closed by the end, so realised P&L is the equity change.
    equity_change = float(results["final_equity"]) - float(results["initial_capital"])
    assert math.isclose(trades["pnl"].sum(), equity_change, rel_tol=1e-9, abs_tol=0.01)
    assert math.isclose(trades["commission"].sum(), float(results["commissions"]), rel_tol=1e-9, abs_tol=0.01)
    entry, exit_ = pd.to_datetime(trades["entry_time"]), pd.to_datetime(trades["exit_time"])
    assert (exit_ >= entry).all()
    assert (trades["duration"].map(pd.Timedelta) == exit_ - entry).all()
    assert set(trades["side"]) <= {"LONG", "SHORT"}
    assert (trades["size"] == sma_run.config["strategies"][0]["params"]["quantity"]).all()
    # The YAML names NSE_EQ:1333; data/instruments.csv names it, and artifacts use the name.
    assert sma_run.config["strategies"][0]["instruments"][0] == "NSE_EQ:1333"
    assert (trades["instrument"] == "NSE:HDFCBANK").all()
    assert trades["strategy"].nunique() == 1


def test_equity_curve_ends_at_final_equity(sma_run, results):
    equity = pd.read_csv(sma_run.dir / "equity_curve.csv")
    assert {"timestamp", "equity", "cash"} <= set(equity.columns)
    assert equity["equity"].iloc[0] == pytest.approx(float(results["initial_capital"]))
    assert round(equity["equity"].iloc[-1], 2) == round(float(results["final_equity"]), 2)
    assert equity["equity"].max() == pytest.approx(float(results["peak_equity"]), abs=0.01)
    assert pd.to_datetime(equity["timestamp"]).is_monotonic_increasing


def test_every_fill_belongs_to_an_order(sma_run):
    orders = pd.read_csv(sma_run.dir / "orders.csv", dtype={"order_id": str})
    fills = pd.read_csv(sma_run.dir / "fills.csv", dtype={"order_id": str})
    assert len(fills) > 0
    assert orders["order_id"].is_unique
    assert set(fills["order_id"]) <= set(orders["order_id"])
    filled = orders.set_index("order_id")["filled_quantity"]
    per_order = fills.groupby("order_id")["quantity"].sum()
    assert (per_order == filled[per_order.index]).all()


def test_run_json_records_data_file_hash(sma_run):
    meta = json.loads((sma_run.dir / "run.json").read_text(encoding="utf-8"))
    expected = hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest()
    assert len(meta["data_files"]) == 1
    (path, digest), = meta["data_files"].items()
    assert Path(path).resolve() == SAMPLE_CSV.resolve()
    assert digest == expected
    assert meta["config"] == "configs/sma.yaml"


def test_run_json_and_report_name_the_backtest_mode(sma_run):
    meta = json.loads((sma_run.dir / "run.json").read_text(encoding="utf-8"))
    assert meta["mode"] == "backtest"
    page = (sma_run.dir / "report.html").read_text(encoding="utf-8")
    assert f"<title>Backtest report — {sma_run.config['name']}</title>" in page


def test_resolved_config_round_trips(sma_run):
    resolved = yaml.safe_load((sma_run.dir / "config.resolved.yaml").read_text(encoding="utf-8"))
    again = RunConfig.model_validate(resolved)
    written = copy.deepcopy(sma_run.config)
    written["strategies"][0]["instruments"] = ["NSE:HDFCBANK"]  # what ran: the instrument's name
    original = RunConfig.model_validate(written)
    assert again.model_dump(mode="json", by_alias=True) == original.model_dump(mode="json", by_alias=True)
    assert again.content_hash() == original.content_hash()


def test_resolved_config_reproduces_the_run(sma_run, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    rerun = tmp_path / "rerun"
    result = cli("backtest", sma_run.dir / "config.resolved.yaml", "--output", rerun, "--quiet", "--no-report")
    assert result.code == 0, result.err
    for name in ("trades.csv", "equity_curve.csv", "results.csv"):
        assert (rerun / name).read_bytes() == (sma_run.dir / name).read_bytes(), name


def test_output_flag_overrides_output_dir(cli, base_config, write_yaml, tmp_path):
    yaml_dir = Path(base_config["output"]["dir"])
    flag_dir = tmp_path / "from_flag"
    result = cli("backtest", write_yaml(base_config), "--output", flag_dir, "--quiet", "--no-report")
    assert result.code == 0, result.err
    assert (flag_dir / "results.csv").is_file()
    assert not (flag_dir / "report.html").exists()  # --no-report
    assert not yaml_dir.exists()


def test_output_dir_from_yaml_is_used_without_flag(cli, base_config, write_yaml):
    yaml_dir = Path(base_config["output"]["dir"])
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report")
    assert result.code == 0, result.err
    assert (yaml_dir / "trades.csv").is_file()


def test_same_config_gives_byte_identical_csvs(cli, base_config, write_yaml, tmp_path):
    config = write_yaml(base_config)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        result = cli("backtest", config, "--output", out, "--quiet", "--no-report")
        assert result.code == 0, result.err
    csvs = sorted(p.name for p in first.glob("*.csv"))
    assert csvs == sorted(p.name for p in second.glob("*.csv"))
    assert {"trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv"} <= set(csvs)
    for name in csvs:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_missing_config_file_is_a_usage_error(cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = cli("backtest", missing)
    assert result.code == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("error:") and str(missing) in result.err_lines[0]


def test_unknown_flag_is_a_usage_error(cli):
    result = cli("backtest", str(SMA_YAML), "--no-such-flag")
    assert result.code == 2
    assert "--no-such-flag" in result.err
    assert "Traceback" not in result.err


def test_strategy_exception_exits_one_without_traceback(cli, base_config, write_yaml, tmp_path, monkeypatch):
    module = "exploding_strategy_for_cli_test"
    (tmp_path / f"{module}.py").write_text(
        "from algocli import BaseStrategy\n\n"
        "class Explodes(BaseStrategy):\n"
        "    def on_candle(self, candle):\n"
        "        raise RuntimeError('kaboom in on_candle')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    base_config["strategies"] = [{"class": f"{module}:Explodes", "instruments": ["NSE_EQ:1333"]}]
    result = cli("backtest", write_yaml(base_config), "--quiet", "--output", tmp_path / "out")
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error:")
    assert "kaboom in on_candle" in result.err_lines[0]
    assert "Traceback" not in result.err


class TestInstalledConsoleScript:
    """The real ``algo`` executable, in a child process."""

    def test_happy_run(self, tmp_path):
        out = tmp_path / "out"
        proc = run_algo("backtest", "configs/sma.yaml", "--output", str(out), "--quiet", "--no-report")
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "Sharpe Ratio" in proc.stdout
        assert (out / "results.csv").is_file() and (out / "trades.csv").is_file()

    def test_config_error(self, tmp_path):
        cfg = load_sma_config()
        cfg["intervall"] = cfg.pop("interval")
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        proc = run_algo("backtest", str(path))
        assert proc.returncode == 2
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error:") and str(path) in lines[0] and "intervall" in lines[0]
        assert "Traceback" not in proc.stderr
        assert proc.stdout.strip() == ""

        debug = run_algo("--debug", "backtest", str(path))
        assert debug.returncode == 2
        assert "Traceback" in debug.stderr
        assert "ConfigError" in debug.stderr
