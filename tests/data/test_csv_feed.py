"""The CSV feed: validation messages, time zones, resampling onto the NSE grid, the feed, the generator."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest

from algocli.data.csv_feed import CsvFeed, CsvFeedConfig, infer_interval_minutes, load_csv, resample
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
MIN_NS = 60 * 10**9


def _generator():
    spec = importlib.util.spec_from_file_location("generate_sample", ROOT / "data" / "generate_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def _csv_lines(frame: pd.DataFrame) -> list[str]:
    text = frame.to_csv(index=False, float_format="%.2f", date_format="%Y-%m-%d %H:%M:%S")
    return text.splitlines()


CLEAN = _csv_lines(gen.generate_minute_bars(20, seed=3, start="2024-06-10", start_price=100.0))
# Line numbers as an editor shows them: header is line 1, data rows are lines 2..21.
LAST = len(CLEAN)


def write(tmp_path: Path, lines: list[str], name: str = "NSE_EQ_1333.csv", newline: str = "\n",
          final_newline: bool = True) -> Path:
    path = tmp_path / name
    text = newline.join(lines) + (newline if final_newline else "")
    path.write_bytes(text.encode("utf-8"))
    return path


def edit(line: int, column: int, value: str):
    """A corruption that sets one field of one line."""
    def apply(lines):
        fields = lines[line - 1].split(",")
        fields[column] = value
        lines[line - 1] = ",".join(fields)
        return lines
    return apply


def field(line: int, column: int) -> str:
    return CLEAN[line - 1].split(",")[column]


def _swap_high_low(lines):
    f = lines[11].split(",")
    f[2], f[3] = f[3], f[2]
    lines[11] = ",".join(f)
    return lines


def _drop_volume(lines):
    return [",".join(line.split(",")[:5]) for line in lines]


TS, OPEN, HIGH, LOW, CLOSE, VOLUME = range(6)
CORRUPTIONS = [
    ("duplicate_ts", edit(10, TS, field(6, TS)), 10, ["remove one of the duplicate rows 6 and 10"]),
    ("nan_close", edit(8, CLOSE, "NaN"), 8, ["close is NaN; fill or delete the row"]),
    ("empty_close", edit(8, CLOSE, ""), 8, ["close is empty; fill or delete the row"]),
    ("infinite_high", edit(6, HIGH, "inf"), 6, ["high is inf; fill or delete the row"]),
    ("zero_close", edit(9, CLOSE, "0"), 9, ["close is 0", "positive", "fix or delete the row"]),
    ("negative_low", edit(9, LOW, "-5"), 9, ["low is -5", "positive"]),
    ("negative_volume", edit(7, VOLUME, "-100"), 7, ["volume is -100", "cannot be negative"]),
    ("text_volume", edit(7, VOLUME, "abc"), 7, ["volume is not a number ('abc')"]),
    ("high_below_low", _swap_high_low, 12, ["high", "is below low", "swap"]),
    ("open_above_high", edit(5, OPEN, "999"), 5, ["open 999 is outside the bar's range"]),
    ("close_below_low", edit(5, CLOSE, "1"), 5, ["close 1 is outside the bar's range"]),
    ("missing_column", _drop_volume, 1, ["missing column(s) volume", "header must name"]),
    ("empty_file", lambda lines: [], None, ["file is empty", "header"]),
    ("header_only", lambda lines: lines[:1], None, ["no data rows"]),
    ("truncated_last_line", lambda lines: lines[:-1] + [lines[-1][:25]], LAST,
     ["last line has 2 of 6 fields", "interrupted download", "re-download the file or delete that line"]),
    ("bad_timestamp", edit(4, TS, "2024-06-1x 09:20:00"), 4, ["timestamp '2024-06-1x 09:20:00'", "not a valid"]),
    # shaped like an ISO date, so the reader without pandas takes it up first
    ("month_13", edit(4, TS, "2024-13-11 09:20:00"), 4, ["timestamp '2024-13-11 09:20:00'", "not a valid"]),
    ("february_30", edit(4, TS, "2024-02-30 09:20:00"), 4, ["timestamp '2024-02-30 09:20:00'", "not a valid"]),
    ("hour_25", edit(4, TS, "2024-06-11 25:20:00"), 4, ["timestamp '2024-06-11 25:20:00'", "not a valid"]),
    ("mixed_tz", edit(5, TS, field(5, TS) + "+05:30"), 5, ["UTC offset", "one form for the whole file"]),
    ("short_middle_row", lambda lines: lines[:6] + [lines[6][:25]] + lines[7:], 7, ["row has 2 of 6 fields"]),
    ("extra_field", lambda lines: lines[:2] + [lines[2] + ",7"] + lines[3:], 3,
     ["row has 7 fields but the header has 6"]),
    ("blank_middle_line", lambda lines: lines[:6] + [""] + lines[7:], 7, ["line is blank; delete it"]),
]


@pytest.mark.parametrize("mutate,row,needles", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_file_names_file_row_and_fix(tmp_path, mutate, row, needles):
    # An interrupted download stops mid-line, so that case has no final newline.
    path = write(tmp_path, mutate(list(CLEAN)), final_newline=not needles[0].startswith("last line"))
    with pytest.raises(DataError) as info:
        load_csv(path, "NSE_EQ:1333")
    err = info.value
    message = str(err)
    assert err.exit_code == 2
    assert err.row == row
    assert err.path == str(path)
    assert "\n" not in message
    prefix = f"{path}, row {row}: " if row is not None else f"{path}: "
    assert message.startswith(prefix), message
    for needle in needles:
        assert needle in message, message


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        load_csv(tmp_path / "nope.csv", "NSE_EQ:1")
    assert info.value.exit_code == 2


def test_clean_file_loads(tmp_path):
    bars = load_csv(write(tmp_path, CLEAN), "NSE_EQ:1333")
    assert len(bars) == 20 and bars.instrument == "NSE_EQ:1333"
    assert bars.ts.dtype == np.int64 and bars.close.dtype == np.float64 and bars.oi is None
    # 2024-06-10 09:15 IST is 03:45 UTC.
    assert bars.ts[0] == pd.Timestamp("2024-06-10 03:45", tz="UTC").value
    assert np.all(np.diff(bars.ts) == MIN_NS)
    assert bars.close[3] == float(field(5, CLOSE))


def test_reversed_rows_are_sorted_with_a_warning(tmp_path):
    clean = load_csv(write(tmp_path, CLEAN, name="clean.csv"), "X")
    path = write(tmp_path, CLEAN[:1] + CLEAN[:0:-1])
    before = path.read_bytes()
    warnings: list[str] = []
    bars = load_csv(path, "X", warn=warnings.append)
    assert warnings == [f"{path}: rows are not in time order; sorted them in memory (the file is unchanged)"]
    assert path.read_bytes() == before
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(bars, name), getattr(clean, name))


def test_sorted_file_gives_no_warning(tmp_path):
    warnings: list[str] = []
    load_csv(write(tmp_path, CLEAN), "X", warn=warnings.append)
    assert warnings == []


def test_bom_crlf_case_order_and_extra_columns_are_tolerated(tmp_path):
    clean = load_csv(write(tmp_path, CLEAN, name="clean.csv"), "X")
    order = [5, 0, 4, 2, 3, 1]
    lines = [",".join(line.split(",")[i] for i in order) + ",x" for line in CLEAN]
    lines[0] = "\ufeffVolume, TIMESTAMP,Close,High,LOW,Open,Symbol"
    bars = load_csv(write(tmp_path, lines + ["", ""], newline="\r\n"), "X")
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(bars, name), getattr(clean, name))


def test_oi_column_is_loaded_and_blank_oi_is_dropped(tmp_path):
    lines = [CLEAN[0] + ",oi"] + [f"{line},{100 + i}" for i, line in enumerate(CLEAN[1:])]
    bars = load_csv(write(tmp_path, lines), "X")
    np.testing.assert_array_equal(bars.oi, 100.0 + np.arange(20))
    blank = [CLEAN[0] + ",oi"] + [line + "," for line in CLEAN[1:]]
    assert load_csv(write(tmp_path, blank, name="blank.csv"), "X").oi is None


@pytest.mark.parametrize("suffix,shift", [("", 0), ("+05:30", 0), ("Z", -IST_OFFSET_NS), ("+00:00", -IST_OFFSET_NS)])
def test_naive_and_offset_timestamps_agree(tmp_path, suffix, shift):
    """Naive times are IST; the same instant written in UTC gives the same nanoseconds."""
    naive = load_csv(write(tmp_path, CLEAN, name="naive.csv"), "X")
    lines = [CLEAN[0]]
    for line in CLEAN[1:]:
        ts, rest = line.split(",", 1)
        local = pd.Timestamp(ts) + pd.Timedelta(shift, "ns")
        lines.append(f"{local.isoformat()}{suffix},{rest}")
    bars = load_csv(write(tmp_path, lines), "X")
    np.testing.assert_array_equal(bars.ts, naive.ts)


def test_mixed_explicit_offsets_are_accepted(tmp_path):
    """Every row with an offset is unambiguous, so +05:30 and Z may be mixed."""
    naive = load_csv(write(tmp_path, CLEAN, name="naive.csv"), "X")
    lines = list(CLEAN)
    lines[1] = lines[1].replace(" 09:15:00", "T09:15:00+05:30")
    for i in range(2, len(lines)):
        ts, rest = lines[i].split(",", 1)
        lines[i] = f"{(pd.Timestamp(ts) - pd.Timedelta(hours=5, minutes=30)).isoformat()}Z,{rest}"
    np.testing.assert_array_equal(load_csv(write(tmp_path, lines), "X").ts, naive.ts)


def test_daily_dates_are_ist_midnight(tmp_path):
    lines = ["timestamp,open,high,low,close,volume", "2024-01-02,10,11,9,10.5,100", "2024-01-03,10,11,9,10,100"]
    bars = load_csv(write(tmp_path, lines), "X")
    assert bars.ts[0] == pd.Timestamp("2024-01-02", tz="Asia/Kolkata").value
    assert infer_interval_minutes(bars.ts) == 375


# --- resampling ------------------------------------------------------------------------

def minute_bars(days: int = 4, seed: int = 11, drop: float = 0.05, with_oi: bool = True) -> Bars:
    """Multi-day 1m bars with a few random minutes missing, as thin stocks have."""
    frame = gen.generate_minute_bars(days * 375, seed=seed, start="2024-06-13")  # spans a weekend
    keep = np.random.default_rng(seed).random(len(frame)) >= drop
    keep[:2] = True
    frame = frame[keep]
    ts = frame["timestamp"].to_numpy().astype("datetime64[ns]").view(np.int64) - IST_OFFSET_NS
    oi = np.arange(len(frame), dtype=np.float64) if with_oi else None
    cols = [frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    return Bars("NSE_EQ:2885", ts, *cols, oi)


def pandas_resample(bars: Bars, minutes: int | None) -> pd.DataFrame:
    """Reference bars from pandas' own resample, anchored at 09:15 IST one day at a time."""
    local = pd.to_datetime(bars.ts + IST_OFFSET_NS)
    frame = pd.DataFrame({"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
                          "volume": bars.volume, "oi": bars.oi}, index=local)
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "oi": "last"}
    if minutes is None:
        result = frame.groupby(frame.index.normalize()).agg(agg)
    else:
        parts = []
        for day, group in frame.groupby(frame.index.normalize()):
            buckets = group.resample(f"{minutes}min", origin=day + pd.Timedelta(hours=9, minutes=15))
            parts.append(buckets.agg(agg)[buckets.size() > 0])  # pandas keeps empty bins, we do not
        result = pd.concat(parts)
    result.index = pd.DatetimeIndex(result.index).as_unit("ns")
    return result


@pytest.mark.parametrize("interval", [Interval.MINUTE_5, Interval.MINUTE_15, Interval.MINUTE_25,
                                      Interval.HOUR_1, Interval.DAY_1])
def test_resample_matches_pandas(interval):
    src = minute_bars()
    out = resample(src, interval)
    ref = pandas_resample(src, None if interval is Interval.DAY_1 else interval.minutes)
    np.testing.assert_array_equal(out.ts, ref.index.asi8 - IST_OFFSET_NS)
    for name in ("open", "high", "low", "close", "volume", "oi"):
        np.testing.assert_array_equal(getattr(out, name), ref[name].to_numpy(dtype=np.float64), err_msg=name)
    assert out.volume.sum() == src.volume.sum()


def _ist_times(ts: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(ts + IST_OFFSET_NS)


def test_25m_buckets_start_at_0915_and_step_25_minutes():
    out = resample(minute_bars(drop=0.0), Interval.MINUTE_25)
    local = _ist_times(out.ts)
    expected = [f"{(555 + 25 * k) // 60:02d}:{(555 + 25 * k) % 60:02d}" for k in range(15)]
    assert expected[:3] == ["09:15", "09:40", "10:05"] and expected[-1] == "15:05"
    for day in np.unique(local.date):
        assert list(local[local.date == day].strftime("%H:%M")) == expected


def test_hourly_buckets_end_with_a_short_one_and_never_cross_days():
    src = minute_bars(drop=0.0)
    out = resample(src, Interval.HOUR_1)
    local = _ist_times(out.ts)
    assert list(local[:7].strftime("%H:%M")) == ["09:15", "10:15", "11:15", "12:15", "13:15", "14:15", "15:15"]
    assert out.volume[6] == src.volume[360:375].sum()  # 15:15-15:29 is 15 bars
    # Each bucket's source bars share its IST date.
    labels = np.searchsorted(out.ts, src.ts, side="right") - 1
    src_days = _ist_times(src.ts).normalize()
    assert (src_days == local.normalize()[labels]).all()


def test_daily_resample_is_ist_midnight_like_a_daily_file():
    out = resample(minute_bars(), Interval.DAY_1)
    assert (_ist_times(out.ts) == _ist_times(out.ts).normalize()).all()
    assert infer_interval_minutes(out.ts) == 375
    assert resample(out, Interval.DAY_1) is out


def test_resample_same_interval_returns_input():
    src = minute_bars()
    assert resample(src, Interval.MINUTE_1) is src
    five = resample(src, Interval.MINUTE_5)
    assert resample(five, Interval.MINUTE_5) is five


@pytest.mark.parametrize("source,target,words", [
    (Interval.DAY_1, Interval.MINUTE_5, "has daily bars and cannot be turned into 5m bars; supply finer data"),
    (Interval.HOUR_1, Interval.MINUTE_15, "has 60-minute bars and cannot be turned into 15m bars"),
    (Interval.MINUTE_15, Interval.MINUTE_25, "has 15-minute bars and cannot be turned into 25m bars"),
])
def test_resample_refuses_coarser_or_misaligned_sources(source, target, words):
    coarse = resample(minute_bars(drop=0.0), source)
    with pytest.raises(DataError, match="supply finer data") as info:
        resample(coarse, target, source="data/x.csv")
    assert words in str(info.value) and str(info.value).startswith("data/x.csv: ")


def test_infer_interval_minutes():
    src = minute_bars(drop=0.0)
    assert infer_interval_minutes(src.ts) == 1
    assert infer_interval_minutes(resample(src, Interval.MINUTE_25).ts) == 25
    assert infer_interval_minutes(src.ts[:1]) is None
    assert infer_interval_minutes(np.array([], dtype=np.int64)) is None


# --- the feed ----------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "prices"
    gen.write_samples(folder)
    return folder


def test_feed_maps_instruments_to_files_relative_to_base_dir(tmp_path, data_dir):
    # the synthetic daily sample has bars on 2024's movable NSE holidays (see the session tests below)
    feed = CsvFeed(CsvFeedConfig(path=Path("prices"), allow_off_session=True), base_dir=tmp_path)
    assert feed.file_for("NSE_EQ:1333") == data_dir / "NSE_EQ_1333.csv"
    out = feed.load(["NSE_EQ:1333", "NSE_EQ:1594"], Interval.DAY_1)
    assert list(out) == ["NSE_EQ:1333", "NSE_EQ:1594"]
    assert out["NSE_EQ:1333"].instrument == "NSE_EQ:1333"
    assert feed.files_used() == [data_dir / "NSE_EQ_1333.csv", data_dir / "NSE_EQ_1594.csv"]


def test_feed_relative_path_defaults_to_cwd(tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    feed = CsvFeed(CsvFeedConfig(path=Path("prices")))
    assert feed.file_for("NSE_EQ:2885").resolve() == (data_dir / "NSE_EQ_2885.csv").resolve()


def test_feed_start_end_filter_is_inclusive_in_ist(tmp_path, data_dir):
    config = CsvFeedConfig(path=data_dir, start=date(2023, 1, 2), end=date(2023, 1, 31))
    bars = CsvFeed(config).load(["NSE_EQ:1333"], Interval.DAY_1)["NSE_EQ:1333"]
    dates = _ist_times(bars.ts).date
    assert dates[0] == date(2023, 1, 2) and dates[-1] == date(2023, 1, 31)
    assert date(2023, 1, 26) not in set(dates)  # a fixed holiday in the sample data


def test_feed_resamples_minute_file_and_filters_one_day(data_dir):
    config = CsvFeedConfig(path=data_dir, start=date(2024, 6, 11), end=date(2024, 6, 11))
    bars = CsvFeed(config).load(["NSE_EQ:2885"], Interval.MINUTE_25)["NSE_EQ:2885"]
    assert len(bars) == 15
    assert _ist_times(bars.ts)[0] == pd.Timestamp("2024-06-11 09:15")


def test_feed_errors(tmp_path, data_dir):
    empty = CsvFeed(CsvFeedConfig(path=data_dir, start=date(2030, 1, 1)))
    with pytest.raises(DataError, match="no bars between 2030-01-01 and the end .*check data.start/data.end"):
        empty.load(["NSE_EQ:1333"], Interval.DAY_1)
    with pytest.raises(DataError, match="no data file for NSE_EQ:9999; expected NSE_EQ_9999.csv") as info:
        CsvFeed(CsvFeedConfig(path=data_dir)).load(["NSE_EQ:9999"], Interval.DAY_1)
    assert info.value.exit_code == 2
    with pytest.raises(DataError, match="daily bars and cannot be turned into 5m"):
        CsvFeed(CsvFeedConfig(path=data_dir, allow_off_session=True)).load(["NSE_EQ:1333"], Interval.MINUTE_5)


def test_an_end_before_the_start_is_a_config_error_that_names_both_dates(tmp_path):
    from algocli.config.run import parse_plugin_config
    from algocli.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_plugin_config(CsvFeedConfig, {"path": str(tmp_path), "start": date(2019, 1, 1), "end": date(2018, 12, 31)},
                            "run.yaml", "data")
    assert str(err.value) == ("run.yaml: data.end: 2018-12-31 is before data.start 2019-01-01; swap them, or set "
                              "end on or after start")
    assert err.value.exit_code == 2
    one_day = CsvFeedConfig(path=tmp_path, start=date(2019, 1, 1), end=date(2019, 1, 1))  # the same day is a range
    assert one_day.start == one_day.end


def test_a_daily_run_over_a_week_with_a_holiday_reads_daily_bars(data_dir):
    """24-31 Dec 2024: a holiday (25th) and a weekend make the median gap 1.5 days in that window."""
    config = CsvFeedConfig(path=data_dir, start=date(2024, 12, 24), end=date(2024, 12, 31))
    bars = CsvFeed(config).load(["NSE_EQ:1333"], Interval.DAY_1)["NSE_EQ:1333"]
    assert [str(d) for d in _ist_times(bars.ts).date] == ["2024-12-24", "2024-12-26", "2024-12-27",
                                                          "2024-12-30", "2024-12-31"]


def _ist_ns(stamps: list[str]) -> np.ndarray:
    return np.array([pd.Timestamp(s).value - IST_OFFSET_NS for s in stamps], dtype=np.int64)


def test_the_bar_length_is_read_from_gaps_within_a_day_or_in_trading_days():
    holiday_week = _ist_ns(["2024-12-24", "2024-12-26", "2024-12-27", "2024-12-30", "2024-12-31"])
    assert infer_interval_minutes(holiday_week) == 375
    assert infer_interval_minutes(holiday_week[2:4]) == 375  # Friday to Monday: one weekday apart
    weekly = _ist_ns(["2024-06-03", "2024-06-10", "2024-06-17", "2024-06-24", "2024-07-01"])
    assert infer_interval_minutes(weekly) == 5 * 375
    # two 5-minute days with a gap in the second: the night and the gap never count
    five = _ist_ns(["2024-06-13 15:20", "2024-06-13 15:25", "2024-06-14 09:15", "2024-06-14 09:20",
                    "2024-06-14 09:40", "2024-06-14 09:45"])
    assert infer_interval_minutes(five) == 5


def test_a_csv_that_is_not_utf8_names_the_byte(tmp_path):
    lines = list(CLEAN)
    path = write(tmp_path, lines)
    data = path.read_bytes()
    at = len("\n".join(lines[:5])) + 1 + 4  # four bytes into line 6
    path.write_bytes(data[:at] + b"\xe9" + data[at + 1:])
    with pytest.raises(DataError, match=rf"^{path}: is not UTF-8 text: byte {at} \(line 6\) is 0xe9; save it as UTF-8"):
        load_csv(path, "NSE_EQ:1333")
    path.write_bytes(b"timestamp,op\xe9n,high,low,close,volume\n" + data.split(b"\n", 1)[1])
    with pytest.raises(DataError, match=r"is not UTF-8 text: byte 12 \(line 1\) is 0xe9") as info:
        load_csv(path, "NSE_EQ:1333")
    assert info.value.exit_code == 2


def test_feed_config_is_strict_and_frozen():
    assert CsvFeed.Config is CsvFeedConfig
    with pytest.raises(pydantic.ValidationError):
        CsvFeedConfig(paht="data")
    config = CsvFeedConfig()
    assert config.path == Path("data") and config.start is None and config.end is None
    with pytest.raises(pydantic.ValidationError):
        config.start = date(2024, 1, 1)


# --- the sample generator ------------------------------------------------------------------

def test_generator_is_deterministic(tmp_path):
    first = gen.write_samples(tmp_path / "a")
    second = gen.write_samples(tmp_path / "b")
    assert [p.name for p in first] == ["NSE_EQ_1333.csv", "NSE_EQ_1594.csv", "NSE_EQ_2885.csv"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_checked_in_samples_match_the_generator(tmp_path):
    for path in gen.write_samples(tmp_path):
        assert (ROOT / "data" / path.name).read_bytes() == path.read_bytes(), path.name


def test_generated_samples_are_valid_and_shaped_as_documented(data_dir):
    for name in ("NSE_EQ_1333.csv", "NSE_EQ_1594.csv"):
        bars = load_csv(data_dir / name, name)
        dates = _ist_times(bars.ts)
        assert dates[0] == pd.Timestamp("2019-01-01") and dates[-1] == pd.Timestamp("2024-12-31")
        # weekdays, and the weekend days NSE traded (special sessions in the NSE calendar: Muhurat on
        # 2019-10-27, 2020-11-14 and 2023-11-12, the budget Saturday 2020-02-01, a full session on
        # 2024-01-20 and the live DR-site sessions of 2024-03-02 and 2024-05-18)
        weekend = {"2019-10-27", "2020-02-01", "2020-11-14", "2023-11-12", "2024-01-20", "2024-03-02", "2024-05-18"}
        assert set(dates[dates.day_of_week >= 5].strftime("%Y-%m-%d")) == weekend
        assert np.allclose(np.round(bars.close / 0.05) * 0.05, bars.close)
        assert (bars.volume == np.round(bars.volume)).all()
    minute = load_csv(data_dir / "NSE_EQ_2885.csv", "NSE_EQ:2885")
    times = _ist_times(minute.ts)
    assert len(minute) == 5 * 375
    assert times[0] == pd.Timestamp("2024-06-10 09:15") and times[374] == pd.Timestamp("2024-06-10 15:29")
    assert 2700 < minute.open[0] < 3100


def test_minute_generator_length_and_session():
    frame = gen.generate_minute_bars(800, seed=5, start="2020-01-03")
    assert len(frame) == 800
    local = pd.DatetimeIndex(frame["timestamp"])
    assert local[0] == pd.Timestamp("2020-01-03 09:15") and local[375] == pd.Timestamp("2020-01-06 09:15")
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


@pytest.mark.parametrize("lines", [
    CLEAN,
    [CLEAN[0] + ",oi"] + [line + ",7" for line in CLEAN[1:]],
    [CLEAN[0]] + [line.replace(" ", "T", 1) for line in CLEAN[1:]] + ["", ""],
    [CLEAN[0]] + CLEAN[1:][::-1],
], ids=["clean", "oi", "iso-t-and-blank-tail", "reversed"])
def test_small_files_are_read_without_pandas_as_pandas_reads_them(tmp_path, monkeypatch, lines):
    """A small file takes the plain reader; forcing pandas' C parser gives the same bars."""
    import algocli.data.csv_parse as feed

    path = write(tmp_path, lines)
    assert feed._read_plain(path, feed._read_header(path)) is not None
    plain = load_csv(path, "X", warn=lambda _: None)
    monkeypatch.setattr(feed, "PLAIN_READ_MAX_BYTES", -1)
    assert feed._read_plain(path, feed._read_header(path)) is None
    with_pandas = load_csv(path, "X", warn=lambda _: None)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(with_pandas, name))
    assert (plain.oi is None) == (with_pandas.oi is None)


# --- the NSE calendar: holidays and sessions -----------------------------------------------

HEADER = "timestamp,open,high,low,close,volume\n"


def _bars_file(folder: Path, name: str, stamps: list[str], *, quoted: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    cells = [f'"{t}"' if quoted else t for t in stamps]  # a quote sends the file to the pandas reader
    rows = "".join(f"{cell},100,101,99,100.5,10\n" for cell in cells)
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize("quoted", [False, True], ids=["plain-reader", "pandas-reader"])
def test_a_daily_bar_on_an_nse_holiday_is_refused_with_file_row_and_fix(tmp_path, quoted):
    path = _bars_file(tmp_path, "NSE_EQ_1333", ["2024-01-24", "2024-01-25", "2024-01-26", "2024-01-29"], quoted=quoted)
    with pytest.raises(DataError) as info:
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:1333"], Interval.DAY_1)
    text = str(info.value)
    assert text.startswith(f"{path}, row 4: bar at 2024-01-26 falls on an NSE holiday (Republic Day)")
    assert "allow_off_session: true" in text and "\n" not in text
    assert info.value.exit_code == 2


def test_a_weekend_bar_is_refused_but_a_special_saturday_session_is_not(tmp_path):
    _bars_file(tmp_path, "NSE_EQ_1333", ["2024-01-19", "2024-01-20", "2024-01-21"])  # 20th: a full Saturday session
    with pytest.raises(DataError, match=r"row 4: bar at 2024-01-21 falls on a Sunday"):
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:1333"], Interval.DAY_1)


def test_an_intraday_bar_outside_the_session_is_refused(tmp_path):
    _bars_file(tmp_path, "NSE_EQ_2885", ["2024-06-10 09:14:00", "2024-06-10 09:15:00", "2024-06-10 15:29:00"])
    with pytest.raises(DataError, match=r"row 2: bar at 2024-06-10 09:14 IST is outside the cash-market session "
                                        r"\(09:15-15:30 IST on 2024-06-10\)"):
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:2885"], Interval.MINUTE_1)
    _bars_file(tmp_path, "NSE_EQ_2885", ["2024-06-10 09:15:00", "2024-06-10 15:29:00", "2024-06-10 15:30:00"])
    with pytest.raises(DataError, match=r"row 4: bar at 2024-06-10 15:30 IST is outside"):
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:2885"], Interval.MINUTE_1)


def test_fno_trades_until_1540_from_2026_08_03_and_cash_does_not(tmp_path):
    stamps = ["2026-08-03 15:38:00", "2026-08-03 15:39:00"]
    _bars_file(tmp_path, "NSE_FNO_53216", stamps)
    bars = CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_FNO:53216"], Interval.MINUTE_1)["NSE_FNO:53216"]
    assert len(bars) == 2
    _bars_file(tmp_path, "NSE_FNO_53216", ["2026-07-31 15:35:00"])  # the Friday before: 15:30 still
    with pytest.raises(DataError, match=r"outside the F&O session \(09:15-15:30 IST on 2026-07-31\)"):
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_FNO:53216"], Interval.MINUTE_1)
    _bars_file(tmp_path, "NSE_EQ_2885", stamps)
    with pytest.raises(DataError, match=r"row 2: .* outside the cash-market session \(09:15-15:30"):
        CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:2885"], Interval.MINUTE_1)


def test_allow_off_session_keeps_the_bars_and_says_how_many(tmp_path):
    _bars_file(tmp_path, "NSE_EQ_1333", ["2024-01-25", "2024-01-26", "2024-01-27", "2024-01-29"])
    said: list[str] = []
    bars = CsvFeed(CsvFeedConfig(path=tmp_path, allow_off_session=True)).load(["NSE_EQ:1333"], Interval.DAY_1,
                                                                             warn=said.append)
    assert len(bars["NSE_EQ:1333"]) == 4
    assert said == [f"{tmp_path / 'NSE_EQ_1333.csv'}: kept 2 bar(s) on NSE holidays or outside the session "
                    "(data.allow_off_session)"]


def test_only_the_runs_dates_are_checked(tmp_path):
    _bars_file(tmp_path, "NSE_EQ_1333", ["2024-01-25", "2024-01-26", "2024-01-29"])
    config = CsvFeedConfig(path=tmp_path, start=date(2024, 1, 29))
    assert len(CsvFeed(config).load(["NSE_EQ:1333"], Interval.DAY_1)["NSE_EQ:1333"]) == 1


def test_a_run_on_years_the_calendar_does_not_cover_says_so_once(tmp_path):
    for name in ("NSE_EQ_1333", "NSE_EQ_1594"):
        _bars_file(tmp_path, name, ["2017-01-02", "2017-01-03", "2018-01-01"])
    said: list[str] = []
    feed = CsvFeed(CsvFeedConfig(path=tmp_path))
    feed.load(["NSE_EQ:1333", "NSE_EQ:1594"], Interval.DAY_1, warn=said.append)
    feed.load(["NSE_EQ:1333"], Interval.DAY_1, warn=said.append)
    assert len(said) == 1, said
    assert said[0].startswith("NSE calendar: 2017, 2018 are not covered (covered: 2019, 2020, 2021, 2022, 2023, "
                              "2024, 2025, 2026)")
    assert "nse_YYYY.csv" in said[0]


def test_the_bundled_daily_sample_trades_on_nse_trading_days_only():
    """``data/generate_sample.py`` takes its trading days from the NSE calendar: the files load
    without ``allow_off_session``, skip the movable holidays and hold the special Saturday session."""
    root = Path(__file__).resolve().parents[2] / "data"
    for name in ("NSE_EQ:1333", "NSE_EQ:1594"):
        bars = CsvFeed(CsvFeedConfig(path=root, start=date(2024, 1, 1))).load([name], Interval.DAY_1)[name]
        days = {str(d) for d in (bars.ts + IST_OFFSET_NS).astype("datetime64[ns]").astype("datetime64[D]")}
        assert "2024-01-22" not in days and "2024-06-17" not in days and "2024-11-20" not in days  # holidays
        assert "2024-01-20" in days  # the Saturday special session



def test_a_basket_of_files_with_off_session_bars_is_told_of_in_one_line(tmp_path):
    """Fifty files each with a holiday bar gave fifty warnings; more than ``KEPT_LINES`` files make one."""
    names = [f"NSE_EQ_{2001 + k}" for k in range(5)]
    for k, name in enumerate(names):
        # 2024-01-26 (Republic Day) in every file; the last file also has Saturday 2024-01-27
        _bars_file(tmp_path, name, ["2024-01-25", "2024-01-26", *(["2024-01-27"] if k == 4 else []), "2024-01-29"])
    said: list[str] = []
    CsvFeed(CsvFeedConfig(path=tmp_path, allow_off_session=True)).load(
        [n.replace("NSE_EQ_", "NSE_EQ:") for n in names], Interval.DAY_1, warn=said.append)
    assert said == [f"5 files in {tmp_path} (first {tmp_path / 'NSE_EQ_2001.csv'}): kept 6 bar(s), 1 to 2 each, "
                    "on NSE holidays or outside the session (data.allow_off_session)"]


def test_trading_days_without_a_bar_inside_a_file_are_said_in_one_line(tmp_path):
    """Rows deleted from the complete daily sample: the warning counts what was deleted and names the
    runs, first to last; the untouched file says nothing."""
    source = Path(__file__).resolve().parents[2] / "data" / "NSE_EQ_1333.csv"
    said: list[str] = []
    CsvFeed(CsvFeedConfig(path=source.parent)).load(["NSE_EQ:1333"], Interval.DAY_1, warn=said.append)
    assert said == []
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    cut = [r for r in rows if "2020-03-02" <= r[:10] <= "2020-06-30" or r[:10] == "2023-05-02"]
    (tmp_path / source.name).write_text(header + "".join(r for r in rows if r not in cut), encoding="utf-8")
    CsvFeed(CsvFeedConfig(path=tmp_path)).load(["NSE_EQ:1333"], Interval.DAY_1, warn=said.append)
    spring = [r[:10] for r in cut if r[:4] == "2020"]
    assert said == [f"{tmp_path / source.name}: no bar on {len(cut)} trading days inside its range: {spring[0]} to "
                    f"{spring[-1]} ({len(spring)} days), 2023-05-02; indicators and returns run straight across them: "
                    "fill the file with `algo download-data`, or set data.start after the gap"]
