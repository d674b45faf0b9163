"""Upstox Market Data Feed V3 protobuf messages, built at import time without protoc.

The schema (package ``com.upstox.marketdatafeederv3udapi.rpc.proto``, as in Upstox's
``MarketDataFeedV3.proto`` including the fields the SDK 2.30 descriptor adds) is written
out below as a ``FileDescriptorProto`` and turned into message classes by
``google.protobuf.message_factory``. It lives in a private descriptor pool, so it never
clashes with another copy of the same schema (the official SDK's) in one process.

Exports the message classes (``FeedResponse``, ``Feed``, ``LTPC``, ``FullFeed``,
``MarketFullFeed``, ``IndexFullFeed``, ``FirstLevelWithGreeks``, ``MarketLevel``,
``Quote``, ``OptionGreeks``, ``MarketOHLC``, ``OHLC``, ``MarketInfo``, ``StatusInfo``)
and the enums (``Type``, ``RequestMode``, ``MarketStatus``, each with ``Name``/``Value``).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
from google.protobuf.internal import enum_type_wrapper

PACKAGE = "com.upstox.marketdatafeederv3udapi.rpc.proto"
FILE_NAME = "algocli/upstox/MarketDataFeedV3.proto"

_F = descriptor_pb2.FieldDescriptorProto
_DOUBLE, _INT64, _BOOL, _STRING = _F.TYPE_DOUBLE, _F.TYPE_INT64, _F.TYPE_BOOL, _F.TYPE_STRING
_MSG, _ENUM = _F.TYPE_MESSAGE, _F.TYPE_ENUM
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

ENUMS: dict[str, list[tuple[str, int]]] = {
    "Type": [("initial_feed", 0), ("live_feed", 1), ("market_info", 2)],
    "RequestMode": [("ltpc", 0), ("full_d5", 1), ("option_greeks", 2), ("full_d30", 3)],
    "MarketStatus": [("PRE_OPEN_START", 0), ("PRE_OPEN_END", 1), ("NORMAL_OPEN", 2),
                     ("NORMAL_CLOSE", 3), ("CLOSING_START", 4), ("CLOSING_END", 5)],
}

# message -> [(number, name, type, type_name or None, label, oneof name or None)];
# a type_name without a dot is a message or enum of this package.
_Field = tuple[int, str, int, "str | None", int, "str | None"]
MESSAGES: dict[str, list[_Field]] = {
    "LTPC": [
        (1, "ltp", _DOUBLE, None, _OPT, None),
        (2, "ltt", _INT64, None, _OPT, None),
        (3, "ltq", _INT64, None, _OPT, None),
        (4, "cp", _DOUBLE, None, _OPT, None),
        (5, "iep", _MSG, ".google.protobuf.DoubleValue", _OPT, None),
    ],
    "MarketLevel": [(1, "bidAskQuote", _MSG, "Quote", _REP, None)],
    "MarketOHLC": [(1, "ohlc", _MSG, "OHLC", _REP, None)],
    "Quote": [
        (1, "bidQ", _INT64, None, _OPT, None),
        (2, "bidP", _DOUBLE, None, _OPT, None),
        (3, "askQ", _INT64, None, _OPT, None),
        (4, "askP", _DOUBLE, None, _OPT, None),
    ],
    "OptionGreeks": [(n, name, _DOUBLE, None, _OPT, None)
                     for n, name in enumerate(("delta", "theta", "gamma", "vega", "rho"), start=1)],
    "OHLC": [
        (1, "interval", _STRING, None, _OPT, None),
        (2, "open", _DOUBLE, None, _OPT, None),
        (3, "high", _DOUBLE, None, _OPT, None),
        (4, "low", _DOUBLE, None, _OPT, None),
        (5, "close", _DOUBLE, None, _OPT, None),
        (6, "vol", _INT64, None, _OPT, None),
        (7, "ts", _INT64, None, _OPT, None),
    ],
    "MarketFullFeed": [
        (1, "ltpc", _MSG, "LTPC", _OPT, None),
        (2, "marketLevel", _MSG, "MarketLevel", _OPT, None),
        (3, "optionGreeks", _MSG, "OptionGreeks", _OPT, None),
        (4, "marketOHLC", _MSG, "MarketOHLC", _OPT, None),
        (5, "atp", _DOUBLE, None, _OPT, None),
        (6, "vtt", _INT64, None, _OPT, None),
        (7, "oi", _DOUBLE, None, _OPT, None),
        (8, "iv", _DOUBLE, None, _OPT, None),
        (9, "tbq", _DOUBLE, None, _OPT, None),
        (10, "tsq", _DOUBLE, None, _OPT, None),
        (11, "iep", _DOUBLE, None, _OPT, None),
        (12, "rp", _DOUBLE, None, _OPT, None),
        (13, "ieq", _INT64, None, _OPT, None),
        (14, "iiqTotal", _INT64, None, _OPT, None),
        (15, "iiqM", _INT64, None, _OPT, None),
        (16, "casEligible", _BOOL, None, _OPT, None),
    ],
    "IndexFullFeed": [
        (1, "ltpc", _MSG, "LTPC", _OPT, None),
        (2, "marketOHLC", _MSG, "MarketOHLC", _OPT, None),
    ],
    "FullFeed": [
        (1, "marketFF", _MSG, "MarketFullFeed", _OPT, "FullFeedUnion"),
        (2, "indexFF", _MSG, "IndexFullFeed", _OPT, "FullFeedUnion"),
    ],
    "FirstLevelWithGreeks": [
        (1, "ltpc", _MSG, "LTPC", _OPT, None),
        (2, "firstDepth", _MSG, "Quote", _OPT, None),
        (3, "optionGreeks", _MSG, "OptionGreeks", _OPT, None),
        (4, "vtt", _INT64, None, _OPT, None),
        (5, "oi", _DOUBLE, None, _OPT, None),
        (6, "iv", _DOUBLE, None, _OPT, None),
    ],
    "Feed": [
        (1, "ltpc", _MSG, "LTPC", _OPT, "FeedUnion"),
        (2, "fullFeed", _MSG, "FullFeed", _OPT, "FeedUnion"),
        (3, "firstLevelWithGreeks", _MSG, "FirstLevelWithGreeks", _OPT, "FeedUnion"),
        (4, "requestMode", _ENUM, "RequestMode", _OPT, None),
    ],
    "StatusInfo": [
        (1, "status", _STRING, None, _OPT, None),
        (2, "updatedTime", _INT64, None, _OPT, None),
    ],
    "MarketInfo": [
        (1, "segmentStatus", _MSG, "MarketInfo.SegmentStatusEntry", _REP, None),
        (2, "casMarketStatus", _MSG, "MarketInfo.CasMarketStatusEntry", _REP, None),
        (3, "preOpenSessionStatus", _MSG, "MarketInfo.PreOpenSessionStatusEntry", _REP, None),
    ],
    "FeedResponse": [
        (1, "type", _ENUM, "Type", _OPT, None),
        (2, "feeds", _MSG, "FeedResponse.FeedsEntry", _REP, None),
        (3, "currentTs", _INT64, None, _OPT, None),
        (4, "marketInfo", _MSG, "MarketInfo", _OPT, None),
    ],
}

# Map fields: (message, entry name, value type, value type_name).
MAP_ENTRIES: list[tuple[str, str, int, str]] = [
    ("MarketInfo", "SegmentStatusEntry", _ENUM, "MarketStatus"),
    ("MarketInfo", "CasMarketStatusEntry", _MSG, "StatusInfo"),
    ("MarketInfo", "PreOpenSessionStatusEntry", _MSG, "StatusInfo"),
    ("FeedResponse", "FeedsEntry", _MSG, "Feed"),
]


def _qualify(type_name: str) -> str:
    return type_name if type_name.startswith(".") else f".{PACKAGE}.{type_name}"


def _add_field(msg: descriptor_pb2.DescriptorProto, number: int, name: str, ftype: int,
               type_name: str | None, label: int, oneof_index: int | None = None) -> None:
    field = msg.field.add(name=name, number=number, type=ftype, label=label, json_name=name)
    if type_name is not None:
        field.type_name = _qualify(type_name)
    if oneof_index is not None:
        field.oneof_index = oneof_index


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The schema as a ``FileDescriptorProto`` (a fresh copy each call)."""
    fdp = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    fdp.dependency.append(wrappers_pb2.DESCRIPTOR.name)
    for name, values in ENUMS.items():
        enum = fdp.enum_type.add(name=name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for name, fields in MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        oneofs: list[str] = []
        for number, fname, ftype, type_name, label, oneof in fields:
            index = None
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    msg.oneof_decl.add(name=oneof)
                index = oneofs.index(oneof)
            _add_field(msg, number, fname, ftype, type_name, label, index)
        for owner, entry_name, value_type, value_type_name in MAP_ENTRIES:
            if owner == name:
                entry = msg.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                _add_field(entry, 1, "key", _STRING, None, _OPT)
                _add_field(entry, 2, "value", value_type, value_type_name, _OPT)
    return fdp


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file_descriptor_proto())
    return pool


def _message_class(descriptor):
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)  # pragma: no cover


POOL = _build_pool()
DESCRIPTOR = POOL.FindFileByName(FILE_NAME)

LTPC = _message_class(DESCRIPTOR.message_types_by_name["LTPC"])
MarketLevel = _message_class(DESCRIPTOR.message_types_by_name["MarketLevel"])
MarketOHLC = _message_class(DESCRIPTOR.message_types_by_name["MarketOHLC"])
Quote = _message_class(DESCRIPTOR.message_types_by_name["Quote"])
OptionGreeks = _message_class(DESCRIPTOR.message_types_by_name["OptionGreeks"])
OHLC = _message_class(DESCRIPTOR.message_types_by_name["OHLC"])
MarketFullFeed = _message_class(DESCRIPTOR.message_types_by_name["MarketFullFeed"])
IndexFullFeed = _message_class(DESCRIPTOR.message_types_by_name["IndexFullFeed"])
FullFeed = _message_class(DESCRIPTOR.message_types_by_name["FullFeed"])
FirstLevelWithGreeks = _message_class(DESCRIPTOR.message_types_by_name["FirstLevelWithGreeks"])
Feed = _message_class(DESCRIPTOR.message_types_by_name["Feed"])
StatusInfo = _message_class(DESCRIPTOR.message_types_by_name["StatusInfo"])
MarketInfo = _message_class(DESCRIPTOR.message_types_by_name["MarketInfo"])
FeedResponse = _message_class(DESCRIPTOR.message_types_by_name["FeedResponse"])

Type = enum_type_wrapper.EnumTypeWrapper(DESCRIPTOR.enum_types_by_name["Type"])
RequestMode = enum_type_wrapper.EnumTypeWrapper(DESCRIPTOR.enum_types_by_name["RequestMode"])
MarketStatus = enum_type_wrapper.EnumTypeWrapper(DESCRIPTOR.enum_types_by_name["MarketStatus"])

INITIAL_FEED, LIVE_FEED, MARKET_INFO = 0, 1, 2

__all__ = [
    "DESCRIPTOR", "FeedResponse", "Feed", "LTPC", "FullFeed", "MarketFullFeed", "IndexFullFeed",
    "FirstLevelWithGreeks", "MarketLevel", "Quote", "OptionGreeks", "MarketOHLC", "OHLC", "MarketInfo",
    "StatusInfo", "Type", "RequestMode", "MarketStatus", "INITIAL_FEED", "LIVE_FEED", "MARKET_INFO",
    "file_descriptor_proto",
]
