"""``algocli.engine.runtime``: a paper session run by a script, without Typer, against a real
``algo sandbox`` on a loopback port; its signals (SIGINT stops, SIGUSR1 halts); each mode's
own folder and risk state; the resume hint per mode; a live run refusing a journal it did not write.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path

import pytest
import yaml

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Interval
from algocli.domain.modes import RunMode
from algocli.engine.paper import PaperEngine
from algocli.engine.runtime import (
    LiveRun, Session, finish_session, load_live_run, open_session, risk_state_path, run_session,
    write_session_artifacts,
)
from algocli.errors import ConfigError
from algocli.persistence.journal import read_journal
from algocli.risk import read_state
from algocli.sandbox.replay import bar_ticks
from cli.live_support import broker_env, write_live_yaml
from cli.paper_support import INSTRUMENT, REPO_ROOT, read_csv, sandbox, write_one_day, write_paper_yaml
from helpers import Scripted

SPEED = 30_000  # the whole session in 0.75 s


class RecordingView:
    """A ``SessionView`` that remembers what it was shown."""

    def __init__(self, on_refresh=None) -> None:
        self.calls: list[str] = []
        self.notes: list[tuple[str, str]] = []
        self.candles_seen = 0
        self._on_refresh = on_refresh

    def started(self) -> None:
        self.calls.append("started")

    def refresh(self, engine, feed_status) -> None:
        self.calls.append("refresh")
        self.candles_seen = engine.stats.candles
        if self._on_refresh is not None:
            self._on_refresh(engine)

    def stopped(self) -> None:
        self.calls.append("stopped")

    def note(self, kind: str, line: str) -> None:
        self.notes.append((kind, line))


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runtime_day")
    write_one_day(folder)
    return folder


def _handlers() -> dict:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}


def test_a_script_runs_a_paper_session_and_writes_its_artifacts(tmp_path, one_day):
    before = _handlers()
    with sandbox(one_day, tmp_path / "logs", speed=SPEED) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        session = open_session(load_live_run(cfg, "paper"), RunMode.PAPER)
        view = RecordingView()
        asyncio.run(run_session(session, duration=3.0, view=view))
        assert box.health()["replay_done"]
    assert _handlers() == before  # the session's signal handlers are gone
    assert session.out_dir == tmp_path / "out" and session.broker is None
    assert view.calls[0] == "started" and view.calls[-1] == "stopped" and "refresh" in view.calls
    assert view.candles_seen >= 370
    result = finish_session(session)
    assert result is not None and len(result.fills) >= 10
    paths = write_session_artifacts(session, result, report=True, elapsed_s=1.5)
    assert {p.name for p in paths} == {"trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv",
                                       "config.resolved.yaml", "report.html", "run.json"}
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in paths)
    meta = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert meta["mode"] == "paper" and meta["config"] == str(cfg) and meta["elapsed_seconds"] == 1.5
    assert "<title>Paper trading report — paper-test</title>" in (tmp_path / "out" / "report.html").read_text(
        encoding="utf-8")
    assert [f["fill_id"] for f in read_csv(tmp_path / "out" / "fills.csv")] == [f.fill_id for f in result.fills]


def test_sigusr1_halts_and_sigint_stops_a_running_session(tmp_path, one_day):
    with sandbox(one_day, tmp_path / "logs", speed=120) as box:  # slow: the session outlives the signals
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        cfg.write_text(yaml.safe_dump({**doc, "risk": {}}), encoding="utf-8")
        session = open_session(load_live_run(cfg, "paper"), RunMode.PAPER)
        sent = []

        def signals(engine) -> None:  # once a candle has closed: the kill switch, then Ctrl-C
            if engine.stats.candles and not sent:
                sent.append(signal.SIGUSR1)
                os.kill(os.getpid(), signal.SIGUSR1)
            elif sent == [signal.SIGUSR1] and engine.core.risk.halted:
                sent.append(signal.SIGINT)
                threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()

        view = RecordingView(on_refresh=signals)
        asyncio.run(asyncio.wait_for(run_session(session, view=view), timeout=30))
        assert not box.health()["replay_done"], "the session ended by itself, not by SIGINT"
    assert sent == [signal.SIGUSR1, signal.SIGINT]
    assert ("risk", "risk: HALTED (SIGUSR1 received)") in view.notes
    state = read_state(tmp_path / "out" / "risk_state.json")
    assert state.halted and state.reason == "SIGUSR1 received"
    assert view.calls[-1] == "stopped"


def _position_engine(tmp_path: Path) -> PaperEngine:
    """A paper engine fed a few candles' ticks, holding 5 of INSTRUMENT."""
    bars = load_csv(REPO_ROOT / "data" / "NSE_EQ_2885.csv", INSTRUMENT).slice(0, 10)
    path = bar_ticks(bars)
    engine = PaperEngine([INSTRUMENT], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0), journal_path=tmp_path / "journal.jsonl", name="hint")
    engine.add_strategy(Scripted({1: lambda ctx, c: ctx.buy(INSTRUMENT, 5)}), [INSTRUMENT], "s")
    engine.start()
    for i in range(len(path)):
        engine.on_tick(path.tick(i))
    return engine


@pytest.mark.parametrize(("mode", "output", "hint"), [
    (RunMode.PAPER, None, "algo paper cfg.yaml"),
    (RunMode.DRY_RUN, None, "algo live cfg.yaml --dry-run"),
    (RunMode.LIVE, None, "algo live cfg.yaml"),
    # the --output it was given: without it the hint would resume (or start) another folder's run
    (RunMode.PAPER, Path("runs/mine"), "algo paper cfg.yaml --output runs/mine"),
    (RunMode.LIVE, Path("runs/mine"), "algo live cfg.yaml --output runs/mine"),
])
def test_the_open_positions_note_names_the_command_that_resumes_this_mode(tmp_path, mode, output, hint):
    engine = _position_engine(tmp_path)
    session = Session(LiveRun(None, None, None, Path("cfg.yaml")), mode, engine, None, None, tmp_path, output)
    result = finish_session(session)
    notes = [n for n in result.notes if "still open" in n]
    assert notes == [f"1 position(s) are still open, valued at the last close; run `{hint}` again to resume them"]


def test_each_mode_has_its_own_folder_and_a_dry_run_its_own_risk_state(tmp_path, monkeypatch):
    for key, value in broker_env("dhan", 9).items():  # nothing connects: open_session only builds
        monkeypatch.setenv(key, value)
    cfg_path = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out")
    run = load_live_run(cfg_path, "live")
    dry = open_session(run, RunMode.DRY_RUN)
    assert dry.out_dir == tmp_path / "out" / "dry-run" and dry.broker is None
    assert dry.engine.journal_path == tmp_path / "out" / "dry-run" / "journal.jsonl"
    assert dry.engine.core.risk is not None
    base = tmp_path / "out"
    assert risk_state_path(run.config, base, RunMode.DRY_RUN) == base / "dry-run" / "risk_state.json"
    assert risk_state_path(run.config, base, RunMode.LIVE) == base / "risk_state.json"
    shared = run.config.model_copy(update={"risk": run.config.risk.model_copy(
        update={"state_file": tmp_path / "ops" / "halt.json"})})
    assert risk_state_path(shared, base, RunMode.LIVE) == tmp_path / "ops" / "halt.json"
    assert risk_state_path(shared, base, RunMode.DRY_RUN) == base / "dry-run" / "halt.json"  # never the live one


def test_a_live_session_refuses_a_journal_no_live_run_wrote(tmp_path, monkeypatch):
    for key, value in broker_env("dhan", 9).items():
        monkeypatch.setenv(key, value)
    cfg_path = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out")
    journal = tmp_path / "out" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"k":"candle","instrument":"NSE_EQ:2885","ts":1,"open":1,"high":1,"low":1,"close":1,'
                       '"volume":1}\n', encoding="utf-8")
    run = load_live_run(cfg_path, "live")
    with pytest.raises(ConfigError, match=r"journal.jsonl: this journal was not written by a live run.*--fresh"):
        open_session(run, RunMode.LIVE)
    assert journal.read_text(encoding="utf-8").count("\n") == 1  # left as it was
    session = open_session(run, RunMode.LIVE, fresh=True)  # --fresh sets it aside
    assert session.broker is not None
    assert [p.name.startswith("journal.") for p in (tmp_path / "out").glob("journal.*.jsonl")] == [True]


def test_a_paper_session_refuses_the_folder_a_live_run_trades_from(tmp_path, monkeypatch):
    """`algo paper` of a live run definition shares its output folder with `algo live`: it must
    neither replay nor extend the live journal, nor overwrite the live artifacts, even with --fresh."""
    for key, value in broker_env("dhan", 9).items():
        monkeypatch.setenv(key, value)
    cfg_path = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out")
    out = tmp_path / "out"
    out.mkdir()
    journal = out / "journal.jsonl"
    live_journal = '{"k":"run","run_key":"abc","name":"live-dhan"}\n'
    journal.write_text(live_journal, encoding="utf-8")
    run = load_live_run(cfg_path, "paper")
    for fresh in (False, True):
        with pytest.raises(ConfigError, match=r"out: `algo live` trades from this folder.*--output .*out-paper$"):
            open_session(run, RunMode.PAPER, fresh=fresh)
    assert journal.read_text(encoding="utf-8") == live_journal and list(out.glob("journal.*")) == [journal]
    journal.unlink()  # a live run's journal set aside by `algo live --fresh`: its run.json still says live
    (out / "run.json").write_text(json.dumps({"mode": "live"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="`algo live` trades from this folder"):
        open_session(run, RunMode.PAPER)
    (out / "run.json").write_text(json.dumps({"mode": "paper"}), encoding="utf-8")
    assert open_session(run, RunMode.PAPER).out_dir == out  # a paper run's own folder resumes as before
    assert open_session(run, RunMode.PAPER, output=tmp_path / "elsewhere").out_dir == tmp_path / "elsewhere"


def test_a_dry_runs_folder_is_marked_and_neither_paper_nor_live_resumes_it(tmp_path, monkeypatch):
    for key, value in broker_env("dhan", 9).items():
        monkeypatch.setenv(key, value)
    cfg_path = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out")
    dry = open_session(load_live_run(cfg_path, "live"), RunMode.DRY_RUN)
    journal = dry.out_dir / "journal.jsonl"
    assert dry.out_dir == tmp_path / "out" / "dry-run"
    assert [r for r in read_journal(journal)] == [{"k": "mode", "mode": "live-dry-run"}]
    before = journal.read_bytes()
    paper = load_live_run(cfg_path, "paper")
    with pytest.raises(ConfigError, match=r"dry-run: `algo live --dry-run` rehearses from this folder.*--output$"):
        open_session(paper, RunMode.PAPER, output=dry.out_dir)
    with pytest.raises(ConfigError, match="this journal was not written by a live run"):
        open_session(load_live_run(cfg_path, "live"), RunMode.LIVE, output=dry.out_dir)
    assert journal.read_bytes() == before  # neither wrote into it
    again = open_session(load_live_run(cfg_path, "live"), RunMode.DRY_RUN)  # the dry run itself resumes it
    assert again.out_dir == dry.out_dir and journal.read_bytes() == before  # marked once
