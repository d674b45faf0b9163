"""Decode Upstox Market Data Feed V3 frames into ``Tick`` objects, and map instrument keys.

A frame is one protobuf ``FeedResponse``. ``market_info`` frames carry the status of each
exchange segment; ``initial_feed`` (the snapshot after a ``sub``) and ``live_feed`` frames
carry one ``Feed`` per instrument key:

* ltpc mode: ``ltpc`` → ``ltp``, ``ltq``, ``ltt`` (epoch ms, UTC) as ``ts``;
* full mode: ``fullFeed.marketFF`` → the same plus ``vtt`` (cumulative day volume),
  best bid/ask from depth level 1, and ``oi``; ``fullFeed.indexFF`` (indices) → price only;
* option_greeks mode: ``firstLevelWithGreeks`` → price, volume, level-1 quote and ``oi``.

``ts`` falls back to the frame's ``currentTs`` when the feed has no last-trade time
(an instrument that has not traded yet). Ticks of one frame come out in ``ts`` order
(protobuf maps have no order of their own). A frame that does not parse, or an entry whose
price is not a finite positive number, is counted in ``FrameDecoder.malformed`` and skipped;
decoding never raises.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

from google.protobuf.message import DecodeError

from algocli.adapters.upstox import proto
from algocli.domain.models import Tick

_log = logging.getLogger(__name__)
_MS = 1_000_000
_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*\|.+$")


def to_instrument_key(instrument: str, mapping: Mapping[str, str] | None = None) -> str:
    """``NSE_EQ:1333`` → its Upstox key: ``mapping[instrument]`` if given, else ``NSE_EQ|1333``.

    Raises:
        ValueError: ``instrument`` is not ``SEGMENT:ID`` and has no mapping.
    """
    if mapping and instrument in mapping:
        return mapping[instrument]
    segment, sep, ident = instrument.partition(":")
    if not sep or not segment or not ident:
        raise ValueError(f"instrument {instrument!r} is not SEGMENT:ID (e.g. NSE_EQ:1333); "
                         "fix the id or map it in instrument_keys")
    return f"{segment}|{ident}"


def from_instrument_key(key: str) -> str:
    """``NSE_EQ|1333`` → ``NSE_EQ:1333`` (the default rule, inverse of ``to_instrument_key``)."""
    segment, _, ident = key.partition("|")
    return f"{segment}:{ident}"


def is_instrument_key(key: object) -> bool:
    """True for strings shaped like ``SEGMENT|IDENTIFIER``."""
    return isinstance(key, str) and bool(_KEY_RE.match(key))


def market_status_names(info) -> dict[str, str]:
    """``MarketInfo.segmentStatus`` as ``{"NSE_EQ": "NORMAL_OPEN", ...}``."""
    out: dict[str, str] = {}
    for segment, value in info.segmentStatus.items():
        try:
            out[segment] = proto.MarketStatus.Name(value)
        except ValueError:  # a status newer than this schema
            out[segment] = str(value)
    return out


class FrameDecoder:
    """Turns frames into ticks, counting what it had to skip.

    Args:
        key_map: Upstox instrument key → our instrument id. Keys not in it use the
            default rule (``NSE_EQ|1333`` → ``NSE_EQ:1333``).
    """

    def __init__(self, key_map: Mapping[str, str] | None = None) -> None:
        self.key_map = dict(key_map or {})
        self.frames = 0
        self.malformed = 0
        self.last_error = ""
        self.last_type: int | None = None  # ``proto.Type`` of the last decoded frame

    def decode(self, frame: bytes, received_ns: int) -> tuple[list[Tick], dict[str, str] | None]:
        """One frame → (ticks, segment status or None when the frame carries none)."""
        self.frames += 1
        self.last_type = None
        try:
            msg = proto.FeedResponse.FromString(bytes(frame))
        except (DecodeError, ValueError, TypeError) as exc:
            return self._bad(f"undecodable frame of {len(frame)} bytes ({exc.__class__.__name__})")
        if frame and not msg.ListFields():
            return self._bad(f"frame of {len(frame)} bytes has no known field")
        self.last_type = msg.type
        status = market_status_names(msg.marketInfo) if msg.HasField("marketInfo") else None
        if msg.type == proto.MARKET_INFO and status is None:
            status = {}
        ticks: list[Tick] = []
        bad = 0
        for key, feed in msg.feeds.items():
            tick = self._tick(key, feed, msg.currentTs, received_ns)
            if tick is None:
                bad += 1
            else:
                ticks.append(tick)
        if len(ticks) > 1:
            ticks.sort(key=_by_time)  # map order is arbitrary; give consumers time order
        if bad:
            self.malformed += 1
            self.last_error = f"{bad} feed entr{'y' if bad == 1 else 'ies'} without a valid price"
            _log.debug("Upstox frame: %s", self.last_error)
        return ticks, status

    def _bad(self, why: str) -> tuple[list[Tick], None]:
        self.malformed += 1
        self.last_error = why
        _log.debug("Upstox frame skipped: %s", why)
        return [], None

    def _instrument(self, key: str) -> str:
        found = self.key_map.get(key)
        return found if found is not None else from_instrument_key(key)

    def _tick(self, key: str, feed, current_ts: int, received_ns: int) -> Tick | None:
        kind = feed.WhichOneof("FeedUnion")
        if kind == "ltpc":
            return self._from_ltpc(key, feed.ltpc, current_ts, received_ns)
        if kind == "fullFeed":
            full_kind = feed.fullFeed.WhichOneof("FullFeedUnion")
            if full_kind == "indexFF":
                return self._from_ltpc(key, feed.fullFeed.indexFF.ltpc, current_ts, received_ns)
            if full_kind != "marketFF":
                return None
            ff = feed.fullFeed.marketFF
            tick = self._from_ltpc(key, ff.ltpc, current_ts, received_ns)
            if tick is not None:
                tick.volume = int(ff.vtt)
                tick.oi = _int_or_none(ff.oi)
                if ff.HasField("marketLevel") and len(ff.marketLevel.bidAskQuote):
                    _set_quote(tick, ff.marketLevel.bidAskQuote[0])
            return tick
        if kind == "firstLevelWithGreeks":
            fl = feed.firstLevelWithGreeks
            tick = self._from_ltpc(key, fl.ltpc, current_ts, received_ns)
            if tick is not None:
                tick.volume = int(fl.vtt)
                tick.oi = _int_or_none(fl.oi)
                if fl.HasField("firstDepth"):
                    _set_quote(tick, fl.firstDepth)
            return tick
        return None

    def _from_ltpc(self, key: str, ltpc, current_ts: int, received_ns: int) -> Tick | None:
        ltp = ltpc.ltp
        if not (math.isfinite(ltp) and ltp > 0):
            return None
        ms = ltpc.ltt or current_ts
        if ms <= 0:
            return None
        return Tick(self._instrument(key), ms * _MS, ltp, max(int(ltpc.ltq), 0), received_ns=received_ns)


def decode(frame: bytes, received_ns: int, key_map: Mapping[str, str] | None = None
           ) -> tuple[list[Tick], dict[str, str] | None]:
    """Decode one frame without keeping counts (see ``FrameDecoder`` for a counting decoder)."""
    return FrameDecoder(key_map).decode(frame, received_ns)


def _by_time(tick: Tick) -> int:
    return tick.ts


def _set_quote(tick: Tick, quote) -> None:
    if quote.bidP > 0:
        tick.bid, tick.bid_qty = quote.bidP, int(quote.bidQ)
    if quote.askP > 0:
        tick.ask, tick.ask_qty = quote.askP, int(quote.askQ)


def _int_or_none(value: float) -> int | None:
    return int(value) if math.isfinite(value) and value > 0 else None
