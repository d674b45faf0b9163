"""``write_run_artifacts`` writes the equity curve and ``run.json`` in a forked child only for long runs;
both ways give the same files, and an interrupted forked write leaves the older set whole."""

from __future__ import annotations

import pytest

from algocli.config.run import load_run_config
from algocli.domain.modes import RunMode
from algocli.engine.assemble import assemble_backtest
from algocli.persistence import artifacts, background
from algocli.persistence.artifacts import RunDescription, write_run_artifacts
from cli.cli_support import REPO_ROOT

CONFIG = REPO_ROOT / "configs" / "sma.yaml"


@pytest.fixture(scope="module")
def finished():
    """configs/sma.yaml backtested through the library: 1,488 bars, fewer than ``FORK_MIN_BARS``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        assembled = assemble_backtest(load_run_config(CONFIG), str(CONFIG))
        result = assembled.backtest.run()
    description = RunDescription(RunMode.BACKTEST, str(CONFIG), assembled.config.content_hash(),
                                 assembled.resolved(), assembled.data_files, [])
    return result, description


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _forks(monkeypatch) -> list[str]:
    """Make every run count as long, and record each forked task."""
    started: list[str] = []

    class Recorded(background.BackgroundTask):
        def __init__(self, fn, what):
            started.append(what)
            super().__init__(fn, what)

    monkeypatch.setattr(background, "BackgroundTask", Recorded)
    monkeypatch.setattr(artifacts, "FORK_MIN_BARS", 0)
    return started


def test_a_short_run_writes_inline_and_a_long_one_forks_the_same_files(tmp_path, finished, monkeypatch):
    result, description = finished
    assert len(result.equity) < artifacts.FORK_MIN_BARS
    write_run_artifacts(result, tmp_path / "inline", description, report=False)
    started = _forks(monkeypatch)
    write_run_artifacts(result, tmp_path / "forked", description, report=False)
    assert started == ["equity_curve.csv, fills.csv and run.json"]
    assert _files(tmp_path / "forked") == _files(tmp_path / "inline")


def test_ctrl_c_while_the_child_writes_the_curve_leaves_the_older_set(tmp_path, finished, monkeypatch):
    result, description = finished
    write_run_artifacts(result, tmp_path, description, report=False)
    older = _files(tmp_path)
    started = _forks(monkeypatch)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts, "write_orders", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_run_artifacts(result, tmp_path, description, report=False)
    assert started and _files(tmp_path) == older  # nothing new, nothing lost, no staging folder left
