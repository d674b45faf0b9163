"""Index derivative lot sizes by contract expiry, for contracts today's instrument list no longer has.

A broker's master lists live contracts only, so a historical option's lot size comes from this
table: ``algocli/market/data/lot_sizes.csv`` (shipped, every row naming its public source) and the
user's ``$ALGO_LOT_SIZES`` (default ``data/lot_sizes.csv``, same columns, tried first)::

    symbol,cycle,first_expiry,last_expiry,lot,source
    NIFTY,*,2024-05-01,2024-11-30,25,https://zerodha.com/marketintel/bulletin/375282/...

``cycle`` is ``week``, ``month`` or ``*``; ``last_expiry`` empty while in force. A revision applies
to contracts listed after it while the listed ones keep their lot to expiry, so some expiries are
left out on purpose (their lot depended on the listing day): ``lot_size`` returns None for them.
"""

from __future__ import annotations

import csv
import os
from datetime import date
from functools import lru_cache
from pathlib import Path

from algocli.errors import DataError

__all__ = ["lot_size", "user_lot_file"]

SHIPPED = Path(__file__).with_name("data") / "lot_sizes.csv"


def user_lot_file() -> Path:
    """The user's extra table: ``$ALGO_LOT_SIZES``, default ``data/lot_sizes.csv``."""
    return Path(os.environ.get("ALGO_LOT_SIZES") or "data/lot_sizes.csv")


@lru_cache(maxsize=8)
def _rows(path: Path, mtime: float) -> tuple[tuple[str, str, date, date | None, int], ...]:
    out = []
    with path.open(newline="") as fh:
        lines = [line for line in fh if not line.lstrip().startswith("#")]
    for n, row in enumerate(csv.DictReader(lines), start=2):
        try:
            last = (row.get("last_expiry") or "").strip()
            out.append((row["symbol"].strip().upper(), (row.get("cycle") or "*").strip().lower() or "*",
                        date.fromisoformat(row["first_expiry"].strip()), date.fromisoformat(last) if last else None,
                        int(row["lot"])))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{path}: row {n} {row!r}: write symbol,cycle,first_expiry,last_expiry,lot,source "
                            "with ISO dates and a whole lot") from None
    return tuple(out)


def lot_size(symbol: str, expiry: date, cycle: str | None = None, *, user_file: Path | None = None) -> int | None:
    """The lot of ``symbol``'s contract expiring on ``expiry`` (``cycle`` ``week``/``month``; None
    matches only ``*`` rows), or None where neither table knows it."""
    symbol = symbol.upper()
    for path in (user_file or user_lot_file(), SHIPPED):
        if not path.is_file():
            continue
        for sym, cyc, first, last, lot in _rows(path, path.stat().st_mtime):
            if sym == symbol and (cyc == "*" or cyc == cycle) and first <= expiry and (last is None or expiry <= last):
                return lot
    return None
