"""Fan-out of replayed ticks to every connected protocol session."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from algocli.domain.models import Tick


@dataclass
class Faults:
    """Fault injection for tests; everything off by default.

    Attributes:
        drop_every: Close each feed connection after this many sent packets (0 = never).
        silence_after: Stop sending (but keep the socket open) after this many packets.
        malformed_every: Replace every Nth packet with garbage bytes (0 = never).
        reject_tokens: Refuse every connection as if the token were invalid.
    """

    drop_every: int = 0
    silence_after: int = 0
    malformed_every: int = 0
    reject_tokens: bool = False


@dataclass
class TickHub:
    """Publishes ticks to subscriber queues; each protocol session owns one queue."""

    faults: Faults = field(default_factory=Faults)
    valid_tokens: set[str] = field(default_factory=set)
    _queues: set[asyncio.Queue] = field(default_factory=set)
    last: dict[str, Tick] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)  # every instrument any client asked for
    _first_subscription: asyncio.Event | None = None
    _listeners: list = field(default_factory=list)
    _close_listeners: list = field(default_factory=list)

    def note_subscription(self, instruments) -> None:
        """Protocol sessions call this when a client subscribes (starts a waiting replay)."""
        self.subscribed.update(instruments)
        self.first_subscription.set()

    @property
    def first_subscription(self) -> asyncio.Event:
        if self._first_subscription is None:
            self._first_subscription = asyncio.Event()
        return self._first_subscription

    def register(self, maxsize: int = 100_000) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._queues.add(q)
        return q

    def unregister(self, q: asyncio.Queue) -> None:
        self._queues.discard(q)

    def add_listener(self, callback) -> None:
        """Call ``callback(tick)`` synchronously on every published tick (the matching engine)."""
        self._listeners.append(callback)

    def add_close_listener(self, callback) -> None:
        """Call ``callback(ns)`` when the replay reaches a session's close at ``ns`` (the matching engine)."""
        self._close_listeners.append(callback)

    def close_session(self, ns: int) -> None:
        """The replay reached a session's close at ``ns`` (UTC ns); no tick comes before the next session."""
        for callback in self._close_listeners:
            callback(ns)

    def publish(self, tick: Tick) -> None:
        self.last[tick.instrument] = tick
        for callback in self._listeners:
            callback(tick)
        for q in list(self._queues):
            if not q.full():  # a stalled client loses ticks rather than stalling the replay
                q.put_nowait(tick)

    def token_ok(self, token: str | None) -> bool:
        if self.faults.reject_tokens:
            return False
        return not self.valid_tokens or token in self.valid_tokens
