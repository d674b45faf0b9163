"""The Broker protocol that live brokers (Dhan, Upstox) and the simulated broker share.

Orders carry a deterministic client id, ``<run>-<strategy>-<sequence>`` shortened to what
the broker accepts, journaled before the request is sent. It goes to Dhan as
``correlationId`` and to Upstox as ``tag``; after an ambiguous outcome (timeout, 5xx, 429,
dropped connection) the order is looked up by it instead of being sent again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

from algocli.domain.models import OrderSide, OrderType, Position

PRODUCTS = ("INTRADAY", "CNC", "MARGIN")
VALIDITIES = ("DAY", "IOC")


def client_order_id(run: str, strategy_id: str, seq: int, max_len: int = 30) -> str:
    """Deterministic client id for the ``seq``-th order of a strategy in a run.

    Readable when it fits (``sma-r1-000012``); otherwise a stable hash prefix keeps it
    unique within ``max_len`` (Dhan allows 30 characters in ``correlationId``).
    """
    plain = f"{run}-{strategy_id}-{seq:06d}"
    if len(plain) <= max_len:
        return plain
    digest = hashlib.sha1(f"{run}\0{strategy_id}".encode()).hexdigest()[: max(1, max_len - 7)]
    return f"{digest}-{seq:06d}"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the engine asks a broker to do."""

    client_id: str
    strategy_id: str
    instrument: str
    side: OrderSide
    quantity: int
    order_type: OrderType
    limit_price: float | None = None
    product: str = "INTRADAY"
    validity: str = "DAY"


@dataclass(slots=True)
class BrokerOrder:
    """An order as the broker reports it, normalised.

    ``status`` uses our ``OrderStatus`` values (``UNKNOWN`` is never reported by a broker;
    the engine uses it while an outcome is ambiguous).
    """

    broker_order_id: str
    client_id: str | None
    instrument: str
    side: OrderSide
    quantity: int
    order_type: OrderType
    limit_price: float | None
    status: str
    filled_quantity: int = 0
    average_price: float = 0.0
    reason: str = ""
    product: str = "INTRADAY"
    updated_ts: int = 0


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    """One execution reported by the broker; ``trade_id`` is the key that books it once."""

    trade_id: str
    broker_order_id: str
    instrument: str
    side: OrderSide
    quantity: int
    price: float
    ts: int


@dataclass(slots=True)
class Funds:
    available: float
    used_margin: float = 0.0


class AmbiguousOutcome(Exception):
    """The request may or may not have reached the broker (timeout, 5xx, 429, dropped
    connection). Never resend: look the order up by its client id."""


@runtime_checkable
class Broker(Protocol):
    """Order entry and account state. All methods are coroutines except the callbacks."""

    name: str

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def place_order(self, request: OrderRequest) -> BrokerOrder: ...

    async def cancel_order(self, broker_order_id: str) -> BrokerOrder: ...

    async def modify_order(self, broker_order_id: str, quantity: int | None = None,
                           price: float | None = None) -> BrokerOrder: ...

    async def get_order(self, broker_order_id: str) -> BrokerOrder: ...

    async def find_order(self, client_id: str) -> BrokerOrder | None: ...

    async def get_orders(self) -> list[BrokerOrder]: ...

    async def get_trades(self) -> list[BrokerTrade]: ...

    async def get_positions(self) -> list[Position]: ...

    async def get_position(self, instrument: str) -> Position | None: ...

    async def get_balance(self) -> float: ...

    async def get_margin_used(self) -> float: ...

    def on_order_update(self, callback: Callable[[BrokerOrder], None]) -> None: ...

    def on_fill(self, callback: Callable[[BrokerTrade], None]) -> None: ...


@dataclass
class CallbackSet:
    """Registered order-update and fill callbacks (shared by the adapters)."""

    order_updates: list[Callable[[BrokerOrder], None]] = field(default_factory=list)
    fills: list[Callable[[BrokerTrade], None]] = field(default_factory=list)

    def order(self, update: BrokerOrder) -> None:
        for cb in self.order_updates:
            cb(update)

    def fill(self, trade: BrokerTrade) -> None:
        for cb in self.fills:
            cb(trade)
