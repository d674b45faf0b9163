"""The project's own instrument file: one CSV row per ``Instrument``, columns ``COLUMNS``.

Used for the merged master in the cache and for ``data/instruments.csv``, the bundled
list of the sample data's instruments. Dates are ISO (``2024-12-26``), an empty cell is
"none", tick sizes are rupees. Rows are written sorted by HRN, so the same master gives
the same file byte for byte.

The ``kind`` column spells an option by its option type (``CE``/``PE``), as files did
before ``option_type`` had a column of its own; ``CUR`` rows (currency derivatives) carry
theirs in ``option_type``. Columns added since the first files (``ADDED_COLUMNS``) may be
missing from a file and read as empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from algocli.errors import DataError
from algocli.domain.instrument import COLUMNS, CURRENCY, Instrument
from algocli.persistence.artifacts import atomic_write_text

__all__ = ["ADDED_COLUMNS", "cell", "cells", "frame_row", "read_frame", "read_instruments", "write_instruments"]

#: Columns a file written before they existed lacks; they read as empty (the model's default).
ADDED_COLUMNS = ("option_type", "freeze_quantity", "broker_ids")


def cell(value: object) -> str:
    """A field as this file writes it: ``""`` for none, floats without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, tuple):  # broker_ids: "tiny=ABC;other=42"
        return ";".join(f"{broker}={ident}" for broker, ident in value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def cells(inst: Instrument) -> list[str]:
    """``inst``'s row as this file writes it, one cell per ``COLUMNS``."""
    return [cell(_kind_cell(inst) if c == "kind" else getattr(inst, c)) for c in COLUMNS]


def write_instruments(path: Path, rows: Iterable[Instrument]) -> None:
    """Write ``rows`` atomically, sorted by HRN."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    for inst in sorted(rows, key=lambda i: i.hrn):
        out.writerow(cells(inst))
    atomic_write_text(Path(path), buf.getvalue())


def read_instruments(path: Path) -> list[Instrument]:
    """Read a file written by ``write_instruments`` (or by hand in that format).

    Raises:
        DataError: The file is missing, lacks a column, or a row cannot be read.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("hrn", "exchange", "kind", "symbol") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)}; the header must name "
                                      f"{','.join(COLUMNS)}", row=1)
            return [_row(path, n, raw) for n, raw in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise DataError(path, "instrument file not found; run `algo instruments refresh` or restore it") from None


def _kind_cell(inst: Instrument) -> str:
    """The ``kind`` cell: the option type for an option, the kind otherwise."""
    return inst.kind if inst.kind == CURRENCY else inst.contract


def _row(path: Path, line: int, raw: dict[str, str]) -> Instrument:
    try:
        if not raw["exchange"] or not raw["kind"]:
            raise ValueError("exchange and kind must not be empty")
        expiry = raw.get("expiry") or ""
        strike = raw.get("strike") or ""
        freeze = raw.get("freeze_quantity") or ""
        return Instrument(
            hrn=raw["hrn"], exchange=raw["exchange"], kind=raw["kind"], symbol=raw["symbol"], name=raw.get("name") or "",
            expiry=date.fromisoformat(expiry) if expiry else None, strike=float(strike) if strike else None,
            lot_size=int(raw.get("lot_size") or 1), tick_size=float(raw.get("tick_size") or 0.05),
            isin=raw.get("isin") or "", token=raw.get("token") or "", dhan_id=raw.get("dhan_id") or "",
            dhan_instrument=raw.get("dhan_instrument") or "", upstox_key=raw.get("upstox_key") or "",
            option_type=raw.get("option_type") or None, freeze_quantity=int(freeze) if freeze else None,
            broker_ids=_broker_ids(raw.get("broker_ids") or ""))
    except (TypeError, ValueError) as exc:
        raise DataError(path, f"cannot read this instrument ({exc}); fix or delete the row", row=line) from None


def _broker_ids(text: str) -> tuple[tuple[str, str], ...]:
    """The ``broker_ids`` cell (``tiny=ABC;other=42``) as pairs."""
    pairs = []
    for item in filter(None, text.split(";")):
        broker, found, ident = item.partition("=")
        if not found or not broker or not ident:
            raise ValueError(f"broker_ids item {item!r} is not broker=id")
        pairs.append((broker, ident))
    return tuple(pairs)


def read_frame(path: Path):
    """The file as a pandas frame of strings (``""`` for none): fast for a master of
    hundreds of thousands of rows, whose ``Instrument`` objects are built only when asked for.

    Raises:
        DataError: The file is missing or lacks a column.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "instrument file not found; run `algo instruments refresh` or restore it") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read this instrument file ({exc}); delete it and refresh") from None
    for column in ADDED_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; the header must name {','.join(COLUMNS)}",
                        row=1)
    return frame[list(COLUMNS)]


def frame_row(path: Path, line: int, raw: dict[str, str]) -> Instrument:
    """One ``Instrument`` from a row of ``read_frame`` (``line`` for the error message)."""
    return _row(path, line, raw)
