"""``algo download-data --options``: a re-run keeps the folder's instrument rows; Upstox's relative expiries
fail loudly when it lists none; the output folder is checked first.

The sandbox's option routes answer on 127.0.0.1 (``cli.download_options_support``), the CLI runs in-process.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

import algocli.instruments
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.table import read_instruments, write_instruments
from cli.download_options_support import OptionsServer
from cli.test_download_options import SAMPLE, _crafted

OPTION = "OPT"


def _use(monkeypatch, srv: OptionsServer, source: str, tmp_path, listed=None) -> list:
    opened = []

    def open_master(**kw):
        opened.append(kw)
        return InstrumentMaster(srv.listed if listed is None else listed, source="the test instrument list")

    monkeypatch.setattr(algocli.instruments, "open_master", open_master)
    monkeypatch.chdir(tmp_path)
    for key, value in srv.env(source).items():
        monkeypatch.setenv(key, value)
    return opened


def test_a_rerun_keeps_the_lot_sizes_set_in_the_folder_and_fills_placeholders(cli, monkeypatch, tmp_path):
    args = ["download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--out", "opts", *SAMPLE]
    with OptionsServer() as srv:
        # an instrument list without the options: every contract gets the placeholder lot size 1
        _use(monkeypatch, srv, "dhan", tmp_path, listed=[i for i in srv.listed if i.kind != OPTION])
        monkeypatch.setattr("algocli.market.lots.SHIPPED", tmp_path / "no-lot-table.csv")  # no lot history either
        first = cli(*args, "--strikes", "ATM")
        assert first.code == 0 and "written as lot 1" in first.err, first.err
        rows = read_instruments(tmp_path / "opts" / "instruments.csv")
        options = sorted((r for r in rows if r.kind == OPTION), key=lambda r: r.hrn)
        assert len(options) >= 2 and {r.lot_size for r in options} == {1}
        fixed, left = options[0], options[1]
        # the user sets one lot size (and a tick size) by hand, as the note says; the other stays a placeholder
        rows = [replace(r, lot_size=50, tick_size=0.1) if r.hrn == fixed.hrn else r for r in rows]
        write_instruments(tmp_path / "opts" / "instruments.csv", rows)
        # the full list knows every contract's lot size (25); a wider window adds contracts
        real = {i.hrn: i for i in srv.listed}
        _use(monkeypatch, srv, "dhan", tmp_path)
        again = cli(*args, "--strikes", "ATM-1:ATM+1")
        assert again.code == 0, again.err
    after = {r.hrn: r for r in read_instruments(tmp_path / "opts" / "instruments.csv")}
    assert (after[fixed.hrn].lot_size, after[fixed.hrn].tick_size) == (50, 0.1)  # the user's values stay
    assert after[left.hrn].lot_size == real[left.hrn].lot_size == 25  # a placeholder takes the real one
    new = set(after) - {r.hrn for r in rows}
    assert new and all(after[h].lot_size == real[h].lot_size for h in new)  # new contracts are added
    assert all(after[h].dhan_id == real[h].dhan_id for h in after if h in real)


@pytest.mark.parametrize("expiry", ["current", "next", "far"])
def test_upstox_relative_expiry_it_does_not_list_is_an_error_not_an_empty_success(cli, monkeypatch, tmp_path,
                                                                                  expiry):
    # at 27 June 2024 15:15 the June expiry has not expired yet: Upstox's expired list is empty
    with OptionsServer(now=datetime(2024, 6, 27, 15, 15)) as srv:
        _use(monkeypatch, srv, "upstox", tmp_path)
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "upstox", "--expiry", expiry, "--out",
                "opts", *SAMPLE)
        candles = srv.option_requests("/v2/expired-instruments/historical-candle")
    assert r.code == 1 and len(r.err_lines) == 1, (r.out, r.err)
    assert r.err_lines[0] == (f"error: --expiry {expiry}: Upstox lists no contracts of a {expiry} expiry for any day "
                              "from 2024-06-13 to 2024-06-27 (it has none; it lists expired expiries only, up to six "
                              "months back); ask for an earlier --from/--to")
    # the underlying's bars (up to 15:15 of the replay) were saved, and the summary counts them
    under = len((tmp_path / "opts" / "NSE_NIFTY_50.csv").read_text().splitlines()) - 1
    assert candles == [] and r.out.strip().endswith(
        f"0 contracts, {under} new bars ({under} of the underlying), 0 duplicates, failed -> opts")


def test_upstox_days_without_a_listed_current_expiry_are_named(cli, monkeypatch, tmp_path):
    _crafted(tmp_path / "served")  # June and July 2024 monthly contracts; at 1 July only June's has expired
    with OptionsServer(tmp_path / "served", now=datetime(2024, 7, 1, 15, 30)) as srv:
        _use(monkeypatch, srv, "upstox", tmp_path)
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "upstox", "--strikes", "ATM", "--cycle",
                "month", "--interval", "1d", "--from", "2024-06-24", "--to", "2024-07-01", "--out", "opts")
    assert r.code == 0, r.err
    assert r.err_lines == ["note: 2 day(s) from 2024-06-28 to 2024-07-01 skipped: Upstox lists no contracts of a "
                           "current expiry for them (it has 2024-06-27)"]
    expiries = {row.expiry.isoformat() for row in read_instruments(tmp_path / "opts" / "instruments.csv")
                if row.kind == OPTION}
    assert expiries == {"2024-06-27"}


@pytest.mark.parametrize("out, message", [("taken", "error: taken: is a file, not a folder; pass another --out"),
                                          ("taken/x", "error: taken/x: cannot be created, taken is a file; pass "
                                                      "another --out")])
def test_an_options_out_that_cannot_be_a_folder_is_refused_first(cli, monkeypatch, tmp_path, out, message):
    with OptionsServer() as srv:
        opened = _use(monkeypatch, srv, "dhan", tmp_path)
        (tmp_path / "taken").write_text("x\n")
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--out", out, *SAMPLE)
        sent = list(srv.box.requests) + list(srv.state.requests)
    assert r.code == 2 and r.err_lines == [message] and r.out == ""
    assert sent == [] and opened == []
