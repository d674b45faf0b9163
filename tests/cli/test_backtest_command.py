"""``algo backtest``: exit codes, artifacts and their internal consistency."""

from __future__ import annotations

import copy

import contextlib
import hashlib
import io
import json
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from algocli.analytics.stats import METRIC_NAMES
from algocli.cli.main import main
from algocli.config.run import RunConfig
from algocli.data.csv_feed import CsvFeedConfig
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
    charges = [f"charges_{k}" for k in ("brokerage", "stt", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst",
                                         "total")]
    assert list(results.index) == list(METRIC_NAMES) + charges  # the specification's metrics, then charges
    assert results.index[0] == "start_date" and results.index[len(METRIC_NAMES) - 1] == "kelly_criterion"


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
    paise = 0.005 * (len(trades) + 2)  # each written value is rounded to paise
    assert math.isclose(trades["pnl"].sum(), equity_change, rel_tol=1e-9, abs_tol=paise)
    assert math.isclose(trades["charges"].sum(), float(results["commissions"]), rel_tol=1e-9, abs_tol=paise)
    assert math.isclose(float(results["charges_total"]), float(results["commissions"]), rel_tol=1e-9, abs_tol=paise)
    assert ((trades["gross_pnl"] - trades["charges"] - trades["pnl"]).abs() <= 0.011).all()
    entry, exit_ = pd.to_datetime(trades["entry_time"]), pd.to_datetime(trades["exit_time"])
    assert (exit_ >= entry).all()
    assert (trades["duration"].map(pd.Timedelta) == exit_ - entry).all()
    assert set(trades["side"]) <= {"LONG", "SHORT"}
    assert (trades["size"] == sma_run.config["strategies"][0]["params"]["quantity"]).all()
    # The YAML names NSE:HDFCBANK; data/instruments.csv names its file, and artifacts use the name.
    assert sma_run.config["strategies"][0]["instruments"][0] == "NSE:HDFCBANK"
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
    written["data"] = {**CsvFeedConfig().model_dump(mode="json"), **written["data"]}  # the feed's defaults, written
    for section, key in (("data", "path"), ("output", "dir")):  # relative to configs/, written absolute
        written[section][key] = str((SMA_YAML.parent / written[section][key]).resolve())
    original = RunConfig.model_validate(written)
    assert again.model_dump(mode="json", by_alias=True) == original.model_dump(mode="json", by_alias=True)
    assert again.content_hash() == original.content_hash()
    # no product rules were asked for, so none are written: the resolved file runs without them too
    assert not {"product", "products", "charges", "squareoff", "margin"} & set(resolved["broker"])


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
    base_config["data"]["start"] = "2024-12-02"  # a covered year without the sample's holiday bars: no warning
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


# --- what the report and the table tell a trader ----------------------------------------------


def _table_rows(out: str) -> dict[str, str]:
    """``label -> value`` of the Rich statistics table in ``out``."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def _figure(page: str, key: str) -> dict:
    match = re.search(rf'<section class="chart" data-key="{re.escape(key)}"><div id="([^"]+)"[^>]*></div>'
                      r'<script type="application/json" id="\1-figure">(.*?)</script>', page, re.DOTALL)
    assert match is not None, key
    return json.loads(match[2])


def test_the_daily_report_reads_dates_and_draws_the_smas(sma_run):
    page = (sma_run.dir / "report.html").read_text(encoding="utf-8")
    header = re.search(r"<header>.*?</header>", page, re.DOTALL)[0]
    assert "00:00" not in header and re.search(r"\d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d · [\d,]+ bars", header)
    assert re.search(r'<tr data-key="start_date"><th>Start</th><td>\d{4}-\d\d-\d\d</td>', page)
    candles = next(k for k in re.findall(r'data-key="(candles:[^"]+)"', page))
    figure = _figure(page, candles)
    params = sma_run.config["strategies"][0]["params"]
    names = [t["name"] for t in figure["data"]]
    assert f"SMA({params['fast_period']})" in names and f"SMA({params['slow_period']})" in names
    # closed days are hidden, the Saturday session of 2024-01-20 (which has a bar) is not
    hidden = {v for rb in figure["layout"]["xaxis"]["rangebreaks"] for v in rb.get("values", [])}
    assert {"2024-01-21", "2024-01-22", "2024-06-15", "2024-06-16", "2024-06-17"} <= hidden
    assert "2024-01-20" not in hidden
    assert "monthly_returns" in page and 'data-key="daily_returns"' not in page
    assert not _table_rows(sma_run.out)["Sharpe Ratio"].endswith("*")  # six years: nothing to mark


def test_a_short_run_marks_annualised_figures_and_shows_daily_returns(cli, base_config, write_yaml, tmp_path):
    base_config["data"].update(start="2024-05-01", end="2024-07-15")  # 53 sessions, one trade
    out = tmp_path / "short"
    result = cli("backtest", write_yaml(base_config), "--output", out, "--quiet")
    assert result.code == 0, result.err
    rows = _table_rows(result.out)
    for label in ("Return (Ann.) [%]", "CAGR [%]", "Volatility (Ann.) [%]", "Sharpe Ratio", "Sortino Ratio"):
        assert rows[label].endswith(" *"), (label, rows[label])
    assert not rows["Return [%]"].endswith("*") and not rows["Max. Drawdown [%]"].endswith("*")
    assert re.search(r"\* annualised from \d+ sessions, fewer than 63", " ".join(result.out.split()))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-key="daily_returns"' in page and 'data-key="monthly_returns"' not in page
    assert '<tr data-key="sharpe_ratio" class="short-sample">' in page


def test_a_multi_strategy_report_has_the_per_strategy_table(cli, base_config, write_yaml, tmp_path):
    first = base_config["strategies"][0]
    first["id"] = "sma"
    base_config["strategies"].append({"id": "rsi", "class": "rsi_mean_reversion", "instruments": first["instruments"],
                                      "params": {"period": 14, "oversold": 35, "overbought": 65, "quantity": 10}})
    out = tmp_path / "multi"
    result = cli("backtest", write_yaml(base_config), "--output", out, "--quiet")
    assert result.code == 0, result.err
    assert "per strategy" in result.out
    page = (out / "report.html").read_text(encoding="utf-8")
    trades = pd.read_csv(out / "trades.csv")
    for sid, cls in (("sma", "SmaCrossover"), ("rsi", "RsiMeanReversion")):
        row = re.search(rf'<tr data-strategy="{sid}"><th>{sid}</th><th>{cls}</th><td>[^<]+</td><td>(\d+)</td>', page)
        assert row is not None, sid
        assert int(row[1]) == int((trades["strategy"] == sid).sum())
    names = [t["name"] for t in _figure(page, next(iter(re.findall(r'data-key="(candles:[^"]+)"', page))))["data"]]
    assert {"SMA(10)", "SMA(20)", "RSI(14)"} <= set(names)


# --- the output folder: checked before any work; a later write failure names the file -------------------------

def _fsize_limit(limit: int):
    """``preexec_fn`` that caps the size of any file the child writes, as a full disk would stop it."""
    import resource

    def _apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail EFBIG

    return _apply


def _algo_capped(config: Path, out: Path, limit: int):
    import os
    import subprocess

    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "algo"), "backtest", str(config), "--output", str(out),
                           "--quiet"], env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=_fsize_limit(limit))


def test_output_naming_a_file_fails_before_the_run(cli, base_config, write_yaml, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me\n")
    result = cli("backtest", write_yaml(base_config), "--output", taken, "--quiet")
    assert result.code == 2, result.err
    assert result.err_lines == [f"error: {taken}: is a file, not a folder; pass another --output or change "
                                "output.dir"]
    assert "Sharpe" not in result.out  # no statistics: the run never started
    assert taken.read_text() == "keep me\n"


def test_output_naming_the_data_folder_is_refused_before_the_run(cli, base_config, write_yaml, data_dir):
    before = sorted(p.name for p in data_dir.iterdir())
    for config in (base_config, {**base_config, "output": {"dir": base_config["data"]["path"]}}):
        result = cli("backtest", write_yaml(config), "--quiet", *(() if config is not base_config else
                                                                   ("--output", data_dir)))
        assert result.code == 2, result.err
        assert result.err_lines == [f"error: {data_dir}: is the run's data folder (data.path); the artifacts' CSV "
                                    "files would mix with the candle files there; pass another --output or change "
                                    "output.dir"]
    assert sorted(p.name for p in data_dir.iterdir()) == before  # no artifact joined the candle files


def test_a_full_disk_is_refused_before_the_run(base_config, write_yaml, tmp_path):
    proc = _algo_capped(write_yaml(base_config), tmp_path / "out", limit=1024)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {tmp_path / 'out'}: the output folder cannot be written" in proc.stderr
    assert "File too large" in proc.stderr and "internal error" not in proc.stderr
    assert "Sharpe" not in proc.stdout and not (tmp_path / "out").exists()


def test_a_write_that_fails_later_names_the_file_and_keeps_the_older_set(base_config, write_yaml, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ARTIFACTS:
        (out / name).write_text(f"older {name}\n")
    proc = _algo_capped(write_yaml(base_config), out, limit=10_000)  # the probe fits; orders.csv does not
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {out}/") and ": could not be written (File too large)" in line, line
    assert {p.name: p.read_text() for p in out.iterdir()} == {n: f"older {n}\n" for n in ARTIFACTS}


def _half_up(value: float) -> float:
    """Rupees rounded half-up to paise, as contract notes round each charge."""
    from decimal import ROUND_HALF_UP, Decimal

    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_the_intraday_charges_config_books_each_charge_by_kind(tmp_path):
    """``configs/intraday-charges.yaml``: every fill of an NSE intraday equity run in June 2024
    carries Dhan's brokerage and the statutory charges of that date, worked here from the
    published rates, and the files' totals agree with each other."""
    done = run_algo("backtest", "configs/intraday-charges.yaml", "--output", str(tmp_path), "--no-report")
    assert done.returncode == 0, done.stderr
    fills = pd.read_csv(tmp_path / "fills.csv")
    trades = pd.read_csv(tmp_path / "trades.csv")
    orders = pd.read_csv(tmp_path / "orders.csv", keep_default_na=False)
    squared = set(orders.loc[orders["tag"] == "auto-squareoff", "order_id"])
    assert squared, "the INTRADAY run must be squared off at 15:20 on some day for this test to mean anything"
    results = pd.read_csv(tmp_path / "results.csv", dtype=str).set_index("metric")["value"]
    assert len(fills) >= 4 and set(fills["time"].str[:10]) <= {f"2024-06-{d:02d}" for d in range(10, 15)}
    for f in fills.itertuples():
        value, buy = f.quantity * f.price, f.side == "BUY"
        # Dhan: 0.03 % or Rs 20 an executed order, whichever is lower (https://dhan.co/pricing/)
        brokerage = _half_up(min(20.0, value * 0.0003))
        if f.order_id in squared:  # Dhan's fee for a position it squares off: Rs 20 plus GST (same page)
            brokerage += 20.0
        # STT 0.025 % on the intraday sell side
        # (https://tradingqna.com/t/sebi-and-stt-what-is-the-history-around-stt/185139/3);
        # NSE transaction charge 0.00322 % from 2024-04-01 to 2024-09-30 (https://upstox.com/pricing/pro-plan/);
        # IPFT Rs 10 a crore (https://support.infinn.in/portal/en/kb/articles/what-are-nse-investor-
        # protection-fund-trust-ipft-charges); SEBI Rs 10 a crore
        # (https://taxguru.in/sebi/sebi-payment-of-fees-amendment-regulations-2019.html);
        # stamp duty 0.003 % on the intraday buy side
        # (https://nseindia.com/invest/first-time-investor-stamp-duty-charges-taxes)
        stt = 0.0 if buy else _half_up(value * 0.00025)
        exchange = _half_up(value * 0.0000322)
        ipft = _half_up(value * 0.000001)
        sebi = _half_up(value * 0.000001)
        stamp = _half_up(value * 0.00003) if buy else 0.0
        gst = _half_up(0.18 * (brokerage + exchange + ipft + sebi))  # 18 % of the rounded fees
        expected = (brokerage, stt, exchange, ipft, sebi, stamp, 0.0, gst)
        got = (f.brokerage, f.stt, f.exchange_txn, f.ipft, f.sebi, f.stamp, f.dp, f.gst)
        assert got == pytest.approx(expected, abs=1e-9), f
        assert f.charges == pytest.approx(sum(expected), abs=1e-9)
    for kind in ("brokerage", "stt", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst"):
        assert float(results[f"charges_{kind}"]) == pytest.approx(fills[kind].sum(), abs=0.005)
    assert float(results["charges_total"]) == pytest.approx(fills["charges"].sum(), abs=0.005)
    assert float(results["commissions"]) == pytest.approx(fills["charges"].sum(), abs=0.005)
    assert ((trades["gross_pnl"] - trades["charges"] - trades["pnl"]).abs() <= 0.011).all()


def test_the_futures_config_shows_cash_and_available_margin_apart(tmp_path):
    """``configs/futures.yaml`` (MARGIN, 2 lots): while a position is open, equity less available
    margin is 15 % of the contract's value at that bar's close (the shipped futures margin),
    computed here from the data file; with no position the two are equal."""
    done = run_algo("backtest", "configs/futures.yaml", "--output", str(tmp_path), "--no-report")
    assert done.returncode == 0, done.stderr
    curve = pd.read_csv(tmp_path / "equity_curve.csv", parse_dates=["timestamp"]).set_index("timestamp")
    fills = pd.read_csv(tmp_path / "fills.csv", parse_dates=["time"])
    minutes = pd.read_csv(REPO_ROOT / "data" / "futures" / "NSE_FNO_53216.csv", parse_dates=["timestamp"])
    minutes = minutes.set_index("timestamp")["close"].tz_localize("Asia/Kolkata")  # the file's times are IST
    signed = fills["quantity"].where(fills["side"] == "BUY", -fills["quantity"])
    held = signed.groupby(fills["time"]).sum().cumsum().reindex(curve.index, method="ffill").fillna(0)
    checked = 0
    for ts, row in curve.iterrows():
        if held[ts] == 0:
            assert row["available_margin"] == pytest.approx(row["equity"], abs=0.01)
            continue
        close = minutes[(minutes.index >= ts) & (minutes.index < ts + pd.Timedelta(minutes=15))].iloc[-1]
        assert row["equity"] - row["available_margin"] == pytest.approx(0.15 * abs(held[ts]) * close, abs=0.02)
        checked += 1
    assert checked > 10
    for name in ("trades.csv", "fills.csv", "orders.csv"):  # a future carries its expiry into every table
        assert set(pd.read_csv(tmp_path / name, dtype=str)["expiry"]) == {"2024-06-27"}, name


def test_the_summary_and_report_show_charges_gross_net_and_the_drag(tmp_path):
    """A run with Dhan's charges prints its charges total, gross and net P&L and the cost drag
    (charges as a percent of the gross profit), agreeing with results.csv; its report holds the
    charges by kind and marks the broker's square-offs on the price chart."""
    done = run_algo("backtest", "configs/intraday-charges.yaml", "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    out = strip_ansi(done.stdout)
    rows = dict(re.findall(r"│ (Charges \[₹\]|Gross P&L \[₹\]|Net P&L \[₹\]|Cost drag)\s*│\s*([^│]+?)\s*│", out))
    results = pd.read_csv(tmp_path / "results.csv", dtype=str).set_index("metric")["value"]
    total, final, capital = (float(results[k]) for k in ("charges_total", "final_equity", "initial_capital"))
    net = final - capital
    assert float(rows["Charges [₹]"].replace(",", "")) == pytest.approx(total, abs=0.005)
    assert float(rows["Net P&L [₹]"].replace(",", "")) == pytest.approx(net, abs=0.01)
    assert float(rows["Gross P&L [₹]"].replace(",", "")) == pytest.approx(net + total, abs=0.01)
    assert net + total > 0, "the drag's percent is defined for a gross profit: this run must have one"
    assert rows["Cost drag"] == f"{total / (net + total) * 100:.2f}% of gross profit"
    assert "Commissions [₹]" not in out
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<section class="charges">' in page and '"type":"waterfall"' in page
    assert '"name":"Auto square-off (MIS)"' in page


def test_a_flat_commission_run_shows_its_commissions_without_a_drag(sma_run):
    assert re.search(r"Commissions \[₹\]\s*│\s*[\d,.]+", sma_run.out)
    assert "Cost drag" not in sma_run.out and "Gross P&L" not in sma_run.out
    assert '<section class="charges">' not in (sma_run.dir / "report.html").read_text(encoding="utf-8")


def test_warmup_bars_leave_no_trace_in_any_csv(cli, base_config, write_yaml, tmp_path):
    """A strategy without indicators: with 100 warm-up bars, every CSV is the run from data.start's."""
    runs = {}
    for name, warmup in (("plain", {}), ("warm", {"warmup": 100})):
        cfg = copy.deepcopy(base_config)
        cfg["data"].update(start="2021-03-01", end="2021-09-30", **warmup)
        cfg["strategies"] = [{"class": "engine.warmup_strategies:Weekdays", "instruments": ["NSE:HDFCBANK"]}]
        runs[name] = tmp_path / name
        result = cli("backtest", write_yaml(cfg, f"{name}.yaml"), "--output", runs[name], "--quiet", "--no-report")
        assert result.code == 0, result.err
    csvs = sorted(p.name for p in runs["plain"].glob("*.csv"))
    assert {"trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv"} <= set(csvs)
    assert len((runs["plain"] / "trades.csv").read_text().splitlines()) > 10
    for name in csvs:
        assert (runs["warm"] / name).read_bytes() == (runs["plain"] / name).read_bytes(), name


def test_too_few_warmup_bars_is_one_line_and_exit_2(cli, base_config, write_yaml):
    cfg = copy.deepcopy(base_config)
    cfg["data"].update(start="2019-01-10", warmup=20)
    # the data begins on 2019-01-01: 7 sessions before the 10th; the 20th is on the 28th (1-4, 7-11, 14-18, 21-25, 28)
    result = cli("backtest", write_yaml(cfg), "--quiet", "--no-report")
    assert result.code == 2 and len(result.err_lines) == 1, result.err
    assert "data.warmup: 20 needs 20 1d bars before data.start 2019-01-10, but the file has 7 (from 2019-01-01); " \
           "lower data.warmup to 7, set data.start to 2019-01-29 or later" in result.err
    assert "Traceback" not in result.err
