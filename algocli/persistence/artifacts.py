"""Write a run's artifacts: CSV tables, the resolved config, run metadata and the report.

``write_run_artifacts`` writes the whole set for a finished run of any mode; the
``write_*`` functions below it write one file each.

Every file is written to a temporary name in the same folder, flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one, never half
of one. CSVs are deterministic: the same config and data give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from algocli.analytics.result import RunResult
from algocli.domain.models import IST_OFFSET_NS, OrderSide, OrderStatus, OrderType
from algocli.domain.modes import RunMode

_IST_SUFFIX = "+05:30"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes owner-only files; artifacts follow the umask
# enum member -> CSV text; a dict lookup is several times cheaper than ``.value`` per row
_TEXT = {m: m.value for enum in (OrderSide, OrderStatus, OrderType) for m in enum}


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
    days, day_idx = np.unique(day, return_inverse=True)
    seconds, sec_idx = np.unique(second, return_inverse=True)
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
    """Write equal-length columns as CSV (quoted where needed); floats in full precision."""
    with _AtomicFile(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    return path


def _write_series(path: Path, header: list[str], times: np.ndarray, columns: list, chunk: int = 100_000) -> Path:
    """Stream a time column and float columns, ``chunk`` rows at a time.

    Times (UTC ns) become IST ISO strings chunk by chunk, so a million-row curve never
    holds a million strings; floats are written with two decimals (rupees and paise).
    """
    fmt = "%s," + ",".join("%.2f" for _ in columns) + "\n"
    with _AtomicFile(path) as fh:
        fh.write(",".join(header) + "\n")
        for start in range(0, len(times), chunk):
            stop = start + chunk
            parts = [ist_strings(times[start:stop]).tolist()] + [c[start:stop].tolist() for c in columns]
            fh.write("".join(map(fmt.__mod__, zip(*parts))))  # %-formatting beats str.format here
    return path


def _durations(values) -> list[str]:
    """Timedeltas in pandas' text form (``3 days 04:05:00``), which ``pd.Timedelta`` parses back."""
    ns = pd.TimedeltaIndex(values).as_unit("ns").asi8
    out = []
    for v in ns.tolist():
        days, rem = divmod(v, 86_400 * 10**9)
        secs, frac = divmod(rem, 10**9)
        h, rem_s = divmod(secs, 3600)
        m, sec = divmod(rem_s, 60)
        text = f"{days} days {h:02d}:{m:02d}:{sec:02d}"
        out.append(text if not frac else str(pd.Timedelta(v)))
    return out


def _times(series: pd.Series) -> list[str]:
    if not len(series):
        return []
    return ist_strings(pd.DatetimeIndex(series).as_unit("ns").asi8).tolist()


def write_trades(result: RunResult, path: Path) -> Path:
    """Round trips: one row per closed lot, with the strategy that traded it."""
    t = result.trades
    names = {k: (v.display_name if v else k) for k, v in result.instruments.items()}
    return write_table(path, {
        "instrument": [names.get(x, x) for x in t["instrument"]],
        "instrument_id": t["instrument"].tolist(),
        "strategy": t["strategy"].tolist(),
        "side": t["side"].tolist(),
        "size": [abs(int(x)) for x in t["size"]],
        "entry_time": _times(t["entry_time"]),
        "entry_price": t["entry_price"].tolist(),
        "exit_time": _times(t["exit_time"]),
        "exit_price": t["exit_price"].tolist(),
        "pnl": t["pnl"].tolist(),
        "return_pct": (t["return_pct"].astype(float) * 100).tolist(),
        "commission": t["commission"].tolist(),
        "duration": _durations(t["duration"]) if len(t) else [],
    })


def write_orders(result: RunResult, path: Path) -> Path:
    """Every order with its final status; rejected and expired ones carry the reason."""
    o = result.orders
    return write_table(path, {
        "order_id": [x.order_id for x in o], "strategy": [x.strategy_id for x in o],
        "instrument": [x.instrument for x in o], "side": [_TEXT[x.side] for x in o],
        "order_type": [_TEXT[x.order_type] for x in o], "quantity": [x.quantity for x in o],
        "limit_price": ["" if x.limit_price is None else x.limit_price for x in o],
        "status": [_TEXT[x.status] for x in o], "filled_quantity": [x.filled_quantity for x in o],
        "average_price": [x.average_price if x.filled_quantity else "" for x in o],
        "commission": [x.commission for x in o],
        "created_time": _ist_list([x.created_ts for x in o]),
        "updated_time": _ist_list([x.updated_ts for x in o]),
        "tag": [x.tag or "" for x in o], "reason": [x.reason for x in o],
    })


def _ist_list(ns: list[int]) -> list[str]:
    return ist_strings(np.array(ns, dtype=np.int64)).tolist() if ns else []


def write_fills(result: RunResult, path: Path) -> Path:
    """Every fill in booking order."""
    f = result.fills
    return write_table(path, {
        "fill_id": [x.fill_id for x in f], "order_id": [x.order_id for x in f],
        "strategy": [x.strategy_id for x in f], "instrument": [x.instrument for x in f],
        "side": [_TEXT[x.side] for x in f], "quantity": [x.quantity for x in f],
        "price": [x.price for x in f], "commission": [x.commission for x in f],
        "time": _ist_list([x.ts for x in f]),
    })


def write_equity(result: RunResult, path: Path) -> Path:
    """Equity, cash and buy & hold at every bar (plus each strategy's P&L when there are several)."""
    header = ["timestamp", "equity", "cash", "buy_and_hold"]
    columns = [result.equity, result.cash, result.benchmark]
    if len(result.strategy_pnl) > 1:
        for sid, pnl in result.strategy_pnl.items():
            header.append(f"pnl:{sid}")
            columns.append(pnl)
    return _write_series(path, header, result.index.as_unit("ns").asi8, columns)


def format_metric(value: object) -> str:
    """Metric value as CSV text: full-precision floats, pandas-parsable timedeltas."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NaT or value is None:
        return ""
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_results(result: RunResult, path: Path) -> Path:
    lines = ["metric,value"] + [f"{k},{format_metric(v)}" for k, v in result.metrics.items()]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    packages = {}
    for name in ("algocli", "numpy", "pandas", "ta-lib", "plotly", "pydantic", "typer", "rich"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    meta = {
        "mode": RunMode(mode).value,
        "config": config_path,
        "config_hash": config_hash,
        "python": platform.python_version(),
        "packages": packages,
        "data_files": {str(p): file_sha256(p) for p in data_files},
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
    """Write every artifact of a finished run into ``out_dir``, each file atomically.

    The equity curve (the slowest file) and ``run.json`` (which hashes the input data) are
    written in a forked child while this process writes the rest (``BackgroundTask``).

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
        AlgoError: The background writer failed.
        OSError: A file could not be written.
    """
    import yaml

    from algocli.persistence.background import BackgroundTask

    out_dir = Path(out_dir)

    def _second_core() -> None:
        write_equity(result, out_dir / "equity_curve.csv")
        write_metadata(out_dir / "run.json", mode=run.mode, config_hash=run.config_hash,
                       config_path=run.config_path, data_files=run.data_files, bars=len(result.index),
                       elapsed_s=elapsed_s, notes=result.notes + run.warnings)

    background = BackgroundTask(_second_core, "equity_curve.csv and run.json")
    paths = [
        write_trades(result, out_dir / "trades.csv"),
        write_orders(result, out_dir / "orders.csv"),
        write_fills(result, out_dir / "fills.csv"),
        out_dir / "equity_curve.csv",
        write_results(result, out_dir / "results.csv"),
        atomic_write_text(out_dir / "config.resolved.yaml", yaml.safe_dump(run.resolved_config, sort_keys=False)),
    ]
    if report:
        from algocli.analytics.report import write_report

        paths.append(write_report(result, out_dir / "report.html", mode=run.mode))
    background.wait()
    paths.append(out_dir / "run.json")
    return paths
