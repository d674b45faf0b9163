"""Write a run's artifacts: CSV tables, the resolved config, run metadata and the report.

``write_run_artifacts`` writes the whole set for a finished run of any mode; the
``write_*`` functions below it write one file each.

Every file is written to a temporary name in the same folder, flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one, never half
of one; ``write_run_artifacts`` publishes the whole set at once (``persistence.output``).
CSVs are deterministic: the same config and data give the same bytes.

Numbers are rounded only as they are written, for reading: money to paise, prices to the
instrument's tick (0.05 when it is not known), percentages and ratios to four places; the
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
from algocli.persistence.csvtext import fixed2_bytes, ist_bytes, mapped_text, quoted, rows_bytes, table_text

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
_COMMISSION = attrgetter("commission")
#: Bars from which the equity curve and ``run.json`` are written in a forked child: below it the
#: fork (about 5 ms for this process) costs more than writing the curve inline.
FORK_MIN_BARS = 20_000


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


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
    """A text file written under a temporary name and renamed into place on success."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, _FILE_MODE)
        self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
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


def write_table(path: Path, columns: dict[str, list]) -> Path:
    """Write equal-length columns as CSV (quoted where needed); floats in their shortest form (the
    writers round them first: ``rounded``, ``money``, ``price``)."""
    with _AtomicFile(path) as fh:
        fh.write(table_text(list(columns), [_field_texts(c) for c in columns.values()]))
    return path


def _field_texts(values) -> list[str]:
    """One column's values as ``csv.writer`` writes them, a whole column of one type at a time."""
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    kinds = set(map(type, values))
    if kinds <= {str}:
        return quoted(values)
    if kinds <= {int}:
        return list(map(repr, values))
    if kinds <= {float}:  # the text str() gives, which is what csv.writer writes, once per distinct value
        texts = {v: repr(v) for v in dict.fromkeys(values)}
        if 0.0 in texts:  # 0.0 and -0.0 are one key: it holds for both only when every zero has one sign
            array = np.array(values)
            signs = np.signbit(array[array == 0.0])
            if signs.any() and not signs.all():
                return list(map(repr, values))
        return list(map(texts.__getitem__, values))
    return [_csv_text(v) for v in values]


def _csv_text(value) -> str:
    if value is None:
        return ""
    return quoted([value])[0] if isinstance(value, str) else str(value)


def _write_series(path: Path, header: list[str], times: np.ndarray, columns: list, chunk: int = 100_000) -> Path:
    """Stream a time column and float columns, ``chunk`` rows at a time.

    Times (UTC ns) become IST ISO strings chunk by chunk, so a million-row curve never
    holds a million strings; floats are written with two decimals (rupees and paise), and
    a value that rounds to zero as ``0.00``, never ``-0.00``.
    """
    fmt = "%s," + ",".join("%.2f" for _ in columns) + "\n"
    with _AtomicFile(path) as fh:
        fh.write(",".join(header) + "\n")
        for start in range(0, len(times), chunk):
            stop = start + chunk
            fields = [ist_bytes(times[start:stop]), *(fixed2_bytes(c[start:stop]) for c in columns)]
            if all(f is not None for f in fields):  # the usual case: formatted as arrays, 10x faster
                fh.write(rows_bytes(fields).decode("ascii"))
                continue
            parts = [ist_strings(times[start:stop]).tolist()] + [_no_negative_zero(c[start:stop]).tolist()
                                                                  for c in columns]
            fh.write("".join(map(fmt.__mod__, zip(*parts))))  # %-formatting beats str.format here
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


def money(values) -> list[float]:
    """Rupee amounts to paise (a column of zeros, such as a flat-commission run's STT, at once)."""
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if not any(values):
        return [0.0] * len(values)
    return [round(v, 2) + 0.0 for v in values]


@functools.lru_cache(maxsize=64)
def tick_places(tick: float) -> int:
    """Decimals a price on ``tick`` needs: 2 for 0.05 (at least paise), 4 for 0.0025."""
    return max(2, len(f"{tick:.8f}".rstrip("0").split(".")[1]))


def price(value: float, tick: float = DEFAULT_TICK, *, snap: bool = True) -> float:
    """A price on its instrument's tick (``snap``), or only to the tick's decimals: an average of fills
    need not lie on a tick."""
    return round(round(value / tick) * tick if snap else value, tick_places(tick)) + 0.0


def _prices(values: list[float], ticks: list[float], *, snap: bool = True) -> list[float]:
    """``price`` of each value on its row's tick, worked out once per distinct value when every row
    has the same tick (a run on one exchange segment)."""
    if len(set(ticks)) > 1:
        return [price(v, tick, snap=snap) for v, tick in zip(values, ticks)]
    tick = ticks[0] if ticks else DEFAULT_TICK
    done = {v: price(v, tick, snap=snap) for v in dict.fromkeys(values)}
    return list(map(done.__getitem__, values))


def _ticks(result: RunResult, instruments) -> list[float]:
    """The tick size of each row's instrument (``DEFAULT_TICK`` when not known)."""
    known: dict[str, float] = {}
    for key, inst in result.instruments.items():
        tick = getattr(inst, "tick_size", None) if inst is not None else None
        known[key] = tick if tick and tick > 0 else DEFAULT_TICK
    return [known.get(i, DEFAULT_TICK) for i in instruments]


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


def _times(ns: np.ndarray) -> list[str]:
    return ist_strings(ns).tolist() if len(ns) else []


def write_trades(result: RunResult, path: Path) -> Path:
    """Round trips: one row per closed lot, with the strategy that traded it."""
    t = result.trade_columns
    names = {k: (v.display_name if v else k) for k, v in result.instruments.items()}
    instruments = t["instrument"].tolist()
    ticks = _ticks(result, instruments)
    ids = {x: _broker_ids(result, x) for x in set(instruments)}
    return write_table(path, {
        "instrument": [names.get(x, x) for x in instruments],
        **_expiry_column(result, instruments),
        "instrument_id": [ids[x] for x in instruments],
        "strategy": t["strategy"].tolist(),
        "side": t["side"].tolist(),
        "size": [abs(int(x)) for x in t["size"]],
        "entry_time": _times(t["entry_time"]),
        "entry_price": _prices(t["entry_price"].tolist(), ticks),
        "exit_time": _times(t["exit_time"]),
        "exit_price": _prices(t["exit_price"].tolist(), ticks),
        "gross_pnl": money((np.asarray(t["pnl"], dtype=float) + t["commission"]).tolist()),
        "charges": money(t["commission"].tolist()),
        "pnl": money(t["pnl"].tolist()),
        "return_pct": [rounded(x, 4) for x in (np.asarray(t["return_pct"], dtype=float) * 100).tolist()],
        "duration": mapped_text(t["duration"], timedelta_text),
    })


def write_orders(result: RunResult, path: Path) -> Path:
    """Every order with its final status; rejected and expired ones carry the reason."""
    o = result.orders
    ticks = _ticks(result, [x.instrument for x in o])
    return write_table(path, {
        "order_id": [x.order_id for x in o], "strategy": [x.strategy_id for x in o],
        "instrument": [x.instrument for x in o], **_expiry_column(result, [x.instrument for x in o]),
        "side": [_TEXT[x.side] for x in o],
        "order_type": [_TEXT[x.order_type] for x in o], "quantity": [x.quantity for x in o],
        "limit_price": ["" if x.limit_price is None else price(x.limit_price, tick) for x, tick in zip(o, ticks)],
        "status": [_TEXT[x.status] for x in o], "filled_quantity": [x.filled_quantity for x in o],
        "average_price": [p if x.filled_quantity else "" for x, p in
                          zip(o, _prices([x.average_price for x in o], ticks, snap=False))],
        "commission": money(map(_COMMISSION, o)),
        "created_time": _ist_list([x.created_ts for x in o]),
        "updated_time": _ist_list([x.updated_ts for x in o]),
        "tag": [x.tag or "" for x in o], "reason": [x.reason for x in o],
    })


def _ist_list(ns: list[int]) -> list[str]:
    return ist_strings(np.array(ns, dtype=np.int64)).tolist() if ns else []


def write_fills(result: RunResult, path: Path) -> Path:
    """Every fill in booking order, with its order's tag (a basket's legs share one)."""
    f = result.fills
    tags = {o.order_id: o.tag or "" for o in result.orders}
    return write_table(path, {
        "fill_id": [x.fill_id for x in f], "order_id": [x.order_id for x in f],
        "strategy": [x.strategy_id for x in f], "tag": [tags.get(x.order_id, "") for x in f],
        "instrument": [x.instrument for x in f],
        **_expiry_column(result, [x.instrument for x in f]),
        "side": [_TEXT[x.side] for x in f], "quantity": [x.quantity for x in f],
        "price": _prices([x.price for x in f], _ticks(result, [x.instrument for x in f])),
        **{kind: money(map(attrgetter(kind), f)) for kind in CHARGE_FIELDS},
        "charges": money(map(_COMMISSION, f)),
        "estimated": ["yes" if x.estimated else "" for x in f],
        "time": _ist_list([x.ts for x in f]),
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
