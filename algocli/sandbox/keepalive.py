"""Server pings on the sandbox's feed sockets, with the brokers' patience rather than aiohttp's.

aiohttp's ``heartbeat=N`` closes a socket whose pong is ``N/2`` seconds late. Dhan pings every 10 s
and closes a socket only after 40 s without an answer (https://dhanhq.co/docs/v2/live-market-feed/,
"Keeping Connection Alive"). The difference matters against a replay running as fast as it can
(``--speed 0``): the client works through a backlog of ticks that sit ahead of the ping on the same
TCP stream, so its pong is late by the backlog. Here a client counts as alive while it answers, sends
anything, or the socket takes data (``alive()``, called by the sender after each write returns: once
the buffers are full a write returns only as the client reads): a client that is reading is not dead.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from aiohttp import WSMsgType, web

__all__ = ["Keepalive"]


class Keepalive:
    """Pings one socket every ``interval`` s; closes it after ``timeout`` s without a sign of life.

    Create the socket with ``heartbeat=None, autoping=False`` and pass every message the
    handler reads through ``handled`` first (it answers pings and notes pongs).

    Args:
        ws: The prepared server socket.
        interval: Seconds between pings.
        timeout: Seconds without a pong, a message or a drained write before the socket is closed.
        clock: Monotonic seconds.
    """

    def __init__(self, ws: web.WebSocketResponse, interval: float = 10.0, timeout: float = 40.0,
                 clock=time.monotonic) -> None:
        self.ws, self.interval, self.timeout, self.clock = ws, interval, timeout, clock
        self.last = clock()
        self.timed_out = False
        self._task: asyncio.Task | None = None

    def start(self) -> "Keepalive":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def alive(self) -> None:
        """The client showed a sign of life (a pong, a message, a write it drained)."""
        self.last = self.clock()

    async def handled(self, msg) -> bool:
        """Answer a ping, note a pong or any other message; True when ``msg`` was a ping or a pong."""
        self.last = self.clock()
        if msg.type == WSMsgType.PING:
            with suppress(ConnectionError, RuntimeError):
                await self.ws.pong(msg.data)
            return True
        return msg.type == WSMsgType.PONG

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        ws = self.ws
        while not ws.closed:
            await asyncio.sleep(self.interval)
            if self.clock() - self.last > self.timeout:
                self.timed_out = True
                await ws.close(code=1011, message=b"keepalive timeout")
                return
            with suppress(ConnectionError, RuntimeError):
                await ws.ping()
