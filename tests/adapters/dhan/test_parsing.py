"""Dhan v2 packet decoding, against packets built byte by byte from the documented offsets.

The builders below do not use ``algocli``'s struct formats: each field is written with
``struct.pack_into`` at the offset Dhan's live market feed page gives
(https://dhanhq.co/docs/v2/live-market-feed/), so a wrong format string or offset in the decoder
(or encoder) shows up here.
"""

from __future__ import annotations

import json
import math
import random
import struct
from datetime import datetime, timedelta, timezone

import pytest

from algocli.adapters.dhan.parsing import (
    SEGMENT_NAMES, SEGMENTS, DepthLevel, DhanDecoder, MarketStatus, OpenInterest, PrevClose, ServerDisconnect,
    encode_disconnect, encode_full, encode_market_status, encode_oi, encode_prev_close, encode_quote,
    encode_ticker, instrument_id, ltt_to_utc_ns, segment_code, segment_name, split_instrument,
    subscription_messages, utc_ns_to_ltt,
)
from algocli.domain.models import Tick

# 2026-03-04 11:00:00 IST. Dhan writes the IST wall clock as if it were UTC:
LTT = int(datetime(2026, 3, 4, 11, 0, 0, tzinfo=timezone.utc).timestamp())
TS = int(datetime(2026, 3, 4, 5, 30, 0, tzinfo=timezone.utc).timestamp()) * 10**9  # the true instant


# --- independent builders (offsets from Dhan's live market feed page) -------------------------------------

def _header(buf: bytearray, code: int, length: int, seg: int, sid: int) -> None:
    buf[0] = code
    struct.pack_into("<H", buf, 1, length)
    buf[3] = seg
    struct.pack_into("<I", buf, 4, sid)


def ticker_pkt(seg, sid, ltp, ltt=LTT, length=16):
    b = bytearray(16)
    _header(b, 2, length, seg, sid)
    struct.pack_into("<f", b, 8, ltp)
    struct.pack_into("<I", b, 12, ltt)
    return bytes(b)


def quote_pkt(seg, sid, ltp, *, ltq=25, ltt=LTT, atp=0.0, volume=0, sell=0, buy=0, o=0.0, c=0.0, h=0.0, lo=0.0,
              length=50):
    b = bytearray(50)
    _header(b, 4, length, seg, sid)
    struct.pack_into("<f", b, 8, ltp)
    struct.pack_into("<H", b, 12, ltq)
    struct.pack_into("<I", b, 14, ltt)
    struct.pack_into("<f", b, 18, atp)
    struct.pack_into("<I", b, 22, volume)
    struct.pack_into("<I", b, 26, sell)
    struct.pack_into("<I", b, 30, buy)
    for off, v in ((34, o), (38, c), (42, h), (46, lo)):
        struct.pack_into("<f", b, off, v)
    return bytes(b)


def full_pkt(seg, sid, ltp, *, ltq=50, ltt=LTT, atp=0.0, volume=0, sell=0, buy=0, oi=0, oi_hi=0, oi_lo=0,
             o=0.0, c=0.0, h=0.0, lo=0.0, depth=()):
    b = bytearray(162)
    _header(b, 8, 162, seg, sid)
    struct.pack_into("<f", b, 8, ltp)
    struct.pack_into("<H", b, 12, ltq)
    struct.pack_into("<I", b, 14, ltt)
    struct.pack_into("<f", b, 18, atp)
    for off, v in ((22, volume), (26, sell), (30, buy), (34, oi), (38, oi_hi), (42, oi_lo)):
        struct.pack_into("<I", b, off, v)
    for off, v in ((46, o), (50, c), (54, h), (58, lo)):
        struct.pack_into("<f", b, off, v)
    for i, (bq, aq, bo, ao, bp, ap) in enumerate(depth):
        base = 62 + 20 * i
        struct.pack_into("<I", b, base, bq)
        struct.pack_into("<I", b, base + 4, aq)
        struct.pack_into("<H", b, base + 8, bo)
        struct.pack_into("<H", b, base + 10, ao)
        struct.pack_into("<f", b, base + 12, bp)
        struct.pack_into("<f", b, base + 16, ap)
    return bytes(b)


def oi_pkt(seg, sid, oi):
    b = bytearray(12)
    _header(b, 5, 12, seg, sid)
    struct.pack_into("<I", b, 8, oi)
    return bytes(b)


def prev_close_pkt(seg, sid, close, prev_oi=0):
    b = bytearray(16)
    _header(b, 6, 16, seg, sid)
    struct.pack_into("<f", b, 8, close)
    struct.pack_into("<I", b, 12, prev_oi)
    return bytes(b)


def disconnect_pkt(reason):
    b = bytearray(10)
    _header(b, 50, 10, 0, 0)
    struct.pack_into("<H", b, 8, reason)
    return bytes(b)


def status_pkt():
    b = bytearray(8)
    _header(b, 7, 8, 0, 0)
    return bytes(b)


DEPTH = [(700, 300, 4, 2, 2450.30, 2450.40), (900, 800, 6, 5, 2450.25, 2450.45)]


def decode(buf: bytes, decoder: DhanDecoder | None = None):
    return (decoder or DhanDecoder()).decode(buf, 123)


# --- each packet type ----------------------------------------------------------------------

def test_ticker_packet():
    (t,) = decode(ticker_pkt(1, 1333, 2450.35))
    assert t == Tick("NSE_EQ:1333", TS, 2450.35, 0, None, None, None, None, None, None, 123)


def test_ltt_is_ist_wall_clock_so_ts_is_five_and_a_half_hours_earlier():
    (t,) = decode(ticker_pkt(1, 1333, 100.0))
    as_ist = datetime.fromtimestamp(t.ts / 1e9, timezone(timedelta(hours=5, minutes=30)))
    assert (as_ist.hour, as_ist.minute, as_ist.second) == (11, 0, 0)
    assert ltt_to_utc_ns(LTT) == TS and utc_ns_to_ltt(TS) == LTT


def test_quote_packet_fills_quantity_and_cumulative_volume():
    (t,) = decode(quote_pkt(2, 35001, 187.65, ltq=75, volume=1_234_567, atp=186.1, o=180.0, h=190.0, lo=179.5))
    assert (t.instrument, t.ts, t.ltp, t.ltq, t.volume) == ("NSE_FNO:35001", TS, 187.65, 75, 1_234_567)
    assert (t.bid, t.ask, t.oi) == (None, None, None)


def test_full_packet_takes_bid_and_ask_from_depth_level_one():
    (t,) = decode(full_pkt(2, 35001, 2450.35, ltq=50, volume=98765, oi=120_000, depth=DEPTH))
    assert (t.instrument, t.ltp, t.ltq, t.volume, t.oi) == ("NSE_FNO:35001", 2450.35, 50, 98765, 120_000)
    assert (t.bid, t.ask, t.bid_qty, t.ask_qty) == (2450.30, 2450.40, 700, 300)


def test_full_packet_with_an_empty_book_side_and_no_oi():
    (t,) = decode(full_pkt(1, 1333, 100.5, depth=[(0, 40, 0, 1, 0.0, 100.55)]))
    assert (t.bid, t.bid_qty, t.ask, t.ask_qty, t.oi) == (None, None, 100.55, 40, None)


def test_oi_packet_is_an_event_and_is_merged_into_later_quote_ticks():
    dec = DhanDecoder()
    assert decode(quote_pkt(2, 35001, 10.0), dec)[0].oi is None
    assert decode(oi_pkt(2, 35001, 4_500_000), dec) == [OpenInterest("NSE_FNO:35001", 4_500_000)]
    assert decode(quote_pkt(2, 35001, 10.05), dec)[0].oi == 4_500_000
    assert decode(quote_pkt(2, 35002, 10.05), dec)[0].oi is None  # another instrument
    assert dec.malformed == 0


def test_prev_close_market_status_and_disconnect_events():
    items = decode(prev_close_pkt(1, 1333, 2431.9, 7) + status_pkt() + disconnect_pkt(807))
    assert items == [PrevClose("NSE_EQ:1333", 2431.9, 7), MarketStatus(0, 0), ServerDisconnect(807)]
    assert items[2].fatal and "expired" in items[2].message


@pytest.mark.parametrize("reason,fatal", [(805, False), (806, True), (807, True), (808, True), (809, True),
                                          (810, True)])
def test_disconnect_reasons(reason, fatal):
    (event,) = decode(disconnect_pkt(reason))
    assert event == ServerDisconnect(reason) and event.fatal is fatal


def test_currency_prices_keep_four_decimals():
    (t,) = decode(ticker_pkt(3, 10093, 83.2525))
    assert (t.instrument, t.ltp) == ("NSE_CURRENCY:10093", 83.2525)


def test_concatenated_packets_are_framed_on_the_length_field():
    buf = (ticker_pkt(1, 1, 10.5) + quote_pkt(1, 2, 20.25, volume=9) + oi_pkt(2, 3, 99)
           + full_pkt(2, 3, 30.75, depth=DEPTH) + prev_close_pkt(1, 1, 10.0))
    dec = DhanDecoder()
    items = dec.decode(buf, 0)
    assert [type(i).__name__ for i in items] == ["Tick", "Tick", "OpenInterest", "Tick", "PrevClose"]
    assert [i.ltp for i in items if isinstance(i, Tick)] == [10.5, 20.25, 30.75]
    assert items[1].volume == 9 and items[3].oi is None  # the Full packet's own OI (0) wins over the merge
    assert dec.malformed == 0


# --- malformed input: counted, skipped, never raised -------------------------------------

@pytest.mark.parametrize("buf", [
    b"",
    b"\x02\x10\x00",                                   # shorter than a header
    quote_pkt(1, 1, 10.0)[:30],                        # truncated quote
    ticker_pkt(1, 1, 10.0, length=40),                 # length larger than the message
    quote_pkt(1, 1, 10.0, length=16),                  # length disagrees with the packet type
    ticker_pkt(6, 1, 10.0),                            # segment code 6 is unused
    ticker_pkt(1, 1, math.nan),
    ticker_pkt(1, 1, -5.0),
    quote_pkt(1, 1, math.inf),
    full_pkt(1, 1, -1.0),
    ticker_pkt(1, 1, 1e-30),                           # positive but below half a paisa
    struct.pack("<BHBII", 99, 12, 1, 1, 0),            # unknown response code
    struct.pack("<BHBI", 5, 3, 1, 1) + b"\0" * 4,      # length below the header size
])
def test_one_bad_packet_counts_once_and_yields_nothing(buf):
    dec = DhanDecoder()
    assert dec.decode(buf, 0) == []
    assert dec.malformed == (0 if buf == b"" else 1)


def test_zero_price_means_no_trade_yet_and_is_not_malformed():
    dec = DhanDecoder()
    assert dec.decode(ticker_pkt(1, 1, 0.0) + quote_pkt(1, 1, 0.0), 0) == []
    assert dec.malformed == 0


def test_unknown_code_is_skipped_by_its_length_and_decoding_continues():
    dec = DhanDecoder()
    junk = struct.pack("<BHBI", 99, 14, 1, 1) + b"\xff" * 6
    items = dec.decode(junk + ticker_pkt(1, 7, 55.5), 0)
    assert [t.ltp for t in items] == [55.5] and dec.malformed == 1


def test_a_lying_length_drops_the_rest_of_the_message_but_keeps_what_came_before():
    dec = DhanDecoder()
    items = dec.decode(ticker_pkt(1, 7, 55.5) + quote_pkt(1, 8, 1.0, length=90) + ticker_pkt(1, 9, 2.0), 0)
    assert [t.instrument for t in items] == ["NSE_EQ:7"] and dec.malformed == 1


def test_random_garbage_never_raises():
    rng = random.Random(11)
    dec = DhanDecoder()
    valid = [ticker_pkt(1, 1, 10.0), quote_pkt(2, 2, 20.0), full_pkt(1, 3, 30.0), oi_pkt(2, 2, 1)]
    for _ in range(3000):
        n = rng.randrange(0, 200)
        buf = bytes(rng.randrange(256) for _ in range(n))
        if rng.random() < 0.5:  # valid packets with corrupted bytes
            buf = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            buf = bytes(buf[: rng.randrange(1, len(buf) + 1)])
        for item in dec.decode(buf, 0):
            if isinstance(item, Tick):
                assert 0 < item.ltp < math.inf
    assert dec.malformed > 1000


# --- encoders (used by the sandbox) match the documented layout byte for byte --------------

def test_encoders_match_the_documented_offsets():
    assert encode_ticker(1, 1333, 2450.35, LTT) == ticker_pkt(1, 1333, 2450.35)
    assert encode_quote(2, 35001, 187.65, 75, LTT, atp=186.1, volume=1_234_567, total_sell_qty=3,
                        total_buy_qty=4, day_open=180.0, day_close=0.0, day_high=190.0, day_low=179.5) == \
        quote_pkt(2, 35001, 187.65, ltq=75, atp=186.1, volume=1_234_567, sell=3, buy=4, o=180.0, h=190.0, lo=179.5)
    assert encode_full(2, 35001, 2450.35, 50, LTT, volume=98765, oi=120_000, oi_day_high=130_000,
                       oi_day_low=110_000, depth=[DepthLevel(*d) for d in DEPTH]) == \
        full_pkt(2, 35001, 2450.35, volume=98765, oi=120_000, oi_hi=130_000, oi_lo=110_000, depth=DEPTH)
    assert encode_oi(2, 35001, 4_500_000) == oi_pkt(2, 35001, 4_500_000)
    assert encode_prev_close(1, 1333, 2431.9, 7) == prev_close_pkt(1, 1333, 2431.9, 7)
    assert encode_disconnect(808) == disconnect_pkt(808)
    assert encode_market_status() == status_pkt()


def test_encoders_clamp_integers_to_their_fields():
    pkt = encode_quote(1, 1, 10.0, 70_000, LTT, volume=2**40)
    assert struct.unpack_from("<H", pkt, 12)[0] == 0xFFFF
    assert struct.unpack_from("<I", pkt, 22)[0] == 0xFFFFFFFF


# --- segments and requests -------------------------------------------------------------------

def test_segment_map_both_directions():
    assert SEGMENTS == {"IDX_I": 0, "NSE_EQ": 1, "NSE_FNO": 2, "NSE_CURRENCY": 3, "BSE_EQ": 4, "MCX_COMM": 5,
                        "BSE_CURRENCY": 7, "BSE_FNO": 8}
    for name, code in SEGMENTS.items():
        assert segment_name(segment_code(name)) == name and SEGMENT_NAMES[code] == name
    assert split_instrument("BSE_EQ:532540") == (4, 532540)
    assert instrument_id(8, 1) == "BSE_FNO:1"
    with pytest.raises(ValueError, match="unknown Dhan exchange segment code"):
        segment_name(6)
    for bad in ("NSE:1333", "NSE_EQ:", "NSE_EQ:12a", "1333", "NSE_EQ|1333", "NSE_EQ:99999999999"):
        with pytest.raises(ValueError):
            split_instrument(bad)


def test_subscription_messages_are_batched_by_100():
    insts = [f"NSE_EQ:{i}" for i in range(250)]
    msgs = [json.loads(m) for m in subscription_messages(17, insts)]
    assert [m["InstrumentCount"] for m in msgs] == [100, 100, 50]
    assert all(m["RequestCode"] == 17 and len(m["InstrumentList"]) == m["InstrumentCount"] for m in msgs)
    assert msgs[2]["InstrumentList"][-1] == {"ExchangeSegment": "NSE_EQ", "SecurityId": "249"}
