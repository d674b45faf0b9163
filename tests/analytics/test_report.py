"""The HTML report page: its tables, the figure JSON it carries, its cost, and how it renders in Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algocli.analytics.plotdata import TRADE_MARKER_CAP
from algocli.analytics.report import format_metric, write_report
from algocli.domain.models import IST_OFFSET_NS
from algocli.domain.modes import RunMode
from analytics.report_support import INSTRUMENTS, NO_HOLIDAYS, expected_charts, make_result, read_of, with_charges

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import ChromiumMissing, find_chromium, render_page  # noqa: E402


def page_figures(text: str) -> dict[str, dict]:
    """The figure JSON of each chart of a written page, by the chart's key."""
    found = re.findall(r'<section class="chart" data-key="([^"]+)"><div id="([^"]+)"[^>]*></div>'
                       r'<script type="application/json" id="\2-figure">(.*?)</script>', text, re.DOTALL)
    return {key: json.loads(body) for key, _, body in found}


@pytest.fixture(scope="module")
def chromium_ok() -> None:
    try:
        find_chromium()
    except ChromiumMissing as exc:
        pytest.fail(str(exc))


# --------------------------------------------------------------------------- helpers


def test_format_metric():
    assert format_metric(float("nan")) == "—"
    assert format_metric(None) == "—"
    assert format_metric(pd.NaT) == "—"
    assert format_metric(1234567.891) == "1,234,567.89"
    assert format_metric(1.23456) == "1.23"
    assert format_metric(0.0123456) == "0.01" and format_metric(0.896) == "0.90"  # as the terminal shows them
    assert format_metric(0.00123456) == "0.001235"  # not 0.00
    assert format_metric(-0.0) == format_metric(0.0) == "0.00"  # a run with no drawdown is not "-0"
    assert format_metric(np.float64(-2.5)) == "-2.50"
    assert format_metric(42) == "42" and format_metric(np.int64(12_000)) == "12,000"
    assert format_metric(pd.Timedelta(days=3, hours=4)) == "3 days 04:00:00"
    assert format_metric(float("inf")) == "∞"
    assert format_metric(pd.Timestamp("2024-01-01 03:45", tz="UTC")) == "2024-01-01 09:15"
    assert format_metric("abc") == "abc"


def test_zero_trades(tmp_path):
    out = write_report(make_result(n_trades=0), tmp_path / "r.html", mode=RunMode.BACKTEST)
    figures = page_figures(out.read_text(encoding="utf-8"))
    assert "No closed trades" in figures["trade_returns"]["layout"]["annotations"][0]["text"]


def test_write_report_is_self_contained_and_atomic(tmp_path):
    result = make_result()
    target = tmp_path / "nested" / "report.html"
    assert write_report(result, target, mode=RunMode.BACKTEST) == target
    text = target.read_text(encoding="utf-8")
    assert text.count("<title>Backtest report — report-test</title>") == 1
    assert re.search(r"<script[^>]*\bsrc=", text) is None  # nothing loaded from elsewhere
    assert text.count("Plotly.newPlot") == expected_charts(result)
    assert len(text) > 3_000_000  # plotly.js is inline
    assert "Sharpe" in text and "41 days 03:00:00" in text and "—" in text
    assert "1 position closed at the last bar" in text
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left behind
    write_report(result, target, mode=RunMode.BACKTEST)  # overwrite in place
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_a_large_result_writes_a_small_page(tmp_path):
    """(How fast it is written is measured with the command by benchmarks/bench_sma.py.)"""
    result = make_result(n_bars=200_000, n_trades=TRADE_MARKER_CAP + 1_000, intraday=True)
    out = write_report(result, tmp_path / "big.html", mode=RunMode.BACKTEST)
    size = out.stat().st_size
    assert size < 8_000_000, f"{size:,} bytes"
    equity = page_figures(out.read_text(encoding="utf-8"))["equity"]["data"][0]
    assert equity["y"]["dtype"] == "f8"  # numbers travel as typed arrays, not decimal text
    assert max(np.frombuffer(__import__("base64").b64decode(equity["y"]["bdata"]))) == result.equity.max()


@pytest.mark.parametrize(("mode", "title"), [
    (RunMode.BACKTEST, "Backtest report"), (RunMode.PAPER, "Paper trading report"),
    (RunMode.DRY_RUN, "Live trading (dry run) report"), (RunMode.LIVE, "Live trading report")])
def test_the_page_names_the_runs_mode_in_its_title_and_heading(tmp_path, mode, title):
    result = make_result(n_bars=30, n_trades=2)
    text = write_report(result, tmp_path / "report.html", mode=mode).read_text(encoding="utf-8")
    assert text.count(f"<title>{title} — report-test</title>") == 1
    assert text.count(f"<h1>{title} — report-test</h1>") == 1
    for other in RunMode:
        if other is not mode:
            assert f">{other.title} report — " not in text, other


# --------------------------------------------------------------------------- browser


def test_report_renders_in_chromium(tmp_path, chromium_ok):
    result = make_result()
    page = write_report(result, tmp_path / "report.html", mode=RunMode.BACKTEST)
    summary = render_page(page)
    assert summary["errors"] == [], summary["errors"]
    assert summary["has_plotly"]
    assert summary["title"] == "Backtest report — report-test"
    charts = expected_charts(result)
    assert summary["plots"] == charts, summary
    assert summary["plots_rendered"] == charts, summary
    assert summary["main_svg"] >= charts
    assert all(n > 0 for n in summary["traces"]), summary["traces"]
    assert len(summary["tables"]) == 2 and "sharpe" in summary["tables"][0].lower()
    assert "—" in summary["tables"][0]
    assert [line.split("\t")[0] for line in summary["tables"][1].splitlines()[1:]] == list(result.strategies)


def test_report_without_trades_renders_in_chromium(tmp_path, chromium_ok):
    result = make_result(n_trades=0)
    summary = render_page(write_report(result, tmp_path / "report.html", mode=RunMode.BACKTEST))
    assert summary["errors"] == [], summary["errors"]
    assert summary["plots"] == summary["plots_rendered"] == expected_charts(result)


def test_empty_run_still_writes(tmp_path):
    result = make_result(n_bars=30, n_trades=0)
    empty = np.empty(0)
    result.index, result.equity, result.cash, result.benchmark = result.index[:0], empty, empty, empty
    result.strategy_pnl = {k: empty for k in result.strategy_pnl}
    result.bars = {k: b.slice(0, 0) for k, b in result.bars.items()}
    result.metrics = {}
    text = write_report(result, tmp_path / "empty.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == expected_charts(result)
    assert "No statistics" in text


# --------------------------------------------------------------------------- what a trader reads


def test_the_page_carries_each_figure_with_its_time_gaps(tmp_path):
    result = make_result(n_bars=375 * 6, n_trades=6, intraday=True)
    text = write_report(result, tmp_path / "report.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    figures = page_figures(text)
    assert len(figures) == expected_charts(result)
    for key in ("equity", "drawdown", *(f"candles:{i}" for i in INSTRUMENTS)):
        breaks = figures[key]["layout"]["xaxis"]["rangebreaks"]
        assert {"bounds": ["sat", "mon"]} in breaks and {"pattern": "hour", "bounds": [15.5, 9.25]} in breaks, key


def test_annualised_figures_of_a_short_run_are_marked(tmp_path):
    short = make_result(n_bars=4, n_trades=2)
    short.metrics.update(annualized_return_pct=-79.5, cagr_pct=-79.5, volatility_ann_pct=12.0)
    text = write_report(short, tmp_path / "short.html", mode=RunMode.PAPER).read_text(encoding="utf-8")
    marked = set(re.findall(r'<tr data-key="([a-z_]+)" class="short-sample">', text))
    # sortino_ratio is NaN here: a missing figure needs no mark
    assert marked == {"annualized_return_pct", "cagr_pct", "volatility_ann_pct", "sharpe_ratio"}
    assert "annualised from 4 sessions, fewer than 63" in text
    long = make_result(n_bars=63, n_trades=2, start=NO_HOLIDAYS)  # 63 sessions
    text = write_report(long, tmp_path / "long.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    assert 'class="short-sample"' not in text and "annualised from" not in text


def test_a_short_run_counts_the_exchange_sessions_not_weekdays():
    from datetime import date, datetime

    from algocli.analytics.stats import short_sample_note

    # 13-27 Jun 2024: eleven weekdays, and Mon 17 Jun (Bakri Id) the exchange was shut
    note = short_sample_note({"start_date": datetime(2024, 6, 13, 9, 15), "end_date": datetime(2024, 6, 27, 15, 29)})
    assert note is not None and note.startswith("annualised from 10 sessions,")
    # 1 Jan - 28 Mar 2024: 64 weekdays, 62 sessions (4 holidays, 2 Saturday sessions): still short
    note = short_sample_note({"start_date": date(2024, 1, 1), "end_date": date(2024, 3, 28)})
    assert note is not None and note.startswith("annualised from 62 sessions,")


def test_a_short_run_shows_daily_returns(tmp_path):
    text = write_report(make_result(n_bars=4), tmp_path / "r.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    figures = page_figures(text)
    assert "monthly_returns" not in figures
    assert figures["daily_returns"]["data"][0]["x"] == ["Mon", "Tue", "Wed", "Thu", "Fri"]


def test_a_multi_strategy_page_has_the_per_strategy_table(tmp_path):
    result = make_result(n_trades=30)
    text = write_report(result, tmp_path / "r.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    for sid, cls in result.strategies.items():
        row = re.search(rf'<tr data-strategy="{sid}"><th>{sid}</th><th>{cls}</th><td>([^<]+)</td><td>(\d+)</td>', text)
        assert row is not None, sid
        assert row[1] == format_metric(float(result.strategy_pnl[sid][-1]))
        assert int(row[2]) == int((result.trades["strategy"] == sid).sum())
    single = make_result(strategies={"sma": "SmaCrossover"})
    single_text = write_report(single, tmp_path / "one.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    assert "data-strategy=" not in single_text


def test_a_daily_run_shows_dates_without_midnight_times(tmp_path):
    result = make_result(n_bars=30, n_trades=2)
    result.index = result.index.normalize()  # daily bars are stamped at IST midnight
    result.metrics.update(start_date=result.index[0], end_date=result.index[-1])
    text = write_report(result, tmp_path / "r.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    header = re.search(r"<header>.*?</header>", text, re.DOTALL)[0]
    assert "2023-01-02 → 2023-02-10 · 30 bars" in header and "00:00" not in header
    assert '<tr data-key="start_date"><th>Start</th><td>2023-01-02</td>' in text
    intraday = write_report(make_result(n_bars=30, intraday=True), tmp_path / "i.html", mode=RunMode.BACKTEST)
    assert "2015-01-01 09:15 → 2015-01-01 09:44 IST" in intraday.read_text(encoding="utf-8")


def test_writing_a_report_does_not_import_plotly(tmp_path):
    """plotly's Python package costs more to import than the report costs to write."""
    code = ("import sys; from pathlib import Path; from analytics.report_support import make_result; "
            "from algocli.analytics.report import write_report; from algocli.domain.modes import RunMode; "
            f"write_report(make_result(), Path({str(tmp_path / 'r.html')!r}), mode=RunMode.BACKTEST); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', '_plotly_utils')))")
    tests = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tests.parent,
                          env={"PYTHONPATH": f"{tests.parent}:{tests}"}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_indicators_and_a_short_run_render_in_chromium(tmp_path, chromium_ok):
    result = make_result(n_bars=40, n_trades=4, intraday=True)
    bars = result.bars[INSTRUMENTS[0]]
    result.indicators = [read_of(bars, "BBANDS", "Overlap Studies", timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0),
                         read_of(bars, "RSI", "Momentum Indicators", timeperiod=14)]
    summary = render_page(write_report(result, tmp_path / "report.html", mode=RunMode.PAPER))
    assert summary["errors"] == [], summary["errors"]
    assert summary["plots"] == summary["plots_rendered"] == expected_charts(result)
    candles = summary["plot_ids"].index("chart-2-candles-NSE_EQ-1333")
    assert summary["traces"][candles] == 2 + 3 + 1 + 3  # candles, volume, 3 bands, RSI, trade markers
    rows = dict(line.split("\t", 1) for line in summary["tables"][0].splitlines())
    assert rows["Sharpe Ratio"] == "1.23 *" and rows["Return [%]"].endswith("*") is False


def test_the_time_axis_hides_the_nse_holidays_and_keeps_a_data_gap(tmp_path):
    from dataclasses import replace

    from algocli.analytics.report import run_holidays
    from algocli.persistence.artifacts import RunDescription, write_run_artifacts
    from analytics.report_support import make_bars

    # 10-28 June 2024 without 17 June (Bakri Id, a holiday) and 19 June (a trading day the data lacks).
    days = [d for d in pd.bdate_range("2024-06-10", "2024-06-28") if d.day not in (17, 19)]
    ts = pd.DatetimeIndex(days).as_unit("ns").asi8 + (9 * 60 + 15) * 60 * 10**9 - IST_OFFSET_NS
    base = make_result(n_bars=len(ts), n_trades=0)
    result = replace(base, index=pd.DatetimeIndex(ts, tz="UTC").tz_convert(base.index.tz),
                     bars={i: make_bars(i, ts, k) for k, i in enumerate(INSTRUMENTS)})
    assert date(2024, 6, 17) in run_holidays(result) and date(2024, 6, 19) not in run_holidays(result)
    write_run_artifacts(result, tmp_path, RunDescription(RunMode.BACKTEST, "run.yaml", "0" * 8, {}))
    figures = page_figures((tmp_path / "report.html").read_text(encoding="utf-8"))
    hidden = [b["values"] for b in figures["equity"]["layout"]["xaxis"]["rangebreaks"] if "values" in b]
    assert hidden == [["2024-06-17"]]  # the data gap on the 19th stays visible


def test_a_run_with_charges_shows_them_by_kind_with_gross_against_net(tmp_path):
    result = with_charges(make_result(n_bars=60, n_trades=2))
    result.equity = np.full(60, result.initial_capital + 60.24)  # gross 120.48, net 60.24: a drag of 50%
    result.metrics = {**result.metrics, "commissions": 60.24}
    text = write_report(result, tmp_path / "r.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    table = re.search(r'<section class="charges">(.*?)</section>', text, re.DOTALL).group(1)
    cells = dict(re.findall(r'<tr data-key="([^"]+)"><th>[^<]*</th><td>([^<]*)</td>', table))
    assert cells["brokerage"] == "40.00" and cells["stt"] == "2.50" and cells["gst"] == "15.19"
    assert cells["stamp"] == "0.45" and cells["dp"] == "0.00" and cells["total"] == "60.24"
    assert cells["gross_pnl"] == "120.48" and cells["net_pnl"] == "60.24"
    assert cells["cost_drag"] == "60.24" and cells["cost_drag_pct"] == "50.00%"
    assert "estimated" not in table
    assert page_figures(text)["charges"]["data"][0]["type"] == "waterfall"
    # the statistics' commissions row is the charges' total, named as the terminal names it
    assert re.search(r'<tr data-key="commissions"><th>Charges \[₹\]</th>', text)


def test_estimated_live_charges_are_said_to_be_estimates(tmp_path):
    result = with_charges(make_result(n_bars=60, n_trades=2), estimated=True)
    text = write_report(result, tmp_path / "r.html", mode=RunMode.LIVE).read_text(encoding="utf-8")
    assert "2 live fill(s) carry estimated charges" in text


def test_a_flat_commission_run_has_no_charges_section(tmp_path):
    result = make_result(n_bars=60, n_trades=2)
    result.metrics = {**result.metrics, "commissions": 12.5}
    text = write_report(result, tmp_path / "r.html", mode=RunMode.BACKTEST).read_text(encoding="utf-8")
    assert '<section class="charges">' not in text and "charges" not in page_figures(text)
    assert re.search(r'<tr data-key="commissions"><th>Commissions \[₹\]</th>', text)
