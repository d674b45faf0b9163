"""``algo download-data --options``: historical option candles and PCR into a folder a backtest reads.

The folder (default ``data/options/<underlying file stem>``) gets what ``data.options``
needs: the underlying's candles (``download``, the same file as a plain download), one CSV per
real contract (``timestamp,open,high,low,close,volume,oi``, named by the source broker's id
of the contract as elsewhere in ``data/``, else by its HRN), an ``instruments.csv`` with one
row per file, and with ``--pcr`` a ``pcr.csv`` (``algocli.options.pcr.PCR_COLUMNS``).
Running it again merges into what is there (one bar per start, the new answer wins); a row of
``instruments.csv`` already there keeps its values (a lot size the user set stays), only a
placeholder lot size of 1 yields to a real one the broker's list knows, and new contracts are
added. The folder and the files already in it are checked before the first request. Each
contract's file is written as its candles arrive (``ContractFiles``), so a killed run keeps them.

**Dhan** (``POST /v2/charts/rollingoption``) serves *rolling* series: "the ``ATM+k`` call of
the current (or next, far) weekly or monthly expiry", which silently changes contract in two
ways. At each expiry the current contract becomes the next one; and ATM follows the spot, so
``ATM+2`` is a different strike whenever the spot crosses a strike. Each candle carries the
real strike it was taken from (``strike``), and its contract's expiry follows from the day
and the expiry code (``algocli.data.expiries``: the expiring contract is current through its
expiry day's close). So every candle of every asked ``(offset, side)`` series is filed under
the contract ``(expiry, strike, side)`` it came from, and a real contract's series is the
**union** of the candles where that strike was at any of the asked offsets. It has holes
where the strike was outside the asked window: an outer strike's file starts and stops as
the spot moves, which is what Dhan has, not a download fault. Two offsets never name the same
strike at one time, so a repeated bar start means a repeated answer (counted, first kept).
``--expiry DATE`` keeps only that expiry's contract: each day is asked with the code that
names DATE on that day (0 in its own week or month, 1 before that, 2 before that).

**Upstox** (``/v2/expired-instruments/...``, Upstox Plus) serves exact contracts, so there
is nothing to split: the expiry's contracts are listed, ATM at each of the underlying's
candles is the listed strike nearest its close (the lower one on a tie, as
``algocli.options.pcr.atm_strike``), and every contract that was within ``--strikes`` of ATM at
some candle is downloaded whole over the range (up to its expiry).

Historical PCR comes from Upstox's ``GET /v2/market/pcr`` only (Dhan has no such endpoint):
one row per bucket (the interval's minutes, 60 for daily) per trading day.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from algocli.data.csv_feed import file_stem, load_csv
from algocli.data.download import merge_bars, read_stored, render_csv
from algocli.data.history import Bars
from algocli.domain.hrn import derivative_hrn
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.errors import AlgoError, UsageError
from algocli.instruments.model import Instrument
from algocli.persistence.artifacts import atomic_write_bytes

__all__ = ["ContractFiles", "OptionsResult", "RollingSplit", "StrikeWindow", "contract_file", "expiry_spec",
           "list_contracts", "split_rolling", "strike_window", "unknown_lots", "write_pcr"]

_DAY_NS = 86_400 * 1_000_000_000
_OFFSET = re.compile(r"^ATM(?:([+-])(\d+))?$")
_COLS = ("open", "high", "low", "close", "volume", "oi")


@dataclass(frozen=True, slots=True)
class StrikeWindow:
    """ATM offsets ``lo..hi`` (both included): ``ATM-5:ATM+5`` is ``(-5, 5)``."""

    lo: int
    hi: int

    @property
    def offsets(self) -> range:
        return range(self.lo, self.hi + 1)


def _offset(text: str) -> int:
    m = _OFFSET.match(text.strip().upper().replace(" ", ""))
    if m is None:
        raise UsageError(f"--strikes {text!r}: write ATM, ATM+k or ATM-k, or a range such as ATM-5:ATM+5")
    return 0 if m[1] is None else int(m[2]) * (1 if m[1] == "+" else -1)


def strike_window(text: str) -> StrikeWindow:
    """``ATM-5:ATM+5``, ``ATM``, ``ATM+2`` → ``StrikeWindow``.

    Raises:
        UsageError: Not that form, or the low end above the high one.
    """
    lo, _, hi = text.partition(":")
    window = StrikeWindow(_offset(lo), _offset(hi) if hi else _offset(lo))
    if window.lo > window.hi:
        raise UsageError(f"--strikes {text!r}: the first offset is above the second; write e.g. ATM-5:ATM+5")
    return window


def expiry_spec(text: str) -> str | date:
    """``current``, ``next``, ``far`` or a ``YYYY-MM-DD`` date.

    Raises:
        UsageError: Anything else.
    """
    key = text.strip().lower()
    if key in ("current", "next", "far"):
        return key
    try:
        return date.fromisoformat(key)
    except ValueError:
        raise UsageError(f"--expiry {text!r} is not current, next, far or a date YYYY-MM-DD") from None


@dataclass
class OptionsResult:
    """What an options download wrote.

    Attributes:
        contracts: Contract → bars in its file now.
        new_bars: Bars the files did not have before.
        duplicates: Repeated bar starts in the answers, dropped.
        pcr_rows: Rows in ``pcr.csv`` now (None without ``--pcr``).
        requests: Requests sent for options and PCR (the underlying's are its own).
        error: Why the download stopped early (what was fetched is written).
        notes: Things the user should know (lot sizes guessed, days skipped).
        under: The underlying's ``DownloadResult`` (None without candles, or before it started).
    """

    source: str
    underlying: str
    out_dir: Path
    contracts: dict[str, int] = field(default_factory=dict)
    new_bars: int = 0
    duplicates: int = 0
    pcr_rows: int | None = None
    requests: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    under: object | None = None

    @property
    def saved_bars(self) -> int:
        """New bars written: the contracts' and the underlying's."""
        return self.new_bars + (self.under.new_bars if self.under is not None else 0)

    def summary_line(self) -> str:
        """``download-data: NSE:NIFTY 50 options, 44 contracts, 9,840 new bars (250 of the underlying),
        0 duplicates -> data/...``: new bars count the underlying's, as the interrupted line does."""
        n, new = len(self.contracts), self.saved_bars
        under = self.under.new_bars if self.under is not None else 0
        pcr = "" if self.pcr_rows is None else f", {self.pcr_rows:,} PCR row{'s' if self.pcr_rows != 1 else ''}"
        return (f"download-data: {self.underlying} options, {n:,} contract{'s' if n != 1 else ''}, "
                f"{new:,} new bar{'s' if new != 1 else ''} ({under:,} of the underlying), {self.duplicates:,} "
                f"duplicate{'s' if self.duplicates != 1 else ''}{pcr}{', failed' if self.error else ''} -> "
                f"{self.out_dir}")


# --- splitting Dhan's rolling series ------------------------------------------------------

def _ist_days(ts: np.ndarray) -> np.ndarray:
    return (ts + IST_OFFSET_NS) // _DAY_NS


class RollingSplit:
    """Dhan's rolling answers filed under the real contracts they came from, one answer at a time
    (so each contract's file can be written as its candles arrive).

    Args:
        expiry_of: ``(IST day, code)`` → the expiry that code names on that day.
        keep: Which expiries to keep (``--expiry DATE`` keeps one).
    """

    def __init__(self, expiry_of: Callable[[date, int], date], keep: Callable[[date], bool] = lambda e: True):
        self.expiry_of, self.keep = expiry_of, keep
        self.parts: dict[tuple[date, float, str], list[dict[str, np.ndarray]]] = {}

    def add(self, cols: dict[str, np.ndarray], side: str, code: int) -> list[tuple[date, float, str]]:
        """File one answer (columns as ``rolling.parse`` gives); return the contracts it added bars to."""
        if not len(cols["ts"]):
            return []
        epoch = date(1970, 1, 1)
        days = _ist_days(cols["ts"])
        expiry_by_day = {d: self.expiry_of(epoch + timedelta(days=int(d)), code) for d in np.unique(days)}
        expiries = np.array([expiry_by_day[d] for d in days.tolist()], dtype=object)
        strikes = cols["strike"]
        touched = []
        for expiry, strike in sorted({(e, float(s)) for e, s in zip(expiries.tolist(), strikes.tolist())}):
            if not self.keep(expiry):
                continue
            mask = (expiries == expiry) & (strikes == strike)
            self.parts.setdefault((expiry, strike, side), []).append({k: cols[k][mask] for k in ("ts", *_COLS)})
            touched.append((expiry, strike, side))
        return touched

    def columns(self, key: tuple[date, float, str]) -> tuple[dict[str, np.ndarray], int]:
        """The contract's columns ``ts, open .. oi`` sorted by bar start, one bar per start (the first
        answer's), and how many repeated starts were dropped."""
        chunks = self.parts[key]
        cols = {k: np.concatenate([c[k] for c in chunks]) for k in ("ts", *_COLS)}
        order = np.argsort(cols["ts"], kind="stable")  # equal starts keep the first answer's bar first
        ts = cols["ts"][order]
        first = np.ones(len(ts), dtype=bool)
        first[1:] = ts[1:] != ts[:-1]
        return {k: v[order][first] for k, v in cols.items()}, int((~first).sum())


def split_rolling(answers: list[tuple[dict[str, np.ndarray], str, int]],
                  expiry_of: Callable[[date, int], date], keep: Callable[[date], bool] = lambda e: True,
                  ) -> tuple[dict[tuple[date, float, str], dict[str, np.ndarray]], int]:
    """File every candle of Dhan's rolling answers under the real contract it came from.

    Args:
        answers: ``(columns, side, expiry code)`` per answer; columns as ``rolling.parse`` gives.
        expiry_of: ``(IST day, code)`` → the expiry that code names on that day.
        keep: Which expiries to keep (``--expiry DATE`` keeps one).

    Returns:
        ``(expiry, strike, side)`` → columns ``ts, open .. oi`` sorted by bar start, one bar per
        start (the first answer's); and how many repeated starts were dropped.
    """
    split = RollingSplit(expiry_of, keep)
    for cols, side, code in answers:
        split.add(cols, side, code)
    out, dropped = {}, 0
    for key in split.parts:
        out[key], n = split.columns(key)
        dropped += n
    return out, dropped


def contract_instrument(symbol: str, expiry: date, strike: float, side: str,
                        lookup: Callable[[str], Instrument | None]) -> tuple[Instrument, bool]:
    """The contract's row: the instrument master's when it knows the HRN, else one built from the
    name with the lot size of ``algocli.market.lots`` (the index's lot history by expiry); the
    second value is False when neither knows the lot (then written as 1, and ``unknown_lots`` warns)."""
    from algocli.data.expiries import expiry_days
    from algocli.market.lots import lot_size

    hrn = derivative_hrn("NSE", symbol, expiry, side, strike)
    known = lookup(hrn)
    if known is not None:
        return known, True
    try:
        cycle = "month" if expiry_days("month", expiry, expiry, symbol=symbol) == [expiry] else "week"
    except UsageError:
        cycle = None
    lot = lot_size(symbol, expiry, cycle)
    return Instrument(hrn, exchange="NSE", kind=side, symbol=symbol, name=symbol, expiry=expiry, strike=strike,
                      lot_size=lot or 1, dhan_instrument="OPTIDX"), lot is not None


def unknown_lots(names: list[str]) -> str:
    """The one-line warning for contracts whose lot size nobody knows (written as 1)."""
    from algocli.market.lots import user_lot_file

    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"{len(names)} contract(s) have no known lot size ({shown}): written as lot 1, so a backtest's lot "
            f"checks and quantities will be off; set lot_size in instruments.csv, or add the index's lot for "
            f"these expiries to {user_lot_file()} and run the same command")


# --- writing ------------------------------------------------------------------------------

def contract_file(out: Path, inst: Instrument, source: str) -> Path:
    """``<out>/<source broker's id as a file stem>.csv``, or the HRN's stem when it has none."""
    ident = {"dhan": inst.dhan_id, "upstox": inst.upstox_key}.get(source) or inst.hrn
    return out / f"{file_stem(ident)}.csv"


class ContractFiles:
    """Each contract's file written (atomically) as its bars arrive, and ``instruments.csv`` as
    contracts become known, so a download killed outright (``kill -9``, out of memory) keeps what
    it fetched; the same command resumes and ends with the files an uninterrupted run writes.

    A contract's file is always its bars before this run merged with every bar this run has
    fetched for it (``save`` gets the contract's whole columns so far), so rewriting it as more
    arrive gives the same file as writing it once at the end.
    """

    def __init__(self, out: Path, source: str, daily: bool, result: OptionsResult, underlying: Instrument):
        self.out, self.source, self.daily, self.result, self.underlying = out, source, daily, result, underlying
        self.before: dict[str, Bars | None] = {}
        self.added: dict[str, int] = {}
        self.listed: set[str] = set()

    def save(self, inst: Instrument, cols: dict[str, np.ndarray]) -> None:
        """Write ``inst``'s file with ``cols`` (all its bars fetched so far) and list it.

        Raises:
            OptionsError: The folder cannot be written (what was written stays).
        """
        if not len(cols["ts"]):
            return
        try:
            self._save(inst, cols)
        except OSError as exc:
            raise OptionsError(f"cannot write in {self.out}: {exc.strerror or exc}; free disk space or fix the "
                               "folder's permissions, then run the same command") from None

    def _save(self, inst: Instrument, cols: dict[str, np.ndarray]) -> None:
        from algocli.instruments.master import merge
        from algocli.instruments.table import read_instruments, write_instruments

        self.out.mkdir(parents=True, exist_ok=True)
        path = contract_file(self.out, inst, self.source)
        if inst.hrn not in self.before:
            self.before[inst.hrn] = read_stored(path, inst.hrn)[0]
        old = self.before[inst.hrn]
        new = Bars(inst.hrn, cols["ts"].astype(np.int64), *(np.asarray(cols[k], dtype=np.float64) for k in _COLS))
        merged, _ = merge_bars(old, new)
        atomic_write_bytes(path, render_csv(merged, daily=self.daily))
        self.result.contracts[inst.hrn] = len(merged)
        self.added[inst.hrn] = len(merged) - (len(old) if old is not None else 0)
        self.result.new_bars = sum(self.added.values())
        if inst.hrn not in self.listed:  # after its file: the listing names only files that exist
            listing = self.out / "instruments.csv"
            have = read_instruments(listing) if listing.is_file() else []
            write_instruments(listing, merge(list_contracts(have, [inst]), [self.underlying]))
            self.listed.add(inst.hrn)


def list_contracts(have: list[Instrument], found: list[Instrument]) -> list[Instrument]:
    """The folder's rows after a download: ``have`` (the folder's ``instruments.csv``) keeps its values
    and gets only the fields it lacks, except that a placeholder lot size of 1 takes a real one (>1)
    from ``found`` (the broker's list); contracts new to the folder are added."""
    from dataclasses import replace

    from algocli.instruments.master import merge

    real = {inst.hrn: inst.lot_size for inst in found if inst.lot_size > 1}
    return [replace(row, lot_size=real[row.hrn]) if row.lot_size == 1 and row.hrn in real else row
            for row in merge(have, found)]


def check_folder(out: Path) -> None:
    """Read the candle files already in ``out`` (not its ``instruments.csv`` or ``pcr.csv``), so a file a
    re-run could not merge into stops it before any request. Their interval is not checked: a contract
    file has holes where its strike was away from ATM; the underlying's file (``download``) says it.

    Raises:
        DataError: A row of a file cannot be trusted.
    """
    for path in sorted(out.glob("*.csv")) if out.is_dir() else []:
        if path.name not in ("instruments.csv", "pcr.csv"):
            read_stored(path, path.stem)


def _cell(value) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def write_pcr(path: Path, rows: list[dict]) -> int:
    """Merge ``rows`` into the PCR CSV at ``path`` (one row per timestamp and expiry, the new one
    wins), sorted; return the rows in the file."""
    import csv
    import io

    from algocli.options.pcr import PCR_COLUMNS

    table: dict[tuple[str, str], dict] = {}
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                table[(row["timestamp"], row["expiry"])] = row
    for row in rows:
        table[(row["timestamp"], row["expiry"])] = {k: _cell(row.get(k)) for k in PCR_COLUMNS}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PCR_COLUMNS)
    for key in sorted(table):
        writer.writerow([table[key].get(k, "") for k in PCR_COLUMNS])
    atomic_write_bytes(path, buf.getvalue().encode())
    return len(table)


def require(condition: bool, message: str) -> None:
    """Raise ``UsageError(message)`` unless ``condition`` (checks made before any request)."""
    if not condition:
        raise UsageError(message)


class OptionsError(AlgoError):
    """An options download could not go on (the broker's answer said why)."""


# --- the run ------------------------------------------------------------------------------

# The brokers that serve option history: module:function of their option and PCR downloads.
_CANDLES = {"dhan": "algocli.adapters.dhan.rolling:download", "upstox": "algocli.adapters.upstox.expired:download"}
_INTERVALS = {"dhan": "algocli.adapters.dhan.rolling:INTERVALS", "upstox": "algocli.adapters.upstox.expired:INTERVALS"}
_PCR = {"upstox": "algocli.adapters.upstox.expired:download_pcr"}


@dataclass
class OptionsJob:
    """One options download, as the broker parts see it.

    Attributes:
        underlying: The underlying's row (its broker ids say what to ask for).
        symbol: The options' symbol (``NIFTY`` for ``NSE:NIFTY 50``).
        expiry: ``current``, ``next``, ``far`` or a date.
        cycle: ``week`` or ``month``.
        window: The ATM offsets asked for.
        days: The trading days of the range.
        lookup: HRN → the instrument master's row, or None.
        under_bars: The underlying's candles over the range (for ATM), once downloaded.
        contracts: What the broker part fetched: contract → columns ``ts, open .. oi``.
    """

    underlying: Instrument
    symbol: str
    expiry: str | date
    cycle: str
    window: StrikeWindow
    interval: Interval
    start: date
    end: date
    days: list[date]
    lookup: Callable[[str], Instrument | None]
    result: OptionsResult
    under_bars: Bars | None = None
    contracts: dict[Instrument, dict[str, np.ndarray]] = field(default_factory=dict)
    files: ContractFiles | None = None

    def save(self, inst: Instrument, cols: dict[str, np.ndarray]) -> None:
        """Keep ``inst``'s columns (all its bars fetched so far) and write its file now."""
        self.contracts[inst] = cols
        if self.files is not None:
            self.files.save(inst, cols)


def option_intervals(source: str) -> dict:
    from algocli.broker.spec import broker_spec

    return broker_spec(source).load(_INTERVALS[source])


async def download_options(underlying: str, *, resolve: Callable[[str], Instrument],
                           lookup: Callable[[str], Instrument | None], source: str, interval: Interval | str,
                           start: date, end: date, expiry: str = "current", cycle: str | None = None,
                           strikes: str = "ATM", candles: bool = True, pcr: bool = False, out_dir: Path | None = None,
                           settings=None, session=None, today: date | None = None, limiter=None, calendar=None,
                           report: Callable[[OptionsResult], None] | None = None, **client_options):
    """Download option candles (and PCR) of ``underlying`` for ``[start, end]`` into one folder.

    Args:
        underlying: The underlying's name (``NSE:NIFTY 50``).
        resolve: Name → ``Instrument`` (raises ``ConfigError`` for an unknown one).
        lookup: HRN → the master's row or None (a contract's broker ids and lot size).
        source: ``dhan`` or ``upstox`` (``pcr``: ``upstox`` only).
        interval: Bar interval; one the source serves for options.
        start, end: IST dates, both included.
        expiry: ``current``, ``next``, ``far`` or ``YYYY-MM-DD``.
        cycle: ``week`` or ``month`` (default week where there are weeklies, else month).
        strikes: ``ATM-5:ATM+5`` and the like.
        candles: Download the contracts' candles (and the underlying's).
        pcr: Download historical PCR into ``pcr.csv``.
        out_dir: The folder; default ``data/options/<underlying file stem>``.
        settings, session, today, limiter, client_options: As for ``download``.
        calendar: The ``NseCalendar`` of expiry and trading days (default the shipped one).
        report: Called once, before the first request, with the ``OptionsResult`` then filled in
            (its ``under`` too): a caller still has it when the run is cancelled.

    Returns:
        ``(DownloadResult of the underlying or None, OptionsResult)``.

    Raises:
        UsageError: Bad input, found before any request: flags, dates, an output folder that cannot
            be written, a file in it that cannot be merged into (``DataError``: a bad row).
        ConfigError: An unknown underlying.
        FeedAuthError: The broker refused the token.
    """
    import time

    from algocli.broker.ratelimit import RateLimiter
    from algocli.broker.spec import broker_spec
    from algocli.data.download import _source_spec, check_range, download, parse_interval, run_session
    from algocli.persistence.output import check_output_dir
    from algocli.data.expiries import WEEKLY_SYMBOLS, expiry_days
    from algocli.domain.session import ist_date
    from algocli.options.chain import option_symbol

    spec = _source_spec(source)
    require(source in _CANDLES, f"--source {source}: option history comes from {' or '.join(_CANDLES)}")
    require(not pcr or source in _PCR, f"--pcr: {broker_spec(source).title} has no historical PCR; "
                                       f"use --source {' or '.join(_PCR)}")
    require(candles or pcr, "nothing to download: give --options, --pcr or both")
    ival = parse_interval(interval)
    served = option_intervals(source)
    require(ival in served or not candles, f"--interval {ival.value}: {spec.title}'s option history comes in "
                                           f"{', '.join(i.value for i in served)}")
    today = today or ist_date(time.time_ns())
    end = check_range(start, end, today)
    window, wanted = strike_window(strikes), expiry_spec(expiry)
    inst = resolve(underlying)
    require(inst.kind in ("INDEX", "EQ"), f"{inst.hrn} is a {inst.kind}, not an underlying: name an index or a "
                                          "stock, e.g. 'NSE:NIFTY 50'")
    symbol = option_symbol(inst.hrn)[1]
    cycle = cycle or ("week" if symbol in WEEKLY_SYMBOLS else "month")
    expiry_days(cycle, start, start, symbol=symbol, cal=calendar)  # an unknown cycle stops here
    if isinstance(wanted, date) and source == "dhan":
        require(expiry_days(cycle, wanted, wanted, symbol=symbol, cal=calendar) == [wanted],
                f"--expiry {wanted}: not a {cycle}ly {symbol} expiry day; pick one of "
                + ", ".join(d.isoformat() for d in expiry_days(cycle, wanted - timedelta(days=35),
                                                               wanted + timedelta(days=35), symbol=symbol,
                                                               cal=calendar)))
    if source == "dhan":
        from algocli.adapters.dhan.rolling import check_window

        check_window(inst, window)
    out = check_output_dir(Path(out_dir) if out_dir is not None else Path("data") / "options" / file_stem(inst.hrn),
                           fix="pass another --out")
    if candles:
        check_folder(out)
    if calendar is None:
        from algocli.market.calendar import default_calendar

        calendar = default_calendar()
    days = calendar.trading_days(start, end, "FNO")
    result = OptionsResult(source, inst.hrn, out)
    if report is not None:
        report(result)
    job = OptionsJob(inst, symbol, wanted, cycle, window, ival, start, end, days, lookup, result)
    settings = spec.make_settings() if settings is None else settings
    limiter = limiter or RateLimiter(spec.download_limits)
    under = None
    async with run_session(session) as session:
        if candles:
            under = await download([inst.hrn], resolve=resolve, source=source, interval=ival, start=start, end=end,
                                   out_dir=out, settings=settings, session=session, today=today, limiter=limiter,
                                   report=lambda started: setattr(result, "under", started), **client_options)
            if under.aborted is not None:
                raise under.aborted
            got = under.files[0]
            if got.error:
                result.notes.append(f"{inst.hrn}: {got.error}")
            if got.path.is_file():
                job.under_bars = load_csv(got.path, inst.hrn)
        await _run(job, spec, session, settings, limiter, client_options, candles=candles, pcr=pcr, out=out)
    return under, result


async def _run(job: OptionsJob, spec, session, settings, limiter, options: dict, *, candles: bool, pcr: bool,
               out: Path) -> None:
    """The broker parts, writing whatever they fetched even when one of them fails."""
    from algocli.data.feed import FeedAuthError

    result = job.result
    if candles:
        job.files = ContractFiles(out, result.source, job.interval is Interval.DAY_1, result, job.underlying)
    try:
        if candles:
            await spec.load(_CANDLES[result.source])(job, session, settings, limiter, options)
            if not result.contracts and result.error is None:
                raise OptionsError(_no_candles(job))
        if pcr:
            rows = await spec.load(_PCR[result.source])(job, session, settings, limiter, options)
            result.pcr_rows = write_pcr(out / "pcr.csv", rows) if rows or (out / "pcr.csv").is_file() else 0
    except FeedAuthError:
        raise
    except AlgoError as exc:
        result.error = str(exc)
    # the contracts' files and instruments.csv were written as they arrived (``ContractFiles``)


def _no_candles(job: OptionsJob) -> str:
    """The error when the broker answered every request with no candle (a cron job must see it)."""
    title = {"dhan": "Dhan", "upstox": "Upstox"}.get(job.result.source, job.result.source)
    which = job.expiry if isinstance(job.expiry, date) else f"the {job.expiry} {job.cycle}ly expiry"
    return (f"{title} returned no candles for any strike of {which} from {job.start} to {job.end}; try "
            "--expiry current or next, a later --from/--to, or a narrower --strikes (outer strikes trade less)")


def run_download_options(underlying: str, **kwargs):
    """``download_options`` on a fresh event loop (for the CLI)."""
    import asyncio

    return asyncio.run(download_options(underlying, **kwargs))
