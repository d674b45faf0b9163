"""The brokers' instrument files served by the sandbox, downloaded over 127.0.0.1.

The sandbox runs as ``algo sandbox`` runs it (``serve`` on the bundled ``data`` folder), so
the list comes from ``data/instruments.csv``. The files are read the way clients read
them: raw bytes with aiohttp (CSV, gzip, JSON), and Dhan's through the official ``dhanhq``
SDK's own download function, which parses the compact file with pandas.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import shutil
from datetime import datetime, timedelta, timezone
from email.utils import formatdate, parsedate_to_datetime

import aiohttp
import pytest
from dhanhq import Security
from sandbox.sandbox_support import DATA, running

from algocli.instruments.table import read_instruments
from algocli.sandbox.instruments import (DHAN_COMPACT_COLUMNS, DHAN_COMPACT_PATH, DHAN_DETAILED_COLUMNS,
                                         DHAN_DETAILED_PATH, UPSTOX_PATH, dhan_compact_csv, upstox_json_gz)

IST = timezone(timedelta(hours=5, minutes=30))
LIMIT_S = 30.0
UPSTOX = {name: UPSTOX_PATH.format(name=name) for name in ("complete", "NSE", "BSE", "MCX")}


def run(main):
    return asyncio.run(asyncio.wait_for(main(), LIMIT_S))


async def fetch(session: aiohttp.ClientSession, url: str, **headers):
    async with session.get(url, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def download_all(port: int) -> dict[str, tuple]:
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        return {path: await fetch(session, base + path) for path in (DHAN_COMPACT_PATH, DHAN_DETAILED_PATH,
                                                                       *UPSTOX.values())}


def csv_rows(body: bytes) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Header, and rows by security id."""
    reader = csv.reader(io.StringIO(body.decode("utf-8")))
    header = next(reader)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    key = header[2]  # SEM_SMST_SECURITY_ID / SECURITY_ID
    return header, {r[key]: r for r in rows}


def test_dhan_files_have_the_real_columns_segment_letters_and_paise_ticks():
    async def main():
        async with running() as listening:
            return await download_all(listening.port)

    got = run(main)
    status, headers, body = got[DHAN_COMPACT_PATH]
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert parsedate_to_datetime(headers["Last-Modified"]).timestamp() == int((DATA / "instruments.csv")
                                                                             .stat().st_mtime)
    assert body.splitlines()[0].decode() == ",".join(DHAN_COMPACT_COLUMNS)
    header, rows = csv_rows(body)
    assert len(rows) == len(read_instruments(DATA / "instruments.csv"))
    hdfc, nifty, ce, pe, fut = rows["1333"], rows["13"], rows["35019"], rows["35020"], rows["35006"]
    assert (hdfc["SEM_EXM_EXCH_ID"], hdfc["SEM_SEGMENT"], hdfc["SEM_INSTRUMENT_NAME"]) == ("NSE", "E", "EQUITY")
    assert (hdfc["SEM_TRADING_SYMBOL"], hdfc["SEM_CUSTOM_SYMBOL"], hdfc["SM_SYMBOL_NAME"]) == (
        "HDFCBANK", "HDFC Bank", "HDFC BANK LTD")
    assert (hdfc["SEM_TICK_SIZE"], hdfc["SEM_LOT_UNITS"], hdfc["SEM_SERIES"]) == ("5.0000", "1.0", "EQ")
    assert (hdfc["SEM_EXPIRY_DATE"], hdfc["SEM_STRIKE_PRICE"], hdfc["SEM_OPTION_TYPE"]) == ("", "", "")
    assert (nifty["SEM_SEGMENT"], nifty["SEM_INSTRUMENT_NAME"], nifty["SEM_TRADING_SYMBOL"]) == ("I", "INDEX", "NIFTY")
    assert (nifty["SEM_CUSTOM_SYMBOL"], nifty["SEM_OPTION_TYPE"]) == ("Nifty 50", "XX")
    assert rows["25"]["SEM_TRADING_SYMBOL"] == "BANKNIFTY" and rows["21"]["SEM_TRADING_SYMBOL"] == "INDIA VIX"
    assert (rows["51"]["SEM_EXM_EXCH_ID"], rows["51"]["SEM_TRADING_SYMBOL"]) == ("BSE", "SENSEX")
    assert (ce["SEM_SEGMENT"], ce["SEM_INSTRUMENT_NAME"], ce["SEM_TRADING_SYMBOL"]) == (
        "D", "OPTIDX", "NIFTY-Dec2024-24000-CE")
    assert (ce["SEM_CUSTOM_SYMBOL"], ce["SEM_EXPIRY_DATE"], ce["SEM_STRIKE_PRICE"]) == (
        "NIFTY 26 DEC 24000 CALL", "2024-12-26 14:30:00", "24000.00000")
    assert (ce["SEM_OPTION_TYPE"], ce["SEM_TICK_SIZE"], ce["SEM_LOT_UNITS"], ce["SEM_EXPIRY_FLAG"]) == (
        "CE", "5.0000", "75.0", "M")
    assert (pe["SEM_OPTION_TYPE"], pe["SEM_CUSTOM_SYMBOL"]) == ("PE", "NIFTY 26 DEC 24000 PUT")
    assert (fut["SEM_INSTRUMENT_NAME"], fut["SEM_TRADING_SYMBOL"], fut["SEM_CUSTOM_SYMBOL"]) == (
        "FUTIDX", "NIFTY-Dec2024-FUT", "NIFTY DEC FUT")
    assert (fut["SEM_STRIKE_PRICE"], fut["SEM_OPTION_TYPE"], fut["SEM_TICK_SIZE"]) == ("-0.01000", "XX", "10.0000")

    status, headers, body = got[DHAN_DETAILED_PATH]
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    header, rows = csv_rows(body)
    assert tuple(header) == DHAN_DETAILED_COLUMNS
    assert (rows["1333"]["ISIN"], rows["1333"]["DISPLAY_NAME"], rows["1333"]["TICK_SIZE"]) == (
        "INE040A01034", "HDFC Bank", "5.0000")
    ce = rows["35019"]
    assert (ce["ISIN"], ce["UNDERLYING_SECURITY_ID"], ce["UNDERLYING_SYMBOL"], ce["SM_EXPIRY_DATE"]) == (
        "NA", "26000", "NIFTY", "2024-12-26")  # the underlying's exchange token, as the real file has it
    assert (ce["STRIKE_PRICE"], ce["OPTION_TYPE"], ce["INSTRUMENT_TYPE"]) == ("24000.00000", "CE", "OP")


def test_upstox_files_are_gzipped_json_with_paise_ticks_and_epoch_ms_expiries():
    async def main():
        async with running() as listening:
            return await download_all(listening.port)

    got = run(main)
    files = {}
    for name, path in UPSTOX.items():
        status, headers, body = got[path]
        assert status == 200 and headers["Content-Type"] == "application/gzip", name
        assert "Last-Modified" in headers
        files[name] = json.loads(gzip.decompress(body))
    complete = {r["instrument_key"]: r for r in files["complete"]}
    listed = read_instruments(DATA / "instruments.csv")
    assert sorted(complete) == sorted(i.upstox_key for i in listed)

    reliance = complete["NSE_EQ|INE002A01018"]
    assert (reliance["segment"], reliance["exchange"], reliance["isin"], reliance["instrument_type"]) == (
        "NSE_EQ", "NSE", "INE002A01018", "EQ")
    assert (reliance["trading_symbol"], reliance["exchange_token"], reliance["tick_size"]) == ("RELIANCE", "2885", 5.0)
    assert (reliance["lot_size"], reliance["name"]) == (1, "RELIANCE INDUSTRIES LTD")

    ce, pe, fut = complete["NSE_FO|35019"], complete["NSE_FO|35020"], complete["NSE_FO|35006"]
    end_of_day = datetime(2024, 12, 26, 23, 59, 59, tzinfo=IST)
    assert ce["expiry"] == pe["expiry"] == fut["expiry"] == int(end_of_day.timestamp()) * 1000
    assert isinstance(ce["expiry"], int)
    assert datetime.fromtimestamp(ce["expiry"] / 1000, timezone.utc) == datetime(2024, 12, 26, 18, 29, 59,
                                                                                  tzinfo=timezone.utc)
    assert (ce["instrument_type"], pe["instrument_type"], fut["instrument_type"]) == ("CE", "PE", "FUT")
    assert (ce["trading_symbol"], fut["trading_symbol"]) == ("NIFTY 24000 CE 26 DEC 24", "NIFTY FUT 26 DEC 24")
    assert (ce["tick_size"], fut["tick_size"], ce["strike_price"], fut["strike_price"]) == (5.0, 10.0, 24000.0, 0.0)
    assert (ce["lot_size"], ce["minimum_lot"], ce["exchange_token"], ce["weekly"]) == (75, 75, "35019", False)
    assert (ce["underlying_key"], ce["underlying_symbol"], ce["underlying_type"]) == (
        "NSE_INDEX|Nifty 50", "NIFTY", "INDEX")
    nifty, bank = complete["NSE_INDEX|Nifty 50"], complete["NSE_INDEX|Nifty Bank"]
    assert (nifty["trading_symbol"], nifty["name"], nifty["instrument_type"], nifty["segment"]) == (
        "NIFTY", "Nifty 50", "INDEX", "NSE_INDEX")
    assert bank["trading_symbol"] == "BANKNIFTY" and "tick_size" not in nifty  # index rows carry no tick

    assert {r["exchange"] for r in files["NSE"]} == {"NSE"}
    assert [r["instrument_key"] for r in files["BSE"]] == ["BSE_INDEX|SENSEX"]
    assert files["MCX"] == []
    assert len(files["NSE"]) + len(files["BSE"]) == len(files["complete"])


def test_an_unchanged_file_answers_304_and_a_data_folder_without_a_list_serves_empty_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(DATA / "NSE_EQ_2885.csv", folder)

    async def main():
        async with running() as listening, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{listening.port}"
            status, headers, _ = await fetch(session, base + DHAN_COMPACT_PATH)
            again = await fetch(session, base + DHAN_COMPACT_PATH, **{"If-Modified-Since": headers["Last-Modified"]})
            older = formatdate(parsedate_to_datetime(headers["Last-Modified"]).timestamp() - 60, usegmt=True)
            stale = await fetch(session, base + UPSTOX["complete"], **{"If-Modified-Since": older})
        async with running(folder) as listening:
            return again, stale, await download_all(listening.port)

    (status, _, body), (stale_status, _, stale_body), empty = run(main)
    assert status == 304 and body == b""
    assert stale_status == 200 and json.loads(gzip.decompress(stale_body))
    assert empty[DHAN_COMPACT_PATH][2] == (",".join(DHAN_COMPACT_COLUMNS) + "\n").encode()
    assert empty[DHAN_DETAILED_PATH][2] == (",".join(DHAN_DETAILED_COLUMNS) + "\n").encode()
    for path in UPSTOX.values():
        assert json.loads(gzip.decompress(empty[path][2])) == []


def test_the_same_list_gives_the_same_bytes():
    listed = read_instruments(DATA / "instruments.csv")
    assert dhan_compact_csv(listed) == dhan_compact_csv(list(listed))
    assert upstox_json_gz(listed) == upstox_json_gz(list(listed))  # gzip header without a timestamp


def test_the_official_dhan_sdk_downloads_and_parses_the_security_list(tmp_path, monkeypatch):
    async def main():
        async with running() as listening:
            base = f"http://127.0.0.1:{listening.port}"
            monkeypatch.setattr(Security, "COMPACT_CSV_URL", base + DHAN_COMPACT_PATH)
            monkeypatch.setattr(Security, "DETAILED_CSV_URL", base + DHAN_DETAILED_PATH)
            compact = await asyncio.to_thread(Security.fetch_security_list, "compact", str(tmp_path / "c.csv"))
            detailed = await asyncio.to_thread(Security.fetch_security_list, "detailed", str(tmp_path / "d.csv"))
            return compact, detailed

    compact, detailed = run(main)
    assert compact is not None and detailed is not None  # the SDK returns None when anything failed
    assert list(compact.columns) == list(DHAN_COMPACT_COLUMNS)
    assert len(compact) == len(read_instruments(DATA / "instruments.csv"))
    hdfc = compact[(compact.SEM_EXM_EXCH_ID == "NSE") & (compact.SEM_TRADING_SYMBOL == "HDFCBANK")]
    assert hdfc.SEM_SMST_SECURITY_ID.tolist() == [1333]
    assert hdfc.SEM_TICK_SIZE.tolist() == [5.0] and hdfc.SEM_LOT_UNITS.tolist() == [1.0]
    ce = compact[compact.SEM_TRADING_SYMBOL == "NIFTY-Dec2024-24000-CE"].iloc[0]
    assert (ce.SEM_SMST_SECURITY_ID, ce.SEM_STRIKE_PRICE, ce.SEM_OPTION_TYPE) == (35019, 24000.0, "CE")
    assert detailed[detailed.SYMBOL_NAME == "RELIANCE INDUSTRIES LTD"].SECURITY_ID.tolist() == [2885]


@pytest.mark.parametrize("dhan, upstox", [(True, False), (False, True)])
def test_only_the_mounted_brokers_files_are_served(dhan, upstox):
    async def main():
        async with running(dhan=dhan, upstox=upstox) as listening, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{listening.port}"
            return ((await fetch(session, base + DHAN_COMPACT_PATH))[0],
                    (await fetch(session, base + UPSTOX["complete"]))[0])

    assert run(main) == (200 if dhan else 404, 200 if upstox else 404)


def test_a_rows_freeze_quantity_is_published_and_is_the_exchanges_limit():
    from dataclasses import replace

    from algocli.sandbox.instruments import freeze_limits

    rows = read_instruments(DATA / "instruments.csv")
    reliance = next(r for r in rows if r.dhan_id == "NSE_EQ:2885")
    listed = [replace(reliance, freeze_quantity=40), *(r for r in rows if r is not reliance)]
    published = {r["instrument_key"]: r for r in json.loads(gzip.decompress(upstox_json_gz(listed)))}
    assert published[reliance.upstox_key]["freeze_quantity"] == 40.0
    limits = freeze_limits(listed)
    assert limits["NSE_EQ:2885"] == 40  # what the file says is what the sandbox's exchange enforces
    others = [r for r in rows if r.kind == "EQ" and r.dhan_id and r is not reliance]
    assert others and all(limits[r.dhan_id] == 100000 for r in others)  # the real files' common value
    assert all(r.dhan_id not in limits for r in rows if r.kind == "INDEX")
