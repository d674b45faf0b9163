"""Download historical candles from a registered broker into the CSV files the backtester reads.

The sources are the brokers registered in ``algocli.broker_specs``: each spec gives the
native intervals, the download pace and a ``download_source`` (a ``HistorySource``) that
knows the broker's id, span limits and request; the loop below is broker-neutral.

One file per instrument, ``<out>/<file_stem(HRN)>.csv`` (``NSE:NIFTY 50`` →
``NSE_NIFTY_50.csv``), in ``csv_feed.load_csv``'s format: ``timestamp,open,high,low,close,
volume`` (plus ``oi`` for derivatives), timestamps in IST, ``YYYY-MM-DD HH:MM:SS`` for
intraday bars and ``YYYY-MM-DD`` for daily ones, sorted, one row per bar start. The same
bars always give the same bytes.

Per instrument:

1. Read the existing file, if any, to see what is stored (a file with only its header counts as
   empty). Every instrument's file is read, and the output folder checked, before the first
   request: a file that cannot be resumed is a usage error (exit 2), not a failure found after
   the download.
2. Fetch every trading day of the asked range that has no stored bar (the NSE calendar,
   ``quality.NseTradingCalendar``, says which days trade), and the last stored day again unless
   it is complete (so a day stored mid-session is finished). Missing days with no stored day
   between them (weekends and holidays do not separate them) are one stretch, asked for in as
   few requests as the API's span limit allows (for example Dhan intraday 90 days; Upstox one
   month for 1-15 minute candles, a quarter for longer ones, ten years for days); daily
   stretches that fit one request together are asked for together, the few stored days between
   them included. One rate limiter per source paces every request of the run.
3. Merge, oldest stretch first: one bar per start, the new answer wins where it overlaps the
   file. Repeated bar starts in the API's answers and re-fetched bars already in the file are
   both counted as duplicates dropped.
4. Write atomically (temp file, fsync, rename): during the download every ``checkpoint_s``
   seconds and whenever it stops (an error, Ctrl-C or SIGTERM), so a long download that dies
   keeps what it fetched and the next run fetches only the days still missing.
5. Check the result against the NSE session (``algocli.data.quality``).

An interval the source lacks (Dhan has no 3, 10 or 30 minutes) is fetched as 1-minute
candles and resampled onto the 09:15 grid with ``csv_feed.resample``; buckets never span
two days, so resampling each day-aligned request on its own is exact.

Transient errors (429, 5xx, timeouts) are retried by the adapters. Any other failure of one
instrument is recorded, what was fetched is kept, and the others carry on; a refused token
stops the run (every later request would be refused too).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from algocli.broker.ratelimit import RateLimiter
from algocli.broker.spec import BrokerSpec, broker_spec, broker_specs
from algocli.data.csv_feed import file_stem, infer_interval_minutes, load_csv, resample
from algocli.data.feed import FeedAuthError
from algocli.data.history import Bars
from algocli.data.quality import NseTradingCalendar, Quality, TradingCalendar, check, session_grid
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import DAY_NS, ist_date, ist_midnight_ns
from algocli.errors import AlgoError, ConfigError, UsageError
from algocli.instruments.model import Instrument
from algocli.persistence.artifacts import atomic_write_bytes

__all__ = ["NSE_FIRST_DAY", "DownloadResult", "FileResult", "HistorySource", "NoData", "check_range", "default_out_dir",
           "download", "download_limits", "file_stem", "merge_bars", "read_stored", "render_csv", "repeats", "sources",
           "split_range"]

Progress = Callable[[str, int, int], None]  # (instrument, requests done, requests planned)

#: NSE's first trading day in its equity (Capital Market) segment, 3 November 1994: no broker has
#: candles before it ("The Capital Market (Equities) segment commenced operations in November 1994",
#: https://www.iloveindia.com/finance/nse/index.html; NSE's history:
#: https://www.nseindia.com/national-stock-exchange/about-nse-company).
NSE_FIRST_DAY = date(1994, 11, 3)


def sources() -> tuple[str, ...]:
    """The brokers ``--source`` accepts: every one registered in ``algocli.broker_specs``."""
    return tuple(broker_specs())


def download_limits(source: str) -> tuple[tuple[int, float], ...]:
    """The (calls, seconds) windows one download run from ``source`` keeps to (its spec's)."""
    return broker_spec(source, what="--source").download_limits


def parse_interval(interval: Interval | str) -> Interval:
    """``--interval``'s value as an ``Interval``.

    Raises:
        UsageError: Not one of the intervals.
    """
    try:
        return Interval(interval)
    except ValueError:
        raise UsageError(f"--interval {interval!r} is not one of {', '.join(i.value for i in Interval)}") from None


def default_out_dir(interval: Interval | str) -> Path:
    """``data/<interval>``, e.g. ``data/5m``."""
    return Path("data") / Interval(interval).value


def check_range(start: date, end: date, today: date) -> date:
    """Refuse a range no broker can serve; return ``end`` cut at today.

    Raises:
        UsageError: ``start`` before ``NSE_FIRST_DAY`` or after ``today``, or ``end`` before ``start``.
    """
    if start < NSE_FIRST_DAY:
        raise UsageError(f"--from {start} is before {NSE_FIRST_DAY}, NSE's first trading day: there is no data "
                         f"before it; write a later date, e.g. --from {NSE_FIRST_DAY}")
    if start > today:
        raise UsageError(f"--from {start} is after today ({today} IST): there is no data yet")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    return min(end, today)


@dataclass
class FileResult:
    """What happened to one instrument's file.

    Attributes:
        name: The instrument's HRN.
        path: The CSV file.
        error: Why it failed (None if it did not); what was fetched before is still written.
        bars: Bars in the file now (on disk: a write that failed adds none).
        first_ns, last_ns: First and last bar start in the file (UTC ns).
        new_bars: Bars the file did not have before (written to it).
        duplicates: Repeated bar starts in the API's answers, dropped.
        overlap: Fetched bars the file already had (replaced by the new answer).
        requests: Pieces of the range fetched (one request each within the API's span limit; an
            Upstox piece that ends today adds the intraday request). Retries are not counted.
        planned: Pieces planned.
        fetched: The date ranges asked for: each stretch of trading days without a stored bar
            (and the last stored day when it is incomplete), oldest first.
        quality: Gaps against the NSE session over the asked range.
    """

    name: str
    path: Path
    error: str | None = None
    bars: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    new_bars: int = 0
    duplicates: int = 0
    overlap: int = 0
    requests: int = 0
    planned: int = 0
    fetched: list[tuple[date, date]] = field(default_factory=list)
    quality: Quality | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def dropped(self) -> int:
        """Duplicates dropped: repeated in the answers, or already stored."""
        return self.duplicates + self.overlap


@dataclass
class DownloadResult:
    """The whole run: one ``FileResult`` per instrument, in the order asked.

    Attributes:
        aborted: A refused token that stopped the run (the CLI re-raises it), else None.
        interrupted: Ctrl-C or SIGTERM stopped the run; ``files`` holds the instruments done and
            the one in progress (what it fetched is written), not those never started.
    """

    source: str
    interval: Interval
    out_dir: Path
    files: list[FileResult] = field(default_factory=list)
    aborted: FeedAuthError | None = None
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(1 for f in self.files if not f.ok)

    @property
    def new_bars(self) -> int:
        """Bars written that the files did not have before."""
        return sum(f.new_bars for f in self.files)

    def summary_line(self) -> str:
        """``download-data: 2 instruments, 2 ok, 0 failed, 9,840 new bars, 0 duplicates, 3 gaps -> data/5m``."""
        n = len(self.files)
        new = self.new_bars
        dropped = sum(f.dropped for f in self.files)
        gaps = sum(len(f.quality.gaps) for f in self.files if f.quality is not None)
        return (f"download-data: {n} instrument{'s' if n != 1 else ''}, {n - self.failed} ok, {self.failed} failed, "
                f"{new:,} new bar{'s' if new != 1 else ''}, {dropped:,} duplicate{'s' if dropped != 1 else ''}, "
                f"{gaps:,} gap{'s' if gaps != 1 else ''} -> {self.out_dir}")


# --- CSV ------------------------------------------------------------------------------------

def _number_format(values: np.ndarray, least: int) -> str:
    """The shortest of 0 (whole numbers only), 2, 4, 6 or 8 decimals that keeps every value; else 12 digits."""
    if not len(values):
        return f"%.{least}f"
    if least == 0 and bool((values == np.rint(values)).all()):
        return "%.0f"
    for decimals in (2, 4, 6, 8):
        scaled = values * 10.0 ** decimals
        if bool((np.abs(scaled - np.rint(scaled)) <= 1e-6).all()):
            return f"%.{decimals}f"
    return "%.12g"


def render_csv(bars: Bars, *, daily: bool) -> bytes:
    """``bars`` as ``load_csv`` reads them: IST times, prices to 2 decimals (more only if needed)."""
    local = (np.asarray(bars.ts, dtype=np.int64) + IST_OFFSET_NS).astype("datetime64[ns]")
    stamps = np.datetime_as_string(local, unit="D" if daily else "s")
    if not daily:
        stamps = np.char.replace(stamps, "T", " ")
    cols = [bars.open, bars.high, bars.low, bars.close, bars.volume] + ([bars.oi] if bars.oi is not None else [])
    # One format for all four prices and one per other column, so the bytes depend only on the values.
    price = _number_format(np.concatenate([np.asarray(c, dtype=np.float64) for c in cols[:4]]), 2)
    formats = [price] * 4 + [_number_format(np.asarray(c, dtype=np.float64), 0) for c in cols[4:]]
    header = "timestamp,open,high,low,close,volume" + (",oi" if bars.oi is not None else "") + "\n"
    row = "%s," + ",".join(formats) + "\n"
    rows = zip(stamps.tolist(), *(np.asarray(c, dtype=np.float64).tolist() for c in cols))
    return (header + "".join(map(row.__mod__, rows))).encode("ascii")


def merge_bars(old: Bars | None, new: Bars) -> tuple[Bars, int]:
    """One bar per start from ``old`` and ``new`` (``new`` wins), sorted; and how many of ``new`` were in ``old``."""
    if old is None or not len(old):
        return new, 0
    if not len(new):
        return old, 0
    overlap = int(np.isin(new.ts, old.ts).sum())
    with_oi = old.oi is not None or new.oi is not None
    names = ("ts", "open", "high", "low", "close", "volume")
    cols = {n: np.concatenate([getattr(old, n), getattr(new, n)]) for n in names}
    cols["oi"] = np.concatenate([b.oi if b.oi is not None else np.zeros(len(b)) for b in (old, new)])
    order = np.argsort(cols["ts"], kind="stable")  # equal starts keep old before new
    ts = cols["ts"][order]
    keep = np.ones(len(ts), dtype=bool)
    keep[:-1] = ts[1:] != ts[:-1]  # the last of equal starts: the new one
    picked = order[keep]
    return Bars(old.instrument, ts[keep].copy(), *(cols[n][picked] for n in names[1:]),
                cols["oi"][picked] if with_oi else None), overlap


# --- sources --------------------------------------------------------------------------------

def repeats(keys: list) -> int:
    """How many of ``keys`` repeat an earlier one (bar starts an answer listed twice)."""
    return len(keys) - len(set(keys))


class HistorySource:
    """A broker's historical API: which id it needs, how it splits a range, how one piece is fetched.

    Each broker's ``download_source(session, settings, limiter, today, options)`` (named in
    its ``BrokerSpec``) returns one; ``client.duplicates`` counts repeated bar starts in
    the answers.
    """

    name = ""

    def __init__(self, client, today: date) -> None:
        self.client = client
        self.today = today

    @property
    def duplicates(self) -> int:
        return self.client.duplicates

    def check_listed(self, inst: Instrument) -> None:
        """Raise ``ConfigError`` unless this broker lists ``inst`` (naming the brokers that do)."""
        if broker_spec(self.name).instrument_id(inst):
            return
        others = [s.name for s in broker_specs().values() if s.name != self.name and s.instrument_id(inst)]
        hint = f"; download it with --source {' or '.join(others)}" if others else ""
        raise ConfigError(f"instrument {inst.hrn!r} is not listed by {broker_spec(self.name).title}{hint}")

    def pieces(self, interval: Interval, start: date, end: date) -> list[tuple[date, date]]:
        raise NotImplementedError

    async def fetch(self, inst: Instrument, interval: Interval, start: date, end: date) -> Bars:
        raise NotImplementedError


def split_range(start: date, end: date, step: Callable[[date], date]) -> list[tuple[date, date]]:
    """``[start, end]`` in consecutive pieces; ``step(day)`` is the first day after the piece starting ``day``."""
    out, day = [], start
    while day <= end:
        nxt = step(day)
        out.append((day, min(nxt - timedelta(days=1), end)))
        day = nxt
    return out


class NoData(AlgoError):
    """The source said it has no data for this piece (Dhan ``DH-907``)."""


# --- the engine -----------------------------------------------------------------------------

def _plan(stored: Bars | None, interval: Interval, start: date, end: date, today: date,
          calendar: TradingCalendar) -> list[tuple[date, date]]:
    """The stretches of ``[start, end]`` to fetch, oldest first.

    Nothing stored: the whole range. Else each stretch between two stored days (or a stored day
    and an end of the range) that holds a trading day without a bar, or the last stored day when
    it is incomplete (not over yet, or its last grid bar missing); weekends and holidays inside a
    stretch are asked for with it, so one request covers the whole hole.
    """
    if stored is None or not len(stored):
        return [(start, end)]
    ts = np.asarray(stored.ts, dtype=np.int64)
    inside = ts[(ts >= ist_midnight_ns(start)) & (ts < ist_midnight_ns(end + timedelta(days=1)))]
    epoch = date(1970, 1, 1)
    have = [epoch + timedelta(days=int(d)) for d in np.unique((inside + IST_OFFSET_NS) // DAY_NS)]
    need = set(calendar.sessions(start, end)) - set(have)
    last = ist_date(int(ts[-1]))
    last_grid = ist_midnight_ns(last) + int(session_grid(interval)[-1])
    if start <= last <= end and not (last < today and (interval is Interval.DAY_1 or int(ts[-1]) >= last_grid)):
        need.add(last)  # stored mid-session: finish it
        have.remove(last)
    need_sorted = sorted(need)
    bounds = [start - timedelta(days=1), *have, end + timedelta(days=1)]
    out = []
    for before, after in zip(bounds, bounds[1:]):
        lo, hi = before + timedelta(days=1), after - timedelta(days=1)
        k = bisect_left(need_sorted, lo)
        if lo <= hi and k < len(need_sorted) and need_sorted[k] <= hi:
            out.append((lo, hi))
    return out


def _batch(stretches: list[tuple[date, date]], fits: Callable[[date, date], bool]) -> list[tuple[date, date]]:
    """Join consecutive stretches, and the stored days between, while ``fits(first, last)`` (one request).
    For daily bars: before the years the NSE calendar covers, each holiday is a hole, and a long
    history would cost a request per holiday on every run; the days between are a few rows."""
    out: list[tuple[date, date]] = []
    for lo, hi in stretches:
        if out and fits(out[-1][0], hi):
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def read_stored(path: Path, name: str, interval: Interval | None = None) -> tuple[Bars | None, bytes | None]:
    """The bars a download resumes from and the file's bytes: no bars for a missing file or one with only
    its header (the download rewrites it).

    Raises:
        DataError: A row of the file cannot be trusted (the file, row and fix are named).
        UsageError: The file holds bars of another interval than ``interval``.
    """
    path = Path(path)
    if not path.is_file():
        return None, None
    raw = path.read_bytes()
    if not raw.partition(b"\n")[2].strip():
        return None, raw
    bars = load_csv(path, name)
    minutes = infer_interval_minutes(bars.ts)
    if interval is not None and minutes is not None and minutes != interval.minutes:
        have = "daily" if minutes == Interval.DAY_1.minutes else f"{minutes}-minute"
        raise UsageError(f"{path} holds {have} bars, not {interval.value}; download into another folder (--out) "
                         "or move the file away")
    return bars, raw


def _write_error(path: Path, exc: OSError) -> str:
    return f"cannot write {path}: {exc.strerror or exc}; free disk space or fix the folder's permissions, then rerun"


class _File:
    """One instrument's file during its download: the bars merged so far and what is on disk."""

    def __init__(self, path: Path, stored: Bars | None, raw: bytes | None, daily: bool) -> None:
        self.path, self.daily = path, daily
        self.before = len(stored) if stored is not None else 0
        self.merged = self.on_disk = stored
        self.written = raw

    def add(self, bars: Bars) -> int:
        """Merge ``bars`` in; return how many of them were stored already."""
        self.merged, overlap = merge_bars(self.merged, bars)
        return overlap

    def save(self) -> None:
        """Write the merged bars atomically, unless the file already holds exactly these bytes."""
        if self.merged is None or not len(self.merged):
            return  # never leave a header-only file
        data = render_csv(self.merged, daily=self.daily)
        if data != self.written:
            atomic_write_bytes(self.path, data)
            self.written = data
        self.on_disk = self.merged


class _Downloader:
    def __init__(self, source: HistorySource, native: frozenset[str], interval: Interval, start: date, end: date,
                 out_dir: Path, *, progress: Progress | None, checkpoint_s: float,
                 calendar: TradingCalendar, now_ns: int) -> None:
        self.source = source
        self.interval = interval
        self.fetch_interval = interval if interval.value in native else Interval.MINUTE_1
        self.start, self.end = start, end
        self.out_dir = out_dir
        self.progress = progress or (lambda name, done, total: None)
        self.checkpoint_s = checkpoint_s
        self.calendar = calendar
        self.now_ns = now_ns
        self.aborted: FeedAuthError | None = None
        self.current: FileResult | None = None  # the instrument being downloaded

    async def one(self, inst: Instrument) -> FileResult:
        """Download one instrument; a failure is recorded in the result (a refused token also in ``aborted``);
        cancelled (Ctrl-C, SIGTERM), it writes what it fetched, counts it in ``current`` and re-raises."""
        res = self.current = FileResult(inst.hrn, self.out_dir / f"{file_stem(inst.hrn)}.csv")
        try:
            stored, raw = read_stored(res.path, inst.hrn, self.interval)
        except AlgoError as exc:  # changed since it was checked before the run
            res.error = f"cannot resume from the existing file: {exc}"
            self.progress(inst.hrn, 0, 0)
            return res
        res.fetched = _plan(stored, self.interval, self.start, self.end, self.source.today, self.calendar)
        if self.interval is Interval.DAY_1:  # cheap to fetch again: one request over several holes beats one each
            res.fetched = _batch(res.fetched, lambda lo, hi: len(self.source.pieces(self.fetch_interval, lo, hi)) <= 1)
        pieces = [piece for lo, hi in res.fetched for piece in self.source.pieces(self.fetch_interval, lo, hi)]
        res.planned = len(pieces)
        self.progress(inst.hrn, 0, len(pieces))
        file = _File(res.path, stored, raw, daily=self.interval is Interval.DAY_1)
        last_write, dups_before, no_data = time.monotonic(), self.source.duplicates, None
        try:
            for lo, hi in pieces:
                try:
                    bars = await self.source.fetch(inst, self.fetch_interval, lo, hi)
                except NoData as exc:
                    no_data = no_data or exc
                    bars = None
                res.requests += 1
                if bars is not None and len(bars):
                    if self.fetch_interval is not self.interval:
                        bars = resample(bars, self.interval)
                    res.overlap += file.add(bars)
                self.progress(inst.hrn, res.requests, len(pieces))
                if time.monotonic() - last_write >= self.checkpoint_s:
                    file.save()
                    last_write = time.monotonic()
            if no_data is not None and (file.merged is None or not len(file.merged)):
                raise no_data  # every piece said "no data" and nothing is stored: most likely a wrong id
        except AlgoError as exc:
            res.error = str(exc)
            if isinstance(exc, FeedAuthError):
                self.aborted = exc
        except OSError as exc:  # a checkpoint could not be written
            res.error = _write_error(res.path, exc)
        except BaseException:  # Ctrl-C or SIGTERM: keep what was fetched, then stop
            self._finish(res, inst, file, dups_before, checked=False)
            raise
        self._finish(res, inst, file, dups_before)
        return res

    def _finish(self, res: FileResult, inst: Instrument, file: _File, dups_before: int, checked: bool = True) -> None:
        """Write the file and count what is on disk; ``checked``: also check its gaps."""
        try:
            file.save()
        except OSError as exc:
            res.error = res.error or _write_error(res.path, exc)
        res.duplicates = self.source.duplicates - dups_before
        disk = file.on_disk
        if disk is not None and len(disk):
            res.bars, res.first_ns, res.last_ns = len(disk), int(disk.ts[0]), int(disk.ts[-1])
            res.new_bars = len(disk) - file.before
        if not checked:
            return
        if disk is not None and len(disk):
            res.quality = check(disk, self.interval, self.start, self.end, calendar=self.calendar, now_ns=self.now_ns)
        elif res.ok:  # nothing at all in the range: every trading day is a gap
            empty = np.zeros(0)
            res.quality = check(Bars(inst.hrn, np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty),
                                self.interval, self.start, self.end, calendar=self.calendar, now_ns=self.now_ns)


async def download(names: Sequence[str], *, resolve: Callable[[str], Instrument], source: str,
                   interval: Interval | str, start: date, end: date, out_dir: Path | None = None,
                   settings=None, session=None, progress: Progress | None = None, today: date | None = None,
                   now_ns: int | None = None, limiter: RateLimiter | None = None, checkpoint_s: float = 30.0,
                   calendar: TradingCalendar | None = None, report: Callable[[DownloadResult], None] | None = None,
                   **client_options) -> DownloadResult:
    """Bring each instrument's CSV file up to date for ``[start, end]``.

    Args:
        names: Instrument names as typed (HRNs such as ``NSE:HDFCBANK``, or broker ids).
        resolve: Name → ``Instrument`` (the instrument master's ``resolve``); raises
            ``ConfigError`` for an unknown name.
        source: A registered broker (``dhan``, ``upstox``, ...; see ``sources()``).
        interval: Bar interval; one the source lacks is built from 1-minute bars.
        start, end: IST dates, both included; ``end`` after today means today.
        out_dir: Folder of the CSV files; default ``data/<interval>``.
        settings: The source's settings (``DhanSettings``, ``UpstoxSettings``, ...); default
            read from the environment and .env.
        session: An ``aiohttp.ClientSession`` to use (not closed); default a new one.
        progress: Called ``(name, requests done, requests planned)`` as requests complete.
        today: Today's IST date (tests); default from the clock.
        now_ns: The current time for the gap check (bars not finished yet are not expected).
        limiter: Paces every request of the run; default one built from ``download_limits(source)``.
        checkpoint_s: Least seconds between two writes of a file during its download.
        calendar: Trading days, for what is missing and for the gap check; default the NSE
            calendar (``NseTradingCalendar``).
        report: Called before the first request with the ``DownloadResult`` then filled in: a
            caller still has it when the run is cancelled.
        **client_options: ``DhanRest``/``UpstoxRest`` options (``retries``, ``backoff``,
            ``timeout``, Dhan's ``pace``).

    Returns:
        One ``FileResult`` per distinct instrument; ``aborted`` is set if the token was refused.

    Raises:
        UsageError: Bad source, interval or dates, an output folder that cannot be written, a file
            there that cannot be resumed (``DataError``: a bad row), all before any request.
        ConfigError: An unknown instrument, or one the source does not list (before any request).
        asyncio.CancelledError: Cancelled, after writing what was fetched (``report``'s result says).
    """
    from algocli.persistence.output import check_output_dir

    spec = _source_spec(source)
    ival = parse_interval(interval)
    now_ns = time.time_ns() if now_ns is None else now_ns
    today = today or ist_date(now_ns)
    end = check_range(start, end, today)
    out = Path(out_dir) if out_dir is not None else default_out_dir(ival)
    instruments: dict[str, Instrument] = {}
    for name in names:  # every name first, so a typo stops the run before any request
        inst = resolve(name)
        instruments.setdefault(inst.hrn, inst)
    check_output_dir(out, fix="pass another --out")
    for inst in instruments.values():  # a file that cannot be resumed is said now, not after the download
        read_stored(out / f"{file_stem(inst.hrn)}.csv", inst.hrn, ival)
    result = DownloadResult(source, ival, out)
    if report is not None:
        report(result)
    settings = spec.make_settings() if settings is None else settings
    limiter = limiter or RateLimiter(spec.download_limits)
    async with run_session(session) as session:
        src = spec.load(spec.download_source)(session, settings, limiter, today, client_options)
        for inst in instruments.values():
            src.check_listed(inst)
        engine = _Downloader(src, spec.native_intervals, ival, start, end, out, progress=progress,
                             checkpoint_s=checkpoint_s, calendar=calendar or NseTradingCalendar(), now_ns=now_ns)
        try:
            for inst in instruments.values():
                if engine.aborted is not None:  # every later request would be refused as well
                    result.files.append(FileResult(inst.hrn, out / f"{file_stem(inst.hrn)}.csv",
                                                   error="not tried: the token was refused"))
                    continue
                result.files.append(await engine.one(inst))
        except (asyncio.CancelledError, KeyboardInterrupt):
            result.interrupted = True
            if engine.current is not None and all(f is not engine.current for f in result.files):
                result.files.append(engine.current)
            raise
        result.aborted = engine.aborted
    return result


@asynccontextmanager
async def run_session(session=None):
    """``session`` as it is, or a new ``aiohttp.ClientSession`` closed when the block ends."""
    if session is not None:
        yield session
        return
    import aiohttp

    async with aiohttp.ClientSession() as own:
        yield own


def _source_spec(source: str) -> BrokerSpec:
    try:
        return broker_spec(source, what="--source")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def run_download(names: Sequence[str], **kwargs) -> DownloadResult:
    """``download`` on a fresh event loop."""
    return asyncio.run(download(names, **kwargs))
