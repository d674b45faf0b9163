"""``algo download-data`` end to end: the sandbox's historical routes on 127.0.0.1, the CLI in-process.

The instrument master is replaced by one built from ``data/instruments.csv`` (the real one
would refresh itself from the brokers' servers), through ``algocli.instruments.open_master``,
which the command looks up when it runs.
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from rich.console import Console

import algocli.instruments
from algocli.data.csv_feed import load_csv
from algocli.instruments.master import InstrumentMaster
from cli.download_support import INSTRUMENTS, ROOT, HistoryServer

SUMMARY = re.compile(r"^download-data: (\d+) instruments?, (\d+) ok, (\d+) failed, ([\d,]+) new bars?, "
                     r"([\d,]+) duplicates?, ([\d,]+) gaps? -> (.+)$")


@pytest.fixture(scope="module")
def srv():
    with HistoryServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _setup(srv, monkeypatch, tmp_path):
    srv.clear()
    srv.state.fail_next.clear()
    srv.state.fail_always.clear()
    opened = []

    def open_master(**kwargs):
        opened.append(kwargs)
        return InstrumentMaster(INSTRUMENTS, source="the test instrument list")

    monkeypatch.setattr(algocli.instruments, "open_master", open_master)
    monkeypatch.chdir(tmp_path)  # no stray .env; the default --out lands here
    for name in ("DHAN_API_BASE_URL", "DHAN_ACCESS_TOKEN", "DHAN_CLIENT_ID", "UPSTOX_API_BASE_URL",
                 "UPSTOX_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return opened


def use(monkeypatch, srv, source: str, token: str | None = None) -> None:
    for key, value in srv.env(source, **({"token": token} if token else {})).items():
        monkeypatch.setenv(key, value)


def summary(out: str) -> re.Match:
    last = out.rstrip("\n").splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, last
    return match


@pytest.fixture
def wide(monkeypatch):
    """Print download-data's table 250 columns wide so its cells are neither wrapped nor cut."""
    import algocli.cli.download as command

    monkeypatch.setattr(command, "console", Console(width=250, color_system=None, highlight=False))


def test_dhan_download_writes_the_files_and_ends_with_one_summary_line(cli, srv, monkeypatch, wide, tmp_path):
    use(monkeypatch, srv, "dhan")
    r = cli("download-data", "NSE:HDFCBANK", "NSE:INFY", "--interval", "1d", "--from", "2024-01-01", "--to",
            "2024-06-30", "--source", "dhan")
    assert r.code == 0, r.err
    m = summary(r.out)
    assert m.groups()[:3] == ("2", "2", "0") and m[5] == "0" and m[7] == "data/1d"
    for name in ("NSE_HDFCBANK.csv", "NSE_INFY.csv"):
        bars = load_csv(tmp_path / "data" / "1d" / name, name)
        assert len(bars) == int(m[4].replace(",", "")) // 2
    table = {line.split()[0]: line for line in r.out.splitlines() if line.startswith(" NSE:")}
    # the sample has a bar on every NSE trading day: no gaps; the holidays are named, not counted
    assert "day(s) without data" not in table["NSE:HDFCBANK"] and table["NSE:HDFCBANK"].split("│")[6].strip() == "0"
    named = {line.split(" holidays: ")[0]: line for line in r.out.splitlines() if " holidays: " in line}
    assert "2024-01-22" in named["NSE:INFY"] and "2024-01-26 Republic Day (holiday)" in named["NSE:INFY"]
    assert "holiday?" not in r.out
    assert len(srv.requests("dhan:historical")) == 2 and r.err == ""


def test_a_range_whose_only_finding_is_a_holiday_names_it(cli, srv, monkeypatch, wide):
    use(monkeypatch, srv, "dhan")
    # 2024-01-22..26: the sample data has every trading day; Friday 26 January is Republic Day
    r = cli("download-data", "NSE:INFY", "--interval", "1d", "--from", "2024-01-22", "--to", "2024-01-26",
            "--source", "dhan")
    assert r.code == 0, r.err
    lines = [line for line in r.out.splitlines() if line.startswith("NSE:INFY holidays: ")]
    assert lines and "2024-01-26 Republic Day (holiday)" in lines[0], r.out


def test_quiet_prints_only_the_summary_line_and_a_rerun_fetches_nothing_new(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "upstox")
    args = ("download-data", "NSE:RELIANCE", "-i", "5m", "--from", "2024-06-10", "--to", "2024-06-14",
            "--source", "upstox", "--out", str(tmp_path / "five"), "--quiet")
    first = cli(*args)
    assert first.code == 0 and len(first.out.splitlines()) == 1, first.out
    assert summary(first.out)[4] == "375" and len(srv.requests()) == 1
    srv.clear()
    again = cli(*args)
    assert again.code == 0 and summary(again.out)[4] == "0" and srv.requests() == []


def test_a_transient_error_is_retried(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    srv.state.fail_next[:] = [429]
    r = cli("download-data", "NSE:RELIANCE", "-i", "15m", "--from", "2024-06-10", "--to", "2024-06-14",
            "--source", "dhan", "-q")
    assert r.code == 0 and summary(r.out).groups()[1:4] == ("1", "0", "125")
    assert len(srv.requests()) == 2


def test_one_failing_instrument_exits_1_and_the_others_are_written(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    r = cli("download-data", "NSE:NIFTY BANK", "NSE:RELIANCE", "-i", "5m", "--from", "2024-06-10", "--to",
            "2024-06-14", "--source", "dhan", "--out", "five")
    assert r.code == 1
    m = summary(r.out)
    assert m.groups()[:4] == ("2", "1", "1", "375")
    assert (tmp_path / "five" / "NSE_RELIANCE.csv").is_file()
    assert not (tmp_path / "five" / "NSE_NIFTY_BANK.csv").exists()
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("error: NSE:NIFTY BANK: ") and "DH-907" in r.err


def test_a_refused_token_exits_1_with_the_renew_message(cli, srv, monkeypatch):
    use(monkeypatch, srv, "dhan", token="expired-token")
    r = cli("download-data", "NSE:HDFCBANK", "NSE:INFY", "--from", "2024-01-01", "--to", "2024-01-31",
            "--source", "dhan", "-q")
    assert r.code == 1
    assert summary(r.out).groups()[:3] == ("2", "0", "2")
    assert len(r.err_lines) == 1 and "Dhan refused the access token" in r.err and "DHAN_ACCESS_TOKEN" in r.err
    assert "expired-token" not in r.out + r.err


@pytest.mark.parametrize("args, message", [
    (("--from", "2024-13-01"), "--from '2024-13-01' is not a date"),
    (("--from", "2024-06-14", "--to", "2024-06-10"), "--to 2024-06-10 is before --from 2024-06-14"),
    (("--from", "2024-06-10", "-i", "2m"), "--interval '2m' is not one of 1m, 3m, 5m, 10m"),
    (("--from", "2024-06-10", "--source", "zerodha"), "--source 'zerodha' is not one of dhan, upstox"),
    (("--from", "2024-06-10", "--source", "dhn"), "(the registered brokers); did you mean `dhan`?"),
    (("--from", "2024-06-10", "--expiry", "next"), "--expiry applies with --options or --pcr"),
    (("--from", "2024-06-10", "--strikes", "ATM-2:ATM+2"), "--strikes applies with --options or --pcr"),
    (("--from", "2024-06-10", "--options", "--strikes", "ATM+2:ATM-2"), "the first offset is above the second"),
    (("--from", "2024-06-10", "--options", "-i", "2m"), "--interval '2m' is not one of 1m"),
    (("NSE:NOPE", "--from", "2024-06-10"), "'NSE:NOPE' is not in the test instrument list"),
])
def test_usage_errors_exit_2_before_any_request(cli, srv, monkeypatch, _setup, args, message):
    use(monkeypatch, srv, "dhan")
    defaults = {"--source": "dhan", "--to": "2024-06-14"}
    rest = [word for flag, value in defaults.items() if flag not in args for word in (flag, value)]
    r = cli("download-data", *([] if "NSE:NOPE" in args else ["NSE:RELIANCE"]), *args, *rest)
    assert r.code == 2, (r.out, r.err)
    assert message in r.err and srv.requests() == []
    if "NSE:NOPE" not in args:  # a bad flag is found before the instrument list is even opened (a download)
        assert _setup == []


def test_a_3m_download_from_dhan_runs_in_a_backtest(cli, srv, monkeypatch, tmp_path):
    use(monkeypatch, srv, "dhan")
    r = cli("download-data", "NSE:RELIANCE", "-i", "3m", "--from", "2024-06-10", "--to", "2024-06-14",
            "--source", "dhan", "--out", "three", "-q")
    assert r.code == 0 and summary(r.out)[4] == "625"
    assert {b["interval"] for b in srv.requests()} == {"1"}  # built from 1m
    # The backtest names instruments through the data folder's own list (no master in tests).
    shutil.copyfile(ROOT / "data" / "instruments.csv", tmp_path / "three" / "instruments.csv")
    config = {
        "name": "downloaded", "interval": "3m", "initial_capital": 1_000_000,
        "data": {"feed": "csv", "path": str(tmp_path / "three")},
        "broker": {"name": "simulated"}, "fill_model": {"name": "next_open"},
        "strategies": [{"class": "sma_crossover", "instruments": ["NSE:RELIANCE"],
                        "params": {"fast_period": 5, "slow_period": 20, "quantity": 10}}],
        "output": {"dir": str(tmp_path / "bt")},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    bt = cli("backtest", str(tmp_path / "run.yaml"), "--no-report", "-q")
    assert bt.code == 0, bt.err
    assert (tmp_path / "bt" / "trades.csv").is_file()
    assert "NSE_RELIANCE.csv" in (tmp_path / "bt" / "run.json").read_text()
