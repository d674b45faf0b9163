"""``download-data --options`` killed outright (``kill -9``: no ``finally`` runs) keeps the contracts it
fetched, the same command resumes to the files an uninterrupted run writes, the summary counts the
same bars either way, and a run that finds no candle at all fails.

The command runs in a child process against the sandbox's routes on 127.0.0.1, answering late so
the kill lands mid-download.
"""

from __future__ import annotations

import re
import signal
import time

import algocli.instruments
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.table import read_instruments
from cli.download_options_support import OPTIONS_DATA, OptionsServer
from cli.download_support import slow, start_cli

ARGS = ["download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--strikes", "ATM-1:ATM+1",
        "--cycle", "month", "-i", "15m", "--from", "2024-06-20", "--to", "2024-06-27"]
SUMMARY = re.compile(r"([\d,]+) new bars")


def _in_process(monkeypatch, srv, tmp_path) -> None:
    from algocli.adapters.dhan.http import DhanRest
    from algocli.broker.ratelimit import RateLimiter

    # Dhan's pacing is not what these tests check: without it a run takes a fraction of a second
    monkeypatch.setattr(RateLimiter, "_delay", lambda self, now: 0.0)
    monkeypatch.setattr(DhanRest.__init__, "__kwdefaults__", {**DhanRest.__init__.__kwdefaults__, "pace": 0.0})
    monkeypatch.setattr(algocli.instruments, "open_master",
                        lambda **kw: InstrumentMaster(srv.listed, source="the test instrument list"))
    monkeypatch.chdir(tmp_path)
    for key, value in srv.env("dhan").items():
        monkeypatch.setenv(key, value)


def _rows(path) -> int:
    return len(path.read_text().splitlines()) - 1


def test_kill_9_keeps_the_contracts_fetched_and_the_rerun_gives_the_uninterrupted_files(cli, monkeypatch, tmp_path):
    srv, late = OptionsServer(), slow(0.15)
    srv.middlewares = (late,)
    with srv:
        proc = start_cli(ARGS + ["--out", "opts"], srv.env("dhan"), tmp_path, listing=OPTIONS_DATA / "instruments.csv")
        deadline = time.monotonic() + 30
        while len(srv.option_requests("/v2/charts/rollingoption")) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        time.sleep(0.1)  # the third answer is being filed
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        folder = tmp_path / "opts"
        contracts = sorted(folder.glob("NSE_FNO_*.csv"))
        assert contracts, sorted(p.name for p in folder.iterdir())  # the fetched contracts are on disk
        listed = {i.dhan_id for i in read_instruments(folder / "instruments.csv")}
        assert {p.stem.replace("NSE_FNO_", "NSE_FNO:") for p in contracts} <= listed
        partial = sum(_rows(p) for p in folder.glob("*.csv") if p.name != "instruments.csv")
        late.delay["seconds"] = 0
        _in_process(monkeypatch, srv, tmp_path)
        resumed = cli(*ARGS, "--out", "opts", "-q")
        whole = cli(*ARGS, "--out", "whole", "-q")
        assert resumed.code == 0 and whole.code == 0, (resumed.err, whole.err)
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in names:
        assert (folder / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    # the killed run's bars plus the resumed run's new ones are the uninterrupted run's, underlying included
    total = sum(_rows(p) for p in (tmp_path / "whole").glob("*.csv") if p.name != "instruments.csv")
    assert partial + int(SUMMARY.search(resumed.out)[1].replace(",", "")) == total, resumed.out


def test_the_summary_counts_the_underlyings_bars_as_the_interrupted_line_does(cli, monkeypatch, tmp_path):
    with OptionsServer() as srv:
        _in_process(monkeypatch, srv, tmp_path)
        got = cli(*ARGS, "--out", "opts")
    assert got.code == 0, got.err
    on_disk = sum(_rows(p) for p in (tmp_path / "opts").glob("*.csv") if p.name != "instruments.csv")
    assert int(SUMMARY.search(got.out)[1].replace(",", "")) == on_disk, got.out
    assert "NSE:NIFTY 50" in got.out and "underlying" in got.out


def test_no_candle_for_any_strike_is_a_failed_download(cli, monkeypatch, tmp_path):
    with OptionsServer() as srv:
        _in_process(monkeypatch, srv, tmp_path)
        got = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--expiry", "far",
                  "--cycle", "month", "-i", "15m", "--from", "2024-06-13", "--to", "2024-06-14", "--out", "far")
    assert got.code == 1, (got.out, got.err)
    errors = [line for line in got.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Dhan returned no candles for any strike" in errors[0] and "try" in errors[0], got.err
