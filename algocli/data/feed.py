"""The live market-data feed protocol shared by Dhan, Upstox and the local sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol, runtime_checkable

from algocli.domain.models import Tick
from algocli.errors import BrokerError


@dataclass(slots=True)
class FeedStatus:
    """What the dashboard shows about a feed. Feeds update it in place."""

    name: str
    connected: bool = False
    ticks: int = 0
    malformed: int = 0
    reconnects: int = 0
    last_tick_monotonic: float | None = None
    last_error: str = ""


@runtime_checkable
class DataFeed(Protocol):
    """A source of live ticks (and, through an aggregator, candles).

    Instruments are ``SEGMENT:SECURITY_ID`` strings (``NSE_EQ:1333``). Feeds call the
    registered tick callbacks from their own asyncio task, in arrival order.
    """

    status: FeedStatus

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, instruments: list[str]) -> None: ...

    async def unsubscribe(self, instruments: list[str]) -> None: ...

    def on_tick(self, callback: Callable[[Tick], None]) -> None: ...

    def on_candle(self, callback: Callable[..., None]) -> None: ...

    async def get_historical(self, instrument: str, start: datetime, end: datetime, interval: str): ...


def candles_from_ticks(callback: Callable[..., None], interval: str = "1m") -> Callable[[Tick], None]:
    """A tick callback that builds closed candles of ``interval`` and hands each to ``callback``.

    Feeds implement ``on_candle`` with it: a ``CandleAggregator`` on the NSE grid becomes one
    more tick listener, and a candle is released when a later tick shows it has closed.
    """
    from algocli.data.aggregator import CandleAggregator

    return CandleAggregator(interval, callback).on_tick


class FeedAuthError(BrokerError):
    """The broker rejected the token. Fatal: renew the token (DHAN_ACCESS_TOKEN or
    UPSTOX_ACCESS_TOKEN in the environment or .env) and start again; retrying cannot help."""
