"""Shared pieces for the Dhan order tests: the whole sandbox app on 127.0.0.1, settings, checks.

Importable as ``adapters.dhan.test_execution_support`` (``tests`` is on the pytest path).
"""

from __future__ import annotations

import itertools
from collections import Counter

from aiohttp import web
from pydantic import SecretStr

from adapters.dhan.dhan_support import tick
from algocli.adapters.dhan.execution import DhanBroker
from algocli.broker.protocol import BrokerOrder, BrokerTrade, OrderRequest
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderSide, OrderType
from algocli.sandbox.app import EXCHANGE, build_app
from algocli.sandbox.dhan_orders import DHAN_ORDERS_KEY, DhanOrdersSandbox
from algocli.sandbox.exchange import Venue
from algocli.sandbox.hub import TickHub

TOKEN = "tok-orders"
RELIANCE = "NSE_EQ:2885"
HDFC = "NSE_EQ:1333"
_accounts = itertools.count(1)


def new_account() -> str:
    """A client id of its own, so the process-wide rate limiters start empty for each test."""
    return f"77{next(_accounts):08d}"


class OrderSandbox:
    """``build_app`` (Dhan protocols only) on a random port, in the running event loop."""

    def __init__(self, tokens: tuple[str, ...] = (TOKEN,)) -> None:
        self.hub = TickHub(valid_tokens=set(tokens))
        self.app = build_app(self.hub, upstox=False)
        self.runner = web.AppRunner(self.app, shutdown_timeout=1.0)

    @property
    def exchange(self) -> Venue:
        """The Dhan venue of the sandbox's exchange (its accounts, faults and prices)."""
        return self.app[EXCHANGE].venue("dhan")

    @property
    def state(self) -> DhanOrdersSandbox:
        return self.app[DHAN_ORDERS_KEY]

    async def __aenter__(self) -> OrderSandbox:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.http = f"http://127.0.0.1:{self.port}"
        self.rest = f"{self.http}/v2"
        self.ws = f"ws://127.0.0.1:{self.port}/dhan/orders"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    def settings(self, account: str, token: str = TOKEN):
        """A settings factory for ``account`` pointing at this sandbox."""
        def factory() -> DhanSettings:
            return DhanSettings(client_id=account, access_token=SecretStr(token), api_base_url=self.rest,
                                order_update_url=self.ws)
        return factory

    def broker(self, account: str, **options) -> DhanBroker:
        options.setdefault("poll_interval", 0.2)
        options.setdefault("timeout", 2.0)
        options.setdefault("read_backoff", lambda: Backoff(0.02, 0.1))
        options.setdefault("stream_backoff", Backoff(0.05, 0.2))
        return DhanBroker(self.settings(account), **options)

    def publish(self, instrument: str, ltp: float) -> None:
        self.hub.publish(tick(instrument, ltp))

    def stream_ready(self, account: str, count: int = 1) -> bool:
        """True once ``count`` order-update sockets of ``account`` have logged in and are open."""
        return sum(1 for s in self.state.sessions if s.client_id == account and s.logged_in and s.open) >= count

    def orders_of(self, account: str, client_id: str) -> list:
        return [o for o in self.exchange.account(account).orders.values() if o.client_id == client_id]


class Recorder:
    """Collects what a broker delivers to its callbacks."""

    def __init__(self, broker: DhanBroker) -> None:
        self.updates: list[BrokerOrder] = []
        self.fills: list[BrokerTrade] = []
        self.events: list[tuple[str, str]] = []  # ("order", status) and ("fill", trade id), in delivery order
        broker.on_order_update(self._update)
        broker.on_fill(self._fill)

    def _update(self, order: BrokerOrder) -> None:
        self.updates.append(order)
        self.events.append(("order", order.status))

    def _fill(self, trade: BrokerTrade) -> None:
        self.fills.append(trade)
        self.events.append(("fill", trade.trade_id))

    def filled(self, order_id: str) -> int:
        return sum(f.quantity for f in self.fills if f.broker_order_id == order_id)


def request(client_id: str, instrument: str = RELIANCE, side: OrderSide = OrderSide.BUY, quantity: int = 10,
            order_type: OrderType = OrderType.MARKET, limit_price: float | None = None, **extra) -> OrderRequest:
    return OrderRequest(client_id, "sma", instrument, side, quantity, order_type, limit_price, **extra)


def assert_books_agree(box: OrderSandbox, account: str, recorder: Recorder, positions) -> None:
    """The B9 checks: at most one exchange order per client id, every exchange trade delivered
    exactly once (and nothing else), and the broker's positions equal the exchange's."""
    acct = box.exchange.account(account)
    per_client = Counter(o.client_id for o in acct.orders.values() if o.client_id)
    assert all(n == 1 for n in per_client.values()), f"duplicate orders per client id: {per_client}"
    delivered = Counter(f.trade_id for f in recorder.fills)
    assert all(n == 1 for n in delivered.values()), f"fills delivered more than once: {delivered}"
    assert sorted(delivered) == sorted(t.trade_id for t in acct.trades)
    for fill in recorder.fills:
        sim = next(t for t in acct.trades if t.trade_id == fill.trade_id)
        assert (fill.broker_order_id, fill.quantity, fill.price, fill.side.value) == (
            sim.order_id, sim.quantity, sim.price, sim.side)
    ours = {p.instrument: (p.quantity, round(p.average_price, 4)) for p in positions if p.quantity}
    theirs = {inst: (int(q), round(avg, 4)) for inst, (q, avg, _) in acct.positions.items() if q}
    assert ours == theirs
