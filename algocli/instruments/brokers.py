"""Read each broker's instrument file into ``Instrument`` rows with canonical names.

Dhan publishes a compact CSV scrip master (brokers.md A11), Upstox a gzipped JSON array
(B2). Both give tick sizes in paise; here they become rupees. Rows this project cannot
trade or name (currency and commodity contracts, spreads, unknown kinds) are skipped and
counted, not guessed at.

Index names differ between the files (Dhan's trading symbol ``BANKNIFTY`` is Upstox's
``Nifty Bank``), so both are mapped through ``INDEX_ALIASES`` to the index's NSE/BSE name.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from algocli.errors import DataError
from algocli.instruments.hrn import derivative_hrn, plain_hrn
from algocli.instruments.model import Instrument

__all__ = ["DHAN_COLUMNS", "INDEX_ALIASES", "read_dhan_master", "read_upstox_master"]

IST = timezone(timedelta(hours=5, minutes=30))

#: Short index symbols → the index's own name, as both brokers and NSE/BSE spell it in full.
INDEX_ALIASES = {
    "NIFTY": "NIFTY 50", "BANKNIFTY": "NIFTY BANK", "FINNIFTY": "NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NIFTY MID SELECT", "NIFTYNXT50": "NIFTY NEXT 50", "NIFTY NEXT 50": "NIFTY NEXT 50",
    "INDIAVIX": "INDIA VIX", "NIFTY FINANCIAL SERVICES": "NIFTY FIN SERVICE",
}

DHAN_COLUMNS = ("SEM_EXM_EXCH_ID", "SEM_SEGMENT", "SEM_SMST_SECURITY_ID", "SEM_INSTRUMENT_NAME",
                "SEM_TRADING_SYMBOL", "SEM_LOT_UNITS", "SEM_CUSTOM_SYMBOL", "SEM_EXPIRY_DATE",
                "SEM_STRIKE_PRICE", "SEM_OPTION_TYPE", "SEM_TICK_SIZE")
_DHAN_FNO = {"FUTIDX", "FUTSTK", "OPTIDX", "OPTSTK"}
_UPSTOX_KINDS = {"EQ", "INDEX", "FUT", "CE", "PE"}
_EXCHANGES = {"NSE", "BSE"}


def index_name(text: str) -> str:
    """``BANKNIFTY`` or ``Nifty Bank`` → ``NIFTY BANK``."""
    upper = " ".join(text.upper().split())
    return INDEX_ALIASES.get(upper, upper)


def _tick(paise: object) -> float:
    """Paise → rupees. Dhan's index rows give ``0.0500`` in rupees; no real tick is under
    one paisa, so a value below 1 is taken as rupees already."""
    value = float(paise)
    if value <= 0:
        return 0.05
    return round(value if value < 1 else value / 100.0, 4)


def _kept(rows: Iterable[Instrument | None]) -> tuple[list[Instrument], int]:
    """The rows that are instruments, and how many were not (skipped)."""
    out: list[Instrument] = []
    skipped = 0
    for inst in rows:
        if inst is None:
            skipped += 1
        else:
            out.append(inst)
    return out, skipped


def read_dhan_master(path: Path) -> tuple[list[Instrument], int]:
    """Instruments from Dhan's compact scrip master (``api-scrip-master.csv``).

    Returns:
        The rows as instruments (NSE/BSE equity, indices and F&O), and how many rows
        were skipped.

    Raises:
        DataError: The file is not the compact scrip master.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c in DHAN_COLUMNS)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read Dhan's scrip master ({exc}); delete it and refresh") from None
    missing = [c for c in DHAN_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"is not Dhan's compact scrip master (no {', '.join(missing)}); delete it and refresh")
    return _kept(_dhan_row(row) for row in frame.itertuples(index=False))


def _dhan_row(row) -> Instrument | None:
    exchange, kind_name = row.SEM_EXM_EXCH_ID.strip().upper(), row.SEM_INSTRUMENT_NAME.strip().upper()
    ident, symbol = row.SEM_SMST_SECURITY_ID.strip(), row.SEM_TRADING_SYMBOL.strip()
    if exchange not in _EXCHANGES or not ident or not symbol:
        return None
    try:
        lot = max(1, int(float(row.SEM_LOT_UNITS or 1)))
        tick = _tick(row.SEM_TICK_SIZE or 5)
        if kind_name == "EQUITY":
            return Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol.upper(), row.SEM_CUSTOM_SYMBOL,
                              lot_size=lot, tick_size=tick, token=ident, dhan_id=f"{exchange}_EQ:{ident}",
                              dhan_instrument="EQUITY")
        if kind_name == "INDEX":
            name = index_name(symbol)
            return Instrument(plain_hrn(exchange, name), exchange, "INDEX", name, row.SEM_CUSTOM_SYMBOL,
                              tick_size=tick, dhan_id=f"IDX_I:{ident}", dhan_instrument="INDEX")
        if kind_name not in _DHAN_FNO:
            return None
        expiry = date.fromisoformat(row.SEM_EXPIRY_DATE.strip()[:10])
        underlying = symbol.split("-")[0].upper()
        option = row.SEM_OPTION_TYPE.strip().upper()
        kind = "FUT" if kind_name.startswith("FUT") else option
        if kind not in ("FUT", "CE", "PE"):
            return None
        strike = float(row.SEM_STRIKE_PRICE) if kind != "FUT" else None
    except (ValueError, TypeError):
        return None
    return Instrument(derivative_hrn(exchange, underlying, expiry, kind, strike), exchange, kind, underlying,
                      row.SEM_CUSTOM_SYMBOL, expiry=expiry, strike=strike, lot_size=lot, tick_size=tick,
                      token=ident, dhan_id=f"{exchange}_FNO:{ident}", dhan_instrument=kind_name)


def read_upstox_master(path: Path) -> tuple[list[Instrument], int]:
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
    return _kept(_upstox_row(row) if isinstance(row, dict) else None for row in rows)


def _upstox_row(row: dict) -> Instrument | None:
    exchange = str(row.get("exchange") or "").upper()
    kind = str(row.get("instrument_type") or "").upper()
    key = str(row.get("instrument_key") or "")
    if exchange not in _EXCHANGES or kind not in _UPSTOX_KINDS or "|" not in key:
        return None
    try:
        lot = max(1, int(float(row.get("lot_size") or 1)))
        tick = _tick(row.get("tick_size") or 5)
        token = str(row.get("exchange_token") or "")
        name = str(row.get("name") or "")
        if kind == "EQ":
            symbol = str(row.get("trading_symbol") or "").upper()
            if not symbol:
                return None
            return Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol, name, lot_size=lot, tick_size=tick,
                              isin=str(row.get("isin") or ""), token=token, upstox_key=key)
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
                      expiry=expiry, strike=strike, lot_size=lot, tick_size=tick, token=token, upstox_key=key)
