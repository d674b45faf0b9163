"""Write a run's artifacts: CSV tables, the resolved config, run metadata and the report.

``write_run_artifacts`` writes the whole set for a finished run of any mode; the
``write_*`` functions below it write one file each.

Every file is written to a temporary name in the same folder, flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one, never half
of one; ``write_run_artifacts`` publishes the whole set at once (``persistence.output``).
CSVs are deterministic: the same config and data give the same bytes.

Numbers are rounded only as they are written, for reading: money to paise, prices to the
decimals of the instrument's tick (never moved onto it), percentages and ratios to four places; the
run computed with the exact values, which is why a column of rounded P&L can differ from
the rounded total by a few paise.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import platform
import sys
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from glob import escape as glob_escape
from importlib import metadata
from operator import attrgetter
from pathlib import Path

import numpy as np

from algocli.analytics.result import RunResult
from algocli.analytics.timefmt import timedelta_text
from algocli.domain.arrays import unique
from algocli.domain.models import CHARGE_FIELDS, IST_OFFSET_NS, OrderSide, OrderStatus, OrderType
from algocli.domain.modes import RunMode
from algocli.errors import AlgoError
from algocli.persistence.csvtext import (
    field_matrix, fixed_bytes, ist_bytes, mapped_matrix, rounded_bytes, rows_bytes, table_bytes, text_matrix,
)

_IST_SUFFIX = "+05:30"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes owner-only files; artifacts follow the umask
# enum member -> CSV text; a dict lookup is several times cheaper than ``.value`` per row
_TEXT = {m: m.value for enum in (OrderSide, OrderStatus, OrderType) for m in enum}
#: Every file ``write_run_artifacts`` may write; an older run's file this run did not write is removed.
ARTIFACTS = ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv", "config.resolved.yaml",
             "report.html", "run.json")
#: Metrics in rupees (written to paise); every other float metric is written to four places.
MONEY_METRICS = frozenset({"initial_capital", "final_equity", "peak_equity", "commissions"})
DEFAULT_TICK = 0.05  # NSE equities
#: Bars from which the equity curve and ``run.json`` are written in a forked child: below it the
#: fork (about 5 ms for this process) costs more than writing the curve inline.
FORK_MIN_BARS = 20_000


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` via a temp file, fsync and rename; ``mode`` (e.g. 0o600 for a
    file holding a token) instead of the umask's."""
    with _AtomicFile(path, mode) as fh:
        fh.write(data)
    return path


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def ist_strings(ns: np.ndarray) -> np.ndarray:
    """UTC nanoseconds as ISO-8601 IST strings (``2024-01-02T09:15:00+05:30``), vectorised.

    Bars repeat a few thousand dates and at most 86,400 times of day, so each distinct date
    and time is formatted once and the strings are joined by index: four times faster than
    formatting every timestamp on a million-bar curve.
    """
    local = np.asarray(ns, dtype=np.int64) + IST_OFFSET_NS
    if not len(local) or (local % 1_000_000_000).any():  # sub-second stamps: format each one
        return np.char.add(np.datetime_as_string(local.view("datetime64[ns]"), unit="s"), _IST_SUFFIX)
    day, second = np.divmod(local // 1_000_000_000, 86_400)
    days, day_idx = unique(day, return_inverse=True)
    seconds, sec_idx = unique(second, return_inverse=True)
    day_text = np.char.add(np.datetime_as_string(days.astype("datetime64[D]")), "T")
    time_text = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{_IST_SUFFIX}" for s in seconds.tolist()])
    return np.char.add(day_text[day_idx], time_text[sec_idx])


class _AtomicFile:
    """A file written (in bytes) under a temporary name, flushed to disk and renamed into place on
    success; removed on failure. The temporary name (``.<name>.<pid>-XXXX.tmp``) carries the
    writer's pid: a later write of the same file removes what a killed writer (kill -9 mid-write)
    left, so a rerun's folder ends as an uninterrupted run's."""

    def __init__(self, path: Path, mode: int | None = None) -> None:
        self.path = path
        self.mode = _FILE_MODE if mode is None else mode

    def __enter__(self):
        from algocli.persistence.lock import pid_alive

        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{self.path.name}."
        for left in self.path.parent.glob(f"{glob_escape(prefix)}*.tmp"):
            pid = left.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                left.unlink(missing_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, self.mode)
        self.fh = os.fdopen(fd, "wb")
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
        finally:
            self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            Path(self.tmp).unlink(missing_ok=True)


def write_table(path: Path, columns: dict[str, list | np.ndarray]) -> Path:
    """Write equal-length columns as CSV, as ``csv.writer`` writes them.

    Args:
        path: The file.
        columns: Name to column: a list (or 1-D array) of values (``csvtext.field_matrix``: floats in
            their shortest form, which is why the writers round them first) or field texts made
            already (a ``csvtext.text_matrix``).
    """
    matrices = [c if isinstance(c, np.ndarray) and c.ndim == 2 else field_matrix(c) for c in columns.values()]
    return atomic_write_bytes(path, table_bytes(list(columns), matrices))


def _write_series(path: Path, header: list[str], times: np.ndarray, columns: list, chunk: int = 100_000) -> Path:
    """Stream a time column and float columns, ``chunk`` rows at a time.

    Times (UTC ns) become IST ISO strings chunk by chunk, so a million-row curve never
    holds a million strings; floats are written with two decimals (rupees and paise), and
    a value that rounds to zero as ``0.00``, never ``-0.00``.
    """
    fmt = "%s," + ",".join("%.2f" for _ in columns) + "\n"
    with _AtomicFile(path) as fh:
        fh.write((",".join(header) + "\n").encode("utf-8"))
        for start in range(0, len(times), chunk):
            stop = start + chunk
            fields = [ist_bytes(times[start:stop]), *(fixed_bytes(c[start:stop]) for c in columns)]
            if all(f is not None for f in fields):  # the usual case: formatted as arrays, 10x faster
                fh.write(rows_bytes(fields))
                continue
            parts = [ist_strings(times[start:stop]).tolist()] + [_no_negative_zero(c[start:stop]).tolist()
                                                                  for c in columns]
            fh.write("".join(map(fmt.__mod__, zip(*parts))).encode("ascii"))  # %-formatting beats str.format
    return path


def _no_negative_zero(values: np.ndarray) -> np.ndarray:
    """``values`` with those that print as ``-0.00`` (in (-0.005, 0]) set to 0.0."""
    values = np.asarray(values, dtype=np.float64)
    small = (values > -0.005) & (values <= 0.0)
    return np.where(small, 0.0, values) if small.any() else values


def rounded(value: float, places: int) -> float:
    """``value`` to ``places`` decimals, and never ``-0.0``: CSV tables write it in its shortest form
    (``43.66``, ``737.3``), which reads back as exactly that number."""
    return round(float(value), places) + 0.0


def fixed(value: float, places: int) -> str:
    """``value`` as text with exactly ``places`` decimals (``43.66``, ``0.00``), for the statistics."""
    return f"{rounded(value, places):.{places}f}"


@functools.lru_cache(maxsize=64)
def tick_places(tick: float) -> int:
    """Decimals a price on ``tick`` needs: 2 for 0.05 (at least paise), 4 for 0.0025."""
    return max(2, len(f"{tick:.8f}".rstrip("0").split(".")[1]))


def price(value: float, tick: float = DEFAULT_TICK) -> float:
    """A price to its instrument's tick's decimals, never moved onto the master's tick: the tick in
    force on the fill's date may differ (a price band, a revision), a refused limit was off it, and
    an average of fills need not lie on one. Fills are booked on the tick of their date."""
    return round(value, tick_places(tick)) + 0.0


def _price_matrix(result: RunResult, values, instruments) -> np.ndarray:
    """Each value as ``price`` writes it for its row's instrument, NaN as an empty field: table text,
    made with array operations when every row has the same decimals (a run on one exchange segment)."""
    values = np.asarray(values, dtype=np.float64)
    known = _tick_sizes(result)
    places_of = {i: tick_places(known.get(i, DEFAULT_TICK)) for i in set(instruments)}
    if len(set(places_of.values())) > 1:
        return text_matrix([_price_text(v, known.get(i, DEFAULT_TICK)) for v, i in zip(values.tolist(), instruments)])
    places = places_of.popitem()[1] if places_of else tick_places(DEFAULT_TICK)
    missing = np.isnan(values)
    matrix = rounded_bytes(np.where(missing, 0.0, values), places)
    if matrix is None:
        return mapped_matrix(values, lambda v: _price_text(v, 10.0 ** -places))
    matrix[missing] = 0
    return matrix


def _price_text(value: float, tick: float) -> str:
    return "" if value != value else repr(price(value, tick))


def _money_matrix(values) -> np.ndarray:
    """Rupee amounts to paise (``0.0``, ``43.66``), as table text."""
    return _rounded_matrix(values, 2)


def _rounded_matrix(values, places: int) -> np.ndarray:
    """``repr(rounded(v, places))`` of each value, as table text; with array operations where they
    give exactly that (``csvtext.rounded_bytes``), else once per distinct value."""
    values = np.asarray(values, dtype=np.float64)
    matrix = rounded_bytes(values, places)
    return matrix if matrix is not None else mapped_matrix(values, lambda v: repr(rounded(v, places)))


def _tick_sizes(result: RunResult) -> dict[str, float]:
    """The tick size of each instrument of the run that has a known one."""
    known: dict[str, float] = {}
    for key, inst in result.instruments.items():
        tick = getattr(inst, "tick_size", None) if inst is not None else None
        known[key] = tick if tick and tick > 0 else DEFAULT_TICK
    return known


def _broker_ids(result: RunResult, instrument: str) -> str:
    """The brokers' ids of an instrument (``NSE_EQ:1333;NSE_EQ|INE040A01034``), empty when none is known."""
    inst = result.instruments.get(instrument)
    if inst is None:
        return ""
    return ";".join(dict.fromkeys(i for i in inst.ids() if i != inst.hrn))


def _expiry_column(result: RunResult, instruments: list[str]) -> dict[str, list[str]]:
    """``{"expiry": [...]}`` (ISO dates, empty for instruments that do not expire) when the run
    traded a derivative with an expiry; nothing otherwise, so equity runs keep their columns."""
    expiries = {k: getattr(v, "expiry", None) for k, v in result.instruments.items() if v is not None}
    if not any(expiries.values()):
        return {}
    return {"expiry": [(e.isoformat() if (e := expiries.get(i)) else "") for i in instruments]}


def _time_matrix(ns) -> np.ndarray:
    """UTC nanoseconds as IST ISO table text."""
    ns = np.asarray(ns, dtype=np.int64)
    matrix = ist_bytes(ns)
    return matrix if matrix is not None else text_matrix(ist_strings(ns).tolist() if len(ns) else [])


def _columns(objects: list, *names: str) -> list[list]:
    """Attributes ``names`` of each of ``objects``, as one list per name (a pass per name beats one pass
    that builds a tuple per object and transposes them)."""
    return [list(map(attrgetter(name), objects)) for name in names]


def _numbers(objects: list, *names: str) -> list[np.ndarray]:
    """Float attributes ``names`` of each of ``objects``, as one array per name."""
    return [np.fromiter(map(attrgetter(name), objects), dtype=np.float64, count=len(objects)) for name in names]


def _texts(values, texts: dict) -> list[str]:
    return list(map(texts.__getitem__, values))


def write_trades(result: RunResult, path: Path) -> Path:
    """Round trips: one row per closed lot, with the strategy that traded it."""
    t = result.trade_columns
    names = {k: (v.display_name if v else k) for k, v in result.instruments.items()}
    instruments = t["instrument"].tolist()
    ids = {x: _broker_ids(result, x) for x in set(instruments)}
    return write_table(path, {
        "instrument": mapped_matrix(t["instrument"], lambda x: names.get(x, x)),
        **_expiry_column(result, instruments),
        "instrument_id": mapped_matrix(t["instrument"], ids.__getitem__),
        "strategy": t["strategy"].tolist(),
        "side": t["side"].tolist(),
        "size": mapped_matrix(np.abs(np.asarray(t["size"], dtype=np.int64)), repr),
        "entry_time": _time_matrix(t["entry_time"]),
        "entry_price": _price_matrix(result, t["entry_price"], instruments),
        "exit_time": _time_matrix(t["exit_time"]),
        "exit_price": _price_matrix(result, t["exit_price"], instruments),
        "gross_pnl": _money_matrix(np.asarray(t["pnl"], dtype=float) + t["commission"]),
        "charges": _money_matrix(t["commission"]),
        "pnl": _money_matrix(t["pnl"]),
        "return_pct": _rounded_matrix(np.asarray(t["return_pct"], dtype=float) * 100, 4),
        "duration": mapped_matrix(t["duration"], timedelta_text),
    })


def write_orders(result: RunResult, path: Path) -> Path:
    """Every order with its final status; rejected and expired ones carry the reason."""
    (ids, strategies, instruments, sides, types, quantities, limits, statuses, filled, averages, commissions,
     created, updated, tags, reasons) = _columns(
        result.orders, "order_id", "strategy_id", "instrument", "side", "order_type", "quantity", "limit_price",
        "status", "filled_quantity", "average_price", "commission", "created_ts", "updated_ts", "tag", "reason")
    averages = np.where(np.asarray(filled, dtype=np.int64) > 0, np.asarray(averages, dtype=np.float64), np.nan)
    return write_table(path, {
        "order_id": ids, "strategy": strategies, "instrument": instruments,
        **_expiry_column(result, instruments),
        "side": _texts(sides, _TEXT), "order_type": _texts(types, _TEXT), "quantity": quantities,
        "limit_price": _price_matrix(result, np.array(limits, dtype=np.float64), instruments),  # None: NaN, empty
        "status": _texts(statuses, _TEXT), "filled_quantity": filled,
        "average_price": _price_matrix(result, averages, instruments),
        "commission": _money_matrix(commissions),
        "created_time": _time_matrix(created), "updated_time": _time_matrix(updated),
        "tag": [x or "" for x in tags], "reason": reasons,
    })


def write_fills(result: RunResult, path: Path) -> Path:
    """Every fill in booking order, with its order's tag (a basket's legs share one)."""
    tags = {o.order_id: o.tag for o in result.orders if o.tag}  # usually none: a basket's legs have one
    ids, orders, strategies, instruments, sides, quantities, estimated, times = _columns(
        result.fills, "fill_id", "order_id", "strategy_id", "instrument", "side", "quantity", "estimated", "ts")
    prices, commissions, *charges = _numbers(result.fills, "price", "commission", *CHARGE_FIELDS)
    return write_table(path, {
        "fill_id": ids, "order_id": orders, "strategy": strategies,
        "tag": [tags.get(x, "") for x in orders] if tags else [""] * len(orders), "instrument": instruments,
        **_expiry_column(result, instruments),
        "side": _texts(sides, _TEXT), "quantity": quantities,
        "price": _price_matrix(result, prices, instruments),
        **{kind: _money_matrix(column) for kind, column in zip(CHARGE_FIELDS, charges)},
        "charges": _money_matrix(commissions),
        "estimated": ["yes" if x else "" for x in estimated],
        "time": _time_matrix(times),
    })


def charge_totals(fills) -> dict[str, float]:
    """Each kind of charge summed over ``fills`` (``charges_brokerage`` ... ``charges_total``), in rupees,
    from ``analytics.charges.charges_by_kind`` (paise per fill first, as ``fills.csv`` shows them)."""
    from algocli.analytics.charges import charges_by_kind

    by_kind, total = charges_by_kind(fills)
    return {**{f"charges_{kind}": value for kind, value in by_kind.items()}, "charges_total": total}


def write_equity(result: RunResult, path: Path) -> Path:
    """Equity, cash and buy & hold at every bar (plus available margin when product rules were on, and each
    strategy's P&L when there are several)."""
    header = ["timestamp", "equity", "cash", "buy_and_hold"]
    columns = [result.equity, result.cash, result.benchmark]
    if result.available_margin is not None:
        header.append("available_margin")
        columns.append(result.available_margin)
    if len(result.strategy_pnl) > 1:
        for sid, pnl in result.strategy_pnl.items():
            header.append(f"pnl:{sid}")
            columns.append(pnl)
    return _write_series(path, header, result.ts, columns)


def format_metric(value: object, places: int = 4) -> str:
    """Metric value as CSV text: floats to ``places`` decimals (``nan`` when undefined),
    pandas-parsable timedeltas, ISO times."""
    if value is None or type(value).__name__ == "NaTType":
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return timedelta_text(value)
    if isinstance(value, (float, np.floating)):
        return fixed(value, places) if np.isfinite(value) else repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_results(result: RunResult, path: Path) -> Path:
    """``results.csv``: one metric per line, money to paise and the rest to four places."""
    metrics = {**result.metrics, **charge_totals(result.fills)}
    lines = ["metric,value"] + [f"{k},{format_metric(v, 2 if k in MONEY_METRICS or k.startswith('charges_') else 4)}"
                                for k, v in metrics.items()]
    return atomic_write_text(path, "\n".join(lines) + "\n")


# Distribution name -> the module whose ``__version__`` tells it without a metadata scan.
_VERSIONED = {"algocli": "algocli", "numpy": "numpy", "pandas": "pandas", "ta-lib": "talib", "plotly": "plotly",
              "pydantic": "pydantic", "typer": "typer", "rich": "rich"}


def read_run_json(folder: Path) -> dict:
    """The ``run.json`` a run wrote in ``folder`` (its mode, config hash, data files...), or ``{}``
    when there is none or it is not one of ours."""
    try:
        written = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return written if isinstance(written, dict) else {}


def package_versions() -> dict[str, str | None]:
    """The versions of the packages a run depends on, for ``run.json``.

    A module already imported reports its own ``__version__``; the others are looked up in the
    installed metadata (about 2 ms each, a tenth of a small backtest's artifact time otherwise).
    """
    out = {}
    for dist, module in _VERSIONED.items():
        version = getattr(sys.modules.get(module), "__version__", None)
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
        out[dist] = version
    return out


def write_metadata(path: Path, *, mode: RunMode, config_hash: str, config_path: str, data_files: list[Path],
                   bars: int, elapsed_s: float, notes: list[str]) -> Path:
    """Write ``run.json``: the run's mode, config, package versions and data file hashes.

    Args:
        path: Where the JSON goes.
        mode: How the run traded (recorded as ``"mode"``).
        config_hash: ``RunConfig.content_hash()`` of the run definition.
        config_path: The run definition's path as given.
        data_files: Input files, each recorded with its SHA-256.
        bars: Length of the run's timeline.
        elapsed_s: Wall time of the run.
        notes: The run's notes and warnings.

    Returns:
        ``path``.
    """
    from algocli.data.cache import file_sha256

    meta = {
        "mode": RunMode(mode).value,
        "config": config_path,
        "config_hash": config_hash,
        "python": platform.python_version(),
        "packages": package_versions(),
        "data_files": {str(p): file_sha256(p) for p in data_files},  # the cache's hash when the file is unchanged
        "bars": bars,
        "elapsed_seconds": round(elapsed_s, 3),
        "notes": notes,
    }
    return atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


@dataclass
class RunDescription:
    """What a run's artifacts record besides its result.

    Attributes:
        mode: How the run traded; recorded in ``run.json`` and titles ``report.html``.
        config_path: The run definition's path as given.
        config_hash: ``RunConfig.content_hash()`` of the run definition.
        resolved_config: The run definition with every default filled in, as plain data
            (``Assembled.resolved()``); written as ``config.resolved.yaml``.
        data_files: Input data files, hashed into ``run.json``.
        warnings: Remarks from assembling the run, recorded with the result's notes.
    """

    mode: RunMode
    config_path: str
    config_hash: str
    resolved_config: dict
    data_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_run_artifacts(result: RunResult, out_dir: Path, run: RunDescription, *, report: bool = True,
                        elapsed_s: float = 0.0) -> list[Path]:
    """Write every artifact of a finished run into ``out_dir`` as one set (``output.ArtifactSet``).

    The files are written into a staging folder and published together, so ``out_dir``
    holds either the older run's whole set or this one's; an older ``report.html`` goes when
    ``report`` is off. Other files in ``out_dir`` (a journal, risk state) are left alone. The
    equity curve (the slowest file), ``fills.csv`` and ``run.json`` (which hashes the input data)
    are written in a forked child while this process writes the rest (``BackgroundTask``) when
    the run has ``FORK_MIN_BARS`` bars or more.

    Args:
        result: The finished run.
        out_dir: The run's artifact folder; created if missing.
        run: Mode, config and inputs of the run.
        report: Also write ``report.html``.
        elapsed_s: Wall time of the run, for ``run.json``.

    Returns:
        The written paths: the CSVs, ``config.resolved.yaml``, ``report.html`` (when
        ``report``) and ``run.json``.

    Raises:
        ArtifactError: A file could not be written (named in the message); ``out_dir``
            keeps its older set.
        AlgoError: The background writer failed otherwise.
    """
    gc.freeze()  # the result's orders and fills: the tables' many rows never make a collection rescan them
    try:
        return _write_all(result, out_dir, run, report, elapsed_s)
    finally:
        gc.unfreeze()


def _write_all(result: RunResult, out_dir: Path, run: RunDescription, report: bool, elapsed_s: float) -> list[Path]:
    import yaml

    from algocli.persistence.background import BackgroundTask
    from algocli.persistence.output import ArtifactSet

    forked = len(result.equity) >= FORK_MIN_BARS
    with ArtifactSet(out_dir, ARTIFACTS) as staged:
        def _second_core() -> None:
            with staged.writing("equity_curve.csv") as path:
                write_equity(result, path)
            if forked:  # the child also takes fills.csv, which balances the two cores
                with staged.writing("fills.csv") as path:
                    write_fills(result, path)
            with staged.writing("run.json") as path:
                write_metadata(path, mode=run.mode, config_hash=run.config_hash, config_path=run.config_path,
                               data_files=run.data_files, bars=len(result.ts), elapsed_s=elapsed_s,
                               notes=result.notes + run.warnings)

        background = None
        if forked:
            background = BackgroundTask(_second_core, "equity_curve.csv, fills.csv and run.json")
        else:  # a short curve is written in less time than a fork of this process takes
            _second_core()
        try:
            writers = [("trades.csv", write_trades), ("orders.csv", write_orders), ("results.csv", write_results)]
            if not forked:
                writers.insert(2, ("fills.csv", write_fills))
            for name, writer in writers:
                with staged.writing(name) as path:
                    writer(result, path)
            with staged.writing("config.resolved.yaml") as path:
                atomic_write_text(path, yaml.safe_dump(run.resolved_config, sort_keys=False))
            if report:
                from algocli.analytics.report import run_holidays, write_report

                with staged.writing("report.html") as path:
                    write_report(result, path, mode=run.mode, holidays=run_holidays(result))
        except BaseException:
            with suppress(AlgoError):  # the child writes into the staging folder: let it finish first
                _wait(background)
            raise
        _wait(background)
        staged.publish()
    names = [*ARTIFACTS[:6], *(["report.html"] if report else []), "run.json"]
    return [Path(out_dir) / name for name in names]


def _wait(background) -> None:
    if background is not None:
        background.wait()
