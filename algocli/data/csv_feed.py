"""OHLCV bars from CSV files, validated row by row, and resampled onto the NSE session grid.

A file holds one instrument: a header naming ``timestamp,open,high,low,close,volume`` and
optionally ``oi`` (any order, any case, extra columns ignored), then one bar per line.
Timestamps are ISO dates or date-times; naive ones are IST, others carry their offset.

Every problem that would make a backtest quietly wrong is a ``DataError`` naming the file,
the line as an editor numbers it (header = 1), the column and the fix. The one safe repair,
sorting rows that are merely out of order, happens in memory with a warning. ``CsvFeed`` also
checks each file against the NSE calendar (``algocli.data.sessions``): a bar on a holiday or
outside the instrument's session is refused unless ``data.allow_off_session`` is true.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from algocli.domain.bars import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import (  # noqa: F401 - DAY_NS and SESSION_OPEN_MIN re-exported: the grid moved there
    DAY_NS, MINUTE_NS, SESSION_OPEN_MIN, bucket_starts,
)
from algocli.data.sessions import SessionCheck, instrument_segment
from algocli.data.window import cut
from algocli.errors import DataError, not_utf8

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
DAILY_MINUTES = Interval.DAY_1.minutes
_FIX_ROW = "fix or delete the row"
_UNSAFE_IN_NAME = re.compile(r'[:\s/\\<>"|?*]+')  # Windows forbids these in file names; '/' splits paths
_log = logging.getLogger(__name__)
#: Files up to this size are first read without pandas (``_read_plain``): importing pandas costs a
#: quarter of a second, more than reading a few thousand bars in Python. Larger files, and any
#: small file the plain reader does not accept, go to pandas' C parser and its checks.
PLAIN_READ_MAX_BYTES = 1 << 20
# Naive ISO dates and date-times, the form numpy parses exactly as pandas does.
_PLAIN_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)?")
_EARLIEST, _LATEST = np.datetime64("1678-01-01"), np.datetime64("2261-12-31")


def file_stem(name: str) -> str:
    """The CSV file name (without ``.csv``) of an instrument name.

    ``NSE:HDFCBANK`` → ``NSE_HDFCBANK``, ``NSE:NIFTY 50`` → ``NSE_NIFTY_50``, ``NSE_EQ:1333``
    → ``NSE_EQ_1333``: ':' and spaces (and any other character a file name cannot hold)
    become '_'. ``algo download-data`` writes files under this name and ``CsvFeed`` reads them.
    """
    return _UNSAFE_IN_NAME.sub("_", name.strip())


def load_csv(path: Path, instrument: str, *, warn: Callable[[str], None] | None = None,
             sessions: SessionCheck | None = None, segment: str | None = None, cache: bool = True) -> Bars:
    """Load and validate one instrument's bars from a CSV file.

    A large file's checked columns come from its memory-mapped cache entry (``algocli.data.cache``)
    when it has one; the session check and the time order are checked on every read.

    Args:
        path: The CSV file. It is only read, never rewritten.
        instrument: Instrument id stored on the returned bars, e.g. ``NSE_EQ:1333``.
        warn: Receives one line per safe repair (rows sorted into time order).
            Defaults to this module's logger.
        sessions: Checks the bars against the NSE calendar (``algocli.data.sessions``), None not.
        segment: The instrument's calendar segment for ``sessions`` (``EQ``, ``FNO``, ``CURRENCY``).
        cache: Use the file's cache entry, and write one (``data.cache``).

    Returns:
        Bars sorted by time, ``ts`` in UTC nanoseconds of each bar's start.

    Raises:
        DataError: The file is missing, empty or has a row that cannot be trusted.
    """
    from algocli.data.cache import CsvCache

    path = Path(path)
    names = _read_header(path)
    store = CsvCache(path, enabled=cache)
    if (hit := store.load()) is None:
        ts, cols, oi = _read_columns(path, names)
        hit = store.store(ts, cols, oi)  # the entry just written, mapped: even a first run shares its pages
    if hit is not None:
        ts, cols, oi = hit.ts, hit.cols, hit.oi
    if sessions is not None:
        sessions.check(path, ts, segment)  # before sorting: rows are still the file's lines
    in_order = hit is not None and hit.in_order
    order = None if in_order else _time_order(path, ts, warn or _log.warning)
    if order is not None:
        ts = ts[order]
        cols = {c: v[order] for c, v in cols.items()}
        oi = None if oi is None else oi[order]
    return Bars(instrument, ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"], oi)


def _read_columns(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Parse the file and check its values (``_check_values``): what the cache keeps."""
    plain = _read_plain(path, names)
    ts, cols, oi = plain if plain is not None else _read_with_pandas(path, names)
    if oi is not None and np.isnan(oi).all():
        oi = None  # an oi column left blank throughout is how cash-equity exports look
    _check_values(path, cols, oi)
    return ts, cols, oi


def _read_with_pandas(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Parse the rows with pandas' C parser, raising for a malformed file, cell or timestamp.

    Returns:
        UTC nanoseconds, the price and volume columns, and the ``oi`` column (None without one).
    """
    frame = _read_rows(path, names)
    if len(frame) == 0:
        raise DataError(path, "no data rows; the file has only a header. Re-download it or add bars")
    # A trailing comma after the header's last name adds no real column to expect.
    _check_last_line(path, len(",".join(names).rstrip(",").split(",")))
    ts = _parse_timestamps(path, frame["timestamp"])
    cols = {c: _numeric(path, frame, c) for c in PRICES + ("volume",)}
    oi = _numeric(path, frame, "oi") if "oi" in frame.columns else None
    return ts, cols, oi


def _read_plain(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None] | None:
    """Parse a small, regular file without pandas; None when it is not one (``_read_with_pandas`` then
    reads it and words any problem).

    Regular: at most ``PLAIN_READ_MAX_BYTES``, UTF-8, no quotes, no blank line before the end, every
    row with the header's field count, naive ISO timestamps within 1678-2261 and cells that are numbers.
    The values checks that follow (``_check_values``, ``_time_order``) are the same for both readers.
    """
    try:
        if path.stat().st_size > PLAIN_READ_MAX_BYTES:
            return None
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or '"' in text:
        return None
    rows = [line.split(",") for line in lines]
    if any(len(row) != len(names) for row in rows):
        return None
    columns = list(zip(*rows))
    stamps = [cell.strip() for cell in columns[names.index("timestamp")]]
    if not all(map(_PLAIN_TIME.fullmatch, stamps)):
        return None
    local = np.array(stamps, dtype="datetime64[ns]")
    if ((local < _EARLIEST) | (local > _LATEST)).any():
        return None
    try:
        numbers = {c: np.array(columns[names.index(c)], dtype=np.float64) for c in (*PRICES, "volume", "oi")
                   if c in names}
    except ValueError:  # an empty or non-numeric cell
        return None
    oi = numbers.pop("oi", None)
    return local.view(np.int64) - IST_OFFSET_NS, numbers, oi


def _read_header(path: Path) -> list[str]:
    """Return the normalised column names, or raise if the file or a column is missing."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except FileNotFoundError:
        raise DataError(path, "file not found; check the path, or run `python data/generate_sample.py` "
                              "for sample data") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a CSV file; point at the file itself") from None
    except UnicodeDecodeError:
        raise DataError(path, not_utf8(path)) from None
    if not header.strip():
        raise DataError(path, f"file is empty; it needs the header line '{','.join(REQUIRED)}' "
                              "and one bar per line. Re-download it")
    names = [n.strip().strip('"').strip().lower() for n in header.rstrip("\r\n").split(",")]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; the header must name "
                              f"{','.join(REQUIRED)} (oi optional) but reads '{header.strip()}'", row=1)
    for col in REQUIRED + ("oi",):
        if names.count(col) > 1:
            raise DataError(path, f"column {col} appears {names.count(col)} times in the header; "
                                  "rename or delete the extra one", row=1)
    return names


def _read_rows(path: Path, names: list[str]):
    """Read the data rows with the C parser; row i is line i + 2 of the file."""
    import pandas as pd

    wanted = [n for n in names if n in REQUIRED or n == "oi"]
    # Unused columns get unique placeholder names so duplicates among them cannot clash.
    unique = [n if n in wanted else f"_extra{i}" for i, n in enumerate(names)]
    numeric = {n: np.float64 for n in wanted if n != "timestamp"}
    options = dict(header=None, skiprows=1, names=unique, engine="c", skip_blank_lines=False,
                   skipinitialspace=True, index_col=False)
    if len(wanted) < len(names):
        options["usecols"] = wanted  # costs a fifth of the parse time, so only when needed
    try:
        try:
            frame = pd.read_csv(path, dtype={"timestamp": object, **numeric}, **options)
        except ValueError as exc:
            if isinstance(exc, pd.errors.ParserError):
                raise
            # A non-numeric cell defeats the float hint; read as text so the check can name it.
            frame = pd.read_csv(path, dtype=object, **options)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, str(exc)) from None
    except UnicodeDecodeError:
        raise DataError(path, not_utf8(path)) from None
    # Blank lines at the end of a file are harmless; blank lines in the middle are reported.
    end = len(frame)
    while end and frame.iloc[end - 1].isna().all():
        end -= 1
    return frame.iloc[:end] if end < len(frame) else frame


def _parser_error(path: Path, text: str) -> DataError:
    """Translate the C parser's complaint; its line numbers already count the header."""
    extra = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if extra:
        want, line, got = map(int, extra.groups())
        return DataError(path, f"row has {got} fields but the header has {want}; delete the extra values "
                               "or fix the row", row=line)
    detail = text.strip().splitlines()[0] if text.strip() else "unknown parser error"
    return DataError(path, f"cannot be parsed as CSV ({detail}); look for an unclosed quote")


def _check_last_line(path: Path, n_fields: int) -> None:
    """Raise if the last line is cut short, as an interrupted download leaves it."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 65536))
        tail = fh.read().decode("utf-8", errors="replace")
    lines = tail.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return
    got = len(lines[-1].split(","))
    if got < n_fields:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            line_no = len(fh.read().rstrip().splitlines())  # error path only, so reading it all is fine
        raise DataError(path, f"last line has {got} of {n_fields} fields, as an interrupted download "
                              "leaves it; re-download the file or delete that line", row=line_no)


def _raw_line(path: Path, row: int) -> str:
    """Text of line ``row`` (1-based), read only to word an error message precisely."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if number == row:
                return line.rstrip("\r\n")
    return ""


def _parse_timestamps(path: Path, text) -> np.ndarray:
    """Vectorised ISO parse to UTC nanoseconds; naive times are IST."""
    import pandas as pd

    _raise_on_first(path, text.isna().to_numpy(), lambda row: _missing_cell(path, row, "timestamp"))
    try:
        parsed = pd.to_datetime(text, format="ISO8601")
    except (ValueError, OverflowError):
        parsed = _parse_slowly(path, text)
    naive = parsed.dt.tz is None
    if not naive:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    values = parsed.to_numpy()
    # Nanosecond timestamps only reach 1677-2262; beyond that is a typo, not history.
    outside = (values < np.datetime64("1678-01-01")) | (values > np.datetime64("2261-12-31"))
    _raise_on_first(path, outside, lambda row: DataError(
        path, f"timestamp '{text.iloc[row - 2]}' is outside 1678-2261; fix the year or delete the row", row=row))
    utc = values.astype("datetime64[ns]").view(np.int64)
    return utc - IST_OFFSET_NS if naive else utc


def _parse_slowly(path: Path, text):
    """Find why the fast parse failed and raise, or parse mixed explicit offsets as UTC."""
    import pandas as pd

    aware = text.str.contains(r":\d\d(?:\.\d+)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$", regex=True).to_numpy()
    if aware.any() and not aware.all():
        first = int(np.flatnonzero(aware != aware[0])[0])
        raise DataError(path, f"timestamp '{text.iloc[first]}' {'has' if aware[first] else 'lacks'} a UTC "
                              f"offset but row 2 '{text.iloc[0]}' {'has' if aware[0] else 'lacks'} one; use "
                              "one form for the whole file (times without an offset are read as IST)",
                        row=first + 2)
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(aware[0]))
    bad = parsed.isna().to_numpy()
    if not bad.any():
        return parsed  # every row carries an explicit offset, so UTC is unambiguous
    first = int(np.flatnonzero(bad)[0])
    raise DataError(path, f"timestamp '{text.iloc[first]}' is not a valid date or date-time; write it as "
                          "YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (IST) or fix the row", row=first + 2)


def _numeric(path: Path, frame, column: str) -> np.ndarray:
    """Column as float64; text that is not a number raises with its row."""
    import pandas as pd

    series = frame[column]
    if series.dtype != np.float64:
        series = pd.to_numeric(series, errors="coerce")
        bad = series.isna().to_numpy() & frame[column].notna().to_numpy()
        _raise_on_first(path, bad, lambda row: DataError(
            path, f"{column} is not a number ('{frame[column].iloc[row - 2]}'); {_FIX_ROW}", row=row))
    # Copy: pandas hands out read-only views, and callers may expect ordinary arrays.
    return np.array(series.to_numpy(dtype=np.float64), dtype=np.float64)


def _check_values(path: Path, cols: dict[str, np.ndarray], oi: np.ndarray | None) -> None:
    """Raise for the first row with a missing, non-positive or inconsistent value."""
    o, h, lo, c, v = (cols[k] for k in PRICES + ("volume",))
    checks: list[tuple[np.ndarray, Callable[[int], DataError]]] = []
    for name, arr in list(cols.items()) + ([("oi", oi)] if oi is not None else []):
        checks.append((~np.isfinite(arr), lambda row, name=name: _missing_cell(path, row, name)))
    for name in PRICES:
        arr = cols[name]
        checks.append((arr <= 0, lambda row, name=name, arr=arr: DataError(
            path, f"{name} is {arr[row - 2]:.12g}; prices must be positive, {_FIX_ROW}", row=row)))
    for name, arr in (("volume", v), ("oi", oi)):
        if arr is not None:
            checks.append((arr < 0, lambda row, name=name, arr=arr: DataError(
                path, f"{name} is {arr[row - 2]:.12g}; it cannot be negative, {_FIX_ROW}", row=row)))
    checks.append((h < lo, lambda row: DataError(
        path, f"high {h[row - 2]:.12g} is below low {lo[row - 2]:.12g}; swap them if they were "
              f"entered the wrong way round, or {_FIX_ROW}", row=row)))
    for name, arr in (("open", o), ("close", c)):
        checks.append(((arr < lo) | (arr > h), lambda row, name=name, arr=arr: DataError(
            path, f"{name} {arr[row - 2]:.12g} is outside the bar's range [low {lo[row - 2]:.12g}, "
                  f"high {h[row - 2]:.12g}]; {_FIX_ROW}", row=row)))
    firsts = [(int(m.argmax()), i) for i, (m, _) in enumerate(checks) if m.any()]
    if firsts:
        index, which = min(firsts)
        raise checks[which][1](index + 2)


def _missing_cell(path: Path, row: int, column: str) -> DataError:
    """Word a missing value by what the line really holds: blank, short, empty or NaN."""
    line = _raw_line(path, row)
    if not line.strip():
        return DataError(path, "line is blank; delete it", row=row)
    header = _raw_line(path, 1).lstrip("\ufeff").split(",")
    fields = line.split(",")
    if len(fields) < len(header):
        return DataError(path, f"row has {len(fields)} of {len(header)} fields, so {column} is missing; "
                               f"{_FIX_ROW}", row=row)
    names = [n.strip().strip('"').strip().lower() for n in header]
    cell = fields[names.index(column)].strip()
    what = "empty" if cell in ("", '""') else cell
    return DataError(path, f"{column} is {what}; fill or delete the row", row=row)


def _raise_on_first(path: Path, mask: np.ndarray, error: Callable[[int], DataError]) -> None:
    if mask.any():
        raise error(int(mask.argmax()) + 2)


def _time_order(path: Path, ts: np.ndarray, warn: Callable[[str], None]) -> np.ndarray | None:
    """Return the sorting permutation if rows are out of order; raise on duplicate times."""
    if len(ts) < 2 or bool((ts[1:] > ts[:-1]).all()):
        return None
    order = np.argsort(ts, kind="stable")
    dup = np.flatnonzero(ts[order[1:]] == ts[order[:-1]])
    if dup.size:
        # Stable sort keeps equal times in file order, so the pair with the smallest second
        # row is the first duplicate a reader meets going down the file.
        i = dup[np.argmin(order[dup + 1])]
        first, second = int(order[i]) + 2, int(order[i + 1]) + 2
        raise DataError(path, f"timestamp {_ist(ts[order[i]])} also appears on row {first}; remove one "
                              f"of the duplicate rows {first} and {second}", row=second)
    warn(f"{path}: rows are not in time order; sorted them in memory (the file is unchanged)")
    return order


def _ist(ns: int) -> str:
    local = np.datetime64(int(ns) + IST_OFFSET_NS, "ns").astype("datetime64[s]")
    return str(local).replace("T", " ") + " IST"


def infer_interval_minutes(ts: np.ndarray) -> int | None:
    """Native bar length in minutes, as holidays, weekends and gaps cannot fool it.

    Intraday files: the most common gap between two bars of the same IST day (nights and
    closed days never count). Daily or coarser files (one bar per IST day): the most common
    number of weekdays between bars, so a weekend or a holiday next to a short window does
    not turn daily bars into "2-day" ones. Ties go to the shorter gap.

    Args:
        ts: Sorted bar starts, UTC nanoseconds.

    Returns:
        Minutes per bar; 375 (one NSE session) per trading day for daily or coarser data;
        None when there are fewer than two bars or the gaps are not positive.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) < 2:
        return None
    gaps = np.diff(ts)
    if (gaps <= 0).all():
        return None
    day = (ts + IST_OFFSET_NS) // DAY_NS
    same_day = (day[1:] == day[:-1]) & (gaps > 0)
    if same_day.any():
        seconds = _most_common(gaps[same_day] // 1_000_000_000)  # under 86,400: a linear-time count
        return max(1, round(seconds * 1_000_000_000 / MINUTE_NS))
    dates = day.astype("datetime64[D]")
    weekdays = np.busday_count(dates[:-1], dates[1:])
    weekdays = weekdays[weekdays > 0]
    if not len(weekdays):  # only weekend bars: count calendar days
        weekdays = np.diff(day)[np.diff(day) > 0]
    return DAILY_MINUTES * _most_common(weekdays)


def _most_common(values: np.ndarray) -> int:
    """The most frequent of small non-negative integers (the smallest among equally frequent ones)."""
    return int(np.argmax(np.bincount(np.asarray(values, dtype=np.int64))))  # argmax takes the first


def resample(bars: Bars, interval: Interval, *, source: str | Path | None = None,
             native: int | None = None) -> Bars:
    """Build coarser bars on the NSE grid: intraday buckets from 09:15 IST, days at IST midnight.

    Args:
        bars: Finer bars of one instrument.
        interval: Target interval.
        source: File named in error messages; defaults to the instrument id.
        native: The bars' own length in minutes, when known from more bars than ``bars``
            (the whole file, of which ``bars`` is a date range); inferred from ``bars`` if None.

    Returns:
        ``bars`` itself if already at ``interval``, else new bars (open first, high max,
        low min, close last, volume sum, oi last). Buckets never span two IST dates.

    Raises:
        DataError: The bars are coarser than ``interval`` or do not divide it.
    """
    interval = Interval(interval)
    if native is None:
        native = infer_interval_minutes(bars.ts)
    target = interval.minutes
    if len(bars) == 0 or native == target:
        return bars
    if native is not None and (native > target or (interval is not Interval.DAY_1 and target % native)):
        raise DataError(source or bars.instrument, f"the file has {_describe(native)} bars and cannot be "
                                                   f"turned into {interval.value} bars; supply finer data "
                                                   "(1m divides every interval)")
    if not bool((bars.ts[1:] > bars.ts[:-1]).all()):
        order = np.argsort(bars.ts, kind="stable")
        bars = Bars(bars.instrument, *(None if a is None else a[order] for a in (
            bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, bars.oi)))
    label = bucket_starts(bars.ts, interval)
    starts = np.flatnonzero(np.concatenate(([True], label[1:] != label[:-1])))
    lasts = np.concatenate((starts[1:], [len(label)])) - 1
    oi = None if bars.oi is None else bars.oi[lasts]
    return Bars(bars.instrument, label[starts], bars.open[starts], np.maximum.reduceat(bars.high, starts),
                np.minimum.reduceat(bars.low, starts), bars.close[lasts], np.add.reduceat(bars.volume, starts), oi)


def _describe(minutes: int) -> str:
    days, rest = divmod(minutes, DAILY_MINUTES)
    return f"{minutes}-minute" if rest else ("daily" if days == 1 else f"{days}-day")


class OptionsUniverse(BaseModel):
    """``data.options``: the option contracts a strategy may pick and trade (``ctx.option``).

    Attributes:
        underlying: The underlying's name, e.g. ``NSE:NIFTY 50``; its own file is loaded too.
        path: Folder with the contracts' ``instruments.csv`` and one CSV per contract (named as any
            instrument's file); relative to ``data.path``; default ``data.path`` itself.
        pcr: A recorded PCR series (a paper or live run's ``pcr.csv``) that ``ctx.pcr`` replays instead
            of computing PCR from the bars; relative to ``data.path``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    underlying: str
    path: Path | None = None
    pcr: Path | None = None


class CsvFeedConfig(BaseModel):
    """The ``data:`` section for the CSV feed.

    Attributes:
        path: Folder holding one ``SEGMENT_ID.csv`` per instrument; a relative path is
            resolved against the feed's ``base_dir`` (else the working directory). A run
            definition's ``data.path`` arrives absolute: ``load_run_config`` resolves it
            against the YAML file's folder.
        start: First IST date to keep (inclusive).
        end: Last IST date to keep (inclusive).
        allow_off_session: Keep bars on NSE holidays or outside the instrument's session
            (``algocli.data.sessions``) instead of refusing the file; the run says how many it kept.
        options: The option universe (``OptionsUniverse``); None: no options.
        cache: Keep a memory-mapped copy of each large file's checked columns beside the data
            (``algocli.data.cache``), so later runs skip the parse.
        warmup: Bars of the run's interval before ``start`` that feed the indicators but never
            trade (``algocli.data.window``); needs ``start``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Path("data")
    start: date | None = None
    end: date | None = None
    allow_off_session: bool = False
    options: OptionsUniverse | None = None
    cache: bool = True
    warmup: int = Field(0, ge=0)

    @field_validator("warmup")
    @classmethod
    def _warmup_needs_start(cls, value: int, info: ValidationInfo) -> int:
        if value and info.data.get("start") is None:
            raise ValueError("counts bars before data.start, which is not set; set data.start (the first date "
                             "that trades) or drop data.warmup")
        return value


class CsvFeed:
    """Historical bars from a folder of CSV files, one per instrument."""

    Config = CsvFeedConfig

    def __init__(self, config: CsvFeedConfig, *, base_dir: Path | None = None,
                 sessions: SessionCheck | None = None) -> None:
        self.config = config
        self._sessions = sessions
        root = Path(base_dir) if base_dir is not None else Path.cwd()
        self.directory = config.path if config.path.is_absolute() else root / config.path
        self._used: list[Path] = []
        self.aliases: dict[str, tuple[str, ...]] = {}  # name → other spellings (broker ids), set by the run

    def file_for(self, instrument: str) -> Path:
        """``NSE:NIFTY 50`` → ``<path>/NSE_NIFTY_50.csv``, ``NSE_EQ:1333`` → ``<path>/NSE_EQ_1333.csv``.

        ``file_stem`` first (as ``algo download-data`` names files), then the older rule that
        only replaces ':' (':' is not allowed in Windows file names), for the name and then
        for each of its ``aliases`` (so ``NSE:HDFCBANK`` also finds ``NSE_EQ_1333.csv``); when
        no file exists, the ``file_stem`` path, for the error message.
        """
        first = self.directory / f"{file_stem(instrument)}.csv"
        for name in (instrument, *self.aliases.get(instrument, ())):
            for path in (self.directory / f"{file_stem(name)}.csv", self.directory / f"{name.replace(':', '_')}.csv"):
                if path.is_file():
                    return path
        return first

    def load(self, instruments: list[str], interval: Interval,
             warn: Callable[[str], None] | None = None) -> dict[str, Bars]:
        """Load, date-filter and resample every instrument's file.

        Args:
            instruments: Instrument ids such as ``NSE_EQ:1333``.
            interval: Bar interval the run uses; finer files are resampled to it.
            warn: Receives one line per safe repair made while loading, and once per run the
                calendar's word on years it does not cover and on off-session bars kept.

        Returns:
            Bars per instrument id, in the order given.

        Raises:
            DataError: A file is missing, invalid, too coarse, has a bar on an NSE holiday or
                outside the session (unless ``allow_off_session``), or has no bars in range.
        """
        if self._sessions is None:
            cfg = self.config
            self._sessions = SessionCheck(allow=cfg.allow_off_session, start=cfg.start, end=cfg.end)
        out: dict[str, Bars] = {}
        for instrument in instruments:
            path = self.file_for(instrument)
            if not path.is_file():
                raise DataError(path, f"no data file for {instrument}; expected {path.name} in "
                                      f"{self.directory} (':' and spaces become '_'); check data.path, add the "
                                      "file or run `algo download-data`")
            segment = instrument_segment((instrument, *self.aliases.get(instrument, ())))
            whole = load_csv(path, instrument, warn=warn, sessions=self._sessions, segment=segment,
                             cache=self.config.cache)
            # the file's bar length comes from the whole file: a short date range can hold too few bars
            native = infer_interval_minutes(whole.ts)
            out[instrument] = cut(path, whole, self.config, Interval(interval).value,
                                  lambda b: resample(b, interval, source=path, native=native))
            if path not in self._used:
                self._used.append(path)
        self._sessions.say(warn or _log.warning)
        return out

    def files_used(self) -> list[Path]:
        """Files read by ``load`` so far, in first-use order (for the run record)."""
        return list(self._used)
