"""``algo paper`` end to end: a real ``algo sandbox`` on a loopback port, the real wire
protocols, Ctrl-C, ``kill -9`` and restart from the journal, a rejected token, and feed faults.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from algocli.data.csv_feed import load_csv
from algocli.sandbox.replay import IST
from cli.paper_support import (
    ARTIFACTS, INITIAL_CAPITAL, TRACEBACK, algo, child_env, read_csv, read_journal, running, sandbox, wait_for,
    write_backtest_yaml, write_dhan_yaml, write_one_day, write_paper_yaml,
)

END_OF_DATA = "end-of-data close"
TICKS_PER_DAY = 375 * 4  # the sandbox sends four ticks per bar
FAST_SPEED = 30_000  # one 375-minute session in 0.75 s of wall time


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    """A data folder holding the first session (375 one-minute bars) of NSE_EQ_2885."""
    folder = tmp_path_factory.mktemp("one_day")
    write_one_day(folder)
    return folder


@pytest.fixture(scope="module")
def backtest_dir(tmp_path_factory, one_day) -> Path:
    """``algo backtest`` on the same CSV, strategy and account (feed: csv)."""
    tmp = tmp_path_factory.mktemp("backtest")
    cfg = write_backtest_yaml(tmp / "bt.yaml", data_dir=one_day, out_dir=tmp / "out")
    done = algo(["backtest", cfg, "--no-report"], timeout=60)
    assert done.returncode == 0, done.stderr
    return tmp / "out"


@dataclass
class PaperRun:
    code: int
    out: str
    err: str
    out_dir: Path
    health: dict


@pytest.fixture(scope="module")
def full_day_paper(tmp_path_factory, one_day):
    """``algo paper --no-dashboard`` over one whole replayed day, per protocol, stopped by SIGINT."""
    runs: dict[str, PaperRun] = {}

    def get(protocol: str) -> PaperRun:
        if protocol not in runs:
            tmp = tmp_path_factory.mktemp(f"paper_{protocol}")
            with sandbox(one_day, tmp / "logs", speed=0) as box:
                cfg = write_paper_yaml(tmp / "paper.yaml", port=box.port, out_dir=tmp / "out", protocol=protocol)
                with running(["paper", cfg, "--no-dashboard"], tmp / "logs", "paper") as paper:
                    # --wait-for-client: the replay starts once the paper run has subscribed
                    health = box.wait_replay_done(timeout=30)
                    # the last packets are on their way, and the last candle (its close tick is one second
                    # before its end) is final only once the exchange clock has passed 15:30
                    time.sleep(2.5)
                    assert paper.poll() is None, paper.err
                    code = paper.interrupt(timeout=30)
                    runs[protocol] = PaperRun(code, paper.out, paper.err, tmp / "out", health)
        return runs[protocol]

    return get


def _bar_time(text: str) -> str:
    """The start of the 1-minute bar a timestamp falls in."""
    return datetime.fromisoformat(text).replace(second=0, microsecond=0).isoformat()


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert TRACEBACK not in text
        assert "internal error" not in text


# --- a. the backtest's decisions through the real protocols -----------------------------


@pytest.mark.parametrize("protocol", ["dhan", "upstox"])
def test_paper_through_the_sandbox_makes_the_backtests_orders_and_fills(full_day_paper, backtest_dir, protocol):
    run = full_day_paper(protocol)
    assert run.health["ticks_published"] == run.health["ticks_total"] == TICKS_PER_DAY
    assert run.code == 0, run.err
    for name in ARTIFACTS:
        assert (run.out_dir / name).is_file(), name

    bt_orders = read_csv(backtest_dir / "orders.csv")
    bt_curve = read_csv(backtest_dir / "equity_curve.csv")
    last_bar = bt_curve[-1]["timestamp"]

    def orders(rows):
        return [(o["order_id"], o["side"], o["order_type"], int(o["quantity"]), o["status"],
                 round(float(o["average_price"]), 6), o["created_time"], _bar_time(o["updated_time"]))
                for o in rows if o["tag"] != END_OF_DATA and o["created_time"] != last_bar]

    def fills(rows, ids):
        return [(f["order_id"], f["side"], int(f["quantity"]), round(float(f["price"]), 6), _bar_time(f["time"]))
                for f in rows if f["order_id"] in ids]

    expected_orders = orders(bt_orders)
    assert orders(read_csv(run.out_dir / "orders.csv")) == expected_orders
    ids = {o[0] for o in expected_orders}
    expected_fills = fills(read_csv(backtest_dir / "fills.csv"), ids)
    assert len(expected_fills) >= 5
    assert fills(read_csv(run.out_dir / "fills.csv"), ids) == expected_fills
    # every candle came through the socket intact: one equity row per bar, on the backtest's clock
    curve = read_csv(run.out_dir / "equity_curve.csv")
    assert [r["timestamp"] for r in curve] == [r["timestamp"] for r in bt_curve]


# --- b. Ctrl-C ---------------------------------------------------------------------------


def test_ctrl_c_prints_the_summary_and_writes_the_artifacts_and_report(full_day_paper):
    run = full_day_paper("dhan")
    assert run.code == 0, run.err
    _no_traceback(run.out, run.err)
    assert "paper-test: paper trading results" in run.out
    assert re.search(r"Equity Final \[₹\]\s+│\s+[\d,]+\.\d\d", run.out)
    assert re.search(r"# Trades\s+│\s+\d+", run.out)
    assert "artifacts:" in run.out and "report.html" in run.out
    for name in (*ARTIFACTS, "report.html", "run.json", "config.resolved.yaml", "journal.jsonl"):
        assert (run.out_dir / name).is_file(), name
    assert "<html" in (run.out_dir / "report.html").read_text(encoding="utf-8")[:2000].lower()


def test_ctrl_c_mid_replay_stops_cleanly_without_a_report(tmp_path, one_day):
    with sandbox(one_day, tmp_path / "logs", speed=6000) as box:  # 3.75 s for the day
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        with running(["paper", cfg, "--no-dashboard", "--no-report"], tmp_path / "logs", "paper") as paper:
            box.wait_published(100 * 4, timeout=30)
            assert paper.poll() is None, paper.err
            code = paper.interrupt(timeout=30)
            published = box.health()["ticks_published"]
    assert code == 0, paper.err
    assert published < TICKS_PER_DAY  # it really was mid-replay
    _no_traceback(paper.out, paper.err)
    assert "paper-test: paper trading results" in paper.out and "artifacts:" in paper.out
    for name in ARTIFACTS:
        assert (tmp_path / "out" / name).is_file(), name
    assert not (tmp_path / "out" / "report.html").exists()
    rows = len(read_csv(tmp_path / "out" / "equity_curve.csv"))
    assert 100 <= rows < 375


def test_ctrl_c_after_the_output_pipe_closed_still_writes_the_artifacts(tmp_path, one_day):
    """``algo paper cfg | tee log`` stopped with Ctrl-C: the terminal stops ``tee`` too, so the run
    finds its standard output closed as it ends. It still writes its artifacts and exits 0 (it
    printed the summary first and failed there with exit 1, writing nothing)."""
    import subprocess

    from cli.paper_support import ALGO_EXE, REPO_ROOT

    with sandbox(one_day, tmp_path / "logs", speed=6000) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        with open(tmp_path / "paper.err", "wb") as err:
            proc = subprocess.Popen([str(ALGO_EXE), "paper", str(cfg), "--no-report"], cwd=REPO_ROOT,
                                    env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            try:
                box.wait_published(100 * 4, timeout=30)
                proc.stdout.close()  # tee is gone
                proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
    errors = (tmp_path / "paper.err").read_text(encoding="utf-8")
    assert code == 0, errors
    _no_traceback(errors)
    for name in ARTIFACTS:
        assert (tmp_path / "out" / name).is_file(), name


def _fifteen_minutes(tmp_path: Path, port: int, out_dir: Path) -> Path:
    cfg = write_paper_yaml(tmp_path / f"paper-{port}.yaml", port=port, out_dir=out_dir)
    definition = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    definition["interval"] = "15m"
    cfg.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return cfg


def _paper_15m(tmp_path: Path, data: Path, out_dir: Path, label: str, settle_s: float, extra: list[str] = ()):
    """``algo paper`` on 15m candles over a fresh sandbox of ``data``, Ctrl-C ``settle_s`` after the replay."""
    logs = tmp_path / "logs"
    with sandbox(data, logs, speed=0, extra=list(extra)) as box:
        cfg = _fifteen_minutes(tmp_path, box.port, out_dir)
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, label) as paper:
            box.wait_replay_done(timeout=30)
            time.sleep(settle_s)
            return paper.interrupt(timeout=30), paper


def _journal_candles(journal: list[dict]) -> list[tuple]:
    return [(r["ts"], r["open"], r["high"], r["low"], r["close"], float(r["volume"]))
            for r in journal if r["k"] == "candle"]


def _candle_rows(bars) -> list[tuple]:
    return list(zip(bars.ts.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist(),
                    bars.volume.tolist()))


def test_ctrl_c_mid_candle_leaves_it_out_and_a_resume_within_its_interval_continues_it(tmp_path, one_day):
    """15m candles; the feed stops after the 11:06 bar, Ctrl-C; then the day goes on from 11:07."""
    from algocli.data.csv_feed import resample
    from algocli.domain.models import Interval

    bars = load_csv(one_day / "NSE_EQ_2885.csv", "NSE_EQ:2885")
    minutes = [datetime.fromisoformat(f"2024-06-10 {t}").replace(tzinfo=IST) for t in ("11:00", "11:07")]
    eleven, seven_past = (int(m.timestamp()) * 10**9 for m in minutes)
    morning = int((bars.ts < seven_past).sum())  # 09:15 ... 11:06
    write_one_day(tmp_path / "morning", rows=morning)
    expected = _candle_rows(resample(bars, Interval.MINUTE_15))
    out_dir = tmp_path / "out"

    # 11:06:59 was the last tick: the 11:00 candle is still forming
    code, paper = _paper_15m(tmp_path, tmp_path / "morning", out_dir, "paper", settle_s=1.0)
    assert code == 0, paper.err
    _no_traceback(paper.out, paper.err)
    journal = read_journal(out_dir / "journal.jsonl")
    closed = _journal_candles(journal)
    assert closed == [r for r in expected if r[0] < eleven]  # 09:15 ... 10:45, and not the half-built 11:00
    assert [(r["instrument"], r["start"]) for r in journal if r["k"] == "forming"] == [("NSE_EQ:2885", eleven)]
    curve = read_csv(out_dir / "equity_curve.csv")
    assert curve[-1]["timestamp"] == "2024-06-10T10:45:00+05:30" and len(curve) == len(closed)
    assert "candle of 2024-06-10 11:00 IST had not closed" in " ".join(paper.out.split())

    # past 15:30 on the exchange clock when stopped: the last candle has closed
    code, again = _paper_15m(tmp_path, one_day, out_dir, "resume", settle_s=2.5,
                             extra=["--start", "2024-06-10 11:07"])
    assert code == 0, again.err
    _no_traceback(again.out, again.err)
    # the 11:00 candle whole (its close and volume are the source's), once
    assert _journal_candles(read_journal(out_dir / "journal.jsonl")) == expected
    assert len(read_csv(out_dir / "equity_curve.csv")) == len(expected)


# --- c. kill -9 and restart from the journal ---------------------------------------------


CRASHES = ["after_order_journal:2", "after_fill_journal:2", "after_candle_journal:40", "external-kill"]


@pytest.mark.parametrize("crash", CRASHES)
def test_a_killed_run_resumes_from_its_journal_without_losing_or_doubling_anything(tmp_path, one_day, crash):
    logs, out_dir = tmp_path / "logs", tmp_path / "out"
    kill_after = None
    with sandbox(one_day, logs, speed=FAST_SPEED) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=out_dir)
        if crash == "external-kill":
            kill_after = random.randint(600, 1200)  # ticks into the day (of 1500)
            with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper") as paper:
                box.wait_published(kill_after, timeout=30)
                assert paper.poll() is None, paper.err
                os.kill(paper.pid, signal.SIGKILL)
                code = paper.wait(timeout=10)
        else:
            env = child_env(ALGOCLI_CRASH_AT=crash)
            with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper", env=env) as paper:
                code = paper.wait(timeout=30)
        assert code == -signal.SIGKILL, f"{crash} (external kill after {kill_after} ticks): exit {code}\n{paper.err}"
        before = read_journal(out_dir / "journal.jsonl")
        box.wait_replay_done(timeout=30)
        # restart: the replay is over, so the new run can only restore what the journal holds
        with running(["paper", cfg, "--no-dashboard", "--no-report", "--duration", "0.3"], logs, "restart") as again:
            code = again.wait(timeout=30)
    assert code == 0, again.err
    _no_traceback(again.out, again.err)
    assert re.search(r"resuming from .*journal\.jsonl: \d+ candles, \d+ orders, \d+ fills", again.err), again.err
    journal = read_journal(out_dir / "journal.jsonl")
    assert journal == before  # restoring writes nothing new
    _check_artifacts_against_journal(out_dir, journal, crash, again.out)


def _check_artifacts_against_journal(out_dir: Path, journal: list[dict], crash: str, stdout: str) -> None:
    j_fills = [r for r in journal if r["k"] == "fill"]
    j_orders = [r for r in journal if r["k"] == "order"]
    j_status = {r["order_id"]: r["status"] for r in journal if r["k"] == "status"}
    candles = [r for r in journal if r["k"] == "candle"]
    fills = read_csv(out_dir / "fills.csv")
    orders = {o["order_id"]: o for o in read_csv(out_dir / "orders.csv")}
    trades = read_csv(out_dir / "trades.csv")
    curve = read_csv(out_dir / "equity_curve.csv")
    assert j_orders, f"{crash}: the crash came before any order, so the case proves nothing"
    if crash.startswith("after_candle_journal"):
        assert len(candles) == 40

    # fills: each journaled fill exactly once, with the journal's values
    ids = [f["fill_id"] for f in fills]
    assert all(n == 1 for n in Counter(ids).values()), ids
    assert all(n == 1 for n in Counter(r["fill_id"] for r in j_fills).values())
    assert [(f["fill_id"], f["order_id"], f["side"], int(f["quantity"]), float(f["price"]), float(f["charges"]))
            for f in fills] == \
        [(r["fill_id"], r["order_id"], r["side"], r["quantity"], r["price"], round(r["commission"], 2))
         for r in j_fills]  # fills.csv writes money to paise

    # orders: none lost; those neither filled nor finished in the journal are still working
    filled = Counter()
    for r in j_fills:
        filled[r["order_id"]] += r["quantity"]
    assert set(orders) == {r["order_id"] for r in j_orders}
    for r in j_orders:
        row = orders[r["order_id"]]
        assert (row["side"], int(row["quantity"])) == (r["side"], r["quantity"])
        if filled[r["order_id"]] >= r["quantity"]:
            assert row["status"] == "FILLED"
        elif r["order_id"] not in j_status:
            assert row["status"] in ("PENDING", "OPEN"), row
    if crash.startswith("after_order_journal"):
        last = j_orders[-1]  # journaled just before the kill, never acted on
        assert filled[last["order_id"]] == 0 and orders[last["order_id"]]["status"] == "PENDING"
    if crash.startswith("after_fill_journal"):
        assert orders[j_fills[-1]["order_id"]]["status"] == "FILLED"

    # cash: initial capital plus every journaled fill's cash flow, booked once
    flows = sum((-1 if r["side"] == "BUY" else 1) * r["quantity"] * r["price"] - r["commission"] for r in j_fills)
    assert float(curve[-1]["cash"]) == pytest.approx(round(INITIAL_CAPITAL + flows, 2), abs=0.006)

    # position: what the fills leave open agrees with the orders, the round trips and the summary
    net = sum((1 if r["side"] == "BUY" else -1) * r["quantity"] for r in j_fills)
    from_orders = sum((1 if o["side"] == "BUY" else -1) * int(o["filled_quantity"]) for o in orders.values())
    assert net == from_orders
    assert net in (0, 10)  # long-only, 10 units per entry
    buys = [r for r in j_fills if r["side"] == "BUY"]
    sells = [r for r in j_fills if r["side"] == "SELL"]
    assert len(trades) == len(sells) and len(buys) - len(sells) == net // 10
    for trade, buy, sell in zip(trades, buys, sells):
        assert (trade["side"], int(trade["size"])) == ("LONG", 10)
        assert float(trade["entry_price"]) == pytest.approx(buy["price"])
        assert float(trade["exit_price"]) == pytest.approx(sell["price"])
    assert ("position(s) are still open" in stdout) == (net != 0)


def test_a_torn_journal_tail_is_cut_so_the_resumed_run_stays_readable(tmp_path, one_day):
    """A crash mid-write leaves half a line; the resumed run must not append its records onto it."""
    bars = load_csv(one_day / "NSE_EQ_2885.csv", "NSE_EQ:2885")
    morning = 188  # bars 09:15-12:22 are in the journal; the sandbox replays from 12:23
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    lines = [json.dumps({"k": "candle", "instrument": "NSE_EQ:2885", "ts": int(bars.ts[i]), "open": float(bars.open[i]),
                         "high": float(bars.high[i]), "low": float(bars.low[i]), "close": float(bars.close[i]),
                         "volume": float(bars.volume[i])}) + "\n" for i in range(morning)]
    torn = '{"k":"fill","fill_id":"sma-999999-F1","order_id":"sma-99'
    (out_dir / "journal.jsonl").write_text("".join(lines) + torn, encoding="utf-8")
    with sandbox(one_day, tmp_path / "logs", speed=0, extra=["--start", "2024-06-10 12:23"]) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=out_dir)
        with running(["paper", cfg, "--no-dashboard", "--no-report"], tmp_path / "logs", "paper") as paper:
            box.wait_replay_done(timeout=30)
            time.sleep(2.5)  # past 15:30 on the exchange clock: the last candle has closed
            assert paper.poll() is None, paper.err
            code = paper.interrupt(timeout=30)
    assert code == 0, paper.err
    _no_traceback(paper.out, paper.err)
    assert f"{morning} candles, 0 orders, 0 fills" in paper.err
    raw = (out_dir / "journal.jsonl").read_bytes()
    assert raw.endswith(b"\n") and b"sma-999999" not in raw
    records = [json.loads(line) for line in raw.splitlines()]  # every line whole: nothing ran on from the tear
    assert read_journal(out_dir / "journal.jsonl") == records
    candles = [r["ts"] for r in records if r["k"] == "candle"]
    assert candles == [int(t) for t in bars.ts]  # morning from the journal, afternoon from the feed
    assert any(r["k"] == "fill" for r in records)  # the resumed run traded, and its fills are readable
    assert len(read_csv(out_dir / "equity_curve.csv")) == len(bars)
    assert "sma-999999-F1" not in (out_dir / "fills.csv").read_text(encoding="utf-8")


# --- d. a rejected token ----------------------------------------------------------------


SENTINEL = "SENTINEL-tok-7f3a9c"


def _assert_one_token_error(code: int, out: str, err: str, elapsed: float) -> None:
    assert code not in (0, None)
    assert elapsed < 10
    assert SENTINEL not in out and SENTINEL not in err
    _no_traceback(out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    line = lines[0].lower()
    assert line.startswith("error:")
    assert re.search(r"reject|refus|authentication failed|invalid", line), line
    assert re.search(r"(new|fresh|renew)\b.*token", line), line  # says how to renew it


def test_a_second_session_on_the_same_folder_is_refused_and_touches_nothing(tmp_path, one_day):
    # two sessions on one folder would both resume its journal and both send every order
    with sandbox(one_day, tmp_path / "logs", speed=60) as box:  # a candle a second: the first run stays up
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        with running(["paper", cfg, "--no-dashboard"], tmp_path / "logs", "paper") as first:
            journal = tmp_path / "out" / "journal.jsonl"
            wait_for(lambda: journal.exists() and any(r["k"] == "candle" for r in read_journal(journal)), 30,
                     "the first run's first candle", child=first)
            before = (tmp_path / "out" / "journal.jsonl").read_bytes()
            second = algo(["paper", cfg, "--no-dashboard"], timeout=30)
            assert second.returncode == 2, second.stderr
            assert second.stderr == (f"error: {tmp_path / 'out'}: a session is already running from this folder "
                                     f"(pid {first.pid}); stop it first (Ctrl-C in its terminal), or pass another "
                                     "--output\n")
            assert (tmp_path / "out" / "journal.jsonl").read_bytes().startswith(before)  # only the first appends
            assert first.interrupt() == 0
        again = algo(["paper", cfg, "--no-dashboard", "--duration", "1"], timeout=30)  # the lock went with it
        assert again.returncode == 0 and "resuming from" in again.stdout + again.stderr, again.stderr


@pytest.mark.parametrize("protocol", ["dhan", "upstox"])
def test_a_rejected_sandbox_token_stops_with_one_line(tmp_path, one_day, protocol):
    with sandbox(one_day, tmp_path / "logs", extra=["--reject-tokens"]) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out", protocol=protocol,
                               token=SENTINEL)
        started = time.monotonic()
        with running(["paper", cfg, "--no-dashboard"], tmp_path / "logs", "paper") as paper:
            code = paper.wait(timeout=20)
        elapsed = time.monotonic() - started
    _assert_one_token_error(code, paper.out, paper.err, elapsed)


def test_a_rejected_dhan_token_stops_with_one_line(tmp_path, one_day):
    with sandbox(one_day, tmp_path / "logs", extra=["--reject-tokens"]) as box:
        cfg = write_dhan_yaml(tmp_path / "paper.yaml", out_dir=tmp_path / "out")
        env = child_env(DHAN_FEED_URL=f"ws://127.0.0.1:{box.port}/dhan/feed", DHAN_CLIENT_ID="1000000001",
                        DHAN_ACCESS_TOKEN=SENTINEL)
        started = time.monotonic()
        with running(["paper", cfg, "--no-dashboard"], tmp_path / "logs", "paper", env=env) as paper:
            code = paper.wait(timeout=20)
        elapsed = time.monotonic() - started
    _assert_one_token_error(code, paper.out, paper.err, elapsed)
    assert "DHAN_ACCESS_TOKEN" in paper.err


# --- e. feed faults ----------------------------------------------------------------------


def test_dropped_connections_and_garbage_packets_do_not_stop_paper(tmp_path, one_day):
    # --drop-every 200: the socket is cut after ~50 bars' worth of packets, many times over the day
    with sandbox(one_day, tmp_path / "logs", speed=12_000,
                 extra=["--drop-every", "200", "--malformed-every", "50"]) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        with running(["paper", cfg, "--no-dashboard", "--no-report"], tmp_path / "logs", "paper") as paper:
            box.wait_replay_done(timeout=30)
            time.sleep(0.3)
            assert paper.poll() is None, paper.err  # still running after every fault
            code = paper.interrupt(timeout=30)
    assert code == 0, paper.err
    _no_traceback(paper.out, paper.err)
    assert "paper-test: paper trading results" in paper.out
    for name in ARTIFACTS:
        assert (tmp_path / "out" / name).is_file(), name
    candles = [r for r in read_journal(tmp_path / "out" / "journal.jsonl") if r["k"] == "candle"]
    # the first connection carries at most 200 packets (under 50 bars); candles from well after
    # that can only have come over a later connection: the feed reconnected and went on
    minutes = [(r["ts"] - candles[0]["ts"]) // 60_000_000_000 for r in candles]
    assert max(minutes) > 60, minutes
    assert 50 < len(candles) < 375  # ticks were lost while reconnecting, not invented
    assert len(read_csv(tmp_path / "out" / "equity_curve.csv")) == len(candles)


@pytest.mark.parametrize("value", ["-5", "nan"])
def test_a_negative_duration_is_refused_in_one_line_before_anything_runs(cli, tmp_path, value):
    """0 stays valid (connect, then stop); a negative or NaN --duration used to run anyway."""
    cfg = write_paper_yaml(tmp_path / "paper.yaml", port=9, out_dir=tmp_path / "out")  # port 9: never contacted
    done = cli("paper", cfg, "--no-dashboard", "--duration", value)
    assert done.code == 2 and done.out == ""
    assert done.err_lines == [f"error: --duration {value} is not a number of seconds, 0 or more; give how long to "
                              "run (0 connects and stops at once), or leave it out to run until Ctrl-C"]
    assert not (tmp_path / "out").exists()

