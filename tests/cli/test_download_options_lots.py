"""``download-data --options`` gives contracts the instrument list no longer has their real lot size.

Independent facts: NSE's NIFTY lot was 25 for contracts from the 2024-04-26 revision (first weekly
2024-05-02, first monthly 2024-05-30) until the 2024-11-20 revision
(https://zerodha.com/marketintel/bulletin/375282/revision-in-lot-size-of-index-derivative-contracts-2);
75 for contracts listed from 2024-11-20, existing ones kept their lot to expiry
(https://www.business-standard.com/amp/markets/capital-market-news/nse-raises-minimum-contract-value-for-index-derivatives-124101900299_1.html);
65 from the 2026-01-06 weekly (NSE circular NSE/FAOP/70616 of 2025-10-03).
"""

from __future__ import annotations

from datetime import date

import algocli.instruments
from algocli.data.download_options import contract_instrument
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.table import read_instruments
from algocli.market.lots import lot_size
from cli.download_options_support import OptionsServer
from cli.test_download_options import SAMPLE


def _today_master(monkeypatch, srv, tmp_path) -> None:
    # today's master: the expired June 2024 contracts are gone, the index is there
    listed = [i for i in srv.listed if i.kind != "OPT"]
    monkeypatch.setattr(algocli.instruments, "open_master",
                        lambda **kw: InstrumentMaster(listed, source="the test instrument list"))
    monkeypatch.chdir(tmp_path)
    for key, value in srv.env("dhan").items():
        monkeypatch.setenv(key, value)


def test_expired_nifty_contracts_get_the_lot_of_their_expiry_not_1(cli, monkeypatch, tmp_path):
    with OptionsServer() as srv:
        _today_master(monkeypatch, srv, tmp_path)
        got = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--out", "opts",
                  "--strikes", "ATM-1:ATM+1", *SAMPLE)
    assert got.code == 0, got.err
    options = [r for r in read_instruments(tmp_path / "opts" / "instruments.csv") if r.kind == "OPT"]
    assert options and {r.lot_size for r in options} == {25}  # NIFTY, June 2024: 25 units
    assert "lot" not in got.err


def test_a_contract_of_unknown_lot_is_named_in_one_warning(cli, monkeypatch, tmp_path):
    monkeypatch.setattr("algocli.market.lots.SHIPPED", tmp_path / "none.csv")
    with OptionsServer() as srv:
        _today_master(monkeypatch, srv, tmp_path)
        got = cli("download-data", "NSE:NIFTY 50", "--options", "--source", "dhan", "--out", "opts",
                  "--strikes", "ATM", *SAMPLE)
    assert got.code == 0, got.err
    lines = [line for line in got.err.splitlines() if "lot" in line]
    assert len(lines) == 1 and "NSE:NIFTY 27 JUN 2024" in lines[0] and "lot checks" in lines[0], got.err


def test_lot_history_by_expiry_and_a_user_table(tmp_path, monkeypatch):
    monkeypatch.setenv("ALGO_LOT_SIZES", str(tmp_path / "mine.csv"))
    assert lot_size("NIFTY", date(2024, 4, 25), "week") == 50
    assert lot_size("NIFTY", date(2024, 5, 2), "week") == 25
    assert lot_size("NIFTY", date(2024, 12, 26), "month") == 25  # listed before 2024-11-20: kept 25
    assert lot_size("NIFTY", date(2024, 12, 12), "week") is None  # listed before or after 2024-11-20: unknown
    assert lot_size("NIFTY", date(2025, 6, 26), "month") == 75
    assert lot_size("NIFTY", date(2026, 1, 6), "week") == 65
    # FINNIFTY and MIDCPNIFTY, by the exchange's published first expiries with each lot
    assert [lot_size("FINNIFTY", date(2024, 7, 23), "week"), lot_size("FINNIFTY", date(2024, 7, 30), "month"),
            lot_size("FINNIFTY", date(2024, 8, 6), "week"), lot_size("FINNIFTY", date(2025, 1, 28), "month"),
            lot_size("FINNIFTY", date(2025, 3, 27), "month"), lot_size("FINNIFTY", date(2025, 12, 30), "month"),
            lot_size("FINNIFTY", date(2026, 1, 27), "month")] == [40, 25, 25, 25, 65, 65, 60]
    assert [lot_size("MIDCPNIFTY", date(2024, 7, 22), "week"), lot_size("MIDCPNIFTY", date(2024, 7, 29), "month"),
            lot_size("MIDCPNIFTY", date(2024, 8, 5), "week"), lot_size("MIDCPNIFTY", date(2025, 6, 26), "month"),
            lot_size("MIDCPNIFTY", date(2025, 7, 31), "month"), lot_size("MIDCPNIFTY", date(2026, 1, 27), "month")
            ] == [75, 50, 50, 120, 140, 120]
    (tmp_path / "mine.csv").write_text("symbol,cycle,first_expiry,last_expiry,lot,source\n"
                                       "NIFTY,week,2024-12-05,2024-12-19,25,my broker's contract note\n")
    assert lot_size("NIFTY", date(2024, 12, 12), "week") == 25
    inst, known = contract_instrument("NIFTY", date(2024, 6, 27), 23000.0, "CE", lambda hrn: None)
    assert (inst.lot_size, known) == (25, True)
