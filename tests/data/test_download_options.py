"""The options download's pieces that need no broker: strike windows, the rolling split, the PCR file."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from algocli.data.download_options import split_rolling, strike_window, write_pcr
from algocli.domain.session import ist_midnight_ns
from algocli.errors import UsageError
from algocli.options.pcr import PCR_COLUMNS

HOUR = 3_600_000_000_000


def _cols(stamps: list[int], strikes: list[float], base: float) -> dict[str, np.ndarray]:
    n = len(stamps)
    prices = base + np.arange(n, dtype=float)
    return {"ts": np.array(stamps, dtype=np.int64), "open": prices, "high": prices + 1, "low": prices - 1,
            "close": prices, "volume": np.full(n, 10.0), "oi": np.full(n, 100.0), "iv": np.zeros(n),
            "strike": np.array(strikes, dtype=float), "spot": np.zeros(n)}


def test_strike_windows():
    assert strike_window("ATM-5:ATM+5").offsets == range(-5, 6)
    assert strike_window("atm + 2").offsets == range(2, 3)
    for bad in ("ATM+2:ATM-2", "24000", "ATM*2"):
        with pytest.raises(UsageError, match="--strikes"):
            strike_window(bad)


def test_rolling_candles_go_to_the_contract_of_their_day_and_strike():
    d1, d2 = ist_midnight_ns(date(2024, 6, 27)) + 10 * HOUR, ist_midnight_ns(date(2024, 6, 28)) + 10 * HOUR
    expiry = {date(2024, 6, 27): date(2024, 6, 27), date(2024, 6, 28): date(2024, 7, 25)}
    atm = _cols([d1, d1 + HOUR, d2], [24000, 24050, 24050], 100.0)      # ATM moves up, then the expiry rolls
    above = _cols([d1, d1 + HOUR, d1 + HOUR], [24050, 24100, 24100], 200.0)  # the last bar repeats
    split, dropped = split_rolling([(atm, "CE", 0), (above, "CE", 0)], lambda day, code: expiry[day])
    assert dropped == 1
    assert {k: v["close"].tolist() for k, v in split.items()} == {
        (date(2024, 6, 27), 24000.0, "CE"): [100.0],
        (date(2024, 6, 27), 24050.0, "CE"): [200.0, 101.0],   # the union of ATM+1 at 10:00 and ATM at 11:00
        (date(2024, 6, 27), 24100.0, "CE"): [201.0],
        (date(2024, 7, 25), 24050.0, "CE"): [102.0]}
    only, _ = split_rolling([(atm, "CE", 0)], lambda day, code: expiry[day], keep=lambda e: e == date(2024, 7, 25))
    assert list(only) == [(date(2024, 7, 25), 24050.0, "CE")]


def test_pcr_file_merges_by_time_and_expiry(tmp_path):
    path = tmp_path / "pcr.csv"
    row = dict.fromkeys(PCR_COLUMNS) | {"timestamp": "2024-06-20 09:15:00", "underlying": "NSE:NIFTY 50",
                                         "expiry": "2024-06-27", "oi_pcr": 0.95, "spot": 23500.5}
    assert write_pcr(path, [row]) == 1
    assert write_pcr(path, [row | {"oi_pcr": 1.05}, row | {"timestamp": "2024-06-20 09:00:00"}]) == 2
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(PCR_COLUMNS)
    assert lines[2] == "2024-06-20 09:15:00,NSE:NIFTY 50,2024-06-27,23500.5,,1.05,,,"


def test_listing_contracts_keeps_the_folders_rows_and_fills_only_placeholder_lot_sizes():
    from dataclasses import replace

    from algocli.data.download_options import list_contracts
    from algocli.instruments.model import Instrument

    def opt(strike: int, lot: int, **kw) -> Instrument:
        return Instrument(f"NSE:NIFTY 27 JUN 2024 {strike} CE", exchange="NSE", kind="CE", symbol="NIFTY",
                          expiry=date(2024, 6, 27), strike=float(strike), lot_size=lot, **kw)

    have = [opt(23000, 50, tick_size=0.1), opt(23050, 1), opt(23100, 1)]
    found = [opt(23000, 25, dhan_id="NSE_FNO:1"), opt(23050, 25), opt(23100, 1), opt(23150, 25)]
    rows = {r.hrn: r for r in list_contracts(have, found)}
    assert [rows[f"NSE:NIFTY 27 JUN 2024 {k} CE"].lot_size for k in (23000, 23050, 23100, 23150)] == [50, 25, 1, 25]
    assert rows["NSE:NIFTY 27 JUN 2024 23000 CE"] == replace(have[0], dhan_id="NSE_FNO:1")  # kept, gaps filled
