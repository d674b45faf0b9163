"""Dhan's and Upstox's instrument files, built from the bundled instrument list and served locally.

The sandbox names instruments by Dhan id (``NSE_EQ:2885``, its data files' names). A client
that starts from a broker's instrument master needs that master too, in the broker's own
format, so it can find ``2885`` for ``RELIANCE`` (Dhan) or ``NSE_EQ|INE002A01018`` (Upstox).
This module writes both, byte for byte in the real layouts (https://dhanhq.co/docs/v2/instruments/
and https://upstox.com/developer/api-documentation/instruments), from
``Instrument`` rows (``data/instruments.csv``):

* Dhan compact CSV (``/api-data/api-scrip-master.csv``) and detailed CSV
  (``/api-data/api-scrip-master-detailed.csv``, the first 17 columns only). Segment letters
  ``E`` (equity), ``I`` (index), ``D`` (NSE/BSE derivatives), ``M`` (MCX). Tick sizes in
  paise (``5.0000`` for ₹0.05). Derivatives expire at ``14:30:00`` (compact) or on the bare
  date (detailed); futures have strike ``-0.01000`` and option type ``XX``. Index rows copy
  the real file's constants, including its tick ``0.0500``, which is not a paise value.
* Upstox ``complete.json.gz`` and the per-exchange ``NSE``, ``BSE`` and ``MCX`` files
  (``/market-quote/instruments/exchange/{name}.json.gz``): a gzipped compact JSON array.
  ``tick_size`` in paise, ``expiry`` in epoch milliseconds at 23:59:59 IST of the expiry
  day, index rows with only the fields the real file gives them.

A row lands in a broker's file only when it has that broker's id (``dhan_id``,
``upstox_key``). A row's ``freeze_quantity`` is published, and the sandbox's exchange refuses
orders above it (``freeze_limits``). Values the bundled list does not carry are filled as the
real files do for the common case: equity freeze quantity 100000, a derivative's freeze quantity 24 lots
(NIFTY's in 2024), ``security_type`` ``NORMAL``.

``UpstoxKeys`` lets the sandbox's Upstox routes accept a real key from the list
(``NSE_EQ|INE002A01018``) as another name of the sandbox instrument (``NSE_EQ:2885``),
besides the default ``SEGMENT|ID`` spelling (``NSE_EQ|2885``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

from algocli.adapters.upstox.parsing import from_instrument_key
from algocli.instruments.cache import SANDBOX_LIST_HEADER
from algocli.instruments.hrn import MONTHS, format_strike
from algocli.instruments.model import Instrument
from algocli.instruments.table import read_instruments
from algocli.sandbox.replay import IST

__all__ = ["DHAN_COMPACT_COLUMNS", "DHAN_COMPACT_PATH", "DHAN_DETAILED_COLUMNS", "DHAN_DETAILED_PATH",
           "INSTRUMENTS_FILE", "INSTRUMENT_FILES", "UPSTOX_FILES", "UPSTOX_KEYS", "UPSTOX_PATH", "InstrumentFiles",
           "UpstoxKeys", "add_routes", "dhan_compact_csv", "dhan_detailed_csv", "display_name", "freeze_limits",
           "freeze_quantity", "load_instruments", "option_ids", "trading_symbol", "upstox_json_gz", "upstox_rows",
           "upstox_symbol"]

INSTRUMENTS_FILE = "instruments.csv"
DHAN_COMPACT_PATH = "/api-data/api-scrip-master.csv"
DHAN_DETAILED_PATH = "/api-data/api-scrip-master-detailed.csv"
UPSTOX_PATH = "/market-quote/instruments/exchange/{name}.json.gz"
UPSTOX_FILES = ("complete", "NSE", "BSE", "MCX")

DHAN_COMPACT_COLUMNS = (
    "SEM_EXM_EXCH_ID", "SEM_SEGMENT", "SEM_SMST_SECURITY_ID", "SEM_INSTRUMENT_NAME", "SEM_EXPIRY_CODE",
    "SEM_TRADING_SYMBOL", "SEM_LOT_UNITS", "SEM_CUSTOM_SYMBOL", "SEM_EXPIRY_DATE", "SEM_STRIKE_PRICE",
    "SEM_OPTION_TYPE", "SEM_TICK_SIZE", "SEM_EXPIRY_FLAG", "SEM_EXCH_INSTRUMENT_TYPE", "SEM_SERIES",
    "SM_SYMBOL_NAME")
DHAN_DETAILED_COLUMNS = (
    "EXCH_ID", "SEGMENT", "SECURITY_ID", "ISIN", "INSTRUMENT", "UNDERLYING_SECURITY_ID", "UNDERLYING_SYMBOL",
    "SYMBOL_NAME", "DISPLAY_NAME", "INSTRUMENT_TYPE", "SERIES", "LOT_SIZE", "SM_EXPIRY_DATE", "STRIKE_PRICE",
    "OPTION_TYPE", "TICK_SIZE", "EXPIRY_FLAG")

# Both brokers spell an index by its derivatives' root, not its long name.
INDEX_SYMBOLS = {"NIFTY 50": "NIFTY", "NIFTY BANK": "BANKNIFTY", "NIFTY FIN SERVICE": "FINNIFTY",
                 "NIFTY MID SELECT": "MIDCPNIFTY", "NIFTY NEXT 50": "NIFTYNXT50"}
_DHAN_INDEX_TICK = "0.0500"  # what the real master lists for every index, whatever the index's step
_EQUITY_FREEZE = 100000.0
_FREEZE_LOTS = 24  # NIFTY's freeze limit in 2024 (1800 units, 24 lots of 75)
_NO_EXPIRY = "0001-01-01"  # Dhan's expiry date on index rows
_SUFFIXES = ("LIMITED", "LTD.", "LTD")


# --- shared names ---------------------------------------------------------------------------


def trading_symbol(inst: Instrument) -> str:
    """An equity's or index's exchange symbol as both brokers list it (``NIFTY`` for NIFTY 50)."""
    if inst.kind == "INDEX":
        return INDEX_SYMBOLS.get(inst.symbol.upper(), inst.symbol.upper())
    return inst.symbol


def display_name(inst: Instrument) -> str:
    """The brokers' short display name: ``HDFC BANK LTD`` → ``HDFC Bank``; an index's own name."""
    if inst.kind != "EQ" or not inst.name:
        return inst.name or inst.symbol
    words = inst.name.split()
    while len(words) > 1 and words[-1].upper() in _SUFFIXES:
        words.pop()
    # words without a vowel are initials (HDFC, TCS): they stay in capitals
    return " ".join(w if not any(c in "AEIOU" for c in w.upper()) else w.capitalize() for w in words)


def freeze_quantity(inst: Instrument) -> int:
    """The most units one order for ``inst`` may carry: the list's value, else the real files' common one."""
    if inst.freeze_quantity:
        return int(inst.freeze_quantity)
    return int(_EQUITY_FREEZE) if inst.kind == "EQ" else inst.lot_size * _FREEZE_LOTS


def freeze_limits(instruments: Iterable[Instrument]) -> dict[str, int]:
    """Sandbox instrument id (the Dhan id) → its freeze quantity, for the matching engine."""
    return {inst.dhan_id: freeze_quantity(inst) for inst in instruments if inst.dhan_id and inst.kind != "INDEX"}


def option_ids(instruments: Iterable[Instrument]) -> frozenset[str]:
    """Sandbox ids (Dhan ids) of the options in the list: the matching engine leaves them without a
    price band, since the exchange's ranges for options are delta-based (``algocli.sandbox.rules``)."""
    return frozenset(inst.dhan_id for inst in instruments if inst.dhan_id and inst.option_type)


def _weekly(expiry: date) -> bool:
    """A weekly contract expires with another expiry of its kind still ahead in the same month."""
    return (expiry + timedelta(days=7)).month == expiry.month


def _paise(rupees: float) -> float:
    return round(rupees * 100, 4)


def _underlyings(rows: Sequence[Instrument]) -> dict[tuple[str, str], Instrument]:
    """(exchange, symbol) → the index or equity row that derivatives of ``symbol`` are written on."""
    out: dict[tuple[str, str], Instrument] = {}
    for inst in rows:
        if inst.kind in ("INDEX", "EQ"):
            out.setdefault((inst.exchange, trading_symbol(inst)), inst)
    return out


# --- Dhan ----------------------------------------------------------------------------------


def _security_id(inst: Instrument) -> str:
    return inst.dhan_id.partition(":")[2]


def _dhan_segment(inst: Instrument) -> str:
    if inst.kind == "INDEX":
        return "I"
    if inst.kind == "EQ":
        return "E"
    return "M" if inst.exchange == "MCX" else "D"


def _dhan_instrument(inst: Instrument, underlying: Instrument | None) -> str:
    if inst.dhan_instrument:
        return inst.dhan_instrument
    stock = underlying is not None and underlying.kind == "EQ"
    return {"EQ": "EQUITY", "INDEX": "INDEX", "FUT": "FUTSTK" if stock else "FUTIDX"}.get(
        inst.kind, "OPTSTK" if stock else "OPTIDX")


def _dhan_exch_type(inst: Instrument, instrument: str) -> str:
    if inst.kind == "EQ":
        return "ES"
    if inst.kind == "INDEX":
        return "INDEX"
    if inst.exchange == "NSE":
        return "FUT" if inst.kind == "FUT" else "OP"
    return instrument  # BSE and MCX repeat the instrument name here


def _dhan_trading_symbol(inst: Instrument) -> str:
    if not inst.is_derivative or inst.expiry is None:
        return trading_symbol(inst)
    month = f"{MONTHS[inst.expiry.month - 1].capitalize()}{inst.expiry.year}"
    if inst.kind == "FUT":
        return f"{inst.symbol}-{month}-FUT"
    return f"{inst.symbol}-{month}-{format_strike(inst.strike or 0.0)}-{inst.option_type}"


def _dhan_custom_symbol(inst: Instrument) -> str:
    if not inst.is_derivative or inst.expiry is None:
        return display_name(inst)
    month = MONTHS[inst.expiry.month - 1]
    if inst.kind == "FUT":
        return f"{inst.symbol} {month} FUT"
    side = "CALL" if inst.option_type == "CE" else "PUT"
    return f"{inst.symbol} {inst.expiry.day:02d} {month} {format_strike(inst.strike or 0.0)} {side}"


def _expiry_codes(rows: Sequence[Instrument]) -> dict[str, int]:
    """Dhan's expiry code of each future: 0 for the near month, 1 for the next, ... per underlying."""
    by_root: dict[tuple[str, str], list[Instrument]] = {}
    for inst in rows:
        if inst.kind == "FUT" and inst.expiry is not None:
            by_root.setdefault((inst.exchange, inst.symbol), []).append(inst)
    codes: dict[str, int] = {}
    for futures in by_root.values():
        expiries = sorted({f.expiry for f in futures})
        codes.update({f.hrn: expiries.index(f.expiry) for f in futures})
    return codes


@dataclass(frozen=True, slots=True)
class _DhanRow:
    """The values both Dhan layouts share, worked out once per instrument."""

    inst: Instrument
    underlying: Instrument | None
    instrument: str
    symbol: str
    custom: str
    strike: str
    option: str
    tick: str
    flag: str
    exch_type: str


def _dhan_rows(instruments: Iterable[Instrument]) -> tuple[list[_DhanRow], dict[str, int]]:
    rows = [i for i in instruments if i.dhan_id]
    underlyings = _underlyings(rows)
    out = []
    for inst in rows:
        underlying = underlyings.get((inst.exchange, inst.symbol)) if inst.is_derivative else None
        instrument = _dhan_instrument(inst, underlying)
        if inst.is_derivative:
            strike = "-0.01000" if inst.kind == "FUT" else f"{inst.strike or 0.0:.5f}"
            option = "XX" if inst.kind == "FUT" else inst.option_type
            flag = "W" if inst.expiry is not None and inst.kind != "FUT" and _weekly(inst.expiry) else "M"
        else:
            strike, option, flag = "", "XX" if inst.kind == "INDEX" else "", ""
        tick = _DHAN_INDEX_TICK if inst.kind == "INDEX" else f"{_paise(inst.tick_size):.4f}"
        out.append(_DhanRow(inst, underlying, instrument, _dhan_trading_symbol(inst), _dhan_custom_symbol(inst),
                            strike, option, tick, flag, _dhan_exch_type(inst, instrument)))
    return out, _expiry_codes(rows)


def _csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)
    return buf.getvalue().encode("utf-8")


def dhan_compact_csv(instruments: Iterable[Instrument]) -> bytes:
    """Dhan's compact scrip master (``api-scrip-master.csv``) for the rows with a ``dhan_id``, in order."""
    rows, codes = _dhan_rows(instruments)
    lines = []
    for r in rows:
        inst = r.inst
        if inst.is_derivative and inst.expiry is not None:
            expiry = f"{inst.expiry.isoformat()} {'23:30:00' if inst.exchange == 'MCX' else '14:30:00'}"
        else:
            expiry = _NO_EXPIRY if inst.kind == "INDEX" else ""
        if inst.kind == "EQ":
            flag, series, name = "NA", "EQ" if inst.exchange == "NSE" else "A", inst.name
        elif inst.kind == "INDEX":
            flag, series, name = "", "X", r.symbol
        else:  # Dhan leaves a derivative's symbol name blank
            flag, series, name = r.flag, "NA", ""
        lines.append((inst.exchange, _dhan_segment(inst), _security_id(inst), r.instrument,
                      str(codes.get(inst.hrn, 0)), r.symbol, f"{inst.lot_size:.1f}", r.custom, expiry, r.strike,
                      r.option, r.tick, flag, r.exch_type, series, name))
    return _csv(DHAN_COMPACT_COLUMNS, lines)


def dhan_detailed_csv(instruments: Iterable[Instrument]) -> bytes:
    """Dhan's detailed scrip master (``api-scrip-master-detailed.csv``), its first 17 columns."""
    rows, _ = _dhan_rows(instruments)
    lines = []
    for r in rows:
        inst = r.inst
        if inst.kind == "EQ":
            isin, under_id, under_sym, name, series = inst.isin or "NA", "", inst.symbol, inst.name, "EQ"
            expiry, flag = "", "NA"
        elif inst.kind == "INDEX":
            isin, under_id, under_sym, name, series = "NA", _security_id(inst), r.symbol, r.symbol, "NA"
            expiry, flag = _NO_EXPIRY, "N"
        else:
            # the underlying's exchange token (26000 for NIFTY, not Dhan's 13), as the real file gives it
            under_id = r.underlying.token if r.underlying is not None else ""
            isin, under_sym, name, series = "NA", inst.symbol, r.symbol, "NA"
            expiry, flag = inst.expiry.isoformat() if inst.expiry else "", r.flag
        lines.append((inst.exchange, _dhan_segment(inst), _security_id(inst), isin, r.instrument, under_id,
                      under_sym, name, r.custom, r.exch_type, series, f"{inst.lot_size:.1f}", expiry, r.strike,
                      r.option, r.tick, flag))
    return _csv(DHAN_DETAILED_COLUMNS, lines)


# --- Upstox --------------------------------------------------------------------------------


def _expiry_ms(day: date) -> int:
    """Upstox's expiry: epoch milliseconds of 23:59:59 IST on the expiry day."""
    return int(datetime.combine(day, dtime(23, 59, 59), IST).timestamp()) * 1000


def upstox_symbol(inst: Instrument) -> str:
    """The ``trading_symbol`` Upstox gives ``inst`` (``RELIANCE``, ``NIFTY 24000 CE 26 DEC 24``)."""
    if not inst.is_derivative or inst.expiry is None:
        return trading_symbol(inst)
    expiry = inst.expiry
    stamp = f"{expiry.day:02d} {MONTHS[expiry.month - 1]} {expiry.year % 100:02d}"
    if inst.kind == "FUT":
        return f"{inst.symbol} FUT {stamp}"
    return f"{inst.symbol} {format_strike(inst.strike or 0.0)} {inst.option_type} {stamp}"


def _upstox_row(inst: Instrument, underlying: Instrument | None) -> dict:
    segment, _, ident = inst.upstox_key.partition("|")
    token = inst.token or ident
    if inst.kind == "INDEX":  # the real index rows carry no lot, tick or freeze fields
        return {"segment": segment, "name": inst.name or inst.symbol, "exchange": inst.exchange,
                "instrument_type": "INDEX", "instrument_key": inst.upstox_key, "exchange_token": token,
                "trading_symbol": trading_symbol(inst)}
    if inst.kind == "EQ":
        row = {"segment": segment, "name": inst.name or inst.symbol, "exchange": inst.exchange, "isin": inst.isin,
               "instrument_type": "EQ", "instrument_key": inst.upstox_key, "lot_size": inst.lot_size,
               "freeze_quantity": float(freeze_quantity(inst)), "exchange_token": token, "tick_size": _paise(inst.tick_size),
               "trading_symbol": inst.symbol, "short_name": display_name(inst), "qty_multiplier": 1.0}
        if segment == "NSE_EQ":  # Upstox sets it on NSE equities only
            row["security_type"] = "NORMAL"
        return row
    expiry = inst.expiry
    row = {"weekly": bool(expiry and inst.kind != "FUT" and _weekly(expiry)), "segment": segment,
           "name": inst.symbol, "exchange": inst.exchange}
    if expiry is not None:
        row["expiry"] = _expiry_ms(expiry)
    row.update({"instrument_type": inst.contract, "asset_symbol": inst.symbol, "underlying_symbol": inst.symbol,
                "instrument_key": inst.upstox_key, "lot_size": inst.lot_size,
                "freeze_quantity": float(freeze_quantity(inst)), "exchange_token": token,
                "minimum_lot": inst.lot_size})
    if underlying is not None and underlying.upstox_key:
        row["asset_key"] = row["underlying_key"] = underlying.upstox_key
    row["tick_size"] = _paise(inst.tick_size)
    if underlying is not None:
        row["asset_type"] = row["underlying_type"] = "INDEX" if underlying.kind == "INDEX" else "EQUITY"
    row.update({"trading_symbol": upstox_symbol(inst), "strike_price": float(inst.strike or 0.0),
                "qty_multiplier": 1.0})
    return row


def upstox_rows(instruments: Iterable[Instrument]) -> list[dict]:
    """Upstox master rows (the ``complete.json.gz`` layout) for the instruments with an ``upstox_key``, in order."""
    rows = [i for i in instruments if i.upstox_key]
    underlyings = _underlyings(rows)
    return [_upstox_row(i, underlyings.get((i.exchange, i.symbol)) if i.is_derivative else None) for i in rows]


def upstox_json_gz(instruments: Iterable[Instrument], exchange: str | None = None) -> bytes:
    """A gzipped Upstox master: every row (``complete``), or one exchange's rows (``NSE``, ...)."""
    rows = [r for r in upstox_rows(instruments) if exchange is None or r["exchange"] == exchange]
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), mtime=0)  # mtime 0: the same list gives the same bytes


# --- Upstox key aliases ----------------------------------------------------------------------


@dataclass(frozen=True)
class UpstoxKeys:
    """Upstox instrument keys from the instrument list, as names of the sandbox's instruments.

    Attributes:
        aliases: Upstox key → sandbox instrument id, for keys the default rule would not
            map there (``NSE_EQ|INE002A01018`` → ``NSE_EQ:2885``, ``NSE_FO|35019`` →
            ``NSE_FNO:35019``).
        symbols: Upstox key → trading symbol (``RELIANCE``), for order and position rows.
    """

    aliases: Mapping[str, str] = field(default_factory=dict)
    symbols: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, instruments: Iterable[Instrument]) -> UpstoxKeys:
        """The keys of ``instruments``; a row names its sandbox instrument by its ``dhan_id``."""
        aliases: dict[str, str] = {}
        symbols: dict[str, str] = {}
        for inst in instruments:
            if not inst.upstox_key:
                continue
            symbols[inst.upstox_key] = upstox_symbol(inst)
            if inst.dhan_id and from_instrument_key(inst.upstox_key) != inst.dhan_id:
                aliases[inst.upstox_key] = inst.dhan_id
        return cls(aliases, symbols)

    def instrument(self, key: str) -> str:
        """The sandbox instrument a key names: its alias, else ``SEGMENT|ID`` → ``SEGMENT:ID``."""
        return self.aliases.get(key) or from_instrument_key(key)

    def trading_symbol(self, key: str) -> str:
        """The key's trading symbol from the list, else the key's identifier."""
        return self.symbols.get(key) or key.partition("|")[2]

    def by_instrument(self) -> dict[str, str]:
        """Sandbox instrument id → its real Upstox key (the aliases turned round)."""
        return {instrument: key for key, instrument in self.aliases.items()}


UPSTOX_KEYS = web.AppKey("upstox_keys", UpstoxKeys)


# --- serving ---------------------------------------------------------------------------------


def load_instruments(data_dir: Path) -> tuple[list[Instrument], float | None]:
    """``<data_dir>/instruments.csv`` and its modification time, or ``([], None)`` without one.

    Raises:
        DataError: The file exists but cannot be read.
    """
    path = Path(data_dir) / INSTRUMENTS_FILE
    if not path.is_file():
        return [], None
    return read_instruments(path), path.stat().st_mtime


@dataclass
class InstrumentFiles:
    """State of the instrument-file routes, on the app as ``app[INSTRUMENT_FILES]``.

    Attributes:
        files: Path → (body, content type), built once when the app is built.
        modified: ``Last-Modified`` in whole epoch seconds (HTTP dates have no fraction,
            so a client's ``If-Modified-Since`` compares equal to it).
        requests: Paths requested, in order.
    """

    files: dict[str, tuple[bytes, str]]
    modified: int
    requests: list[str] = field(default_factory=list)


INSTRUMENT_FILES = web.AppKey("instrument_files", InstrumentFiles)


def add_routes(app: web.Application, instruments: Sequence[Instrument], *, dhan: bool = True, upstox: bool = True,
               modified: float | None = None) -> InstrumentFiles:
    """Serve the brokers' instrument files for ``instruments`` (no auth, as the real hosts).

    Args:
        app: The sandbox application.
        instruments: The list to publish; empty gives header-only CSVs and empty JSON arrays.
        dhan, upstox: Which broker's files to serve.
        modified: ``Last-Modified`` time (epoch seconds); default now. A request whose
            ``If-Modified-Since`` is not older gets 304, as from the real CDNs.
    """
    files: dict[str, tuple[bytes, str]] = {}
    if dhan:
        files[DHAN_COMPACT_PATH] = (dhan_compact_csv(instruments), "text/csv")
        files[DHAN_DETAILED_PATH] = (dhan_detailed_csv(instruments), "text/csv")
    if upstox:
        for name in UPSTOX_FILES:
            body = upstox_json_gz(instruments, None if name == "complete" else name)
            files[UPSTOX_PATH.format(name=name)] = (body, "application/gzip")
    state = InstrumentFiles(files, int(modified if modified is not None else time.time()))
    app[INSTRUMENT_FILES] = state
    for path in files:
        app.router.add_get(path, _serve_file)
    return state


async def _serve_file(request: web.Request) -> web.Response:
    state = request.app[INSTRUMENT_FILES]
    state.requests.append(request.path)
    body, content_type = state.files[request.path]
    headers = {"Last-Modified": formatdate(state.modified, usegmt=True), SANDBOX_LIST_HEADER: "1"}
    since = request.headers.get("If-Modified-Since")
    if since:
        try:
            if parsedate_to_datetime(since).timestamp() >= state.modified:
                return web.Response(status=304, headers=headers)
        except (TypeError, ValueError):
            pass  # an unreadable date: send the file
    return web.Response(body=body, content_type=content_type, headers=headers)
