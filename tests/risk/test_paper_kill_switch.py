"""The kill switch against a running ``algo paper``: ``algo halt``, ``--clear`` and SIGUSR1.

Real processes: ``algo sandbox`` on a free loopback port replays one session, ``algo paper``
trades it with a strategy that leaves a resting buy far below the market on every candle,
so open orders pile up until something cancels them.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from algocli.risk import read_state
from cli.paper_support import (
    INSTRUMENT, algo, child_env, read_csv, read_journal, running, sandbox, wait_for, write_one_day, write_paper_yaml,
)

PESTER = '''\
from algocli import BaseStrategy, OrderType, Signal, SignalAction


class Pester(BaseStrategy):
    """A resting buy at half the close on every candle: it never fills, so open orders pile up."""

    def on_candle(self, candle):
        price = round(candle.close * 0.5 * 20) / 20  # on NSE's 0.05 tick
        return Signal(candle.instrument, SignalAction.BUY, 1, OrderType.LIMIT, price)
'''
SPEED = 120  # half a second per one-minute candle: the phases below take about 20 candles
FIRST = "risk: halted (manual stop)"
FIRST_REFUSED = "risk: trading is halted (manual stop); only orders that reduce a position are allowed"
SECOND = "risk: halted (SIGUSR1 received)"
SECOND_REFUSED = "risk: trading is halted (SIGUSR1 received); only orders that reduce a position are allowed"


def _orders(journal: Path) -> dict[str, dict]:
    """order id -> {"status": last status, "reason": ...} from the journal."""
    out: dict[str, dict] = {}
    for rec in read_journal(journal):
        if rec["k"] == "order":
            out[rec["order_id"]] = {"status": "OPEN", "reason": ""}
        elif rec["k"] == "status" and rec["order_id"] in out:
            out[rec["order_id"]] = {"status": rec["status"], "reason": rec["reason"]}
    return out


def _count(journal: Path, status: str, reason: str) -> int:
    if not journal.exists():
        return 0
    return sum(1 for o in _orders(journal).values() if o["status"] == status and o["reason"] == reason)


def _open(journal: Path) -> int:
    return sum(1 for o in _orders(journal).values() if o["status"] == "OPEN") if journal.exists() else 0


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    write_one_day(data)
    (tmp_path / "strats").mkdir()
    (tmp_path / "strats" / "risk_pester.py").write_text(PESTER, encoding="utf-8")
    return tmp_path, data


def test_halt_clear_and_sigusr1_stop_and_resume_a_running_paper_run(setup):
    tmp, data = setup
    out, logs = tmp / "out", tmp / "logs"
    journal, state = out / "journal.jsonl", out / "risk_state.json"
    env = child_env(PYTHONPATH=str(tmp / "strats"))
    with sandbox(data, logs, speed=SPEED) as box:
        cfg = write_paper_yaml(tmp / "paper.yaml", port=box.port, out_dir=out)
        definition = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        definition["strategies"] = [{"class": "risk_pester:Pester", "instruments": [INSTRUMENT], "id": "pester"}]
        definition["risk"] = {"max_open_orders": 1000}
        cfg.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper", env=env) as paper:
            wait_for(lambda: _open(journal) >= 4, 30, "four resting orders", child=paper)

            # 1. algo halt: the open orders are cancelled within a few seconds, new ones refused
            done = algo(["halt", cfg, "--reason", "manual stop"], env=env)
            assert done.returncode == 0, done.stderr
            assert len(done.stdout.strip().splitlines()) == 1 and done.stdout.startswith("halted the paper run paper-test")
            halted = time.monotonic()
            wait_for(lambda: _count(journal, "CANCELLED", FIRST) >= 4 and _open(journal) == 0, 5,
                     "the open orders to be cancelled", child=paper)
            assert time.monotonic() - halted < 5
            wait_for(lambda: _count(journal, "REJECTED", FIRST_REFUSED) >= 3, 30, "refused orders", child=paper)
            assert _open(journal) == 0

            # 2. --clear: orders rest again
            cleared = algo(["halt", cfg, "--clear"], env=env)
            assert cleared.returncode == 0 and cleared.stdout.startswith("cleared the halt of the paper run paper-test")
            wait_for(lambda: _open(journal) >= 3, 30, "resting orders after the clear", child=paper)

            # 3. SIGUSR1 does what algo halt does, and writes the state file
            paper.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: _open(journal) == 0 and _count(journal, "CANCELLED", SECOND) >= 3, 5,
                     "SIGUSR1 to cancel the open orders", child=paper)
            wait_for(lambda: _count(journal, "REJECTED", SECOND_REFUSED) >= 2, 30, "refused orders", child=paper)
            on_disk = read_state(state)
            assert (on_disk.state, on_disk.reason, on_disk.source) == ("HALTED", "SIGUSR1 received", "signal")
            assert paper.poll() is None, paper.err
            code = paper.interrupt(timeout=30)
    assert code == 0, paper.err
    assert "Traceback" not in paper.err
    assert "risk: HALTED (manual stop)" in paper.err and "risk: halt cleared (was: manual stop)" in paper.err
    assert "risk: HALTED (SIGUSR1 received)" in paper.err

    # orders.csv tells the whole story, in order: cancelled by the halt, refused while halted,
    # accepted after the clear and cancelled by SIGUSR1, refused again
    rows = read_csv(out / "orders.csv")
    code_of = {FIRST: "a", FIRST_REFUSED: "b", SECOND: "c", SECOND_REFUSED: "d"}
    story = "".join(code_of[r["reason"]] for r in rows)
    assert re.fullmatch(r"a{4,}b{3,}c{3,}d{2,}", story), story
    assert all(r["status"] == ("CANCELLED" if code_of[r["reason"]] in "ac" else "REJECTED") for r in rows)
    assert all(r["filled_quantity"] == "0" for r in rows)


def test_a_paper_run_started_while_halted_stays_halted(setup):
    tmp, data = setup
    out, logs = tmp / "out", tmp / "logs"
    env = child_env(PYTHONPATH=str(tmp / "strats"))
    with sandbox(data, logs, speed=3000) as box:  # the whole day in 7.5 s
        cfg = write_paper_yaml(tmp / "paper.yaml", port=box.port, out_dir=out)
        definition = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        definition["strategies"] = [{"class": "risk_pester:Pester", "instruments": [INSTRUMENT], "id": "pester"}]
        definition["risk"] = {}
        cfg.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
        assert algo(["halt", cfg, "--reason", "manual stop"], env=env).returncode == 0
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper", env=env) as paper:
            box.wait_replay_done(timeout=60)
            time.sleep(1.0)
            code = paper.interrupt(timeout=30)
    assert code == 0, paper.err
    assert "still HALTED from before the restart: manual stop" in paper.err
    assert f"`algo halt {cfg} --clear` resumes trading" in " ".join(paper.err.split())  # this run's own command
    rows = read_csv(out / "orders.csv")
    assert len(rows) > 300
    assert {(r["status"], r["reason"]) for r in rows} == {("REJECTED", FIRST_REFUSED)}
