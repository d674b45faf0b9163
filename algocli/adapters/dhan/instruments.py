"""Dhan's compact scrip master (``api-scrip-master.csv``) as ``Instrument`` rows.

Format: https://dhanhq.co/docs/v2/instruments/ (the compact CSV, one row per security).
Tick sizes are in paise there and become rupees here. Rows this project cannot trade or
name (currency and commodity contracts, spreads, unknown kinds) are skipped and counted.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from algocli.domain.hrn import derivative_hrn, plain_hrn
from algocli.errors import DataError
from algocli.instruments.brokers import EXCHANGES, index_name, kept, tick_rupees
from algocli.instruments.model import Instrument

__all__ = ["COLUMNS", "read_master"]

COLUMNS = ("SEM_EXM_EXCH_ID", "SEM_SEGMENT", "SEM_SMST_SECURITY_ID", "SEM_INSTRUMENT_NAME",
           "SEM_TRADING_SYMBOL", "SEM_LOT_UNITS", "SEM_CUSTOM_SYMBOL", "SEM_EXPIRY_DATE",
           "SEM_STRIKE_PRICE", "SEM_OPTION_TYPE", "SEM_TICK_SIZE")
_FNO = {"FUTIDX", "FUTSTK", "OPTIDX", "OPTSTK"}


def read_master(path: Path) -> tuple[list[Instrument], int]:
    """Instruments from Dhan's compact scrip master (``api-scrip-master.csv``).

    Returns:
        The rows as instruments (NSE/BSE equity, indices and F&O), and how many rows
        were skipped.

    Raises:
        DataError: The file is not the compact scrip master.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c in COLUMNS)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read Dhan's scrip master ({exc}); delete it and refresh") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"is not Dhan's compact scrip master (no {', '.join(missing)}); delete it and refresh")
    return kept(_row(row) for row in frame.itertuples(index=False))


def _row(row) -> Instrument | None:
    exchange, kind_name = row.SEM_EXM_EXCH_ID.strip().upper(), row.SEM_INSTRUMENT_NAME.strip().upper()
    ident, symbol = row.SEM_SMST_SECURITY_ID.strip(), row.SEM_TRADING_SYMBOL.strip()
    if exchange not in EXCHANGES or not ident or not symbol:
        return None
    try:
        lot = max(1, int(float(row.SEM_LOT_UNITS or 1)))
        tick = tick_rupees(row.SEM_TICK_SIZE or 5)
        if kind_name == "EQUITY":
            return Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol.upper(), row.SEM_CUSTOM_SYMBOL,
                              lot_size=lot, tick_size=tick, token=ident, dhan_id=f"{exchange}_EQ:{ident}",
                              dhan_instrument="EQUITY")
        if kind_name == "INDEX":
            name = index_name(symbol)
            return Instrument(plain_hrn(exchange, name), exchange, "INDEX", name, row.SEM_CUSTOM_SYMBOL,
                              tick_size=tick, dhan_id=f"IDX_I:{ident}", dhan_instrument="INDEX")
        if kind_name not in _FNO:
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
