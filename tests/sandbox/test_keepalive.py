"""The sandbox's feed keepalive: a client that reads is alive although its pongs are late; a silent one is not."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from algocli.sandbox.keepalive import Keepalive

INTERVAL, TIMEOUT = 0.1, 0.4


async def _server(streaming: bool):
    """A feed-like socket: pings through ``Keepalive``; with ``streaming``, a data frame every 20 ms."""
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def handle(request):
        ws = web.WebSocketResponse(heartbeat=None, autoping=False)
        await ws.prepare(request)
        keep = Keepalive(ws, INTERVAL, TIMEOUT).start()

        async def pump():
            while not ws.closed:
                await ws.send_bytes(b"tick")
                keep.alive()
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(pump()) if streaming else None
        async for msg in ws:
            await keep.handled(msg)
        await keep.stop()
        if writer is not None:
            writer.cancel()
        done.set_result(keep.timed_out)
        return ws

    app = web.Application()
    app.router.add_get("/feed", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port, done


async def _client(port: int, seconds: float) -> tuple[int, bool]:
    """A client that never answers pings (autoping off) but reads every frame for ``seconds``."""
    frames = 0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/feed", autoping=False) as ws:
            try:
                async with asyncio.timeout(seconds):
                    async for msg in ws:
                        frames += msg.type == aiohttp.WSMsgType.BINARY
            except TimeoutError:
                return frames, not ws.closed
            return frames, not ws.closed


def test_a_client_taking_data_stays_connected_without_answering_pings():
    async def main():
        runner, port, _ = await _server(streaming=True)
        try:
            return await _client(port, 3 * TIMEOUT)
        finally:
            await runner.cleanup()

    frames, still_open = asyncio.run(main())
    assert still_open and frames > 20  # aiohttp's heartbeat would have closed it after INTERVAL / 2


def test_a_silent_client_is_closed_after_the_timeout():
    async def main():
        runner, port, done = await _server(streaming=False)
        try:
            started = asyncio.get_running_loop().time()
            _, still_open = await _client(port, 10 * TIMEOUT)
            return still_open, await asyncio.wait_for(done, 5), asyncio.get_running_loop().time() - started
        finally:
            await runner.cleanup()

    still_open, timed_out, took = asyncio.run(main())
    assert not still_open and timed_out and TIMEOUT <= took < 10 * TIMEOUT
