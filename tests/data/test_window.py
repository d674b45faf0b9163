"""``data.warmup`` loading: warm-up bars are counted in the run's interval, taken from before
``data.start``, and a file without enough of them is refused with the count and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algocli.config.run import parse_plugin_config
from algocli.data.csv_feed import CsvFeed, CsvFeedConfig
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.errors import ConfigError, DataError


@pytest.fixture
def minutes(tmp_path) -> Path:
    """1-minute bars 09:15-09:44 IST on 2019-01-01 and 2019-01-02 (both NSE sessions); bar k closes at k + 100."""
    rows = ["timestamp,open,high,low,close,volume"]
    k = 0
    for day in ("2019-01-01", "2019-01-02"):
        for m in range(30):
            c = 100.0 + k
            rows.append(f"{day} 09:{15 + m:02d}:00,{c},{c + 1},{c - 1},{c},10")
            k += 1
    (tmp_path / "NSE_EQ_1.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def _load(folder: Path, **data):
    cfg = parse_plugin_config(CsvFeedConfig, {"path": str(folder), **data}, "run.yaml", "data")
    return CsvFeed(cfg).load(["NSE_EQ:1"], Interval.MINUTE_5)["NSE_EQ:1"]


def _hhmm(ts) -> list[str]:
    return [str(np.datetime64(int(t) + IST_OFFSET_NS, "ns").astype("datetime64[m]")) for t in ts]


def test_warmup_bars_are_bars_of_the_run_interval_before_start(minutes):
    bars = _load(minutes, start="2019-01-02", warmup=3)
    # six 5-minute bars a day (09:15 ... 09:40): the last three of the 1st, then all of the 2nd
    assert _hhmm(bars.ts) == ["2019-01-01T09:30", "2019-01-01T09:35", "2019-01-01T09:40"] + [
        f"2019-01-02T09:{m}" for m in ("15", "20", "25", "30", "35", "40")]
    # the 09:30 bucket of day 1 holds minutes 15-19 of the day: closes 115-119, opens at 115
    assert (bars.open[0], bars.close[0], bars.high[0], bars.low[0], bars.volume[0]) == (115, 119, 120, 114, 50)
    assert len(_load(minutes, start="2019-01-02")) == 6  # without warm-up: the day itself


def test_too_few_bars_before_start_says_how_many_and_the_fix(minutes):
    with pytest.raises(DataError) as err:
        _load(minutes, start="2019-01-02", warmup=7)
    assert str(err.value) == (f"{minutes / 'NSE_EQ_1.csv'}: data.warmup: 7 needs 7 5m bars before data.start "
                              "2019-01-02, but the file has 6 (from 2019-01-01); lower data.warmup to 6 or add "
                              "older bars")  # no later start leaves a bar to trade: the 7th bar is the last day's
    with pytest.raises(DataError, match=r"the file has 0; lower data.warmup to 0, set data.start to 2019-01-02 or "
                                        r"later, or add older bars$"):
        _load(minutes, start="2019-01-01", warmup=1)


def test_warmup_needs_a_start_and_a_count(minutes):
    with pytest.raises(ConfigError, match=r"^run.yaml: data.warmup: counts bars before data.start, which is not set; "
                                          r"set data.start .* or drop data.warmup \(got 3\)$"):
        _load(minutes, warmup=3)
    with pytest.raises(ConfigError, match=r"data.warmup: input should be greater than or equal to 0"):
        _load(minutes, start="2019-01-02", warmup=-1)
    with pytest.raises(ConfigError, match=r"data.warmup: input should be a valid integer"):
        _load(minutes, start="2019-01-02", warmup="auto")
