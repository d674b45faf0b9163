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
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from algocli.data.cache import build_aside
from algocli.data.csv_parse import PLAIN_READ_MAX_BYTES, _parse_file, _read_columns, _read_header
from algocli.domain.bars import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import (  # noqa: F401 - DAY_NS and SESSION_OPEN_MIN re-exported: the grid moved there
    DAY_NS, MINUTE_NS, SESSION_MINUTES, SESSION_OPEN_MIN, bucket_labels, bucket_starts,
)
from algocli.data.sessions import SessionCheck, instrument_segment
from algocli.data.window import cut
from algocli.domain.strict import NumbersModel
from algocli.errors import DataError

DAILY_MINUTES = Interval.DAY_1.minutes
_UNSAFE_IN_NAME = re.compile(r'[:\s/\\<>"|?*]+')  # Windows forbids these in file names; '/' splits paths
_log = logging.getLogger(__name__)


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


def sparse_native(ts: np.ndarray, inferred: int | None, reference: int) -> int | None:
    """The bar length of a sparse file (an option contract with holes): ``reference`` (the
    underlying's bar length, else the run's) unless the file proves it is of another length.

    A contract downloaded by a rolling series has bars only while it was near the money, so its most
    common gap can be 30 or 180 minutes on 15-minute data. Its bars still start on the reference
    grid, so they are read as reference bars with holes. A file that is really coarser is still
    refused by ``resample``: one whose bars leave the grid, or that fills a whole session at its own
    coarser length on some day (13 half-hour bars from 09:15 are a 30-minute file, not holes).
    """
    if inferred is None or inferred <= reference or reference >= DAILY_MINUTES:
        return inferred  # the reference's or finer: resampled as before
    ts = np.asarray(ts, dtype=np.int64)
    minute = (ts + IST_OFFSET_NS) % DAY_NS // MINUTE_NS
    if not bool(((bucket_labels(ts, reference) == ts) & (minute >= SESSION_OPEN_MIN)).all()):
        return inferred  # bars off the reference grid (a daily file's midnights): the file's own length
    if inferred >= DAILY_MINUTES:
        return reference  # intraday bars, never two a day: holes, not daily data
    day = (ts + IST_OFFSET_NS) // DAY_NS
    _, per_day = np.unique(day, return_counts=True)
    full = -(-SESSION_MINUTES // inferred)  # bars of ``inferred`` minutes from 09:15 to the close
    return inferred if int(per_day.max()) >= full else reference


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


class OptionsUniverse(NumbersModel):
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


class CsvFeedConfig(NumbersModel):
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

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"{value} is before data.start {start}; swap them, or set end on or after start")
        return value

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
        #: Bar length (minutes) of each file loaded, as read from the whole file.
        self.natives: dict[str, int | None] = {}
        #: Set for ``data.options`` contracts: the bar length their sparse files are read at
        #: (``sparse_native``; the underlying's, else the run's). None: every file's own.
        self.sparse_minutes: int | None = None

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
            DataError: A file is missing, invalid, too coarse, has a bar on an NSE holiday or outside
                the session (unless ``allow_off_session``), or has no bars in range.
        """
        if self._sessions is None:
            cfg = self.config
            self._sessions = SessionCheck(allow=cfg.allow_off_session, start=cfg.start, end=cfg.end)
        if self.config.cache:  # big files without an entry: parsed in one child, then mapped below
            build_aside(list(map(self.file_for, instruments)), _parse_file, PLAIN_READ_MAX_BYTES)
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
            if self.sparse_minutes is not None:
                native = sparse_native(whole.ts, native, self.sparse_minutes)
            self.natives[instrument] = native
            out[instrument] = cut(path, whole, self.config, Interval(interval).value,
                                  lambda b: resample(b, interval, source=path, native=native))
            if path not in self._used:
                self._used.append(path)
        self._sessions.say(warn or _log.warning)
        return out

    def files_used(self) -> list[Path]:
        """Files read by ``load`` so far, in first-use order (for the run record)."""
        return list(self._used)
