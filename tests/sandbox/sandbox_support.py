"""The sandbox as ``algo sandbox`` runs it (``serve``), on an ephemeral port of 127.0.0.1."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from algocli.sandbox.app import Listening, serve

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


@asynccontextmanager
async def running(data_dir: Path = DATA, **options):
    """Run ``serve(data_dir, ...)`` at full speed until the block ends; yields its ``Listening``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Listening] = loop.create_future()
    options.setdefault("speed", 0)
    task = asyncio.create_task(serve(data_dir, port=0, on_ready=ready.set_result, warn=lambda _m: None,
                                     **options))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.result()  # serve() failed before listening: raise its error
    try:
        yield ready.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition, timeout: float = 10.0, what: str = "condition"):
    """Poll ``condition()`` (sync or async) until truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
