"""``algo download-data --options/--pcr`` end to end: the sandbox's option routes on 127.0.0.1, the CLI in-process.

Expectations are worked out from the served folder's CSV files with pandas, not with the code under test.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

import algocli.instruments
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.model import Instrument
from algocli.instruments.table import write_instruments
from cli.download_options_support import OPTIONS_DATA, OptionsServer

SAMPLE = ["--from", "2024-06-13", "--to", "2024-06-27", "--interval", "15m", "--cycle", "month"]


def _setup(monkeypatch, srv, source: str, tmp_path) -> None:
    monkeypatch.setattr(algocli.instruments, "open_master",
                        lambda **kw: InstrumentMaster(srv.listed, source="the test instrument list"))
    monkeypatch.chdir(tmp_path)
    for key, value in srv.env(source).items():
        monkeypatch.setenv(key, value)


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"timestamp": str})


def _rolling_expectation(folder, offsets: range, first: str, last: str) -> dict[str, set[str]]:
    """Contract file → the CSV lines Dhan's rolling series should give it: at each underlying bar, the
    strikes ``offsets`` away from ATM (the listed strike nearest the close, the lower on a tie)."""
    listed = _read(folder / "instruments.csv")
    under = _read(folder / "IDX_I_13.csv")
    under = under[(under.timestamp >= first) & (under.timestamp < last)]
    want: dict[str, set[str]] = {}
    for right in ("CE", "PE"):
        opts = listed[listed.kind == right].sort_values("strike")
        for ts, close in zip(under.timestamp, under.close):
            expiry = opts.expiry[opts.expiry >= ts[:10]].min()
            grid = opts[opts.expiry == expiry]
            strikes = grid.strike.tolist()
            atm = min(range(len(strikes)), key=lambda i: (abs(strikes[i] - close), strikes[i]))
            for k in offsets:
                if 0 <= atm + k < len(strikes):
                    token = grid.dhan_id.iloc[atm + k].replace(":", "_")
                    lines = (folder / f"{token}.csv").read_text().splitlines()
                    hit = [line for line in lines if line.startswith(ts)]
                    if hit:
                        want.setdefault(f"{token}.csv", set()).add(hit[0])
    return want


def _downloaded(folder) -> dict[str, set[str]]:
    return {p.name: set(p.read_text().splitlines()[1:]) for p in folder.glob("NSE_FNO_*.csv")}


def test_dhan_rolling_series_are_filed_under_the_real_contracts_they_came_from(cli, monkeypatch, tmp_path):
    with OptionsServer() as srv:
        _setup(monkeypatch, srv, "dhan", tmp_path)
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--strikes", "ATM-2:ATM+2",
                "--out", "opts", *SAMPLE)
        asked = srv.option_requests("/v2/charts/rollingoption")
    assert r.code == 0, r.err
    out = tmp_path / "opts"
    assert r.out.strip().splitlines()[-1].startswith("download-data: NSE:NIFTY 50 options, ")
    assert {(b["strike"], b["drvOptionType"], b["expiryFlag"], b["expiryCode"]) for b in asked} == {
        (s, side, "MONTH", 0) for s in ("ATM-2", "ATM-1", "ATM", "ATM+1", "ATM+2") for side in ("CALL", "PUT")}
    assert _downloaded(out) == _rolling_expectation(OPTIONS_DATA, range(-2, 3), "2024-06-13", "2024-06-28")
    assert (out / "NSE_NIFTY_50.csv").read_bytes() == (OPTIONS_DATA / "IDX_I_13.csv").read_bytes()
    rows = _read(out / "instruments.csv")
    assert set(rows.hrn) >= {"NSE:NIFTY 50"} and (rows[rows.kind != "INDEX"].lot_size == 25).all()
    # the folder backtests: a strategy picks the ATM call from it and it settles at expiry
    run = {"name": "opt", "interval": "15m", "initial_capital": 1_000_000,
           "data": {"path": str(out), "options": {"underlying": "NSE:NIFTY 50"}},
           "broker": {"name": "simulated", "charges": "dhan", "product": "MARGIN"},
           "strategies": [{"class": "engine.options_fixtures:BuyAtmCall", "instruments": ["NSE:NIFTY 50"]}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    bt = cli("backtest", str(tmp_path / "run.yaml"))
    assert bt.code == 0, bt.err
    fills = pd.read_csv(tmp_path / "output" / "opt" / "fills.csv")
    assert len(fills) == 2 and fills.instrument.str.startswith("NSE:NIFTY 27 JUN 2024").all()


def test_upstox_expired_contracts_come_whole_and_pcr_rows_equal_the_served_json(cli, monkeypatch, tmp_path):
    import upstox_client

    with OptionsServer() as srv:
        _setup(monkeypatch, srv, "upstox", tmp_path)
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--pcr", "--source", "upstox", "--strikes", "ATM",
                "--expiry", "2024-06-27", "--out", "opts", *SAMPLE)
        cfg = upstox_client.Configuration()
        cfg.host, cfg.access_token = f"http://127.0.0.1:{srv.port}", srv.env("upstox")["UPSTOX_ACCESS_TOKEN"]
        market = upstox_client.MarketApi(upstox_client.ApiClient(cfg))
        served = {day: market.get_pcr_data("NSE_INDEX|Nifty 50", "2024-06-27", day, 15).data
                  for day in ("2024-06-13", "2024-06-20", "2024-06-27")}
    assert r.code == 0, r.err
    out = tmp_path / "opts"
    files = sorted(out.glob("NSE_FO_*.csv"))
    assert files
    for path in files:  # exact contracts: each file is the served contract's file, byte for byte
        token = path.name.split("_")[2]
        assert path.read_bytes() == (OPTIONS_DATA / f"NSE_FNO_{token}.csv").read_bytes()
    # ATM at some close: the ATM contracts of the lowest and highest close are among them
    under = _read(OPTIONS_DATA / "IDX_I_13.csv")
    strikes = sorted(_read(OPTIONS_DATA / "instruments.csv").strike.dropna().unique())
    atm = {min(strikes, key=lambda k: (abs(k - c), k)) for c in under.close}
    listed = _read(out / "instruments.csv")
    assert set(listed[listed.kind == "CE"].strike) == atm
    pcr = _read(out / "pcr.csv")
    assert list(pcr.columns) == ["timestamp", "underlying", "expiry", "spot", "atm_strike", "oi_pcr", "volume_pcr",
                                 "change_oi_pcr", "max_pain"]
    for day, data in served.items():
        mine = pcr[pcr.timestamp.str.startswith(day)]
        assert [(f"{day} {i['time']}:00", i["pcr"], i["spot_price"]) for i in data["insights"]] == \
            list(zip(mine.timestamp, mine.oi_pcr, mine.spot))
    # and the served PCR is the whole expiry's OI PCR from the files: 10:15 on 20 June sees the 10:00 bar
    listed_opts = _read(OPTIONS_DATA / "instruments.csv").dropna(subset=["strike"])
    oi = {"CE": 0, "PE": 0}
    for kind, ident in zip(listed_opts.kind, listed_opts.dhan_id):
        bars = _read(OPTIONS_DATA / f"{ident.replace(':', '_')}.csv")
        oi[kind] += bars[bars.timestamp <= "2024-06-20 10:00:00"].oi.iloc[-1]
    row = pcr[pcr.timestamp == "2024-06-20 10:15:00"]
    assert row.oi_pcr.iloc[0] == pytest.approx(oi["PE"] / oi["CE"], rel=1e-12)
    assert row.atm_strike.isna().all() and row.volume_pcr.isna().all() and row.max_pain.isna().all()


# --- a rolling series that crosses an expiry ----------------------------------------------------

def _crafted(folder) -> None:
    """NIFTY hourly bars 24 Jun - 3 Jul 2024 and the 23900/24000/24100 CE/PE of the June and July monthly
    expiries; every contract's prices are its own (strike, expiry, side) code, so a bar filed under the
    wrong contract shows. The spot crosses 24050 on 1 July (ATM moves from 24000 to 24100)."""
    folder.mkdir()
    days = [date(2024, 6, 24) + timedelta(days=k) for k in range(10)]
    days = [d for d in days if d.weekday() < 5]
    stamps = [datetime.combine(d, datetime.min.time()) + timedelta(hours=9, minutes=15 + 60 * h)
              for d in days for h in range(7)]
    text = [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps]
    spot = np.where(np.array([s.date() for s in stamps]) >= date(2024, 7, 1), 24080.0, 24010.0)
    rows = [Instrument("NSE:NIFTY 50", exchange="NSE", kind="INDEX", symbol="NIFTY 50", dhan_id="IDX_I:13",
                       dhan_instrument="INDEX", upstox_key="NSE_INDEX|Nifty 50", token="13")]
    _write(folder / "IDX_I_13.csv", text, spot, None)
    token = 90000
    for expiry in (date(2024, 6, 27), date(2024, 7, 25)):
        for strike in (23900, 24000, 24100):
            for right in ("CE", "PE"):
                token += 1
                hrn = f"NSE:NIFTY {expiry:%d} {expiry:%b}".upper() + f" {expiry.year} {strike} {right}"
                rows.append(Instrument(hrn, exchange="NSE", kind=right, symbol="NIFTY", expiry=expiry,
                                       strike=float(strike), lot_size=25, token=str(token),
                                       dhan_id=f"NSE_FNO:{token}", dhan_instrument="OPTIDX",
                                       upstox_key=f"NSE_FO|{token}"))
                live = [i for i, s in enumerate(stamps) if s.date() <= expiry]
                base = strike / 100 + (0.5 if right == "PE" else 0) + expiry.month
                _write(folder / f"NSE_FNO_{token}.csv", [text[i] for i in live],
                       np.array([base + i / 100 for i in live]), np.array([1000.0 + token] * len(live)))
    write_instruments(folder / "instruments.csv", rows)


def _write(path, stamps, close, oi) -> None:
    head = "timestamp,open,high,low,close,volume" + (",oi" if oi is not None else "")
    lines = [f"{t},{c:.2f},{c + 1:.2f},{c - 1:.2f},{c:.2f},10" + (f",{o:.0f}" if oi is not None else "")
             for k, (t, c) in enumerate(zip(stamps, close)) for o in [oi[k] if oi is not None else 0]]
    path.write_text("\n".join([head, *lines]) + "\n")


@pytest.mark.parametrize("expiry", ["current", "2024-07-25"])
def test_a_rolling_series_is_split_at_the_expiry(cli, monkeypatch, tmp_path, expiry):
    _crafted(tmp_path / "served")
    with OptionsServer(tmp_path / "served") as srv:
        _setup(monkeypatch, srv, "dhan", tmp_path)
        r = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--strikes", "ATM", "--cycle",
                "month", "--interval", "1h", "--from", "2024-06-24", "--to", "2024-07-03", "--expiry", expiry,
                "--out", "opts")
        codes = {b["expiryCode"] for b in srv.option_requests("/v2/charts/rollingoption")}
    assert r.code == 0, r.err
    got = _downloaded(tmp_path / "opts")
    listed = pd.read_csv(tmp_path / "served" / "instruments.csv").set_index("hrn")

    def lines(hrn: str, first: str, last: str) -> set[str]:
        ident = listed.loc[hrn, "dhan_id"].replace(":", "_")
        text = (tmp_path / "served" / f"{ident}.csv").read_text().splitlines()[1:]
        return {f"{ident}.csv", *(t for t in text if first <= t[:10] <= last)}

    want: dict[str, set[str]] = {}
    for right in ("CE", "PE"):
        spans = [(f"NSE:NIFTY 25 JUL 2024 24000 {right}", "2024-06-24", "2024-06-28"),
                 (f"NSE:NIFTY 25 JUL 2024 24100 {right}", "2024-07-01", "2024-07-03")]
        if expiry == "current":  # through 27 June the June contract is current; from the 28th July's
            spans = [(f"NSE:NIFTY 27 JUN 2024 24000 {right}", "2024-06-24", "2024-06-27"),
                     (f"NSE:NIFTY 25 JUL 2024 24000 {right}", "2024-06-28", "2024-06-28"),
                     (f"NSE:NIFTY 25 JUL 2024 24100 {right}", "2024-07-01", "2024-07-03")]
        for hrn, first, last in spans:
            name, *rows = sorted(lines(hrn, first, last), key=lambda s: not s.endswith(".csv"))
            want[name] = set(rows)
    assert got == want
    assert codes == ({0} if expiry == "current" else {0, 1})  # July is "next" until June's expiry


def test_bad_options_requests_stop_before_any_request(cli, monkeypatch, tmp_path):
    with OptionsServer() as srv:
        _setup(monkeypatch, srv, "dhan", tmp_path)
        results = [cli("download-data", "NSE:NIFTY 50", *SAMPLE, *args) for args in (
            ("--pcr", "--source", "dhan"),
            ("--options", "--source", "dhan", "--strikes", "ATM-11:ATM"),
            ("--options", "--source", "dhan", "--expiry", "2024-06-26"),
            ("--options", "--source", "dhan", "--strikes", "ATM+2:ATM-2"),
            ("--options", "--source", "upstox", "--interval", "25m"),
        )]
        results.append(cli("download-data", "NSE:NIFTY 50", "NSE:HDFCBANK", "--options", "--source", "dhan", *SAMPLE))
        sent = list(srv.box.requests) + list(srv.state.requests)
    for r in results:
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert "has no historical PCR" in results[0].err and "ATM-10" in results[1].err
    assert "2024-06-27" in results[2].err and "one underlying" in results[5].err
    assert sent == []
