"""Decoding frames built with the official SDK's generated classes (not our encoder)."""

from __future__ import annotations

import math

import pytest
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

from algocli.adapters.upstox.parsing import FrameDecoder, decode, from_instrument_key, to_instrument_key

LTT = 1_740_729_552_723  # 2025-02-28 07:59:12.723 UTC
NS = 1_000_000


def _frame(build, type_=1, current_ts=LTT + 50) -> bytes:
    r = sdk.FeedResponse(type=type_, currentTs=current_ts)
    build(r)
    return r.SerializeToString()


def test_ltpc_feed_becomes_a_tick_with_utc_nanoseconds():
    def build(r):
        f = r.feeds["NSE_EQ|1333"].ltpc
        f.ltp, f.ltt, f.ltq, f.cp = 1642.35, LTT, 25, 1630.1

    ticks, status = decode(_frame(build), received_ns=777)
    assert status is None
    [t] = ticks
    assert (t.instrument, t.ts, t.ltp, t.ltq, t.received_ns) == ("NSE_EQ:1333", LTT * NS, 1642.35, 25, 777)
    assert (t.volume, t.bid, t.ask, t.oi) == (None, None, None, None)


def test_full_market_feed_adds_volume_level_one_and_oi():
    def build(r):
        ff = r.feeds["NSE_FO|43919"].fullFeed.marketFF
        ff.ltpc.ltp, ff.ltpc.ltt, ff.ltpc.ltq = 245.5, LTT, 75
        for i in range(5):
            ff.marketLevel.bidAskQuote.add(bidQ=150 * (i + 1), bidP=245.45 - i * 0.05,
                                           askQ=300 * (i + 1), askP=245.55 + i * 0.05)
        ff.vtt, ff.oi, ff.atp = 12_345_675, 4_567_800.0, 243.2
        r.feeds["NSE_FO|43919"].requestMode = sdk.full_d5

    [t], _ = decode(_frame(build), 0)
    assert (t.instrument, t.ltp, t.ltq, t.ts) == ("NSE_FO:43919", 245.5, 75, LTT * NS)
    assert (t.volume, t.oi) == (12_345_675, 4_567_800)
    assert (t.bid, t.bid_qty, t.ask, t.ask_qty) == (245.45, 150, 245.55, 300)


def test_index_full_feed_carries_price_only():
    def build(r):
        idx = r.feeds["NSE_INDEX|Nifty 50"].fullFeed.indexFF
        idx.ltpc.ltp, idx.ltpc.ltt = 22_500.55, LTT
        idx.marketOHLC.ohlc.add(interval="1d", open=22_400.0, high=22_550.0, low=22_390.0, close=22_500.55)

    [t], _ = decode(_frame(build), 0)
    assert (t.instrument, t.ltp, t.ts) == ("NSE_INDEX:Nifty 50", 22_500.55, LTT * NS)
    assert (t.volume, t.bid, t.ask, t.oi) == (None, None, None, None)


def test_option_greeks_feed_uses_first_depth():
    def build(r):
        fl = r.feeds["NSE_FO|55555"].firstLevelWithGreeks
        fl.ltpc.ltp, fl.ltpc.ltt, fl.ltpc.ltq = 101.5, LTT, 50
        fl.firstDepth.bidP, fl.firstDepth.bidQ, fl.firstDepth.askP, fl.firstDepth.askQ = 101.45, 500, 101.6, 650
        fl.vtt, fl.oi = 4_000_000, 1_250_000.0

    [t], _ = decode(_frame(build), 0)
    assert (t.ltp, t.volume, t.oi, t.bid, t.ask_qty) == (101.5, 4_000_000, 1_250_000, 101.45, 650)


def test_market_info_returns_segment_status_names():
    def build(r):
        r.marketInfo.segmentStatus["NSE_EQ"] = sdk.NORMAL_OPEN
        r.marketInfo.segmentStatus["MCX_FO"] = sdk.CLOSING_END
        r.marketInfo.segmentStatus["NSE_INDEX"] = sdk.PRE_OPEN_START  # 0: omitted on the wire, still a key

    ticks, status = decode(_frame(build, type_=sdk.market_info), 0)
    assert ticks == []
    assert status == {"NSE_EQ": "NORMAL_OPEN", "MCX_FO": "CLOSING_END", "NSE_INDEX": "PRE_OPEN_START"}


def test_snapshot_with_many_keys_and_missing_trade_time_falls_back_to_current_ts():
    def build(r):
        for i in range(3):
            r.feeds[f"NSE_EQ|INE00{i}"].ltpc.ltp = 100.0 + i  # never traded: no ltt
        r.feeds["NSE_EQ|INE009"].ltpc.ltt = LTT

    ticks, _ = decode(_frame(build, type_=sdk.initial_feed, current_ts=LTT + 999), 0,
                      key_map={"NSE_EQ|INE001": "NSE_EQ:1333"})
    by = {t.instrument: t for t in ticks}
    assert set(by) == {"NSE_EQ:INE000", "NSE_EQ:1333", "NSE_EQ:INE002"}  # INE009 has no price: skipped
    assert by["NSE_EQ:1333"].ltp == 101.0 and by["NSE_EQ:1333"].ts == (LTT + 999) * NS


def test_malformed_frames_are_counted_never_raised():
    d = FrameDecoder()
    good = _frame(lambda r: setattr(r.feeds["NSE_EQ|1"].ltpc, "ltp", 10.0))
    bad_price = _frame(lambda r: setattr(r.feeds["NSE_EQ|2"].ltpc, "ltp", math.nan))
    frames = [b"\x00\xff garbage", good[:-3], b"\xff" * 12, bytes(range(256)), b'{"not": "protobuf"}',
              bad_price, good, b""]
    results = [d.decode(f, 0) for f in frames]
    assert [len(ticks) for ticks, _ in results] == [0, 0, 0, 0, 0, 0, 1, 0]
    assert d.malformed == 6 and d.frames == 8
    assert "price" in d.last_error


@pytest.mark.parametrize("instrument, mapping, key", [
    ("NSE_EQ:1333", None, "NSE_EQ|1333"),
    ("NSE_EQ:1333", {"NSE_EQ:1333": "NSE_EQ|INE040A01034"}, "NSE_EQ|INE040A01034"),
    ("NSE_INDEX:Nifty 50", {}, "NSE_INDEX|Nifty 50"),
])
def test_instrument_key_rules(instrument, mapping, key):
    assert to_instrument_key(instrument, mapping) == key
    if not mapping:
        assert from_instrument_key(key) == instrument


def test_an_id_without_segment_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="SEGMENT:ID"):
        to_instrument_key("RELIANCE")
