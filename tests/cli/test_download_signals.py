"""``algo download-data`` stopped by SIGTERM (``timeout``, cron, systemd) or Ctrl-C: what was fetched is
written, one line says how much, exit 130, and the same command resumes.

The command runs in a child process (a real signal needs one) against the sandbox's routes on
127.0.0.1, which answer every request late so the download is still running when the signal comes.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import date
from pathlib import Path

import pytest

import algocli.instruments
from algocli.data.download import run_download
from algocli.instruments.master import InstrumentMaster
from cli.download_options_support import OPTIONS_DATA, OptionsServer
from cli.download_support import HistoryServer, slow, start_cli, table_resolver
from data.test_download import FAST

LINE = re.compile(r"^interrupted: ([\d,]+) new bars? saved in (.+); run the same command to resume$")


def _interrupt(proc, sig: int, ready, timeout: float = 60.0) -> tuple[str, str]:
    """Send ``sig`` once ``ready()`` holds, then wait for the child to finish."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the download never got going"
        time.sleep(0.02)
    proc.send_signal(sig)
    return proc.communicate(timeout=timeout)


def _rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_what_was_fetched_and_the_rerun_resumes(tmp_path, sig):
    args = ["download-data", "NSE:RELIANCE", "-i", "1m", "--from", "2024-06-10", "--to", "2025-03-31",
            "--source", "dhan", "--out", "out"]
    late = slow(0.3)
    with HistoryServer(middlewares=(late,)) as srv:
        env = srv.env("dhan")
        proc = start_cli(args, env, tmp_path)
        # the first 90 days (10-14 June hold the served bars) are in once the second piece is asked for
        out, err = _interrupt(proc, sig, lambda: len(srv.requests()) >= 2)
        assert proc.returncode == 130, (out, err)
        file = tmp_path / "out" / "NSE_RELIANCE.csv"
        assert err.strip().splitlines() == ["interrupted: 1,875 new bars saved in out; run the same command to resume"]
        assert out == ""
        assert _rows(file) == 5 * 375 and "NSE:RELIANCE" in (tmp_path / "out" / "instruments.csv").read_text()
        srv.clear()
        late.delay["seconds"] = 0
        again = start_cli(args + ["-q"], env, tmp_path)
        out, err = again.communicate(timeout=60)
        asked = [b["fromDate"] for b in srv.requests()]
        full = run_download(["NSE:RELIANCE"], resolve=table_resolver, source="dhan", interval="1m",
                            start=date(2024, 6, 10), end=date(2025, 3, 31), out_dir=tmp_path / "full",
                            settings=srv.settings("dhan"), **FAST)
    assert again.returncode == 0, err
    assert out.startswith("download-data: 1 instrument, 1 ok, 0 failed, 0 new bars, ")
    assert asked[0] == "2024-06-15 00:00:00"  # the stored days are not fetched again
    assert file.read_bytes() == full.files[0].path.read_bytes()


def test_sigterm_during_an_options_download_keeps_the_contracts_fetched(cli, monkeypatch, tmp_path):
    args = ["download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--strikes", "ATM-2:ATM+2",
            "--cycle", "month", "-i", "15m", "--from", "2024-06-13", "--to", "2024-06-27"]
    srv, late = OptionsServer(), slow(0.2)
    srv.middlewares = (late,)
    with srv:
        proc = start_cli(args + ["--out", "opts"], srv.env("dhan"), tmp_path, listing=OPTIONS_DATA / "instruments.csv")
        out, err = _interrupt(proc, signal.SIGTERM,
                              lambda: len(srv.option_requests("/v2/charts/rollingoption")) >= 4)
        assert proc.returncode == 130, (out, err)
        folder = tmp_path / "opts"
        match = LINE.match(err.strip())
        assert match and match[2] == "opts", err
        files = [p for p in folder.glob("*.csv") if p.name != "instruments.csv"]
        contracts = [p for p in files if p.name.startswith("NSE_FNO_")]
        assert contracts and int(match[1].replace(",", "")) == sum(_rows(p) for p in files)
        listed = (folder / "instruments.csv").read_text()
        assert all(p.stem.replace("NSE_FNO_", "NSE_FNO:") in listed for p in contracts)
        # the rerun completes, and the folder is what an uninterrupted download writes
        late.delay["seconds"] = 0
        monkeypatch.setattr(algocli.instruments, "open_master",
                            lambda **kw: InstrumentMaster(srv.listed, source="the test instrument list"))
        monkeypatch.chdir(tmp_path)
        for key, value in srv.env("dhan").items():
            monkeypatch.setenv(key, value)
        assert cli(*args, "--out", "opts").code == 0
        assert cli(*args, "--out", "whole").code == 0
    names = sorted(p.name for p in (tmp_path / "whole").glob("*.csv"))
    assert sorted(p.name for p in folder.glob("*.csv")) == names
    for name in names:
        assert (folder / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
