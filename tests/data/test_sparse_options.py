"""Option contract files with holes (a rolling ``download-data --options`` leaves them) are read at the
underlying's bar length, while a contract file that really is coarser than the run is still refused.

The folder is the bundled NIFTY 27 JUN 2024 sample (15-minute bars) with one contract thinned by hand.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from algocli.config.run import load_run_config
from algocli.data.csv_feed import sparse_native
from algocli.domain.session import MINUTE_NS, ist_midnight_ns
from algocli.engine.assemble import assemble_backtest
from algocli.errors import DataError

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "options"
THINNED = "NSE_FNO_71001.csv"  # NSE:NIFTY 27 JUN 2024 22800 CE


def _folder(tmp_path, keep) -> tuple[Path, list[dict]]:
    """A copy of the sample whose 22800 CE keeps the rows ``keep(index, row)`` says."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    with open(data / THINNED, newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for k, r in enumerate(rows) if keep(k, r)]
    with open(data / THINNED, "w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(kept)
    return data, kept


def _assemble(tmp_path, data: Path):
    doc = {"name": "sparse", "interval": "15m", "initial_capital": 1_000_000,
           "data": {"path": str(data), "options": {"underlying": "NSE:NIFTY 50"}}, "broker": {"name": "simulated"},
           "strategies": [{"class": "options.chain_strategies:ReadChains", "instruments": ["NSE:NIFTY 50"],
                           "params": {"chain": False}}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    return assemble_backtest(load_run_config(tmp_path / "run.yaml"), str(tmp_path / "run.yaml"))


def test_a_contract_with_holes_keeps_its_15_minute_bars(tmp_path):
    # every other bar but the last of each day, and nothing from 10:15 to 12:45 on the first day:
    # most common gap 30 min, one of 180, never a whole day of half hours
    data, kept = _folder(tmp_path, lambda k, r: k % 2 == 0 and not r["timestamp"].endswith("15:15:00")
                         and not "2024-06-13 10:15" <= r["timestamp"] < "2024-06-13 13:00")
    bars = _assemble(tmp_path, data).backtest.bars["NSE:NIFTY 27 JUN 2024 22800 CE"]
    assert len(bars) == len(kept)  # bar for bar, not resampled or refused
    assert bars.close.tolist() == [float(r["close"]) for r in kept]


def test_a_contract_file_of_30_minute_bars_is_still_refused(tmp_path):
    # each 15-minute bar merged with the next: 13 half-hour bars a day from 09:15, a whole session's
    data, _ = _folder(tmp_path, lambda k, r: int(r["timestamp"][14:16]) in (15, 45))
    with pytest.raises(DataError, match="the file has 30-minute bars and cannot be turned into 15m bars"):
        _assemble(tmp_path, data)


def _at(*minutes_after_0915, day=(2024, 6, 13)):
    from datetime import date

    return np.array([ist_midnight_ns(date(*day)) + (555 + m) * MINUTE_NS for m in minutes_after_0915], np.int64)


def test_sparse_native_reads_holes_at_the_reference_length():
    assert sparse_native(_at(0, 180), 180, 15) == 15          # two bars, three hours apart: holes
    assert sparse_native(_at(0, 30, 60, 120), 30, 15) == 15   # a flipping ATM strike
    assert sparse_native(_at(*range(0, 361, 30)), 30, 15) == 30  # 13 half-hour bars fill the day: 30-minute data
    assert sparse_native(_at(0, 7, 14), 7, 15) == 7            # finer than the reference: resampled as before
    assert sparse_native(_at(5, 50), 45, 15) == 45             # off the 15-minute grid: the file's own length
    midnights = np.array([ist_midnight_ns(__import__("datetime").date(2024, 6, d)) for d in (13, 14)], np.int64)
    assert sparse_native(midnights, 375, 15) == 375            # daily bars stay daily (and are refused)
