"""Both brokers' files, written from the documented formats, read into canonical rows by the registered readers."""

from datetime import date

from algocli.instruments.brokers import read_master
from instruments.files import dhan_csv, upstox_gz


def _by_hrn(rows):
    return {r.hrn: r for r in rows}


def test_dhan_compact_master(tmp_path):
    path = tmp_path / "dhan.csv"
    path.write_bytes(dhan_csv())
    rows, skipped = read_master("dhan", path)
    got = _by_hrn(rows)
    assert skipped == 2  # MCX and currency rows are not traded here
    hdfc = got["NSE:HDFCBANK"]
    assert (hdfc.kind, hdfc.dhan_id, hdfc.dhan_instrument, hdfc.tick_size, hdfc.lot_size) == (
        "EQ", "NSE_EQ:1333", "EQUITY", 0.10, 1)  # 10 paise
    assert got["NSE:NIFTY 50"].dhan_id == "IDX_I:13"
    assert got["NSE:NIFTY BANK"].dhan_id == "IDX_I:25"  # BANKNIFTY is the index's short name
    ce = got["NSE:NIFTY 26 DEC 2024 24000 CE"]
    assert (ce.kind, ce.option_type, ce.segment, ce.expiry, ce.strike, ce.lot_size, ce.tick_size, ce.dhan_id,
            ce.dhan_instrument) == ("OPT", "CE", "NSE_FNO", date(2024, 12, 26), 24000.0, 75, 0.05, "NSE_FNO:35019",
                                    "OPTIDX")
    fut = got["NSE:NIFTY 26 DEC 2024 FUT"]
    assert (fut.strike, fut.dhan_instrument, fut.tick_size) == (None, "FUTIDX", 0.10)


def test_upstox_json_master(tmp_path):
    path = tmp_path / "complete.json.gz"
    path.write_bytes(upstox_gz())
    rows, skipped = read_master("upstox", path)
    got = _by_hrn(rows)
    assert skipped == 1  # MCX
    hdfc = got["NSE:HDFCBANK"]
    assert (hdfc.upstox_key, hdfc.isin, hdfc.token, hdfc.tick_size) == ("NSE_EQ|INE040A01034", "INE040A01034",
                                                                         "1333", 0.10)
    assert got["NSE:NIFTY 50"].upstox_key == "NSE_INDEX|Nifty 50"
    # expiry is epoch ms at 23:59:59 IST: the IST date, not the UTC one
    ce = got["NSE:NIFTY 26 DEC 2024 24000 CE"]
    assert (ce.expiry, ce.lot_size, ce.tick_size, ce.upstox_key) == (date(2024, 12, 26), 75, 0.05, "NSE_FO|35019")
    # the file's freeze_quantity: the most units one order may carry (live orders above it are split)
    assert (ce.freeze_quantity, hdfc.freeze_quantity) == (1800, 100000)
    assert "NSE:NIFTY 30 DEC 2025 24000 CE" in got
    assert got["NSE:NIFTY 26 DEC 2024 FUT"].strike is None
