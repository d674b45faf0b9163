"""Human-readable instrument names (``NSE:RELIANCE``) on the Dhan feed and broker, through
``instrument_ids``, against the sandbox over real sockets on 127.0.0.1."""

from __future__ import annotations

import random

import pytest

from adapters.dhan.dhan_support import Credentials, SandboxServer, run, tick, wait_until
from adapters.dhan.test_execution_support import HDFC, RELIANCE, OrderSandbox, Recorder, new_account, request
from algocli.adapters.dhan.data import DhanDataFeed
from algocli.adapters.dhan.execution import DhanBroker, order_from_book, positions_from_book, trades_from_book
from algocli.adapters.dhan.order_stream import order_from_alert
from algocli.adapters.dhan.parsing import (
    DhanDecoder, OpenInterest, PrevClose, encode_oi, encode_prev_close, encode_quote, instrument_id_maps,
)
from algocli.domain.models import OrderSide
from algocli.errors import ConfigError

NAME = "NSE:RELIANCE"
IDS = {NAME: RELIANCE}  # NSE:RELIANCE → NSE_EQ:2885
FAST = dict(backoff_base=0.02, backoff_cap=0.1, silence_s=30.0, connect_timeout=5.0, close_timeout=1.0)


def make_feed(creds: Credentials, **kwargs) -> DhanDataFeed:
    return DhanDataFeed(creds.factory, **{**FAST, "rng": random.Random(5), **kwargs})


# --- the map itself -----------------------------------------------------------------------------


def test_the_map_is_checked_normalised_and_inverted():
    forward, inverse = instrument_id_maps({NAME: "NSE_EQ:02885", "NSE:NIFTY 50": "IDX_I:13"})
    assert forward == {NAME: "NSE_EQ:2885", "NSE:NIFTY 50": "IDX_I:13"}
    assert inverse == {"NSE_EQ:2885": NAME, "IDX_I:13": "NSE:NIFTY 50"}
    assert instrument_id_maps(None) == ({}, {})
    with pytest.raises(ValueError, match="'NSE:TCS'.*SEGMENT:SECURITY_ID"):
        instrument_id_maps({"NSE:TCS": "TCS"})
    with pytest.raises(ValueError, match="both 'NSE:RELIANCE' and 'RIL' to NSE_EQ:2885"):
        instrument_id_maps({NAME: RELIANCE, "RIL": "NSE_EQ:2885"})
    # Both adapters refuse a bad map when built, before any network.
    with pytest.raises(ConfigError, match="NSE:TCS"):
        DhanDataFeed(instrument_ids={"NSE:TCS": "NSE:TCS"})
    with pytest.raises(ConfigError, match="both"):
        DhanBroker(instrument_ids={NAME: RELIANCE, "RIL": RELIANCE})


def test_the_decoder_names_mapped_instruments_and_keeps_ids_for_the_rest():
    decoder = DhanDecoder({RELIANCE: NAME})
    ltt = 1_772_602_200 + 19_800
    out = decoder.decode(encode_quote(1, 2885, 2450.35, 5, ltt, volume=100), 7)
    out += decoder.decode(encode_quote(1, 1333, 1700.0, 1, ltt, volume=10), 8)
    out += decoder.decode(encode_oi(1, 2885, 42) + encode_prev_close(1, 2885, 2400.0), 9)
    assert [(t.instrument, t.ltp) for t in out[:2]] == [(NAME, 2450.35), (HDFC, 1700.0)]
    assert out[2:] == [OpenInterest(NAME, 42), PrevClose(NAME, 2400.0, 0)]
    assert decoder.malformed == 0


def test_book_and_alert_parsers_rename_mapped_ids_only():
    names = {RELIANCE: NAME}
    row = {"orderId": "1", "exchangeSegment": "NSE_EQ", "securityId": "2885", "orderStatus": "PENDING",
           "transactionType": "BUY", "quantity": 1, "tradedQuantity": 1, "tradedPrice": 10.0, "netQty": 1,
           "costPrice": 10.0}
    other = {**row, "securityId": "1333"}
    assert order_from_book(row, names).instrument == NAME
    assert order_from_book(row).instrument == RELIANCE
    assert [t.instrument for t in trades_from_book([row, other], names)] == [NAME, HDFC]
    assert [p.instrument for p in positions_from_book([row, other], names)] == [NAME, HDFC]
    alert = {"Exchange": "NSE", "Segment": "E", "SecurityId": "2885", "OrderNo": "1", "Status": "Pending"}
    assert order_from_alert(alert, names).instrument == NAME
    assert order_from_alert({**alert, "SecurityId": "1333"}, names).instrument == HDFC


# --- the feed -------------------------------------------------------------------------------------


def test_feed_subscribes_a_name_by_its_dhan_id_and_ticks_carry_the_name():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="full", instrument_ids=IDS)
            got, candles = [], []
            feed.on_tick(got.append)
            feed.on_candle(candles.append, "1m")
            await feed.connect()
            await feed.subscribe([NAME, HDFC])
            session = server.sandbox.sessions[0]
            await wait_until(lambda: len(session.subscriptions) == 2, what="two subscriptions")
            sent = [f'{e["ExchangeSegment"]}:{e["SecurityId"]}' for r in session.requests for e in r["InstrumentList"]]
            assert sorted(sent) == [HDFC, RELIANCE]  # Dhan only ever sees ids
            await wait_until(lambda: len(feed.prev_close) == 2, what="prev closes")
            assert set(feed.prev_close) == {NAME, HDFC}
            assert feed.instruments == [NAME, HDFC]

            # The id of a mapped name is the same instrument: nothing new is sent.
            await feed.subscribe([RELIANCE])
            assert len(session.requests) == 1 and feed.instruments == [NAME, HDFC]

            ts_s = 1_772_609_430  # 13:00:30 IST
            server.hub.publish(tick(RELIANCE, 2450.35, ts_s=ts_s, volume=1000, bid=2450.3, ask=2450.4))
            server.hub.publish(tick(HDFC, 1700.05, ts_s=ts_s))
            server.hub.publish(tick(RELIANCE, 2451.0, ts_s=ts_s + 60, volume=1100))  # closes the 13:00 candle
            await wait_until(lambda: len(got) == 3, what="three ticks")
            assert [(t.instrument, t.ltp) for t in got] == [(NAME, 2450.35), (HDFC, 1700.05), (NAME, 2451.0)]
            assert (got[0].bid, got[0].ask, got[0].volume) == (2450.3, 2450.4, 1000)
            await wait_until(lambda: any(c.instrument == NAME for c in candles), what="the closed candle")
            (candle,) = [c for c in candles if c.instrument == NAME]
            assert (candle.open, candle.close) == (2450.35, 2450.35)

            await feed.unsubscribe([NAME])
            await wait_until(lambda: len(session.requests) == 2, what="the unsubscribe")
            assert session.requests[-1]["RequestCode"] == 22
            assert session.requests[-1]["InstrumentList"] == [{"ExchangeSegment": "NSE_EQ", "SecurityId": "2885"}]
            assert feed.instruments == [HDFC]
            await feed.disconnect()

    run(main())


def test_feed_keeps_names_across_a_disconnect_and_refuses_unmapped_names():
    async def main():
        async with SandboxServer() as server:
            feed = make_feed(Credentials(server.url), mode="quote", instrument_ids=IDS)
            with pytest.raises(ConfigError, match="'NSE:TCS'.*instrument_ids"):
                await feed.subscribe(["NSE:TCS"])
            got = []
            feed.on_tick(got.append)
            await feed.subscribe([NAME])  # before connect: sent on connect
            await feed.connect()
            await feed.disconnect()
            assert feed.instruments == [NAME]
            await feed.connect()  # the second session replays the id
            await wait_until(lambda: len(server.sandbox.sessions) == 2 and server.sandbox.sessions[1].subscriptions,
                             what="the replayed subscription")
            assert server.sandbox.sessions[1].subscribed(17) == [RELIANCE]
            server.hub.publish(tick(RELIANCE, 2500.0))
            await wait_until(lambda: got, what="a tick")
            assert got[0].instrument == NAME
            await feed.disconnect()

    run(main())


# --- the broker -----------------------------------------------------------------------------------


def test_broker_sends_the_dhan_id_and_reports_everything_under_the_name():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, instrument_ids=IDS)
            rec = Recorder(broker)
            await broker.connect()
            try:
                await wait_until(lambda: box.stream_ready(account), what="order-update login")
                box.publish(RELIANCE, 2500.0)
                box.publish(HDFC, 1700.0)
                placed = await broker.place_order(request("hrn-000001", NAME, quantity=10))
                assert (placed.status, placed.instrument, placed.quantity) == ("OPEN", NAME, 10)
                (sim,) = box.orders_of(account, "hrn-000001")
                assert sim.instrument == RELIANCE
                entry = box.state.book_entry(sim)  # what the request carried, as the sandbox kept it
                assert (entry["exchangeSegment"], entry["securityId"]) == ("NSE_EQ", "2885")

                box.publish(RELIANCE, 2501.5)
                await wait_until(lambda: rec.fills, what="the fill")
                (fill,) = rec.fills
                assert (fill.instrument, fill.quantity, fill.price, fill.side) == (NAME, 10, 2501.5, OrderSide.BUY)
                await wait_until(lambda: rec.updates and rec.updates[-1].status == "FILLED", what="FILLED")
                assert {u.instrument for u in rec.updates} == {NAME}  # stream alerts renamed too

                # An unmapped instrument keeps its Dhan id alongside.
                other = await broker.place_order(request("hrn-000002", HDFC, side=OrderSide.SELL, quantity=2))
                assert other.instrument == HDFC
                box.publish(HDFC, 1701.0)
                await wait_until(lambda: len(rec.fills) == 2, what="the second fill")
                assert rec.fills[1].instrument == HDFC

                positions = {p.instrument: p.quantity for p in await broker.get_positions()}
                assert positions == {NAME: 10, HDFC: -2}
                assert (await broker.get_position(NAME)).quantity == 10
                assert (await broker.get_position(RELIANCE)).instrument == NAME  # its id finds it too
                assert [(t.trade_id, t.instrument) for t in await broker.get_trades()] == [
                    (fill.trade_id, NAME), (rec.fills[1].trade_id, HDFC)]
                assert (await broker.get_order(placed.broker_order_id)).instrument == NAME
                assert (await broker.find_order("hrn-000001")).instrument == NAME
                assert {o.client_id: o.instrument for o in await broker.get_orders()} == {
                    "hrn-000001": NAME, "hrn-000002": HDFC}

                refused = await broker.place_order(request("hrn-000003", "NSE:TCS"))
                assert refused.status == "REJECTED" and refused.instrument == "NSE:TCS"
                assert "instrument_ids" in refused.reason and not box.orders_of(account, "hrn-000003")
            finally:
                await broker.disconnect()

    run(main())


def test_broker_poll_and_an_order_named_by_its_id_also_come_back_under_the_name():
    async def main():
        async with OrderSandbox() as box:
            account = new_account()
            broker = box.broker(account, instrument_ids=IDS, stream=False)  # fills from the REST poll
            rec = Recorder(broker)
            await broker.connect()
            try:
                box.publish(RELIANCE, 2500.0)
                placed = await broker.place_order(request("hrn-000001", RELIANCE, quantity=3))
                assert placed.instrument == NAME  # acknowledged under the name its updates carry
                box.publish(RELIANCE, 2499.0)
                await wait_until(lambda: rec.fills, what="the polled fill")
                assert broker.stats.fills_by_source == {"poll": 1}
                assert rec.fills[0].instrument == NAME
                await wait_until(lambda: rec.updates and rec.updates[-1].status == "FILLED", what="FILLED")
                assert {u.instrument for u in rec.updates} == {NAME}
            finally:
                await broker.disconnect()

    run(main())
