"""The README's options example (``pcr_cross``) in backtest and in paper against a real ``algo sandbox``.

Both run the configs as shipped, with only the sandbox's port, the output folders and (for the shorter
run) the first session changed: the backtest on ``data/options``, the paper run on ``algo sandbox --data
data/options --speed 0``, which replays the same bars as ticks, in exchange-time order, and serves the
chains ``ctx.pcr`` reads. Every order must be the backtest's: contract, side, quantity, tag, the
decision's candle, the fill's time and price, the charges, and the expiry settlement at the expiry
day's close. The replay runs far ahead of the paper run; the chain a decision reads is still the one
of the decision's moment (``X-Sandbox-Time``), and the feed keeps up with the backlog (keepalive).
Upstox's protocol replays the whole sample (2024-06-13 to the 06-27 expiry), Dhan's its last five
sessions: Dhan serves one option chain per three seconds (its published limit, which the client keeps),
so its run is paced by the chains it reads.
"""

from __future__ import annotations

import re

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from cli.paper_support import REPO_ROOT, algo, read_csv, running, sandbox, wait_for

CONFIGS = REPO_ROOT / "configs"
OPTIONS_DATA = REPO_ROOT / "data" / "options"
UNDER = "NSE:NIFTY 50"
IST = timezone(timedelta(hours=5, minutes=30))
LAST_BAR = int(datetime(2024, 6, 27, 15, 15, tzinfo=IST).timestamp()) * 10**9  # the expiry day's last candle


def _backtest_yaml(tmp_path: Path, out: Path, first: str | None) -> Path:
    doc = yaml.safe_load((CONFIGS / "options-pcr.yaml").read_text(encoding="utf-8"))
    doc["data"]["path"] = str(OPTIONS_DATA)
    if first is not None:
        doc["data"]["start"] = first
    doc["output"]["dir"] = str(out)
    path = tmp_path / "options-pcr.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _paper_yaml(tmp_path: Path, port: int, out: Path, protocol: str) -> Path:
    doc = yaml.safe_load((CONFIGS / "options-pcr-paper.yaml").read_text(encoding="utf-8"))
    doc["data"].update(url=f"http://127.0.0.1:{port}", protocol=protocol)
    doc["output"]["dir"] = str(out)
    path = tmp_path / "options-pcr-paper.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _settled(journal: Path) -> bool:
    """The paper run has journaled the index's last candle and the expiry settlement (read from the end)."""
    if not journal.is_file():
        return False
    with open(journal, "rb") as fh:
        fh.seek(max(0, journal.stat().st_size - 65536))
        tail = fh.read().decode("utf-8", errors="replace")
    return f'"k":"candle","instrument":"{UNDER}","ts":{LAST_BAR},' in tail and '"expiry"' in tail


@pytest.mark.parametrize("protocol, first", [("dhan", "2024-06-20"), ("upstox", None)])
def test_pcr_cross_paper_against_the_sandbox_places_the_backtests_orders(tmp_path, protocol, first):
    bt_out, paper_out, logs = tmp_path / "bt", tmp_path / "paper", tmp_path / "logs"
    bt = algo(["backtest", _backtest_yaml(tmp_path, bt_out, first), "--no-report", "-q"], timeout=120)
    assert bt.returncode == 0, bt.stderr
    expected = read_csv(bt_out / "orders.csv")
    assert expected[-1]["tag"] == "expiry" and len(expected) >= 2

    extra = [] if first is None else ["--start", f"{first} 09:15"]
    with sandbox(OPTIONS_DATA, logs, speed=0, extra=extra) as box:
        cfg = _paper_yaml(tmp_path, box.port, paper_out, protocol)
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper") as paper:
            box.wait_replay_done(timeout=90)
            # no tick comes after 15:29:59: the run's clock closes the last candle and settles the option
            wait_for(lambda: _settled(paper_out / "journal.jsonl"), 120, "the paper run's expiry settlement",
                     interval=0.5, child=paper)
            assert paper.interrupt(timeout=30) == 0, paper.err
    assert "disconnected" not in paper.err  # the feed kept up with the replay's backlog
    assert re.search(r"artifacts: .*journal\.jsonl,\s+pcr\.csv\)", paper.out, flags=re.S)
    got = read_csv(paper_out / "orders.csv")
    # every order field: the PCR confirmed the same crosses, the ATM pick chose the same contracts, the stop
    # read the option's candle of the decision's own period, each order filled at the option's next open (the
    # backtest's next_open), the charges are the same, and the expiry settled at the expiry day's last close
    assert got == expected
    assert read_csv(paper_out / "fills.csv") == read_csv(bt_out / "fills.csv")
    recorded = read_csv(paper_out / "pcr.csv")
    assert recorded and {(r["source"], r["underlying"], r["expiry"]) for r in recorded} == {
        (protocol, UNDER, "2024-06-27")}


def test_pcr_cross_resumed_after_kill_9_keeps_trading(tmp_path):
    # the resume replays the journaled candles through the strategy; the crosses among them read ctx.pcr,
    # whose broker chain is today's: while replaying it reads "no chain yet", never a halt (before, the
    # wall clock's date found no listed expiry and the strategy was halted for the rest of the run)
    paper_out, logs = tmp_path / "paper", tmp_path / "logs"
    journal = paper_out / "journal.jsonl"
    # the replay (10 sessions) takes about 30 s: the restart is back long before it ends, however loaded the
    # machine (at full speed it could end while the run was down, and then no candle would close again)
    with sandbox(OPTIONS_DATA, logs, speed=7500) as box:
        cfg = _paper_yaml(tmp_path, box.port, paper_out, "upstox")
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "first") as first:
            wait_for(lambda: journal.is_file() and '"k":"order"' in journal.read_text(encoding="utf-8"), 120,
                     "the first order", interval=0.2, child=first)
            first.kill()
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "resumed") as resumed:
            box.wait_replay_done(timeout=90)
            wait_for(lambda: _settled(journal) or '"k":"strategy_halted"' in journal.read_text(encoding="utf-8"),
                     120, "the resumed run's expiry settlement", interval=0.5, child=resumed)
            assert resumed.interrupt(timeout=30) == 0, resumed.err
    assert "resuming from" in resumed.out + resumed.err
    assert "halted" not in resumed.out + resumed.err, resumed.err
    assert '"k":"strategy_halted"' not in journal.read_text(encoding="utf-8")
