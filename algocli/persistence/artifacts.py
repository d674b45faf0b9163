"""Write a run's artifacts: CSV tables, the resolved config and run metadata.

Every file is written to a temporary name in the same folder, flushed to disk and then
renamed over the target, so a crash leaves either the old file or the new one, never half
of one. CSVs are deterministic: the same config and data give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from algocli.analytics.result import RunResult
from algocli.domain.models import IST_OFFSET_NS

_IST_SUFFIX = "+05:30"


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    """UTC nanoseconds as ISO-8601 IST strings (``2024-01-02T09:15:00+05:30``), vectorised."""
    local = (np.asarray(ns, dtype=np.int64) + IST_OFFSET_NS).view("datetime64[ns]")
    return np.char.add(np.datetime_as_string(local, unit="s"), _IST_SUFFIX)


def _csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def _write_rows(path: Path, header: list[str], times: np.ndarray, columns: list, chunk: int = 100_000) -> Path:
    """Stream a time column and float columns to ``path`` atomically, ``chunk`` rows at a time.

    Times (UTC ns) become IST ISO strings chunk by chunk, so a million-row curve never
    holds a million strings; floats are written with two decimals (rupees and paise).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "{}," + ",".join("{:.2f}" for _ in columns) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(header) + "\n")
            for start in range(0, len(times), chunk):
                stop = start + chunk
                parts = [ist_strings(times[start:stop]).tolist()] + [c[start:stop].tolist() for c in columns]
                fh.write("".join(map(fmt.format, *parts)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _durations(values) -> list[str]:
    return pd.Series(pd.to_timedelta(values), dtype="timedelta64[ns]").astype(str).tolist()


def _times(series: pd.Series) -> np.ndarray | list:
    if not len(series):
        return []
    return ist_strings(pd.DatetimeIndex(series).as_unit("ns").asi8)


def write_trades(result: RunResult, path: Path) -> Path:
    t = result.trades
    names = {k: (v.display_name if v else k) for k, v in result.instruments.items()}
    df = pd.DataFrame({
        "instrument": t["instrument"].map(names) if len(t) else [],
        "instrument_id": t["instrument"],
        "strategy": t["strategy"],
        "side": t["side"],
        "size": t["size"].abs() if len(t) else [],
        "entry_time": _times(t["entry_time"]),
        "entry_price": t["entry_price"],
        "exit_time": _times(t["exit_time"]),
        "exit_price": t["exit_price"],
        "pnl": t["pnl"],
        "return_pct": t["return_pct"] * 100 if len(t) else [],
        "commission": t["commission"],
        "duration": _durations(t["duration"]) if len(t) else [],
    })
    return atomic_write_bytes(path, _csv(df))


def write_orders(result: RunResult, path: Path) -> Path:
    o = result.orders
    df = pd.DataFrame({
        "order_id": [x.order_id for x in o], "strategy": [x.strategy_id for x in o],
        "instrument": [x.instrument for x in o], "side": [x.side.value for x in o],
        "order_type": [x.order_type.value for x in o], "quantity": [x.quantity for x in o],
        "limit_price": ["" if x.limit_price is None else x.limit_price for x in o],
        "status": [x.status.value for x in o], "filled_quantity": [x.filled_quantity for x in o],
        "average_price": [x.average_price if x.filled_quantity else "" for x in o],
        "commission": [x.commission for x in o],
        "created_time": ist_strings(np.array([x.created_ts for x in o], dtype=np.int64)) if o else [],
        "updated_time": ist_strings(np.array([x.updated_ts for x in o], dtype=np.int64)) if o else [],
        "tag": [x.tag or "" for x in o], "reason": [x.reason for x in o],
    })
    return atomic_write_bytes(path, _csv(df))


def write_fills(result: RunResult, path: Path) -> Path:
    f = result.fills
    df = pd.DataFrame({
        "fill_id": [x.fill_id for x in f], "order_id": [x.order_id for x in f],
        "strategy": [x.strategy_id for x in f], "instrument": [x.instrument for x in f],
        "side": [x.side.value for x in f], "quantity": [x.quantity for x in f],
        "price": [x.price for x in f], "commission": [x.commission for x in f],
        "time": ist_strings(np.array([x.ts for x in f], dtype=np.int64)) if f else [],
    })
    return atomic_write_bytes(path, _csv(df))


def write_equity(result: RunResult, path: Path) -> Path:
    """Equity, cash and buy & hold at every bar (plus each strategy's P&L when there are several)."""
    header = ["timestamp", "equity", "cash", "buy_and_hold"]
    columns = [result.equity, result.cash, result.benchmark]
    if len(result.strategy_pnl) > 1:
        for sid, pnl in result.strategy_pnl.items():
            header.append(f"pnl:{sid}")
            columns.append(pnl)
    return _write_rows(path, header, result.index.as_unit("ns").asi8, columns)


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


def write_metadata(path: Path, *, config_hash: str, config_path: str, data_files: list[Path],
                   bars: int, elapsed_s: float, notes: list[str]) -> Path:
    packages = {}
    for name in ("algocli", "numpy", "pandas", "ta-lib", "plotly", "pydantic", "typer", "rich"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    meta = {
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
