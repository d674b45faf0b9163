"""``algo live`` end to end against a real ``algo sandbox`` on a loopback port: real orders
over the Dhan and Upstox REST APIs and order streams, Ctrl-C, ``kill -9`` at each point of an
order's life and the restart that reconciles it, the refusal to trade on a position the
journal cannot explain, the confirmation prompt, ``--dry-run`` and a rejected token.

The broker's side is always read back from the sandbox over the broker's own REST API
(order book, trade book, positions), never from our own files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from cli.live_support import (
    BROKERS, LIVE_ARTIFACTS, TOKEN_VARIABLE, BrokerRest, CountingProxy, algo_in, algo_running, broker_env,
    check_against_broker, journal_client_ids, journal_so_far, live_env, start_algo, write_live_yaml,
)
from cli.paper_support import (
    INSTRUMENT, TRACEBACK, Child, child_env, free_port, read_csv, read_journal, sandbox, wait_for, write_one_day,
)

E2E_SPEED = 2250  # 375 one-minute bars (22,500 exchange seconds) in 10 s of wall time
CRASH_SPEED = 30_000  # the day in 0.75 s: the crash tests only need the rest of the day to happen
REFUSAL_SPEED = 3000  # 7.5 s: time to stop the run and trade by hand before the day is over
RESULTS = re.compile(r"Equity Final \[₹\]\s+│\s+[\d,]+\.\d\d")
CLIENT_ID = "1100QACLIENT77"  # a Dhan client id: every screen shows it masked
MASKED = "Dhan client 11…77"


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    """A data folder holding the first session (375 one-minute bars) of NSE_EQ_2885."""
    folder = tmp_path_factory.mktemp("live_one_day")
    write_one_day(folder)
    return folder


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert TRACEBACK not in text, text
        assert "internal error" not in text, text


def _wait_replay_done(box, live: Child, timeout: float) -> dict:
    """The sandbox's replay is over; fail at once if the live run exits first."""
    return wait_for(lambda: (h := box.health()) is not None and h["replay_done"] and h, timeout,
                    "the sandbox replay to finish while algo live runs", interval=0.1, child=live)


def _live_args(cfg: Path, *extra: str) -> list:
    return ["live", cfg, "--yes", "--no-dashboard", *extra]


# --- a. a whole replayed day on each broker ------------------------------------------------


@pytest.fixture(scope="module")
def full_day_live(tmp_path_factory, one_day):
    """``algo live --yes --no-dashboard`` over one replayed day on both brokers at once
    (a sandbox each), stopped with SIGINT once the replay is over. Yields broker -> results."""
    runs: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        started = {}
        for broker in BROKERS:
            tmp = tmp_path_factory.mktemp(f"live_{broker}")
            box = stack.enter_context(sandbox(one_day, tmp / "logs", speed=E2E_SPEED))
            cfg = write_live_yaml(tmp / "live.yaml", broker, tmp / "out")
            live = stack.enter_context(algo_running(_live_args(cfg), tmp / "logs", "live",
                                                    live_env(broker, box.port), cwd=tmp))
            started[broker] = (tmp, box, live)
        for broker, (tmp, box, live) in started.items():
            health = _wait_replay_done(box, live, timeout=60)
            time.sleep(1.0)  # the last fills are still on their way
            assert live.poll() is None, live.err
            code = live.interrupt(timeout=30)
            runs[broker] = {"code": code, "out": live.out, "err": live.err, "out_dir": tmp / "out",
                            "health": health, "rest": BrokerRest(broker, box.port)}
        yield runs  # the sandboxes keep running: the tests read the brokers' books


@pytest.mark.parametrize("broker", BROKERS)
def test_a_live_day_on_the_sandbox_matches_the_brokers_books(full_day_live, broker):
    run = full_day_live[broker]
    assert run["health"]["ticks_published"] == run["health"]["ticks_total"] == 375 * 4
    assert run["code"] == 0, run["err"]
    _no_traceback(run["out"], run["err"])
    assert "LIVE TRADING" in run["out"]
    assert f"live-{broker}: live trading results" in run["out"]
    assert RESULTS.search(run["out"]), run["out"]
    assert "artifacts:" in run["out"] and "report.html" in run["out"]
    for name in LIVE_ARTIFACTS:
        assert (run["out_dir"] / name).is_file(), name
    assert "<html" in (run["out_dir"] / "report.html").read_text(encoding="utf-8")[:2000].lower()

    # fills = the broker's trades of our orders, one broker order per client id, same position, no UNKNOWN
    seen = check_against_broker(run["out_dir"], run["rest"])
    fills = seen["fills"]
    assert len(fills) >= 10, "the day should trade; otherwise nothing here is tested"
    assert all(f["fill_id"].startswith("T:") for f in fills)
    assert len(seen["trades"]) == len(fills)
    # every order of ours that reached the broker is one broker order, and nothing else is in the book
    assert {o.client_id for o in seen["book"]} <= set(seen["ours"].values())
    assert len(seen["broker_orders"]) == len(seen["book"])
    sent = [o for o in seen["orders"] if o["order_id"] in seen["ours"]]
    assert len(sent) == len(seen["book"])
    assert all(o["status"] in ("FILLED", "PENDING", "OPEN", "CANCELLED") for o in sent), sent
    # the journal has the run key and a baseline (empty: a fresh sandbox account holds nothing)
    journal = read_journal(run["out_dir"] / "journal.jsonl")
    assert [r for r in journal if r["k"] == "baseline"] == [{"k": "baseline", "positions": {}}]
    assert len([r for r in journal if r["k"] == "run"]) == 1


# --- b. kill -9 at each point of an order's life, then restart -----------------------------


CRASHES = [
    ("dhan", "after_intent_journal"),  # journaled, never sent
    ("dhan", "in_flight"),  # POST sent and accepted, the answer never came
    ("dhan", "after_broker_ack"),  # the broker answered, the ack is not journaled
    ("dhan", "after_fill_journal"),  # the fill is journaled, not booked
    ("upstox", "after_broker_ack"),
]


def _crash_first_run(broker: str, point: str, box, cfg: Path, tmp: Path, rest: BrokerRest) -> int:
    logs = tmp / "logs"
    if point == "in_flight":
        # the next placement is accepted by the exchange and answered only after 60 s, far past
        # the client's 10 s timeout: kill -9 while the order exists and we still wait for the answer
        rest.set_faults(timeout_after_accept=1, hang_seconds=60)
        with algo_running(_live_args(cfg), logs, "live", live_env(broker, box.port), cwd=tmp) as live:
            book = wait_for(lambda: rest.orders(), 30, "the first order in the sandbox's order book",
                            interval=0.01, child=live)
            hung = min(book, key=lambda o: o.order_id)  # the first placement is the one left hanging
            oid = {cid: oid for oid, cid in journal_client_ids(tmp / "out").items()}[hung.client_id]
            assert not any(r["k"] == "ack" and r["order_id"] == oid for r in journal_so_far(tmp / "out"))
            assert live.poll() is None, live.err
            os.kill(live.pid, signal.SIGKILL)
            return live.wait(timeout=10)
    env = live_env(broker, box.port, ALGOCLI_CRASH_AT=f"{point}:1")
    with algo_running(_live_args(cfg), logs, "live", env, cwd=tmp) as live:
        return live.wait(timeout=40)


@pytest.mark.parametrize(("broker", "point"), CRASHES, ids=[f"{b}-{p}" for b, p in CRASHES])
def test_kill_9_during_an_order_then_restart_reconciles_without_doubling(tmp_path, one_day, broker, point):
    out_dir = tmp_path / "out"
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, out_dir)
    with sandbox(one_day, tmp_path / "logs", speed=CRASH_SPEED) as box:
        rest = BrokerRest(broker, box.port)
        code = _crash_first_run(broker, point, box, cfg, tmp_path, rest)
        assert code == -signal.SIGKILL, f"{broker} {point}: exit {code}"
        before = read_journal(out_dir / "journal.jsonl")
        box.wait_replay_done(timeout=30)  # the day goes on without us
        book_before = rest.orders()
        with algo_running(_live_args(cfg, "--duration", "0.5"), tmp_path / "logs", "restart",
                          live_env(broker, box.port), cwd=tmp_path) as again:
            code = again.wait(timeout=40)
        assert code == 0, again.err
        _no_traceback(again.out, again.err)
        assert f"live-{broker}: live trading results" in again.out
        # what the journal held, said once the broker is reconciled, and again in the summary's notes
        journaled = (sum(r["k"] == "candle" for r in before), sum(r["k"] == "order" for r in before),
                     sum(r["k"] == "fill" for r in before))
        assert "resuming from {}: {} candles, {} orders, {} fills".format(out_dir / "journal.jsonl", *journaled) \
            in again.err, again.err
        notes = " ".join(again.out.split())
        assert "resumed from its journal: {} candles, {} orders, {} fills restored".format(*journaled) in notes, notes
        seen = check_against_broker(out_dir, rest)
        book_after = rest.orders()
    assert book_after == book_before, "the restart placed, changed or cancelled broker orders"

    orders = {o["order_id"]: o for o in seen["orders"]}
    client_ids = journal_client_ids(out_dir)
    j_orders = [r["order_id"] for r in before if r["k"] == "order"]
    assert j_orders, "the crash came before any order: the case proves nothing"
    after = read_journal(out_dir / "journal.jsonl")
    assert after[:len(before)] == before  # the restart only appends
    new = after[len(before):]
    # the restart made no order of its own: only the broker's INTRADAY auto square-off, made while the
    # run was down (the day went on past 15:20), is booked as orders of ours tagged auto-squareoff
    assert not any(r["k"] == "order" and r.get("tag") != "auto-squareoff" for r in new), "the restart made new orders"

    # every order the crash left without a journaled answer is settled by client id, one way or
    # the other: found at the broker (one order, adopted, its fills booked) or never sent (rejected)
    acks_before = {r["order_id"] for r in before if r["k"] == "ack"}
    adopted, never_sent = {}, []
    for oid in (o for o in j_orders if o not in acks_before):
        at_broker = [o for o in book_after if o.client_id == client_ids[oid]]
        if at_broker:
            assert len(at_broker) == 1, at_broker
            found = adopted[oid] = at_broker[0]
            assert {"k": "ack", "order_id": oid, "broker_order_id": found.order_id} in new
            assert f"reconciled: {oid}: found at the broker as {found.order_id}" in again.err
            done = found.filled == found.quantity
            assert orders[oid]["status"] in (("FILLED",) if done else ("PENDING", "OPEN", "PARTIALLY_FILLED")), oid
            assert [f["fill_id"] for f in seen["fills"] if f["order_id"] == oid] == \
                [f"T:{t.trade_id}" for t in seen["trades"] if t.order_id == found.order_id]
        else:
            never_sent.append(oid)
            assert orders[oid]["status"] == "REJECTED", orders[oid]
            assert "never reached the broker" in orders[oid]["reason"]
            assert f"reconciled: {oid}: never reached the broker" in again.err
            assert not any(f["order_id"] == oid for f in seen["fills"])

    if point == "after_intent_journal":  # killed between the journal and the POST
        victim = j_orders[-1]
        assert before[-1] == {"k": "client_id", "order_id": victim, "client_id": client_ids[victim],
                              "product": "INTRADAY", "validity": "DAY"}
        assert victim in never_sent, "a journaled order that was never sent reached the broker"
    elif point == "in_flight":  # the first placement hung: that order is adopted, not placed again
        hung = min(o.order_id for o in book_after)
        victim = next(oid for oid, o in adopted.items() if o.order_id == hung)
        assert adopted[victim].status == "TRADED" and orders[victim]["status"] == "FILLED"
        assert re.search(r"booked \d+ fill\(s\) the broker made while this run was down", again.err)
    elif point == "after_broker_ack":  # the broker answered; the answer was lost with the process
        assert adopted, "no order was left with its broker answer unjournaled"
        assert any(orders[oid]["status"] == "FILLED" for oid in adopted)
        assert re.search(r"booked \d+ fill\(s\) the broker made while this run was down", again.err)
    else:  # after_fill_journal: the fill is on disk, booked again only from the journal
        last_fill = [r for r in before if r["k"] == "fill"][-1]
        assert before[-1] == last_fill  # killed right after the fill was written
        assert [f["fill_id"] for f in seen["fills"]].count(last_fill["fill_id"]) == 1
        assert not any(r.get("fill_id") == last_fill["fill_id"] for r in new), "the fill was journaled twice"
        assert orders[last_fill["order_id"]]["status"] == "FILLED"


# --- c. a position the journal cannot explain ------------------------------------------------


def test_a_manual_trade_at_the_broker_makes_the_restart_refuse_to_trade(tmp_path, one_day):
    out_dir = tmp_path / "out"
    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", out_dir)
    with sandbox(one_day, tmp_path / "logs", speed=REFUSAL_SPEED) as box:
        env = live_env("dhan", box.port)
        rest = BrokerRest("dhan", box.port)
        with algo_running(_live_args(cfg), tmp_path / "logs", "live", env, cwd=tmp_path) as live:
            wait_for(lambda: sum(r["k"] == "fill" for r in journal_so_far(out_dir)) >= 2, 30,
                     "two fills in the journal", interval=0.05, child=live)
            code = live.interrupt(timeout=30)
        assert code == 0, live.err
        seen = check_against_broker(out_dir, rest)  # a clean run: the books agree
        ours = seen["position"]
        assert not box.health()["replay_done"], "too late: the manual order needs ticks to fill"
        manual = rest.place("BUY", 7)  # someone trades the same instrument by hand
        wait_for(lambda: any(t.order_id == manual for t in rest.trades()), 20, "the manual order to fill")
        assert rest.net_position() == ours + 7
        book = rest.orders()
        started = time.monotonic()
        with algo_running(_live_args(cfg, "--duration", "5"), tmp_path / "logs", "restart", env,
                          cwd=tmp_path) as again:
            code = again.wait(timeout=30)
        elapsed = time.monotonic() - started
        assert rest.orders() == book, "a refused run must not touch the broker's orders"
    assert code not in (0, None), again.err
    assert elapsed < 20
    _no_traceback(again.out, again.err)
    errors = [ln for ln in again.err_lines if not ln.startswith("resuming from ")]  # the one note before it
    assert len(errors) == 1, again.err
    line = errors[0]
    assert line.startswith("error:"), line
    assert INSTRUMENT in line
    assert f"expected {ours:+d}" in line and f"broker {ours + 7:+d}" in line, line
    assert "trading refused" in line
    assert re.search(r"square off|adjust the position", line, re.IGNORECASE), line
    assert "--fresh" in line
    assert "artifacts:" not in again.out


# --- d. confirmation and --dry-run -----------------------------------------------------------


def test_without_yes_and_without_a_terminal_nothing_is_sent_and_dry_run_sends_nothing(tmp_path, one_day):
    out_dir = tmp_path / "out"
    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", out_dir)
    with sandbox(one_day, tmp_path / "logs", speed=CRASH_SPEED) as box:
        env = child_env(**broker_env("dhan", box.port, client_id=CLIENT_ID))
        rest = BrokerRest("dhan", box.port, client_id=CLIENT_ID)
        asked = start_algo(["live", cfg, "--no-dashboard"], tmp_path / "logs", "no-yes", env, cwd=tmp_path)
        try:
            code = asked.wait(timeout=30)
        finally:
            asked.kill()
        assert code == 2, asked.err
        _no_traceback(asked.out, asked.err)
        assert len(asked.err_lines) == 1, asked.err
        assert asked.err_lines[0].startswith("error:") and "--yes" in asked.err_lines[0]
        assert MASKED in asked.out and CLIENT_ID not in asked.out + asked.err  # the screen before the question
        assert rest.orders() == [] and rest.trades() == []
        assert box.health()["ticks_published"] == 0  # it never even subscribed to the feed
        assert not (out_dir / "journal.jsonl").exists()

        with algo_running(["live", cfg, "--dry-run", "--no-dashboard"], tmp_path / "logs", "dry", env,
                          cwd=tmp_path) as dry:
            _wait_replay_done(box, dry, timeout=30)
            time.sleep(0.5)
            assert dry.poll() is None, dry.err
            code = dry.interrupt(timeout=30)
        assert code == 0, dry.err
        _no_traceback(dry.out, dry.err)
        assert "DRY RUN" in dry.out and "live-dhan: live trading (dry run) results" in dry.out
        assert MASKED in dry.out and CLIENT_ID not in dry.out + dry.err
        assert rest.orders() == [] and rest.trades() == [] and rest.net_position() == 0
    fills = read_csv(out_dir / "dry-run" / "fills.csv")
    assert len(fills) >= 5
    assert not any(f["fill_id"].startswith("T:") for f in fills)  # simulated, not broker trades


def _net_position(journal: list[dict]) -> int:
    return sum(r["quantity"] if r["side"] == "BUY" else -r["quantity"] for r in journal if r["k"] == "fill")


def test_a_dry_run_left_with_a_position_does_not_become_the_live_runs_history(tmp_path, one_day):
    """The README's order: a dry run stopped with a position open, then the real run. The dry
    run keeps its journal, risk state and artifacts in ``<output>/dry-run/``; the live run
    starts on an empty history, trades, and its books match the broker's."""
    out_dir, dry_dir = tmp_path / "out", tmp_path / "out" / "dry-run"
    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", out_dir)
    with sandbox(one_day, tmp_path / "logs", speed=REFUSAL_SPEED) as box:
        env = live_env("dhan", box.port)
        rest = BrokerRest("dhan", box.port)
        with algo_running(["live", cfg, "--dry-run", "--no-dashboard"], tmp_path / "logs", "dry", env,
                          cwd=tmp_path) as dry:
            wait_for(lambda: _net_position(journal_so_far(dry_dir)) != 0, 30,
                     "the dry run to hold a position", interval=0.02, child=dry)
            code = dry.interrupt(timeout=30)
        assert code == 0, dry.err
        _no_traceback(dry.out, dry.err)
        held = _net_position(read_journal(dry_dir / "journal.jsonl"))
        assert held != 0 and "position(s) are still open" in dry.out
        assert f"algo live {cfg} --dry-run" in " ".join(dry.out.split())  # the hint resumes the dry run
        assert not (out_dir / "journal.jsonl").exists()
        assert (dry_dir / "risk_state.json").is_file() and not (out_dir / "risk_state.json").exists()
        assert rest.orders() == [] and rest.net_position() == 0
        assert not box.health()["replay_done"], "too late: the live run needs ticks to trade"

        with algo_running(_live_args(cfg), tmp_path / "logs", "live", env, cwd=tmp_path) as live:
            wait_for(lambda: any(r["k"] == "fill" and r["fill_id"].startswith("T:") for r in journal_so_far(out_dir)),
                     30, "a broker fill of the live run", interval=0.05, child=live)
            code = live.interrupt(timeout=30)
        assert code == 0, live.err
        _no_traceback(live.out, live.err)
        assert "resuming from" not in live.err  # a new run: nothing of the dry run was replayed
        seen = check_against_broker(out_dir, rest)
        assert seen["fills"] and all(f["fill_id"].startswith("T:") for f in seen["fills"])
    journal = read_journal(out_dir / "journal.jsonl")
    assert [r for r in journal if r["k"] == "baseline"] == [{"k": "baseline", "positions": {}}]
    # every order of the live run is its own: sent with a client id (or refused by its risk limits)
    assert all(o["order_id"] in seen["ours"] or o["reason"].startswith("risk:") for o in seen["orders"])
    for name in LIVE_ARTIFACTS:  # each run has its own set
        assert (dry_dir / name).is_file() and (out_dir / name).is_file(), name
    assert json.loads((dry_dir / "run.json").read_text(encoding="utf-8"))["mode"] == "live-dry-run"
    assert json.loads((out_dir / "run.json").read_text(encoding="utf-8"))["mode"] == "live"
    assert "<title>Live trading (dry run) report — live-dhan</title>" in (dry_dir / "report.html").read_text(
        encoding="utf-8")
    assert "<title>Live trading report — live-dhan</title>" in (out_dir / "report.html").read_text(encoding="utf-8")


def test_algo_halt_dry_run_halts_the_dry_runs_state_and_not_the_live_runs(tmp_path, cli):
    out_dir = tmp_path / "out"
    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", out_dir)
    done = cli("halt", cfg, "--dry-run", "--reason", "checking the dry run")
    assert done.code == 0, done.err
    assert "halted the live dry run live-dhan (checking the dry run)" in done.out
    state = json.loads((out_dir / "dry-run" / "risk_state.json").read_text(encoding="utf-8"))
    assert (state["state"], state["reason"]) == ("HALTED", "checking the dry run")
    assert not (out_dir / "risk_state.json").exists()
    assert cli("halt", cfg, "--dry-run", "--clear").code == 0
    assert json.loads((out_dir / "dry-run" / "risk_state.json").read_text(encoding="utf-8"))["state"] == "ACTIVE"


@pytest.mark.parametrize(("broker", "args", "unset", "named"), [
    ("dhan", ("--yes",), ("DHAN_ACCESS_TOKEN",), "DHAN_ACCESS_TOKEN is not set; set it"),
    ("dhan", ("--dry-run",), ("DHAN_CLIENT_ID", "DHAN_ACCESS_TOKEN"), "DHAN_CLIENT_ID and DHAN_ACCESS_TOKEN are not "
                                                                      "set; set them"),
    ("upstox", ("--yes",), ("UPSTOX_ACCESS_TOKEN",), "UPSTOX_ACCESS_TOKEN is not set; set it"),
])
def test_missing_credentials_are_one_line_before_anything_is_shown_or_loaded(tmp_path, cli, monkeypatch, broker,
                                                                             args, unset, named):
    for key, value in broker_env(broker, 9).items():  # port 9: nothing is ever contacted
        monkeypatch.setenv(key, value)
    for key in unset:
        monkeypatch.setenv(key, "")
    out_dir = tmp_path / "out"
    done = cli("live", write_live_yaml(tmp_path / "live.yaml", broker, out_dir), *args, "--no-dashboard")
    assert done.code == 2, done.err
    assert len(done.err_lines) == 1 and named in done.err and "LIVE" not in done.out and done.out == ""
    assert not out_dir.exists()  # no journal, no folder


def test_a_dry_run_of_a_simulated_broker_is_refused(tmp_path, cli, monkeypatch):
    """A dry run rehearses a live broker's run; with the simulated broker it would be paper trading
    under another name (its screen said `account simulated`, `INTRADAY / DAY`)."""
    for key, value in broker_env("dhan", 9).items():
        monkeypatch.setenv(key, value)
    import yaml

    cfg = write_live_yaml(tmp_path / "live.yaml", "dhan", tmp_path / "out")
    doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    doc["broker"] = {"name": "simulated"}
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    done = cli("live", cfg, "--dry-run", "--no-dashboard")
    assert done.code == 2 and done.err_lines == [
        f"error: {cfg}: broker.name: 'simulated' is simulated; `algo live` needs one of dhan, upstox; a dry run "
        "rehearses a live broker's run: paper-trade this one with `algo paper`"]


@pytest.mark.parametrize("args", [("--dry-run",), ("--yes",)], ids=["dry-run", "yes"])
def test_a_negative_duration_is_refused_in_one_line_before_anything_is_shown(tmp_path, cli, monkeypatch, args):
    for key, value in broker_env("dhan", 9).items():  # port 9: nothing is ever contacted
        monkeypatch.setenv(key, value)
    out_dir = tmp_path / "out"
    done = cli("live", write_live_yaml(tmp_path / "live.yaml", "dhan", out_dir), *args, "--no-dashboard",
               "--duration", "-5")
    assert done.code == 2 and done.out == ""  # not even the account screen
    assert done.err_lines == ["error: --duration -5 is not a number of seconds, 0 or more; give how long to run "
                              "(0 connects and stops at once), or leave it out to run until Ctrl-C"]
    assert not out_dir.exists()


# --- e. a rejected token ----------------------------------------------------------------------


@pytest.mark.parametrize("broker", BROKERS)
def test_a_rejected_token_stops_live_at_once_with_how_to_renew_it(tmp_path, one_day, broker):
    cfg = write_live_yaml(tmp_path / "live.yaml", broker, tmp_path / "out")
    with sandbox(one_day, tmp_path / "logs", extra=["--token", "good"]) as box, \
            CountingProxy(box.port) as proxy:
        env = broker_env(broker, box.port, token="bad", client_id=CLIENT_ID)
        for key in ("DHAN_API_BASE_URL", "UPSTOX_API_BASE_URL", "UPSTOX_ORDER_BASE_URL"):
            if key in env:  # REST through the counting proxy
                env[key] = env[key].replace(f":{box.port}", f":{proxy.port}")
        started = time.monotonic()
        with algo_running(_live_args(cfg), tmp_path / "logs", "live", child_env(**env), cwd=tmp_path) as live:
            code = live.wait(timeout=30)
        elapsed = time.monotonic() - started
        good = BrokerRest(broker, box.port, token="good")
        assert good.orders() == []
        calls = list(proxy.calls)
    assert code not in (0, None), live.err
    assert elapsed < 10, f"took {elapsed:.1f}s to give up on a rejected token"
    _no_traceback(live.out, live.err)
    assert len(live.err_lines) == 1, live.err
    line = live.err_lines[0]
    assert line.startswith("error:"), line
    assert TOKEN_VARIABLE[broker] in line, line
    assert re.search(r"\b(new|renew|log in)\b", line, re.IGNORECASE), line
    # no retry storm: a refused token is not retried
    assert calls, "the run never asked the broker"
    assert all(status == 401 for _, _, status in calls), calls
    assert len(calls) <= 2, calls
    assert "artifacts:" not in live.out
    assert CLIENT_ID not in live.out + live.err and (broker != "dhan" or MASKED in live.out)


# --- f. an unreachable feed ---------------------------------------------------------------------


def test_an_unreachable_upstox_feed_is_one_line_naming_upstox_api_base_url(tmp_path):
    """Nothing listens at UPSTOX_API_BASE_URL: the feed gives up after data.connect_timeout (1 s here,
    30 s by default) with a project error, as Dhan's does (its names DHAN_FEED_URL), not a crash."""
    cfg = write_live_yaml(tmp_path / "live.yaml", "upstox", tmp_path / "out",
                          data={"feed": "upstox", "mode": "full", "connect_timeout": 1})
    port = free_port()  # nothing listens there
    done = algo_in(["live", cfg, "--dry-run", "--no-dashboard", "--duration", "10"], live_env("upstox", port),
                   tmp_path, timeout=60)
    assert done.returncode == 1, done.stderr
    _no_traceback(done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: Upstox market feed not connected after 1s (authorize request failed: "), lines
    assert f"127.0.0.1:{port}" in lines[0] and lines[0].endswith("; check the network and UPSTOX_API_BASE_URL")

