"""``write_run_artifacts``: a script writes a finished run's artifacts without the CLI, and
every file names the run's mode where it names one."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from algocli.config.run import load_run_config
from algocli.domain.modes import RunMode
from algocli.engine.assemble import assemble_backtest
from algocli.errors import ArtifactError
from algocli.persistence.artifacts import (ARTIFACTS, MONEY_METRICS, RunDescription,
                                           write_run_artifacts)
from cli.cli_support import REPO_ROOT, SAMPLE_CSV

CONFIG = REPO_ROOT / "configs" / "sma.yaml"
CSVS = ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv")


@pytest.fixture(scope="module")
def finished():
    """configs/sma.yaml backtested through the library (no Typer)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        assembled = assemble_backtest(load_run_config(CONFIG), str(CONFIG))
        return assembled.backtest.run(), assembled


def _description(assembled, mode: RunMode) -> RunDescription:
    return RunDescription(mode, str(CONFIG), assembled.config.content_hash(), assembled.resolved(),
                          assembled.data_files, ["a warning"])


def test_a_script_writes_every_artifact_of_a_run(tmp_path, finished):
    result, assembled = finished
    out = tmp_path / "nested" / "run"
    paths = write_run_artifacts(result, out, _description(assembled, RunMode.BACKTEST), elapsed_s=2.25)
    assert [p.name for p in paths] == [*CSVS, "config.resolved.yaml", "report.html", "run.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temp file left behind
    assert all(p.stat().st_size > 0 for p in paths)
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["mode"] == "backtest" and meta["config"] == str(CONFIG)
    assert meta["config_hash"] == assembled.config.content_hash()
    assert meta["elapsed_seconds"] == 2.25 and meta["bars"] == len(result.index)
    assert meta["notes"] == [*result.notes, "a warning"]
    assert {Path(p).resolve(): h for p, h in meta["data_files"].items()} == {
        SAMPLE_CSV.resolve(): hashlib.sha256(SAMPLE_CSV.read_bytes()).hexdigest()}
    assert yaml.safe_load((out / "config.resolved.yaml").read_text(encoding="utf-8")) == assembled.resolved()
    assert len((out / "trades.csv").read_text(encoding="utf-8").splitlines()) == len(result.trades) + 1


@pytest.mark.parametrize(("mode", "title"), [(RunMode.PAPER, "Paper trading report"),
                                            (RunMode.DRY_RUN, "Live trading (dry run) report"),
                                            (RunMode.LIVE, "Live trading report")])
def test_run_json_and_the_report_name_the_mode(tmp_path, finished, mode, title):
    result, assembled = finished
    write_run_artifacts(result, tmp_path, _description(assembled, mode))
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["mode"] == mode.value
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"<title>{title} — {result.name}</title>" in page and "Backtest report" not in page


def test_run_json_records_the_installed_versions(tmp_path, finished):
    from importlib import metadata

    result, assembled = finished
    write_run_artifacts(result, tmp_path, _description(assembled, RunMode.BACKTEST))
    packages = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["packages"]
    for dist, version in packages.items():
        try:
            assert version == metadata.version(dist), dist
        except metadata.PackageNotFoundError:
            assert version is None, dist
    assert packages["numpy"] == metadata.version("numpy") and packages["rich"] is not None


def test_without_the_report_the_rest_is_written(tmp_path, finished):
    result, assembled = finished
    paths = write_run_artifacts(result, tmp_path, _description(assembled, RunMode.PAPER), report=False)
    assert [p.name for p in paths] == [*CSVS, "config.resolved.yaml", "run.json"]
    assert not (tmp_path / "report.html").exists()


def _older_set(out: Path) -> dict[str, bytes]:
    """Fill ``out`` with an older run's set (every artifact name) plus a paper run's own files."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        (out / name).write_text(f"older {name}\n", encoding="utf-8")
    (out / "journal.jsonl").write_text('{"k": "candle"}\n', encoding="utf-8")
    (out / "risk_state.json").write_text('{"state": "HALTED"}\n', encoding="utf-8")
    (out / "dry-run").mkdir(exist_ok=True)
    (out / "dry-run" / "journal.jsonl").write_text("dry\n", encoding="utf-8")
    return _snapshot(out)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_ctrl_c_while_writing_leaves_the_whole_older_set(tmp_path, finished, monkeypatch):
    result, assembled = finished
    before = _older_set(tmp_path)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # after trades.csv and orders.csv, while the child writes the curve

    monkeypatch.setattr("algocli.persistence.artifacts.write_fills", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_run_artifacts(result, tmp_path, _description(assembled, RunMode.PAPER))
    assert _snapshot(tmp_path) == before  # nothing new, nothing lost, no staging folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*ARTIFACTS, "journal.jsonl", "risk_state.json",
                                                                 "dry-run"])


def test_a_new_set_replaces_the_older_one_and_keeps_the_journal(tmp_path, finished):
    result, assembled = finished
    before = _older_set(tmp_path)
    paths = write_run_artifacts(result, tmp_path, _description(assembled, RunMode.PAPER), report=False)
    after = _snapshot(tmp_path)
    assert not (tmp_path / "report.html").exists()  # --no-report: the older report is not left beside new CSVs
    for name in ("journal.jsonl", "risk_state.json", "dry-run/journal.jsonl"):
        assert after[name] == before[name], name
    assert all(after[p.name] != before[p.name] for p in paths)
    assert set(after) == {p.name for p in paths} | {"journal.jsonl", "risk_state.json", "dry-run/journal.jsonl"}


def test_a_file_that_cannot_be_written_is_named(tmp_path, finished):
    result, assembled = finished
    before = _older_set(tmp_path)
    (tmp_path / "results.csv").unlink()
    (tmp_path / "results.csv").mkdir()  # a folder where a file must go: the rename into place fails
    (tmp_path / "results.csv" / "keep").write_text("x")
    with pytest.raises(ArtifactError, match=rf"^{tmp_path / 'results.csv'}: could not be written \(.*\); "):
        write_run_artifacts(result, tmp_path, _description(assembled, RunMode.BACKTEST))
    del before["results.csv"]
    assert _snapshot(tmp_path) == {**before, "results.csv/keep": b"x"}  # the older set, whole; no staging left


# --- what the CSVs say: rounded for reading, never "-0.0", broker ids, the ids the run used ---------------------

MONEY = re.compile(r"^-?\d+\.\d{1,2}$")  # tables write the rounded number in its shortest form: 43.66, 10.9
FIXED_MONEY = re.compile(r"^-?\d+\.\d\d$")  # statistics: always two places


def test_money_is_written_to_paise_and_prices_to_the_ticks_decimals(tmp_path, finished):
    result, assembled = finished
    trades = result.trades.copy()
    trades.loc[0, "entry_price"] = 711.711  # an average of fills: off the 0.05 tick, and not moved onto it
    trades.loc[0, "pnl"] = -0.001  # rounds to zero: must not read "-0.00"
    trades.loc[0, "return_pct"] = -0.0
    tiny = replace(result, trades=trades, equity=np.full_like(result.equity, -0.001))
    write_run_artifacts(tiny, tmp_path, _description(assembled, RunMode.BACKTEST), report=False)
    rows = list(csv.DictReader((tmp_path / "trades.csv").open(encoding="utf-8")))
    assert rows[0]["entry_price"] == "711.71" and rows[0]["pnl"] == "0.0" and rows[0]["return_pct"] == "0.0"
    for row in rows:
        assert MONEY.match(row["pnl"]) and MONEY.match(row["charges"]) and MONEY.match(row["gross_pnl"]), row
        for key in ("entry_price", "exit_price"):
            on_tick = round(float(row[key]) * 20) == pytest.approx(float(row[key]) * 20)  # the fills' 0.05 tick
            assert MONEY.match(row[key]) and (on_tick or row is rows[0]), row
        assert row["instrument_id"] == "NSE_EQ:1333;NSE_EQ|INE040A01034" != row["instrument"]
    for name, column in (("orders.csv", "commission"), ("fills.csv", "charges")):
        for row in csv.DictReader((tmp_path / name).open(encoding="utf-8")):
            assert MONEY.match(row[column]), (name, row)
    for name in ARTIFACTS[:5]:
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert not re.search(r"(^|,)-0(\.0+)?(,|$)", text, flags=re.M), name


def test_a_refused_limit_off_the_tick_is_written_as_it_was_asked(tmp_path, finished):
    from algocli.domain.models import OrderStatus, OrderType

    result, assembled = finished
    asked = replace(result.orders[0], order_type=OrderType.LIMIT, limit_price=711.73, status=OrderStatus.REJECTED,
                    filled_quantity=0, reason="limit price 711.73 is not on the tick of 0.05")
    on_tick = replace(result.orders[1], order_type=OrderType.LIMIT, limit_price=711.7500000000001)
    write_run_artifacts(replace(result, orders=[asked, on_tick, *result.orders[2:]]), tmp_path,
                        _description(assembled, RunMode.BACKTEST), report=False)
    rows = list(csv.DictReader((tmp_path / "orders.csv").open(encoding="utf-8")))
    assert [rows[0]["limit_price"], rows[1]["limit_price"]] == ["711.73", "711.75"]  # not 711.75 twice


def test_a_fill_is_written_at_its_price_whatever_tick_the_instrument_list_gives_today(tmp_path, finished):
    result, assembled = finished
    # the fills are on 2024's 0.05 tick; a master listed later (a price band of 0.10) must not move them
    coarse = {key: replace(inst, tick_size=0.10) for key, inst in result.instruments.items()}
    write_run_artifacts(replace(result, instruments=coarse), tmp_path, _description(assembled, RunMode.BACKTEST),
                        report=False)
    written = [float(row["price"]) for row in csv.DictReader((tmp_path / "fills.csv").open(encoding="utf-8"))]
    assert written == [round(f.price, 2) for f in result.fills]
    assert any(round(p * 10) != p * 10 for p in written)  # some are between the 0.10 ticks: not rounded onto them


def test_statistics_have_one_number_of_decimals_per_kind(tmp_path, finished):
    result, assembled = finished
    write_run_artifacts(result, tmp_path, _description(assembled, RunMode.BACKTEST), report=False)
    values = dict(csv.reader((tmp_path / "results.csv").open(encoding="utf-8")))
    for key, value in result.metrics.items():
        if key in MONEY_METRICS:
            assert FIXED_MONEY.match(values[key]) and float(values[key]) == round(value, 2), key
        elif isinstance(value, float) and math.isfinite(value):
            assert re.match(r"^-?\d+\.\d{4}$", values[key]) and float(values[key]) == round(value, 4), key


def test_the_resolved_config_names_the_strategy_ids_the_run_used(tmp_path, finished):
    result, assembled = finished
    write_run_artifacts(result, tmp_path, _description(assembled, RunMode.BACKTEST), report=False)
    resolved = yaml.safe_load((tmp_path / "config.resolved.yaml").read_text(encoding="utf-8"))
    assert [s["id"] for s in resolved["strategies"]] == list(result.strategies) == ["sma_crossover-0"]


def test_a_write_removes_what_a_killed_writer_of_the_same_file_left_and_nothing_else(tmp_path):
    import subprocess
    import sys

    from algocli.persistence.artifacts import atomic_write_bytes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = int(dead.stdout)  # a process that has ended
    left = tmp_path / f".x.csv.{pid}-abc123.tmp"  # kill -9 in the middle of writing x.csv
    writing = tmp_path / f".x.csv.{os.getpid()}-def456.tmp"  # a live writer's (this process stands in for it)
    other = tmp_path / f".y.csv.{pid}-abc123.tmp"  # another file's: its own next write removes it
    for path in (left, writing, other):
        path.write_bytes(b"half")
    atomic_write_bytes(tmp_path / "x.csv", b"whole\n")
    assert (tmp_path / "x.csv").read_bytes() == b"whole\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.csv", writing.name, other.name])
