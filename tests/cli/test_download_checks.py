"""``algo download-data``: what is wrong with the output folder, an existing file or the dates is said in
one line, exit 2, before any request (and, for the flags alone, before the instrument list is opened);
the gaps line lists gaps only.

The broker is the sandbox's historical routes on 127.0.0.1, the CLI runs in-process
(``test_download_command``'s fixtures).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from cli.test_download_command import _setup, srv, summary, use, wide  # noqa: F401  (fixtures)

NOBODY = 65534


def _run(cli, *args):
    return cli("download-data", "NSE:RELIANCE", "-i", "15m", "--from", "2024-06-10", "--to", "2024-06-14",
               "--source", "dhan", *args)


def _one_line(r, code: int = 2) -> str:
    assert r.code == code and len(r.err_lines) == 1 and "Traceback" not in r.err, (r.code, r.out, r.err)
    assert r.out == ""  # no summary claiming bars were written
    return r.err_lines[0]


@pytest.mark.parametrize("out, message", [
    ("taken", "error: taken: is a file, not a folder; pass another --out"),
    ("taken/sub", "error: taken/sub: cannot be created, taken is a file; pass another --out"),
])
def test_an_out_that_is_a_file_is_refused_before_anything_else(cli, srv, monkeypatch, tmp_path, _setup, out, message):
    use(monkeypatch, srv, "dhan")
    (tmp_path / "taken").write_text("x\n")
    assert _one_line(_run(cli, "--out", out)) == message
    assert srv.requests() == [] and _setup == []  # not even the instrument list was opened
    assert (tmp_path / "taken").read_text() == "x\n"


@pytest.mark.skipif(not hasattr(os, "seteuid"), reason="needs POSIX users")
@pytest.mark.parametrize("target", ["ro", "ro/new"])
def test_a_read_only_out_is_refused_before_any_request(cli, srv, monkeypatch, open_folder, _setup, target):
    use(monkeypatch, srv, "dhan")
    (open_folder / "ro").mkdir(mode=0o555)
    (open_folder / "ro").chmod(0o555)
    monkeypatch.chdir(open_folder)
    root = os.geteuid() == 0
    if root:  # root ignores permission bits: act as an ordinary user
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    try:
        r = _run(cli, "--out", target)
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
    line = _one_line(r)
    assert line.startswith(f"error: {target}: the output folder cannot be written") and "Permission denied" in line
    assert line.endswith("pass another --out")
    assert srv.requests() == [] and _setup == [] and list((open_folder / "ro").iterdir()) == []


def test_an_existing_file_at_another_interval_exits_2_before_any_request(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    assert _run(cli, "--out", "out", "-q").code == 0
    before = (tmp_path / "out" / "NSE_RELIANCE.csv").read_bytes()
    srv.clear()
    r = cli("download-data", "NSE:HDFCBANK", "NSE:RELIANCE", "-i", "5m", "--from", "2024-06-10", "--to", "2024-06-14",
            "--source", "dhan", "--out", "out")
    assert _one_line(r) == ("error: out/NSE_RELIANCE.csv holds 15-minute bars, not 5m; download into another folder "
                            "(--out) or move the file away")
    assert srv.requests() == [] and (tmp_path / "out" / "NSE_RELIANCE.csv").read_bytes() == before
    assert not (tmp_path / "out" / "NSE_HDFCBANK.csv").exists()


def test_an_existing_file_with_a_bad_row_exits_2_naming_the_row(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "NSE_RELIANCE.csv").write_text("timestamp,open,high,low,close,volume\n"
                                                       "2024-06-10 09:15:00,1,2,0.5,1.5,10\n"
                                                       "2024-06-10 09:30:00,1,2,0.5,,10\n")
    line = _one_line(_run(cli, "--out", "out"))
    assert line.startswith("error: out/NSE_RELIANCE.csv, row 3: ") and "close" in line
    assert srv.requests() == []


def test_a_header_only_file_is_filled_like_an_empty_one(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    assert _run(cli, "--out", "full", "-q").code == 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "NSE_RELIANCE.csv").write_text("timestamp,open,high,low,close,volume\n")
    r = _run(cli, "--out", "out", "-q")
    assert r.code == 0 and r.err == "" and summary(r.out).groups()[1:4] == ("1", "0", "125")
    assert (tmp_path / "out" / "NSE_RELIANCE.csv").read_bytes() == (tmp_path / "full" / "NSE_RELIANCE.csv").read_bytes()


@pytest.mark.parametrize("first, message", [
    ("0001-01-01", "error: --from 0001-01-01 is before 1994-11-03, NSE's first trading day: there is no data before "
                   "it; write a later date, e.g. --from 1994-11-03"),
    ("0024-06-10", "error: --from 0024-06-10 is before 1994-11-03, NSE's first trading day"),
    (str(date.today() + timedelta(days=2)), f"error: --from {date.today() + timedelta(days=2)} is after today"),
])
def test_a_from_date_no_broker_has_is_refused_before_anything_else(cli, srv, monkeypatch, _setup, first, message):
    use(monkeypatch, srv, "dhan")
    for args in (("-i", "1d"), ("--options", "-i", "15m")):
        r = cli("download-data", "NSE:RELIANCE", *args, "--from", first, "--source", "dhan")
        assert _one_line(r).startswith(message)
    assert srv.requests() == [] and _setup == []


def test_the_gaps_line_lists_and_counts_gaps_only(cli, srv, monkeypatch, wide):
    use(monkeypatch, srv, "dhan")
    # the served bars end on 14 June 2024; 17 June is Bakri Id, 18-21 June trading days without data
    r = cli("download-data", "NSE:RELIANCE", "-i", "15m", "--from", "2024-06-10", "--to", "2024-06-21",
            "--source", "dhan")
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if line.startswith(" NSE:RELIANCE"))
    assert row.split("│")[6].strip() == "4" and summary(r.out)[6] == "4"
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in r.out.splitlines()
             if line.startswith("NSE:RELIANCE ")}
    assert lines["NSE:RELIANCE gaps"].split("; ") == [
        "2024-06-18 Tue: trading day without data", "2024-06-19 Wed: trading day without data",
        "2024-06-20 Thu: trading day without data", "... and 1 more"]
    assert lines["NSE:RELIANCE holidays"] == "2024-06-17 Bakri Id (holiday)"
    assert not re.search(r"holiday", lines["NSE:RELIANCE gaps"])
