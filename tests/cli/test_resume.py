"""A resumed paper or live run behaves as if it had never stopped.

``kill -9`` at seeded moments of a paper and a live run of the bundled
``bollinger_reversion`` (resting limit orders, moved every bar), each restarted at once
while the sandbox's day goes on: the journal of the whole day never shows more working
orders at once than the backtest of the same day has, and the position never leaves the
backtest's range. Before strategies could read their restored orders through the context,
a restarted run placed a second entry beside the restored one.

And a live order whose quantity and price were modified, killed right after the modify
was journaled and filled at the broker while the run was down, is restored with its new
quantity: every broker trade is booked once and the position equals the broker's.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import yaml

from cli.live_support import BROKERS, BrokerRest, algo_running, live_env, write_live_yaml
from cli.paper_support import (
    INSTRUMENT, TRACEBACK, algo, read_csv, read_journal, running, sandbox, wait_for, write_backtest_yaml,
    write_one_day, write_paper_yaml,
)

COMMISSION = 0.0003
SPEED = 1000  # a bar every 60 ms: a restart (about 1.5 s) misses some 25 bars, then trades again
BARS = 200  # the first 200 minutes of a session: 800 ticks, 12 s
BOLLINGER = {"class": "bollinger_reversion", "instruments": [INSTRUMENT], "id": "bb",
             "params": {"period": 10, "std": 1.0, "quantity": 10}}


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume_one_day")
    write_one_day(folder, rows=BARS)
    return folder


def _with_strategy(path: Path, strategy: dict) -> Path:
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["strategies"] = [strategy]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def backtest_bounds(tmp_path_factory, one_day) -> tuple[int, int, int]:
    """(most working orders at once, lowest position, highest position) in the backtest."""
    tmp = tmp_path_factory.mktemp("resume_backtest")
    cfg = _with_strategy(write_backtest_yaml(tmp / "bt.yaml", data_dir=one_day, out_dir=tmp / "out"), BOLLINGER)
    done = algo(["backtest", cfg, "--no-report"], timeout=60)
    assert done.returncode == 0, done.stderr
    orders = read_csv(tmp / "out" / "orders.csv")
    fills = read_csv(tmp / "out" / "fills.csv")
    assert len(fills) >= 4, "the backtest must trade for the bounds to mean anything"
    # an order works from its creation until its last update (fill, cancel or expiry)
    events = sorted([(o["created_time"], 1) for o in orders] + [(o["updated_time"], -1) for o in orders],
                    key=lambda e: (e[0], e[1]))
    most = level = 0
    for _, step in events:
        level += step
        most = max(most, level)
    pos, low, high = 0, 0, 0
    for f in fills:
        pos += int(f["quantity"]) * (1 if f["side"] == "BUY" else -1)
        low, high = min(low, pos), max(high, pos)
    return most, low, high


def _journal_bounds(records: list[dict]) -> tuple[int, int, int]:
    """The same three figures, read from a paper or live journal."""
    most, low, high, _ = _journal_state(records)
    return most, low, high


def _kill_with_an_order_working(child, box, out_dir: Path, at: int) -> None:
    """SIGKILL ``child`` once the sandbox has sent ``at`` ticks, ``child`` has journaled
    candles of its own, and the journal shows a working order: the restart must then find
    that order, not place a second one."""
    journal = out_dir / "journal.jsonl"
    candles = sum(1 for r in read_journal(journal) if r["k"] == "candle") if journal.exists() else 0
    box.wait_published(at, timeout=30)

    def ready() -> bool:
        records = read_journal(journal) if journal.exists() else []
        mine = sum(1 for r in records if r["k"] == "candle") - candles
        return mine >= 3 and bool(_journal_state(records)[3])

    wait_for(ready, 20, "a working order in the journal", interval=0.002, child=child)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL


def _journal_state(records: list[dict]) -> tuple[int, int, int, int]:
    """(most working at once, lowest position, highest position, working at the end)."""
    working: dict[str, int] = {}  # order id -> quantity still to fill
    most, pos, low, high = 0, 0, 0, 0
    for rec in records:
        kind = rec["k"]
        if kind == "order":
            working[rec["order_id"]] = rec["quantity"]
        elif kind == "modify" and rec["order_id"] in working:
            working[rec["order_id"]] = rec["quantity"]  # fills so far are subtracted below
        elif kind == "status" and rec["status"] in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED"):
            working.pop(rec["order_id"], None)
        elif kind == "fill":
            pos += rec["quantity"] * (1 if rec["side"] == "BUY" else -1)
            low, high = min(low, pos), max(high, pos)
            if rec["order_id"] in working:
                working[rec["order_id"]] -= rec["quantity"]
                if working[rec["order_id"]] <= 0:
                    working.pop(rec["order_id"])
        most = max(most, len(working))
    return most, low, high, len(working)


def _seeded_kill_points(seed: int) -> list[int]:
    rng = random.Random(seed)
    first = rng.randint(120, 250)
    second = rng.randint(first + 150, 450)
    return [first, second, rng.randint(second + 150, 650)]


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert TRACEBACK not in text and "internal error" not in text, text


@pytest.mark.parametrize("seed", [1, 2])
def test_a_paper_run_killed_twice_keeps_one_working_order(tmp_path, one_day, backtest_bounds, seed):
    logs, out_dir = tmp_path / "logs", tmp_path / "out"
    with sandbox(one_day, logs, speed=SPEED) as box:
        cfg = _with_strategy(write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=out_dir), BOLLINGER)
        args = ["paper", cfg, "--no-dashboard", "--no-report"]
        for at in _seeded_kill_points(seed):
            with running(args, logs, "paper") as paper:
                _kill_with_an_order_working(paper, box, out_dir, at)
        box.wait_replay_done(timeout=40)
        with running([*args, "--duration", "1"], logs, "paper") as last:
            code = last.wait(timeout=40)
    assert code == 0, last.err
    _no_traceback(last.out, last.err)
    journal = read_journal(out_dir / "journal.jsonl")
    assert sum(1 for r in journal if r["k"] == "fill") >= 2, "nothing traded: the case proves nothing"
    assert sum(1 for r in journal if r["k"] == "order") >= 3
    most, low, high = _journal_bounds(journal)
    bt_most, bt_low, bt_high = backtest_bounds
    assert most <= bt_most, f"{most} orders worked at once after restarts; the backtest never had more than {bt_most}"
    assert bt_low <= low and high <= bt_high, f"position went to [{low}, {high}], backtest [{bt_low}, {bt_high}]"


@pytest.mark.parametrize("broker", BROKERS)
def test_a_live_run_killed_twice_keeps_one_working_order(tmp_path, one_day, backtest_bounds, broker):
    logs, out_dir = tmp_path / "logs", tmp_path / "out"
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, out_dir, strategies=[BOLLINGER])
    args = ["live", cfg, "--yes", "--no-dashboard", "--no-report"]
    with sandbox(one_day, logs, speed=SPEED) as box:
        env = live_env(broker, box.port)
        for at in _seeded_kill_points(3 if broker == "dhan" else 4):
            with algo_running(args, logs, "live", env, cwd=tmp_path) as live:
                _kill_with_an_order_working(live, box, out_dir, at)
        box.wait_replay_done(timeout=40)
        with algo_running([*args, "--duration", "2"], logs, "live", env, cwd=tmp_path) as last:
            code = last.wait(timeout=40)
        broker_position = BrokerRest(broker, box.port).net_position()
    assert code == 0, last.err
    _no_traceback(last.out, last.err)
    journal = read_journal(out_dir / "journal.jsonl")
    assert sum(1 for r in journal if r["k"] == "fill") >= 2, "nothing traded: the case proves nothing"
    most, low, high = _journal_bounds(journal)
    bt_most, bt_low, bt_high = backtest_bounds
    assert most <= bt_most, f"{most} orders worked at once after restarts; the backtest never had more than {bt_most}"
    assert bt_low <= low and high <= bt_high, f"position went to [{low}, {high}], backtest [{bt_low}, {bt_high}]"
    booked = sum(r["quantity"] * (1 if r["side"] == "BUY" else -1) for r in journal if r["k"] == "fill")
    assert broker_position == booked


MODIFY_STRATEGY = {"class": "cli.resume_strategies:RaiseAndChase", "instruments": [INSTRUMENT], "id": "chase",
                   "params": {"quantity": 10, "raised": 20}}


def _chase_config(tmp_path: Path, broker: str, out_dir: Path) -> Path:
    """A live run definition of ``RaiseAndChase`` with a percent commission."""
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, out_dir, strategies=[MODIFY_STRATEGY])
    definition = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    definition["broker"].pop("charges", None)  # the bundled configs book the broker's charges; a flat rate here
    definition["broker"]["commission_rate"] = COMMISSION
    cfg.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return cfg


@pytest.mark.parametrize("broker", BROKERS)
def test_a_modified_live_order_is_restored_with_its_new_quantity(tmp_path, one_day, broker):
    """Raised from 10 to 20 units, killed right after the modify is journaled, restarted:
    the order fills at the broker for 20 after the restart, and all 20 are booked, each
    fill with the charges the cost model gives a paper fill."""
    logs, out_dir = tmp_path / "logs", tmp_path / "out"
    args = ["live", _chase_config(tmp_path, broker, out_dir), "--yes", "--no-dashboard", "--no-report"]
    with sandbox(one_day, logs, speed=SPEED) as box:
        rest = BrokerRest(broker, box.port)
        tests_dir = str(Path(__file__).resolve().parents[1])
        env = live_env(broker, box.port, PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
        with algo_running(args, logs, "live", {**env, "ALGOCLI_CRASH_AT": "after_modify_journal:1"},
                          cwd=tmp_path) as live:
            assert live.wait(timeout=30) == -signal.SIGKILL, live.err
        journal = read_journal(out_dir / "journal.jsonl")
        assert journal[-1]["k"] == "modify" and journal[-1]["quantity"] == 20, journal[-3:]
        assert not rest.trades(), "filled before the restart: the case proves nothing"
        with algo_running(args, logs, "restart", env, cwd=tmp_path) as again:
            trades = wait_for(lambda: sum(t.quantity for t in rest.trades()) == 20 and rest.trades(), 30,
                              "the broker to fill the modified order", child=again)
            wait_for(lambda: sum(r["quantity"] for r in read_journal(out_dir / "journal.jsonl")
                                 if r["k"] == "fill") >= 20, 10, "the run to book the fills", child=again)
            code = again.interrupt(timeout=30)
        broker_position = rest.net_position()
    assert code == 0, again.err
    _no_traceback(again.out, again.err)
    after = read_journal(out_dir / "journal.jsonl")
    fills = [r for r in after if r["k"] == "fill"]
    assert sorted(f["fill_id"] for f in fills) == sorted(f"T:{t.trade_id}" for t in trades)
    assert sum(f["quantity"] for f in fills) == 20
    for f in fills:  # the paper charge for the same fill: a percent of the traded value
        assert f["commission"] == pytest.approx(f["quantity"] * f["price"] * COMMISSION, rel=1e-12)
    assert broker_position == 20
    orders = {o["order_id"]: o for o in read_csv(out_dir / "orders.csv")}
    (order,) = orders.values()
    assert (order["quantity"], order["status"]) == ("20", "FILLED")


@pytest.mark.parametrize("broker", BROKERS)
def test_a_live_restart_keeps_the_filled_orders_times_and_charges(tmp_path, one_day, broker):
    """A live order filled before a stop is written by the resumed run exactly as the first
    run wrote it: its fill time as ``updated_time`` (not its creation time) and its charges."""
    logs, out_dir = tmp_path / "logs", tmp_path / "out"
    args = ["live", _chase_config(tmp_path, broker, out_dir), "--yes", "--no-dashboard", "--no-report"]
    tests_dir = str(Path(__file__).resolve().parents[1])

    def filled() -> bool:
        journal = out_dir / "journal.jsonl"
        records = read_journal(journal) if journal.exists() else []
        return any(r["k"] == "status" and r["status"] == "FILLED" for r in records)

    with sandbox(one_day, logs, speed=SPEED) as box:
        env = live_env(broker, box.port,
                       PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
        with algo_running(args, logs, "first", env, cwd=tmp_path) as first:
            wait_for(filled, 30, "the chased order to fill", child=first)
            assert first.interrupt(timeout=30) == 0, first.err
        before = {o["order_id"]: o for o in read_csv(out_dir / "orders.csv")}
        journal = out_dir / "journal.jsonl"
        candles = sum(1 for r in read_journal(journal) if r["k"] == "candle")
        with algo_running(args, logs, "again", env, cwd=tmp_path) as again:
            wait_for(lambda: sum(1 for r in read_journal(journal) if r["k"] == "candle") >= candles + 3, 30,
                     "candles after the restart", child=again)
            assert again.interrupt(timeout=30) == 0, again.err
    _no_traceback(first.err, again.out, again.err)
    after = {o["order_id"]: o for o in read_csv(out_dir / "orders.csv")}
    (done,) = [o for o in before.values() if o["status"] == "FILLED"]
    assert done["updated_time"] != done["created_time"] and float(done["commission"]) > 0
    assert after[done["order_id"]] == done
