"""The project's instrument file: old files still load, new columns round-trip, options keep their spelling."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from algocli.domain.instrument import COLUMNS, Instrument
from algocli.errors import DataError
from algocli.instruments.master import InstrumentMaster
from algocli.instruments.table import frame_row, read_frame, read_instruments, write_instruments

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "instruments.csv"
OLD_HEADER = "hrn,exchange,kind,symbol,name,expiry,strike,lot_size,tick_size,isin,token,dhan_id,dhan_instrument,upstox_key"

CE = Instrument("NSE:NIFTY 26 DEC 2024 24000 CE", "NSE", "OPT", "NIFTY", "NIFTY", date(2024, 12, 26), 24000.0, 75,
                0.05, token="35019", dhan_id="NSE_FNO:35019", dhan_instrument="OPTIDX", upstox_key="NSE_FO|35019",
                option_type="CE", freeze_quantity=1800)
USDINR_PE = Instrument("NSE:USDINR 27 DEC 2024 83 PE", "NSE", "CUR", "USDINR", expiry=date(2024, 12, 27),
                       strike=83.0, tick_size=0.0025, option_type="PE")


def test_the_bundled_file_written_before_the_new_columns_still_loads():
    assert BUNDLED.read_text(encoding="utf-8").splitlines()[0] == OLD_HEADER
    rows = {i.hrn: i for i in read_instruments(BUNDLED)}
    frame = read_frame(BUNDLED)
    from_frame = {r["hrn"]: frame_row(BUNDLED, n + 2, r) for n, r in enumerate(frame.to_dict("records"))}
    assert rows == from_frame
    ce = rows["NSE:NIFTY 26 DEC 2024 24000 CE"]
    assert (ce.kind, ce.option_type, ce.segment, ce.freeze_quantity) == ("OPT", "CE", "NSE_FNO", None)
    assert rows["NSE:HDFCBANK"].segment == "NSE_EQ"
    assert rows["BSE:SENSEX"].segment == "BSE_INDEX"


def test_rewriting_the_bundled_file_only_adds_the_new_columns(tmp_path):
    out = tmp_path / "instruments.csv"
    write_instruments(out, read_instruments(BUNDLED))
    old = BUNDLED.read_text(encoding="utf-8").splitlines()
    new = out.read_text(encoding="utf-8").splitlines()
    assert new[0] == OLD_HEADER + ",option_type,freeze_quantity,broker_ids"
    expected = [line + "," + ("CE" if ",CE," in line else "PE" if ",PE," in line else "") + ",," for line in old[1:]]
    assert new[1:] == expected  # an option's kind cell stays CE/PE, as the master's lookups read it


def test_new_fields_round_trip_through_both_readers(tmp_path):
    path = tmp_path / "instruments.csv"
    write_instruments(path, [CE, USDINR_PE])
    assert read_instruments(path) == [CE, USDINR_PE]
    frame = read_frame(path)
    assert list(frame.columns) == list(COLUMNS)
    assert [frame_row(path, n + 2, r) for n, r in enumerate(frame.to_dict("records"))] == [CE, USDINR_PE]
    assert "NSE:USDINR 27 DEC 2024 83 PE,NSE,CUR,USDINR" in path.read_text(encoding="utf-8")


def test_a_bad_kind_names_the_file_and_row(tmp_path):
    path = tmp_path / "instruments.csv"
    path.write_text(OLD_HEADER + "\nNSE:X,NSE,STOCK,X,,,,1,0.05,,,,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"instruments\.csv, row 2: cannot read this instrument \(kind 'STOCK' is not"):
        read_instruments(path)


def test_a_master_built_from_rows_finds_an_option_by_the_name_people_type():
    master = InstrumentMaster([CE, USDINR_PE], today=date(2024, 12, 1))
    assert master.get("NSE:NIFTY 26 DEC 24000 CE") == CE
    assert master.search("NIFTY 24000")[0] == CE
