"""The merged master: one row per instrument with both brokers' ids, looked up any way."""

from datetime import date

import pytest

from algocli.errors import ConfigError
from algocli.instruments.brokers import read_master
from algocli.instruments.master import InstrumentMaster, merge
from algocli.instruments.table import read_instruments, write_instruments
from cli.cli_support import REPO_ROOT
from instruments.files import dhan_csv, upstox_gz


@pytest.fixture
def master(tmp_path):
    (tmp_path / "d.csv").write_bytes(dhan_csv())
    (tmp_path / "u.json.gz").write_bytes(upstox_gz())
    rows = merge(read_master("dhan", tmp_path / "d.csv")[0], read_master("upstox", tmp_path / "u.json.gz")[0])
    return InstrumentMaster(rows, today=date(2024, 12, 1))


def test_merge_joins_both_brokers_on_the_name(master):
    hdfc = master.resolve("NSE:HDFCBANK")
    assert (hdfc.dhan_id, hdfc.upstox_key, hdfc.isin) == ("NSE_EQ:1333", "NSE_EQ|INE040A01034", "INE040A01034")
    nifty = master.resolve("NSE:NIFTY 50")
    assert (nifty.dhan_id, nifty.upstox_key) == ("IDX_I:13", "NSE_INDEX|Nifty 50")
    ce = master.resolve("NSE:NIFTY 26 DEC 2024 24000 CE")
    assert (ce.dhan_id, ce.upstox_key, ce.lot_size) == ("NSE_FNO:35019", "NSE_FO|35019", 75)
    assert master.resolve("NSE:INFY").dhan_id == ""  # only Upstox lists it in these files
    with pytest.raises(ConfigError, match="not listed by Dhan"):
        master.broker_id("NSE:INFY", "dhan")


@pytest.mark.parametrize("text", ["NSE:HDFCBANK", "nse:hdfcbank", "NSE_EQ:1333", "NSE_EQ|INE040A01034",
                                  "nse_eq|ine040a01034"])
def test_every_spelling_finds_the_equity(master, text):
    assert master.resolve(text).hrn == "NSE:HDFCBANK"


@pytest.mark.parametrize("text", ["NSE:NIFTY 50", "NSE:NIFTY", "IDX_I:13", "NSE_INDEX|Nifty 50"])
def test_index_spellings(master, text):
    assert master.resolve(text).hrn == "NSE:NIFTY 50"


def test_yearless_contract_is_the_nearest_live_one(master):
    assert master.resolve("NSE:NIFTY 26 DEC 24000 CE").hrn == "NSE:NIFTY 26 DEC 2024 24000 CE"
    assert master.resolve("NSE:NIFTY 30 DEC 24000 CALL").hrn == "NSE:NIFTY 30 DEC 2025 24000 CE"
    later = InstrumentMaster(list(master), today=date(2026, 1, 1))  # all expired: the latest one
    assert later.resolve("NSE:NIFTY 26 DEC 24000 CE").expiry == date(2024, 12, 26)


def test_a_yearless_contract_of_only_expired_ones_says_which_it_chose(master):
    notes: list[str] = []
    later = InstrumentMaster(list(master), today=date(2026, 1, 1), warn=notes.append)
    for _ in range(2):
        assert later.resolve("NSE:NIFTY 26 DEC 24000 CE").hrn == "NSE:NIFTY 26 DEC 2024 24000 CE"
    assert len(notes) == 1 and "expired before 2026-01-01" in notes[0] and "NSE:NIFTY 26 DEC 2024 24000 CE" in notes[0]
    later.resolve("NSE:NIFTY 26 DEC 2024 24000 CE")  # the year written: nothing to say
    on_the_day = InstrumentMaster(list(master), today=date(2024, 12, 26), warn=notes.append)
    assert on_the_day.resolve("NSE:NIFTY 26 DEC 24000 CE").expiry == date(2024, 12, 26)
    assert len(notes) == 1  # expiring today is not expired


def test_ids_back_to_names(master):
    assert master.resolve("NSE_FNO:35019").hrn == "NSE:NIFTY 26 DEC 2024 24000 CE"
    assert master.resolve("NSE_FO|35006").hrn == "NSE:NIFTY 26 DEC 2024 FUT"


def test_unknown_name_suggests_close_ones(master):
    with pytest.raises(ConfigError) as err:
        master.resolve("NSE:HDFCBNK", field="configs/x.yaml: strategies[0].instruments")
    text = str(err.value)
    assert text.startswith("configs/x.yaml: strategies[0].instruments: 'NSE:HDFCBNK'")
    assert "did you mean 'NSE:HDFCBANK'" in text and "\n" not in text


def test_search_ranks_underlyings_then_nearest_expiry(master):
    assert [i.hrn for i in master.search("hdfc")] == ["NSE:HDFCBANK"]
    hits = [i.hrn for i in master.search("nifty 24000 ce")]
    assert hits == ["NSE:NIFTY 26 DEC 2024 24000 CE", "NSE:NIFTY 30 DEC 2025 24000 CE"]
    assert master.search("NIFTY")[0].hrn in ("NSE:NIFTY 50", "NSE:NIFTY BANK")
    assert master.search("zzz") == []


def test_table_round_trip_is_byte_stable(master, tmp_path):
    write_instruments(tmp_path / "a.csv", master)
    again = read_instruments(tmp_path / "a.csv")
    write_instruments(tmp_path / "b.csv", reversed(again))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert {i.hrn: i for i in again} == {i.hrn: i for i in master}


def test_bundled_list_agrees_with_the_broker_files(master):
    bundled = {i.hrn: i for i in read_instruments(REPO_ROOT / "data" / "instruments.csv")}
    for hrn in ("NSE:HDFCBANK", "NSE:NIFTY 50", "NSE:NIFTY 26 DEC 2024 24000 CE"):
        a, b = bundled[hrn], master.resolve(hrn)
        assert (a.dhan_id, a.upstox_key, a.lot_size) == (b.dhan_id, b.upstox_key, b.lot_size)
