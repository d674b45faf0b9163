"""``write_run_artifacts``: a script writes a finished run's artifacts without the CLI, and
every file names the run's mode where it names one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from algocli.config.run import load_run_config
from algocli.domain.modes import RunMode
from algocli.engine.assemble import assemble_backtest
from algocli.persistence.artifacts import RunDescription, file_sha256, write_run_artifacts
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
    assert {Path(p).resolve(): h for p, h in meta["data_files"].items()} == {SAMPLE_CSV.resolve():
                                                                           file_sha256(SAMPLE_CSV)}
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


def test_without_the_report_the_rest_is_written(tmp_path, finished):
    result, assembled = finished
    paths = write_run_artifacts(result, tmp_path, _description(assembled, RunMode.PAPER), report=False)
    assert [p.name for p in paths] == [*CSVS, "config.resolved.yaml", "run.json"]
    assert not (tmp_path / "report.html").exists()
