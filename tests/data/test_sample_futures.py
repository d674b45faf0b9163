"""The bundled NIFTY futures sample: the generator reproduces it, and it fits its contract.

Contract facts, checked against public sources rather than the generator's constants:
- NIFTY lot 25 units for contracts from the 2024-04-26 revision (first monthly: 2024-05-30) until
  the 75-unit lot of 2024-11-20: https://zerodha.com/marketintel/bulletin/375282/revision-in-lot-size-of-index-derivative-contracts-2
  and https://www.business-standard.com/amp/markets/capital-market-news/nse-raises-minimum-contract-value-for-index-derivatives-124101900299_1.html
- Index-futures tick 0.05 until the level-based index-futures ticks of 2025-04-15.
- NSE monthly index contracts expired on the last Thursday of the month until 2025-08-31:
  27 June 2024 was that Thursday.
"""

from __future__ import annotations

import importlib.util
from datetime import date, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from algocli.data.csv_feed import CsvFeed, CsvFeedConfig
from algocli.instruments.table import read_instruments
from algocli.market.calendar import DATA, NseCalendar

ROOT = Path(__file__).resolve().parents[2]
HRN = "NSE:NIFTY 27 JUN 2024 FUT"
FOLDER = ROOT / "data" / "futures"
FILE = FOLDER / "NSE_FNO_53216.csv"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_sample", ROOT / "data" / "generate_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(folder: Path = ROOT / "data"):
    (inst,) = [i for i in read_instruments(folder / "instruments.csv") if i.hrn == HRN]
    return inst


def test_the_generator_writes_the_committed_files_byte_for_byte(tmp_path):
    gen = _generator()
    assert gen.write_futures_sample(tmp_path).read_bytes() == FILE.read_bytes()
    # Adding the future left the older files as they were, and the script writes all four.
    gen.main(["--dir", str(tmp_path / "all")])
    written = sorted(p.relative_to(tmp_path / "all") for p in (tmp_path / "all").rglob("*.csv"))
    assert [str(p) for p in written] == ["NSE_EQ_1333.csv", "NSE_EQ_1594.csv", "NSE_EQ_2885.csv",
                                         "futures/NSE_FNO_53216.csv"]
    for path in written:
        assert (tmp_path / "all" / path).read_bytes() == (ROOT / "data" / path).read_bytes(), path


def test_instruments_csv_names_the_contract():
    inst = _row()
    assert (inst.kind, inst.exchange, inst.symbol) == ("FUT", "NSE", "NIFTY")
    assert inst.expiry == date(2024, 6, 27) and inst.expiry.strftime("%A") == "Thursday"
    assert (inst.expiry + timedelta(days=7)).month == 7  # the month's last Thursday
    assert (inst.lot_size, inst.tick_size) == (25, 0.05)
    assert inst.dhan_id == "NSE_FNO:53216" and inst.upstox_key == "NSE_FO|53216" and inst.dhan_instrument == "FUTIDX"


def test_the_futures_folder_names_the_contract_as_data_does():
    """The folder's own list (what a run on it reads) is the bundled list's row, nothing else."""
    assert [i.hrn for i in read_instruments(FOLDER / "instruments.csv")] == [HRN]
    assert _row(FOLDER) == _row()
    # the folder keeps the sandbox's whole-folder replay of data/ to the RELIANCE minute file
    assert not list((ROOT / "data").glob("NSE_FNO_*.csv"))


def test_the_csv_feed_finds_the_file_by_the_contract_name():
    feed = CsvFeed(CsvFeedConfig(path=FOLDER))
    assert not feed.file_for(HRN).is_file()  # no file carries the name itself ...
    feed.aliases = {HRN: tuple(i for i in _row().ids() if i != HRN)}
    assert feed.file_for(HRN) == FILE  # ... its Dhan id names it, as for the equity files


def test_bars_cover_every_fno_session_up_to_expiry_and_nothing_else():
    bars = pd.read_csv(FILE)
    ts = pd.to_datetime(bars["timestamp"])
    calendar = NseCalendar(user_dir=DATA)
    days = sorted(set(ts.dt.date))
    assert days == calendar.trading_days(date(2024, 6, 13), date(2024, 6, 27), "FNO")
    assert days[-1] == _row().expiry and len(days) == 10
    assert date(2024, 6, 17) not in days and calendar.holiday_name(date(2024, 6, 17))  # Bakri Id
    assert ts.is_monotonic_increasing and ts.is_unique and (ts.dt.second == 0).all()
    for day, group in ts.groupby(ts.dt.date):
        (window,) = calendar.session(day, "FNO").windows
        assert window == (time(9, 15), time(15, 30))
        clock = group.dt.time
        assert clock.min() == window[0] and clock.max() == time(15, 29) and len(group) == 375


def test_prices_are_on_the_tick_near_the_index_and_volume_in_lots():
    bars = pd.read_csv(FILE)
    lot, tick = _row().lot_size, _row().tick_size
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    ticks = prices / tick
    np.testing.assert_allclose(ticks, np.rint(ticks), atol=1e-6)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    # NIFTY 50 closed near 23,400 on 2024-06-13 and 24,000 on 2024-06-27; a synthetic walk stays near it
    assert 21_000 < prices.min() and prices.max() < 26_000
    assert (bars["volume"] > 0).all() and (bars["volume"] % lot == 0).all()
