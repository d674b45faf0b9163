"""Upstox's instrument file (``complete.json.gz``) as ``Instrument`` rows.

Format: https://upstox.com/developer/api-documentation/instruments (a gzipped JSON array).
Tick sizes are in paise there and become rupees here. Rows this project cannot trade or
name (currency and commodity contracts, unknown kinds) are skipped and counted.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime
from pathlib import Path

from algocli.domain.hrn import derivative_hrn, plain_hrn
from algocli.errors import DataError
from algocli.instruments.brokers import EXCHANGES, IST, index_name, kept, tick_rupees
from algocli.instruments.model import Instrument

__all__ = ["read_master"]

_KINDS = {"EQ", "INDEX", "FUT", "CE", "PE"}


def read_master(path: Path) -> tuple[list[Instrument], int]:
    """Instruments from Upstox's ``complete.json.gz`` (or an exchange's file).

    Returns:
        The rows as instruments (NSE/BSE equity, indices and F&O), and how many rows
        were skipped.

    Raises:
        DataError: The file is not a gzipped JSON array.
    """
    try:
        raw = Path(path).read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        rows = json.load(io.BytesIO(text))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(path, f"cannot read Upstox's instrument file ({exc}); delete it and refresh") from None
    if not isinstance(rows, list):
        raise DataError(path, "is not Upstox's instrument file (expected a JSON array); delete it and refresh")
    return kept(_row(row) if isinstance(row, dict) else None for row in rows)


def _row(row: dict) -> Instrument | None:
    exchange = str(row.get("exchange") or "").upper()
    kind = str(row.get("instrument_type") or "").upper()
    key = str(row.get("instrument_key") or "")
    if exchange not in EXCHANGES or kind not in _KINDS or "|" not in key:
        return None
    try:
        lot = max(1, int(float(row.get("lot_size") or 1)))
        tick = tick_rupees(row.get("tick_size") or 5)
        token = str(row.get("exchange_token") or "")
        name = str(row.get("name") or "")
        freeze = int(float(row["freeze_quantity"])) if row.get("freeze_quantity") else None
        if kind == "EQ":
            symbol = str(row.get("trading_symbol") or "").upper()
            if not symbol:
                return None
            return Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol, name, lot_size=lot, tick_size=tick,
                              isin=str(row.get("isin") or ""), token=token, upstox_key=key, freeze_quantity=freeze)
        if kind == "INDEX":
            full = index_name(name or str(row.get("trading_symbol") or ""))
            return Instrument(plain_hrn(exchange, full), exchange, "INDEX", full, name, tick_size=tick, upstox_key=key)
        expiry = datetime.fromtimestamp(int(row["expiry"]) / 1000, IST).date()
        underlying = str(row.get("underlying_symbol") or row.get("asset_symbol") or "").upper()
        if not underlying:
            return None
        strike = float(row.get("strike_price") or 0) if kind != "FUT" else None
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        return None
    return Instrument(derivative_hrn(exchange, underlying, expiry, kind, strike), exchange, kind, underlying, name,
                      expiry=expiry, strike=strike, lot_size=lot, tick_size=tick, token=token, upstox_key=key,
                      freeze_quantity=freeze)
