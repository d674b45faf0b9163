"""Dhan market feed v2 wire format: binary packets in, ``Tick`` objects out (and back, for the sandbox).

Every packet starts with an 8-byte little-endian header ``<BHBI``: response code, total
packet length (header included), numeric exchange segment, security id. A WebSocket
message normally carries one packet; ``DhanDecoder.decode`` still frames on the length
field and walks concatenated packets.

What the decoder returns, per packet:

* Ticker (2), Quote (4), Full (8) → ``Tick``. Quote and Full fill ``ltq`` and ``volume``
  (cumulative for the day); Full also fills ``bid``/``ask``/``bid_qty``/``ask_qty`` from
  depth level 1 (None for an empty side) and ``oi`` (None when 0, as for cash equities).
* OI (5) → ``OpenInterest``. OI is also **merged**: the decoder remembers the latest open
  interest per instrument and puts it on every later Quote tick of that instrument (Full
  packets carry their own). OI packets are not turned into ticks because a tick needs a
  traded price, and a price-less tick would corrupt candles.
* Prev close (6) → ``PrevClose``; Market status (7) → ``MarketStatus`` (its body is not
  documented; only the header is read); Server disconnect (50) → ``ServerDisconnect``
  with the reason code (805-810).

Ticks and events name their instrument ``SEGMENT:SECURITY_ID`` (``NSE_EQ:2885``), or by the
name the decoder was given for that id (``DhanDecoder(names=...)``, e.g. ``NSE:RELIANCE``).

LTT is IST wall-clock time written as if it were a UTC epoch; ``Tick.ts`` is the true UTC
instant, ``(ltt - 19800) s``, in nanoseconds.

Prices travel as float32 (1234.55 arrives as 1234.550048828125). Tick prices are rounded
back to the exchange's decimals: 4 for the currency segments, 2 elsewhere, as the official
SDK's ``"%.2f"`` does. Above about 131,072 a float32 cannot hold paise exactly; that loss
is in the wire format itself.

Malformed input never raises: a buffer shorter than a header or than its packet, a length
field that disagrees with the packet type, an unknown response code or segment, or a NaN,
infinite, negative or sub-paisa (< 0.005) price is counted in ``DhanDecoder.malformed`` and skipped. When the
length field cannot be trusted the rest of that message is dropped (the framing is lost);
an unknown code with a plausible length is skipped by its length. A price of exactly 0
(no trade yet) yields no tick and is not counted as malformed.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from algocli.domain.models import Tick

IST_SHIFT_S = 19_800  # LTT is IST wall-clock encoded as UTC: subtract this for the real instant
_NS = 1_000_000_000
_INF = math.inf
_FINE = frozenset({3, 7})  # currency segments quote to 4 decimals; the rest to 2
_MIN_PRICE = 0.005  # below half a paisa a positive price is noise (the smallest tick is 0.0025)

# --- exchange segments (https://dhanhq.co/docs/v2/annexure/#exchange-segment) ---

SEGMENTS: dict[str, int] = {
    "IDX_I": 0,
    "NSE_EQ": 1,
    "NSE_FNO": 2,
    "NSE_CURRENCY": 3,
    "BSE_EQ": 4,
    "MCX_COMM": 5,
    "BSE_CURRENCY": 7,
    "BSE_FNO": 8,
}
SEGMENT_NAMES: dict[int, str] = {code: name for name, code in SEGMENTS.items()}


def segment_code(name: str) -> int:
    """``"NSE_EQ"`` → ``1``. Raises ``ValueError`` naming the valid segments."""
    try:
        return SEGMENTS[name]
    except KeyError:
        raise ValueError(f"unknown Dhan exchange segment {name!r}; use one of {', '.join(SEGMENTS)}") from None


def segment_name(code: int) -> str:
    """``1`` → ``"NSE_EQ"``. Raises ``ValueError`` for codes Dhan does not use (6, 9+)."""
    try:
        return SEGMENT_NAMES[code]
    except KeyError:
        raise ValueError(f"unknown Dhan exchange segment code {code!r}") from None


def split_instrument(instrument: str) -> tuple[int, int]:
    """``"NSE_EQ:1333"`` → ``(1, 1333)``: numeric segment and security id.

    Raises:
        ValueError: not ``SEGMENT:SECURITY_ID``, an unknown segment, or a non-numeric id.
    """
    segment, sep, ident = instrument.partition(":")
    if not sep or not ident.isdigit() or not ident.isascii():
        raise ValueError(f"instrument {instrument!r} is not SEGMENT:SECURITY_ID with a numeric Dhan "
                         "security id (e.g. NSE_EQ:1333)")
    code = segment_code(segment)
    sid = int(ident)
    if sid > 0xFFFFFFFF:
        raise ValueError(f"instrument {instrument!r}: security id does not fit Dhan's 32-bit field")
    return code, sid


def instrument_id(segment: int, security_id: int) -> str:
    """``(1, 1333)`` → ``"NSE_EQ:1333"``."""
    return f"{segment_name(segment)}:{security_id}"


def instrument_id_maps(instrument_ids: Mapping[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """Our instrument names → Dhan ids, checked, and the inverse.

    The engine may name instruments by human-readable names (``NSE:RELIANCE``); Dhan only
    knows ``SEGMENT:SECURITY_ID``. The Dhan ids are normalised (``NSE_EQ:02885`` →
    ``NSE_EQ:2885``) because the inverse is looked up with the ids Dhan sends back.

    Args:
        instrument_ids: Our name → Dhan ``SEGMENT:SECURITY_ID``; None or empty for none.

    Returns:
        ``(forward, inverse)``: our name → normalised Dhan id, and Dhan id → our name.

    Raises:
        ValueError: A Dhan id that is not ``SEGMENT:SECURITY_ID``, or two names for one
            Dhan id (data from Dhan could then carry only one of them, and the other
            name would silently get nothing).
    """
    forward: dict[str, str] = {}
    inverse: dict[str, str] = {}
    for name, dhan in (instrument_ids or {}).items():
        try:
            dhan_id = instrument_id(*split_instrument(dhan))
        except ValueError as exc:
            raise ValueError(f"instrument_ids[{name!r}]: {exc}") from None
        other = inverse.get(dhan_id)
        if other is not None and other != name:
            raise ValueError(f"instrument_ids maps both {other!r} and {name!r} to {dhan_id}; give each Dhan "
                             "instrument one name")
        forward[name] = dhan_id
        inverse[dhan_id] = name
    return forward, inverse


# --- codes -------------------------------------------------------------------------------

INDEX, TICKER, DEPTH, QUOTE, OI, PREV_CLOSE, MARKET_STATUS, FULL = 1, 2, 3, 4, 5, 6, 7, 8
DISCONNECT = 50
PACKET_SIZES = {TICKER: 16, QUOTE: 50, OI: 12, PREV_CLOSE: 16, MARKET_STATUS: 8, FULL: 162, DISCONNECT: 10}

# Client request codes; unsubscribe is subscribe + 1.
REQUEST_DISCONNECT = 12
MODES: dict[str, int] = {"ticker": 15, "quote": 17, "full": 21}
SUBSCRIBE_CODES = frozenset(MODES.values())
UNSUBSCRIBE_CODES = frozenset(code + 1 for code in SUBSCRIBE_CODES)
BATCH_SIZE = 100  # instruments per subscribe message

DISCONNECT_REASONS: dict[int, str] = {
    805: "too many connections or requests (a sixth socket disconnects the oldest)",
    806: "Data APIs not subscribed on this Dhan account",
    807: "access token expired",
    808: "authentication failed / invalid client id",
    809: "access token invalid",
    810: "client id invalid",
}
# Reasons no retry can fix: the token, the client id or the account's data plan.
FATAL_REASONS = frozenset({806, 807, 808, 809, 810})


# --- events other than ticks -------------------------------------------------------------

class PrevClose(NamedTuple):
    """Previous session's close and open interest, sent once per subscribed instrument."""

    instrument: str
    prev_close: float
    prev_oi: int


class OpenInterest(NamedTuple):
    """An open-interest update (also merged into later Quote ticks)."""

    instrument: str
    oi: int


class MarketStatus(NamedTuple):
    """A market-status packet; Dhan does not document its body, so only the header is kept."""

    segment: int
    security_id: int


class ServerDisconnect(NamedTuple):
    """The server is about to close the socket; ``reason`` is 805-810."""

    reason: int

    @property
    def message(self) -> str:
        return DISCONNECT_REASONS.get(self.reason, f"reason code {self.reason}")

    @property
    def fatal(self) -> bool:
        """True when reconnecting cannot help (token, client id or data plan)."""
        return self.reason in FATAL_REASONS


# --- decoding ----------------------------------------------------------------------------

_HEADER = struct.Struct("<BHBI")
_TICKER = struct.Struct("<BHBIfI")
_PREV_CLOSE = _TICKER
_OI = struct.Struct("<BHBII")
_QUOTE = struct.Struct("<BHBIfHIfIIIffff")
# Full up to and including depth level 1; levels 2-5 are not needed for a Tick.
_FULL_L1 = struct.Struct("<BHBIfHIfIIIIIIffffIIHHff")
_DISCONNECT = struct.Struct("<BHBIH")
_DEPTH_LEVEL = struct.Struct("<IIHHff")

Decoded = Tick | PrevClose | OpenInterest | MarketStatus | ServerDisconnect


class DhanDecoder:
    """Decodes feed messages; counts what it has to skip in ``malformed``.

    One decoder per feed: it remembers instrument names and the latest open interest.

    Args:
        names: Dhan ``SEGMENT:SECURITY_ID`` → the name ticks and events should carry
            instead (``{"NSE_EQ:2885": "NSE:RELIANCE"}``); other instruments keep their
            Dhan id.
    """

    __slots__ = ("malformed", "_names", "_oi")

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.malformed = 0
        # Seeded with the caller's names under the same key the packet loop already looks
        # up, so renaming costs nothing per packet.
        self._names: dict[int, str] = {}
        for dhan_id, name in (names or {}).items():
            segment, security_id = split_instrument(dhan_id)
            self._names[segment << 32 | security_id] = name
        self._oi: dict[int, int] = {}

    def _name(self, segment: int, security_id: int) -> str | None:
        name = SEGMENT_NAMES.get(segment)
        if name is None:
            return None
        inst = self._names[segment << 32 | security_id] = f"{name}:{security_id}"
        return inst

    def decode(self, buf: bytes, received_ns: int) -> list[Decoded]:
        """Every packet in ``buf`` as a ``Tick`` or event, in order. Never raises."""
        out: list[Decoded] = []
        n = len(buf)
        off = 0
        names = self._names
        oi_map = self._oi
        while off < n:
            rem = n - off
            if rem < 8:
                self.malformed += 1
                break
            code = buf[off]
            if code == QUOTE:
                if rem < 50:
                    self.malformed += 1
                    break
                (_, length, seg, sid, ltp, ltq, ltt, _atp, volume, _tsq, _tbq,
                 _o, _c, _h, _l) = _QUOTE.unpack_from(buf, off)
                if length != 50:
                    self.malformed += 1
                    break
                off += 50
                if not _MIN_PRICE <= ltp < _INF:
                    if ltp != 0.0:
                        self.malformed += 1
                    continue
                key = seg << 32 | sid
                inst = names.get(key) or self._name(seg, sid)
                if inst is None:
                    self.malformed += 1
                    continue
                scale = 10000.0 if seg in _FINE else 100.0
                out.append(Tick(inst, (ltt - IST_SHIFT_S) * _NS, int(ltp * scale + 0.5) / scale, ltq, volume,
                                None, None, None, None, oi_map.get(key), received_ns))
            elif code == TICKER:
                if rem < 16:
                    self.malformed += 1
                    break
                _, length, seg, sid, ltp, ltt = _TICKER.unpack_from(buf, off)
                if length != 16:
                    self.malformed += 1
                    break
                off += 16
                if not _MIN_PRICE <= ltp < _INF:
                    if ltp != 0.0:
                        self.malformed += 1
                    continue
                key = seg << 32 | sid
                inst = names.get(key) or self._name(seg, sid)
                if inst is None:
                    self.malformed += 1
                    continue
                scale = 10000.0 if seg in _FINE else 100.0
                out.append(Tick(inst, (ltt - IST_SHIFT_S) * _NS, int(ltp * scale + 0.5) / scale, 0, None,
                                None, None, None, None, None, received_ns))
            elif code == FULL:
                if rem < 162:
                    self.malformed += 1
                    break
                (_, length, seg, sid, ltp, ltq, ltt, _atp, volume, _tsq, _tbq, oi, _oih, _oil,
                 _o, _c, _h, _l, bid_qty, ask_qty, _bo, _ao, bid, ask) = _FULL_L1.unpack_from(buf, off)
                if length != 162:
                    self.malformed += 1
                    break
                off += 162
                if not _MIN_PRICE <= ltp < _INF:
                    if ltp != 0.0:
                        self.malformed += 1
                    continue
                key = seg << 32 | sid
                inst = names.get(key) or self._name(seg, sid)
                if inst is None:
                    self.malformed += 1
                    continue
                scale = 10000.0 if seg in _FINE else 100.0
                if _MIN_PRICE <= bid < _INF:  # an empty book side is 0; anything odd is treated the same
                    bid = int(bid * scale + 0.5) / scale
                else:
                    bid = bid_qty = None
                if _MIN_PRICE <= ask < _INF:
                    ask = int(ask * scale + 0.5) / scale
                else:
                    ask = ask_qty = None
                oi_map[key] = oi
                out.append(Tick(inst, (ltt - IST_SHIFT_S) * _NS, int(ltp * scale + 0.5) / scale, ltq, volume,
                                bid, ask, bid_qty, ask_qty, oi or None, received_ns))
            else:
                length = buf[off + 1] | buf[off + 2] << 8
                if length < 8 or length > rem:
                    self.malformed += 1
                    break
                item = self._other(code, length, buf, off)
                off += length
                if item is not None:
                    out.append(item)
        return out

    def _other(self, code: int, length: int, buf: bytes, off: int) -> Decoded | None:
        """The rare packets; ``length`` is known to fit in ``buf``."""
        if code == OI:
            if length != 12:
                return self._bad()
            _, _, seg, sid, oi = _OI.unpack_from(buf, off)
            inst = self._names.get(seg << 32 | sid) or self._name(seg, sid)
            if inst is None:
                return self._bad()
            self._oi[seg << 32 | sid] = oi
            return OpenInterest(inst, oi)
        if code == PREV_CLOSE:
            if length != 16:
                return self._bad()
            _, _, seg, sid, close, prev_oi = _PREV_CLOSE.unpack_from(buf, off)
            inst = self._names.get(seg << 32 | sid) or self._name(seg, sid)
            if inst is None or not 0.0 <= close < _INF:
                return self._bad()
            scale = 10000.0 if seg in _FINE else 100.0
            return PrevClose(inst, int(close * scale + 0.5) / scale, prev_oi)
        if code == MARKET_STATUS:
            _, _, seg, sid = _HEADER.unpack_from(buf, off)
            return MarketStatus(seg, sid)
        if code == DISCONNECT:
            if length != 10:
                return self._bad()
            return ServerDisconnect(_DISCONNECT.unpack_from(buf, off)[4])
        # Index (1) has no published layout; Depth (3) is v1 only; anything else is noise.
        return self._bad()

    def _bad(self) -> None:
        self.malformed += 1
        return None


def ltt_to_utc_ns(ltt: int) -> int:
    """Dhan LTT (IST wall-clock as epoch seconds) → UTC nanoseconds."""
    return (ltt - IST_SHIFT_S) * _NS


def utc_ns_to_ltt(ts_ns: int) -> int:
    """UTC nanoseconds → Dhan LTT (IST wall-clock as epoch seconds)."""
    return ts_ns // _NS + IST_SHIFT_S


# --- encoding (used by the sandbox) ------------------------------------------------------

class DepthLevel(NamedTuple):
    """One level of the 5-level book in a Full packet (both sides)."""

    bid_qty: int = 0
    ask_qty: int = 0
    bid_orders: int = 0
    ask_orders: int = 0
    bid_price: float = 0.0
    ask_price: float = 0.0


_EMPTY_LEVEL = DepthLevel()
_FULL_BODY = struct.Struct("<BHBIfHIfIIIIIIffff")


def _u16(x: int) -> int:
    return 0 if x < 0 else 0xFFFF if x > 0xFFFF else int(x)


def _u32(x: int) -> int:
    return 0 if x < 0 else 0xFFFFFFFF if x > 0xFFFFFFFF else int(x)


def encode_ticker(segment: int, security_id: int, ltp: float, ltt: int) -> bytes:
    return _TICKER.pack(TICKER, 16, segment, security_id, ltp, _u32(ltt))


def encode_quote(segment: int, security_id: int, ltp: float, ltq: int, ltt: int, *, atp: float = 0.0,
                 volume: int = 0, total_sell_qty: int = 0, total_buy_qty: int = 0, day_open: float = 0.0,
                 day_close: float = 0.0, day_high: float = 0.0, day_low: float = 0.0) -> bytes:
    return _QUOTE.pack(QUOTE, 50, segment, security_id, ltp, _u16(ltq), _u32(ltt), atp, _u32(volume),
                       _u32(total_sell_qty), _u32(total_buy_qty), day_open, day_close, day_high, day_low)


def encode_oi(segment: int, security_id: int, oi: int) -> bytes:
    return _OI.pack(OI, 12, segment, security_id, _u32(oi))


def encode_prev_close(segment: int, security_id: int, prev_close: float, prev_oi: int = 0) -> bytes:
    return _PREV_CLOSE.pack(PREV_CLOSE, 16, segment, security_id, prev_close, _u32(prev_oi))


def encode_market_status(segment: int = 0, security_id: int = 0) -> bytes:
    return _HEADER.pack(MARKET_STATUS, 8, segment, security_id)


def encode_full(segment: int, security_id: int, ltp: float, ltq: int, ltt: int, *, atp: float = 0.0,
                volume: int = 0, total_sell_qty: int = 0, total_buy_qty: int = 0, oi: int = 0,
                oi_day_high: int = 0, oi_day_low: int = 0, day_open: float = 0.0, day_close: float = 0.0,
                day_high: float = 0.0, day_low: float = 0.0, depth: Sequence[DepthLevel] = ()) -> bytes:
    levels = list(depth[:5]) + [_EMPTY_LEVEL] * (5 - min(5, len(depth)))
    body = _FULL_BODY.pack(FULL, 162, segment, security_id, ltp, _u16(ltq), _u32(ltt), atp, _u32(volume),
                           _u32(total_sell_qty), _u32(total_buy_qty), _u32(oi), _u32(oi_day_high),
                           _u32(oi_day_low), day_open, day_close, day_high, day_low)
    return body + b"".join(_DEPTH_LEVEL.pack(_u32(lv.bid_qty), _u32(lv.ask_qty), _u16(lv.bid_orders),
                                             _u16(lv.ask_orders), lv.bid_price, lv.ask_price) for lv in levels)


def encode_disconnect(reason: int, segment: int = 0, security_id: int = 0) -> bytes:
    return _DISCONNECT.pack(DISCONNECT, 10, segment, security_id, _u16(reason))


# --- client requests ---------------------------------------------------------------------

def subscription_messages(request_code: int, instruments: Iterable[str], batch: int = BATCH_SIZE) -> list[str]:
    """JSON text frames for (un)subscribing ``SEGMENT:ID`` instruments, ``batch`` per message."""
    items = []
    for inst in instruments:
        segment, _, ident = inst.partition(":")
        items.append({"ExchangeSegment": segment, "SecurityId": ident})
    return [json.dumps({"RequestCode": request_code, "InstrumentCount": len(chunk), "InstrumentList": chunk},
                       separators=(",", ":"))
            for chunk in (items[i:i + batch] for i in range(0, len(items), batch))]
