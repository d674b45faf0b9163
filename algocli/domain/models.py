"""The shared vocabulary: intervals, signals, orders, fills, positions (and ``Instrument``).

These are slotted dataclasses, not pydantic models: they are created per event in the
engine's hot path, where a validated model costs five times as much. Validation happens
once, in ``__post_init__``, with messages a strategy author can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from numbers import Integral
from typing import Any

from algocli.domain.instrument import Instrument  # noqa: F401 - re-exported: the one instrument model

IST_OFFSET_NS = 19_800_000_000_000  # +05:30, India has no daylight saving


class Interval(str, Enum):
    """A candle interval. Values are the YAML spellings."""

    MINUTE_1 = "1m"
    MINUTE_3 = "3m"
    MINUTE_5 = "5m"
    MINUTE_10 = "10m"
    MINUTE_15 = "15m"
    MINUTE_25 = "25m"
    MINUTE_30 = "30m"
    HOUR_1 = "1h"
    DAY_1 = "1d"

    @property
    def minutes(self) -> int:
        """Length of the interval in minutes (a trading day counts as 375)."""
        return _MINUTES[self.value]


_MINUTES = {"1m": 1, "3m": 3, "5m": 5, "10m": 10, "15m": 15, "25m": 25, "30m": 30, "1h": 60, "1d": 375}


class SignalAction(str, Enum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class OrderSide(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(str, Enum):
    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # live: sent, outcome ambiguous, being looked up by client id

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer change."""
        return self in _TERMINAL


_TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}


@dataclass(slots=True)
class Tick:
    """One market-data update for one instrument, as any feed decodes it.

    ``volume`` is the cumulative traded volume of the day (what Dhan and Upstox send);
    candle volume is built from its differences. Fields a feed does not carry are None.
    """

    instrument: str
    ts: int  # exchange time of the last trade, UTC nanoseconds
    ltp: float
    ltq: int = 0
    volume: int | None = None
    bid: float | None = None
    ask: float | None = None
    bid_qty: int | None = None
    ask_qty: int | None = None
    oi: int | None = None
    received_ns: int = 0  # monotonic clock when the packet arrived (for latency)


@dataclass(slots=True)
class Signal:
    """A strategy's request to trade, returned from ``on_candle`` or passed to ``submit_order``."""

    instrument: str
    action: SignalAction
    quantity: int = 0
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    tag: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the signal (the engine checks it again when it is submitted: a Signal changed after
        it was made, which the specification forbids, must not reach the book unchecked)."""
        if self.action.__class__ is not SignalAction:  # "BUY" as the specification's pydantic model takes it
            self.action = _member(SignalAction, self.action, "action")
        if self.order_type.__class__ is not OrderType:
            self.order_type = _member(OrderType, self.order_type, "order_type")
        if self.action is _HOLD:
            return
        q = self.quantity
        if q.__class__ is not int:  # accept numpy integers, refuse floats and bools
            if not isinstance(q, Integral) or isinstance(q, bool):
                raise ValueError(f"Signal quantity must be a positive whole number, got {q!r}")
            q = self.quantity = int(q)
        if q <= 0:
            raise ValueError(f"Signal quantity must be a positive whole number, got {q!r}")
        if self.order_type is _LIMIT:
            if self.limit_price is None or not self.limit_price > 0:
                raise ValueError("A LIMIT signal needs a positive limit_price")
        elif self.limit_price is not None:
            raise ValueError("A MARKET signal takes no limit_price; use order_type=LIMIT")


_HOLD = SignalAction.HOLD
_LIMIT = OrderType.LIMIT


def _member(enum: type[Enum], value: Any, name: str) -> Enum:
    """``value`` as a member of ``enum``: the member itself or its name in any case (``"buy"``)."""
    if isinstance(value, str) and value.strip().upper() in enum.__members__:
        return enum[value.strip().upper()]
    allowed = ", ".join(f"{enum.__name__}.{m}" for m in enum.__members__)
    raise ValueError(f"Signal {name} must be one of {allowed}, got {value!r}")


@dataclass(slots=True)
class Order:
    """An order as the account sees it, from submission to a terminal status."""

    order_id: str
    strategy_id: str
    instrument: str
    side: OrderSide
    quantity: int
    order_type: OrderType
    limit_price: float | None
    status: OrderStatus
    created_ts: int  # ns since epoch, UTC
    created_bar: int
    updated_ts: int = 0
    filled_quantity: int = 0
    average_price: float = 0.0
    commission: float = 0.0
    reason: str = ""
    tag: str | None = None

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def is_complete(self) -> bool:
        return self.status.is_terminal

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.side is OrderSide.BUY else -self.quantity


#: A fill's charges by kind, in the order of the artifacts' columns (``Fill.charges`` is their sum).
CHARGE_FIELDS = ("brokerage", "stt", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst")


@dataclass(slots=True)
class Fill:
    """One execution. Immutable by convention: the engine never edits a booked fill.

    ``commission`` is the fill's total charges in rupees, what the ledger deducts (also read
    as ``charges``). The kinds that make it up follow: a flat ``commission_rate`` books it all
    as ``brokerage``; Indian charges (``algocli.market.charges``) fill in each kind, and they
    add up to ``commission``. ``estimated`` marks a live fill whose charges are the cost
    model's estimate, not the broker's contract note.
    """

    fill_id: str
    order_id: str
    strategy_id: str
    instrument: str
    side: OrderSide
    quantity: int
    price: float
    commission: float
    ts: int  # ns since epoch, UTC
    bar: int  # index in the run's timeline
    brokerage: float = 0.0
    stt: float = 0.0
    exchange_txn: float = 0.0
    ipft: float = 0.0
    sebi: float = 0.0
    stamp: float = 0.0
    dp: float = 0.0
    gst: float = 0.0
    estimated: bool = False

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.side is OrderSide.BUY else -self.quantity

    @property
    def charges(self) -> float:
        """The total charges in rupees (the same as ``commission``)."""
        return self.commission

    @property
    def timestamp(self) -> datetime:
        """When it filled, IST (the specification's ``Fill.timestamp``; ``ts`` is UTC nanoseconds)."""
        from algocli.domain.candle import ns_to_ist

        return ns_to_ist(self.ts)


@dataclass(slots=True)
class Position:
    """A strategy's net position in one instrument. Positive is long, negative short."""

    instrument: str
    quantity: int = 0
    average_price: float = 0.0
    realized_pnl: float = 0.0
    last_price: float = 0.0

    @property
    def is_long(self) -> bool:
        return self.quantity > 0

    @property
    def is_short(self) -> bool:
        return self.quantity < 0

    @property
    def unrealized_pnl(self) -> float:
        return self.quantity * (self.last_price - self.average_price)

    @property
    def market_value(self) -> float:
        return abs(self.quantity) * self.last_price

    @property
    def current_price(self) -> float:
        """The specification's name for ``last_price``."""
        return self.last_price
