"""Our runtime-built MarketDataFeedV3 classes against the official SDK's generated ones."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, json_format
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

from algocli.adapters.upstox import proto


def _shape(fdp: descriptor_pb2.FileDescriptorProto) -> dict:
    """Everything that decides the wire format and JSON names, keyed by qualified name."""
    out: dict = {"package": fdp.package, "syntax": fdp.syntax}

    def walk(prefix: str, msgs) -> None:
        for m in msgs:
            name = f"{prefix}.{m.name}"
            out[name] = {
                "map_entry": m.options.map_entry,
                "oneofs": [o.name for o in m.oneof_decl],
                "fields": sorted((f.number, f.name, f.type, f.label, f.type_name,
                                  f.oneof_index if f.HasField("oneof_index") else None) for f in m.field),
            }
            walk(name, m.nested_type)

    walk(fdp.package, fdp.message_type)
    for e in fdp.enum_type:
        out[f"{fdp.package}.{e.name}"] = sorted((v.number, v.name) for v in e.value)
    return out


def test_schema_matches_the_sdk_descriptor_field_for_field():
    theirs = descriptor_pb2.FileDescriptorProto()
    sdk.DESCRIPTOR.CopyToProto(theirs)
    ours = _shape(proto.file_descriptor_proto())
    assert ours == _shape(theirs)
    assert len([k for k in ours if k.endswith("Entry")]) == 4  # the four map fields


def _rich(module):
    """A FeedResponse using every message type, built with ``module``'s classes."""
    r = module.FeedResponse(type=1, currentTs=1_740_729_552_999)
    eq = r.feeds["NSE_EQ|INE040A01034"]
    ff = eq.fullFeed.marketFF
    ff.ltpc.ltp, ff.ltpc.ltt, ff.ltpc.ltq, ff.ltpc.cp = 1642.35, 1_740_729_552_723, 25, 1630.1
    ff.ltpc.iep.value = 1641.0
    for i in range(5):
        q = ff.marketLevel.bidAskQuote.add()
        q.bidQ, q.bidP, q.askQ, q.askP = 100 + i, 1642.3 - i * 0.05, 200 + i, 1642.4 + i * 0.05
    ff.optionGreeks.delta, ff.optionGreeks.rho = 0.5, -0.01
    for interval, vol in (("1d", 123456), ("I1", 300), ("I30", 9000)):
        ff.marketOHLC.ohlc.add(interval=interval, open=1630.0, high=1650.0, low=1625.5, close=1642.35,
                               vol=vol, ts=1_740_700_000_000)
    ff.atp, ff.vtt, ff.oi, ff.iv, ff.tbq, ff.tsq = 1638.12, 5_432_100, 0.0, 0.0, 10_000.0, 12_000.0
    ff.iep, ff.rp, ff.ieq, ff.iiqTotal, ff.iiqM, ff.casEligible = 1641.0, 1640.0, 777, 888, 999, True
    eq.requestMode = 1
    idx = r.feeds["NSE_INDEX|Nifty 50"].fullFeed.indexFF
    idx.ltpc.ltp, idx.ltpc.ltt = 22_500.55, 1_740_729_552_000
    idx.marketOHLC.ohlc.add(interval="1d", open=22_400.0, high=22_550.0, low=22_390.0, close=22_500.55)
    opt = r.feeds["NSE_FO|43919"]
    opt.firstLevelWithGreeks.ltpc.ltp = 101.5
    opt.firstLevelWithGreeks.firstDepth.bidP = 101.45
    opt.firstLevelWithGreeks.optionGreeks.theta = -12.5
    fl = opt.firstLevelWithGreeks
    fl.vtt, fl.oi, fl.iv = 4_000_000, 1_250_000.0, 0.14
    opt.requestMode = 2
    r.feeds["BSE_EQ|INE002A01018"].ltpc.ltp = 2900.0
    r.marketInfo.segmentStatus["NSE_EQ"] = 2
    r.marketInfo.segmentStatus["MCX_FO"] = 5
    r.marketInfo.casMarketStatus["NSE_EQ"].status = "OPEN"
    r.marketInfo.casMarketStatus["NSE_EQ"].updatedTime = 1_740_729_000_000
    r.marketInfo.preOpenSessionStatus["NSE_FO"].status = "PRE_OPEN_END"
    return r


@pytest.mark.parametrize("writer, reader", [(proto, sdk), (sdk, proto)], ids=["ours->sdk", "sdk->ours"])
def test_wire_round_trip_preserves_every_value(writer, reader):
    sent = _rich(writer)
    got = reader.FeedResponse.FromString(sent.SerializeToString())
    as_dict = json_format.MessageToDict(got)
    assert as_dict == json_format.MessageToDict(sent)
    assert got.SerializeToString(deterministic=True) == sent.SerializeToString(deterministic=True)
    ff = got.feeds["NSE_EQ|INE040A01034"].fullFeed.marketFF
    assert ff.ltpc.ltt == 1_740_729_552_723 and ff.ltpc.iep.value == 1641.0
    assert [q.bidQ for q in ff.marketLevel.bidAskQuote] == [100, 101, 102, 103, 104]
    assert ff.casEligible is True and ff.iiqM == 999
    assert got.feeds["NSE_FO|43919"].WhichOneof("FeedUnion") == "firstLevelWithGreeks"
    assert got.feeds["NSE_INDEX|Nifty 50"].fullFeed.WhichOneof("FullFeedUnion") == "indexFF"
    assert as_dict["type"] == "live_feed" and as_dict["currentTs"] == "1740729552999"
    assert as_dict["marketInfo"]["segmentStatus"] == {"NSE_EQ": "NORMAL_OPEN", "MCX_FO": "CLOSING_END"}
    assert as_dict["marketInfo"]["preOpenSessionStatus"]["NSE_FO"] == {"status": "PRE_OPEN_END"}


def test_enums_have_upstox_names_and_numbers():
    assert [proto.Type.Name(i) for i in range(3)] == ["initial_feed", "live_feed", "market_info"]
    assert [proto.RequestMode.Name(i) for i in range(4)] == ["ltpc", "full_d5", "option_greeks", "full_d30"]
    assert proto.MarketStatus.Value("NORMAL_OPEN") == sdk.NORMAL_OPEN == 2
    assert proto.MarketStatus.Value("CLOSING_END") == 5
    assert (proto.INITIAL_FEED, proto.LIVE_FEED, proto.MARKET_INFO) == (0, 1, 2)


def test_our_pool_is_private_so_the_sdk_schema_can_load_beside_it():
    assert proto.FeedResponse.DESCRIPTOR.file.pool is not sdk.DESCRIPTOR.pool
    assert proto.FeedResponse.DESCRIPTOR.full_name == sdk.FeedResponse.DESCRIPTOR.full_name
