"""What the sandbox's exchange refuses or ends by itself, seen through both brokers' official SDKs.

The whole sandbox app runs on 127.0.0.1 and replays two sessions of the sample RELIANCE file:
the last two minutes of 2024-06-10 (to 15:29:59), then the first two of 2024-06-11. The first
replay is paced on a fake clock that stops once after its last tick, before the session's close,
so a test can act at 15:29:59 replay time; the SDKs (blocking) run in worker threads.

* A DAY order still working at the close EXPIRES (Dhan ``EXPIRED``; Upstox ``cancelled`` with
  the reason): it never fills at the next session's open.
* An order placed while the market is closed is REJECTED with the reason, unless it is an
  after-market order, which fills at the next open.
* A LIMIT price outside ±10 % of the base price (the previous session's close) is REJECTED,
  and a modification to one refused.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import upstox_client
from aiohttp import web
from dhanhq import DhanContext, dhanhq
from upstox_client.rest import ApiException

from algocli.data.csv_feed import load_csv
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Tick
from algocli.domain.session import DAY_NS
from algocli.sandbox.app import EXCHANGE, build_app
from algocli.sandbox.hub import TickHub
from algocli.sandbox.replay import Replayer
from algocli.sandbox.rules import PriceBands

ROOT = Path(__file__).resolve().parents[2]
INST, SECURITY, KEY = "NSE_EQ:2885", "2885", "NSE_EQ|2885"
TOKEN, DHAN_ACCOUNT = "tok-rules", "1100RULES01"
LIMIT_S = 10.0


def _sessions() -> tuple[Bars, Bars]:
    """The last two bars of the sample's first session and the first two of its second."""
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST)
    day = (np.asarray(bars.ts) + IST_OFFSET_NS) // DAY_NS
    first = np.flatnonzero(day == day[0])
    second = np.flatnonzero(day == day[0] + 1)
    return bars.slice(int(first[-2]), int(first[-1]) + 1), bars.slice(int(second[0]), int(second[1]) + 1)


CLOSING, OPENING = _sessions()


class Gate:
    """A fake clock and sleep for a paced replay that stop once, after the tick at ``at_ns``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.at_ns: int | None = None
        self.replayer: Replayer | None = None
        self.reached = asyncio.Event()
        self.released = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.replayer is not None and self.replayer.exchange_ns == self.at_ns and not self.released.is_set():
            self.reached.set()
            await self.released.wait()


@dataclass
class Box:
    hub: TickHub
    app: web.Application
    port: int
    closing: asyncio.Task | None = None
    gate: Gate | None = None

    async def to_the_close(self) -> None:
        """Replay the first session up to its last tick (15:29:59); its close is not yet announced."""
        gate = Gate()
        replayer = Replayer({INST: CLOSING}, self.hub, speed=60, clock=gate.clock, sleep=gate.sleep)
        gate.replayer, gate.at_ns = replayer, int(replayer.paths[0].ts[-1])
        self.gate, self.closing = gate, asyncio.create_task(replayer.run())
        reached = asyncio.create_task(gate.reached.wait())
        await asyncio.wait({self.closing, reached}, return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()

    async def close(self) -> None:
        """Let the first replay reach its session's close."""
        if self.closing is None:
            await self.to_the_close()
        self.gate.released.set()
        await self.closing

    async def next_session(self) -> None:
        """Replay the second session's first two minutes."""
        await Replayer({INST: OPENING}, self.hub, speed=0).run()

    @property
    def last_price(self) -> float:
        return self.app[EXCHANGE].last[INST].ltp


@asynccontextmanager
async def sandbox():
    hub = TickHub(valid_tokens={TOKEN})
    app = build_app(hub, replayer=Replayer({INST: CLOSING}, hub, speed=0))
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    box = Box(hub, app, runner.addresses[0][1])
    try:
        yield box
    finally:
        if box.gate is not None:
            box.gate.released.set()
        if box.closing is not None:
            await asyncio.gather(box.closing, return_exceptions=True)
        await runner.cleanup()


class Dhan:
    """The official dhanhq SDK pointed at the sandbox."""

    def __init__(self, port: int) -> None:
        self.sdk = dhanhq(DhanContext(DHAN_ACCOUNT, TOKEN))
        self.sdk.dhan_http.base_url = f"http://127.0.0.1:{port}/v2"
        self.sdk.dhan_http.timeout = 5

    async def place(self, *, price: float = 0.0, amo: bool = False) -> str:
        """A BUY of one share (MARKET, or LIMIT at ``price``); the order id."""
        sdk = self.sdk
        answer = await asyncio.to_thread(
            sdk.place_order, security_id=SECURITY, exchange_segment=sdk.NSE, transaction_type=sdk.BUY, quantity=1,
            order_type=sdk.LIMIT if price else sdk.MARKET, product_type=sdk.INTRA, price=price,
            after_market_order=amo)
        assert answer["status"] == "success", answer
        return answer["data"]["orderId"]

    async def state(self, order_id: str) -> tuple[str, str, int]:
        """``(status, reason, filled quantity)`` from the order book."""
        entry = (await asyncio.to_thread(self.sdk.get_order_by_id, order_id))["data"]
        return entry["orderStatus"], entry["omsErrorDescription"], entry["filledQty"]

    async def modify_refused(self, order_id: str, price: float) -> str:
        """The error text of a refused price modification."""
        answer = await asyncio.to_thread(self.sdk.modify_order, order_id, self.sdk.LIMIT, "", 1, price, 0, 0,
                                         self.sdk.DAY)
        assert answer["status"] == "failure" and answer["remarks"]["error_code"] == "DH-906", answer
        return answer["remarks"]["error_message"]

    async def filled_at(self, order_id: str) -> list[float]:
        trades = (await asyncio.to_thread(self.sdk.get_trade_book, order_id))["data"]
        return [t["tradedPrice"] for t in trades]


class Upstox:
    """The official upstox_client SDK pointed at the sandbox."""

    def __init__(self, port: int) -> None:
        configuration = upstox_client.Configuration()
        configuration.host = configuration.order_host = f"http://127.0.0.1:{port}"
        configuration.access_token = TOKEN
        api = upstox_client.ApiClient(configuration)
        self.v2, self.v3 = upstox_client.OrderApi(api), upstox_client.OrderApiV3(api)

    async def place(self, *, price: float = 0.0, amo: bool = False) -> str:
        order = upstox_client.PlaceOrderV3Request(
            quantity=1, product="I", validity="DAY", price=price, instrument_token=KEY,
            order_type="LIMIT" if price else "MARKET", transaction_type="BUY", disclosed_quantity=0,
            trigger_price=0.0, is_amo=amo, slice=False)
        return (await asyncio.to_thread(self.v3.place_order, order)).data.order_ids[0]

    async def state(self, order_id: str) -> tuple[str, str, int]:
        details = (await asyncio.to_thread(self.v2.get_order_status, order_id=order_id)).data
        return details.status, details.status_message, details.filled_quantity

    async def history(self, order_id: str) -> list[str]:
        return [h.status for h in (await asyncio.to_thread(self.v2.get_order_details, "2.0", order_id=order_id)).data]

    async def modify_refused(self, order_id: str, price: float) -> str:
        modify = upstox_client.ModifyOrderRequest(quantity=1, validity="DAY", price=price, order_id=order_id,
                                                  order_type="LIMIT", disclosed_quantity=0, trigger_price=0.0)
        with pytest.raises(ApiException) as err:
            await asyncio.to_thread(self.v3.modify_order, modify)
        assert err.value.status == 400
        return err.value.body.decode() if isinstance(err.value.body, bytes) else str(err.value.body)

    async def filled_at(self, order_id: str) -> list[float]:
        trades = (await asyncio.to_thread(self.v2.get_trades_by_order, order_id, "2.0")).data
        return [t.average_price for t in trades]

    async def modify_then_cancel(self, order_id: str) -> None:
        """Raise a MARKET order to two shares, then cancel it."""
        modify = upstox_client.ModifyOrderRequest(quantity=2, validity="DAY", price=0.0, order_id=order_id,
                                                  order_type="MARKET", disclosed_quantity=0, trigger_price=0.0)
        await asyncio.to_thread(self.v3.modify_order, modify)
        await asyncio.to_thread(self.v3.cancel_order, order_id)


CLIENTS = {"dhan": Dhan, "upstox": Upstox}
EXPIRED = {"dhan": "EXPIRED", "upstox": "cancelled"}  # Upstox lists no expired status (its order-details page)
REJECTED = {"dhan": "REJECTED", "upstox": "rejected"}
FILLED = {"dhan": "TRADED", "upstox": "complete"}
WORKING = {"dhan": "PENDING", "upstox": "open"}


def run(main) -> None:
    asyncio.run(asyncio.wait_for(main(), LIMIT_S))


@pytest.mark.parametrize("broker", sorted(CLIENTS))
def test_a_day_order_still_working_at_the_close_expires_instead_of_filling_at_the_next_open(broker):
    async def main():
        async with sandbox() as box:
            client = CLIENTS[broker](box.port)
            await box.to_the_close()  # 15:29:59, the session's last trade is out
            late = await client.place()  # a MARKET order with no trade left to fill it
            assert (await client.state(late))[0] == WORKING[broker]
            await box.close()
            status, reason, filled = await client.state(late)
            assert (status, filled) == (EXPIRED[broker], 0)
            assert "session's close (15:30 IST)" in reason
            await box.next_session()  # its open trades, but the expired order stays unfilled
            status, _, filled = await client.state(late)
            assert (status, filled) == (EXPIRED[broker], 0)
            assert await client.filled_at(late) == []
            if broker == "upstox":  # no cancel request: straight to cancelled
                assert await client.history(late) == ["put order req received", "open", "cancelled"]

    run(main)


@pytest.mark.parametrize("broker", sorted(CLIENTS))
def test_an_order_while_the_market_is_closed_is_rejected_unless_it_is_an_after_market_order(broker):
    async def main():
        async with sandbox() as box:
            client = CLIENTS[broker](box.port)
            await box.close()  # the replay has passed 15:30: closed until the next session's first trade
            refused = await client.place()
            status, reason, _ = await client.state(refused)
            assert status == REJECTED[broker] and "market is closed" in reason and "after-market order" in reason
            amo = await client.place(amo=True)
            waiting = "after market order req received" if broker == "upstox" else "PENDING"
            assert (await client.state(amo))[0] == waiting
            if broker == "upstox":  # its after-market statuses while it waits (Upstox order-history statuses)
                spare = await client.place(amo=True)
                await client.modify_then_cancel(spare)
                assert await client.history(spare) == ["put order req received", "after market order req received",
                                                       "modify after market order req received",
                                                       "cancelled after market order"]
            await box.next_session()
            assert (await client.state(amo))[0] == FILLED[broker]
            assert await client.filled_at(amo) == [float(OPENING.open[0])]  # at the open
            assert (await client.state(refused))[0] == REJECTED[broker] and await client.filled_at(refused) == []
            if broker == "upstox":
                assert await client.history(amo) == ["put order req received", "after market order req received",
                                                     "open", "complete"]

    run(main)


@pytest.mark.parametrize("broker", sorted(CLIENTS))
def test_a_limit_price_outside_the_operating_range_is_rejected_and_a_modify_to_one_refused(broker):
    async def main():
        async with sandbox() as box:
            client = CLIENTS[broker](box.port)
            await box.to_the_close()
            last = box.last_price
            wild = await client.place(price=round(last * 1.5, 1))  # 150 % of the last price
            status, reason, _ = await client.state(wild)
            assert status == REJECTED[broker] and "outside the day's operating range" in reason
            assert await client.filled_at(wild) == []
            resting = await client.place(price=round(last * 0.95, 1))  # inside the band, below the market
            assert (await client.state(resting))[0] == WORKING[broker]
            assert "operating range" in await client.modify_refused(resting, round(last * 0.5, 1))
            assert (await client.state(resting))[0] == WORKING[broker]

    run(main)


def test_the_band_is_ten_percent_around_the_previous_sessions_close():
    bands = PriceBands()
    day = DAY_NS
    first, close, opening = Tick(INST, 10, 100.0), Tick(INST, 20, 104.0), Tick(INST, day + 10, 120.0)
    bands.on_tick(first, None)  # the first replayed session: its first price
    assert bands.problem(INST, 110.0) == "" and bands.problem(INST, 90.0) == ""
    assert "outside" in bands.problem(INST, 110.5) and "outside" in bands.problem(INST, 89.5)
    bands.on_tick(close, first)
    assert bands.base[INST] == 100.0  # the same session keeps its base
    bands.on_tick(opening, close)
    assert bands.base[INST] == 104.0  # a new session: the previous session's close
    assert bands.problem(INST, 114.4) == "" and "outside" in bands.problem(INST, 115.0)
    assert PriceBands(unbanded={INST}).problem(INST, 1e6) == ""  # options: delta-based ranges, not modelled
    assert PriceBands(None).problem(INST, 1e6) == ""
